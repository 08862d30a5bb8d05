"""What a verified quote must say before we trust the enclave behind it: the `Policy`, the
`Verdict` a verified quote yields, the refusals, and the report-data binding.

Rules, checked by `check_policy` in this order (the first that fails is the reason):

1. `simulation_not_allowed`: evidence verified against a caller-named root (not Intel's)
   needs `allow_simulation`.
2. `debug`: an enclave with the DEBUG attribute (bit 1 of the attributes' first byte)
   needs `allow_debug`, in either mode. Allowing simulation does not allow debug: the two
   are separate switches, each said out loud. (dcap-qvl 0.7 refuses DEBUG enclaves itself
   and its Python API has no switch to allow them, so today a DEBUG enclave is refused
   even with `allow_debug`; our own check stays for a dcap-qvl that lets them through.)
3. Identity: `mrenclave` (MRENCLAVE in `mrenclaves`), then `mrsigner`, `isv_prod_id` and
   `isv_svn` (MRSIGNER equal, product id equal, ISV SVN >= `min_isv_svn`). A policy naming
   both MRENCLAVEs and an MRSIGNER requires both: naming more never trusts more.
4. `tcb_status`: `UpToDate`, or a status in `allowed_statuses`. `Revoked` cannot be
   allowed (dcap-qvl refuses it before us, and so would we).
5. `advisory`: every advisory id the TCB level carries is in `allowed_advisories` (an
   allowlist: an advisory Intel publishes tomorrow is refused until someone allows it).

A policy that names neither MRENCLAVEs nor an MRSIGNER trusts whatever enclave the quote
comes from. A library caller must ask for that explicitly (`any_identity=True`), else the
`Policy` cannot be built; `mcnode attest verify` with no identity flag asks for it (to
inspect a quote) and says so in its output (`identity_required: false`).

`expected_report_data` / `check_report_data`: the 64 bytes of report data that bind a
quote to a session and to the enclave's keys, SHA-256(nonce || identity public key ||
block-signer public key) then 32 zero bytes. The two keys have a fixed length (32 bytes),
so the concatenation is unambiguous for any nonce length.

No I/O, no clock: the time is the caller's (see `verify.verify_evidence`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

#: TCB statuses an SGX platform can have that a policy may allow besides `UpToDate`.
#: (`Revoked` is never allowed; the TDX-only statuses do not apply to SGX quotes.)
ALLOWABLE_STATUSES = frozenset(
    {
        "SWHardeningNeeded",
        "ConfigurationNeeded",
        "ConfigurationAndSWHardeningNeeded",
        "OutOfDate",
        "OutOfDateConfigurationNeeded",
    }
)
UP_TO_DATE = "UpToDate"
DEBUG_FLAG = 0x02  # SGX_FLAGS_DEBUG, in the first byte of the report's ATTRIBUTES


class AttestationError(Exception):
    """Evidence was not accepted. `reason` is a short snake_case code (for metrics and
    scripts); the message is one sentence for a person."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class EvidenceUnreadable(AttestationError):
    """The input cannot even be parsed: not a quote, not collateral JSON, not a
    certificate. Nothing was verified."""

    def __init__(self, message: str) -> None:
        super().__init__("unreadable", message)


class AttestationRefused(AttestationError):
    """The evidence was read and refused. `verdict` is what the quote says when its chain
    verified and a policy rule refused it; None when the evidence itself did not verify."""

    def __init__(self, reason: str, message: str, verdict: Verdict | None = None) -> None:
        super().__init__(reason, message)
        self.verdict = verdict


class EvidenceInvalid(AttestationRefused):
    """The evidence did not verify: a signature, a certificate chain, the collateral's
    validity window, its shape. dcap-qvl's sentence is in the message; `verdict` is None."""


class PolicyRefused(AttestationRefused):
    """The evidence verified and the policy (or the report-data binding) refused it;
    `verdict` holds what the quote says (None only for `simulation_not_allowed`, which is
    refused before anything is verified)."""


