"""`localnet.ledgerwatch`: commit times read from the validators' ledger files, which a
writer in another process appends to (as a validator does)."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import LedgerDB, LedgerError
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.localnet import ledgerwatch
from mcnode.localnet.ledgerwatch import LedgerHeights, LedgerWrites

SEED = 31
START = 3  # blocks each ledger holds before the watch starts

# The writer: rebuilds the chain up to what the ledger holds, then appends `count` more,
# one block per write transaction, `gap` seconds apart.
WRITER = f"""
import sys, time
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import LedgerDB
from mcnode.ledger.synthetic import ChainBuilder
sk, _ = ed25519_keypair(SeededRandom({SEED}))
builder = ChainBuilder(sk)
with LedgerDB(sys.argv[1]) as db:
    chain = builder.chain(db.num_blocks() + int(sys.argv[2]), outputs=2)
    for block in chain[db.num_blocks():]:
        db.append_block(block)
        time.sleep(float(sys.argv[3]))
"""


def _ledgers(tmp_path: Path, names: list[str]) -> dict[str, Path]:
    sk, _ = ed25519_keypair(SeededRandom(SEED))
    out = {}
    for name in names:
        out[name] = tmp_path / name / "ledger"
        with LedgerDB(out[name], create=True) as db:
            db.append_blocks(ChainBuilder(sk).chain(START, outputs=2))
    return out


def _append(ledger: Path, count: int, gap: float = 0.005) -> None:
    subprocess.run([sys.executable, "-c", WRITER, str(ledger), str(count), str(gap)], check=True)


def _until(predicate, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    """Wait (bounded) for what a watcher thread will see."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_heights_follow_writes_in_another_process(tmp_path: Path) -> None:
    ledgers = _ledgers(tmp_path, ["node0", "node1"])
    watch = LedgerHeights(ledgers)
    try:
        # What the ledgers held at the start is known at once.
        assert watch.height == START
        assert watch.heights == {"node0": START, "node1": START}
        watch.start()
        before = time.monotonic()
        _append(ledgers["node1"], 4, gap=0.2)
        assert _until(lambda: watch.height == START + 4), watch.heights
        assert _until(lambda: watch.heights == {"node0": START, "node1": START + 4})
        seen = [watch.seen_at(i) for i in range(START, START + 4)]
        assert all(t is not None and t >= before for t in seen), seen
        # Each block is seen as it lands, not all at once later: the writer spent 0.6 s
        # between its first block and its last.
        assert seen == sorted(seen)  # type: ignore[type-var]
        assert seen[-1] - seen[0] > 0.3, seen  # type: ignore[operator]
        # The other ledger catching up moves only its own height.
        _append(ledgers["node0"], 2)
        assert _until(lambda: watch.heights["node0"] == START + 2)
        assert watch.height == START + 4
        assert watch.seen_at(START + 4) is None
    finally:
        watch.close()
    assert watch.dbs == {}


def test_without_inotify_it_polls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_libc(*args: object, **kwargs: object) -> None:
        raise OSError("no inotify here")

    monkeypatch.setattr(ctypes, "CDLL", no_libc)
    ledgers = _ledgers(tmp_path, ["node0"])
    watch = LedgerHeights(ledgers)
    try:
        assert watch._writes.fd == -1
        watch.start()
        _append(ledgers["node0"], 3)
        assert _until(lambda: watch.height == START + 3)
        assert watch.seen_at(START + 2) is not None
    finally:
        watch.close()


def test_wait_wakes_on_a_write_and_times_out_without_one(tmp_path: Path) -> None:
    ledger = _ledgers(tmp_path, ["node0"])["node0"]
    writes = LedgerWrites([ledger])
    try:
        if writes.fd < 0:
            pytest.skip("no inotify on this system")
        assert writes.wait(0.01) is False
        _append(ledger, 1)
        assert writes.wait(5.0) is True
        assert writes.wait(0.01) is False  # what woke it was drained
    finally:
        writes.close()


def test_a_ledger_that_is_not_there_is_a_ledger_error(tmp_path: Path) -> None:
    ledgers = _ledgers(tmp_path, ["node0"])
    ledgers["node1"] = tmp_path / "node1" / "ledger"
    with pytest.raises(LedgerError):
        LedgerHeights(ledgers)


def test_settling_reads_again_after_a_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write whose commit is not yet visible is read again until it is (LMDB makes a
    commit visible in its lock file after the data file's write)."""
    ledgers = _ledgers(tmp_path, ["node0"])
    watch = LedgerHeights(ledgers)
    heights = iter([START, START, START, START + 1])

    class Late:  # the commit becomes visible on the third read after the write
        def num_blocks(self) -> int:
            return next(heights, START + 1)

        def close(self) -> None:
            pass

    woken: list[bool] = []

    def wait(timeout: float) -> bool:  # one write, then none for `timeout`
        if not woken:
            woken.append(True)
            return True
        watch._stop.wait(timeout)
        return False

    real = watch.dbs["node0"]
    watch.dbs["node0"] = Late()  # type: ignore[assignment]
    monkeypatch.setattr(watch._writes, "wait", wait)
    monkeypatch.setattr(ledgerwatch, "IDLE_SECONDS", 60.0)  # no read but the settling ones
    try:
        watch.start()
        assert _until(lambda: watch.height == START + 1)
        assert watch.seen_at(START) is not None
    finally:
        watch.close()
        real.close()
