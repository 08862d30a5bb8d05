"""`LedgerDB`: the validator's ledger in one LMDB environment (one per node directory).

Tables (LMDB named databases; integers are 8-byte big-endian keys so that LMDB's byte
order is numeric order):

    meta              b"format" -> FORMAT
    blocks            block index -> Block encoding
    contents          block index -> the block's key images (its outputs live in tx_outs)
    signatures        block index -> BlockSignature encoding (no entry for the origin)
    key_images        key image -> block index
    tx_outs           global TxOut index -> TxOut encoding
    txo_by_public_key output public key -> global TxOut index
    txo_by_hash       leaf hash of the TxOut -> global TxOut index
    merkle            level (1 byte) || index -> node hash, levels >= 1 (leaves are hashed
                      from tx_outs on demand)

Choosing rings for a spender is wallet logic (`client.rings`), not the ledger's.

Rules: one LMDB write transaction per `append_block` (a crash leaves the old or the new
block, never a mix), `sync=True`; a second writer is refused by an exclusive `flock` on
`writer.lock` (LMDB alone would make it wait); readers open read-only and may run beside
the writer. Everything LMDB or a decoder throws at us is turned into a `LedgerError` with
one clear line at this edge. No clock: signed-at times come in with the blocks.
"""

from __future__ import annotations

import fcntl
import functools
import operator
import os
from collections.abc import Callable, Collection, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import ParamSpec, TypeVar

import lmdb

from mcnode.ledger import merkle
from mcnode.ledger.block import (
    NO_OUTPUTS,
    Block,
    BlockContents,
    BlockData,
    BlockSignature,
    contents_hash_of,
    key_images_part,
)
from mcnode.ledger.errors import (
    DuplicateOutputKey,
    KeyImageSpent,
    LedgerCorruptError,
    LedgerError,
    LedgerLockedError,
    LedgerNotFoundError,
    MerkleRootMismatch,
    NotInLedger,
)
from mcnode.ledger.rules import check_block_data
from mcnode.transaction.errors import DecodeError
from mcnode.transaction.membership import (
    MembershipProof,
    MerkleRoot,
    leaf_hash,
)
from mcnode.transaction.txout import TxOut

