"""The enclave as the host uses it: every call awaited, wherever the enclave runs.

Rules of this file: the host's view only. `EnclavePort` mirrors `enclave.EnclaveApi`
call for call, but each call is a coroutine: the enclave runs in its own process
(`enclave_process.EnclaveProcess`), so while it validates a transaction the host's event
loop goes on with consensus. `LocalEnclave` runs an in-process `Enclave` behind the same
port, for tests. What comes back is only ever a `WellFormedTxContext`, ciphertext, a
handshake message, a peer enclave's public keys, or a redacted, signed block.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mcnode.enclave import EnclaveApi, EnclaveError, FormedBlock, SessionId
from mcnode.enclave.api import PeerEnclave, PeerHandshake
from mcnode.ledger.block import Block
from mcnode.transaction.validation import WellFormedTxContext


class EnclaveUnavailable(EnclaveError):
    """The enclave process is not running (it died, or is being restarted)."""


class EnclavePort(Protocol):
    @property
    def identity_public_key(self) -> bytes: ...

    @property
    def block_signing_public_key(self) -> bytes: ...

    async def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]: ...

    async def client_tx_propose(
        self, session: SessionId, ciphertext: bytes
    ) -> WellFormedTxContext: ...

    async def peer_initiate(self, label: str) -> PeerHandshake: ...

    async def peer_accept(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> tuple[PeerHandshake, PeerEnclave]: ...

    async def peer_complete(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave: ...

    async def txs_for_peer(self, label: str, tx_hashes: Sequence[bytes]) -> bytes: ...

    async def seal_fetch(self, label: str, tx_hashes: Sequence[bytes]) -> bytes: ...

    async def answer_fetch(self, label: str, sealed_request: bytes) -> bytes: ...

    async def peer_tx_propose(self, label: str, ciphertext: bytes) -> list[WellFormedTxContext]: ...

    async def form_block(
        self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int
    ) -> FormedBlock: ...

    async def block_appended(self, block_index: int, done: Sequence[bytes]) -> list[bytes]: ...

    async def forget(self, tx_hashes: Sequence[bytes]) -> None: ...


class LocalEnclave:
    """An in-process `Enclave` behind the port (tests; the enclave's calls then run on
    the caller's thread, as they did before the enclave had a process of its own)."""

    def __init__(self, enclave: EnclaveApi) -> None:
        self.enclave = enclave

    @property
    def identity_public_key(self) -> bytes:
        return self.enclave.identity_public_key

    @property
    def block_signing_public_key(self) -> bytes:
        return self.enclave.block_signing_public_key

    async def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]:
        return self.enclave.client_handshake(msg1)

    async def client_tx_propose(self, session: SessionId, ciphertext: bytes) -> WellFormedTxContext:
        return self.enclave.client_tx_propose(session, ciphertext)

    async def peer_initiate(self, label: str) -> PeerHandshake:
        return self.enclave.peer_initiate(label)

    async def peer_accept(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> tuple[PeerHandshake, PeerEnclave]:
        return self.enclave.peer_accept(label, message, signature, peer_message_key)

    async def peer_complete(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave:
        return self.enclave.peer_complete(label, message, signature, peer_message_key)

    async def txs_for_peer(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        return self.enclave.txs_for_peer(label, tx_hashes)

    async def seal_fetch(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        return self.enclave.seal_fetch(label, tx_hashes)

    async def answer_fetch(self, label: str, sealed_request: bytes) -> bytes:
        return self.enclave.answer_fetch(label, sealed_request)

    async def peer_tx_propose(self, label: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        return self.enclave.peer_tx_propose(label, ciphertext)

    async def form_block(
        self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int
    ) -> FormedBlock:
        return self.enclave.form_block(tx_hashes, parent, signed_at)

    async def block_appended(self, block_index: int, done: Sequence[bytes]) -> list[bytes]:
        return self.enclave.block_appended(block_index, done)

    async def forget(self, tx_hashes: Sequence[bytes]) -> None:
        self.enclave.forget(tx_hashes)
