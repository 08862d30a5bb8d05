"""mcnode.ledger: the validator's ledger of blocks, its LMDB store, Merkle proofs, archives.

- `block`: Block, BlockContents, BlockSignature, BlockData, their encoding, `sign_block`.
- `rules`: the rules a block must meet given its parent (`check_block_data`).
- `merkle`: the TxOut tree kept incrementally (same hashing as `transaction.membership`).
- `db`: `LedgerDB`, the ledger's one public face (implements
  `transaction.validation.LedgerView`), over `store` (the LMDB environment, tables, writer
  lock, error edge), `reads` (the read queries), `writer` (the append checks and the write
  transaction) and `merkle_store` (where the tree's nodes are kept).
- `verify`: re-check a whole ledger from its blocks.
- `archive`: export to and import from an archive (`ArchiveDestination`, local directory).
- `origin`: the origin block of a sample ledger.
- `cli`: `mcnode ledger ...`.

Rules: `block`, `rules` and `merkle` are pure (no files, no clock); only `db` and the
store modules under it, `archive` and `cli` touch files, and only `cli` reads the wall
clock. Imports point down to `transaction/` and `crypto/`, never up to `node/`, `enclave/`
or `client/`.
"""

from mcnode.ledger.block import (
    BLOCK_VERSION,
    Block,
    BlockContents,
    BlockData,
    BlockSignature,
    sign_block,
)
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import (
    ArchiveError,
    InvalidBlock,
    LedgerCorruptError,
    LedgerError,
    LedgerLockedError,
    LedgerNotFoundError,
    NotInLedger,
)
from mcnode.ledger.rules import check_block_data

__all__ = [
    "BLOCK_VERSION",
    "ArchiveError",
    "Block",
    "BlockContents",
    "BlockData",
    "BlockSignature",
    "InvalidBlock",
    "LedgerCorruptError",
    "LedgerDB",
    "LedgerError",
    "LedgerLockedError",
    "LedgerNotFoundError",
    "NotInLedger",
    "check_block_data",
    "sign_block",
]
