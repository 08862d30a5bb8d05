"""Verify SGX evidence (an ECDSA quote, version 3, and its collateral in Intel PCS's JSON
shape) with dcap-qvl, then hold it to a `Policy` (rules in `mcnode.attest.policy`).

    verify_evidence(quote, collateral, policy, now, root_ca_der=None) -> Verdict

With no root, the quote must chain to Intel's SGX root (`dcap_qvl.verify`); with a root
(DER), to that root (`dcap_qvl.verify_with_root_ca`): a simulated PKI, accepted only when
`policy.allow_simulation`, and the verdict says `simulated=True`.

What dcap-qvl 0.7 checks, and we rely on: the PCK chain, the TCB-info and QE-identity
signing chains, to the root, every certificate within its validity at `now` and not
revoked by the root CA or PCK CRLs (themselves signed and unexpired); the TCB info and QE
identity signatures and their issueDate..nextUpdate windows; the QE report's signature
(PCK key) and its hash over the attestation key; the QE against its identity (MRSIGNER,
product, masked attributes and MISCSELECT, not DEBUG, SVN -> QE TCB status); the
enclave report's signature (attestation key); the platform's TCB level (FMSPC, CPU and
PCE SVNs -> status and advisories), refusing `Revoked`; quote version 3, Intel's QE
vendor id, ECDSA-P256 keys; and it refuses an enclave with the DEBUG attribute (its
Python API has no switch for that).

What we add, because dcap-qvl does not look at it: the policy (identity, TCB status and
advisory allowlists, debug, simulation), and the evidence's shape, so that no byte of
it is left unauthenticated: dcap-qvl ignores bytes after the certification data, the
whitespace of PEM chains, the root certificate a chain carries (it trusts its own
anchor), and the collateral's `pck_crl_issuer_chain`. So we require: the quote's length
to be exactly what its headers say; its certification data to be type 5 (the PCK chain)
holding exactly leaf, CA and root in canonical PEM (64-column base64, LF, nothing
between; one trailing NUL allowed, as Intel's QE writes it); each chain to end in the
trusted root, byte for byte (as Intel's own QVL checks); the collateral's chains in
canonical PEM, `pck_crl_issuer_chain` equal to the quote's CA and root, and a
`pck_certificate_chain`, if any, equal to the quote's chain.

Refusals (`AttestationRefused.reason`): dcap-qvl's are mapped from its sentence, which
stays in the message: `bad_signature`, `collateral_expired`, `collateral_not_yet_valid`,
`revoked`, `revocation_unknown` (no CRL covers a certificate), `untrusted_root`,
`tcb_level` (no TCB level matches the platform), `qe_identity`, `debug`, `malformed`,
else `refused`. Ours: `malformed`, `untrusted_root`, and the policy's
(`simulation_not_allowed`, `debug`, `mrenclave`, `mrsigner`, `isv_prod_id`, `isv_svn`,
`tcb_status`, `advisory`). Input that cannot be parsed at all raises
`EvidenceUnreadable`. Pure: the time is an argument; no clock, no file, no network.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import dcap_qvl
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mcnode.attest.policy import (
    DEBUG_FLAG,
    AttestationError,
    AttestationRefused,
    EvidenceInvalid,
    EvidenceUnreadable,
    Policy,
    PolicyRefused,
    Verdict,
    check_policy,
    check_report_data,
    expected_report_data,
)
from mcnode.attest.roots import INTEL_SGX_ROOT_CA_DER

__all__ = [
    "AttestationError",
    "AttestationRefused",
    "EvidenceInvalid",
    "EvidenceUnreadable",
    "Policy",
    "PolicyRefused",
    "Verdict",
    "check_policy",
    "check_report_data",
    "expected_report_data",
    "root_ca_der_from_pem",
    "verify_evidence",
]

T = TypeVar("T")

_SIGNED = 48 + 384  # header and enclave report: what the attestation key signs
_PCK_CHAIN = 5  # certification data type: PCK leaf || PCK CA || root, PEM
_CHAIN_FIELDS = ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain")

# dcap-qvl's sentence -> our reason; the first pattern found wins
_REASONS: tuple[tuple[str, str], ...] = (
    (r"QE report validation failed|QE [A-Z]+ mismatch|QE Identity id/version", "qe_identity"),
    (r"Debug mode is enabled", "debug"),
    (r"TCB status is invalid: Revoked|CertRevoked", "revoked"),
    (r"UnknownRevocationStatus", "revocation_unknown"),
    (r"[Ee]xpired", "collateral_expired"),
    (r"in the future|NotValidYet", "collateral_not_yet_valid"),
    (r"UnknownIssuer|Failed to load root ca", "untrusted_root"),
    (r"[Ss]ignature is invalid|Invalid(Crl)?Signature|hash mismatch", "bad_signature"),
    (r"No matching TCB level|Fmspc mismatch|component count mismatch", "tcb_level"),
    (
        r"Failed to (decode|parse|extract)|Unsupported|Unknown QE vendor|too short|"
        r"Not enough data|BadDer|TrailingData",
        "malformed",
    ),
)


def root_ca_der_from_pem(pem: bytes) -> bytes:
    """The DER of the one certificate in `pem`; `EvidenceUnreadable` if it is not exactly
    one PEM certificate."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise EvidenceUnreadable("the root CA is not a PEM certificate") from None
    if len(certs) != 1:
        raise EvidenceUnreadable(f"the root CA file holds {len(certs)} certificates, not 1")
    return certs[0].public_bytes(Encoding.DER)


