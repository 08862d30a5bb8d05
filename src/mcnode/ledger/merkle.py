"""The TxOut Merkle tree, kept incrementally: the same tree as `transaction.membership`.

The ledger stores node (level, i) = hash of the subtree over leaves [i * 2^level,
(i + 1) * 2^level), missing leaves counted as nil, for every node that covers at least one
real leaf. Appending k leaves to a tree of n rewrites only the nodes over the new leaves:
about 2k + log2(n) nodes, so one TxOut costs O(log n) node writes and a block of 1000 about
2000. Subtrees of nil leaves are never stored; their hash per level is `NIL_HASHES`.
Proofs and roots read O(log n) nodes. Hashing (leaf/node/nil tags, padding to a power of
two) is `transaction.membership`'s, so `MembershipProof.verify` and `validate_tx` accept
what this module produces, and `tree_root`/`prove_membership` give the same answers.

`extend_tree` is the reference; the ledger writes with `append_encoded`, the same
computation in the native extension (`native/src/ledger_hash.rs`, one call per block, the
tests compare the two byte for byte). It needs only the old tree's *frontier*: for each
set bit `level` of its size, lowest first, node (level, (size >> level) - 1), the complete
subtree just left of the new leaves (`frontier_of`).

`MerkleFrontier` is the O(log n)-memory form used to re-check every block's root from the
TxOuts alone (`verify`), without trusting stored nodes or the native code.
Pure: node storage is a callable supplied by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from mcnode import _native
from mcnode.transaction.membership import (
    MAX_DEPTH,
    NIL_HASH,
    MembershipProof,
    MerkleRoot,
    depth_for,
    node_hash,
)


def _nil_hashes() -> tuple[bytes, ...]:
    out = [NIL_HASH]
    for _ in range(MAX_DEPTH):
        out.append(node_hash(out[-1], out[-1]))
    return tuple(out)


#: Hash of an all-nil subtree of each height.
NIL_HASHES = _nil_hashes()

#: Reads stored node (level, index); level 0 is the leaf hash of TxOut `index`.
NodeGetter = Callable[[int, int], bytes]


def empty_root() -> MerkleRoot:
    return MerkleRoot(0, NIL_HASH)


def extend_tree(
    get: NodeGetter, size: int, leaves: Sequence[bytes]
) -> tuple[dict[tuple[int, int], bytes], MerkleRoot]:
    """Nodes to (re)write, level 0 included, when `leaves` join a tree of `size`, and the
    new root."""
    if not leaves:
        return {}, current_root(get, size)
    start, end = size, size + len(leaves)
    changed: dict[tuple[int, int], bytes] = {(0, start + i): leaf for i, leaf in enumerate(leaves)}

    def look(level: int, index: int) -> bytes:
        node = changed.get((level, index))
        if node is not None:
            return node
        if index << level < start:
            return get(level, index)  # covers only old leaves: unchanged
        return NIL_HASHES[level]  # covers only leaves past the end

    lo, hi = start, end - 1
    for level in range(1, depth_for(end) + 1):
        lo, hi = lo >> 1, hi >> 1
        for i in range(lo, hi + 1):
            changed[(level, i)] = node_hash(look(level - 1, 2 * i), look(level - 1, 2 * i + 1))
    return changed, MerkleRoot(end, changed[(depth_for(end), 0)])


def frontier_of(get: NodeGetter, size: int) -> list[bytes]:
    """The nodes of a tree of `size` leaves that appending to it reads (see above)."""
    levels = range(size.bit_length())
    return [get(level, (size >> level) - 1) for level in levels if size >> level & 1]


class Extension(NamedTuple):
    """What appending one block's TxOuts to the tree produces (`append_encoded`). Keys are
    the ledger's storage keys: TxOut index as u64 big-endian, node as level (1 byte) ||
    index (u64 big-endian). A tuple, not a frozen dataclass: the writer makes one per
    block, and a six-field frozen dataclass costs ~1 us more to build."""

    leaves: list[bytes]  # leaf hash of each new TxOut
    keys: list[bytes]  # TxOut index key of each new TxOut
    node_keys: list[bytes]  # every rewritten node of level >= 1, in key order
    node_hashes: list[bytes]  # their hashes
    root_hash: bytes  # root of the tree after the append
    frontier: list[bytes]  # of the tree after the append
    size: int  # leaves in the tree after the append

    @property
    def root(self) -> MerkleRoot:
        return MerkleRoot(self.size, self.root_hash)


def append_encoded(size: int, frontier: Sequence[bytes], encodings: Sequence[bytes]) -> Extension:
    """`extend_tree` for TxOuts given by their canonical encodings (at least one), from the
    old tree's `frontier`, in one native call. Nodes come sorted by key."""
    return Extension(
        *_native.ledger_merkle_append(size, frontier, encodings), size + len(encodings)
    )


def current_root(get: NodeGetter, size: int) -> MerkleRoot:
    if size == 0:
        return empty_root()
    return MerkleRoot(size, get(depth_for(size), 0))


def membership_proof(get: NodeGetter, index: int, size: int) -> MembershipProof:
    """Proof that leaf `index` is in the current tree of `size` leaves."""
    if not 0 <= index < size:
        raise IndexError(f"TxOut {index} not in a tree of {size}")
    siblings = []
    for level in range(depth_for(size)):
        sib = (index >> level) ^ 1
        siblings.append(get(level, sib) if sib << level < size else NIL_HASHES[level])
    return MembershipProof(index, size, tuple(siblings))


class MerkleFrontier:
    """Roots of a growing tree from its leaves, keeping one complete subtree per level."""

    def __init__(self) -> None:
        self.size = 0
        self._left: dict[int, bytes] = {}

    def append(self, leaf: bytes) -> None:
        node, level = leaf, 0
        while self.size >> level & 1:
            node = node_hash(self._left.pop(level), node)
            level += 1
        self._left[level] = node
        self.size += 1

    def root(self) -> MerkleRoot:
        size = self.size
        if size == 0:
            return empty_root()
        depth = depth_for(size)
        if size == 1 << depth:
            return MerkleRoot(size, self._left[depth])
        acc = NIL_HASH  # the node over position `size`, which holds no real leaf
        for level in range(depth):
            if size >> level & 1:
                acc = node_hash(self._left[level], acc)
            else:
                acc = node_hash(acc, NIL_HASHES[level])
        return MerkleRoot(size, acc)
