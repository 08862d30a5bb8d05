"""mcnode.transaction: RingCT-style private transactions, both the wallet and validator side.

- `account`: AccountKey, subaddresses, PublicAddress (printable, checksummed).
- `txout`: TxOut, output creation, view-key scanning (`Scanner`).
- `membership`: MembershipProof / MerkleRoot, and the pure tree functions.
- `mlsag`: ring signatures and key images.
- `tx`: Tx, TxPrefix, TxIn, the canonical encoding and `tx_hash`.
- `builder`: TransactionBuilder.
- `validation`: the consensus rules, `validate_tx`, `validate_txs` (many at once, range
  proofs as one batch), `WellFormedTxContext`.
- `fake_ledger`: an in-memory ledger for tests, benchmarks and load generation.

Rules: deterministic given inputs (randomness only via an `rng` argument); no files,
sockets, threads or clocks; plaintext amounts and rings never leave this package and
`enclave/` (the host sees `WellFormedTxContext`).
"""

from mcnode.transaction.account import AccountKey, PublicAddress
from mcnode.transaction.builder import (
    InputCredentials,
    InsufficientFunds,
    TransactionBuilder,
    TxBuildError,
)
from mcnode.transaction.errors import DecodeError, TxValidationError
from mcnode.transaction.membership import MembershipProof, MerkleRoot
from mcnode.transaction.tx import Tx, TxIn, TxPrefix
from mcnode.transaction.txout import OwnedOutput, Scanner, TxOut
from mcnode.transaction.validation import (
    LedgerView,
    WellFormedTxContext,
    check_key_images_unspent,
    check_output_public_keys_new,
    validate_tx,
    validate_txs,
)

__all__ = [
    "AccountKey",
    "DecodeError",
    "InputCredentials",
    "InsufficientFunds",
    "LedgerView",
    "MembershipProof",
    "MerkleRoot",
    "OwnedOutput",
    "PublicAddress",
    "Scanner",
    "TransactionBuilder",
    "Tx",
    "TxBuildError",
    "TxIn",
    "TxOut",
    "TxPrefix",
    "TxValidationError",
    "WellFormedTxContext",
    "check_key_images_unspent",
    "check_output_public_keys_new",
    "validate_tx",
    "validate_txs",
]
