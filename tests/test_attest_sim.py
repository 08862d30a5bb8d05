"""Simulated SGX evidence in the real format: the quote v3 layout, the simulated PKI and
quoting enclave, and what the real verifier (dcap-qvl 0.7.0) says about what they make:
accepted under the simulated root, refused under Intel's, under another PKI's, outside
the collateral's window, with tampered documents or a changed byte."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dcap_qvl
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from mcnode.attest.pck_extension import SGX_EXTENSION_OID, PckExtension
from mcnode.attest.quote import (
    CERT_TYPE_PCK_CHAIN,
    INTEL_QE_VENDOR_ID,
    SIGNED_BYTES,
    Attributes,
    Quote,
    QuoteFormatError,
    ReportBody,
)
from mcnode.attest.sim_cli import sim_pki
from mcnode.attest.sim_pki import (
    DAY,
    ROOT_CA_CN,
    SIM_FMSPC,
    SIM_QE,
    SimPki,
    SimPkiError,
)
from mcnode.attest.sim_quote import QE_AUTH_DATA, SimQuotingEnclave
from mcnode.crypto import SeededRandom

DATA = Path(__file__).parent / "data" / "attestation"
#: The verification time of every test (2026-09-20); PKIs are made a day before it.
NOW = 1_790_000_000
MRENCLAVE = bytes.fromhex("a1" * 32)
MRSIGNER = bytes.fromhex("b2" * 32)
REPORT_DATA = hashlib.sha512(b"noise static key || block signing key").digest()


def collateral_of(data: bytes) -> Any:
    return dcap_qvl.QuoteCollateralV3.from_json(data.decode())


def verify(quote: bytes, collateral: bytes, root_der: bytes, now: int = NOW) -> dict[str, Any]:
    """What dcap-qvl verified, as its JSON report (ValueError when it refuses)."""
    report = dcap_qvl.verify_with_root_ca(quote, collateral_of(collateral), root_der, now)
    return json.loads(report.to_json())


@pytest.fixture(scope="module")
def pki() -> SimPki:
    return SimPki.generate(NOW - DAY, SeededRandom(1))


@pytest.fixture(scope="module")
def qe(pki: SimPki) -> SimQuotingEnclave:
    return SimQuotingEnclave(pki, SeededRandom(2))


@pytest.fixture(scope="module")
def quote(qe: SimQuotingEnclave) -> bytes:
    return qe.quote(MRENCLAVE, MRSIGNER, 7, 3, REPORT_DATA)


@pytest.fixture(scope="module")
def collateral(qe: SimQuotingEnclave) -> bytes:
    return qe.collateral(NOW - 3600)


# --- The quote layout, held to a real Intel-signed quote.


def test_real_quote_parses_and_reencodes_byte_for_byte() -> None:
    raw = (DATA / "sgx_quote").read_bytes()
    q = Quote.from_bytes(raw)
    assert q.to_bytes() == raw
    body = q.report_body
    assert body.mr_enclave.hex().startswith("33d8736d")
    assert body.mr_enclave.hex() == (
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    )
    assert body.mr_signer.hex() == (
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    )
    assert (body.isv_prod_id, body.isv_svn, body.debug) == (0, 0, False)
    assert body.attributes == Attributes(flags=0x05, xfrm=0xE7)
    assert body.report_data == b"Hello, world!".ljust(64, b"\0")
    assert q.header.qe_vendor_id == INTEL_QE_VENDOR_ID
    assert (q.header.version, q.header.attestation_key_type, q.header.tee_type) == (3, 2, 0)
    # Intel's QE: its MRSIGNER, product 1; its report binds the attestation key.
    qe_report = q.signature.qe_report
    assert qe_report.mr_signer.hex().startswith("8c4f5775d796503e")
    assert qe_report.isv_prod_id == 1
    bound = hashlib.sha256(q.signature.attestation_key + q.signature.qe_auth_data).digest()
    assert qe_report.report_data == bound + bytes(32)
    assert q.signed_bytes() == raw[:SIGNED_BYTES]
    assert q.signature.certification_data.cert_type == CERT_TYPE_PCK_CHAIN
    assert (q.pck_chain_pem() or b"").count(b"BEGIN CERTIFICATE") == 3


@pytest.mark.parametrize(
    ("offset", "value", "says"),
    [
        (0, b"\x04\x00", "version 4"),
        (2, b"\x03\x00", "attestation key type 3"),
        (4, b"\x81\x00\x00\x00", "TEE type 0x81"),
        (SIGNED_BYTES, b"\x00\x00\x00\x00", "signature data: truncated"),
        (SIGNED_BYTES, b"\xff\xff\xff\x00", "exceeds the limit"),
    ],
)
def test_quote_parser_refuses_what_is_not_a_v3_sgx_quote(
    offset: int, value: bytes, says: str
) -> None:
    raw = bytearray((DATA / "sgx_quote").read_bytes())
    raw[offset : offset + len(value)] = value
    with pytest.raises(QuoteFormatError, match=says):
        Quote.from_bytes(bytes(raw))


def test_quote_parser_refuses_truncation_trailing_bytes_and_inner_slack() -> None:
    raw = (DATA / "sgx_quote").read_bytes()
    for bad in (b"", raw[:47], raw[:SIGNED_BYTES], raw[:-1], raw + b"\0"):
        with pytest.raises(QuoteFormatError):
            Quote.from_bytes(bad)
    # Signature data one byte longer than its fields: refused, not skipped.
    q = Quote.from_bytes(raw)
    inner = q.signature.to_bytes() + b"\0"
    padded = raw[:SIGNED_BYTES] + len(inner).to_bytes(4, "little") + inner
    with pytest.raises(QuoteFormatError, match="signature data: 1 trailing bytes"):
        Quote.from_bytes(padded)


def test_report_body_is_384_bytes_and_rejects_wrong_field_sizes() -> None:
    body = ReportBody(MRENCLAVE, MRSIGNER, 1, 2, REPORT_DATA, Attributes(0x07, 0x03))
    raw = body.to_bytes()
    assert len(raw) == 384 and ReportBody.from_bytes(raw) == body and body.debug
    assert raw[48:56] == (0x07).to_bytes(8, "little")  # attributes.flags
    assert raw[64:96] == MRENCLAVE and raw[128:160] == MRSIGNER and raw[320:] == REPORT_DATA
    assert raw[256:260] == b"\x01\x00\x02\x00"  # isv_prod_id, isv_svn
    with pytest.raises(ValueError, match="mr_enclave"):
        ReportBody(MRENCLAVE[:31], MRSIGNER, 1, 2, REPORT_DATA, Attributes(0, 0))


def test_pck_extension_encodes_intels_real_extension_byte_for_byte() -> None:
    q = Quote.from_bytes((DATA / "sgx_quote").read_bytes())
    chain = q.pck_chain_pem() or b""
    leaf = x509.load_pem_x509_certificates(chain.rstrip(b"\0"))[0]
    real = leaf.extensions.get_extension_for_oid(x509.ObjectIdentifier(SGX_EXTENSION_OID))
    assert isinstance(real.value, x509.UnrecognizedExtension)
    parsed = dcap_qvl.parse_pck_extension_from_pem(chain)
    ours = PckExtension(
        ppid=parsed.ppid,
        fmspc=parsed.fmspc,
        cpu_svn=parsed.cpu_svn,
        pce_svn=parsed.pce_svn,
        pce_id=parsed.pce_id,
        sgx_type=parsed.sgx_type,
    )
    assert ours.to_der() == real.value.value
    assert PckExtension.from_json(ours.to_json()) == ours


# --- Simulated evidence through the real verifier.


def test_simulated_quote_verifies_under_its_root_with_what_was_put_in(
    pki: SimPki, quote: bytes, collateral: bytes
) -> None:
    report = verify(quote, collateral, pki.root_ca_der)
    body = report["report"]["SgxEnclave"]
    assert body["mr_enclave"] == MRENCLAVE.hex()
    assert body["mr_signer"] == MRSIGNER.hex()
    assert body["report_data"] == REPORT_DATA.hex()
    assert (body["isv_prod_id"], body["isv_svn"]) == (7, 3)
    assert report["status"] == "UpToDate" and report["advisory_ids"] == []
    assert report["qe_status"]["status"] == "UpToDate"
    assert bytes.fromhex(report["ppid"]) == pki.platform.ppid
    # Our parser reads the same quote, and it is not DEBUG by default.
    q = Quote.from_bytes(quote)
    assert q.to_bytes() == quote
    assert (q.report_body.mr_enclave, q.report_body.debug) == (MRENCLAVE, False)


def test_simulated_quote_is_made_as_intels_qe_makes_one(
    pki: SimPki, qe: SimQuotingEnclave, quote: bytes
) -> None:
    q = Quote.from_bytes(quote)
    sig = q.signature
    assert sig.attestation_key == qe.attestation_public_key
    assert sig.qe_auth_data == QE_AUTH_DATA
    bound = hashlib.sha256(sig.attestation_key + sig.qe_auth_data).digest()
    assert sig.qe_report.report_data == bound + bytes(32)
    assert (sig.qe_report.mr_signer, sig.qe_report.isv_svn) == (SIM_QE.mr_signer, SIM_QE.isv_svn)
    assert not sig.qe_report.debug
    assert q.pck_chain_pem() == pki.pck_chain_pem()
    assert (q.header.qe_svn, q.header.pce_svn) == (SIM_QE.isv_svn, pki.platform.pce_svn)
    parsed = dcap_qvl.parse_quote(quote)
    assert parsed.is_sgx() and parsed.fmspc() == SIM_FMSPC.hex().upper()


def test_intels_root_refuses_simulated_evidence(quote: bytes, collateral: bytes) -> None:
    with pytest.raises(ValueError, match="Verification failed"):
        dcap_qvl.verify(quote, collateral_of(collateral), NOW)


def test_another_pkis_evidence_is_refused_under_this_root(
    pki: SimPki, quote: bytes, collateral: bytes
) -> None:
    other = SimPki.generate(NOW - DAY, SeededRandom(99))
    other_qe = SimQuotingEnclave(other, SeededRandom(100))
    other_quote = other_qe.quote(MRENCLAVE, MRSIGNER, 7, 3, REPORT_DATA)
    other_collateral = other_qe.collateral(NOW - 3600)
    assert verify(other_quote, other_collateral, other.root_ca_der)["status"] == "UpToDate"
    for q, c in (
        (other_quote, other_collateral),
        (other_quote, collateral),
        (quote, other_collateral),
    ):
        with pytest.raises(ValueError):
            verify(q, c, pki.root_ca_der)


def test_debug_quotes_are_refused_by_the_pinned_verifier(
    pki: SimPki, qe: SimQuotingEnclave, collateral: bytes
) -> None:
    """Why simulated quotes are not DEBUG by default: dcap-qvl 0.7.0 refuses them all."""
    debug_quote = qe.quote(MRENCLAVE, MRSIGNER, 7, 3, REPORT_DATA, debug=True)
    assert Quote.from_bytes(debug_quote).report_body.debug
    with pytest.raises(ValueError, match="Debug mode is enabled"):
        verify(debug_quote, collateral, pki.root_ca_der)


def test_one_flipped_byte_never_changes_what_is_verified(
    pki: SimPki, quote: bytes, collateral: bytes
) -> None:
    """Every byte, one flip each (three masks in turn): refused, unless the byte is in the
    PCK chain's unsigned PEM text in a way that leaves the chain the verifier uses as it
    was. dcap-qvl then reports exactly the same claims: it tolerates whitespace changes
    in PEM, ignores the chain's copy of the root (the root is the anchor it is given) and
    bytes after the certification data. Our parser refuses the last kind outright."""
    c = collateral_of(collateral)
    expected = dcap_qvl.verify_with_root_ca(quote, c, pki.root_ca_der, NOW).to_json()
    original = Quote.from_bytes(quote)
    cert_data_at = len(quote) - len(original.pck_chain_pem() or b"") - 6  # type u16, len u32
    refused = 0
    for i in range(len(quote)):
        flipped = bytearray(quote)
        flipped[i] ^= (0x01, 0x80, 0xFF)[i % 3]
        try:
            report = dcap_qvl.verify_with_root_ca(bytes(flipped), c, pki.root_ca_der, NOW)
        except ValueError:
            refused += 1
            continue
        assert i >= cert_data_at + 2, f"flip at {i} accepted outside the certification data"
        assert report.to_json() == expected
        try:
            parsed = Quote.from_bytes(bytes(flipped))
        except QuoteFormatError:
            continue
        assert parsed.signed_bytes() == original.signed_bytes()
        assert parsed.signature.qe_report == original.signature.qe_report
    assert refused > 0.75 * len(quote)


def test_collateral_is_refused_outside_its_window(pki: SimPki, quote: bytes) -> None:
    issued, valid = NOW, 7 * DAY
    collateral = pki.collateral(issued, valid)
    assert verify(quote, collateral, pki.root_ca_der, issued)["status"] == "UpToDate"
    assert verify(quote, collateral, pki.root_ca_der, issued + valid - 1)["status"] == "UpToDate"
    with pytest.raises(ValueError, match="issue date is in the future"):
        verify(quote, collateral, pki.root_ca_der, issued - 1)
    with pytest.raises(ValueError, match=r"(?i)expired"):
        verify(quote, collateral, pki.root_ca_der, issued + valid + 1)


def _replaced(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    return edit


def _flip_hex_byte(at: int) -> Callable[[str], str]:
    def edit(text: str) -> str:
        raw = bytearray.fromhex(text)
        raw[at] ^= 1
        return raw.hex()

    return edit


@pytest.mark.parametrize(
    ("field", "edit", "says"),
    [
        ("tcb_info", _replaced('"pcesvn":1', '"pcesvn":0'), "invalid for tcb_info"),
        # The same meaning, one more byte: signatures cover the exact JSON text.
        ("tcb_info", _replaced('"UpToDate"', '"UpToDate" '), "invalid for tcb_info"),
        ("qe_identity", _replaced('"isvprodid":1', '"isvprodid":2'), "invalid for qe_identity"),
        ("qe_identity", _replaced('Mask":"FFFFFFFF"', 'Mask":"00000000"'), "for qe_identity"),
        ("tcb_info_signature", _flip_hex_byte(5), "invalid for tcb_info"),
        ("qe_identity_signature", _flip_hex_byte(40), "invalid for qe_identity"),
        ("pck_crl", _flip_hex_byte(-1), "InvalidCrlSignature"),
        ("root_ca_crl", _flip_hex_byte(-1), "InvalidCrlSignature"),
    ],
)
def test_tampered_collateral_is_refused(
    pki: SimPki,
    quote: bytes,
    collateral: bytes,
    field: str,
    edit: Callable[[str], str],
    says: str,
) -> None:
    doc = json.loads(collateral)
    doc[field] = edit(doc[field])
    with pytest.raises(ValueError, match=says):
        verify(quote, json.dumps(doc).encode(), pki.root_ca_der)


def test_collateral_has_the_shape_of_intels_pcs(pki: SimPki, collateral: bytes) -> None:
    doc = json.loads(collateral)
    assert list(doc) == [
        "pck_crl_issuer_chain",
        "root_ca_crl",
        "pck_crl",
        "tcb_info_issuer_chain",
        "tcb_info",
        "tcb_info_signature",
        "qe_identity_issuer_chain",
        "qe_identity",
        "qe_identity_signature",
    ]
    for chain in ("pck_crl_issuer_chain", "tcb_info_issuer_chain", "qe_identity_issuer_chain"):
        certs = x509.load_pem_x509_certificates(doc[chain].encode())
        assert len(certs) == 2 and certs[1] == pki.root_ca
    issuers = {
        crl: x509.load_der_x509_crl(bytes.fromhex(doc[crl])).issuer
        for crl in ("root_ca_crl", "pck_crl")
    }
    assert issuers == {"root_ca_crl": pki.root_ca.subject, "pck_crl": pki.platform_ca.subject}
    assert all(
        len(bytes.fromhex(doc[s])) == 64 for s in ("tcb_info_signature", "qe_identity_signature")
    )
    tcb_info, qe_identity = json.loads(doc["tcb_info"]), json.loads(doc["qe_identity"])
    assert (tcb_info["id"], tcb_info["version"], tcb_info["fmspc"]) == ("SGX", 3, "53494D000000")
    levels = tcb_info["tcbLevels"]
    assert [c["svn"] for c in levels[0]["tcb"]["sgxtcbcomponents"]] == list(pki.platform.cpu_svn)
    assert (qe_identity["id"], qe_identity["version"]) == ("QE", 2)
    assert qe_identity["mrsigner"] == SIM_QE.mr_signer.hex().upper()
    assert qe_identity["isvprodid"] == SIM_QE.isv_prod_id


def test_collateral_can_declare_the_platform_out_of_date(pki: SimPki, quote: bytes) -> None:
    advisories = ("MCNODE-SIM-SA-0001",)
    out_of_date = pki.collateral(NOW - 3600, tcb_status="OutOfDate", advisory_ids=advisories)
    report = verify(quote, out_of_date, pki.root_ca_der)
    assert (report["status"], report["advisory_ids"]) == ("OutOfDate", list(advisories))
    with pytest.raises(ValueError, match="Revoked"):
        verify(quote, pki.collateral(NOW - 3600, tcb_status="Revoked"), pki.root_ca_der)


def test_the_root_and_every_certificate_say_simulated_not_intel(pki: SimPki) -> None:
    cn = x509.NameOID.COMMON_NAME
    assert pki.root_ca.subject.get_attributes_for_oid(cn)[0].value == ROOT_CA_CN
    for cert in (pki.root_ca, pki.platform_ca, pki.pck, pki.tcb_signing):
        subject = cert.subject.rfc4514_string()
        assert "SIMULATED" in subject and "not Intel" in subject
    assert "Intel Corporation" not in pki.root_ca.subject.rfc4514_string().replace("not Intel", "")


def test_the_same_seed_and_time_make_the_same_pki_and_collateral(pki: SimPki) -> None:
    again = SimPki.generate(NOW - DAY, SeededRandom(1))
    assert again.root_ca_der == pki.root_ca_der
    assert again.collateral(NOW) == pki.collateral(NOW)
    assert SimPki.generate(NOW - DAY, SeededRandom(2)).root_ca_der != pki.root_ca_der


# --- One PKI per network, on disk.


def test_saved_and_loaded_pki_verifies_identically(
    pki: SimPki, quote: bytes, tmp_path: Path
) -> None:
    pki.save(tmp_path / "pki")
    loaded = SimPki.load(tmp_path / "pki")
    assert loaded.root_ca_der == pki.root_ca_der and loaded.platform == pki.platform
    assert loaded.created == pki.created
    assert loaded.collateral(NOW - 3600) == pki.collateral(NOW - 3600)
    quote_after = SimQuotingEnclave(loaded, SeededRandom(2)).quote(
        MRENCLAVE, MRSIGNER, 7, 3, REPORT_DATA
    )
    assert quote_after == quote
    before = verify(quote, pki.collateral(NOW - 3600), pki.root_ca_der)
    assert verify(quote_after, loaded.collateral(NOW - 3600), loaded.root_ca_der) == before
    root_pem = (tmp_path / "pki" / "root-ca.pem").read_bytes()
    assert (
        x509.load_pem_x509_certificate(root_pem).public_bytes(serialization.Encoding.DER)
        == pki.root_ca_der
    )


def test_private_keys_are_0600_and_certificates_public(pki: SimPki, tmp_path: Path) -> None:
    pki.save(tmp_path)
    keys = sorted(p.name for p in tmp_path.glob("*.key"))
    assert keys == ["pck.key", "platform-ca.key", "root-ca.key", "tcb-signing.key"]
    for name in keys:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    for name in ("root-ca.pem", "platform-ca.pem", "pck.pem", "tcb-signing.pem", "pki.json"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode & 0o400 and not mode & 0o022
    # A key others may read is refused, not used.
    os.chmod(tmp_path / "pck.key", 0o644)
    with pytest.raises(SimPkiError, match=r"pck\.key"):
        SimPki.load(tmp_path)


def test_save_refuses_to_replace_a_pki(pki: SimPki, tmp_path: Path) -> None:
    pki.save(tmp_path)
    before = (tmp_path / "root-ca.key").read_bytes()
    with pytest.raises(SimPkiError, match="already there"):
        SimPki.generate(NOW, SeededRandom(5)).save(tmp_path)
    assert (tmp_path / "root-ca.key").read_bytes() == before


def test_load_refuses_a_pki_whose_parts_do_not_belong_together(pki: SimPki, tmp_path: Path) -> None:
    pki.save(tmp_path / "a")
    SimPki.generate(NOW, SeededRandom(6)).save(tmp_path / "b")
    (tmp_path / "a" / "tcb-signing.key").write_bytes(
        (tmp_path / "b" / "tcb-signing.key").read_bytes()
    )
    with pytest.raises(SimPkiError, match=r"not the key of tcb-signing\.pem"):
        SimPki.load(tmp_path / "a")
    pki.save(tmp_path / "c")
    doc = json.loads((tmp_path / "c" / "pki.json").read_text())
    doc["platform"]["pce_svn"] = 9
    (tmp_path / "c" / "pki.json").write_text(json.dumps(doc))
    with pytest.raises(SimPkiError, match="SGX extension"):
        SimPki.load(tmp_path / "c")
    with pytest.raises(SimPkiError, match="no simulated PKI"):
        SimPki.load(tmp_path / "nothing")


# --- The command line.


def test_cli_init_writes_a_pki_and_prints_its_fingerprint(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    result = CliRunner().invoke(sim_pki, ["init", "--out", str(out), "--seed", "3"])
    assert result.exit_code == 0, result.output
    root_der = x509.load_pem_x509_certificate((out / "root-ca.pem").read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert hashlib.sha256(root_der).hexdigest() in result.output
    assert str(out / "root-ca.pem") in result.output
    again = CliRunner().invoke(sim_pki, ["init", "--out", str(out)])
    assert again.exit_code == 2
    assert again.output.count("\n") == 1 and "already there" in again.output


def test_cli_collateral_verifies_quotes_of_the_saved_pki(tmp_path: Path) -> None:
    runner = CliRunner()
    assert (
        runner.invoke(sim_pki, ["init", "--out", str(tmp_path / "pki"), "--seed", "4"]).exit_code
        == 0
    )
    # Certificates start at the clock's now: verify a day and more later.
    later = int(SimPki.load(tmp_path / "pki").created) + DAY
    args = ["collateral", "--pki", str(tmp_path / "pki"), "--out", str(tmp_path / "c.json")]
    result = runner.invoke(sim_pki, [*args, "--now", str(later), "--valid-days", "2"])
    assert result.exit_code == 0, result.output
    pki = SimPki.load(tmp_path / "pki")
    q = SimQuotingEnclave(pki).quote(MRENCLAVE, MRSIGNER, 1, 1, REPORT_DATA)
    collateral = (tmp_path / "c.json").read_bytes()
    assert verify(q, collateral, pki.root_ca_der, later + DAY)["status"] == "UpToDate"
    with pytest.raises(ValueError):
        verify(q, collateral, pki.root_ca_der, later + 3 * DAY)
    missing = runner.invoke(sim_pki, ["collateral", "--pki", str(tmp_path / "no"), "--out", "x"])
    assert missing.exit_code == 2 and "no simulated PKI" in missing.output


def test_cli_help_says_it_is_simulated() -> None:
    result = CliRunner().invoke(sim_pki, ["--help"])
    assert result.exit_code == 0 and "SIMULATED" in result.output and "not Intel" in result.output
