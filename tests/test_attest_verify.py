"""Attestation evidence: `verify_evidence` (dcap-qvl, then the policy) and `mcnode attest
verify`, on a real Intel-signed quote and its collateral (tests/data/attestation), and on
the same evidence re-signed under a throwaway root (tests/attest_forge.py) where a test
needs a quote that says something else (DEBUG, SVN, report data).

Times: the sample's collateral is valid from 2025-06-19 to 2025-07-19."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from pathlib import Path
from typing import Any

import dcap_qvl
import pytest
from click.testing import CliRunner, Result
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from attest_forge import DATA, forge, sample
from mcnode.attest.cli import JSON_KEYS
from mcnode.attest.roots import INTEL_SGX_ROOT_CA_DER
from mcnode.attest.verify import (
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
    root_ca_der_from_pem,
    verify_evidence,
)
from mcnode.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")

JULY_1 = 1751328000  # 2025-07-01
JULY_19_9H = 1752915600  # 2025-07-19 09:00, still inside the window
JULY_20 = 1752969600  # after TCB info's nextUpdate
JUNE_1 = 1748736000  # before its issueDate
NOV_30_2026 = 1796083200  # the CRLs expired in April 2026

MRENCLAVE = bytes.fromhex("33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb")
MRSIGNER = bytes.fromhex("815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6")
STATUS = "ConfigurationAndSWHardeningNeeded"
ADVISORIES = ("INTEL-SA-00289", "INTEL-SA-00615")

QUOTE, COLLATERAL = sample()
QUOTE_FILE = DATA / "sgx_quote"
COLLATERAL_FILE = DATA / "sgx_quote_collateral.json"


def policy(**kw: Any) -> Policy:
    """The policy the sample passes: its MRENCLAVE, its status and both advisories."""
    base: dict[str, Any] = {
        "mrenclaves": frozenset({MRENCLAVE}),
        "allowed_statuses": frozenset({STATUS}),
        "allowed_advisories": frozenset(ADVISORIES),
    }
    return Policy(**{**base, **kw})


def refusal(
    quote: bytes = QUOTE,
    collateral: bytes | dict[str, Any] = COLLATERAL,
    pol: Policy | None = None,
    now: int = JULY_1,
    root: bytes | None = None,
) -> AttestationError:
    with pytest.raises(AttestationError) as info:
        verify_evidence(quote, collateral, pol or policy(), now, root)
    return info.value


def self_signed_root(cn: str = "an unrelated root") -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(datetime.datetime(2040, 1, 1, tzinfo=datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


# -- the real quote, the library --


def test_the_real_quote_verifies_with_its_status_and_advisories_allowed() -> None:
    v = verify_evidence(QUOTE, COLLATERAL, policy(), JULY_1)
    assert v == Verdict(
        tcb_status=STATUS,
        advisories=ADVISORIES,
        mrenclave=MRENCLAVE,
        mrsigner=MRSIGNER,
        isv_prod_id=0,
        isv_svn=0,
        debug=False,
        report_data=b"Hello, world!" + bytes(51),
        simulated=False,
    )
    # the collateral as a dict, and the last hours of its window
    assert verify_evidence(QUOTE, json.loads(COLLATERAL), policy(), JULY_19_9H) == v


def test_refused_unless_its_tcb_status_is_allowed() -> None:
    e = refusal(pol=policy(allowed_statuses=frozenset()))
    assert isinstance(e, PolicyRefused) and e.reason == "tcb_status"
    assert str(e) == f"TCB status {STATUS} is not allowed"
    assert e.verdict is not None and e.verdict.mrenclave == MRENCLAVE  # the chain verified
    e = refusal(pol=policy(allowed_statuses=frozenset({"SWHardeningNeeded"})))
    assert e.reason == "tcb_status"


@pytest.mark.parametrize("missing", ADVISORIES)
def test_refused_unless_every_advisory_is_allowed(missing: str) -> None:
    e = refusal(pol=policy(allowed_advisories=frozenset(ADVISORIES) - {missing}))
    assert isinstance(e, PolicyRefused) and e.reason == "advisory"
    assert str(e) == f"advisory {missing} is not allowed"


def test_refused_when_another_mrenclave_is_required() -> None:
    other = hashlib.sha256(b"another enclave").digest()
    e = refusal(pol=policy(mrenclaves=frozenset({other})))
    assert isinstance(e, PolicyRefused) and e.reason == "mrenclave"
    assert str(e) == "MRENCLAVE 33d8736d… is not trusted"
    # one trusted MRENCLAVE among several is enough
    verify_evidence(QUOTE, COLLATERAL, policy(mrenclaves=frozenset({other, MRENCLAVE})), JULY_1)


def test_mrsigner_policy_accepts_its_signer_product_and_svn() -> None:
    p = policy(mrenclaves=frozenset(), mrsigner=MRSIGNER, isv_prod_id=0, min_isv_svn=0)
    assert verify_evidence(QUOTE, COLLATERAL, p, JULY_1).mrsigner == MRSIGNER


@pytest.mark.parametrize(
    ("signer", "prod", "min_svn", "reason", "message"),
    [
        (MRSIGNER, 0, 1, "isv_svn", "ISV SVN 0 is below the minimum 1"),
        (MRSIGNER, 1, 0, "isv_prod_id", "ISV product id 0 is not the trusted product 1"),
        (bytes(32), 0, 0, "mrsigner", "MRSIGNER 815f42f1… is not trusted"),
    ],
)
def test_mrsigner_policy_refusals(
    signer: bytes, prod: int, min_svn: int, reason: str, message: str
) -> None:
    p = policy(mrenclaves=frozenset(), mrsigner=signer, isv_prod_id=prod, min_isv_svn=min_svn)
    e = refusal(pol=p)
    assert isinstance(e, PolicyRefused) and (e.reason, str(e)) == (reason, message)


def test_naming_both_an_mrenclave_and_an_mrsigner_requires_both() -> None:
    both = policy(mrsigner=MRSIGNER, isv_prod_id=0, min_isv_svn=0)
    verify_evidence(QUOTE, COLLATERAL, both, JULY_1)
    assert refusal(pol=policy(mrsigner=bytes(32), isv_prod_id=0, min_isv_svn=0)).reason == (
        "mrsigner"
    )


@pytest.mark.parametrize(
    ("now", "reason", "words"),
    [
        (JUNE_1, "collateral_not_yet_valid", "TCBInfo issue date is in the future"),
        (JULY_20, "collateral_expired", "TCBInfo expired"),
        (NOV_30_2026, "collateral_expired", "next_update: 2026-04-03T11:21:57Z"),
    ],
)
def test_refused_outside_the_collaterals_window(now: int, reason: str, words: str) -> None:
    e = refusal(now=now)
    assert isinstance(e, EvidenceInvalid) and e.reason == reason and e.verdict is None
    assert words in str(e) and "\n" not in str(e) and "Caused by" not in str(e)


def test_refused_with_any_bit_of_the_quote_flipped() -> None:
    """Every position, and two bit patterns: nothing verifies, nothing escapes as anything
    but an AttestationError. (dcap-qvl alone verifies 872 of the ^0x01 flips: see
    tests/data/attestation/README.md.)"""
    anyone = policy(mrenclaves=frozenset(), any_identity=True)
    reasons: set[str] = set()
    for i in range(len(QUOTE)):
        for bit in (0x01, 0x80) if i % 7 == 0 else (0x01,):
            flipped = bytearray(QUOTE)
            flipped[i] ^= bit
            reasons.add(refusal(bytes(flipped), pol=anyone).reason)
    assert {"bad_signature", "malformed", "untrusted_root"} <= reasons


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        (QUOTE + b"\0", "malformed"),  # dcap-qvl alone verifies this one
        (QUOTE[:-1], "unreadable"),  # dcap-qvl cannot parse a cut certification data
        (QUOTE[:-200], "unreadable"),
    ],
)
def test_refused_with_bytes_added_or_cut(quote: bytes, reason: str) -> None:
    assert refusal(quote).reason == reason


SIGNED_FIELDS = (
    "tcb_info",
    "tcb_info_signature",
    "qe_identity",
    "qe_identity_signature",
    "tcb_info_issuer_chain",
    "qe_identity_issuer_chain",
    "pck_crl_issuer_chain",
    "root_ca_crl",
    "pck_crl",
)


@pytest.mark.parametrize("field", SIGNED_FIELDS)
def test_refused_with_any_character_of_the_collateral_flipped(field: str) -> None:
    fields = json.loads(COLLATERAL)
    text: str = fields[field]
    for i in range(len(text)):
        flipped = text[:i] + chr(ord(text[i]) ^ 0x01) + text[i + 1 :]
        e = refusal(collateral={**fields, field: flipped})
        assert isinstance(e, AttestationRefused | EvidenceUnreadable), (i, e)


def test_the_real_quote_refused_under_an_unrelated_root() -> None:
    root = self_signed_root().public_bytes(Encoding.DER)
    e = refusal(pol=policy(allow_simulation=True), root=root)
    assert isinstance(e, EvidenceInvalid) and e.reason == "untrusted_root"
    assert "'CN=an unrelated root'" in str(e)
    # and without allow_simulation, nothing is even tried
    e = refusal(root=root)
    assert isinstance(e, PolicyRefused) and e.reason == "simulation_not_allowed"
    assert e.verdict is None


def test_our_intel_root_is_the_one_dcap_qvl_trusts() -> None:
    collateral = dcap_qvl.QuoteCollateralV3.from_json(COLLATERAL.decode())
    ours = dcap_qvl.verify_with_root_ca(QUOTE, collateral, INTEL_SGX_ROOT_CA_DER, JULY_1)
    theirs = dcap_qvl.verify(QUOTE, collateral, JULY_1)
    assert ours.to_json() == theirs.to_json()
    chain = x509.load_pem_x509_certificates(dcap_qvl.parse_quote(QUOTE).cert_chain_pem_bytes())
    assert chain[-1].public_bytes(Encoding.DER) == INTEL_SGX_ROOT_CA_DER
    assert hashlib.sha256(INTEL_SGX_ROOT_CA_DER).hexdigest() == (
        "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3"
    )


@pytest.mark.parametrize(
    ("quote", "collateral"),
    [
        (b"", COLLATERAL),
        (QUOTE[:100], COLLATERAL),
        (QUOTE, b"not json"),
        (QUOTE, b"[]"),
        (QUOTE, json.dumps({**json.loads(COLLATERAL), "tcb_info_signature": "zz"}).encode()),
        (QUOTE, json.dumps({k: v for k, v in json.loads(COLLATERAL).items() if k != "pck_crl"})),
        (QUOTE, {**json.loads(COLLATERAL), "pck_crl": b"\x30"}),
    ],
)
def test_unreadable_input_is_not_a_refusal(
    quote: bytes, collateral: bytes | str | dict[str, Any]
) -> None:
    with pytest.raises(EvidenceUnreadable) as info:
        verify_evidence(quote, collateral, policy(), JULY_1)
    assert info.value.reason == "unreadable" and "\n" not in str(info.value)


def test_a_root_that_is_not_a_certificate_is_unreadable() -> None:
    for pem in (b"", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        with pytest.raises(EvidenceUnreadable):
            root_ca_der_from_pem(pem)
    with pytest.raises(EvidenceUnreadable):
        verify_evidence(QUOTE, COLLATERAL, policy(allow_simulation=True), JULY_1, b"junk")
    root = self_signed_root()
    assert root_ca_der_from_pem(root.public_bytes(Encoding.PEM)) == root.public_bytes(Encoding.DER)


# -- the policy itself --


@pytest.mark.parametrize(
    "kw",
    [
        {},  # no identity at all, and not asked for
        {"any_identity": True, "mrenclaves": frozenset({MRENCLAVE})},
        {"mrsigner": MRSIGNER},  # no product, no SVN
        {"mrsigner": MRSIGNER, "isv_prod_id": 0},
        {"mrenclaves": frozenset({MRENCLAVE}), "isv_prod_id": 0, "min_isv_svn": 0},
        {"mrenclaves": frozenset({MRENCLAVE[:31]})},
        {"mrsigner": MRSIGNER.hex(), "isv_prod_id": 0, "min_isv_svn": 0},
        {"mrsigner": MRSIGNER, "isv_prod_id": 0, "min_isv_svn": 70000},
        {"any_identity": True, "allowed_statuses": frozenset({"Revoked"})},
        {"any_identity": True, "allowed_statuses": frozenset({"UptoDate"})},
        {"any_identity": True, "allowed_advisories": "INTEL-SA-00289"},
    ],
)
def test_a_policy_must_be_explicit_and_well_formed(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Policy(**kw)


def verdict(**kw: Any) -> Verdict:
    base: dict[str, Any] = {
        "tcb_status": "UpToDate",
        "advisories": (),
        "mrenclave": MRENCLAVE,
        "mrsigner": MRSIGNER,
        "isv_prod_id": 0,
        "isv_svn": 0,
        "debug": False,
        "report_data": bytes(64),
        "simulated": False,
    }
    return Verdict(**{**base, **kw})


def test_check_policy_refuses_debug_and_simulation_unless_each_is_allowed() -> None:
    p = Policy(mrenclaves=frozenset({MRENCLAVE}))
    check_policy(verdict(), p)
    for v, reason, allow in [
        (verdict(debug=True), "debug", {"allow_debug": True}),
        (verdict(simulated=True), "simulation_not_allowed", {"allow_simulation": True}),
    ]:
        with pytest.raises(PolicyRefused) as info:
            check_policy(v, p)
        assert info.value.reason == reason and info.value.verdict == v
        check_policy(v, Policy(mrenclaves=frozenset({MRENCLAVE}), **allow))
    # allowing simulation does not allow debug
    with pytest.raises(PolicyRefused, match="DEBUG"):
        check_policy(
            verdict(simulated=True, debug=True),
            Policy(mrenclaves=frozenset({MRENCLAVE}), allow_simulation=True),
        )


def test_any_identity_still_holds_the_platform_to_the_policy() -> None:
    anyone = Policy(any_identity=True)
    check_policy(verdict(mrenclave=bytes(32), mrsigner=bytes(32)), anyone)
    with pytest.raises(PolicyRefused, match="TCB status OutOfDate is not allowed"):
        check_policy(verdict(tcb_status="OutOfDate"), anyone)


def test_report_data_binds_nonce_identity_and_block_signer() -> None:
    nonce, identity, signer = b"n" * 16, bytes(range(32)), bytes(range(32, 64))
    expected = expected_report_data(nonce, identity, signer)
    assert expected == hashlib.sha256(nonce + identity + signer).digest() + bytes(32)
    assert (
        len(
            {
                expected,
                expected_report_data(b"m" * 16, identity, signer),
                expected_report_data(nonce, signer, identity),
            }
        )
        == 3
    )
    check_report_data(verdict(report_data=expected), expected)
    with pytest.raises(PolicyRefused) as info:
        check_report_data(verdict(report_data=expected[:-1] + b"\1"), expected)
    assert info.value.reason == "report_data"
    with pytest.raises(ValueError):
        expected_report_data(nonce, identity[:31], signer)
    with pytest.raises(ValueError):
        check_report_data(verdict(), expected[:32])


# -- evidence re-signed under a throwaway root (the simulated path) --


def test_simulated_evidence_verifies_only_under_its_root_and_when_allowed() -> None:
    f = forge()
    v = verify_evidence(f.quote, f.collateral, policy(allow_simulation=True), JULY_1, f.root_der)
    assert v.simulated and (v.tcb_status, v.advisories, v.mrenclave) == (
        STATUS,
        ADVISORIES,
        MRENCLAVE,
    )
    # against Intel's root, it is refused; against another throwaway root, too
    assert refusal(f.quote, f.collateral).reason == "untrusted_root"
    other = forge()
    e = refusal(f.quote, f.collateral, policy(allow_simulation=True), root=other.root_der)
    assert e.reason == "untrusted_root"
    assert refusal(f.quote, f.collateral, root=f.root_der).reason == "simulation_not_allowed"


def test_simulated_report_data_and_svn_are_what_the_quote_says() -> None:
    identity, signer = bytes(range(32)), bytes(range(32, 64))
    expected = expected_report_data(b"nonce-0123456789", identity, signer)
    f = forge(report_data=expected, isv_svn=3, isv_prod_id=7)
    p = Policy(
        mrsigner=MRSIGNER,
        isv_prod_id=7,
        min_isv_svn=3,
        allow_simulation=True,
        allowed_statuses=frozenset({STATUS}),
        allowed_advisories=frozenset(ADVISORIES),
    )
    v = verify_evidence(f.quote, f.collateral, p, JULY_1, f.root_der)
    assert (v.isv_prod_id, v.isv_svn, v.report_data) == (7, 3, expected)
    check_report_data(v, expected)
    with pytest.raises(PolicyRefused, match="report data"):
        check_report_data(v, expected_report_data(b"nonce-0123456789", signer, identity))
    stricter = dataclasses.replace(p, min_isv_svn=4)
    assert refusal(f.quote, f.collateral, stricter, root=f.root_der).reason == "isv_svn"


@pytest.mark.parametrize("allow_debug", [False, True])
def test_a_debug_enclave_is_refused_even_with_allow_debug(allow_debug: bool) -> None:
    """dcap-qvl 0.7 refuses an enclave with the DEBUG attribute, and its Python API has no
    switch to allow one: `allow_debug` cannot loosen that (see the report). If a dcap-qvl
    upgrade changes it, this test says so."""
    f = forge(debug=True)
    p = policy(allow_simulation=True, allow_debug=allow_debug)
    e = refusal(f.quote, f.collateral, p, root=f.root_der)
    assert isinstance(e, EvidenceInvalid) and e.reason == "debug"
    assert str(e) == "dcap-qvl refused the evidence: Debug mode is enabled"


# -- the CLI --


def run(*args: str) -> Result:
    return CliRunner().invoke(main, ["attest", "verify", *args], prog_name="mcnode")


SAMPLE = ("--quote", str(QUOTE_FILE), "--collateral", str(COLLATERAL_FILE))
ALLOW = (
    "--allow-status",
    STATUS,
    "--allow-advisory",
    ADVISORIES[0],
    "--allow-advisory",
    ADVISORIES[1],
    "--now",
    str(JULY_1),
)


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    r = run(*args, "--json")
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    obj = json.loads(r.stdout)
    assert tuple(obj) == JSON_KEYS
    assert (obj["reason"] is None) == obj["verified"] == (r.exit_code == 0)
    return r.exit_code, obj


def test_cli_verifies_the_real_quote() -> None:
    code, obj = run_json(*SAMPLE, *ALLOW, "--mrenclave", MRENCLAVE.hex())
    assert code == 0
    assert obj == {
        "verified": True,
        "tcb_status": STATUS,
        "advisories": list(ADVISORIES),
        "mrenclave": MRENCLAVE.hex(),
        "mrsigner": MRSIGNER.hex(),
        "isv_prod_id": 0,
        "isv_svn": 0,
        "debug": False,
        "report_data": (b"Hello, world!" + bytes(51)).hex(),
        "reason": None,
        "identity_required": True,
    }
    r = run(
        *SAMPLE, *ALLOW, "--mrsigner", MRSIGNER.hex(), "--isv-prod-id", "0", "--min-isv-svn", "0"
    )
    assert r.exit_code == 0 and r.stdout.startswith("VERIFIED against Intel's SGX root")
    assert MRENCLAVE.hex() in r.stdout and "no enclave identity" not in r.stdout


def test_cli_says_when_no_identity_was_required() -> None:
    code, obj = run_json(*SAMPLE, *ALLOW)
    assert code == 0 and obj["identity_required"] is False
    r = run(*SAMPLE, *ALLOW)
    assert "no enclave identity was required" in r.stdout


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (ALLOW[2:], f"TCB status {STATUS} is not allowed"),
        (ALLOW[:4] + ALLOW[6:], f"advisory {ADVISORIES[1]} is not allowed"),
        ((*ALLOW, "--mrenclave", "00" * 32), "MRENCLAVE 33d8736d… is not trusted"),
        (
            (*ALLOW, "--mrsigner", MRSIGNER.hex(), "--isv-prod-id", "0", "--min-isv-svn", "1"),
            "ISV SVN 0 is below the minimum 1",
        ),
    ],
)
def test_cli_policy_refusals_carry_the_quotes_fields(args: tuple[str, ...], reason: str) -> None:
    code, obj = run_json(*SAMPLE, *args)
    assert code == 1 and obj["reason"] == reason
    assert obj["mrenclave"] == MRENCLAVE.hex() and obj["tcb_status"] == STATUS
    r = run(*SAMPLE, *args)
    assert r.exit_code == 1 and r.stdout.count("\n") == 1 and reason in r.stdout


@pytest.mark.parametrize("now", [JUNE_1, JULY_20])
def test_cli_chain_refusals_have_null_fields(now: int) -> None:
    code, obj = run_json(*SAMPLE, *ALLOW[:-1], str(now))
    assert code == 1 and obj["reason"].startswith("dcap-qvl refused the evidence: TCBInfo")
    assert all(obj[k] is None for k in JSON_KEYS[1:9])


def test_cli_refuses_the_real_quote_under_an_unrelated_root(tmp_path: Path) -> None:
    pem = tmp_path / "root.pem"
    pem.write_bytes(self_signed_root().public_bytes(Encoding.PEM))
    code, obj = run_json(*SAMPLE, *ALLOW, "--root-ca", str(pem))
    assert code == 1 and "trusted root 'CN=an unrelated root'" in obj["reason"]


def test_cli_verifies_simulated_evidence_under_its_root(tmp_path: Path) -> None:
    f = forge()
    (tmp_path / "q").write_bytes(f.quote)
    (tmp_path / "c.json").write_text(json.dumps(f.collateral))
    (tmp_path / "root.pem").write_bytes(f.root_pem)
    files = ("--quote", str(tmp_path / "q"), "--collateral", str(tmp_path / "c.json"))
    code, obj = run_json(*files, *ALLOW, "--root-ca", str(tmp_path / "root.pem"))
    assert code == 0 and obj["mrenclave"] == MRENCLAVE.hex()
    r = run(*files, *ALLOW, "--root-ca", str(tmp_path / "root.pem"))
    assert r.stdout.startswith("VERIFIED against a simulated root")
    code, _ = run_json(*files, *ALLOW)  # without the root: Intel's, and refused
    assert code == 1


def test_cli_unreadable_input_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "short").write_bytes(QUOTE[:100])
    (tmp_path / "key.pem").write_text(
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    cases = [
        ("--quote", str(tmp_path / "missing"), "--collateral", str(COLLATERAL_FILE)),
        ("--quote", str(tmp_path / "short"), "--collateral", str(COLLATERAL_FILE)),
        ("--quote", str(QUOTE_FILE), "--collateral", str(tmp_path / "bad.json")),
        (*SAMPLE, "--mrenclave", "33d8736d"),
        (*SAMPLE, "--mrenclave", "zz" * 32),
        (*SAMPLE, "--mrsigner", MRSIGNER.hex()),
        (*SAMPLE, "--mrsigner", MRSIGNER.hex(), "--isv-prod-id", "0"),
        (*SAMPLE, "--min-isv-svn", "0"),
        (*SAMPLE, "--root-ca", str(tmp_path / "key.pem")),
        (*SAMPLE, "--root-ca", str(tmp_path / "bad.json")),
        (*SAMPLE, "--allow-status", "Revoked"),
    ]
    for args in cases:
        r = run(*args)
        assert r.exit_code == 2, (args, r.output)
        assert r.stdout == "" and r.stderr.startswith("error: "), args
        assert r.stderr.count("\n") == 1, args
        code, obj = run_json(*args)
        assert code == 2 and obj["verified"] is False and obj["reason"], args


def test_cli_never_verifies_a_flipped_quote(tmp_path: Path) -> None:
    for i in range(0, len(QUOTE), 50):
        flipped = bytearray(QUOTE)
        flipped[i] ^= 0x01
        (tmp_path / "q").write_bytes(flipped)
        r = run("--quote", str(tmp_path / "q"), "--collateral", str(COLLATERAL_FILE), *ALLOW)
        assert r.exit_code in (1, 2), i
        assert r.exception is None or isinstance(r.exception, SystemExit), (i, r.exception)
