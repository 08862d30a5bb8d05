"""Archives (export, import, incremental, tampering) and the `mcnode ledger` CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcnode.cli import main
from mcnode.client.keys import read_account_key
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import ArchiveError, BlockData, LedgerDB
from mcnode.ledger import errors as E
from mcnode.ledger.archive import (
    Chunk,
    LocalDirectory,
    block_key,
    bundle_key,
    chunk_plan,
    decode_bundle,
    export_archive,
    import_archive,
    read_head,
)
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.transaction import Scanner

SK, PK = ed25519_keypair(SeededRandom(17))
OTHER_SK, OTHER_PK = ed25519_keypair(SeededRandom(18))


def _ledger(path: Path, chain: list[BlockData]) -> Path:
    with LedgerDB(path, create=True) as db:
        db.append_blocks(chain)
    return path


def test_block_keys_follow_the_nested_layout() -> None:
    assert block_key(1) == "00/00/00/00/00/00/00/0000000000000001.mcblock"
    assert block_key(0x1234) == "00/00/00/00/00/00/12/0000000000001234.mcblock"
    assert bundle_key(100, 200) == "merged-100/00/00/00/00/00/00/00/00000000000000c8.mcblocks"


def test_chunk_plan_takes_the_largest_bundle_that_starts_here_and_fits() -> None:
    plan = list(chunk_plan(150, 2250))
    assert plan[:50] == [Chunk(i, 1) for i in range(150, 200)]
    assert plan[50:58] == [Chunk(i, 100) for i in range(200, 1000, 100)]
    assert plan[58:61] == [Chunk(1000, 1000), Chunk(2000, 100), Chunk(2100, 100)]
    assert plan[61:] == [Chunk(i, 1) for i in range(2200, 2250)]
    assert Chunk(0, 1000).parts() == [Chunk(i, 100) for i in range(0, 1000, 100)]
    assert Chunk(300, 100).parts() == [Chunk(i, 1) for i in range(300, 400)]
    assert (Chunk(300, 100).key, Chunk(7, 1).key) == (bundle_key(100, 300), block_key(7))


def test_import_without_bundles_reads_every_block_file(tmp_path: Path) -> None:
    chain = ChainBuilder(SK).chain(230)
    with LedgerDB(_ledger(tmp_path / "src", chain), readonly=True) as db:
        export_archive(db, LocalDirectory(tmp_path / "a", fsync=False))
    for merged in (tmp_path / "a").glob("merged-*"):
        shutil.rmtree(merged)
    with LedgerDB(tmp_path / "dst", create=True, expected_signers={PK}) as db:
        assert import_archive(LocalDirectory(tmp_path / "a"), db) == 230
        assert list(db.iter_block_data()) == chain


def test_export_import_round_trip_is_incremental(tmp_path: Path) -> None:
    builder = ChainBuilder(SK)
    chain = builder.chain(130, outputs=2)
    src = _ledger(tmp_path / "src", chain)
    dest = LocalDirectory(tmp_path / "archive", fsync=False)
    with LedgerDB(src, readonly=True) as db:
        first = export_archive(db, dest)
    assert (first.first, first.num_blocks, first.bundles) == (0, 130, 1)
    assert decode_bundle(dest.get(bundle_key(100, 0)) or b"") == chain[:100]

    with LedgerDB(tmp_path / "dst", create=True, expected_signers={PK}) as db:
        assert import_archive(dest, db) == 130
        assert list(db.iter_block_data()) == chain

    more = builder.chain(100, outputs=1)
    with LedgerDB(src) as db:
        db.append_blocks(more)
    with LedgerDB(src, readonly=True) as db:
        second = export_archive(db, dest)
        assert (second.first, second.num_blocks, second.bundles) == (130, 230, 1)
        again = export_archive(db, dest)
        assert (again.first, again.bundles) == (230, 0)
    head = read_head(dest)
    assert head is not None and head.num_blocks == 230 and head.last_block_id == more[-1].block.id
    assert dest.get(bundle_key(100, 200)) is None  # 200..229 is not a full bundle yet
    assert sum(1 for k in dest.list() if k.endswith(".mcblock")) == 230

    with LedgerDB(tmp_path / "dst", expected_signers={PK}) as db:
        assert import_archive(dest, db) == 100
        assert db.last_block() == more[-1].block


def test_local_directory_put_replaces_whole_files_and_reports_failures(tmp_path: Path) -> None:
    dest = LocalDirectory(tmp_path / "a")  # fsync on, as `mcnode ledger export` uses it
    dest.put("x/y/obj", b"first")
    dest.put("x/y/obj", b"second")
    assert dest.get("x/y/obj") == b"second"
    assert sorted(dest.list()) == ["x/y/obj"]
    assert os.listdir(tmp_path / "a" / "x" / "y") == ["obj"]  # no temp file left
    (tmp_path / "a" / "file").write_bytes(b"")
    with pytest.raises(ArchiveError, match="cannot write"):
        dest.put("file/obj", b"data")  # a file where a directory must go
    (tmp_path / "a" / "dir").mkdir()
    with pytest.raises(ArchiveError, match="cannot write"):
        dest.put("dir", b"data")  # the rename onto a directory fails
    assert set(os.listdir(tmp_path / "a")) == {"x", "file", "dir"}  # no temp file left


def test_import_refuses_unexpected_signer_keeping_good_blocks(tmp_path: Path) -> None:
    builder = ChainBuilder(SK)
    chain = builder.chain(50)
    builder.signing_key = OTHER_SK
    chain += builder.chain(10)
    dest = LocalDirectory(tmp_path / "a", fsync=False)
    with LedgerDB(_ledger(tmp_path / "src", chain), readonly=True) as db:
        export_archive(db, dest)
    with LedgerDB(tmp_path / "dst", create=True, expected_signers={PK}) as db:
        with pytest.raises(E.InvalidBlockSignature, match="block 50"):
            import_archive(dest, db)
        assert db.num_blocks() == 50


def test_import_detects_tampered_and_foreign_archives(tmp_path: Path) -> None:
    chain = ChainBuilder(SK).chain(20, outputs=2)
    dest = LocalDirectory(tmp_path / "a", fsync=False)
    with LedgerDB(_ledger(tmp_path / "src", chain), readonly=True) as db:
        export_archive(db, dest)
    raw = bytearray(dest.get(block_key(7)) or b"")
    raw[-120] ^= 1  # inside a TxOut
    dest.put(block_key(7), bytes(raw))
    with LedgerDB(tmp_path / "dst", create=True, expected_signers={PK}) as db:
        with pytest.raises(E.ContentsHashMismatch, match="block 7"):
            import_archive(dest, db)
        assert db.num_blocks() == 7
    dest.put(block_key(8), b"garbage")
    with LedgerDB(tmp_path / "dst2", create=True) as db:
        db.append_blocks(chain[:8])
        with pytest.raises(ArchiveError, match="not a block file"):
            import_archive(dest, db)

    other = ChainBuilder(SK, seed=b"other").chain(25)
    _ledger(tmp_path / "other", other)
    with (
        LedgerDB(tmp_path / "other", readonly=True) as db,
        pytest.raises(ArchiveError, match="another ledger"),
    ):
        export_archive(db, dest)
    with LedgerDB(tmp_path / "other") as db, pytest.raises(ArchiveError, match="another ledger"):
        import_archive(dest, db)


# -- the CLI -----------------------------------------------------------------------------


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ledger", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_cli_init_show_verify_export_import(tmp_path: Path) -> None:
    ledger, keys, archive = tmp_path / "l", tmp_path / "keys", tmp_path / "a"
    code, out = _run(
        "init", "--ledger", str(ledger), "--accounts", "3", "--outputs-per-account", "2",
        "--amount", "1000", "--keys-out", str(keys), "--seed", "9",
    )  # fmt: skip
    assert code == 0, out
    origin_id = out.split()[2]
    files = sorted(keys.iterdir())
    assert [f.name for f in files] == [f"account-000{i}.json" for i in range(3)]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    with LedgerDB(ledger, readonly=True) as db:
        outs = db.get_tx_outs(0, 6)
    for f in files:
        owned = Scanner(read_account_key(f)).scan(outs)
        assert [o.value for o in owned] == [1000, 1000]

    code, out = _run("show", "--ledger", str(ledger), "--json")
    assert code == 0 and json.loads(out)["tx_outs"] == 6
    code, out = _run("show", "--ledger", str(ledger), "--block", "0", "--json")
    assert json.loads(out)["id"] == origin_id and json.loads(out)["signer"] is None
    assert _run("show", "--ledger", str(ledger), "--block", "1")[0] == 2
    code, out = _run("verify", "--ledger", str(ledger), "--origin-id", origin_id)
    assert code == 0 and out.rstrip().splitlines()[-1].startswith("OK")
    code, out = _run("verify", "--ledger", str(ledger), "--origin-id", "00" * 32)
    assert code == 1 and "FAILED" in out
    assert _run("init", "--ledger", str(ledger), "--accounts", "1", "--outputs-per-account",
                "1", "--amount", "1", "--keys-out", str(keys))[0] == 2  # fmt: skip

    assert _run("export", "--ledger", str(ledger), "--archive", str(archive))[0] == 0
    code, out = _run("import", "--archive", str(archive), "--ledger", str(tmp_path / "l2"))
    assert code == 2 and "--any-signer" in out
    code, out = _run(
        "import", "--archive", str(archive), "--ledger", str(tmp_path / "l2"),
        "--signer", PK.hex(), "--origin-id", origin_id,
    )  # fmt: skip
    assert code == 0 and "imported 1 blocks" in out


def test_cli_verify_checks_signers(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path / "l", ChainBuilder(SK).chain(5))
    signers = tmp_path / "signers"
    signers.write_text(f"# validators\n{OTHER_PK.hex()}\n{PK.hex()}  # node 1\n")
    code, out = _run("verify", "--ledger", str(ledger), "--signers-file", str(signers))
    assert code == 0 and f"{PK.hex()}  4 blocks" in out
    code, out = _run("verify", "--ledger", str(ledger), "--signer", OTHER_PK.hex())
    assert code == 1 and "block 1" in out and "not an expected signer" in out
    code, out = _run("verify", "--ledger", str(ledger), "--signer", "abc")
    assert code == 2 and "64 hex digits" in out
    code, out = _run("verify", "--ledger", str(tmp_path / "missing"))
    assert code == 2 and "no ledger here" in out


def test_cli_verify_reads_a_nodes_block_signers_file(tmp_path: Path) -> None:
    """`--signers-file` takes a node's state/block-signers.json: its accepted set."""
    ledger = _ledger(tmp_path / "l", ChainBuilder(SK).chain(3))
    doc = {"format": "mcnode-block-signers", "version": 1, "own": [PK.hex()], "signers": {}}
    good, other, bad = tmp_path / "good.json", tmp_path / "other.json", tmp_path / "bad.json"
    good.write_text(json.dumps({**doc, "expected": [OTHER_PK.hex(), PK.hex()]}))
    other.write_text(json.dumps({**doc, "expected": [OTHER_PK.hex()]}))
    bad.write_text(json.dumps({**doc, "expected": ["12"]}))
    code, out = _run("verify", "--ledger", str(ledger), "--signers-file", str(good))
    assert code == 0 and "2 expected signers" in out and f"{PK.hex()}  2 blocks" in out
    code, out = _run("verify", "--ledger", str(ledger), "--signers-file", str(other))
    assert code == 1 and "not an expected signer" in out
    code, out = _run("verify", "--ledger", str(ledger), "--signers-file", str(bad))
    assert code == 2 and "bad.json: expected" in out and "64 hex digits" in out
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    code, out = _run("verify", "--ledger", str(ledger), "--signers-file", str(tmp_path / "x.json"))
    assert code == 2 and "not a block-signers file" in out
