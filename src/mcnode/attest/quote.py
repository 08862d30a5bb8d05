"""The SGX ECDSA quote, version 3: its layout as frozen values, encoded and parsed exactly.

Layout (Intel SGX ECDSA Quote Library API, "Quote Format"; every integer little-endian,
through `mcnode.binary`):

    quote          := header(48) report_body(384) sig_len:u32 signature(sig_len)
    header         := version:u16 (3) att_key_type:u16 (2 = ECDSA-P256) tee_type:u32 (0 = SGX)
                      qe_svn:u16 pce_svn:u16 qe_vendor_id(16) user_data(20)
    report_body    := cpu_svn(16) misc_select:u32 reserved(28) attributes(16)
                      mr_enclave(32) reserved(32) mr_signer(32) reserved(96)
                      isv_prod_id:u16 isv_svn:u16 reserved(60) report_data(64)
    attributes     := flags:u64 xfrm:u64                      (DEBUG = flags bit 1)
    signature      := ecdsa_sig(64: r||s) attestation_key(64: x||y) qe_report(384: a
                      report_body) qe_report_sig(64) qe_auth_len:u16 qe_auth_data
                      cert_type:u16 cert_len:u32 cert_data    (type 5: PCK chain, PEM)

What the signatures cover: the attestation key signs header || report_body (the first 432
bytes); the PCK key signs the 384-byte QE report, whose report data is SHA-256(attestation
key || QE auth data) || 32 zero bytes. Checking any of that is the verifier's job
(`dcap-qvl`): this module only knows where the bytes are.

Rules of this file: it parses and encodes, nothing else (no crypto, no policy, no clock).
A value that parses re-encodes to the same bytes, reserved fields included; anything that
is not a version 3, ECDSA-P256, SGX quote of exactly this layout, with no byte left over,
is a `QuoteFormatError` with one sentence saying what is wrong. Constructing a value with
a field of the wrong size is a caller's bug: `ValueError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mcnode.binary import DecodeError, Reader, Writer

QUOTE_VERSION = 3
ATT_KEY_TYPE_ECDSA_P256 = 2
TEE_TYPE_SGX = 0
#: Intel's QE vendor id, the one dcap-qvl accepts (939A7233-F79C-4CA9-940A-0DB3957F0607).
INTEL_QE_VENDOR_ID = bytes.fromhex("939a7233f79c4ca9940a0db3957f0607")
#: Certification data type 5: the PCK certificate chain (leaf first), PEM.
CERT_TYPE_PCK_CHAIN = 5

HEADER_BYTES = 48
REPORT_BODY_BYTES = 384
#: The bytes the attestation key signs: header || report body.
SIGNED_BYTES = HEADER_BYTES + REPORT_BODY_BYTES
#: dcap-qvl's bound on a variable-length field of a quote (1 MiB); ours too.
MAX_SIGNATURE_DATA = 1 << 20

# SGX ATTRIBUTES.FLAGS bits (Intel SDM vol. 3D, "SECS": ATTRIBUTES).
FLAG_INIT = 0x01
FLAG_DEBUG = 0x02
FLAG_MODE64BIT = 0x04
FLAG_PROVISIONKEY = 0x10
FLAG_EINITTOKENKEY = 0x20


class QuoteFormatError(DecodeError):
    """Bytes that are not an SGX ECDSA quote, version 3, in the layout above."""


class _QuoteReader(Reader):
    error = QuoteFormatError
    max_size = SIGNED_BYTES + 4 + MAX_SIGNATURE_DATA


def _check_size(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        raise ValueError(f"{name} must be {size} bytes")


def _check_uint(name: str, value: int, bits: int) -> None:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must fit in {bits} bits unsigned, got {value}")


@dataclass(frozen=True)
class QuoteHeader:
    """The 48-byte quote header. `user_data` holds the QE's id in Intel's quotes."""

    qe_svn: int
    pce_svn: int
    qe_vendor_id: bytes = INTEL_QE_VENDOR_ID
    user_data: bytes = bytes(20)
    version: int = QUOTE_VERSION
    attestation_key_type: int = ATT_KEY_TYPE_ECDSA_P256
    tee_type: int = TEE_TYPE_SGX

    def __post_init__(self) -> None:
        for name, bits in (("qe_svn", 16), ("pce_svn", 16), ("version", 16)):
            _check_uint(name, getattr(self, name), bits)
        _check_uint("attestation_key_type", self.attestation_key_type, 16)
        _check_uint("tee_type", self.tee_type, 32)
        _check_size("qe_vendor_id", self.qe_vendor_id, 16)
        _check_size("user_data", self.user_data, 20)

    def write(self, w: Writer) -> None:
        w.u16(self.version)
        w.u16(self.attestation_key_type)
        w.u32(self.tee_type)
        w.u16(self.qe_svn)
        w.u16(self.pce_svn)
        w.fixed(self.qe_vendor_id, 16)
        w.fixed(self.user_data, 20)

    @classmethod
    def read(cls, r: Reader) -> QuoteHeader:
        version = r.u16()
        if version != QUOTE_VERSION:
            raise r.error(f"quote version {version} is not supported (only version 3, SGX)")
        key_type = r.u16()
        if key_type != ATT_KEY_TYPE_ECDSA_P256:
            raise r.error(f"attestation key type {key_type} is not 2 (ECDSA-P256)")
        tee_type = r.u32()
        if tee_type != TEE_TYPE_SGX:
            raise r.error(f"TEE type {tee_type:#x} is not 0 (SGX)")
        return cls(
            qe_svn=r.u16(),
            pce_svn=r.u16(),
            qe_vendor_id=r.fixed(16),
            user_data=r.fixed(20),
            version=version,
            attestation_key_type=key_type,
            tee_type=tee_type,
        )

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuoteHeader:
        return _QuoteReader.whole(data, cls.read)


@dataclass(frozen=True)
class Attributes:
    """SGX ATTRIBUTES: FLAGS (u64) and XFRM (u64). DEBUG means the enclave's memory is
    open to the host's debugger: no confidentiality, whatever the measurement says."""

    flags: int
    xfrm: int

    def __post_init__(self) -> None:
        _check_uint("attributes.flags", self.flags, 64)
        _check_uint("attributes.xfrm", self.xfrm, 64)

    @property
    def debug(self) -> bool:
        return bool(self.flags & FLAG_DEBUG)

    def to_bytes(self) -> bytes:
        return self.flags.to_bytes(8, "little") + self.xfrm.to_bytes(8, "little")


