"""Catch-up speed from an archive: a directory against the same archive over HTTP.

    python bench/bench_archive_http.py [--blocks 500] [--outputs 2] [--reps 5]
                                       [--parallel 1,8,32] [--rtt-ms MS] [--json PATH|-]

A chain of `--blocks` signed blocks (`--outputs` TxOuts each) is exported once to an
archive directory (single files and merged bundles, as a node writes it) and copied
without its bundles. Both are served on 127.0.0.1 by a real web server (nginx when
installed, else Python's http.server; the output says which; `tests/webserver.py`).
Each case imports the whole chain into a fresh ledger (LMDB, fsync on, every block
checked: chain, contents hash, signature by the pinned signer, Merkle root) through
`node.archives.import_source`, the code path of catch-up and `mcnode ledger import`;
the figure is the best of `--reps` runs, the cases taking turns. Loopback has no
latency, so the plain HTTP figures show the client's overhead; `--rtt-ms` adds cases
through a proxy (its own process) that holds every byte for half the round trip each
way, as a distant server would: there the files-only cases show what the parallel
fetches buy when every block is its own request.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import LedgerDB
from mcnode.ledger.archive import LocalDirectory, export_archive
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.node.archives import ArchiveSource, ArchiveUrl, FetchPolicy, import_source

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from webserver import serve

SK, PK = ed25519_keypair(SeededRandom(1))


async def _delayed_pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    """Forward bytes in order, each piece `delay` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        while True:
            data = await reader.read(1 << 16)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                return

    async def write() -> None:
        while True:
            due, data = await queue.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not data:
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    with contextlib.suppress(ConnectionError):
        await asyncio.gather(read(), write())


def _proxy_main(listen: int, upstream: int, rtt: float) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(
            _delayed_pipe(reader, up_writer, rtt / 2), _delayed_pipe(up_reader, writer, rtt / 2)
        )

    async def run() -> None:
        server = await asyncio.start_server(client, "127.0.0.1", listen)
        async with server:
            await server.serve_forever()

    asyncio.run(run())


@contextlib.contextmanager
def delaying_proxy(upstream_url: str, rtt: float) -> Iterator[str]:
    """http://127.0.0.1:PORT/ in front of `upstream_url`'s server, `rtt` seconds away."""
    upstream = int(upstream_url.rstrip("/").rsplit(":", 1)[1])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = multiprocessing.get_context("spawn").Process(
        target=_proxy_main, args=(port, upstream, rtt), daemon=True
    )
    proc.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or not proc.is_alive():
                    raise RuntimeError("the delaying proxy did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.join(10)


def import_once(source: ArchiveSource, work: Path, parallel: int) -> float:
    """Seconds to import the whole archive into a fresh ledger."""
    path = work / "ledger"
    shutil.rmtree(path, ignore_errors=True)
    with LedgerDB(path, create=True, expected_signers={PK}) as db:
        started = time.perf_counter()
        n = asyncio.run(import_source(source, db, FetchPolicy(parallel=parallel)))
        elapsed = time.perf_counter() - started
    assert n > 0
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=500)
    ap.add_argument("--outputs", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--parallel", default="1,8,32", help="HTTP fetches at once, per case")
    ap.add_argument("--rtt-ms", type=float, default=0.0, help="add cases this far away")
    ap.add_argument("--json", default=None, help="also write the JSON result here ('-': stdout)")
    args = ap.parse_args()
    parallel = [int(p) for p in args.parallel.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        work, root = Path(tmp), Path(tmp) / "root"
        chain = ChainBuilder(SK).chain(args.blocks, outputs=args.outputs)
        with LedgerDB(work / "src", create=True) as db:
            db.append_blocks(chain)
            export_archive(db, LocalDirectory(root / "bundles", fsync=False))
        shutil.copytree(root / "bundles", root / "files")
        for merged in (root / "files").glob("merged-*"):
            shutil.rmtree(merged)
        size = sum(f.stat().st_size for f in (root / "files").rglob("*") if f.is_file())

        with contextlib.ExitStack() as stack:
            server = stack.enter_context(serve(root, work / "server"))
            urls = {"http": server.url}
            if args.rtt_ms:
                rtt = f"http, {args.rtt_ms:g} ms RTT"
                urls[rtt] = stack.enter_context(delaying_proxy(server.url, args.rtt_ms / 1000))
            cases: list[tuple[str, ArchiveSource, int]] = [
                ("directory, bundles", root / "bundles", 1),
                ("directory, files only", root / "files", 1),
            ]
            for label, url in urls.items():
                for what, sub in (("bundles", "bundles/"), ("files only", "files/")):
                    cases += [
                        (f"{label}, {what}, parallel {p}", ArchiveUrl(url + sub), p)
                        for p in parallel
                    ]
            results = {name: float("inf") for name, _, _ in cases}
            for _ in range(args.reps):  # cases interleaved: a busy moment hits all alike
                for name, source, p in cases:
                    results[name] = min(results[name], import_once(source, work, p))

    print(
        f"{args.blocks} blocks of {args.outputs} outputs ({size / args.blocks:.0f} bytes per "
        f"block file); web server: {server.kind}; best of {args.reps}; "
        f"{os.cpu_count()} cores, {platform.python_version()}"
    )
    for name, seconds in results.items():
        print(f"  {name:44} {seconds * 1000:8.0f} ms  {args.blocks / seconds:8.0f} blocks/s")
    doc = {
        "blocks": args.blocks,
        "outputs": args.outputs,
        "server": server.kind,
        "reps": args.reps,
        "rtt_ms": args.rtt_ms,
        "seconds": {k: round(v, 4) for k, v in results.items()},
        "blocks_per_second": {k: round(args.blocks / v) for k, v in results.items()},
    }
    line = json.dumps(doc)
    if args.json and args.json != "-":
        Path(args.json).write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
