"""Synthetic chains: valid, signed blocks of made-up outputs, for tests and benchmarks.

The outputs are not payable (their fields are hash output, not points: the ledger stores
TxOuts without checking their curve points, as it must for redacted contents); what
matters is that the chain is valid as a ledger: parents, counts, contents hashes, Merkle
roots, signatures, fresh key images and output keys. Block `i` of a chain depends only on
(seed, i, shape), so a crashed writer and its checker can agree on the intended chain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mcnode.ledger.block import Block, BlockContents, BlockData, sign_block
from mcnode.ledger.merkle import MerkleFrontier
from mcnode.transaction.membership import leaf_hash
from mcnode.transaction.txout import E_MEMO_SIZE, TxOut


def fake_tx_out(tag: bytes) -> TxOut:
    b = hashlib.shake_256(b"mcnode synthetic txout" + tag).digest(32 * 3 + 8 + E_MEMO_SIZE)
    return TxOut(
        commitment=b[:32],
        masked_value=int.from_bytes(b[32:40], "little"),
        target_key=b[40:72],
        public_key=b[72:104],
        e_memo=b[104:],
    )


def fake_key_image(tag: bytes) -> bytes:
    return hashlib.shake_256(b"mcnode synthetic key image" + tag).digest(32)


@dataclass
class ChainBuilder:
    """Extends a chain block by block; `signing_key` signs every block after the origin."""

    signing_key: bytes
    seed: bytes = b""
    parent: Block | None = None
    _frontier: MerkleFrontier = field(default_factory=MerkleFrontier)

    def contents(self, index: int, outputs: int, key_images: int) -> BlockContents:
        tag = self.seed + index.to_bytes(8, "little")
        return BlockContents(
            tuple(fake_key_image(tag + j.to_bytes(4, "little")) for j in range(key_images)),
            tuple(fake_tx_out(tag + j.to_bytes(4, "little")) for j in range(outputs)),
        )

    def next(self, outputs: int = 1, key_images: int = 1) -> BlockData:
        """The next block: the origin (no key images, unsigned) first, then signed ones
        signed at their index (seconds)."""
        index = 0 if self.parent is None else self.parent.index + 1
        contents = self.contents(index, outputs, 0 if index == 0 else key_images)
        for tx_out in contents.outputs:
            self._frontier.append(leaf_hash(tx_out))
        block = Block.new(self.parent, contents, self._frontier.root())
        self.parent = block
        signature = None if index == 0 else sign_block(block, self.signing_key, index)
        return BlockData(block, contents, signature)

    def chain(self, n: int, outputs: int = 1, key_images: int = 1) -> list[BlockData]:
        return [self.next(outputs, key_images) for _ in range(n)]
