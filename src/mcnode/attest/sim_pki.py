"""A simulated Intel SGX PKI: the certificates, CRLs and signed TCB documents that Intel's
Provisioning Certification Service publishes, made by us for machines without SGX, so
that simulated quotes go through the real verifier (`dcap-qvl`) under this root.

Nothing here is Intel's and nothing here proves anything about hardware: every name says
SIMULATED and "not Intel", the root is one a network makes for itself, and whoever holds
the directory's keys can sign any quote. What it keeps is the *path*: the same quote
layout, the same collateral, the same verifier, only the trust anchor differs (Intel's
root for hardware, this one only where a policy explicitly allows simulation).

What a PKI holds (as Intel's, with the same extensions and key usages):

    root CA  "mcnode SIMULATED SGX Root CA - not Intel, no hardware protection"
      +- PCK Platform CA ("mcnode SIMULATED SGX PCK Platform CA - not Intel")
      |    +- PCK leaf: the simulated platform's key, with Intel's SGX extension
      |       (1.2.840.113741.1.13.1: PPID, TCB = 16 component SVNs + PCESVN + CPUSVN,
      |       PCE-ID, FMSPC, SGX type); it signs the quoting enclave's report
      +- TCB Signing ("mcnode SIMULATED SGX TCB Signing - not Intel"): signs TCB info
         and QE identity

and, made fresh for a validity window by `collateral(now, valid_seconds)`: the root CRL
(signed by the root), the PCK CRL (signed by the Platform CA), TCB info (JSON v3: the
platform's FMSPC and one TCB level, `UpToDate` unless told otherwise) and QE identity
(JSON v2: the simulated QE's MRSIGNER, ISVPRODID, attributes and ISVSVN), each signed over
its exact JSON bytes. The collateral is one JSON object in the shape dcap-qvl reads
(`QuoteCollateralV3.from_json`) and Intel's PCS serves: PEM chains, hex DER CRLs, the two
documents as JSON strings, hex r||s signatures.

Randomness comes from a `RandomSource` (seeded in tests: the same seed and times give the
same bytes, since every ECDSA signature here is deterministic, RFC 6979); the time is
always an argument. `save`/`load` keep one PKI per network in a directory: certificates
and `pki.json` public, each private key in its own 0600 file (`mcnode.files`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from mcnode.attest.pck_extension import SGX_EXTENSION_OID, PckExtension
from mcnode.attest.quote import (
    FLAG_INIT,
    FLAG_MODE64BIT,
    FLAG_PROVISIONKEY,
    Attributes,
)
from mcnode.crypto.rng import RandomSource, system_random
from mcnode.files import (
    PrivateFileError,
    fsync_dir,
    read_private_document,
    write_atomic,
    write_private_document,
)

ROOT_CA_CN = "mcnode SIMULATED SGX Root CA - not Intel, no hardware protection"
PLATFORM_CA_CN = "mcnode SIMULATED SGX PCK Platform CA - not Intel"
PCK_CN = "mcnode SIMULATED SGX PCK Certificate - not Intel"
TCB_SIGNING_CN = "mcnode SIMULATED SGX TCB Signing - not Intel"
ORGANIZATION = "mcnode simulation (not Intel Corporation)"

DAY = 86_400
DEFAULT_CERT_SECONDS = 3650 * DAY
DEFAULT_COLLATERAL_SECONDS = 30 * DAY

#: FMSPC of the simulated platform: ASCII "SIM" and zeros, no Intel family-model-stepping.
SIM_FMSPC = b"SIM\x00\x00\x00"
#: TCB of the simulated platform (arbitrary, modest values): CPUSVN, which is also the 16
#: TCB component SVNs, and the PCE's SVN.
SIM_CPU_SVN = bytes([2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
SIM_PCE_SVN = 1
SIM_PCE_ID = bytes(2)
SIM_TCB_EVALUATION_DATA_NUMBER = 1

#: TCB statuses a TCB level may carry (Intel's names, as dcap-qvl reads them).
TCB_STATUSES = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)

PKI_FORMAT = "mcnode-sim-sgx-pki"
KEY_FORMAT = "mcnode-sim-sgx-key"
FORMAT_VERSION = 1
#: The files of a saved PKI; the root certificate is written last (it marks a whole PKI).
ROOT_CA_FILE = "root-ca.pem"
PKI_FILE = "pki.json"
_ROLES = ("root-ca", "platform-ca", "pck", "tcb-signing")


class SimPkiError(Exception):
    """A simulated PKI that cannot be saved or loaded (one line naming the file)."""


@dataclass(frozen=True)
class SimQeIdentity:
    """Who the simulated quoting enclave is: what its QE report says and the QE identity
    document requires. Its MRSIGNER and MRENCLAVE are hashes of sentences saying what
    they are, so they can never be mistaken for Intel's QE (MRSIGNER 8C4F5775...)."""

    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    attributes: Attributes
    misc_select: int = 0


