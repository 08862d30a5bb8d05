"""The rules a block must meet given only its parent: the checks every appended or
verified block goes through before anything looks at the store.

`check_block_data` is the whole list: version, index, parent id, contents hash, TxOut
counts, block id, no empty block, and the signature (the origin block is unsigned by
rule). What needs the store (spent key images, output keys already in the ledger, the
Merkle root the outputs lead to) is the ledger writer's. This file knows blocks and
signatures only: no files, no clock, no LMDB.
"""

from __future__ import annotations

from collections.abc import Collection

from mcnode.ledger.block import (
    BLOCK_VERSION,
    DST_BLOCK_ID,
    ORIGIN_PARENT_ID,
    Block,
    BlockData,
)
from mcnode.ledger.errors import (
    BlockIdMismatch,
    ContentsHashMismatch,
    EmptyBlock,
    InvalidBlockSignature,
    TxOutCountMismatch,
    UnknownBlockVersion,
    WrongBlockIndex,
    WrongParent,
)
from mcnode.transaction.encoding import domain_hash


def check_block_data(
    data: BlockData,
    parent: Block | None,
    expected_signers: Collection[bytes] | None = None,
    contents_hash: bytes | None = None,
) -> bytes:
    """Check `data` against `parent` (None: it must be the origin); raise the first
    `InvalidBlock`. The origin block is unsigned by rule; every other block carries a
    valid signature, by one of `expected_signers` when that is given. `contents_hash`
    saves recomputing it when the caller has it.

    Returns the block's encoding (its id, then the header the id was checked to be the
    hash of): the ledger stores exactly those bytes.
    """
    block, contents = data.block, data.contents
    if block.version != BLOCK_VERSION:
        raise UnknownBlockVersion(f"block {block.index}: unknown version {block.version}")
    want_index = 0 if parent is None else parent.index + 1
    if block.index != want_index:
        raise WrongBlockIndex(f"block index {block.index}, expected {want_index}")
    want_parent = ORIGIN_PARENT_ID if parent is None else parent.id
    if block.parent_id != want_parent:
        raise WrongParent(
            f"block {block.index}: parent {block.parent_id.hex()} is not {want_parent.hex()}"
        )
    if block.contents_hash != (contents.hash() if contents_hash is None else contents_hash):
        raise ContentsHashMismatch(f"block {block.index}: contents hash does not match")
    prev = 0 if parent is None else parent.cumulative_txo_count
    if block.cumulative_txo_count != prev + len(contents.outputs):
        raise TxOutCountMismatch(
            f"block {block.index}: cumulative TxOut count {block.cumulative_txo_count}, "
            f"expected {prev + len(contents.outputs)}"
        )
    if block.root_element.size != block.cumulative_txo_count:
        raise TxOutCountMismatch(
            f"block {block.index}: root element is for {block.root_element.size} TxOuts"
        )
    header = block.header()
    if block.id != domain_hash(DST_BLOCK_ID, header):  # `Block.expected_id`
        raise BlockIdMismatch(f"block {block.index}: id is not the hash of its fields")
    if not contents.outputs:
        raise EmptyBlock(f"block {block.index} has no outputs")
    if parent is None:
        if contents.key_images:
            raise EmptyBlock("the origin block spends nothing, yet has key images")
        if data.signature is not None:
            raise InvalidBlockSignature("the origin block is unsigned by rule, yet has a signature")
        return block.id + header
    if not contents.key_images:
        raise EmptyBlock(f"block {block.index} has no key images")
    sig = data.signature
    if sig is None:
        raise InvalidBlockSignature(f"block {block.index} is not signed")
    if expected_signers is not None and sig.signer not in expected_signers:
        raise InvalidBlockSignature(
            f"block {block.index}: signer {sig.signer.hex()} is not an expected signer"
        )
    if not sig.verify(block.id):
        raise InvalidBlockSignature(f"block {block.index}: signature does not verify")
    return block.id + header
