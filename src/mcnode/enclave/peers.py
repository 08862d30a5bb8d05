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

- Attestation (unless our mode is "off", `trust` None): the peer's handshake payload
  must carry evidence (`attestation.HandshakePayload` version 2) that verifies under our
  policy at our time and whose report data binds the handshake hash before that payload,
  the static key the handshake proved and the block signer the payload names. Evidence
  missing or refused is a `PeerAuthError` with reason `attestation:<reason>`, checked
  before we answer or keep anything: exactly like a bad signature.
- The prologue (`noise.peer_prologue`) binds the network's name, minimum fee and block
  version: enclaves configured differently cannot complete a handshake.

This file knows nothing of transactions, ledgers or blocks. It holds session secrets: it
logs nothing and no repr shows a key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from mcnode import binary
from mcnode.attest.evidence import verify_bound_evidence
from mcnode.attest.policy import AttestationError, Policy, Verdict
from mcnode.crypto.signing import ed25519_verify
from mcnode.enclave.api import PeerEnclave, PeerHandshake, peer_auth_message
from mcnode.enclave.attestation import HandshakePayload, PayloadMaker
from mcnode.enclave.errors import (
    CapacityError,
    MessageDecodeError,
    PeerAuthError,
    PeerSessionError,
    SessionError,
)
from mcnode.enclave.noise import PEER_PROLOGUE, PEER_PROTOCOL, Handshake, Transport, sealed_size

__all__ = ["HandshakePayload", "PeerSessions", "PeerTrust"]

#: Longest refusal sentence quoted in a `PeerAuthError` (its message crosses `ipc`, which
#: keeps 1024 bytes, and must keep the reason at its end).
MAX_SENTENCE = 400


@dataclass(frozen=True)
class PeerTrust:
    """Whose evidence we accept: `policy`, chained to `root_ca_der` (None: Intel's root),
    at the time `now()` says."""

    policy: Policy
    root_ca_der: bytes | None
    now: Callable[[], int]


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

    def __init__(
        self,
        identity_private: bytes,
        payload: PayloadMaker,
        max_sessions: int,
        *,
        prologue: bytes = PEER_PROLOGUE,
        trust: PeerTrust | None = None,
    ) -> None:
        self._identity_private = identity_private
        self._payload = payload
        self._max = max_sessions
        self._prologue = prologue
        self._trust = trust
        self._labels: dict[str, _Label] = {}

    def __repr__(self) -> str:
        return f"<PeerSessions labels={len(self._labels)}>"

    def __len__(self) -> int:
        return len(self._labels)

    def _handshake(self, initiator: bool) -> Handshake:
        return Handshake(
            PEER_PROTOCOL,
            self._prologue,
            initiator=initiator,
            static_private=self._identity_private,
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
        peer = self._read_vouched(hs, label, message, signature, peer_message_key)
        reply = None
        with contextlib.suppress(SessionError):
            reply = hs.write(self._payload)
        if reply is None:
            raise PeerAuthError(f"cannot answer the handshake of peer {label!r}", "handshake")
        transport = hs.transport()
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
            peer = self._read_vouched(hs, label, message, signature, peer_message_key)
        except PeerAuthError:
            if slot.empty():
                del self._labels[label]
            raise
        transport = hs.transport()
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
        self, hs: Handshake, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave:
        """Read the peer's handshake message and check that its host vouched for it and
        (unless we are "off") that its evidence holds: what it proved, or `PeerAuthError`."""
        payload = None
        with contextlib.suppress(SessionError):
            payload = hs.read(message)
        if payload is None:
            raise PeerAuthError(f"handshake message of peer {label!r} rejected", "handshake")
        if not ed25519_verify(peer_message_key, peer_auth_message(hs.transcript), signature):
            raise PeerAuthError(
                f"handshake of peer {label!r} is not signed by the key configured for it",
                "signature",
            )
        said = None
        with contextlib.suppress(binary.DecodeError):
            said = HandshakePayload.from_bytes(payload)
        if said is None:
            raise PeerAuthError(
                f"handshake payload of peer {label!r} is not one we know", "payload"
            )
        identity = hs.remote_static
        assert identity is not None  # IX always carries both static keys
        if self._trust is None:
            return PeerEnclave(identity, said.block_signer)
        verdict = _attested(self._trust, label, said, hs.payload_hash, identity)
        return PeerEnclave(identity, said.block_signer, verdict.mrenclave, True, verdict.simulated)


def _attested(
    trust: PeerTrust, label: str, said: HandshakePayload, nonce: bytes | None, identity: bytes
) -> Verdict:
    """The verdict on the evidence of `said`, bound to `nonce` and the peer's keys, or
    `PeerAuthError` (raised outside any handler: no evidence error rides along)."""
    if said.evidence is None or nonce is None:
        refusal = ("no_evidence", "it sent no attestation evidence")
    else:
        try:
            return verify_bound_evidence(
                said.evidence,
                policy=trust.policy,
                root_ca_der=trust.root_ca_der,
                now=trust.now(),
                nonce=nonce,
                identity_public=identity,
                block_signer_public=said.block_signer,
            )
        except AttestationError as e:
            refusal = (e.reason, e.message)
    reason, sentence = refusal
    raise PeerAuthError(
        f"attestation of peer {label!r} refused: {sentence[:MAX_SENTENCE]}",
        f"attestation:{reason}",
    )