FORMAT = b"mcnode-ledger 1"
DATA_FILE = "data.mdb"
WRITER_LOCK_FILE = "writer.lock"
#: Initial LMDB map size; doubled whenever a write finds it full.
DEFAULT_MAP_SIZE = 1 << 32
_TABLES = (
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

_public_key = operator.attrgetter("public_key")
_encode = TxOut.to_bytes

P = ParamSpec("P")
R = TypeVar("R")


def _u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def _int(b: bytes) -> int:
    if len(b) != 8:
        raise DecodeError("index record is not 8 bytes")
    return int.from_bytes(b, "big")


def _node_key(level: int, index: int) -> bytes:
    return bytes([level]) + _u64(index)


def _edge(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn what LMDB and the decoders raise into `LedgerCorruptError`, with the path."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except LedgerError:
            raise
        except (lmdb.Error, DecodeError) as e:
            path = getattr(args[0], "path", "?")
            raise LedgerCorruptError(f"{path}: ledger data is damaged: {_describe(e)}") from e

    return wrapper


def _describe(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class LedgerDB:
    """The ledger store. Implements `transaction.validation.LedgerView`.

    `expected_signers`, when given, is the set of Ed25519 public keys whose signatures
    `append_block` accepts; otherwise any valid signature is accepted.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        create: bool = False,
        expected_signers: Collection[bytes] | None = None,
        map_size: int = DEFAULT_MAP_SIZE,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.expected_signers = None if expected_signers is None else frozenset(expected_signers)
        self._lock_fd: int | None = None
        # Writer only (nobody else writes): the last block, and the frontier of the tree
        # after it, which is all that the next append reads of the old tree.
        self._tip: Block | None = None
        self._frontier: list[bytes] = []
        data_file = self.path / DATA_FILE
        fresh = not data_file.exists()
        if fresh and (readonly or not create):
            raise LedgerNotFoundError(f"{self.path}: no ledger here (no {DATA_FILE})")
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
                max_dbs=len(_TABLES) + 1,
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
                    self._db = {name: env.open_db(name.encode(), txn=txn) for name in _TABLES}
                    txn.put(b"format", FORMAT, db=self._db["meta"])
            else:
                self._db = {name: env.open_db(name.encode(), create=False) for name in _TABLES}
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
            raise LedgerCorruptError(f"{self.path}: ledger data is damaged: {_describe(e)}") from e
        with env.begin() as txn:
            fmt = txn.get(b"format", db=self._db["meta"])
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
        env = getattr(self, "_env", None)
        if env is not None:
            env.close()
            self._env = None
        self._release_lock()

    def __enter__(self) -> LedgerDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -----------------------------------------------------------------------

    def _begin(self) -> lmdb.Transaction:
        try:
            return self._env.begin()
        except lmdb.MapResizedError:
            self._env.set_mapsize(0)  # the writer grew the map: adopt its size
            return self._env.begin()

    def _get(self, txn: lmdb.Transaction, table: str, key: bytes) -> bytes | None:
        return txn.get(key, db=self._db[table])

    def _must(self, txn: lmdb.Transaction, table: str, key: bytes, what: str) -> bytes:
        value = txn.get(key, db=self._db[table])
        if value is None:
            raise LedgerCorruptError(f"{self.path}: {what} is missing from table {table}")
        return value

    def _num_blocks(self, txn: lmdb.Transaction) -> int:
        cur = txn.cursor(db=self._db["blocks"])
        return _int(cur.key()) + 1 if cur.last() else 0

    def _last_block(self, txn: lmdb.Transaction) -> Block | None:
        cur = txn.cursor(db=self._db["blocks"])
        return Block.from_bytes(cur.value()) if cur.last() else None

    def _block(self, txn: lmdb.Transaction, index: int) -> Block:
        raw = self._get(txn, "blocks", _u64(index))
        if raw is None:
            raise NotInLedger(f"no block {index} (the ledger has {self._num_blocks(txn)})")
        block = Block.from_bytes(raw)
        if block.index != index:
            raise LedgerCorruptError(f"{self.path}: record of block {index} holds {block.index}")
        return block

    def _tx_outs(self, txn: lmdb.Transaction, start: int, stop: int) -> list[TxOut]:
        if start >= stop:
            return []
        cur = txn.cursor(db=self._db["tx_outs"])
        out: list[TxOut] = []
        if cur.set_key(_u64(start)):
            for key, value in cur:
                if len(out) == stop - start:
                    break
                if _int(key) != start + len(out):
                    break
                out.append(TxOut.from_bytes(value))
        if len(out) != stop - start:
            raise LedgerCorruptError(
                f"{self.path}: TxOuts {start + len(out)}..{stop - 1} are missing"
            )
        return out

    def _contents(self, txn: lmdb.Transaction, block: Block) -> BlockContents:
        raw = self._must(txn, "contents", _u64(block.index), f"contents of block {block.index}")
        images = BlockContents.from_bytes(raw).key_images
        prev = self._block(txn, block.index - 1).cumulative_txo_count if block.index else 0
        return BlockContents(images, tuple(self._tx_outs(txn, prev, block.cumulative_txo_count)))

    def _signature(self, txn: lmdb.Transaction, index: int) -> BlockSignature | None:
        raw = self._get(txn, "signatures", _u64(index))
        return None if raw is None else BlockSignature.from_bytes(raw)

    def _getter(self, txn: lmdb.Transaction) -> merkle.NodeGetter:
        def get(level: int, index: int) -> bytes:
            if level == 0:
                raw = self._must(txn, "tx_outs", _u64(index), f"TxOut {index}")
                return leaf_hash(TxOut.from_bytes(raw))
            return self._must(txn, "merkle", _node_key(level, index), f"node {level}/{index}")

        return get

    def _num_tx_outs(self, txn: lmdb.Transaction) -> int:
        last = self._last_block(txn)
        return 0 if last is None else last.cumulative_txo_count

    @_edge
    def num_blocks(self) -> int:
        if self._tip is not None:  # the writer's own last commit: nobody else can write
            return self._tip.index + 1
        with self._begin() as txn:
            return self._num_blocks(txn)

    @_edge
    def num_tx_outs(self) -> int:
        with self._begin() as txn:
            return self._num_tx_outs(txn)

    @_edge
    def last_block(self) -> Block | None:
        if self._tip is not None:
            return self._tip
        with self._begin() as txn:
            return self._last_block(txn)

    @_edge
    def table_entries(self) -> dict[str, int]:
        """Number of records in each table (for reports and consistency checks)."""
        with self._begin() as txn:
            return {name: txn.stat(self._db[name])["entries"] for name in _TABLES}

    @_edge
    def get_block(self, index: int) -> Block:
        with self._begin() as txn:
            return self._block(txn, index)

    @_edge
    def get_block_contents(self, index: int) -> BlockContents:
        with self._begin() as txn:
            return self._contents(txn, self._block(txn, index))

    @_edge
    def get_block_signature(self, index: int) -> BlockSignature | None:
        with self._begin() as txn:
            self._block(txn, index)
            return self._signature(txn, index)

    @_edge
    def get_block_data(self, index: int) -> BlockData:
        with self._begin() as txn:
            block = self._block(txn, index)
            return BlockData(block, self._contents(txn, block), self._signature(txn, index))

    def iter_block_data(self, start: int = 0, stop: int | None = None) -> Iterator[BlockData]:
        """Blocks [start, stop) from one consistent snapshot, read with cursors."""
        try:
            yield from self._iter_block_data(start, stop)
        except LedgerError:
            raise
        except (lmdb.Error, DecodeError) as e:
            raise LedgerCorruptError(f"{self.path}: ledger data is damaged: {_describe(e)}") from e

    def _iter_block_data(self, start: int, stop: int | None) -> Iterator[BlockData]:
        with self._begin() as txn:
            end = self._num_blocks(txn) if stop is None else min(stop, self._num_blocks(txn))
            if start >= end:
                return
            prev = self._block(txn, start - 1).cumulative_txo_count if start else 0
            blocks = txn.cursor(db=self._db["blocks"])
            outs = txn.cursor(db=self._db["tx_outs"])
            if not blocks.set_key(_u64(start)):
                raise LedgerCorruptError(f"{self.path}: block {start} is missing")
            outs.set_key(_u64(prev))  # unpositioned if absent: caught below
            for expect, (key, raw) in enumerate(blocks, start):
                if expect >= end:
                    break
                if _int(key) != expect:
                    raise LedgerCorruptError(f"{self.path}: block {expect} is missing")
                block = Block.from_bytes(raw)
                images = BlockContents.from_bytes(
                    self._must(txn, "contents", key, f"contents of block {expect}")
                ).key_images
                n = block.cumulative_txo_count - prev
                if n < 0:
                    raise LedgerCorruptError(f"{self.path}: block {expect} has a bad TxOut count")
                tx_outs = []
                for _ in range(n):
                    k, v = outs.item()
                    if not k or _int(k) != prev + len(tx_outs):
                        raise LedgerCorruptError(
                            f"{self.path}: TxOut {prev + len(tx_outs)} is missing"
                        )
                    tx_outs.append(TxOut.from_bytes(v))
                    outs.next()
                prev = block.cumulative_txo_count
                yield BlockData(
                    block, BlockContents(images, tuple(tx_outs)), self._signature(txn, expect)
                )

    @_edge
    def get_tx_out(self, index: int) -> TxOut:
        with self._begin() as txn:
            raw = self._get(txn, "tx_outs", _u64(index))
            if raw is None:
                raise NotInLedger(f"no TxOut {index} (the ledger has {self._num_tx_outs(txn)})")
            return TxOut.from_bytes(raw)

    @_edge
    def get_tx_outs(self, start: int, stop: int) -> list[TxOut]:
        """TxOuts [start, stop), clipped to what the ledger holds."""
        with self._begin() as txn:
            return self._tx_outs(txn, max(start, 0), min(stop, self._num_tx_outs(txn)))

    def _index_lookup(self, table: str, key: bytes, what: str) -> int:
        with self._begin() as txn:
            raw = self._get(txn, table, key)
            if raw is None:
                raise NotInLedger(f"no TxOut with {what} {key.hex()}")
            return _int(raw)

    @_edge
    def get_tx_out_index_by_public_key(self, public_key: bytes) -> int:
        return self._index_lookup("txo_by_public_key", public_key, "public key")

    @_edge
    def get_tx_out_index_by_hash(self, tx_out_hash: bytes) -> int:
        """Index of the TxOut whose leaf hash (`membership.leaf_hash`) is `tx_out_hash`."""
        return self._index_lookup("txo_by_hash", tx_out_hash, "hash")

    @_edge
    def contains_key_image(self, key_image: bytes) -> bool:
        with self._begin() as txn:
            return self._get(txn, "key_images", key_image) is not None

    @_edge
    def get_key_image_block(self, key_image: bytes) -> int | None:
        """Index of the block that spent `key_image`, or None."""
        with self._begin() as txn:
            raw = self._get(txn, "key_images", key_image)
            return None if raw is None else _int(raw)

    @_edge
    def contains_output_public_key(self, public_key: bytes) -> bool:
        with self._begin() as txn:
            return self._get(txn, "txo_by_public_key", public_key) is not None

    # -- the Merkle tree ---------------------------------------------------------------

    @_edge
    def merkle_root(self) -> MerkleRoot:
        """Root of the tree over every TxOut now in the ledger (from the stored nodes)."""
        with self._begin() as txn:
            return merkle.current_root(self._getter(txn), self._num_tx_outs(txn))

    @_edge
    def root_for_size(self, size: int) -> MerkleRoot:
        """The root of the tree when it had `size` TxOuts: recorded in the block that
        brought it there (proofs cut by this ledger always have such a size)."""
        with self._begin() as txn:
            lo, hi = 0, self._num_blocks(txn) - 1
            while lo <= hi:
                mid = (lo + hi) // 2
                block = self._block(txn, mid)
                if block.cumulative_txo_count == size:
                    return block.root_element
                if block.cumulative_txo_count < size:
                    lo = mid + 1
                else:
                    hi = mid - 1
            raise NotInLedger(f"no block ends with {size} TxOuts")

    @_edge
    def membership_proof(self, index: int) -> MembershipProof:
        """Proof that TxOut `index` is in the current tree (verifies against merkle_root)."""
        return self.membership_proofs([index])[0]

    @_edge
    def membership_proofs(self, indices: Sequence[int]) -> list[MembershipProof]:
        """Proofs for each of `indices`, all against the same current tree."""
        with self._begin() as txn:
            size, get = self._num_tx_outs(txn), self._getter(txn)
            try:
                return [merkle.membership_proof(get, i, size) for i in indices]
            except IndexError as e:
                raise NotInLedger(str(e)) from e

    @_edge
    def next_block(self, contents: BlockContents) -> Block:
        """The block that would follow the current last block with `contents` (computes
        the Merkle root the outputs lead to; writes nothing). Sign it and append."""
        with self._begin() as txn:
            parent = self._last_block(txn)
            size = 0 if parent is None else parent.cumulative_txo_count
            if contents.outputs:
                frontier = merkle.frontier_of(self._getter(txn), size)
                encoded = [o.to_bytes() for o in contents.outputs]
                root = merkle.append_encoded(size, frontier, encoded).root
            else:
                root = merkle.current_root(self._getter(txn), size)
        return Block.new(parent, contents, root)

    # -- writing -----------------------------------------------------------------------

    def append_block(self, data: BlockData) -> None:
        """Check `data` against the ledger and write it in one LMDB write transaction."""
        self.append_blocks([data])

    def append_blocks(self, blocks: Sequence[BlockData]) -> None:
        """Check and write consecutive blocks in one write transaction: all or none. Raises
        the first block's `InvalidBlock` (its message names the block index)."""
        if self.readonly:
            raise LedgerError(f"{self.path}: opened read-only")
        if not blocks:
            return
        while True:
            try:
                self._write(blocks)
                return
            except lmdb.MapFullError:
                self._env.set_mapsize(self._env.info()["map_size"] * 2)
            except LedgerError:
                raise
            except (lmdb.Error, DecodeError) as e:
                raise LedgerCorruptError(f"{self.path}: cannot write block: {_describe(e)}") from e

    def _write(self, blocks: Sequence[BlockData]) -> None:
        with self._env.begin(write=True) as txn:
            if self._tip is not None:
                parent, frontier = self._tip, self._frontier
            else:
                parent = self._last_block(txn)
                size = 0 if parent is None else parent.cumulative_txo_count
                frontier = merkle.frontier_of(self._getter(txn), size)
            for data in blocks:
                frontier = self._write_one(txn, data, parent, frontier)
                parent = data.block
        self._tip, self._frontier = parent, frontier  # committed: the caches may move on

    def _write_one(
        self, txn: lmdb.Transaction, data: BlockData, parent: Block | None, frontier: list[bytes]
    ) -> list[bytes]:
        """Check and put one block; the frontier of the tree after it."""
        block, contents, signature = data.block, data.contents, data.signature
        images, outputs = contents.key_images, contents.outputs
        # Each piece is made once and serves both the checks and the records: the TxOut
        # encodings (cached on the TxOuts: decoded or already hashed ones have them) feed
        # the contents hash, the leaf hashes and the tx_outs table; the key images' part of
        # the contents encoding is the contents record; the header the block id is checked
        # against is the block record.
        encoded = list(map(_encode, outputs))
        images_part = key_images_part(images)
        record = check_block_data(
            data, parent, self.expected_signers, contents_hash_of(images_part, encoded)
        )
        index_key = _u64(block.index)
        db = self._db
        # Pairs go to putmulti as lazy zips: no tuple per record is kept (zip reuses its
        # tuple), so a big block does not wake the cyclic GC; error paths rebuild them.
        _, added = txn.cursor(db=db["key_images"]).putmulti(
            zip(images, repeat(index_key)), overwrite=False
        )
        if added != len(images):
            known = self._first_known(txn, "key_images", list(zip(images, repeat(index_key))))
            raise KeyImageSpent(f"block {block.index}: key image {known}")

        start = 0 if parent is None else parent.cumulative_txo_count
        # outputs: checked non-empty
        leaves, keys, node_keys, node_hashes, root_hash, after, size = merkle.append_encoded(
            start, frontier, encoded
        )
        _, added = txn.cursor(db=db["txo_by_public_key"]).putmulti(
            zip(map(_public_key, outputs), keys, strict=True), overwrite=False
        )
        if added != len(keys):
            by_key = list(zip(map(_public_key, outputs), keys, strict=True))
            known = self._first_known(txn, "txo_by_public_key", by_key)
            raise DuplicateOutputKey(f"block {block.index}: output public key {known}")
        _, added = txn.cursor(db=db["txo_by_hash"]).putmulti(
            zip(leaves, keys, strict=True), overwrite=False
        )
        if added != len(keys):
            raise DuplicateOutputKey(f"block {block.index}: two TxOuts with the same hash")

        root = block.root_element
        if root_hash != root.hash or size != root.size:
            raise MerkleRootMismatch(
                f"block {block.index}: root element {root.hash.hex()} is not "
                f"the root {root_hash.hex()} of the tree after its outputs"
            )
        txn.cursor(db=db["tx_outs"]).putmulti(zip(keys, encoded, strict=True), append=True)
        txn.cursor(db=db["merkle"]).putmulti(zip(node_keys, node_hashes, strict=True))
        txn.put(index_key, record, db=db["blocks"], append=True)
        txn.put(index_key, images_part + NO_OUTPUTS, db=db["contents"])  # no outputs
        if signature is not None:
            txn.put(index_key, signature.to_bytes(), db=db["signatures"])
        return after

    def _first_known(
        self, txn: lmdb.Transaction, table: str, pairs: list[tuple[bytes, bytes]]
    ) -> str:
        """Which key putmulti refused: twice in the block, or already in the ledger (then
        the stored value is not the one we tried to put)."""
        seen: set[bytes] = set()
        for key, _ in pairs:
            if key in seen:
                return f"{key.hex()} appears twice in the block"
            seen.add(key)
        for key, value in pairs:
            if self._get(txn, table, key) != value:
                return f"{key.hex()} is already in the ledger"
        return "(unknown) is already in the ledger"


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
