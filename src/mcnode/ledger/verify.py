"""Re-check a whole ledger from its blocks, trusting nothing that was stored.

For every block in order: the rules of `check_block_data` against its parent (hash
chain, index, contents hash, counts, block id, signature by an expected signer), the
Merkle root recomputed from the TxOuts alone (`MerkleFrontier`), key images and output
public keys unique across the ledger, and the index tables pointing where they should.
At the end, table sizes and the stored tree's root must agree with the last block.
Stops at the first inconsistency by raising it (`InvalidBlock` or `LedgerCorruptError`);
`VerifyReport` says how far it got either way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from mcnode.ledger.block import Block
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import (
    DuplicateOutputKey,
    InvalidBlock,
    KeyImageSpent,
    LedgerCorruptError,
    MerkleRootMismatch,
    NotInLedger,
    WrongParent,
)
from mcnode.ledger.merkle import MerkleFrontier
from mcnode.ledger.rules import check_block_data
from mcnode.transaction.membership import leaf_hash


@dataclass
class VerifyReport:
    """What `verify_ledger` checked (filled as it goes, so also useful after a failure)."""

    blocks_checked: int = 0
    tx_outs: int = 0
    key_images: int = 0
    signers: dict[bytes, int] = field(default_factory=dict)
    last_block: Block | None = None


def verify_ledger(
    db: LedgerDB,
    report: VerifyReport,
    *,
    expected_signers: Collection[bytes] | None = None,
    origin_id: bytes | None = None,
    progress: Callable[[VerifyReport], None] | None = None,
) -> VerifyReport:
    """Check every block of `db`, updating `report`; raise at the first inconsistency."""
    try:
        return _verify(db, report, expected_signers, origin_id, progress)
    except NotInLedger as e:  # an index table lacks what the blocks say it holds
        raise LedgerCorruptError(f"{db.path}: index tables are incomplete: {e}") from e


def _verify(
    db: LedgerDB,
    report: VerifyReport,
    expected_signers: Collection[bytes] | None,
    origin_id: bytes | None,
    progress: Callable[[VerifyReport], None] | None,
) -> VerifyReport:
    frontier = MerkleFrontier()
    seen_images: set[bytes] = set()
    seen_keys: set[bytes] = set()
    parent: Block | None = None
    for data in db.iter_block_data():
        block, contents = data.block, data.contents
        check_block_data(data, parent, expected_signers)
        if parent is None and origin_id is not None and block.id != origin_id:
            raise WrongParent(
                f"origin block id {block.id.hex()} is not the expected {origin_id.hex()}"
            )
        for image in contents.key_images:
            if image in seen_images:
                raise KeyImageSpent(f"block {block.index}: key image {image.hex()} spent twice")
            seen_images.add(image)
            if db.get_key_image_block(image) != block.index:
                raise LedgerCorruptError(
                    f"{db.path}: key image table does not map {image.hex()} to block {block.index}"
                )
        first = block.cumulative_txo_count - len(contents.outputs)
        for offset, tx_out in enumerate(contents.outputs):
            if tx_out.public_key in seen_keys:
                raise DuplicateOutputKey(
                    f"block {block.index}: output public key {tx_out.public_key.hex()} repeats"
                )
            seen_keys.add(tx_out.public_key)
            leaf = leaf_hash(tx_out)
            frontier.append(leaf)
            index = first + offset
            if (
                db.get_tx_out_index_by_public_key(tx_out.public_key) != index
                or db.get_tx_out_index_by_hash(leaf) != index
            ):
                raise LedgerCorruptError(
                    f"{db.path}: TxOut index tables do not point at TxOut {index}"
                )
        if frontier.root() != block.root_element:
            raise MerkleRootMismatch(
                f"block {block.index}: root element does not match the tree of its TxOuts"
            )
        if data.signature is not None:
            report.signers[data.signature.signer] = report.signers.get(data.signature.signer, 0) + 1
        report.blocks_checked += 1
        report.tx_outs = block.cumulative_txo_count
        report.key_images = len(seen_images)
        report.last_block = parent = block
        if progress is not None:
            progress(report)
    if db.num_blocks() != report.blocks_checked:
        raise LedgerCorruptError(f"{db.path}: block count changed while verifying")
    stored = db.merkle_root()
    if stored != frontier.root():
        raise LedgerCorruptError(f"{db.path}: stored Merkle tree does not match the TxOuts")
    if parent is None:
        raise InvalidBlock(f"{db.path}: the ledger has no blocks")
    n = report.blocks_checked
    want = {
        "blocks": n,
        "contents": n,
        "signatures": sum(report.signers.values()),
        "key_images": report.key_images,
        "tx_outs": report.tx_outs,
        "txo_by_public_key": report.tx_outs,
        "txo_by_hash": report.tx_outs,
    }
    entries = db.table_entries()
    for table, count in want.items():
        if entries[table] != count:
            raise LedgerCorruptError(
                f"{db.path}: table {table} holds {entries[table]} records, the blocks say {count}"
            )
    return report