def verify_evidence(
    quote: bytes,
    collateral: bytes | str | Mapping[str, Any],
    policy: Policy,
    now: int,
    root_ca_der: bytes | None = None,
) -> Verdict:
    """Verify `quote` with `collateral` at `now` (unix seconds) and hold it to `policy`.

    Returns the `Verdict`; raises `EvidenceUnreadable` (not parseable), `EvidenceInvalid`
    (did not verify) or `PolicyRefused` (verified, refused by the policy). The report
    data is the caller's to check (`check_report_data`)."""
    if isinstance(now, bool) or not isinstance(now, int) or not 0 <= now < 2**63:
        raise ValueError("now must be unix seconds, a non-negative int")
    if not isinstance(quote, bytes):
        raise EvidenceUnreadable("the quote must be bytes")
    simulated = root_ca_der is not None
    if simulated and not policy.allow_simulation:
        raise PolicyRefused(
            "simulation_not_allowed", "simulated evidence is not allowed by this policy"
        )
    root = INTEL_SGX_ROOT_CA_DER if root_ca_der is None else _root(root_ca_der)
    fields = _collateral_fields(collateral)
    try:
        parsed_collateral = dcap_qvl.QuoteCollateralV3.from_json(json.dumps(fields))
    except (TypeError, ValueError) as e:
        raise EvidenceUnreadable(f"the collateral is not readable: {_sentence(e)}") from None
    try:
        parsed = dcap_qvl.parse_quote(quote)
    except ValueError as e:
        raise EvidenceUnreadable(f"the quote is not readable: {_sentence(e)}") from None
    if not parsed.is_sgx():
        raise EvidenceInvalid("malformed", "the quote is not an SGX enclave quote")

    _check_shape(quote, fields, root)

    if root_ca_der is None:
        report = _dcap(dcap_qvl.verify, quote, parsed_collateral, now)
    else:
        report = _dcap(dcap_qvl.verify_with_root_ca, quote, parsed_collateral, root_ca_der, now)
    verdict = _verdict(report, simulated)
    check_policy(verdict, policy)
    return verdict


def _root(der: bytes) -> bytes:
    if not isinstance(der, bytes):
        raise EvidenceUnreadable("the root CA must be DER bytes")
    try:
        x509.load_der_x509_certificate(der)
    except ValueError:
        raise EvidenceUnreadable("the root CA is not a DER certificate") from None
    return der


