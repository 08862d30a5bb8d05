"""The ledger's read queries, each answered from one LMDB transaction (`Snapshot`).

Blocks, their contents and signatures, TxOuts by index, the index tables (TxOut by public
key or leaf hash, key image to block), the Merkle root, roots of earlier sizes, membership
proofs, and the block that would come next. A `Snapshot` over a read transaction sees one
consistent ledger however long it lives; the writer reads through a `Snapshot` of its
write transaction too, so both decode records one way.

Rules of this file: it writes nothing and translates no errors (`LedgerDB` wraps each
query in `store.edge`); a record the ledger's own invariants promise and that is missing
is `LedgerCorruptError`, what the caller asks for and the ledger lacks is `NotInLedger`.
It knows nothing of wallets: which TxOuts to ask for is the caller's business.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import lmdb

from mcnode.ledger import merkle
from mcnode.ledger.block import Block, BlockContents, BlockData, BlockSignature
from mcnode.ledger.errors import LedgerCorruptError, NotInLedger
from mcnode.ledger.merkle_store import node_getter
from mcnode.ledger.store import TABLES, LedgerStore, int_key, key_int
from mcnode.transaction.membership import MembershipProof, MerkleRoot
from mcnode.transaction.txout import TxOut


class Snapshot:
    """The ledger as one LMDB transaction sees it.

    `Snapshot.read(store)` opens a read transaction that the `with` block ends;
    `Snapshot(store, txn)` reads inside a transaction its caller owns (the writer's).
    """

    __slots__ = ("_db", "_store", "_txn", "path")

    def __init__(self, store: LedgerStore, txn: lmdb.Transaction) -> None:
        self._store = store
        self._txn = txn
        self._db = store.tables
        self.path = store.path

    @classmethod
    def read(cls, store: LedgerStore) -> Snapshot:
        return cls(store, store.begin())

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self._txn.abort()  # a read transaction: nothing to commit

    # -- records -----------------------------------------------------------------------

    def get(self, table: str, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._db[table])

    def must(self, table: str, key: bytes, what: str) -> bytes:
        return self._store.must(self._txn, table, key, what)

    def entries(self) -> dict[str, int]:
        """Number of records in each table."""
        return {name: self._txn.stat(self._db[name])["entries"] for name in TABLES}

    # -- blocks ------------------------------------------------------------------------

    def num_blocks(self) -> int:
        cur = self._txn.cursor(db=self._db["blocks"])
        return key_int(cur.key()) + 1 if cur.last() else 0

    def last_block(self) -> Block | None:
        cur = self._txn.cursor(db=self._db["blocks"])
        return Block.from_bytes(cur.value()) if cur.last() else None

    def block(self, index: int) -> Block:
        raw = self.get("blocks", int_key(index))
        if raw is None:
            raise NotInLedger(f"no block {index} (the ledger has {self.num_blocks()})")
        block = Block.from_bytes(raw)
        if block.index != index:
            raise LedgerCorruptError(f"{self.path}: record of block {index} holds {block.index}")
        return block

    def contents(self, block: Block) -> BlockContents:
        raw = self.must("contents", int_key(block.index), f"contents of block {block.index}")
        images = BlockContents.from_bytes(raw).key_images
        prev = self.block(block.index - 1).cumulative_txo_count if block.index else 0
        return BlockContents(images, tuple(self.tx_outs(prev, block.cumulative_txo_count)))

    def signature(self, index: int) -> BlockSignature | None:
        raw = self.get("signatures", int_key(index))
        return None if raw is None else BlockSignature.from_bytes(raw)

    def block_data(self, index: int) -> BlockData:
        block = self.block(index)
        return BlockData(block, self.contents(block), self.signature(index))

    def iter_block_data(self, start: int, stop: int | None) -> Iterator[BlockData]:
        """Blocks [start, stop), read with cursors over the blocks and TxOuts."""
        end = self.num_blocks() if stop is None else min(stop, self.num_blocks())
        if start >= end:
            return
        prev = self.block(start - 1).cumulative_txo_count if start else 0
        blocks = self._txn.cursor(db=self._db["blocks"])
        outs = self._txn.cursor(db=self._db["tx_outs"])
        if not blocks.set_key(int_key(start)):
            raise LedgerCorruptError(f"{self.path}: block {start} is missing")
        outs.set_key(int_key(prev))  # unpositioned if absent: caught below
        for expect, (key, raw) in enumerate(blocks, start):
            if expect >= end:
                break
            if key_int(key) != expect:
                raise LedgerCorruptError(f"{self.path}: block {expect} is missing")
            block = Block.from_bytes(raw)
            images = BlockContents.from_bytes(
                self.must("contents", key, f"contents of block {expect}")
            ).key_images
            n = block.cumulative_txo_count - prev
            if n < 0:
                raise LedgerCorruptError(f"{self.path}: block {expect} has a bad TxOut count")
            tx_outs = []
            for _ in range(n):
                k, v = outs.item()
                if not k or key_int(k) != prev + len(tx_outs):
                    raise LedgerCorruptError(f"{self.path}: TxOut {prev + len(tx_outs)} is missing")
                tx_outs.append(TxOut.from_bytes(v))
                outs.next()
            prev = block.cumulative_txo_count
            yield BlockData(block, BlockContents(images, tuple(tx_outs)), self.signature(expect))

    # -- TxOuts and the index tables -----------------------------------------------------

    def num_tx_outs(self) -> int:
        last = self.last_block()
        return 0 if last is None else last.cumulative_txo_count

    def tx_out(self, index: int) -> TxOut:
        raw = self.get("tx_outs", int_key(index))
        if raw is None:
            raise NotInLedger(f"no TxOut {index} (the ledger has {self.num_tx_outs()})")
        return TxOut.from_bytes(raw)

    def tx_outs(self, start: int, stop: int) -> list[TxOut]:
        """TxOuts [start, stop), every one of which the ledger must hold."""
        if start >= stop:
            return []
        cur = self._txn.cursor(db=self._db["tx_outs"])
        out: list[TxOut] = []
        if cur.set_key(int_key(start)):
            for key, value in cur:
                if len(out) == stop - start:
                    break
                if key_int(key) != start + len(out):
                    break
                out.append(TxOut.from_bytes(value))
        if len(out) != stop - start:
            raise LedgerCorruptError(
                f"{self.path}: TxOuts {start + len(out)}..{stop - 1} are missing"
            )
        return out

    def tx_out_index(self, table: str, key: bytes, what: str) -> int:
        """The TxOut index that `table` (txo_by_public_key, txo_by_hash) files `key` under."""
        raw = self.get(table, key)
        if raw is None:
            raise NotInLedger(f"no TxOut with {what} {key.hex()}")
        return key_int(raw)

    def key_image_block(self, key_image: bytes) -> int | None:
        raw = self.get("key_images", key_image)
        return None if raw is None else key_int(raw)

    # -- the Merkle tree ---------------------------------------------------------------

    def nodes(self) -> merkle.NodeGetter:
        return node_getter(self._store, self._txn)

    def merkle_root(self) -> MerkleRoot:
        return merkle.current_root(self.nodes(), self.num_tx_outs())

    def root_for_size(self, size: int) -> MerkleRoot:
        """Binary search of the blocks for the one that ended at `size` TxOuts."""
        lo, hi = 0, self.num_blocks() - 1
        while lo <= hi:
            mid = (lo + hi) // 2
            block = self.block(mid)
            if block.cumulative_txo_count == size:
                return block.root_element
            if block.cumulative_txo_count < size:
                lo = mid + 1
            else:
                hi = mid - 1
        raise NotInLedger(f"no block ends with {size} TxOuts")

    def membership_proofs(self, indices: Sequence[int]) -> list[MembershipProof]:
        size, get = self.num_tx_outs(), self.nodes()
        try:
            return [merkle.membership_proof(get, i, size) for i in indices]
        except IndexError as e:
            raise NotInLedger(str(e)) from e

    def next_block(self, contents: BlockContents) -> Block:
        parent = self.last_block()
        size = 0 if parent is None else parent.cumulative_txo_count
        if contents.outputs:
            frontier = merkle.frontier_of(self.nodes(), size)
            encoded = [o.to_bytes() for o in contents.outputs]
            root = merkle.append_encoded(size, frontier, encoded).root
        else:
            root = merkle.current_root(self.nodes(), size)
        return Block.new(parent, contents, root)
