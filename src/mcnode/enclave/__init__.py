"""mcnode.enclave: the trusted boundary. Everything that sees a plaintext tx is here.

- `api`: `EnclaveApi`, the narrow interface the host calls (bytes and frozen dataclasses
  in and out, so it can cross a process boundary unchanged); `FormedBlock`; `SessionId`;
  `EnclaveLedger`, the read-only ledger questions the enclave asks.
- `enclave`: `Enclave`, the in-process implementation, and `EnclaveConfig`.
- `errors`: `ProposeTxResult`, the stable result codes, and the errors that carry them.
- `checks`: full validation against the ledger, re-checks, and choosing a block's txs.
- `noise`: Noise NX (clients) and IX (peer enclaves) sessions, framed transport messages.
- `client`: `ClientSession`, the client's side (wallets, tests, load generator).

Rules: the host (`node/`) only ever receives `WellFormedTxContext`s, ciphertext and
redacted `BlockData`; errors carry codes and fixed sentences; nothing here logs plaintext,
keys or session secrets, and no repr shows a key. No wall clock, no sockets, no files.
"""

from mcnode.enclave.api import EnclaveApi, EnclaveLedger, FormedBlock, SessionId
from mcnode.enclave.client import ClientSession, ServerIdentityMismatch
from mcnode.enclave.enclave import Enclave, EnclaveConfig
from mcnode.enclave.errors import (
    CapacityError,
    EnclaveError,
    MessageDecodeError,
    MessageTooLarge,
    PeerSessionError,
    ProposeTxError,
    ProposeTxResult,
    SessionError,
    StaleParent,
    TxRejected,
    UnknownTx,
)

__all__ = [
    "CapacityError",
    "ClientSession",
    "Enclave",
    "EnclaveApi",
    "EnclaveConfig",
    "EnclaveError",
    "EnclaveLedger",
    "FormedBlock",
    "MessageDecodeError",
    "MessageTooLarge",
    "PeerSessionError",
    "ProposeTxError",
    "ProposeTxResult",
    "ServerIdentityMismatch",
    "SessionError",
    "SessionId",
    "StaleParent",
    "TxRejected",
    "UnknownTx",
]
