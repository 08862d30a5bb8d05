"""Archives over HTTP, served by a real static web server started here (nginx where it is
installed, else Python's http.server: every test id carries the name, e.g. `[nginx]`),
read by `mcnode ledger import` and by a node's catch-up, every block checked as from a
directory.

The site (one per module): the host tests' chain continued to 250 blocks (bundles of
100 for blocks 0..199, a file for every block), exported to good/ and copied without
its bundles to files/; garbage/, whose objects from block 100 on are random bytes;
forged/, the same chain until block 150 and then blocks signed by a key nobody expects;
truncated/, with every file from block 200 on cut in half; missing/, which is not there;
and a port nothing listens on. Misbehaving servers (stalls, lies, floods, compression)
are a small raw asyncio server.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from host_fakes import CHAIN, KEYS, Rig
from mcnode.cli import main
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import BlockData, LedgerDB
from mcnode.ledger.archive import LocalDirectory, block_key, bundle_key, export_archive
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.ledger.verify import VerifyReport, verify_ledger
from mcnode.node.archives import (
    ArchiveSourceFailed,
    ArchiveUrl,
    FetchPolicy,
    HttpArchive,
    http_session,
    import_source,
)
from webserver import serve, server_kind

N = 250
SIGNER = KEYS["n0"][1]
STRANGER_SK, STRANGER_PK = ed25519_keypair(SeededRandom(99))
STRANGER_PK_HEX = STRANGER_PK.hex()
FAST = FetchPolicy(backoff=0.01)  # retries without the operator's patience


@dataclass(frozen=True)
class Site:
    kind: str
    url: str
    root: Path
    chain: list[BlockData]
    unreachable: str

    def src(self, name: str) -> str:
        return f"{self.url}{name}/"


def _export(chain: list[BlockData], dest: Path) -> None:
    with LedgerDB(dest.with_suffix(".ledger"), create=True) as db:
        db.append_blocks(chain)
        export_archive(db, LocalDirectory(dest, fsync=False))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=[server_kind()])
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("http-archive")
    root = tmp / "root"
    chain = ChainBuilder(KEYS["n0"][0], seed=b"host tests").chain(N)
    assert chain[: len(CHAIN)] == CHAIN  # the host tests' chain, continued
    _export(chain, root / "good")

    forger = ChainBuilder(KEYS["n0"][0], seed=b"host tests")
    forged = forger.chain(150)
    forger.signing_key = STRANGER_SK
    _export(forged + forger.chain(N - 150), root / "forged")

    rnd = random.Random(5)
    shutil.copytree(root / "good", root / "garbage")
    for key in [bundle_key(100, 100), *(block_key(i) for i in range(100, N))]:
        path = root / "garbage" / key
        path.write_bytes(rnd.randbytes(path.stat().st_size))
    shutil.copytree(root / "good", root / "files", ignore=shutil.ignore_patterns("merged-*"))
    shutil.copytree(root / "good", root / "truncated")
    for i in range(200, N):
        path = root / "truncated" / block_key(i)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    with serve(root, tmp / "server") as server:
        print(f"archives served by {server.kind} at {server.url}")
        yield Site(server.kind, server.url, root, chain, f"http://127.0.0.1:{_closed_port()}/")


def _chain_in(path: Path) -> list[BlockData]:
    with LedgerDB(path, readonly=True) as db:
        verify_ledger(db, VerifyReport(), expected_signers={SIGNER}, origin_id=CHAIN[0].block.id)
        return list(db.iter_block_data())


def _import(ledger: Path, *archives: str) -> tuple[int, str, str]:
    args = ["ledger", "import", "--ledger", str(ledger), "--signer", SIGNER.hex()]
    args += ["--origin-id", CHAIN[0].block.id.hex()]
    for a in archives:
        args += ["--archive", a]
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, result.stderr


def test_ledger_import_reads_an_archive_over_http(site: Site, tmp_path: Path) -> None:
    code, out, err = _import(tmp_path / "l", site.src("good"))
    assert code == 0 and f"imported {N} blocks (0 -> {N})" in out, err
    assert _chain_in(tmp_path / "l") == site.chain
    code, out, _ = _import(tmp_path / "l", site.src("good"))  # up to date: nothing to do
    assert code == 0 and f"imported 0 blocks ({N} -> {N})" in out


def test_ledger_import_says_why_each_bad_source_failed_and_falls_back(
    site: Site, tmp_path: Path
) -> None:
    names = ["missing", "garbage", "forged", "truncated", "good"]
    code, out, err = _import(tmp_path / "l", site.unreachable, *map(site.src, names))
    assert code == 0 and f"imported {N} blocks (0 -> {N})" in out, err
    g, f, t = site.src("garbage"), site.src("forged"), site.src("truncated")
    assert err.splitlines() == [
        f"warning: {site.unreachable}HEAD: unreachable: Connection refused (4 attempts) "
        f"(ledger kept 0 blocks); trying {site.src('missing')}",
        f"warning: {site.src('missing')}HEAD: not found (HTTP 404): no mcnode archive served "
        f"here (ledger kept 0 blocks); trying {g}",
        *[line for line in err.splitlines() if line.startswith(f"warning: {g}")],
        f"warning: {f}: block 150: signer {STRANGER_PK_HEX} is not an expected signer "
        f"(ledger kept 150 blocks); trying {t}",
        *[line for line in err.splitlines() if line.startswith(f"warning: {t}")],
    ]
    (garbage,) = [line for line in err.splitlines() if line.startswith(f"warning: {g}")]
    assert garbage.startswith(f"warning: {g}{bundle_key(100, 100)}: bad bundle: ")
    assert garbage.endswith(f"(ledger kept 100 blocks); trying {f}")
    (truncated,) = [line for line in err.splitlines() if line.startswith(f"warning: {t}")]
    assert truncated.startswith(f"warning: {t}{block_key(200)}: not a block file: ")
    assert truncated.endswith(f"(ledger kept 200 blocks); trying {site.src('good')}")
    # Nothing but the chain reached the ledger: no forged block, no garbage.
    assert _chain_in(tmp_path / "l") == site.chain


def test_ledger_import_fails_when_no_source_can_be_read(site: Site, tmp_path: Path) -> None:
    code, _, err = _import(tmp_path / "l", site.src("garbage"))
    assert code == 1 and err.startswith(f"error: {site.src('garbage')}{bundle_key(100, 100)}")
    assert err.rstrip().endswith("(ledger kept 100 blocks)") and len(err.splitlines()) == 1
    assert _chain_in(tmp_path / "l") == site.chain[:100]


def test_a_node_catches_up_from_http_archives_past_bad_ones(
    site: Site, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The consensus host's catch-up, with a real ledger (its signer pinned) and no peer
    answering: each bad source is one warning naming it, the block and the problem; the
    node takes what every source has that checks out and ends on the whole chain."""
    sources = [site.unreachable, *(site.src(n) for n in ("garbage", "forged", "truncated"))]
    sources.append(site.src("good"))
    rig = Rig(tmp_path, archive="sources = [" + ", ".join(f'"{s}"' for s in sources) + "]")
    with LedgerDB(tmp_path / "ledger", create=True, expected_signers={SIGNER}) as ledger:
        ledger.append_block(CHAIN[0])
        rig.ledger = ledger  # type: ignore[assignment]
        rig.host = rig.build()
        rig.host.catchup.archive_policy = FAST
        for p in rig.peers.values():
            p.down, p.slot = True, N + 5
        with caplog.at_level(logging.INFO, logger="mcnode"):
            assert asyncio.run(rig.host.catchup.catch_up()) == N - 1
        assert list(ledger.iter_block_data()) == site.chain
    failed = [r.kv for r in caplog.records if r.getMessage() == "archive source failed"]  # type: ignore[attr-defined]
    firsts: dict[str, tuple[int, str]] = {}
    for kv in failed:
        firsts.setdefault(kv["source"], (kv["block"], kv["error"]))
    assert set(firsts) == set(sources[:-1])  # the good one never failed
    assert firsts[site.unreachable] == (
        1,
        f"{site.unreachable}HEAD: unreachable: Connection refused (4 attempts)",
    )
    block, error = firsts[site.src("garbage")]
    assert block == 100 and f"{bundle_key(100, 100)}: bad bundle" in error
    block, error = firsts[site.src("forged")]
    assert (block, error) == (150, f"block 150: signer {STRANGER_PK_HEX} is not an expected signer")
    block, error = firsts[site.src("truncated")]
    assert block == 200 and f"{block_key(200)}: not a block file" in error
    imported = [r.kv for r in caplog.records if r.getMessage() == "blocks imported"]  # type: ignore[attr-defined]
    assert [(kv["source"], kv["first"], kv["count"]) for kv in imported] == [
        (site.src("garbage"), 1, 99),
        (site.src("forged"), 100, 50),
        (site.src("truncated"), 150, 50),
        (site.src("good"), 200, 50),
    ]
    assert rig.metric("mcnode_errors_total", where="archive_import") == len(failed)
    assert _chain_in(tmp_path / "ledger") == site.chain


