"""Where the TxOut Merkle tree lives in the store: the key of each node, and reading nodes
back for `merkle`'s computations.

Node (level, index), level >= 1, is the record `node_key(level, index)` of table `merkle`:
one byte of level, then the index as `int_key`, so that a level's nodes sort in index
order. Leaves (level 0) are not stored: a leaf is the hash of the TxOut record of the
same index, computed when asked for. The native append (`merkle.append_encoded`) makes
the same keys for the nodes it rewrites (the tests hold the two together), and the writer
puts them. The tree's arithmetic (frontier, roots, proofs) is `merkle`'s; this file knows
only where the nodes are.
"""

from __future__ import annotations

import lmdb

from mcnode.ledger.merkle import NodeGetter
from mcnode.ledger.store import LedgerStore, int_key
from mcnode.transaction.membership import leaf_hash
from mcnode.transaction.txout import TxOut


def node_key(level: int, index: int) -> bytes:
    return bytes([level]) + int_key(index)


def node_getter(store: LedgerStore, txn: lmdb.Transaction) -> NodeGetter:
    """Stored node (level, index) as `txn` sees it; a missing one is damage."""

    def get(level: int, index: int) -> bytes:
        if level == 0:
            raw = store.must(txn, "tx_outs", int_key(index), f"TxOut {index}")
            return leaf_hash(TxOut.from_bytes(raw))
        return store.must(txn, "merkle", node_key(level, index), f"node {level}/{index}")

    return get
