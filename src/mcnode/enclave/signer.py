"""The enclave signer: the key that vouches for enclave builds, and the `.css` it signs.

SGX's ISV signing key, for the simulated enclave: RSA-3072 with public exponent 3 (what
SGX requires of a SIGSTRUCT's key), kept by whoever releases enclave builds. In
simulation each network makes its own (`mcnode enclave signer-key`); its MRSIGNER
(`css.mrsigner`) is what verifiers may trust instead of a single MRENCLAVE.

    key = new_signer_key("signer.pem")          # PKCS#8 PEM, mode 0600; never overwritten
    key = load_signer_key("signer.pem")         # refused if others may read it
    data = sign_css(key, measure(), isv_prod_id=1, isv_svn=3)   # a `.css` (see `css`)

Rules of this file: it runs in the operator's tools, never in the enclave process (the
enclave only verifies, `css`): it is not part of the measured code. The private key never
appears in a repr, an error or a line printed; errors are `SignerKeyError`, one line
naming the file.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mcnode import files
from mcnode.enclave.css import EXPONENT, MODULUS_BITS, MODULUS_BYTES, Css, signed_part


class SignerKeyError(ValueError):
    """A signer key file that cannot be made or used."""


def new_signer_key(path: str | os.PathLike[str]) -> rsa.RSAPrivateKey:
    """A new RSA-3072, e=3 signer key, written to `path` (PKCS#8 PEM, mode 0600,
    atomically). `SignerKeyError` if `path` exists: a signer key is never replaced, since
    every MRSIGNER policy that trusts it would stop matching."""
    p = Path(path)
    if p.exists() or p.is_symlink():
        raise SignerKeyError(f"{p} exists; a signer key is never overwritten (choose another path)")
    key = rsa.generate_private_key(public_exponent=EXPONENT, key_size=MODULUS_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        files.write_atomic(p, pem, mode=0o600)
    except OSError as e:
        raise SignerKeyError(f"{p}: cannot write: {e.strerror or type(e).__name__}") from None
    return key


def load_signer_key(path: str | os.PathLike[str]) -> rsa.RSAPrivateKey:
    """The signer key in `path`; `SignerKeyError` unless it is a private (0600) PEM of an
    RSA-3072 key with exponent 3."""
    try:
        data = files.read_private_file(path)
    except files.PrivateFileError as e:
        raise SignerKeyError(str(e)) from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise SignerKeyError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SignerKeyError(f"{path}: not an RSA key")
    _check(key, path)
    return key


def _check(key: rsa.RSAPrivateKey, where: object) -> None:
    numbers = key.public_key().public_numbers()
    if key.key_size != MODULUS_BITS or numbers.e != EXPONENT:
        raise SignerKeyError(
            f"{where}: an enclave signer key is RSA-{MODULUS_BITS} with exponent {EXPONENT}, "
            f"not RSA-{key.key_size} with exponent {numbers.e}"
        )


def sign_css(
    key: rsa.RSAPrivateKey,
    mrenclave: bytes,
    isv_prod_id: int = 0,
    isv_svn: int = 0,
    date: datetime.date | None = None,
) -> bytes:
    """A version 1 `.css` signing `mrenclave` as product `isv_prod_id` at security
    version `isv_svn`, dated `date` (default: today, UTC). `ValueError` for values the
    format cannot hold, `SignerKeyError` for a key SGX would not take."""
    _check(key, "the signer key")
    if date is None:
        date = datetime.datetime.now(datetime.UTC).date()
    modulus = key.public_key().public_numbers().n.to_bytes(MODULUS_BYTES, "little")
    signed = signed_part(mrenclave, isv_prod_id, isv_svn, date, modulus)
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return Css(mrenclave, isv_prod_id, isv_svn, date, modulus, signature[::-1]).to_bytes()
