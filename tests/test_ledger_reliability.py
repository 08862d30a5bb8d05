"""The ledger survives SIGKILL mid-append, reports damage as damage, and has one writer."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import pytest
from click.testing import CliRunner

from mcnode.cli import main
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import BlockData, LedgerCorruptError, LedgerDB, LedgerLockedError
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.ledger.verify import VerifyReport, verify_ledger

SK, PK = ed25519_keypair(SeededRandom(23))


def shape(index: int) -> tuple[int, int]:
    """(outputs, key images) of block `index` of the crash test's intended chain."""
    return (300 if index % 40 == 39 else 1 + index % 5), 1 + index % 3


# The writer: rebuilds the intended chain up to what the ledger holds, then appends the
# rest of it forever, one block per write transaction.
CHILD = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_ledger_reliability import SK, shape
from mcnode.ledger import LedgerDB
from mcnode.ledger.synthetic import ChainBuilder
db = LedgerDB(sys.argv[1], create=True)
builder = ChainBuilder(SK)
n = db.num_blocks()
for i in range(n):
    builder.next(*shape(i))
print("ready", n, flush=True)
i = n
while True:
    db.append_block(builder.next(*shape(i)))
    i += 1
"""


def _child(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )


def test_sigkill_mid_append_leaves_a_verified_prefix(tmp_path: Path) -> None:
    rng = random.Random(4)
    path = tmp_path / "ledger"
    builder = ChainBuilder(SK)
    intended: list[BlockData] = []
    sizes = []
    started = time.monotonic()
    for _ in range(30):
        child = _child(path)
        assert child.stdout is not None
        assert child.stdout.readline().startswith("ready")
        time.sleep(rng.uniform(0.005, 0.060))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        with LedgerDB(path, expected_signers={PK}) as db:  # the lock died with the child
            report = verify_ledger(db, VerifyReport(), expected_signers={PK})
            n = report.blocks_checked
            while len(intended) < n:
                intended.append(builder.next(*shape(len(intended))))
            # verify checked the hash chain, so the last id pins the whole prefix
            assert db.last_block() == intended[n - 1].block
        assert not sizes or n >= sizes[-1]
        sizes.append(n)
    assert sizes[-1] > sizes[0] > 0, sizes
    assert time.monotonic() - started < 80


def test_second_writer_gets_a_clear_error_and_readers_still_read(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    with LedgerDB(path, create=True) as db:
        db.append_blocks(ChainBuilder(SK).chain(3))
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom mcnode.ledger import LedgerDB\n"
         "db = LedgerDB(sys.argv[1]); print('ready', flush=True); time.sleep(60)",
         str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        with pytest.raises(LedgerLockedError, match=f"another process \\(pid {holder.pid}\\)"):
            LedgerDB(path)
        with LedgerDB(path, readonly=True) as reader:
            assert reader.num_blocks() == 3
        result = CliRunner().invoke(
            main, ["ledger", "import", "--archive", str(tmp_path), "--ledger", str(path),
                   "--any-signer"],
        )  # fmt: skip
        assert result.exit_code == 2
        assert result.output.strip().splitlines() == [
            f"error: {path}: ledger is open for writing by another process (pid {holder.pid})"
        ]
    finally:
        holder.kill()
        holder.wait()
    LedgerDB(path).close()  # free again


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger"
    with LedgerDB(path, create=True) as db:
        db.append_blocks(ChainBuilder(SK).chain(40, outputs=4))
    return path


def _verify_cli(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["ledger", "verify", "--ledger", str(path)])
    assert isinstance(result.exception, SystemExit | None), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.mark.parametrize("keep", [0.5, 0.1, 4096])
def test_truncated_file_is_reported_not_a_traceback(ledger: Path, keep: float) -> None:
    data = ledger / "data.mdb"
    size = data.stat().st_size
    os.truncate(data, int(size * keep) if keep < 1 else int(keep))
    with pytest.raises(LedgerCorruptError):
        LedgerDB(ledger, readonly=True)
    code, out = _verify_cli(ledger)
    assert code == 1 and out.startswith("error: ") and len(out.strip().splitlines()) == 1


def test_garbage_file_is_reported(ledger: Path) -> None:
    data = ledger / "data.mdb"
    data.write_bytes(random.Random(1).randbytes(data.stat().st_size))
    with pytest.raises(LedgerCorruptError, match="not a readable LMDB file"):
        LedgerDB(ledger, readonly=True)
    with pytest.raises(LedgerCorruptError):
        LedgerDB(ledger)
    assert _verify_cli(ledger)[0] == 1


def test_flipped_byte_in_a_txout_fails_verify(ledger: Path) -> None:
    with LedgerDB(ledger, readonly=True) as db:
        target = db.get_tx_out(77).to_bytes()
    data = ledger / "data.mdb"
    raw = bytearray(data.read_bytes())
    at = raw.find(target)
    assert at > 0
    raw[at + 50] ^= 0x01
    data.write_bytes(bytes(raw))
    code, out = _verify_cli(ledger)
    assert code == 1 and "FAILED after 19 good blocks" in out and "block 19" in out


def test_foreign_lmdb_is_not_a_ledger(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path / "x"), max_dbs=2)
    with env.begin(write=True) as txn:
        txn.put(b"hello", b"world")
    env.close()
    for readonly in (True, False):
        with pytest.raises(LedgerCorruptError, match="not an mcnode ledger"):
            LedgerDB(tmp_path / "x", readonly=readonly)
