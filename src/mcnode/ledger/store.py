"""The ledger's LMDB environment: opening it, its tables, the one-writer lock, map growth,
and the error edge.

Tables (LMDB named databases; integers are 8-byte big-endian keys, `int_key`, so that
LMDB's byte order is numeric order):

    meta              b"format" -> FORMAT
    blocks            block index -> Block encoding
    contents          block index -> the block's key images (its outputs live in tx_outs)
    signatures        block index -> BlockSignature encoding (no entry for the origin)
    key_images        key image -> block index
    tx_outs           global TxOut index -> TxOut encoding
    txo_by_public_key output public key -> global TxOut index
    txo_by_hash       leaf hash of the TxOut -> global TxOut index
    merkle            level (1 byte) || index -> node hash, levels >= 1 (`merkle_store`)

Rules of this file: one environment per ledger directory, `sync=True`; a second writer is
refused by an exclusive `flock` on `writer.lock` (LMDB alone would make it wait); readers
open read-only and may run beside the writer. A write is one LMDB write transaction,
retried whole on a doubled map when the map is full. Everything LMDB or a decoder throws
becomes a `LedgerError` of one line naming the directory (`edge`, `edge_iter`, `write`).
This file knows table names and key encodings, never what a record means: no blocks, no
TxOuts, no Merkle tree.
"""

from __future__ import annotations

import fcntl
import functools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ParamSpec, TypeVar

import lmdb

from mcnode.ledger.errors import (
    LedgerCorruptError,
    LedgerError,
    LedgerLockedError,
    LedgerNotFoundError,
)
from mcnode.transaction.errors import DecodeError

FORMAT = b"mcnode-ledger 1"
DATA_FILE = "data.mdb"
WRITER_LOCK_FILE = "writer.lock"
#: Initial LMDB map size; doubled whenever a write finds it full.
DEFAULT_MAP_SIZE = 1 << 32
TABLES = (
    "meta",
    "blocks",
    "contents",
    "signatures",
    "key_images",
    "tx_outs",
    "txo_by_public_key",
    "txo_by_hash",
    "merkle",
)
_CORRUPT = (
    lmdb.CorruptedError,
    lmdb.InvalidError,
    lmdb.PageNotFoundError,
    lmdb.VersionMismatchError,
    lmdb.BadTxnError,
    lmdb.BadValsizeError,
    lmdb.InvalidParameterError,
    lmdb.PanicError,
)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def int_key(n: int) -> bytes:
    """The key of block, TxOut or node index `n`."""
    return n.to_bytes(8, "big")


def key_int(key: bytes) -> int:
    """The index an `int_key` record holds."""
    if len(key) != 8:
        raise DecodeError("index record is not 8 bytes")
    return int.from_bytes(key, "big")


