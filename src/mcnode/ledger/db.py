"""`LedgerDB`: the validator's ledger in one LMDB environment (one per node directory).

The one public face of the store; each concern lives in its own module:

    store         the environment, tables, the one-writer lock, map growth, error edge
    reads         the read queries, each from one transaction (`Snapshot`)
    merkle_store  where the Merkle tree's nodes are kept
    writer        the checks of an append and its one write transaction
    rules         the rules a block must meet given only its parent

Every method here is one read transaction or one write transaction, and reports
everything LMDB or a decoder throws as one `LedgerError` line (`store.edge`). It knows
nothing of wallets: choosing rings is `client.rings`'s business.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Sequence

from mcnode.ledger.block import Block, BlockContents, BlockData, BlockSignature
from mcnode.ledger.errors import LedgerError
from mcnode.ledger.reads import Snapshot
from mcnode.ledger.store import DEFAULT_MAP_SIZE, LedgerStore, edge, edge_iter
from mcnode.ledger.writer import LedgerWriter
from mcnode.transaction.membership import MembershipProof, MerkleRoot
from mcnode.transaction.txout import TxOut


class LedgerDB:
    """The ledger store. Implements `transaction.validation.LedgerView`.

    `expected_signers`, when given, is the set of Ed25519 public keys whose signatures
    `append_block` accepts; otherwise any valid signature is accepted. `store` is the
    LMDB store underneath (raw records, for tools and tests).
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
        self.store = LedgerStore(path, readonly=readonly, create=create, map_size=map_size)
        self.path = self.store.path
        self.readonly = readonly
        self.expected_signers = None if expected_signers is None else frozenset(expected_signers)
        self._writer: LedgerWriter | None = (
            None if readonly else LedgerWriter(self.store, self.expected_signers)
        )

    def expect_signers(self, signers: Collection[bytes]) -> None:
        """From now on, accept appended blocks signed by one of `signers` only (a node
        learns its peers' enclave block signers as their sessions come up)."""
        self.expected_signers = frozenset(signers)
        if self._writer is not None:
            self._writer.expected_signers = self.expected_signers

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> LedgerDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blocks ------------------------------------------------------------------------

    @edge
    def num_blocks(self) -> int:
        tip = None if self._writer is None else self._writer.tip
        if tip is not None:  # the writer's own last commit: nobody else can write
            return tip.index + 1
        with Snapshot.read(self.store) as view:
            return view.num_blocks()

    @edge
    def last_block(self) -> Block | None:
        tip = None if self._writer is None else self._writer.tip
        if tip is not None:
            return tip
        with Snapshot.read(self.store) as view:
            return view.last_block()

    @edge
    def table_entries(self) -> dict[str, int]:
        """Number of records in each table (for reports and consistency checks)."""
        with Snapshot.read(self.store) as view:
            return view.entries()

    @edge
    def get_block(self, index: int) -> Block:
        with Snapshot.read(self.store) as view:
            return view.block(index)

    @edge
    def get_block_contents(self, index: int) -> BlockContents:
        with Snapshot.read(self.store) as view:
            return view.contents(view.block(index))

    @edge
    def get_block_signature(self, index: int) -> BlockSignature | None:
        with Snapshot.read(self.store) as view:
            view.block(index)  # NotInLedger past the end
            return view.signature(index)

    @edge
    def get_block_data(self, index: int) -> BlockData:
        with Snapshot.read(self.store) as view:
            return view.block_data(index)

    @edge_iter
    def iter_block_data(self, start: int = 0, stop: int | None = None) -> Iterator[BlockData]:
        """Blocks [start, stop) from one consistent snapshot, read with cursors."""
        with Snapshot.read(self.store) as view:
            yield from view.iter_block_data(start, stop)

    # -- TxOuts, key images, the index tables ------------------------------------------

    @edge
    def num_tx_outs(self) -> int:
        with Snapshot.read(self.store) as view:
            return view.num_tx_outs()

    @edge
    def get_tx_out(self, index: int) -> TxOut:
        with Snapshot.read(self.store) as view:
            return view.tx_out(index)

    @edge
    def get_tx_outs(self, start: int, stop: int) -> list[TxOut]:
        """TxOuts [start, stop), clipped to what the ledger holds."""
        with Snapshot.read(self.store) as view:
            return view.tx_outs(max(start, 0), min(stop, view.num_tx_outs()))

    @edge
    def get_tx_out_index_by_public_key(self, public_key: bytes) -> int:
        with Snapshot.read(self.store) as view:
            return view.tx_out_index("txo_by_public_key", public_key, "public key")

    @edge
    def get_tx_out_index_by_hash(self, tx_out_hash: bytes) -> int:
        """Index of the TxOut whose leaf hash (`membership.leaf_hash`) is `tx_out_hash`."""
        with Snapshot.read(self.store) as view:
            return view.tx_out_index("txo_by_hash", tx_out_hash, "hash")

    @edge
    def contains_key_image(self, key_image: bytes) -> bool:
        with Snapshot.read(self.store) as view:
            return view.get("key_images", key_image) is not None

    @edge
    def get_key_image_block(self, key_image: bytes) -> int | None:
        """Index of the block that spent `key_image`, or None."""
        with Snapshot.read(self.store) as view:
            return view.key_image_block(key_image)

    @edge
    def contains_output_public_key(self, public_key: bytes) -> bool:
        with Snapshot.read(self.store) as view:
            return view.get("txo_by_public_key", public_key) is not None

    # -- the Merkle tree ---------------------------------------------------------------

    @edge
    def merkle_root(self) -> MerkleRoot:
        """Root of the tree over every TxOut now in the ledger (from the stored nodes)."""
        with Snapshot.read(self.store) as view:
            return view.merkle_root()

    @edge
    def root_for_size(self, size: int) -> MerkleRoot:
        """The root of the tree when it had `size` TxOuts: recorded in the block that
        brought it there (proofs cut by this ledger always have such a size)."""
        with Snapshot.read(self.store) as view:
            return view.root_for_size(size)

    @edge
    def membership_proof(self, index: int) -> MembershipProof:
        """Proof that TxOut `index` is in the current tree (verifies against merkle_root)."""
        return self.membership_proofs([index])[0]

    @edge
    def membership_proofs(self, indices: Sequence[int]) -> list[MembershipProof]:
        """Proofs for each of `indices`, all against the same current tree."""
        with Snapshot.read(self.store) as view:
            return view.membership_proofs(indices)

    @edge
    def next_block(self, contents: BlockContents) -> Block:
        """The block that would follow the current last block with `contents` (computes
        the Merkle root the outputs lead to; writes nothing). Sign it and append."""
        with Snapshot.read(self.store) as view:
            return view.next_block(contents)

    # -- writing -----------------------------------------------------------------------

    def append_block(self, data: BlockData) -> None:
        """Check `data` against the ledger and write it in one LMDB write transaction."""
        self.append_blocks([data])

    def append_blocks(self, blocks: Sequence[BlockData]) -> None:
        """Check and write consecutive blocks in one write transaction: all or none. Raises
        the first block's `InvalidBlock` (its message names the block index)."""
        if self._writer is None:
            raise LedgerError(f"{self.path}: opened read-only")
        self._writer.append(blocks)
