"""The client's side of an enclave session: for wallets, tests and the load generator.

Not part of the trusted boundary: it runs wherever the client runs. It opens a Noise NX
handshake to the enclave (`connect`, then `finish` with the enclave's reply) and, before
any transaction can be sealed, verifies the attestation evidence in the enclave's reply:
the quote and collateral verify under the client's `Policy` (chained to `root_ca_der`, or
Intel's root when None) at `now`, and the quote's report data binds the handshake hash at
the moment the enclave wrote its reply (fresh per handshake: it depends on the client's
new ephemeral key), the static key the handshake just proved, and the block signer the
reply names. A refusal is `AttestationFailed`, carrying the reason.

`policy=None` skips attestation: it is for enclaves running with attestation "off" only
(tests, tools) and must be asked for explicitly; such a session proves only the enclave's
identity key (checked against `expected_identity` when one is given).

    session = ClientSession.connect(policy, root_ca_der)    # .first_message -> host
    session_id, reply = host relays first_message to the enclave
    session.finish(reply)                                   # session.verdict: what it is
    ciphertext = session.encrypt_tx(tx.to_bytes())          # -> host -> enclave
"""

from __future__ import annotations

import contextlib
import time

from mcnode import binary
from mcnode.attest.evidence import verify_bound_evidence
from mcnode.attest.policy import AttestationError, Policy, Verdict
from mcnode.enclave.attestation import HandshakePayload
from mcnode.enclave.errors import AttestationFailed, SessionError
from mcnode.enclave.noise import CLIENT_PROLOGUE, CLIENT_PROTOCOL, Handshake, Transport
from mcnode.transaction.tx import MAX_TX_BYTES

__all__ = ["AttestationFailed", "ClientSession", "ServerIdentityMismatch"]


class ServerIdentityMismatch(SessionError):
    """The enclave proved an identity key other than the one the client expected."""


class ClientSession:
    """One client session; `connect` starts it, `finish` completes it."""

    def __init__(
        self,
        handshake: Handshake,
        msg1: bytes,
        *,
        policy: Policy | None,
        root_ca_der: bytes | None,
        now: int | None,
        expected_identity: bytes | None,
    ) -> None:
        self._handshake: Handshake | None = handshake
        self._policy = policy
        self._root = root_ca_der
        self._now = now
        self._expected = expected_identity
        self._transport: Transport | None = None
        self.first_message = msg1
        #: what the enclave's evidence said, once `finish` verified it (None without a
        #: policy: attestation was not asked for)
        self.verdict: Verdict | None = None
        self._block_signer: bytes | None = None

    def __repr__(self) -> str:
        return f"<ClientSession established={self._transport is not None}>"

    @classmethod
    def connect(
        cls,
        policy: Policy | None,
        root_ca_der: bytes | None,
        now: int | None = None,
        expected_identity: bytes | None = None,
    ) -> ClientSession:
        """Start a handshake; send `first_message` to the enclave. `finish` will verify the
        enclave's evidence under `policy`, chained to `root_ca_der` (None: Intel's root),
        at `now` (unix seconds; None: the clock when `finish` runs). `policy=None` is for
        enclaves with attestation "off" only: no evidence is asked for or checked. With
        `expected_identity`, the enclave must also prove that identity key."""
        if policy is not None and not isinstance(policy, Policy):
            raise TypeError("policy must be an attest.Policy or None")
        if expected_identity is not None and len(expected_identity) != 32:
            raise ValueError("an X25519 identity key is 32 bytes")
        hs = Handshake(CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=True)
        return cls(
            hs,
            hs.write(),
            policy=policy,
            root_ca_der=root_ca_der,
            now=now,
            expected_identity=expected_identity,
        )

    def finish(self, msg2: bytes) -> None:
        """Complete the handshake with the enclave's reply. `ServerIdentityMismatch` when
        it proved another identity than the expected one; `AttestationFailed` when a
        policy was given and the evidence is missing or refused; `SessionError` when the
        reply does not decrypt or its payload does not decode. Nothing can be sealed
        unless this returns."""
        hs = self._handshake
        if hs is None:
            raise SessionError("the handshake is already finished")
        self._handshake = None  # one reply per handshake: right, or connect again
        payload = hs.read(msg2)
        said = None
        with contextlib.suppress(binary.DecodeError):
            said = HandshakePayload.from_bytes(payload)
        if said is None:
            raise SessionError("the enclave's handshake payload is not one we know")
        identity = hs.remote_static
        assert identity is not None  # NX always carries the responder's static key
        if self._expected is not None and identity != self._expected:
            raise ServerIdentityMismatch("the enclave's identity key is not the one expected")
        if self._policy is not None:
            self.verdict = self._verify(said, hs.payload_hash, identity)
        self._block_signer = said.block_signer
        self._transport = hs.transport()

    def _verify(self, said: HandshakePayload, nonce: bytes | None, identity: bytes) -> Verdict:
        assert self._policy is not None
        if said.evidence is None or nonce is None:
            refusal = ("no_evidence", "the enclave sent no attestation evidence")
        else:
            now = int(time.time()) if self._now is None else self._now
            try:
                return verify_bound_evidence(
                    said.evidence,
                    policy=self._policy,
                    root_ca_der=self._root,
                    now=now,
                    nonce=nonce,
                    identity_public=identity,
                    block_signer_public=said.block_signer,
                )
            except AttestationError as e:
                refusal = (e.reason, e.message)
        raise AttestationFailed(*refusal)  # outside the handler: nothing rides along

    @property
    def block_signer(self) -> bytes:
        """The block-signing key the enclave named (bound by its evidence when attested)."""
        self._established()
        assert self._block_signer is not None
        return self._block_signer

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