@dataclass(frozen=True)
class ReportBody:
    """The 384-byte SGX report body: of the attested enclave, or of the QE (the QE report).

    The reserved fields are kept so that every parsed body re-encodes byte for byte (the
    signatures cover them); a quoting enclave writes zeros there."""

    mr_enclave: bytes
    mr_signer: bytes
    isv_prod_id: int
    isv_svn: int
    report_data: bytes
    attributes: Attributes
    cpu_svn: bytes = bytes(16)
    misc_select: int = 0
    reserved1: bytes = field(default=bytes(28), repr=False)
    reserved2: bytes = field(default=bytes(32), repr=False)
    reserved3: bytes = field(default=bytes(96), repr=False)
    reserved4: bytes = field(default=bytes(60), repr=False)

    def __post_init__(self) -> None:
        _check_size("mr_enclave", self.mr_enclave, 32)
        _check_size("mr_signer", self.mr_signer, 32)
        _check_size("report_data", self.report_data, 64)
        _check_size("cpu_svn", self.cpu_svn, 16)
        _check_uint("isv_prod_id", self.isv_prod_id, 16)
        _check_uint("isv_svn", self.isv_svn, 16)
        _check_uint("misc_select", self.misc_select, 32)
        for name, size in (("reserved1", 28), ("reserved2", 32), ("reserved3", 96)):
            _check_size(name, getattr(self, name), size)
        _check_size("reserved4", self.reserved4, 60)

    @property
    def debug(self) -> bool:
        return self.attributes.debug

    def write(self, w: Writer) -> None:
        w.fixed(self.cpu_svn, 16)
        w.u32(self.misc_select)
        w.fixed(self.reserved1, 28)
        w.u64(self.attributes.flags)
        w.u64(self.attributes.xfrm)
        w.fixed(self.mr_enclave, 32)
        w.fixed(self.reserved2, 32)
        w.fixed(self.mr_signer, 32)
        w.fixed(self.reserved3, 96)
        w.u16(self.isv_prod_id)
        w.u16(self.isv_svn)
        w.fixed(self.reserved4, 60)
        w.fixed(self.report_data, 64)

    @classmethod
    def read(cls, r: Reader) -> ReportBody:
        cpu_svn = r.fixed(16)
        misc_select = r.u32()
        reserved1 = r.fixed(28)
        attributes = Attributes(flags=r.u64(), xfrm=r.u64())
        mr_enclave = r.fixed(32)
        reserved2 = r.fixed(32)
        mr_signer = r.fixed(32)
        reserved3 = r.fixed(96)
        isv_prod_id = r.u16()
        isv_svn = r.u16()
        reserved4 = r.fixed(60)
        report_data = r.fixed(64)
        return cls(
            mr_enclave=mr_enclave,
            mr_signer=mr_signer,
            isv_prod_id=isv_prod_id,
            isv_svn=isv_svn,
            report_data=report_data,
            attributes=attributes,
            cpu_svn=cpu_svn,
            misc_select=misc_select,
            reserved1=reserved1,
            reserved2=reserved2,
            reserved3=reserved3,
            reserved4=reserved4,
        )

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReportBody:
        return _QuoteReader.whole(data, cls.read)