def _collateral_fields(collateral: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(collateral, bytes | str):
        try:
            collateral = json.loads(collateral)
        except (ValueError, UnicodeDecodeError) as e:
            raise EvidenceUnreadable(f"the collateral is not JSON: {e}") from None
    if not isinstance(collateral, Mapping):
        raise EvidenceUnreadable("the collateral is not a JSON object")
    fields = dict(collateral)
    for name in _CHAIN_FIELDS:
        if not isinstance(fields.get(name), str):
            raise EvidenceUnreadable(f"the collateral has no {name} text")
    return fields


# -- the evidence's shape: every byte either authenticated by dcap-qvl or pinned here --


def _malformed(message: str) -> EvidenceInvalid:
    return EvidenceInvalid("malformed", message)


def _check_shape(quote: bytes, fields: Mapping[str, Any], root: bytes) -> None:
    chain = _chain(_certification_data(quote), "the quote's PCK certificate chain")
    if len(chain) != 3:
        raise _malformed(f"the quote's PCK certificate chain has {len(chain)} certificates, not 3")
    _ends_in_root(chain, root, "the quote's PCK certificate chain")
    for name in _CHAIN_FIELDS:
        certs = _chain(fields[name].encode(), f"the collateral's {name}")
        if len(certs) != 2:
            raise _malformed(f"the collateral's {name} has {len(certs)} certificates, not 2")
        _ends_in_root(certs, root, f"the collateral's {name}")
    if _chain(fields["pck_crl_issuer_chain"].encode(), "pck_crl_issuer_chain") != chain[1:]:
        raise _malformed("the collateral's PCK CRL issuer is not the quote's PCK CA")
    extra = fields.get("pck_certificate_chain")
    if extra is not None and (
        not isinstance(extra, str) or _chain(extra.encode(), "pck_certificate_chain") != chain
    ):
        raise _malformed("the collateral's pck_certificate_chain is not the quote's")


def _certification_data(quote: bytes) -> bytes:
    """The quote's PCK chain (PEM), after checking that the quote's length is exactly what
    its length fields say."""
    if len(quote) < _SIGNED + 4:
        raise _malformed("the quote is too short")
    sig_len = int.from_bytes(quote[_SIGNED : _SIGNED + 4], "little")
    sig = quote[_SIGNED + 4 :]
    if len(sig) != sig_len:
        raise _malformed(f"the quote's signature data is {len(sig)} bytes, not {sig_len}")
    pos = 64 + 64 + 384 + 64  # signature, attestation key, QE report, QE report signature
    if len(sig) < pos + 2:
        raise _malformed("the quote's signature data is too short")
    pos += 2 + int.from_bytes(sig[pos : pos + 2], "little")  # QE authentication data
    if len(sig) < pos + 6:
        raise _malformed("the quote's certification data is missing")
    cert_type = int.from_bytes(sig[pos : pos + 2], "little")
    size = int.from_bytes(sig[pos + 2 : pos + 6], "little")
    data = sig[pos + 6 :]
    if cert_type != _PCK_CHAIN:
        raise _malformed(f"the quote's certification data is of type {cert_type}, not 5")
    if len(data) != size:
        raise _malformed(f"the quote's certification data is {len(data)} bytes, it says {size}")
    return data[:-1] if data.endswith(b"\0") else data


def _chain(pem: bytes, what: str) -> list[bytes]:
    """The DER of each certificate in `pem`, which must be canonical PEM and nothing else."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise _malformed(f"{what} is not a PEM certificate chain") from None
    if b"".join(c.public_bytes(Encoding.PEM) for c in certs) != pem:
        raise _malformed(f"{what} is not in canonical PEM form")
    return [c.public_bytes(Encoding.DER) for c in certs]


def _ends_in_root(chain: list[bytes], root: bytes, what: str) -> None:
    if chain[-1] != root:
        got, want = _subject(chain[-1]), _subject(root)
        ends = f"in {got}" if got != want else "in another certificate of that name"
        raise EvidenceInvalid(
            "untrusted_root", f"{what} does not end in the trusted root {want} but {ends}"
        )


def _subject(der: bytes) -> str:
    try:
        return repr(x509.load_der_x509_certificate(der).subject.rfc4514_string())
    except Exception:  # cryptography parses lazily; a damaged name can fail here (KeyError)
        return "a certificate with an unreadable subject"


# -- dcap-qvl --


def _dcap(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except ValueError as e:
        sentence = _sentence(e)
        reason = next((r for p, r in _REASONS if re.search(p, sentence)), "refused")
        raise EvidenceInvalid(reason, f"dcap-qvl refused the evidence: {sentence}") from None
    except BaseException as e:
        # a Rust panic arrives as pyo3's PanicException, a BaseException: evidence that
        # crashes the verifier is refused, not a crash of ours
        if not isinstance(e, Exception) and type(e).__name__ != "PanicException":
            raise
        raise _malformed(f"dcap-qvl failed on the evidence: {_sentence(e)}") from None


def _sentence(e: BaseException) -> str:
    """dcap-qvl's message (an anyhow chain, several lines) as one line."""
    text = str(e).removeprefix("Verification failed: ")
    parts = [p.strip() for p in text.replace("Caused by:", "\n").splitlines()]
    parts = [re.sub(r"^\d+: ", "", p) for p in parts if p]
    parts = [re.sub(r"UnixTime\((\d+)\)", _iso, p) for p in parts]
    return " ".join(p if p.endswith(":") else p + ":" for p in parts).rstrip(":") or repr(e)


def _iso(m: re.Match[str]) -> str:
    when = datetime.datetime.fromtimestamp(int(m.group(1)), datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _verdict(report: Any, simulated: bool) -> Verdict:
    body = json.loads(report.to_json()).get("report", {}).get("SgxEnclave")
    if not isinstance(body, dict):
        raise _malformed("dcap-qvl verified a report that is not an SGX enclave report")
    return Verdict(
        tcb_status=str(report.status),
        advisories=tuple(report.advisory_ids),
        mrenclave=bytes.fromhex(body["mr_enclave"]),
        mrsigner=bytes.fromhex(body["mr_signer"]),
        isv_prod_id=int(body["isv_prod_id"]),
        isv_svn=int(body["isv_svn"]),
        debug=bool(bytes.fromhex(body["attributes"])[0] & DEBUG_FLAG),
        report_data=bytes.fromhex(body["report_data"]),
        simulated=simulated,
    )