SIM_QE = SimQeIdentity(
    mr_enclave=hashlib.sha256(b"mcnode SIMULATED SGX quoting enclave: MRENCLAVE").digest(),
    mr_signer=hashlib.sha256(b"mcnode SIMULATED SGX quoting enclave: MRSIGNER").digest(),
    # Intel's ECDSA QE is product 1; ours is product 1 at its first version.
    isv_prod_id=1,
    isv_svn=1,
    # A production QE as Intel's: INIT, 64-bit, PROVISIONKEY; never DEBUG (dcap-qvl
    # refuses a debug QE whatever the policy).
    attributes=Attributes(flags=FLAG_INIT | FLAG_MODE64BIT | FLAG_PROVISIONKEY, xfrm=0x03),
)
# QE identity's expectation, as Intel publishes it: every flag but MODE64BIT must equal
# INIT | PROVISIONKEY (so DEBUG must be clear); XFRM is not checked.
_QE_ATTRIBUTES = Attributes(flags=FLAG_INIT | FLAG_PROVISIONKEY, xfrm=0)
_QE_ATTRIBUTES_MASK = Attributes(flags=0xFFFF_FFFF_FFFF_FFFB, xfrm=0)


def sim_platform(rng: RandomSource) -> PckExtension:
    """A simulated platform: its own PPID, the simulated FMSPC, TCB and PCE."""
    return PckExtension(
        ppid=rng(16), fmspc=SIM_FMSPC, cpu_svn=SIM_CPU_SVN, pce_svn=SIM_PCE_SVN, pce_id=SIM_PCE_ID
    )


# --- Keys, signatures, names and times.

_CURVE_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_SIGN = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def p256_key(rng: RandomSource) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key drawn from `rng` (48 bytes reduced: negligible bias)."""
    scalar = int.from_bytes(rng(48), "big") % (_CURVE_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def ecdsa_sign_raw(key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA-P256-SHA256 over `data`, as SGX writes it: r || s, 32 bytes each, big-endian."""
    r, s = decode_dss_signature(key.sign(data, _SIGN))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_public_key(key: ec.EllipticCurvePublicKey) -> bytes:
    """x || y, 32 bytes each: the 64-byte form SGX quotes carry."""
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return point[1:]


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
        ]
    )


def _time(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def iso_time(unix: int) -> str:
    """RFC 3339 in UTC to the second, as Intel's TCB documents write dates."""
    return _time(unix).strftime("%Y-%m-%dT%H:%M:%SZ")


def _serial(rng: RandomSource) -> int:
    return int.from_bytes(rng(19), "big") | 1  # positive, at most 152 bits, never 0


def _certificate(
    *,
    subject: str,
    key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    serial: int,
    not_before: int,
    not_after: int,
    ca_path_length: int | None,
    sgx_extension: bytes | None = None,
) -> x509.Certificate:
    """One certificate with the extensions Intel's carry: authority and subject key ids,
    critical key usage and basic constraints (CAs sign certificates and CRLs, leaves
    sign data). `ca_path_length` None makes a leaf. `issuer` None: self-signed."""
    ca = ca_path_length is not None
    issuer_name = _name(subject) if issuer is None else issuer.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key)
        .serial_number(serial)
        .not_valid_before(_time(not_before))
        .not_valid_after(_time(not_after))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .add_extension(x509.BasicConstraints(ca=ca, path_length=ca_path_length), True)
    )
    if sgx_extension is not None:
        oid = x509.ObjectIdentifier(SGX_EXTENSION_OID)
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, sgx_extension), False)
    return builder.sign(issuer_key, hashes.SHA256(), ecdsa_deterministic=True)


