"""mcnode.enclave: the trusted boundary. Everything that sees a plaintext tx is here.

The trusted code (it sees plaintext and keys; no wall clock, sockets or files):
- `api`: `EnclaveApi`, the narrow interface the host calls (bytes and frozen dataclasses
  in and out, so it crosses the process boundary unchanged); `FormedBlock`, `SessionId`,
  `PeerHandshake`, `PeerEnclave`, `peer_auth_message`, `EnclaveIdentity`; `EnclaveLedger`,
  the read-only ledger questions the enclave asks.
- `enclave`: `Enclave`, the implementation, and `EnclaveConfig`.
- `peers`: authenticated (and attested) sessions with peer enclaves, pending and current
  per label.
- `attestation`: the evidence the enclave puts in its handshake payloads
  (`EvidenceMaker`, `HandshakePayload`, `CodeIdentity`).
- `errors`: `ProposeTxResult`, the stable result codes, and the errors that carry them.
- `checks`: full validation against the ledger, re-checks, and choosing a block's txs.
- `noise`: Noise NX (clients) and IX (peer enclaves) sessions, framed transport messages.

The enclave process (`python -m mcnode.enclave serve`; touches files and one socket):
- `server`: serves `EnclaveApi` over an inherited socket; `hardening`: what it does at
  start to keep the host out; `measure`: the digest of the code it runs; `sealing`: its
  keys, generated inside and sealed to disk under that digest; `css`: the signed `.css`
  it checks at start (MRENCLAVE, MRSIGNER, ISV product id and SVN).
- `ipc`: the frames between host and enclave process (a pure codec).

Outside the boundary (they never see plaintext):
- `process`: a blocking proxy that starts the enclave process and implements
  `EnclaveApi` over `ipc` (tests and tools; the service has its own asyncio one).
- `client`: `ClientSession`, the client's side (wallets, tests, load generator).
- `signer`: the enclave signer's key and `sign_css`; `cli`: `mcnode enclave` (operator
  tools: measure, make a signer key, sign and show a `.css`).

Rules: the host (`node/`) only ever receives `WellFormedTxContext`s, ciphertext and
redacted `BlockData`; errors carry codes and fixed sentences; nothing here logs plaintext,
keys or session secrets, and no repr shows a key.
"""

from mcnode.enclave.api import (
    EnclaveApi,
    EnclaveIdentity,
    EnclaveLedger,
    FormedBlock,
    HardeningStep,
    PeerEnclave,
    PeerHandshake,
    SessionId,
    peer_auth_message,
)
from mcnode.enclave.attestation import CodeIdentity, HandshakePayload
from mcnode.enclave.client import ClientSession, ServerIdentityMismatch
from mcnode.enclave.enclave import Enclave, EnclaveConfig
from mcnode.enclave.errors import (
    AttestationFailed,
    CapacityError,
    EnclaveError,
    EnclaveInternalError,
    IpcError,
    MessageDecodeError,
    MessageTooLarge,
    PeerAuthError,
    PeerSessionError,
    ProposeTxError,
    ProposeTxResult,
    SealError,
    SessionError,
    StaleParent,
    TxRejected,
    UnknownTx,
)

__all__ = [
    "AttestationFailed",
    "CapacityError",
    "ClientSession",
    "CodeIdentity",
    "Enclave",
    "EnclaveApi",
    "EnclaveConfig",
    "EnclaveError",
    "EnclaveIdentity",
    "EnclaveInternalError",
    "EnclaveLedger",
    "FormedBlock",
    "HandshakePayload",
    "HardeningStep",
    "IpcError",
    "MessageDecodeError",
    "MessageTooLarge",
    "PeerAuthError",
    "PeerEnclave",
    "PeerHandshake",
    "PeerSessionError",
    "ProposeTxError",
    "ProposeTxResult",
    "SealError",
    "ServerIdentityMismatch",
    "SessionError",
    "SessionId",
    "StaleParent",
    "TxRejected",
    "UnknownTx",
    "peer_auth_message",
]