def _describe(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _damaged(path: object, e: BaseException) -> LedgerCorruptError:
    return LedgerCorruptError(f"{path}: ledger data is damaged: {_describe(e)}")


def edge(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn what LMDB and the decoders raise in a method into `LedgerCorruptError`, with
    the path of the method's object."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except LedgerError:
            raise
        except (lmdb.Error, DecodeError) as e:
            raise _damaged(getattr(args[0], "path", "?"), e) from e

    return wrapper


def edge_iter(fn: Callable[P, Iterator[T]]) -> Callable[P, Iterator[T]]:
    """`edge` for a generator method: errors surface as it is iterated."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Iterator[T]:
        try:
            yield from fn(*args, **kwargs)
        except LedgerError:
            raise
        except (lmdb.Error, DecodeError) as e:
            raise _damaged(getattr(args[0], "path", "?"), e) from e

    return wrapper


class LedgerStore:
    """One ledger directory's LMDB environment and table handles (`tables[name]`)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        create: bool = False,
        map_size: int = DEFAULT_MAP_SIZE,
    ) -> None:
        self.path = Path(path)
        # LMDB's handle of each table (its stubs call the type `_Database`).
        self.tables: dict[str, lmdb._Database] = {}
        self._lock_fd: int | None = None
        self._env: lmdb.Environment | None = None
        data_file = self.path / DATA_FILE
        fresh = not data_file.exists()
        if fresh and (readonly or not create):
            raise LedgerNotFoundError(
                f"{self.path}: no ledger here (no {DATA_FILE}): create a network's origin "
                f"ledger with `mcnode ledger init`, or copy the network's origin ledger "
                f"directory here"
            )
        if create and not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        if not readonly:
            self._lock_fd = _lock_writer(self.path / WRITER_LOCK_FILE)
        try:
            self._env = self._open_env(readonly, map_size, fresh)
        except BaseException:
            self._release_lock()
            raise

    def _open_env(self, readonly: bool, map_size: int, fresh: bool) -> lmdb.Environment:
        try:
            env = lmdb.open(
                str(self.path),
                map_size=map_size,
                max_dbs=len(TABLES) + 1,
                readonly=readonly,
                lock=True,
                sync=True,
                metasync=True,
                readahead=False,
                create=False,
            )
        except _CORRUPT as e:
            raise LedgerCorruptError(
                f"{self.path}: {DATA_FILE} is not a readable LMDB file: {_describe(e)}"
            ) from e
        except lmdb.Error as e:
            raise LedgerError(f"{self.path}: cannot open ledger: {_describe(e)}") from e
        try:
            self._check_not_truncated(env)
            # All tables and the format mark in one transaction: a crash while creating
            # leaves no half-made ledger.
            if fresh:
                with env.begin(write=True) as txn:
                    self.tables = {name: env.open_db(name.encode(), txn=txn) for name in TABLES}
                    txn.put(b"format", FORMAT, db=self.tables["meta"])
            else:
                self.tables = {name: env.open_db(name.encode(), create=False) for name in TABLES}
        except lmdb.NotFoundError as e:
            env.close()
            raise LedgerCorruptError(
                f"{self.path}: not an mcnode ledger (tables missing; created by something "
                f"else or by an older version?)"
            ) from e
        except (lmdb.Error, LedgerError) as e:
            env.close()
            if isinstance(e, LedgerError):
                raise
            raise _damaged(self.path, e) from e
        with env.begin() as txn:
            fmt = txn.get(b"format", db=self.tables["meta"])
        if fmt != FORMAT:
            env.close()
            raise LedgerCorruptError(
                f"{self.path}: not an mcnode ledger of format {FORMAT.decode()} (found {fmt!r})"
            )
        return env

    def _check_not_truncated(self, env: lmdb.Environment) -> None:
        # LMDB maps the file; touching a page past its end would kill us with SIGBUS.
        used = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        size = (self.path / DATA_FILE).stat().st_size
        if size < used:
            raise LedgerCorruptError(
                f"{self.path}: {DATA_FILE} is truncated ({size} bytes, the ledger needs {used})"
            )

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        self._release_lock()

    def begin(self) -> lmdb.Transaction:
        """A read transaction: one consistent view until it ends."""
        env = self._open()
        try:
            return env.begin()
        except lmdb.MapResizedError:
            env.set_mapsize(0)  # the writer grew the map: adopt its size
            return env.begin()

    def must(self, txn: lmdb.Transaction, table: str, key: bytes, what: str) -> bytes:
        """The record at `key`, which the ledger's own invariants say is there."""
        value = txn.get(key, db=self.tables[table])
        if value is None:
            raise LedgerCorruptError(f"{self.path}: {what} is missing from table {table}")
        return value

    def write(self, put: Callable[[lmdb.Transaction], T]) -> T:
        """Run `put` in one write transaction and commit: all of it or nothing. A full map
        is doubled and `put` run again from the start, so `put` must change nothing but
        the transaction. Returns what `put` returned, once committed."""
        env = self._open()
        while True:
            try:
                with env.begin(write=True) as txn:
                    return put(txn)
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)
            except LedgerError:
                raise
            except (lmdb.Error, DecodeError) as e:
                raise LedgerCorruptError(f"{self.path}: cannot write block: {_describe(e)}") from e

    def _open(self) -> lmdb.Environment:
        if self._env is None:
            raise LedgerError(f"{self.path}: ledger is closed")
        return self._env


def _lock_writer(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        finally:
            os.close(fd)
        raise LedgerLockedError(
            f"{path.parent}: ledger is open for writing by another process (pid {holder})"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