def test_bundles_missing_or_over_the_size_cap_are_read_as_their_parts_a_block_over_it_fails(
    site: Site, tmp_path: Path
) -> None:
    block_bytes = max(len(d.to_bytes()) for d in site.chain)
    good = ArchiveUrl(site.src("good"))
    parts = FetchPolicy(max_object_bytes=block_bytes)  # any block file, no bundle
    with LedgerDB(tmp_path / "a", create=True, expected_signers={SIGNER}) as db:
        assert asyncio.run(import_source(good, db, parts)) == N
    assert _chain_in(tmp_path / "a") == site.chain
    with LedgerDB(tmp_path / "f", create=True, expected_signers={SIGNER}) as db:
        assert asyncio.run(import_source(ArchiveUrl(site.src("files")), db, FAST)) == N
    assert _chain_in(tmp_path / "f") == site.chain
    tiny = FetchPolicy(max_object_bytes=block_bytes // 2)
    with LedgerDB(tmp_path / "b", create=True) as db:
        with pytest.raises(ArchiveSourceFailed, match=f"larger than {block_bytes // 2} bytes") as e:
            asyncio.run(import_source(good, db, tiny))
        assert (e.value.key, e.value.block, db.num_blocks()) == (block_key(0), 0, 0)


def test_an_import_cancelled_midway_keeps_whole_batches_and_leaves_no_fetch_running(
    site: Site, tmp_path: Path
) -> None:
    """As when the node stops during catch-up: the fetches ahead are cancelled and
    awaited, the ledger holds a prefix of the chain."""

    async def go() -> None:
        with LedgerDB(tmp_path / "l", create=True, expected_signers={SIGNER}) as db:
            appended = asyncio.Event()
            url = ArchiveUrl(site.src("files"))  # one request per block: many in flight
            task = asyncio.ensure_future(
                import_source(url, db, FAST, progress=lambda n: appended.set())
            )
            await asyncio.wait_for(appended.wait(), 30)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert asyncio.all_tasks() == {asyncio.current_task()}
            assert 100 <= db.num_blocks() < N
            assert list(db.iter_block_data()) == site.chain[: db.num_blocks()]

    asyncio.run(go())


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "archive test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = tmp / "cert.pem", tmp / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_pem, key_pem


def test_https_archive_read_when_its_certificate_is_trusted_refused_otherwise(
    site: Site, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    with serve(site.root, tmp_path / "server", tls=(cert, key)) as server:
        url = ArchiveUrl(server.url + "good/")
        with LedgerDB(tmp_path / "a", create=True) as db:
            with pytest.raises(ArchiveSourceFailed) as e:
                asyncio.run(import_source(url, db, FAST))
            assert str(e.value).startswith(f"{url}HEAD: TLS: ")
            assert "certificate verify failed" in str(e.value) and db.num_blocks() == 0
        # Trusted through OpenSSL's SSL_CERT_FILE, read when the client starts: a process.
        done = subprocess.run(
            [sys.executable, "-m", "mcnode", "ledger", "import", "--archive", url.url,
             "--ledger", str(tmp_path / "b"), "--signer", SIGNER.hex()],
            env={**os.environ, "SSL_CERT_FILE": str(cert)},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0 and f"imported {N} blocks" in done.stdout, done.stderr
    assert _chain_in(tmp_path / "b") == site.chain


# -- servers that misbehave ------------------------------------------------------------------


async def _misbehave(behaviour: str, requests: list[str], head: bytes) -> asyncio.Server:
    """A raw HTTP/1.1 responder doing one bad thing for every request (`head` is a
    good HEAD, for the one that fails twice then answers)."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            requests.append(request.split(b" ", 2)[1].decode())
            ok = b"HTTP/1.1 200 OK\r\nConnection: close\r\n"
            if behaviour == "flaky" and len(requests) < 3:
                writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")
            elif behaviour == "flaky":
                writer.write(ok + b"Content-Length: %d\r\n\r\n" % len(head) + head)
            elif behaviour == "cut short":
                writer.write(ok + b"Content-Length: 1000\r\n\r\n" + head[:10])
            elif behaviour == "lies about length":
                writer.write(ok + b"Content-Length: 1000000000000\r\n\r\n")
            elif behaviour == "gzip":
                writer.write(ok + b"Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd")
            elif behaviour == "forbidden":
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            elif behaviour == "stalls":
                writer.write(ok + b"Content-Length: 100\r\n\r\n")
                await writer.drain()
                await asyncio.sleep(5)
            elif behaviour == "floods":  # chunked, never ending (bounded here: 64 MiB)
                writer.write(ok + b"Transfer-Encoding: chunked\r\n\r\n")
                for _ in range(1024):
                    writer.write(b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
                    await writer.drain()
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


@pytest.mark.parametrize(
    ("behaviour", "error", "tries"),
    [
        ("flaky", None, 3),
        ("cut short", "HEAD: response cut short: ", 3),
        ("lies about length", "HEAD: larger than 65536 bytes", 1),
        ("gzip", "HEAD: served gzip-encoded; serve archives as they are", 1),
        ("forbidden", "HEAD: HTTP 403 Forbidden", 1),
        ("stalls", "HEAD: timed out (3 attempts)", 3),
        ("floods", "HEAD: larger than 65536 bytes", 1),
    ],
)
def test_a_misbehaving_server_costs_bounded_time_and_memory_and_one_clear_error(
    site: Site, behaviour: str, error: str | None, tries: int
) -> None:
    policy = FetchPolicy(attempts=3, backoff=0.01, read_timeout=0.3, total_timeout=2.0)
    head = _good_head(site)

    async def go() -> None:
        requests: list[str] = []
        server = await _misbehave(behaviour, requests, head)
        port = server.sockets[0].getsockname()[1]
        url = ArchiveUrl(f"http://127.0.0.1:{port}/a/")
        try:
            async with http_session(policy) as session:
                archive = HttpArchive(url, session, policy)
                if error is None:
                    assert (await archive.head()).num_blocks == N
                else:
                    with pytest.raises(ArchiveSourceFailed) as e:
                        await archive.head()
                    assert str(e.value).startswith(f"{url}{error}"), e.value
        finally:
            server.close()
        assert requests == ["/a/HEAD"] * tries

    asyncio.run(asyncio.wait_for(go(), 10))


def _good_head(site: Site) -> bytes:
    with urllib.request.urlopen(site.src("good") + "HEAD", timeout=5) as r:
        return bytes(r.read())
