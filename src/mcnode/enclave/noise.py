"""Noise sessions: handshakes and the framing of transport messages, over `noiseprotocol`.

Clients reach the enclave with Noise NX (the enclave is the responder and proves its
identity key; the client stays anonymous); enclaves reach each other with Noise IX (both
static keys are the enclaves' identities). Each pattern has its own prologue so that a
handshake of one kind can never be completed as the other.

A Noise transport message holds at most 65535 bytes. A sealed message here is a sequence
of frames, each `u16 length || Noise message`, whose decrypted payloads concatenate to
`u32 plaintext length || plaintext`. Frames use consecutive nonces, so they cannot be
reordered, dropped from the middle or replayed; the length inside the encryption catches
frames dropped from the end. Opening is all or nothing: on any failure the receive nonce
goes back to where it was, so garbage sent under someone's session id cannot wreck it.

A handshake payload may depend on the handshake itself: `Handshake.write` takes either
bytes or a function of the handshake hash at the moment the payload is written (after the
message's keys and DH results are mixed in, before the payload is encrypted), and
`Handshake.payload_hash` is that same hash on the reading side. Evidence carried in a
payload binds it (`attest.evidence`): it depends on the reader's fresh ephemeral key, so
evidence recorded from one handshake does not verify in another.

The peer prologue binds the network's consensus configuration (`peer_prologue`): two
enclaves configured for different networks, minimum fees or block versions derive
different keys, so their handshakes fail to decrypt.

This module holds secrets (static and ephemeral private keys, session keys): nothing
in it logs, and no object here prints a key in its repr.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from typing import Any

from noise.connection import Keypair, NoiseConnection

from mcnode import binary
from mcnode.enclave.errors import MessageDecodeError, SessionError

CLIENT_PROTOCOL = b"Noise_NX_25519_ChaChaPoly_SHA256"
PEER_PROTOCOL = b"Noise_IX_25519_ChaChaPoly_SHA256"
CLIENT_PROLOGUE = b"mcnode client session v1"
PEER_PROLOGUE = b"mcnode peer session v1"
NETWORK_CONFIG_DOMAIN = b"mcnode network config v1"
#: The Noise specification's limit on one message, handshake or transport.
MAX_NOISE_MESSAGE = 65535
_TAG = 16
_CHUNK = MAX_NOISE_MESSAGE - _TAG
_HEADER = 4


#: A payload written from the handshake hash of the moment it is written (`Handshake.write`).
PayloadFn = Callable[[bytes], bytes]


def peer_prologue(network: str, minimum_fee: int, block_version: int) -> bytes:
    """The prologue of peer handshakes on a network: `PEER_PROLOGUE || SHA-256("mcnode
    network config v1" || network name (UTF-8) || u64 minimum fee || u32 block version)`
    (little-endian; the name is the only variable-length part, so this is unambiguous)."""
    w = binary.Writer()
    w.u64(minimum_fee)
    w.u32(block_version)
    digest = hashlib.sha256(NETWORK_CONFIG_DOMAIN + network.encode() + w.getvalue()).digest()
    return PEER_PROLOGUE + digest


def sealed_size(plaintext_size: int) -> int:
    """Bytes of the sealed message for `plaintext_size` bytes of plaintext."""
    total = plaintext_size + _HEADER
    frames = max(1, -(-total // _CHUNK))
    return total + frames * (_TAG + 2)


class Handshake:
    """One side of a Noise handshake in progress; `transport()` once it is finished."""

    def __init__(
        self,
        protocol: bytes,
        prologue: bytes,
        *,
        initiator: bool,
        static_private: bytes | None = None,
    ) -> None:
        conn = NoiseConnection.from_name(protocol)
        if initiator:
            conn.set_as_initiator()
        else:
            conn.set_as_responder()
        conn.set_prologue(prologue)
        if static_private is not None:
            conn.set_keypair_from_private_bytes(Keypair.STATIC, static_private)
        conn.start_handshake()
        self._conn = conn
        # The library drops its handshake state when the handshake ends; keep a reference
        # to read the remote static key after the last message.
        self._state = conn.noise_protocol.handshake_state
        self.remote_static: bytes | None = None
        #: after `read`: the handshake hash before the message's payload was decrypted
        self.payload_hash: bytes | None = None

    def __repr__(self) -> str:
        return f"<Handshake finished={self.finished}>"

    @property
    def finished(self) -> bool:
        return bool(self._conn.handshake_finished)

    @property
    def transcript(self) -> bytes:
        """The handshake hash h as it stands after the last message written or read (both
        sides agree on it after each message; after the last one it is the final hash)."""
        if self.finished:
            return bytes(self._conn.get_handshake_hash())
        assert self._state is not None  # kept until the handshake finishes
        return bytes(self._state.symmetric_state.get_handshake_hash())

    def write(self, payload: bytes | PayloadFn = b"") -> bytes:
        """The next handshake message, carrying `payload`: bytes, or a function of the
        handshake hash at the moment the payload is written (see the module docstring)."""
        message = None
        symmetric = None if self._state is None else self._state.symmetric_state
        if callable(payload) and symmetric is not None:
            payload_fn, deferred = payload, _Deferred()
            _intercept_payload(symmetric, deferred, payload_fn)
            payload = deferred
        try:
            # The library raises bare Exception for a step out of order; a low-order peer
            # key gives ValueError.
            with contextlib.suppress(Exception):
                message = bytes(self._conn.write_message(payload))  # type: ignore[arg-type]
        finally:
            if symmetric is not None:
                symmetric.__dict__.pop("encrypt_and_hash", None)
        if message is None:
            raise SessionError("cannot write the handshake message (bad peer key or step)")
        if len(message) > MAX_NOISE_MESSAGE:
            raise SessionError(f"handshake message of {len(message)} bytes is over 65535")
        self._after_step()
        return message

    def read(self, message: bytes) -> bytes:
        """Process the peer's handshake message; returns its payload (and sets
        `payload_hash`)."""
        if not isinstance(message, bytes) or len(message) > MAX_NOISE_MESSAGE:
            raise SessionError("handshake message is not bytes of at most 65535")
        payload = None
        symmetric = None if self._state is None else self._state.symmetric_state
        seen: list[bytes] = []
        if symmetric is not None:
            _record_hashes(symmetric, seen)
        try:
            with contextlib.suppress(Exception):  # hostile bytes: bad lengths, tags, points...
                payload = bytes(self._conn.read_message(message))
        finally:
            if symmetric is not None:
                symmetric.__dict__.pop("decrypt_and_hash", None)
        if payload is None:
            raise SessionError("handshake message rejected")
        # The payload is the last thing a message decrypts: the hash just before it.
        self.payload_hash = seen[-1] if seen else None
        self._after_step()
        return payload

    def _after_step(self) -> None:
        rs = getattr(self._state, "rs", None)
        public = getattr(rs, "public_bytes", None)
        if public is not None:
            self.remote_static = bytes(public)
        if self.finished:
            self._state = None  # holds the ephemeral private key: let it go

    def transport(self) -> Transport:
        if not self.finished:
            raise SessionError("handshake is not finished")
        return Transport(self._conn, self.remote_static)


class _Deferred(bytes):
    """Stands for a payload made from the handshake hash when the library writes it."""


def _intercept_payload(symmetric: Any, deferred: _Deferred, make: PayloadFn) -> None:
    """Make `symmetric` (the library's SymmetricState) encrypt `make(h)` where it was
    asked to encrypt `deferred`: the payload is the last thing a message encrypts, and
    `h` is then the hash the reader sees before decrypting it."""
    original = symmetric.encrypt_and_hash

    def encrypt_and_hash(plaintext: bytes) -> bytes:
        if plaintext is deferred:
            plaintext = make(bytes(symmetric.get_handshake_hash()))
        return bytes(original(plaintext))

    symmetric.encrypt_and_hash = encrypt_and_hash


def _record_hashes(symmetric: Any, seen: list[bytes]) -> None:
    """Record in `seen` the handshake hash before each decryption `symmetric` makes."""
    original = symmetric.decrypt_and_hash

    def decrypt_and_hash(ciphertext: bytes) -> bytes:
        seen.append(bytes(symmetric.get_handshake_hash()))
        return bytes(original(ciphertext))

    symmetric.decrypt_and_hash = decrypt_and_hash


class Transport:
    """An established session: seal and open framed messages of any size."""

    def __init__(self, conn: NoiseConnection, remote_static: bytes | None) -> None:
        self._conn = conn
        self.remote_static = remote_static
        self.handshake_hash = bytes(conn.get_handshake_hash())

    def __repr__(self) -> str:
        return "<Transport>"

    def seal(self, plaintext: bytes) -> bytes:
        data = len(plaintext).to_bytes(_HEADER, "little") + plaintext
        out = bytearray()
        for start in range(0, len(data), _CHUNK):
            frame = self._conn.encrypt(data[start : start + _CHUNK])
            out += len(frame).to_bytes(2, "little") + frame
        return bytes(out)

    def open(self, sealed: bytes, max_plaintext: int) -> bytes:
        """The plaintext of `sealed`; all or nothing (see the module docstring)."""
        if not isinstance(sealed, bytes):
            raise SessionError("sealed message is not bytes")
        if len(sealed) > sealed_size(max_plaintext):
            raise MessageDecodeError(f"message of {len(sealed)} bytes is over the limit")
        cipher = self._conn.noise_protocol.cipher_state_decrypt
        nonce = cipher.n
        try:
            data = self._open_frames(sealed)
        except Exception:
            cipher.n = nonce
            raise
        size = int.from_bytes(data[:_HEADER], "little")
        if len(data) < _HEADER or size != len(data) - _HEADER:
            cipher.n = nonce  # authentic frames, but not all of them: still refuse whole
            raise SessionError("sealed message is truncated")
        if size > max_plaintext:
            raise MessageDecodeError(f"message of {size} bytes is over the limit")
        return data[_HEADER:]

    def _open_frames(self, sealed: bytes) -> bytes:
        out = bytearray()
        pos = 0
        while pos < len(sealed):
            if pos + 2 > len(sealed):
                raise SessionError("sealed message has a torn frame header")
            n = int.from_bytes(sealed[pos : pos + 2], "little")
            frame = sealed[pos + 2 : pos + 2 + n]
            if len(frame) != n or n < _TAG:
                raise SessionError("sealed message has a torn frame")
            plain = None
            with contextlib.suppress(Exception):  # NoiseInvalidMessage on a bad tag
                plain = self._conn.decrypt(frame)
            if plain is None:
                raise SessionError("message does not decrypt under this session")
            out += plain
            pos += 2 + n
        if not out:
            raise SessionError("sealed message is empty")
        return bytes(out)
