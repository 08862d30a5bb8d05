"""Test-only evidence under a throwaway root: the real sample quote and collateral
(tests/data/attestation), every signature redone with fresh P-256 keys, so that a test can
change what the enclave report says (DEBUG, MRENCLAVE, SVN, report data) and still hand
dcap-qvl a chain it verifies with `verify_with_root_ca`.

Kept: the sample's header, its QE report (re-signed, with a new attestation-key hash),
the PCK certificate's Intel SGX extension (so the platform still matches the sample's
TCB info), the TCB info and QE identity JSON (re-signed). New: the root, PCK CA, PCK and
TCB-signing certificates, both CRLs, the attestation key. Not the project's simulated
PKI (that is `mcnode.attest.sim_*`); this only exercises the verifier.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

DATA = Path(__file__).parent / "data" / "attestation"
SGX_EXTENSION = x509.ObjectIdentifier("1.2.840.113741.1.13.1")
_START = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
_END = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)

# offsets in the enclave report body (after the 48-byte header)
ATTRIBUTES, MRENCLAVE, MRSIGNER, PROD_ID, SVN, REPORT_DATA = 48, 64, 128, 256, 258, 320


@dataclass(frozen=True)
class Forged:
    quote: bytes
    collateral: dict[str, Any]
    root_der: bytes
    root_pem: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
    extra: x509.ExtensionType | None = None,
) -> x509.Certificate:
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_START)
        .not_valid_after(_END)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if extra is not None:
        b = b.add_extension(extra, critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _crl(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(_START)
        .next_update(_END)
        .add_extension(x509.CRLNumber(1), critical=False)
        .sign(key, hashes.SHA256())
    )
    return crl.public_bytes(Encoding.DER)


def _raw_sig(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def sample() -> tuple[bytes, bytes]:
    return (DATA / "sgx_quote").read_bytes(), (DATA / "sgx_quote_collateral.json").read_bytes()


def forge(
    *,
    debug: bool = False,
    mrenclave: bytes | None = None,
    mrsigner: bytes | None = None,
    isv_prod_id: int | None = None,
    isv_svn: int | None = None,
    report_data: bytes | None = None,
) -> Forged:
    quote, collateral_json = sample()
    collateral = json.loads(collateral_json)

    body = bytearray(quote[48:432])
    if debug:
        body[ATTRIBUTES] |= 0x02
    for offset, value in ((MRENCLAVE, mrenclave), (MRSIGNER, mrsigner), (REPORT_DATA, report_data)):
        if value is not None:
            body[offset : offset + len(value)] = value
    if isv_prod_id is not None:
        struct.pack_into("<H", body, PROD_ID, isv_prod_id)
    if isv_svn is not None:
        struct.pack_into("<H", body, SVN, isv_svn)
    signed = quote[:48] + bytes(body)

    sig = quote[436:]
    qe_report = bytearray(sig[128:512])
    qad_len = struct.unpack_from("<H", sig, 576)[0]
    qad = sig[578 : 578 + qad_len]
    real_leaf = x509.load_pem_x509_certificates(sig[578 + qad_len + 6 :].rstrip(b"\0"))[0]
    sgx_ext = real_leaf.extensions.get_extension_for_oid(SGX_EXTENSION).value

    root_key, ca_key, pck_key, tcb_key, att_key = (_key() for _ in range(5))
    root = _cert("mcnode test root", root_key, None, root_key, ca=True)
    pck_ca = _cert("mcnode test PCK CA", ca_key, root, root_key, ca=True)
    pck = _cert("mcnode test PCK", pck_key, pck_ca, ca_key, ca=False, extra=sgx_ext)
    tcb_signer = _cert("mcnode test TCB signing", tcb_key, root, root_key, ca=False)

    att_pub = att_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)[1:]
    qe_report[REPORT_DATA : REPORT_DATA + 32] = hashlib.sha256(att_pub + qad).digest()
    cert_data = _pem(pck, pck_ca, root) + b"\0"
    sig_data = (
        _raw_sig(att_key, signed)
        + att_pub
        + bytes(qe_report)
        + _raw_sig(pck_key, bytes(qe_report))
        + struct.pack("<H", qad_len)
        + qad
        + struct.pack("<HI", 5, len(cert_data))
        + cert_data
    )
    forged_quote = signed + struct.pack("<I", len(sig_data)) + sig_data

    signer_chain = _pem(tcb_signer, root).decode()
    collateral.update(
        pck_crl_issuer_chain=_pem(pck_ca, root).decode(),
        root_ca_crl=_crl(root, root_key).hex(),
        pck_crl=_crl(pck_ca, ca_key).hex(),
        tcb_info_issuer_chain=signer_chain,
        tcb_info_signature=_raw_sig(tcb_key, collateral["tcb_info"].encode()).hex(),
        qe_identity_issuer_chain=signer_chain,
        qe_identity_signature=_raw_sig(tcb_key, collateral["qe_identity"].encode()).hex(),
    )
    return Forged(forged_quote, collateral, root.public_bytes(Encoding.DER), _pem(root))
