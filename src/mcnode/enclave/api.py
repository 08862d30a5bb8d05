"""The narrow interface between the host (`node/`) and the enclave.

Everything crossing it is bytes, ints or frozen dataclasses of them, so that the same
calls cross the process boundary unchanged: `Enclave` is the in-process implementation
(tests, tools), the enclave process (`server`) serves the same calls over `ipc`, and the
host reaches it through a proxy. What comes back to the host is only ever a
`WellFormedTxContext`, ciphertext, a handshake message, public keys, or a redacted
`BlockData`: never a ring, an amount or a memo.

Peer sessions are authenticated twice. By attestation, unless the enclave runs with
attestation "off": each enclave's handshake payload carries evidence bound to the
handshake and to its keys, checked against the other's policy (`attestation`, `peers`).
And by the hosts' consensus-message keys (Ed25519): each
side's host signs `peer_auth_message(transcript)`, the Noise handshake hash right after
its enclave's handshake message, and the other enclave checks that signature under the
key its own host configured for that peer. So only a configured peer's enclave, vouched
for by that peer's host, gets a session (and, with it, plaintext txs).

`EnclaveLedger` is what the enclave reads from the ledger (a `LedgerDB` provides it). It
is read-only: appending blocks stays with the host.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NewType, Protocol

from mcnode.enclave.errors import ProposeTxResult
from mcnode.ledger.block import Block, BlockContents, BlockData
from mcnode.transaction.membership import MerkleRoot
from mcnode.transaction.validation import LedgerView, WellFormedTxContext

#: Opaque handle of a client session (16 random bytes), chosen by the enclave.
SessionId = NewType("SessionId", bytes)


class EnclaveLedger(LedgerView, Protocol):
    """The read-only ledger questions the enclave asks (`ledger.LedgerDB` answers them)."""

    def num_blocks(self) -> int: ...

    def last_block(self) -> Block | None: ...

    def root_for_size(self, size: int) -> MerkleRoot:
        """Root of the TxOut tree when it held `size` TxOuts; `ledger.NotInLedger` if no
        block ended at that size."""
        ...

    def next_block(self, contents: BlockContents) -> Block:
        """The block that would follow the last one with `contents` (its Merkle root)."""
        ...


#: What a host's consensus-message signature over a peer handshake transcript covers.
PEER_AUTH_CONTEXT = b"mcnode peer auth v1"
TRANSCRIPT_BYTES = 32
#: Most tx hashes one fetch request may name.
MAX_FETCH_HASHES = 10_000


def peer_auth_message(transcript: bytes) -> bytes:
    """What a host signs with its consensus-message key to vouch for its enclave's
    handshake message: b"mcnode peer auth v1" + transcript (the 32-byte Noise handshake
    hash right after that message)."""
    if len(transcript) != TRANSCRIPT_BYTES:
        raise ValueError(f"a handshake transcript is {TRANSCRIPT_BYTES} bytes")
    return PEER_AUTH_CONTEXT + transcript


@dataclass(frozen=True, slots=True)
class PeerHandshake:
    """A peer handshake message to send, and what the host signs for it."""

    #: the Noise IX handshake message to send to the peer
    message: bytes
    #: 32 bytes: the Noise handshake hash right after this message; the host signs
    #: `peer_auth_message(transcript)`
    transcript: bytes


@dataclass(frozen=True, slots=True)
class PeerEnclave:
    """What a peer handshake proved about the peer's enclave."""

    #: the peer enclave's X25519 static key (proven by the Noise handshake)
    identity: bytes
    #: the Ed25519 key the peer enclave signs blocks with (from its handshake payload)
    block_signer: bytes
    #: the MRENCLAVE its verified evidence named (32 zero bytes when not attested)
    mrenclave: bytes = bytes(32)
    #: its evidence verified under our policy and binds this handshake and both keys
    #: (False only when our attestation mode is "off": we neither require nor check it)
    attested: bool = False
    #: that evidence chained to a simulated root, not Intel's: no hardware protection
    simulated: bool = False


@dataclass(frozen=True, slots=True)
class HardeningStep:
    """One step the enclave process took at start to keep the host out of it."""

    #: stable name: "inherited_fds_closed", "not_dumpable", "no_new_privs",
    #: "no_core_dumps", "no_network"
    name: str
    applied: bool
    #: why it did not apply (an errno name), or what it did ("closed 3 fds"); no secrets
    detail: str


@dataclass(frozen=True, slots=True)
class EnclaveIdentity:
    """What the enclave process says about itself (the `IDENTITY` call of `ipc`)."""

    identity_public_key: bytes
    block_signing_public_key: bytes
    #: MRENCLAVE: SHA-256 over the code the enclave process runs (`measure.measure`)
    measurement: bytes
    #: MRSIGNER of the `.css` the process started with (`css.Css.mrsigner`); 32 zero
    #: bytes (`css.NO_MRSIGNER`) when it started without one: an unsigned build
    mrsigner: bytes
    #: ISV product id and security version signed in that `.css` (0 and 0 without one)
    isv_prod_id: int
    isv_svn: int
    pid: int
    hardening: tuple[HardeningStep, ...]
    #: "off" (no evidence offered or required) or "sim" (simulated SGX evidence)
    attestation_mode: str = "off"
    #: unix seconds when the collateral it serves now expires (it remakes it well
    #: before); 0 when off
    evidence_expires: int = 0


