"""Merkle membership proofs for ledger outputs: the interface the ledger will implement.

The tree is over the TxOuts of the ledger in order, padded with nil leaves to a power of
two. Hashes are SHA-512/256 with a one-byte domain tag:

    leaf(tx_out)   = H(0x00 || tx_out bytes)
    node(l, r)     = H(0x01 || l || r)
    nil            = H(0x02)

A `MembershipProof` names the leaf index, the number of real leaves (`size`) of the tree it
was cut from, and the sibling hashes from the leaf up. `MerkleRoot` is (size, root hash):
a proof verifies only against the root of a tree of exactly its size.
`tree_root` and `prove_membership` compute both from a list of leaf hashes, purely; the
ledger keeps them incrementally but must give the same answers.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from mcnode import _native
from mcnode.transaction.encoding import Reader, Writer
from mcnode.transaction.errors import DecodeError
from mcnode.transaction.txout import TxOut

#: Deepest tree accepted (2^48 outputs is far beyond any ledger we will see).
MAX_DEPTH = 48
#: A proof's fixed head: index (u64), size (u64), sibling count (u8), as `encode` writes.
_HEAD = struct.Struct("<QQB")


# SHA-512/256 with a one-byte domain tag: 0 leaf, 1 node, 2 nil. The tagged states are
# made once and copied per hash (half the cost of a fresh hasher on the ledger's hot path).
_TAGGED = [hashlib.new("sha512_256", bytes([tag])) for tag in range(3)]


def _h(tag: int, data: bytes) -> bytes:
    h = _TAGGED[tag].copy()
    h.update(data)
    return h.digest()


NIL_HASH = _h(2, b"")


def leaf_hash(tx_out: TxOut) -> bytes:
    return leaf_hash_of_encoding(tx_out.to_bytes())


def leaf_hash_of_encoding(encoded_tx_out: bytes) -> bytes:
    """`leaf_hash` from a TxOut's canonical encoding (the ledger has it already)."""
    return _h(0, encoded_tx_out)


def node_hash(left: bytes, right: bytes) -> bytes:
    return _h(1, left + right)


def depth_for(size: int) -> int:
    """Number of levels above the leaves in a tree of `size` real leaves."""
    return max(size - 1, 0).bit_length()


@dataclass(frozen=True, slots=True)
class MerkleRoot:
    size: int
    hash: bytes


@dataclass(frozen=True, slots=True)
class MembershipProof:
    index: int
    size: int
    siblings: tuple[bytes, ...]

    def encode(self, w: Writer) -> None:
        w.u64(self.index)
        w.u64(self.size)
        w.count(len(self.siblings), MAX_DEPTH, width=1, what="siblings")
        for s in self.siblings:
            w.fixed(s, 32)

    @classmethod
    def decode(cls, r: Reader) -> MembershipProof:
        index, size, n = _HEAD.unpack(r.fixed(_HEAD.size))  # 11 proofs per input: one read
        if n > MAX_DEPTH:
            raise DecodeError(f"{n} siblings exceed the limit of {MAX_DEPTH}")
        blob = r.fixed(32 * n)
        proof = cls(index, size, tuple([blob[i : i + 32] for i in range(0, 32 * n, 32)]))
        if not 0 <= index < size or n != depth_for(size):
            raise DecodeError("membership proof shape does not match its tree size")
        return proof

    def root_for(self, leaf: bytes) -> bytes:
        """The root this proof leads to from `leaf` (the reference for
        `_native.merkle_root_for`, which `verify` uses)."""
        acc, idx = leaf, self.index
        new_node = _TAGGED[1].copy  # node_hash, inlined
        for sibling in self.siblings:
            h = new_node()
            h.update(sibling + acc if idx & 1 else acc + sibling)
            acc = h.digest()
            idx >>= 1
        return acc

    def verify(self, tx_out: TxOut, root: MerkleRoot) -> bool:
        """True when `tx_out` is leaf `index` of the tree whose root is `root`. The hashing
        is native (one proof per ring member of every tx a validator checks: ~12 hashes
        each); `root_for` is the same in Python."""
        return (
            self.size == root.size
            and 0 <= self.index < self.size
            and len(self.siblings) == depth_for(self.size)
            and _native.merkle_root_for(tx_out.to_bytes(), self.index, self.siblings) == root.hash
        )


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    depth = depth_for(len(leaves))
    level = list(leaves) + [NIL_HASH] * ((1 << depth) - len(leaves))
    levels = [level]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def tree_root(leaves: Sequence[bytes]) -> MerkleRoot:
    """Root of the padded tree over `leaves` (NIL_HASH for an empty tree)."""
    if not leaves:
        return MerkleRoot(0, NIL_HASH)
    return MerkleRoot(len(leaves), _levels(leaves)[-1][0])


def prove_membership(leaves: Sequence[bytes], indices: Sequence[int]) -> list[MembershipProof]:
    """Proofs for each of `indices` in the tree over `leaves` (one pass over the tree)."""
    levels = _levels(leaves)
    proofs = []
    for index in indices:
        if not 0 <= index < len(leaves):
            raise IndexError(f"leaf {index} not in a tree of {len(leaves)}")
        siblings, idx = [], index
        for level in levels[:-1]:
            siblings.append(level[idx ^ 1])
            idx >>= 1
        proofs.append(MembershipProof(index, len(leaves), tuple(siblings)))
    return proofs
