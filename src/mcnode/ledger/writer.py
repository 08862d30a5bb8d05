"""Appending blocks: every check a block must pass against the ledger, and its records, in
one LMDB write transaction.

A block is checked by `rules.check_block_data` against its parent, then against the store
(key images not spent, output public keys and TxOut hashes new, the Merkle root its
outputs lead to), and written: blocks, contents, signatures, the index tables, TxOuts and
the rewritten Merkle nodes. A batch is one transaction: all its blocks or none, and a
crash leaves the old or the new ledger, never a mix.

Rules of this file: appends are the hot path. Each piece is made once and serves both the
checks and the records; index puts double as the duplicate checks (putmulti without
overwrite); the writer remembers the last block and the tree's frontier after its own
last commit (nobody else writes), so an append reads nothing of the old tree. No clock:
signed-at times come in with the blocks.
"""

from __future__ import annotations

import operator
from collections.abc import Collection, Sequence
from functools import partial
from itertools import repeat

import lmdb

from mcnode.ledger import merkle
from mcnode.ledger.block import (
    NO_OUTPUTS,
    Block,
    BlockData,
    contents_hash_of,
    key_images_part,
)
from mcnode.ledger.errors import DuplicateOutputKey, KeyImageSpent, MerkleRootMismatch
from mcnode.ledger.reads import Snapshot
from mcnode.ledger.rules import check_block_data
from mcnode.ledger.store import LedgerStore, int_key
from mcnode.transaction.txout import TxOut

_public_key = operator.attrgetter("public_key")
_encode = TxOut.to_bytes


class LedgerWriter:
    """Appends to a store opened for writing. `expected_signers`, when given, is the set
    of Ed25519 public keys whose block signatures it accepts; otherwise any valid one."""

    def __init__(self, store: LedgerStore, expected_signers: Collection[bytes] | None) -> None:
        self._store = store
        self._db = store.tables
        self.expected_signers = expected_signers
        #: The last block as of this writer's last commit (None before its first).
        self.tip: Block | None = None
        # The frontier of the tree after `tip`: all that the next append reads of it.
        self._frontier: list[bytes] = []

    def append(self, blocks: Sequence[BlockData]) -> None:
        """Check and write consecutive blocks in one write transaction: all or none. Raises
        the first block's `InvalidBlock` (its message names the block index)."""
        if blocks:
            # Committed: the remembered tip and frontier may move on.
            self.tip, self._frontier = self._store.write(partial(self._put_blocks, blocks))

    def _put_blocks(
        self, blocks: Sequence[BlockData], txn: lmdb.Transaction
    ) -> tuple[Block, list[bytes]]:
        if self.tip is not None:
            parent, frontier = self.tip, self._frontier
        else:
            view = Snapshot(self._store, txn)
            parent = view.last_block()
            size = 0 if parent is None else parent.cumulative_txo_count
            frontier = merkle.frontier_of(view.nodes(), size)
        for data in blocks:
            frontier = self._put_one(txn, data, parent, frontier)
            parent = data.block
        return blocks[-1].block, frontier

    def _put_one(
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
        index_key = int_key(block.index)
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
        # The native append's node keys are `merkle_store.node_key`s, in key order.
        txn.cursor(db=db["merkle"]).putmulti(zip(node_keys, node_hashes, strict=True))
        txn.put(index_key, record, db=db["blocks"], append=True)
        txn.put(index_key, images_part + NO_OUTPUTS, db=db["contents"])
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
        view = Snapshot(self._store, txn)
        for key, value in pairs:
            if view.get(table, key) != value:
                return f"{key.hex()} is already in the ledger"
        return "(unknown) is already in the ledger"
