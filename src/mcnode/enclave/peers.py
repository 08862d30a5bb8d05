"""Sessions with peer enclaves: authenticated Noise IX handshakes, and the sessions of
each label.

Rules of this file:
- A session with a peer enclave exists only once the peer's host has signed the Noise
  handshake transcript (`api.peer_auth_message`) with the consensus-message key our host
  configured for that peer. A handshake message, payload or signature that does not hold
  is a `PeerAuthError` that changes nothing.
- Each label holds at most one handshake we initiated (waiting for its answer), one
  *pending* session (accepted, not yet used by the peer) and one *current* session.
  A new session never disturbs the current one until it is used: a sealed message tries
  the pending session first (which becomes current if the message opens under it), then
  the current one. `noise.Transport.open` is all or nothing, so a failed try costs
  nothing, and a replayed message 1 (validly signed, copied off the wire) only makes a
  pending session that nobody can use while the real peer's session carries on.
- `max_sessions` bounds the labels (each holds at most the three things above), pending
  sessions included.

The handshake payload each enclave sends is `HandshakePayload`, versioned so that later
versions can append attestation evidence. This file knows nothing of transactions,
ledgers or blocks. It holds session secrets: it logs nothing and no repr shows a key.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from mcnode import binary
from mcnode.crypto.signing import ed25519_verify
from mcnode.enclave.api import PeerEnclave, PeerHandshake, peer_auth_message
from mcnode.enclave.errors import (
    CapacityError,
    MessageDecodeError,
    PeerAuthError,
    PeerSessionError,
    SessionError,
)
from mcnode.enclave.noise import PEER_PROLOGUE, PEER_PROTOCOL, Handshake, Transport, sealed_size

HANDSHAKE_PAYLOAD_VERSION = 1


@dataclass(frozen=True, slots=True)
class HandshakePayload:
    """What an enclave says of itself in its handshake message:
    `u8 version (1) || block signer (32 bytes)`. Unknown versions are refused."""

    block_signer: bytes

    def to_bytes(self) -> bytes:
        w = binary.Writer()
        w.u8(HANDSHAKE_PAYLOAD_VERSION)
        w.fixed(self.block_signer, 32)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> HandshakePayload:
        """`binary.DecodeError` unless `data` is exactly one payload of a known version."""
        return binary.Reader.whole(data, cls._decode)

    @classmethod
    def _decode(cls, r: binary.Reader) -> HandshakePayload:
        version = r.u8()
        if version != HANDSHAKE_PAYLOAD_VERSION:
            raise binary.DecodeError(f"unknown handshake payload version {version}")
        return cls(r.fixed(32))


@dataclass(slots=True)
class _Session:
    transport: Transport
    peer: PeerEnclave


@dataclass(slots=True)
class _Label:
    handshake: Handshake | None = None
    pending: _Session | None = None
    current: _Session | None = None

    def empty(self) -> bool:
        return self.handshake is None and self.pending is None and self.current is None


class PeerSessions:
    """Every peer session of one enclave, by label. Not thread-safe: the enclave's lock
    covers every call."""

    def __init__(self, identity_private: bytes, block_signer: bytes, max_sessions: int) -> None:
        self._identity_private = identity_private
        self._payload = HandshakePayload(block_signer).to_bytes()
        self._max = max_sessions
        self._labels: dict[str, _Label] = {}

    def __repr__(self) -> str:
        return f"<PeerSessions labels={len(self._labels)}>"

    def __len__(self) -> int:
        return len(self._labels)

    def _handshake(self, initiator: bool) -> Handshake:
        return Handshake(
            PEER_PROTOCOL, PEER_PROLOGUE, initiator=initiator, static_private=self._identity_private
        )

    def _slot_for_new(self, label: str) -> _Label:
        slot = self._labels.get(label)
        if slot is None:
            if len(self._labels) >= self._max:
                raise CapacityError(f"{len(self._labels)} peer sessions, the limit")
            slot = _Label()
        return slot

    # -- handshakes ----------------------------------------------------------------------

    def initiate(self, label: str) -> PeerHandshake:
        slot = self._slot_for_new(label)
        hs = self._handshake(initiator=True)
        message = hs.write(self._payload)
        slot.handshake = hs  # replaces a handshake still waiting: only the newest is answered
        self._labels[label] = slot
        return PeerHandshake(message, hs.transcript)

    def accept(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> tuple[PeerHandshake, PeerEnclave]:
        slot = self._slot_for_new(label)
        hs = self._handshake(initiator=False)
        block_signer = _read_vouched(hs, label, message, signature, peer_message_key)
        reply = None
        with contextlib.suppress(SessionError):
            reply = hs.write(self._payload)
        if reply is None:
            raise PeerAuthError(f"cannot answer the handshake of peer {label!r}")
        transport = hs.transport()
        peer = _peer(transport, block_signer)
        slot.pending = _Session(transport, peer)  # one pending per label: the newest
        self._labels[label] = slot
        return PeerHandshake(reply, hs.transcript), peer

    def complete(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave:
        slot = self._labels.get(label)
        hs = None if slot is None else slot.handshake
        if slot is None or hs is None:
            raise PeerSessionError(f"no handshake with peer {label!r} is waiting for a reply")
        slot.handshake = None  # a handshake gets one answer: right, or start again
        try:
            block_signer = _read_vouched(hs, label, message, signature, peer_message_key)
        except PeerAuthError:
            if slot.empty():
                del self._labels[label]
            raise
        transport = hs.transport()
        peer = _peer(transport, block_signer)
        slot.current = _Session(transport, peer)
        return peer

    # -- established sessions ------------------------------------------------------------

    def info(self, label: str) -> PeerEnclave:
        return self._current(label).peer

    def seal(self, label: str, plaintext: bytes) -> bytes:
        """`plaintext` sealed on the current session of `label`."""
        return self._current(label).transport.seal(plaintext)

    def open(self, label: str, sealed: bytes, max_plaintext: int) -> tuple[Transport, bytes]:
        """(the session it opened on, plaintext): the pending session is tried first and
        becomes current if `sealed` opens under it; then the current one. A message that
        opens under neither is a `SessionError` that changes nothing."""
        slot = self._labels.get(label)
        if slot is None or (slot.pending is None and slot.current is None):
            raise PeerSessionError(f"no session established with peer {label!r}")
        if not isinstance(sealed, bytes):
            raise SessionError("sealed message is not bytes")
        if len(sealed) > sealed_size(max_plaintext):  # the same for both: refuse once
            raise MessageDecodeError(f"message of {len(sealed)} bytes is over the limit")
        pending = slot.pending
        if pending is not None:
            try:
                plaintext = pending.transport.open(sealed, max_plaintext)
            except MessageDecodeError:
                # Authentic (it decrypted), only over the limit: the peer uses this session.
                slot.current, slot.pending = pending, None
                raise
            except SessionError:
                pass  # not sealed on the pending session; nothing moved
            else:
                slot.current, slot.pending = pending, None
                return pending.transport, plaintext
        current = slot.current
        if current is None:
            raise PeerSessionError(f"message from peer {label!r} opens under no session")
        return current.transport, current.transport.open(sealed, max_plaintext)

    def close(self, label: str) -> None:
        self._labels.pop(label, None)

    def _current(self, label: str) -> _Session:
        slot = self._labels.get(label)
        if slot is None or slot.current is None:
            raise PeerSessionError(f"no session established with peer {label!r}")
        return slot.current


def _read_vouched(
    hs: Handshake, label: str, message: bytes, signature: bytes, peer_message_key: bytes
) -> bytes:
    """Read the peer's handshake message and check that its host vouched for it: the
    block signer from its payload, or `PeerAuthError`."""
    payload = None
    with contextlib.suppress(SessionError):
        payload = hs.read(message)
    if payload is None:
        raise PeerAuthError(f"handshake message of peer {label!r} rejected")
    if not ed25519_verify(peer_message_key, peer_auth_message(hs.transcript), signature):
        raise PeerAuthError(
            f"handshake of peer {label!r} is not signed by the key configured for it"
        )
    block_signer = None
    with contextlib.suppress(binary.DecodeError):
        block_signer = HandshakePayload.from_bytes(payload).block_signer
    if block_signer is None:
        raise PeerAuthError(f"handshake payload of peer {label!r} is not one we know")
    return block_signer


def _peer(transport: Transport, block_signer: bytes) -> PeerEnclave:
    identity = transport.remote_static
    assert identity is not None  # IX always carries both static keys
    return PeerEnclave(identity, block_signer)