def _bytes32(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return value


def _u16(value: int | None, what: str) -> None:
    if value is not None and (not isinstance(value, int) or not 0 <= value <= 0xFFFF):
        raise ValueError(f"{what} must be an integer in 0..65535")


@dataclass(frozen=True)
class Policy:
    """Which enclaves, on which platforms, we trust. Build it once from configuration."""

    mrenclaves: frozenset[bytes] = frozenset()
    mrsigner: bytes | None = None
    isv_prod_id: int | None = None  # required with mrsigner, and only with it
    min_isv_svn: int | None = None  # required with mrsigner, and only with it
    allowed_statuses: frozenset[str] = frozenset()  # besides UpToDate
    allowed_advisories: frozenset[str] = frozenset()
    allow_debug: bool = False
    allow_simulation: bool = False
    #: trust any enclave identity (no MRENCLAVE, no MRSIGNER): must be asked for
    any_identity: bool = False

    def __post_init__(self) -> None:
        for name in ("mrenclaves", "allowed_statuses", "allowed_advisories"):
            value: Iterable[object] = getattr(self, name)
            if isinstance(value, str | bytes):
                raise ValueError(f"{name} must be a set, not a single value")
            object.__setattr__(self, name, frozenset(value))
        for m in self.mrenclaves:
            _bytes32(m, "each MRENCLAVE")
        if self.mrsigner is not None:
            _bytes32(self.mrsigner, "MRSIGNER")
            if self.isv_prod_id is None or self.min_isv_svn is None:
                raise ValueError("an MRSIGNER policy needs isv_prod_id and min_isv_svn")
        elif self.isv_prod_id is not None or self.min_isv_svn is not None:
            raise ValueError("isv_prod_id and min_isv_svn only apply with an MRSIGNER")
        _u16(self.isv_prod_id, "isv_prod_id")
        _u16(self.min_isv_svn, "min_isv_svn")
        if self.any_identity and (self.mrenclaves or self.mrsigner is not None):
            raise ValueError("any_identity contradicts the MRENCLAVE/MRSIGNER named")
        if not (self.any_identity or self.mrenclaves or self.mrsigner is not None):
            raise ValueError(
                "a policy must name trusted MRENCLAVEs or an MRSIGNER "
                "(or say any_identity=True to trust any enclave)"
            )
        for s in self.allowed_statuses:
            if s == "Revoked":
                raise ValueError("TCB status Revoked can never be allowed")
            if s != UP_TO_DATE and s not in ALLOWABLE_STATUSES:
                known = ", ".join(sorted(ALLOWABLE_STATUSES))
                raise ValueError(f"unknown TCB status {s!r} (known: {known})")
        for a in self.allowed_advisories:
            if not isinstance(a, str) or not a.strip() or a != a.strip():
                raise ValueError(f"bad advisory id {a!r}")

    @property
    def identity_required(self) -> bool:
        return not self.any_identity


@dataclass(frozen=True)
class Verdict:
    """What a quote says, once dcap-qvl has verified it (its signatures, chain, collateral)."""

    tcb_status: str
    advisories: tuple[str, ...]
    mrenclave: bytes
    mrsigner: bytes
    isv_prod_id: int
    isv_svn: int
    debug: bool
    report_data: bytes
    #: verified against a caller-named root (a simulated PKI), not Intel's
    simulated: bool


def _short(value: bytes) -> str:
    return value.hex()[:8] + "…"


def check_policy(verdict: Verdict, policy: Policy) -> None:
    """Raise `PolicyRefused` (carrying `verdict`) at the first rule of `policy` that
    `verdict` breaks, in the order of the module's docstring."""

    def refuse(reason: str, message: str) -> PolicyRefused:
        return PolicyRefused(reason, message, verdict)

    if verdict.simulated and not policy.allow_simulation:
        raise refuse("simulation_not_allowed", "simulated evidence is not allowed by this policy")
    if verdict.debug and not policy.allow_debug:
        raise refuse("debug", "the enclave runs in DEBUG mode, which is not allowed")
    if policy.mrenclaves and verdict.mrenclave not in policy.mrenclaves:
        raise refuse("mrenclave", f"MRENCLAVE {_short(verdict.mrenclave)} is not trusted")
    if policy.mrsigner is not None:
        if not hmac.compare_digest(verdict.mrsigner, policy.mrsigner):
            raise refuse("mrsigner", f"MRSIGNER {_short(verdict.mrsigner)} is not trusted")
        if verdict.isv_prod_id != policy.isv_prod_id:
            raise refuse(
                "isv_prod_id",
                f"ISV product id {verdict.isv_prod_id} is not the trusted product "
                f"{policy.isv_prod_id}",
            )
        assert policy.min_isv_svn is not None  # __post_init__
        if verdict.isv_svn < policy.min_isv_svn:
            raise refuse(
                "isv_svn",
                f"ISV SVN {verdict.isv_svn} is below the minimum {policy.min_isv_svn}",
            )
    if verdict.tcb_status != UP_TO_DATE and verdict.tcb_status not in policy.allowed_statuses:
        raise refuse("tcb_status", f"TCB status {verdict.tcb_status} is not allowed")
    for advisory in verdict.advisories:
        if advisory not in policy.allowed_advisories:
            raise refuse("advisory", f"advisory {advisory} is not allowed")


def expected_report_data(nonce: bytes, identity_public: bytes, block_signer_public: bytes) -> bytes:
    """The report data an enclave must put in its quote: SHA-256(nonce || identity public
    key || block-signer public key), then 32 zero bytes. Both keys are 32 bytes."""
    if not isinstance(nonce, bytes):
        raise ValueError("nonce must be bytes")
    digest = hashlib.sha256(
        nonce
        + _bytes32(identity_public, "identity public key")
        + _bytes32(block_signer_public, "block signer public key")
    ).digest()
    return digest + bytes(32)


def check_report_data(verdict: Verdict, expected: bytes) -> None:
    """Raise `PolicyRefused(reason="report_data")` unless the quote's report data is
    `expected` (64 bytes, from `expected_report_data`)."""
    if not isinstance(expected, bytes) or len(expected) != 64:
        raise ValueError("expected report data must be 64 bytes")
    if not hmac.compare_digest(verdict.report_data, expected):
        raise PolicyRefused(
            "report_data",
            "the quote's report data does not bind the expected nonce and keys",
            verdict,
        )
