"""When blocks land in the validators' ledgers, seen from this machine's file system.

The local network's validators keep their ledgers in LMDB files on this machine, so the
load generator and the benchmarks learn a block's commit time by watching those files
(inotify) and reading the heights read-only, instead of asking each validator over gRPC.
Asking costs the asked: a `GetLastBlockInfo` took ~1.2 ms of a validator's CPU here, and
timing commits to a few milliseconds took 25 asks per validator per second (~3 % of each
validator's CPU when idle, ~10 % of the machine's with seven). Watching costs them nothing,
and sees each commit when it happens rather than at the next ask.

Rules of this file: read-only, short read transactions (a reader never holds LMDB's old
pages for long), and nothing here ever writes to a validator's files.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from mcnode.ledger import LedgerDB, LedgerError

#: Told of a ledger's new blocks: (name, ledger, old height, new height, seen at).
OnBlocks = Callable[[str, LedgerDB, int, int, float], None]

#: inotify's event for a write to a watched file.
IN_MODIFY = 0x2
#: Without inotify (not Linux), heights are read this often.
POLL_SECONDS = 0.002
#: Heights are read at least this often even when no write was seen.
IDLE_SECONDS = 0.05
#: After a write, LMDB publishes the commit in its lock file's shared memory, which no file
#: event follows: look again this often, this many times, until the height moves.
SETTLE_SECONDS, SETTLE_TRIES = 0.0005, 20


class LedgerWrites:
    """Waits for a write to any of some LMDB ledgers' data files (inotify). Without
    inotify it waits `POLL_SECONDS` instead."""

    def __init__(self, ledgers: list[Path]) -> None:
        self.fd = -1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return
        if fd < 0:
            return
        for ledger in ledgers:
            path = str(ledger / "data.mdb").encode()
            if libc.inotify_add_watch(fd, path, IN_MODIFY) < 0:
                os.close(fd)  # a ledger we cannot watch: poll them all instead
                return
        self.fd = fd

    def wait(self, timeout: float) -> bool:
        """True after the next write, False after `timeout` without one (or at once after
        `POLL_SECONDS` without inotify). Writes seen before are drained, so only writes
        after this call wake the next one."""
        if self.fd < 0:
            time.sleep(POLL_SECONDS)
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 4096):
                pass
        return bool(ready)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class HeightFollower:
    """What a thread following the validators' heights knows: `height` (the highest),
    `heights` (each validator's last known), and when each block index was first seen
    (monotonic clock, `seen_at`). Subclasses run `_run` on the thread and call `_reached`
    with what they saw; `close` stops the thread, then calls `_release`."""

    thread_name = "heights"

    def __init__(self) -> None:
        self.height = 0
        self.heights: dict[str, int] = {}
        self._seen: dict[int, float] = {}  # block index -> when first seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def _run(self) -> None:
        raise NotImplementedError

    def _reached(self, top: int, now: float) -> bool:
        """Some validator holds `top` blocks, seen at `now`; True if that is new."""
        if top <= self.height:
            return False
        with self._lock:
            for index in range(self.height, top):
                self._seen.setdefault(index, now)
            self.height = top
            while len(self._seen) > 10_000:  # bounded: oldest first
                self._seen.pop(next(iter(self._seen)))
        return True

    def seen_at(self, index: int) -> float | None:
        with self._lock:
            return self._seen.get(index)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self._release()

    def _release(self) -> None:
        pass


class LedgerHeights(HeightFollower):
    """A thread that follows the heights of the validators' ledgers (name -> ledger
    directory) and notes when each block index was first held by any of them (monotonic
    clock). `on_blocks`, if given, is called on the watching thread whenever a ledger
    grew: (name, its read-only `LedgerDB`, old height, new height, when it was seen)."""

    thread_name = "ledger-heights"

    def __init__(self, ledgers: Mapping[str, Path], on_blocks: OnBlocks | None = None) -> None:
        super().__init__()
        self.on_blocks = on_blocks
        self.dbs: dict[str, LedgerDB] = {}
        try:
            for name, path in ledgers.items():
                self.dbs[name] = LedgerDB(Path(path), readonly=True)
        except LedgerError:
            self._close_dbs()
            raise
        self._writes = LedgerWrites([Path(p) for p in ledgers.values()])
        self._read()

    def _read(self) -> bool:
        """Read every ledger's height now; True when one moved."""
        now = time.monotonic()
        top, moved = 0, False
        for name, db in self.dbs.items():
            try:
                n = db.num_blocks()
            except LedgerError:
                continue
            before = self.heights.get(name)
            if before != n:
                moved = True
                if self.on_blocks is not None and before is not None:
                    self.on_blocks(name, db, before, n, now)
            self.heights[name] = n
            top = max(top, n)
        return self._reached(top, now) or moved

    def _run(self) -> None:
        while not self._stop.is_set():
            wrote = self._writes.wait(IDLE_SECONDS)
            if self._read() or not wrote:
                continue
            for _ in range(SETTLE_TRIES):
                time.sleep(SETTLE_SECONDS)
                if self._read():
                    break

    def _release(self) -> None:
        self._writes.close()
        self._close_dbs()

    def _close_dbs(self) -> None:
        for db in self.dbs.values():
            with contextlib.suppress(LedgerError):
                db.close()
        self.dbs.clear()
