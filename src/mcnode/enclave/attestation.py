"""The enclave's side of attestation: the evidence it puts in its handshake messages, and
the payload that carries it.

`HandshakePayload` is what an enclave says of itself in a handshake message, to clients
(Noise NX message 2) and to peer enclaves (Noise IX messages 1 and 2), in one format:

    version 1:  u8 1 || block signer (32)                   no evidence (mode "off")
    version 2:  u8 2 || block signer (32) || evidence       (`attest.evidence.Evidence`)

`EvidenceMaker` makes that evidence: one quote per handshake, with report data
`expected_report_data(nonce, identity key, block signer)` where the nonce is the Noise
handshake hash at the moment the payload is written (`noise.Handshake.write` with a
function), and the collateral, made once and cached. The collateral is issued a little
in the past (`COLLATERAL_BACKDATE`, so a verifier whose clock is behind ours still finds
it valid) and remade once less than a third of its window is left, so evidence served
never expires while the enclave runs (`expires()` says until when the current one holds).

In simulation the enclave is its own quoting enclave: it states its own MRENCLAVE,
MRSIGNER and ISV ids (`CodeIdentity`, measured by the enclave process at start) and
signs them under the network's simulated PKI. Nothing checks what it states: a simulated
quote proves only that its maker held the PKI's key (see `attest.sim_quote`).

The time comes from the clock function of the enclave's configuration (an argument):
this module reads no clock itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mcnode import binary
from mcnode.attest.evidence import Evidence
from mcnode.attest.policy import expected_report_data
from mcnode.attest.sim_quote import SimQuotingEnclave

PAYLOAD_NO_EVIDENCE = 1
PAYLOAD_WITH_EVIDENCE = 2
#: How far in the past collateral is issued: tolerance for verifiers' clocks behind ours.
COLLATERAL_BACKDATE = 3600


@dataclass(frozen=True, slots=True)
class HandshakePayload:
    """What an enclave says of itself in a handshake message (see the module docstring).
    Unknown versions are refused."""

    block_signer: bytes
    evidence: Evidence | None = None

    def to_bytes(self) -> bytes:
        w = binary.Writer()
        w.u8(PAYLOAD_NO_EVIDENCE if self.evidence is None else PAYLOAD_WITH_EVIDENCE)
        w.fixed(self.block_signer, 32)
        if self.evidence is not None:
            self.evidence.write(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> HandshakePayload:
        """`binary.DecodeError` unless `data` is exactly one payload of a known version."""
        return binary.Reader.whole(data, cls._decode)

    @classmethod
    def _decode(cls, r: binary.Reader) -> HandshakePayload:
        version = r.u8()
        if version not in (PAYLOAD_NO_EVIDENCE, PAYLOAD_WITH_EVIDENCE):
            raise binary.DecodeError(f"unknown handshake payload version {version}")
        block_signer = r.fixed(32)
        evidence = Evidence.read(r) if version == PAYLOAD_WITH_EVIDENCE else None
        return cls(block_signer, evidence)


@dataclass(frozen=True, slots=True)
class CodeIdentity:
    """What the enclave's quotes say it is: MRENCLAVE, MRSIGNER, ISV product id and SVN."""

    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int = 0
    isv_svn: int = 0

    def __post_init__(self) -> None:
        if len(self.mrenclave) != 32 or len(self.mrsigner) != 32:
            raise ValueError("MRENCLAVE and MRSIGNER are 32 bytes each")
        for name in ("isv_prod_id", "isv_svn"):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{name} must be in 0..65535")


class EvidenceMaker:
    """Makes this enclave's evidence: a quote per handshake, collateral cached and remade
    before it expires. Not thread-safe: the enclave's lock covers every call."""

    def __init__(
        self,
        quoting_enclave: SimQuotingEnclave,
        code: CodeIdentity,
        valid_seconds: int,
        now: Callable[[], int],
    ) -> None:
        if valid_seconds <= COLLATERAL_BACKDATE:
            raise ValueError(f"the collateral window must be over {COLLATERAL_BACKDATE} s")
        self._qe = quoting_enclave
        self._code = code
        self._valid = valid_seconds
        self._now = now
        self._collateral = b""
        self._issued = 0
        self._expires = 0
        self.collaterals_made = 0

    def __repr__(self) -> str:
        return f"<EvidenceMaker expires={self._expires}>"

    def _fresh_collateral(self) -> bytes:
        now = self._now()
        stale = now >= self._expires - self._valid // 3 or now < self._issued
        if not self._collateral or stale:
            issued = max(self._qe.pki.created, now - COLLATERAL_BACKDATE)
            self._collateral = self._qe.collateral(issued, self._valid)
            self._issued, self._expires = issued, issued + self._valid
            self.collaterals_made += 1
        return self._collateral

    def expires(self) -> int:
        """Unix seconds when the collateral served from now on expires (remade if due)."""
        self._fresh_collateral()
        return self._expires

    def evidence(self, nonce: bytes, identity_public: bytes, block_signer: bytes) -> Evidence:
        """Evidence whose quote's report data binds `nonce` and both keys."""
        collateral = self._fresh_collateral()
        c = self._code
        quote = self._qe.quote(
            c.mrenclave,
            c.mrsigner,
            c.isv_prod_id,
            c.isv_svn,
            expected_report_data(nonce, identity_public, block_signer),
        )
        return Evidence(quote, collateral)


PayloadMaker = Callable[[bytes], bytes]


def payload_maker(
    block_signer: bytes, identity_public: bytes, evidence: EvidenceMaker | None
) -> PayloadMaker:
    """The function `noise.Handshake.write` calls with the handshake hash to make this
    enclave's handshake payload: version 2 with fresh evidence, or version 1 without."""

    def make(nonce: bytes) -> bytes:
        if evidence is None:
            return HandshakePayload(block_signer).to_bytes()
        return HandshakePayload(
            block_signer, evidence.evidence(nonce, identity_public, block_signer)
        ).to_bytes()

    return make