@dataclass(frozen=True)
class CertificationData:
    """What certifies the PCK key: for type 5 (`CERT_TYPE_PCK_CHAIN`), the PEM chain."""

    cert_type: int
    data: bytes

    def __post_init__(self) -> None:
        _check_uint("cert_type", self.cert_type, 16)
        if len(self.data) > MAX_SIGNATURE_DATA:
            raise ValueError(f"certification data exceeds {MAX_SIGNATURE_DATA} bytes")


@dataclass(frozen=True)
class QuoteSignature:
    """The quote's signature data (the "auth data"): the attestation key's signature and
    what certifies that key (QE report, its PCK signature, QE auth data, PCK chain).
    Signatures are raw r || s and the key raw x || y, 32 bytes each, big-endian."""

    ecdsa_signature: bytes
    attestation_key: bytes
    qe_report: ReportBody
    qe_report_signature: bytes
    qe_auth_data: bytes
    certification_data: CertificationData

    MAX_QE_AUTH_DATA: ClassVar[int] = 0xFFFF

    def __post_init__(self) -> None:
        _check_size("ecdsa_signature", self.ecdsa_signature, 64)
        _check_size("attestation_key", self.attestation_key, 64)
        _check_size("qe_report_signature", self.qe_report_signature, 64)
        if len(self.qe_auth_data) > self.MAX_QE_AUTH_DATA:
            raise ValueError(f"qe_auth_data exceeds {self.MAX_QE_AUTH_DATA} bytes")

    def write(self, w: Writer) -> None:
        w.fixed(self.ecdsa_signature, 64)
        w.fixed(self.attestation_key, 64)
        self.qe_report.write(w)
        w.fixed(self.qe_report_signature, 64)
        w.var(self.qe_auth_data, self.MAX_QE_AUTH_DATA, width=2, what="QE auth data")
        w.u16(self.certification_data.cert_type)
        w.var(self.certification_data.data, MAX_SIGNATURE_DATA, width=4, what="cert data")

    @classmethod
    def read(cls, r: Reader) -> QuoteSignature:
        ecdsa_signature = r.fixed(64)
        attestation_key = r.fixed(64)
        qe_report = ReportBody.read(r)
        qe_report_signature = r.fixed(64)
        qe_auth_data = r.var(cls.MAX_QE_AUTH_DATA, width=2, what="QE auth data")
        cert_type = r.u16()
        cert_data = r.var(MAX_SIGNATURE_DATA, width=4, what="certification data")
        return cls(
            ecdsa_signature=ecdsa_signature,
            attestation_key=attestation_key,
            qe_report=qe_report,
            qe_report_signature=qe_report_signature,
            qe_auth_data=qe_auth_data,
            certification_data=CertificationData(cert_type, cert_data),
        )

    def to_bytes(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> QuoteSignature:
        return _QuoteReader.whole(data, cls.read)


@dataclass(frozen=True)
class Quote:
    """An SGX ECDSA quote, version 3."""

    header: QuoteHeader
    report_body: ReportBody
    signature: QuoteSignature

    def signed_bytes(self) -> bytes:
        """What the attestation key signs: header || report body (432 bytes)."""
        w = Writer()
        self.header.write(w)
        self.report_body.write(w)
        return w.getvalue()

    def pck_chain_pem(self) -> bytes | None:
        """The PCK certificate chain (PEM, leaf first) when the quote carries it (type 5)."""
        cert = self.signature.certification_data
        return cert.data if cert.cert_type == CERT_TYPE_PCK_CHAIN else None

    def to_bytes(self) -> bytes:
        signature = self.signature.to_bytes()
        if len(signature) > MAX_SIGNATURE_DATA:
            raise ValueError(f"signature data exceeds {MAX_SIGNATURE_DATA} bytes")
        w = Writer()
        self.header.write(w)
        self.report_body.write(w)
        w.var(signature, MAX_SIGNATURE_DATA, width=4, what="signature data")
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Quote:
        """Parse a whole quote; `QuoteFormatError` for anything else, trailing bytes too."""
        return _QuoteReader.whole(data, cls._read)

    @classmethod
    def _read(cls, r: Reader) -> Quote:
        header = QuoteHeader.read(r)
        report_body = ReportBody.read(r)
        signature_data = r.var(MAX_SIGNATURE_DATA, width=4, what="signature data")
        # The signature data's length is stated: its fields must fill it exactly.
        try:
            signature = _QuoteReader.whole(signature_data, QuoteSignature.read)
        except QuoteFormatError as e:
            raise QuoteFormatError(f"signature data: {e}") from None
        return cls(header=header, report_body=report_body, signature=signature)
