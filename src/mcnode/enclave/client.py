"""The client's side of an enclave session: for wallets, tests and the load generator.

Not part of the trusted boundary: it runs wherever the client runs. It opens a Noise NX
handshake to the enclave (`connect`, then `finish` with the enclave's reply), checks that
the enclave proved the identity key the client expected (later issues check attestation
evidence for that key instead of pinning it), and seals transactions for
`Enclave.client_tx_propose`.

    session = ClientSession.connect(enclave_identity)      # .first_message -> host
    session_id, reply = host relays first_message to the enclave
    session.finish(reply)
    ciphertext = session.encrypt_tx(tx.to_bytes())          # -> host -> enclave
"""

from __future__ import annotations

from mcnode.enclave.errors import SessionError
from mcnode.enclave.noise import CLIENT_PROLOGUE, CLIENT_PROTOCOL, Handshake, Transport
from mcnode.transaction.tx import MAX_TX_BYTES


class ServerIdentityMismatch(SessionError):
    """The enclave proved an identity key other than the one the client expected."""


class ClientSession:
    """One client session; `connect` starts it, `finish` completes it."""

    def __init__(self, handshake: Handshake, expected_identity: bytes | None, msg1: bytes) -> None:
        self._handshake: Handshake | None = handshake
        self._expected = expected_identity
        self._transport: Transport | None = None
        self.first_message = msg1

    def __repr__(self) -> str:
        return f"<ClientSession established={self._transport is not None}>"

    @classmethod
    def connect(cls, server_identity_public_key: bytes | None) -> ClientSession:
        """Start a handshake; send `first_message` to the enclave. With None, any
        enclave identity is accepted (for tests of the handshake only)."""
        if server_identity_public_key is not None and len(server_identity_public_key) != 32:
            raise ValueError("an X25519 identity key is 32 bytes")
        hs = Handshake(CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=True)
        return cls(hs, server_identity_public_key, hs.write())

    def finish(self, msg2: bytes) -> None:
        """Complete the handshake with the enclave's reply; `ServerIdentityMismatch` when
        it proved another identity than the expected one."""
        hs = self._handshake
        if hs is None:
            raise SessionError("the handshake is already finished")
        hs.read(msg2)
        self._handshake = None
        if self._expected is not None and hs.remote_static != self._expected:
            raise ServerIdentityMismatch("the enclave's identity key is not the one expected")
        self._transport = hs.transport()

    @property
    def server_identity(self) -> bytes:
        """The identity key the enclave proved."""
        identity = self._established().remote_static
        assert identity is not None  # NX always carries the responder's static key
        return identity

    def _established(self) -> Transport:
        if self._transport is None:
            raise SessionError("the session is not established: call finish first")
        return self._transport

    def encrypt_tx(self, tx_bytes: bytes) -> bytes:
        """Seal an encoded tx for `client_tx_propose` (each call uses the next nonce, so
        send them in the order they were sealed)."""
        if len(tx_bytes) > MAX_TX_BYTES:
            raise ValueError(f"a transaction is at most {MAX_TX_BYTES} bytes")
        return self._established().seal(tx_bytes)

    def decrypt(self, ciphertext: bytes, max_plaintext: int = MAX_TX_BYTES) -> bytes:
        """Open a message the enclave sealed for this client."""
        return self._established().open(ciphertext, max_plaintext)
