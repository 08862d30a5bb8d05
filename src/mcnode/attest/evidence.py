"""Evidence as it travels in a handshake: a quote and its collateral, and the check that it
binds one handshake and one enclave's keys.

Encoding (`mcnode.binary`, little-endian):

    evidence := u8 version (1) || u32 len || quote || u32 len || collateral

with the quote at most `MAX_QUOTE_BYTES` and the collateral at most
`MAX_COLLATERAL_BYTES`, so that evidence always fits in one Noise handshake message
(65535 bytes) beside the handshake's keys and a block signer. A simulated quote is about
4.3 kB and its collateral about 8.1 kB.

`verify_bound_evidence` is `verify.verify_evidence` plus the binding: the quote's report
data must be `expected_report_data(nonce, identity, block signer)`, where the nonce is the
Noise handshake hash at the moment the evidence was written (it depends on the peer's
fresh ephemeral key, so a recorded quote does not verify in another handshake) and the
identity is the static key that handshake proved.

Pure: no clock (the time is an argument), no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcnode import binary
from mcnode.attest.policy import Policy, Verdict, check_report_data, expected_report_data
from mcnode.attest.verify import verify_evidence

EVIDENCE_VERSION = 1
MAX_QUOTE_BYTES = 16 * 1024
MAX_COLLATERAL_BYTES = 40 * 1024
MAX_EVIDENCE_BYTES = 1 + 4 + MAX_QUOTE_BYTES + 4 + MAX_COLLATERAL_BYTES


@dataclass(frozen=True, slots=True)
class Evidence:
    """One quote and the collateral to verify it with (Intel PCS's JSON shape)."""

    quote: bytes
    collateral: bytes

    def write(self, w: binary.Writer) -> None:
        w.u8(EVIDENCE_VERSION)
        w.var(self.quote, MAX_QUOTE_BYTES, width=4, what="quote")
        w.var(self.collateral, MAX_COLLATERAL_BYTES, width=4, what="collateral")

    @classmethod
    def read(cls, r: binary.Reader) -> Evidence:
        version = r.u8()
        if version != EVIDENCE_VERSION:
            raise binary.DecodeError(f"unknown evidence version {version}")
        quote = r.var(MAX_QUOTE_BYTES, width=4, what="quote")
        return cls(quote, r.var(MAX_COLLATERAL_BYTES, width=4, what="collateral"))

    def to_bytes(self) -> bytes:
        w = binary.Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Evidence:
        """`binary.DecodeError` unless `data` is exactly one evidence of a known version."""
        return binary.Reader.whole(data, cls.read)


def verify_bound_evidence(
    evidence: Evidence,
    *,
    policy: Policy,
    root_ca_der: bytes | None,
    now: int,
    nonce: bytes,
    identity_public: bytes,
    block_signer_public: bytes,
) -> Verdict:
    """Verify `evidence` at `now` under `policy` (chained to `root_ca_der`, or Intel's
    root when None), then check that its report data binds `nonce`, `identity_public` and
    `block_signer_public`. The `Verdict`, or the `AttestationError` of the first check
    that fails (`reason="report_data"` for the binding)."""
    verdict = verify_evidence(evidence.quote, evidence.collateral, policy, now, root_ca_der)
    check_report_data(verdict, expected_report_data(nonce, identity_public, block_signer_public))
    return verdict