def _crl(
    issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, now: int, until: int
) -> bytes:
    """An empty CRL (nothing revoked), DER, valid from `now` to `until`; its number is the
    issue time, so later CRLs have larger numbers."""
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(_time(now))
        .next_update(_time(until))
        .add_extension(x509.CRLNumber(max(now, 1)), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA256(), ecdsa_deterministic=True)
    )
    return crl.public_bytes(serialization.Encoding.DER)


def _pem(*certs: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def _json_bytes(doc: dict[str, Any]) -> bytes:
    """Compact JSON, as Intel's PCS writes the signed documents: the signature covers
    exactly these bytes."""
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Collateral:
    """Quote collateral in the shape of Intel's PCS and dcap-qvl's `QuoteCollateralV3`."""

    pck_crl_issuer_chain: str  # PEM: PCK Platform CA, root
    root_ca_crl: bytes  # DER (hex in JSON)
    pck_crl: bytes  # DER (hex in JSON)
    tcb_info_issuer_chain: str  # PEM: TCB Signing, root
    tcb_info: bytes  # the signed JSON document's exact bytes (a string in JSON)
    tcb_info_signature: bytes  # r || s (hex in JSON)
    qe_identity_issuer_chain: str  # PEM: TCB Signing, root
    qe_identity: bytes
    qe_identity_signature: bytes

    def to_json(self) -> bytes:
        doc = {
            "pck_crl_issuer_chain": self.pck_crl_issuer_chain,
            "root_ca_crl": self.root_ca_crl.hex(),
            "pck_crl": self.pck_crl.hex(),
            "tcb_info_issuer_chain": self.tcb_info_issuer_chain,
            "tcb_info": self.tcb_info.decode(),
            "tcb_info_signature": self.tcb_info_signature.hex(),
            "qe_identity_issuer_chain": self.qe_identity_issuer_chain,
            "qe_identity": self.qe_identity.decode(),
            "qe_identity_signature": self.qe_identity_signature.hex(),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()


@dataclass(frozen=True, eq=False)
class SimPki:
    """One simulated PKI: four certificates, their private keys, and the platform."""

    root_ca: x509.Certificate
    platform_ca: x509.Certificate
    pck: x509.Certificate
    tcb_signing: x509.Certificate
    root_ca_key: ec.EllipticCurvePrivateKey = field(repr=False)
    platform_ca_key: ec.EllipticCurvePrivateKey = field(repr=False)
    pck_key: ec.EllipticCurvePrivateKey = field(repr=False)
    tcb_signing_key: ec.EllipticCurvePrivateKey = field(repr=False)
    platform: PckExtension
    #: When the PKI was made (unix seconds): its certificates' start, the TCB level's date.
    created: int

    @classmethod
    def generate(
        cls,
        now: int,
        rng: RandomSource = system_random,
        *,
        cert_valid_seconds: int = DEFAULT_CERT_SECONDS,
        platform: PckExtension | None = None,
    ) -> SimPki:
        """A new PKI whose certificates are valid from `now` for `cert_valid_seconds`."""
        if now < 0 or cert_valid_seconds <= 0:
            raise ValueError("now must be >= 0 and cert_valid_seconds > 0")
        until = now + cert_valid_seconds
        root_key, platform_key, pck_key, tcb_key = (p256_key(rng) for _ in range(4))
        platform = platform or sim_platform(rng)
        root = _certificate(
            subject=ROOT_CA_CN, key=root_key.public_key(), issuer=None, issuer_key=root_key,
            serial=_serial(rng), not_before=now, not_after=until, ca_path_length=1,
        )  # fmt: skip
        platform_ca = _certificate(
            subject=PLATFORM_CA_CN, key=platform_key.public_key(), issuer=root,
            issuer_key=root_key, serial=_serial(rng), not_before=now, not_after=until,
            ca_path_length=0,
        )  # fmt: skip
        pck = _certificate(
            subject=PCK_CN, key=pck_key.public_key(), issuer=platform_ca,
            issuer_key=platform_key, serial=_serial(rng), not_before=now, not_after=until,
            ca_path_length=None, sgx_extension=platform.to_der(),
        )  # fmt: skip
        tcb_signing = _certificate(
            subject=TCB_SIGNING_CN, key=tcb_key.public_key(), issuer=root, issuer_key=root_key,
            serial=_serial(rng), not_before=now, not_after=until, ca_path_length=None,
        )  # fmt: skip
        return cls(
            root_ca=root,
            platform_ca=platform_ca,
            pck=pck,
            tcb_signing=tcb_signing,
            root_ca_key=root_key,
            platform_ca_key=platform_key,
            pck_key=pck_key,
            tcb_signing_key=tcb_key,
            platform=platform,
            created=now,
        )

    # --- What verifiers are given.

    @property
    def root_ca_der(self) -> bytes:
        """The trust anchor, DER: what `dcap_qvl.verify_with_root_ca` takes."""
        return self.root_ca.public_bytes(serialization.Encoding.DER)

    @property
    def root_ca_pem(self) -> bytes:
        return self.root_ca.public_bytes(serialization.Encoding.PEM)

    def root_fingerprint(self) -> str:
        """SHA-256 of the root certificate's DER, hex: how operators name the root."""
        return hashlib.sha256(self.root_ca_der).hexdigest()

    def pck_chain_pem(self) -> bytes:
        """The PCK chain a quote carries (certification data type 5): leaf first."""
        return _pem(self.pck, self.platform_ca, self.root_ca).encode()

    # --- Collateral.

    def tcb_info(
        self,
        now: int,
        valid_seconds: int = DEFAULT_COLLATERAL_SECONDS,
        *,
        tcb_status: str = "UpToDate",
        advisory_ids: Sequence[str] = (),
    ) -> bytes:
        """TCB info (SGX, version 3) for the platform's FMSPC, issued at `now`, next update
        `valid_seconds` later: one TCB level, the platform's own, with `tcb_status`."""
        if tcb_status not in TCB_STATUSES:
            raise ValueError(f"unknown TCB status {tcb_status!r}")
        level: dict[str, Any] = {
            "tcb": {
                "sgxtcbcomponents": [{"svn": svn} for svn in self.platform.cpu_svn],
                "pcesvn": self.platform.pce_svn,
            },
            "tcbDate": iso_time(self.created),
            "tcbStatus": tcb_status,
        }
        if advisory_ids:
            level["advisoryIDs"] = list(advisory_ids)
        return _json_bytes(
            {
                "id": "SGX",
                "version": 3,
                "issueDate": iso_time(now),
                "nextUpdate": iso_time(now + valid_seconds),
                "fmspc": self.platform.fmspc.hex().upper(),
                "pceId": self.platform.pce_id.hex().upper(),
                "tcbType": 0,
                "tcbEvaluationDataNumber": SIM_TCB_EVALUATION_DATA_NUMBER,
                "tcbLevels": [level],
            }
        )

    def qe_identity(self, now: int, valid_seconds: int = DEFAULT_COLLATERAL_SECONDS) -> bytes:
        """QE identity (QE, version 2) of the simulated quoting enclave, `SIM_QE`."""
        qe = SIM_QE
        return _json_bytes(
            {
                "id": "QE",
                "version": 2,
                "issueDate": iso_time(now),
                "nextUpdate": iso_time(now + valid_seconds),
                "tcbEvaluationDataNumber": SIM_TCB_EVALUATION_DATA_NUMBER,
                "miscselect": qe.misc_select.to_bytes(4, "little").hex().upper(),
                "miscselectMask": "FFFFFFFF",
                "attributes": _QE_ATTRIBUTES.to_bytes().hex().upper(),
                "attributesMask": _QE_ATTRIBUTES_MASK.to_bytes().hex().upper(),
                "mrsigner": qe.mr_signer.hex().upper(),
                "isvprodid": qe.isv_prod_id,
                "tcbLevels": [
                    {
                        "tcb": {"isvsvn": qe.isv_svn},
                        "tcbDate": iso_time(self.created),
                        "tcbStatus": "UpToDate",
                    }
                ],
            }
        )

    def collateral_value(
        self,
        now: int,
        valid_seconds: int = DEFAULT_COLLATERAL_SECONDS,
        *,
        tcb_status: str = "UpToDate",
        advisory_ids: Sequence[str] = (),
    ) -> Collateral:
        """Everything a verifier needs besides the quote, valid from `now` (issue dates,
        CRLs' this-update) to `now + valid_seconds` (next updates)."""
        if now < 0 or valid_seconds <= 0:
            raise ValueError("now must be >= 0 and valid_seconds > 0")
        until = now + valid_seconds
        tcb_info = self.tcb_info(
            now, valid_seconds, tcb_status=tcb_status, advisory_ids=advisory_ids
        )
        qe_identity = self.qe_identity(now, valid_seconds)
        tcb_chain = _pem(self.tcb_signing, self.root_ca)
        return Collateral(
            pck_crl_issuer_chain=_pem(self.platform_ca, self.root_ca),
            root_ca_crl=_crl(self.root_ca, self.root_ca_key, now, until),
            pck_crl=_crl(self.platform_ca, self.platform_ca_key, now, until),
            tcb_info_issuer_chain=tcb_chain,
            tcb_info=tcb_info,
            tcb_info_signature=ecdsa_sign_raw(self.tcb_signing_key, tcb_info),
            qe_identity_issuer_chain=tcb_chain,
            qe_identity=qe_identity,
            qe_identity_signature=ecdsa_sign_raw(self.tcb_signing_key, qe_identity),
        )

    def collateral(
        self,
        now: int,
        valid_seconds: int = DEFAULT_COLLATERAL_SECONDS,
        *,
        tcb_status: str = "UpToDate",
        advisory_ids: Sequence[str] = (),
    ) -> bytes:
        """`collateral_value(...)` as the JSON bytes dcap-qvl's `from_json` reads."""
        return self.collateral_value(
            now, valid_seconds, tcb_status=tcb_status, advisory_ids=advisory_ids
        ).to_json()

    # --- One PKI per network: a directory.

    def _certs(self) -> dict[str, x509.Certificate]:
        return {
            "root-ca": self.root_ca,
            "platform-ca": self.platform_ca,
            "pck": self.pck,
            "tcb-signing": self.tcb_signing,
        }

    def _keys(self) -> dict[str, ec.EllipticCurvePrivateKey]:
        return {
            "root-ca": self.root_ca_key,
            "platform-ca": self.platform_ca_key,
            "pck": self.pck_key,
            "tcb-signing": self.tcb_signing_key,
        }

    def save(self, directory: str | os.PathLike[str]) -> None:
        """Write the PKI into `directory` (created if missing). Refused (`SimPkiError`)
        when a PKI is there already: a network keeps the one it has. Certificates and
        `pki.json` are public (0644); each key is a private document (0600). The root
        certificate goes last, so an interrupted save never looks like a whole PKI."""
        d = Path(directory)
        taken = [name for name in (ROOT_CA_FILE, PKI_FILE) if (d / name).exists()]
        if taken:
            raise SimPkiError(f"{d / taken[0]}: a simulated PKI is already there; not replacing it")
        try:
            d.mkdir(parents=True, exist_ok=True)
            keys = self._keys()
            for role in _ROLES:
                scalar = keys[role].private_numbers().private_value.to_bytes(32, "big")
                write_private_document(
                    d / f"{role}.key", KEY_FORMAT, FORMAT_VERSION,
                    {"role": role, "curve": "P-256", "private_key": scalar.hex()},
                )  # fmt: skip
            doc = {
                "format": PKI_FORMAT,
                "version": FORMAT_VERSION,
                "created": self.created,
                "root_ca_sha256": self.root_fingerprint(),
                "platform": self.platform.to_json(),
            }
            write_atomic(d / PKI_FILE, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o644)
            for role, cert in self._certs().items():
                if role != "root-ca":
                    pem = cert.public_bytes(serialization.Encoding.PEM)
                    write_atomic(d / f"{role}.pem", pem, mode=0o644)
            write_atomic(d / ROOT_CA_FILE, self.root_ca_pem, mode=0o644)
            fsync_dir(d)
        except OSError as e:
            raise SimPkiError(f"{d}: cannot write the simulated PKI: {e.strerror}") from e

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> SimPki:
        """The PKI saved in `directory`, checked whole: each certificate signed by its
        issuer, each key the certificate's, the PCK's SGX extension the platform's."""
        d = Path(directory)
        if not (d / ROOT_CA_FILE).is_file():
            raise SimPkiError(f"{d}: no simulated PKI here ({ROOT_CA_FILE} missing)")
        try:
            doc = json.loads((d / PKI_FILE).read_bytes())
            if doc.get("format") != PKI_FORMAT or doc.get("version") != FORMAT_VERSION:
                raise SimPkiError(
                    f"{d / PKI_FILE}: not a version {FORMAT_VERSION} {PKI_FORMAT} file"
                )
            platform = PckExtension.from_json(doc["platform"])
            created = doc["created"]
            if not isinstance(created, int):
                raise SimPkiError(f"{d / PKI_FILE}: created must be an integer")
            certs = {
                r: x509.load_pem_x509_certificate((d / f"{r}.pem").read_bytes()) for r in _ROLES
            }
            keys = {r: _load_key(d / f"{r}.key", r) for r in _ROLES}
        except SimPkiError:
            raise
        except OSError as e:
            raise SimPkiError(f"{e.filename}: cannot read: {e.strerror}") from e
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise SimPkiError(f"{d}: malformed simulated PKI: {e}") from e
        pki = cls(
            root_ca=certs["root-ca"],
            platform_ca=certs["platform-ca"],
            pck=certs["pck"],
            tcb_signing=certs["tcb-signing"],
            root_ca_key=keys["root-ca"],
            platform_ca_key=keys["platform-ca"],
            pck_key=keys["pck"],
            tcb_signing_key=keys["tcb-signing"],
            platform=platform,
            created=created,
        )
        pki._check(d)
        return pki

    def _check(self, d: Path) -> None:
        certs, keys = self._certs(), self._keys()
        for role in _ROLES:
            if keys[role].public_key() != certs[role].public_key():
                raise SimPkiError(f"{d / f'{role}.key'}: not the key of {role}.pem")
        issuers = {"root-ca": "root-ca", "platform-ca": "root-ca", "pck": "platform-ca"}
        for role, issuer in (*issuers.items(), ("tcb-signing", "root-ca")):
            try:
                certs[role].verify_directly_issued_by(certs[issuer])
            except (ValueError, TypeError, InvalidSignature):
                raise SimPkiError(f"{d / f'{role}.pem'}: not issued by {issuer}.pem") from None
        try:
            oid = x509.ObjectIdentifier(SGX_EXTENSION_OID)
            ext = self.pck.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            raise SimPkiError(f"{d / 'pck.pem'}: no SGX extension") from None
        if not isinstance(ext, x509.UnrecognizedExtension) or (ext.value != self.platform.to_der()):
            raise SimPkiError(
                f"{d / 'pck.pem'}: its SGX extension is not the platform in {PKI_FILE}"
            )


def _load_key(path: Path, role: str) -> ec.EllipticCurvePrivateKey:
    try:
        doc = read_private_document(path, KEY_FORMAT, FORMAT_VERSION)
    except PrivateFileError as e:
        raise SimPkiError(str(e)) from e
    if doc.get("role") != role or doc.get("curve") != "P-256":
        raise SimPkiError(f"{path}: not the P-256 {role} key")
    try:
        scalar = int.from_bytes(bytes.fromhex(doc["private_key"]), "big")
        return ec.derive_private_key(scalar, ec.SECP256R1())
    except (KeyError, TypeError, ValueError) as e:
        raise SimPkiError(f"{path}: malformed key: {e}") from e
