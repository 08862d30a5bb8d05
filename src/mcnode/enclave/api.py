"""The narrow interface between the host (`node/`) and the enclave.

Everything crossing it is bytes, ints or frozen dataclasses of them, so that the same
calls can later cross a process boundary unchanged: `Enclave` (in-process) is the first
implementation of `EnclaveApi`, a proxy to a separate enclave process will be the next.
What comes back to the host is only ever a `WellFormedTxContext`, ciphertext, or a
redacted `BlockData`: never a ring, an amount or a memo.

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


PEER_AUTH_DOMAIN = b"mcnode peer auth v1"


def peer_auth_message(transcript: bytes) -> bytes:
    """What a host signs with its consensus-message key to vouch for its enclave's
    handshake message: the domain and the Noise handshake hash right after the message."""
    return PEER_AUTH_DOMAIN + transcript


@dataclass(frozen=True, slots=True)
class PeerHandshake:
    """A Noise IX handshake message to send to a peer, and its transcript (the handshake
    hash right after it, 32 bytes), which our host signs."""

    message: bytes
    transcript: bytes


@dataclass(frozen=True, slots=True)
class PeerEnclave:
    """What a peer's handshake proved: its enclave's X25519 identity (Noise static key)
    and the Ed25519 key that enclave signs blocks with."""

    identity: bytes
    block_signer: bytes


@dataclass(frozen=True, slots=True)
class FormedBlock:
    """What `form_block` made: the signed block (None when no transaction survived the
    checks), the tx hashes in it, and those dropped with the reason."""

    block_data: BlockData | None
    included: tuple[bytes, ...]
    dropped: tuple[tuple[bytes, ProposeTxResult], ...]


class EnclaveApi(ABC):
    """The calls the host makes into the enclave. Errors are `EnclaveError`s; refusals of
    a transaction are `ProposeTxError`s carrying a `ProposeTxResult`."""

    @property
    @abstractmethod
    def identity_public_key(self) -> bytes:
        """X25519 public key clients and peers authenticate the enclave by."""

    @property
    @abstractmethod
    def block_signing_public_key(self) -> bytes:
        """Ed25519 public key that signs the blocks this enclave forms."""

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
    def peer_initiate(self, peer_name: str, expected_identity: bytes | None = None) -> bytes:
        """Start a Noise IX handshake with a peer enclave: the first message."""

    @abstractmethod
    def peer_accept(
        self, peer_name: str, msg1: bytes, expected_identity: bytes | None = None
    ) -> bytes:
        """Answer a peer's IX first message; the session is established on our side."""

    @abstractmethod
    def peer_complete(self, peer_name: str, msg2: bytes) -> None:
        """Finish a handshake we initiated with the peer's answer."""

    @abstractmethod
    def peer_identity(self, peer_name: str) -> bytes:
        """The identity key the established session with `peer_name` authenticated."""

    @abstractmethod
    def txs_for_peer(self, peer_name: str, tx_hashes: Sequence[bytes]) -> bytes:
        """The cached txs among `tx_hashes`, sealed for the peer (unknown ones skipped)."""

    @abstractmethod
    def peer_tx_propose(self, peer_name: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        """Open a batch from a peer, validate and cache each tx: contexts of those valid."""

    # -- transactions and blocks -------------------------------------------------------

    @abstractmethod
    def tx_is_well_formed(self, tx_hash: bytes, block_index: int) -> WellFormedTxContext:
        """Re-check a cached tx against the ledger now, for inclusion in `block_index`."""

    @abstractmethod
    def form_block(self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int) -> FormedBlock:
        """The signed block after `parent` from these cached txs, in this order."""

    @abstractmethod
    def forget(self, tx_hashes: Sequence[bytes]) -> None:
        """Drop cached txs (unknown hashes are ignored)."""

    @abstractmethod
    def cached_tx_hashes(self) -> frozenset[bytes]:
        """Hashes of every tx the enclave holds."""
