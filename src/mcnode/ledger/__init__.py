"""mcnode.ledger: the validator's ledger of blocks, its LMDB store, Merkle proofs, archives.

- `block`: Block, BlockContents, BlockSignature, BlockData, their encoding, `sign_block`.
- `rules`: the rules a block must meet given its parent (`check_block_data`).
- `merkle`: the TxOut tree kept incrementally (same hashing as `transaction.membership`).
- `db`: `LedgerDB`, the LMDB store (implements `transaction.validation.LedgerView`).
- `verify`: re-check a whole ledger from its blocks.
- `archive`: export to and import from an archive (`ArchiveDestination`, local directory).
- `origin`: the origin block of a sample ledger.
- `cli`: `mcnode ledger ...`.

Rules: `block`, `rules` and `merkle` are pure (no files, no clock); only `db`, `archive`
and `cli` touch files, and only `cli` reads the wall clock. Imports point down to
`transaction/` and `crypto/`, never up to `node/`, `enclave/` or `client/`.
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