@dataclass(frozen=True, slots=True)
class FormedBlock:
    """What `form_block` made: the signed block (None when no transaction survived the
    checks), the tx hashes in it, and those dropped with the reason."""

    block_data: BlockData | None
    included: tuple[bytes, ...]
    dropped: tuple[tuple[bytes, ProposeTxResult], ...]


class EnclaveApi(ABC):
    """The calls the host makes into the enclave. Errors are `EnclaveError`s; refusals of
    a transaction are `ProposeTxError`s carrying a `ProposeTxResult`.

    Peer sessions are named by labels the host chooses ("out:<peer>" for the session we
    initiated, "in:<peer>" for the one the peer initiated); the enclave treats them as
    opaque. Tx hashes are 32 bytes."""

    @property
    @abstractmethod
    def identity_public_key(self) -> bytes:
        """X25519 public key clients and peers authenticate the enclave by."""

    @property
    @abstractmethod
    def block_signing_public_key(self) -> bytes:
        """Ed25519 public key that signs the blocks this enclave forms (the enclave's own,
        generated inside it)."""

    # -- clients -----------------------------------------------------------------------

    @abstractmethod
    def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]:
        """Answer a client's Noise NX first message: a new session and the reply."""

    @abstractmethod
    def client_tx_propose(self, session: SessionId, ciphertext: bytes) -> WellFormedTxContext:
        """Decrypt, decode and fully validate a client's tx; cache it; its context."""

    @abstractmethod
    def client_close(self, session: SessionId) -> None:
        """Forget a client session (unknown ids are ignored)."""

    # -- peers -------------------------------------------------------------------------

    @abstractmethod
    def peer_initiate(self, label: str) -> PeerHandshake:
        """Start a Noise IX handshake with a peer enclave: message 1 (its payload is our
        handshake payload) and its transcript, which the host signs. The current session
        of `label`, if any, keeps working until `peer_complete` succeeds."""

    @abstractmethod
    def peer_accept(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> tuple[PeerHandshake, PeerEnclave]:
        """Answer a peer's message 1 if `signature` is the peer host's signature of
        `peer_auth_message(h1)` under `peer_message_key` (the key our host configured for
        that peer): message 2 with its transcript, and what the handshake proved of the
        initiator. The new session is *pending*: the current one of `label` keeps working
        until a sealed message opens under the pending one. `PeerAuthError` (and nothing
        changed) when the message or the signature does not hold."""

    @abstractmethod
    def peer_complete(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave:
        """Finish a handshake we initiated with the responder's message 2, if `signature`
        is its host's signature of `peer_auth_message(h2)` under `peer_message_key`; the
        session becomes the current one of `label`. The handshake gets one answer:
        `PeerAuthError` drops it (start again) and leaves the current session as it was."""

    @abstractmethod
    def peer_info(self, label: str) -> PeerEnclave:
        """The peer enclave of the current session of `label` (`PeerSessionError` if none)."""

    @abstractmethod
    def txs_for_peer(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        """The cached txs among `tx_hashes` as a relay batch sealed on the current session
        of `label` (unknown hashes skipped)."""

    @abstractmethod
    def seal_fetch(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        """A request for these txs (at most `MAX_FETCH_HASHES`), sealed on the current
        session of `label` (our "out" session with the peer we fetch from)."""

    @abstractmethod
    def answer_fetch(self, label: str, sealed_request: bytes) -> bytes:
        """Open a peer's fetch request on `label` (its "in" session: pending first, then
        current) and seal, on the session it opened on, a batch of the cached txs it names
        (unknown ones skipped)."""

    @abstractmethod
    def peer_tx_propose(self, label: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        """Open a batch (a relay on an "in" label, a fetch answer on an "out" one; pending
        session first, then current), validate and cache each tx: contexts of those
        valid."""

    # -- transactions and blocks -------------------------------------------------------

    @abstractmethod
    def block_appended(self, block_index: int, done: Sequence[bytes]) -> list[bytes]:
        """The ledger grew to `block_index` blocks: forget `done` (txs included or
        dropped), re-check every other cached tx for inclusion in block `block_index`,
        forget those that no longer pass, and return their hashes."""

    @abstractmethod
    def form_block(self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int) -> FormedBlock:
        """The block after `parent` from these cached txs, in this order, signed with the
        enclave's own block-signing key."""

    @abstractmethod
    def forget(self, tx_hashes: Sequence[bytes]) -> None:
        """Drop cached txs (unknown hashes are ignored)."""

    @abstractmethod
    def cached_tx_hashes(self) -> frozenset[bytes]:
        """Hashes of every tx the enclave holds."""
