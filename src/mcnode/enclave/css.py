"""The enclave's signed code identity: the `.css` file, our SIGSTRUCT, and MRSIGNER.

In SGX an enclave loads only with a SIGSTRUCT: its vendor's RSA-3072 signature (public
exponent 3) over the enclave's measurement (ENCLAVEHASH, which the CPU checks and reports
as MRENCLAVE), its product id (ISVPRODID) and security version (ISVSVN). The CPU reports
the signer as MRSIGNER, the SHA-256 of the signer's modulus as 384 little-endian bytes, so
a verifier may trust "whatever this vendor signed as product P at SVN >= s" instead of one
build. MobileCoin ships its SIGSTRUCT as `consensus-enclave.css` beside the enclave.

This file is that for the simulated enclave: the same signer key type, the same MRSIGNER,
the same fields, but **not Intel's 1808-byte SIGSTRUCT**. That structure describes an
enclave image for the CPU to load (ATTRIBUTES and their mask, MISCSELECT, the Q1/Q2
values of the CPU's own signature check, ...); our simulated enclave is a Python process,
not an SGX image, so no CPU reads our `.css`: the enclave process checks it itself at
start (`server`), refusing to run when its own measurement is not the one signed. The
format is therefore our own, SGX-like and versioned, fixed-size, in `mcnode.binary`'s
little-endian integers:

    offset size
         0    6  magic b"MCNCSS"
         6    1  version = 1
         7    4  date: u32, the UTC day of signing as decimal yyyymmdd (20261130)
        11   32  mrenclave (SIGSTRUCT's ENCLAVEHASH)
        43    2  isv_prod_id: u16
        45    2  isv_svn: u16
        47  384  the signer's modulus, little-endian (3072 bits: its top bit is set)
       431    4  the signer's public exponent: u32 = 3
       435  384  signature, little-endian: RSASSA-PKCS1-v1_5 with SHA-256 over bytes 0..434
       819       end: a version 1 file is exactly 819 bytes

The signature covers everything before it, the signer's key included; MRSIGNER is not
stored, it is computed from the modulus (as the CPU does), so it cannot disagree with it.
An enclave started without a `.css` is unsigned: it reports `NO_MRSIGNER` (32 zero bytes,
the SHA-256 of no key) with product id and SVN 0, and only an MRENCLAVE policy can trust it.

Rules of this file: it verifies and never signs (signing, and the signer's private key,
belong to the operator's tool `signer`, outside the measured enclave code); deterministic;
no clock; the only file it reads is the one `read_css_file` is given. Every refusal is a
`CssError`, one sentence.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mcnode import binary

MAGIC = b"MCNCSS"
CSS_VERSION = 1
#: SGX's signer key: RSA-3072 with public exponent 3.
MODULUS_BITS = 3072
MODULUS_BYTES = MODULUS_BITS // 8
EXPONENT = 3
MRENCLAVE_BYTES = 32
#: Where the signature starts: the signed part is every byte before it.
SIGNED_BYTES = len(MAGIC) + 1 + 4 + MRENCLAVE_BYTES + 2 + 2 + MODULUS_BYTES + 4
CSS_BYTES = SIGNED_BYTES + MODULUS_BYTES
#: What an enclave started without a `.css` reports as its MRSIGNER: no key hashes to it.
NO_MRSIGNER = bytes(32)
MAX_ISV = 0xFFFF


class CssError(binary.DecodeError):
    """A `.css` that cannot be used: unreadable, malformed, forged, or for another build."""


class _Reader(binary.Reader):
    __slots__ = ()
    error = CssError
    max_size = CSS_BYTES


def mrsigner(public_key: rsa.RSAPublicKey) -> bytes:
    """The signer identity of an RSA-3072 key: SHA-256 of its modulus as 384
    little-endian bytes (SGX's MRSIGNER)."""
    n = public_key.public_numbers().n
    if n.bit_length() != MODULUS_BITS:
        raise ValueError(f"an enclave signer key is RSA-{MODULUS_BITS}, not {n.bit_length()} bits")
    return hashlib.sha256(n.to_bytes(MODULUS_BYTES, "little")).digest()


@dataclass(frozen=True, slots=True)
class Css:
    """A signed enclave identity, as `read_css` found it (signature checked) or
    `signer.sign_css` made it."""

    #: the measurement of the enclave build signed (`measure.measure`)
    mrenclave: bytes
    isv_prod_id: int
    isv_svn: int
    #: the UTC day it was signed (informative: nothing checks it)
    date: datetime.date
    #: the signer's RSA-3072 modulus, 384 bytes little-endian (its exponent is 3)
    modulus: bytes = field(repr=False)
    #: RSASSA-PKCS1-v1_5 SHA-256 signature over `signed_bytes()`, 384 bytes little-endian
    signature: bytes = field(repr=False)

    @property
    def mrsigner(self) -> bytes:
        """SHA-256 of the signer's little-endian modulus: who signed this build."""
        return hashlib.sha256(self.modulus).digest()

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        n = int.from_bytes(self.modulus, "little")
        return rsa.RSAPublicNumbers(EXPONENT, n).public_key()

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: the file up to the signature."""
        return signed_part(self.mrenclave, self.isv_prod_id, self.isv_svn, self.date, self.modulus)

    def to_bytes(self) -> bytes:
        w = binary.Writer()
        w.fixed(self.signed_bytes(), SIGNED_BYTES)
        w.fixed(self.signature, MODULUS_BYTES)
        return w.getvalue()


def signed_part(
    mrenclave: bytes, isv_prod_id: int, isv_svn: int, date: datetime.date, modulus: bytes
) -> bytes:
    """The signed fields of a version 1 `.css`, encoded (`ValueError` for a value the
    format cannot hold)."""
    for name, value in (("isv_prod_id", isv_prod_id), ("isv_svn", isv_svn)):
        if not 0 <= value <= MAX_ISV:
            raise ValueError(f"{name} is a 16-bit number (0..{MAX_ISV}), not {value}")
    w = binary.Writer()
    w.fixed(MAGIC, len(MAGIC))
    w.u8(CSS_VERSION)
    w.u32(date.year * 10_000 + date.month * 100 + date.day)
    w.fixed(mrenclave, MRENCLAVE_BYTES)
    w.u16(isv_prod_id)
    w.u16(isv_svn)
    w.fixed(modulus, MODULUS_BYTES)
    w.u32(EXPONENT)
    return w.getvalue()


def read_css(data: bytes) -> Css:
    """The `.css` in `data`, its signature checked; `CssError` (one sentence) when it is
    not a well-formed version 1 `.css` or its signature does not verify."""
    if not data.startswith(MAGIC):
        raise CssError(f"not an enclave .css (it does not start with {MAGIC.decode()})")
    if len(data) > len(MAGIC) and data[len(MAGIC)] != CSS_VERSION:
        raise CssError(f"a .css of version {data[len(MAGIC)]}; this build reads version 1")
    if len(data) != CSS_BYTES:
        raise CssError(f"a version 1 .css is {CSS_BYTES} bytes, this one is {len(data)}")
    css = _Reader.whole(data, _decode)
    try:
        css.public_key.verify(
            css.signature[::-1], css.signed_bytes(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        raise CssError(
            "its signature does not verify under the signer key it names "
            "(changed after signing, or forged)"
        ) from None
    return css


def _decode(r: _Reader) -> Css:
    r.fixed(len(MAGIC) + 1)  # magic and version, checked by read_css
    raw_date = r.u32()
    mrenclave, isv_prod_id, isv_svn = r.fixed(MRENCLAVE_BYTES), r.u16(), r.u16()
    modulus, exponent = r.fixed(MODULUS_BYTES), r.u32()
    signature = r.fixed(MODULUS_BYTES)
    if exponent != EXPONENT:
        raise CssError(f"the signer's public exponent is {exponent}, not {EXPONENT} as SGX's")
    n = int.from_bytes(modulus, "little")
    if n.bit_length() != MODULUS_BITS or n % 2 == 0:
        raise CssError(f"the signer's modulus is not an odd {MODULUS_BITS}-bit number")
    try:
        date = datetime.date(raw_date // 10_000, raw_date // 100 % 100, raw_date % 100)
    except ValueError:
        raise CssError(f"its date field {raw_date} is not a yyyymmdd date") from None
    return Css(mrenclave, isv_prod_id, isv_svn, date, modulus, signature)


def read_css_file(path: str | os.PathLike[str]) -> Css:
    """`read_css` of a file; the `CssError` names the file."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = f.read(CSS_BYTES + 1)
    except OSError as e:
        raise CssError(f"{p}: cannot read: {e.strerror or type(e).__name__}") from None
    try:
        return read_css(data)
    except CssError as e:
        message = str(e)
    raise CssError(f"{p}: {message}")


def load_css(path: str | os.PathLike[str], mrenclave: bytes) -> Css:
    """The `.css` at `path` if it signs `mrenclave` (the measurement of the code that
    asks); otherwise `CssError`, one line naming both measurements and what to do."""
    css = read_css_file(path)
    if css.mrenclave != mrenclave:
        raise CssError(
            f"{path} signs MRENCLAVE {css.mrenclave.hex()}, but this enclave measures "
            f"{mrenclave.hex()}: sign this build (mcnode enclave sign --key SIGNER_KEY "
            f"--out {path}) or run the build it was signed for"
        )
    return css
