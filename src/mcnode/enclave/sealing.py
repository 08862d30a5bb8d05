"""Sealed storage: the enclave's keys, generated inside it and kept on disk encrypted to
its measurement.

    seal(plaintext, sealing_secret, measurement)  ->  MAGIC || u8 version || nonce || ct+tag
    key = HKDF-SHA256(sealing_secret, salt=measurement, info=b"mcnode seal v1")
    AES-256-GCM, a random 12-byte nonce, MAGIC || version as associated data

Only an enclave of the same measurement (the same code, `measure`) with the same sealing
secret derives the key: a modified enclave cannot unseal (`SealError`).

The key store, in a directory the host names (`<state_dir>/enclave/`):
- `sealing.secret`: 32 random bytes, mode 0600, made on first start. SGX derives the
  sealing key from a secret fused into the CPU that no software can read; **in this
  simulation it is a file the host (the same user) can read**, so sealing here guards
  against a changed enclave build, not against the operator.
- `sealed-keys.bin`: the sealed `u8 version || X25519 identity private key || Ed25519
  block-signing seed`. First start generates both keys (inside the enclave process, or
  in `provision`, which tools call before any process exists) and writes them sealed
  (`files.write_atomic`); later starts unseal them, so a restarted enclave keeps its
  identity and its block signer.

Rules of this file: keys never appear in a repr, an error or a log line; errors are one
line naming the file and what the operator can do. It knows nothing of sessions or txs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mcnode import binary, files
from mcnode.crypto import RandomSource, system_random
from mcnode.crypto.signing import ed25519_public, x25519_keypair
from mcnode.enclave.errors import SealError
from mcnode.enclave.measure import measure

MAGIC = b"MCSEAL"
SEAL_VERSION = 1
SEAL_INFO = b"mcnode seal v1"
NONCE_BYTES = 12
SECRET_BYTES = 32
SECRET_FILE = "sealing.secret"
KEYS_FILE = "sealed-keys.bin"
KEYS_VERSION = 1
_HEADER = MAGIC + bytes([SEAL_VERSION])
_TAG_BYTES = 16


def _key(sealing_secret: bytes, measurement: bytes) -> AESGCM:
    if len(sealing_secret) != SECRET_BYTES:
        raise SealError(f"a sealing secret is {SECRET_BYTES} bytes, not {len(sealing_secret)}")
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=measurement, info=SEAL_INFO)
    return AESGCM(kdf.derive(sealing_secret))


def seal(
    plaintext: bytes,
    sealing_secret: bytes,
    measurement: bytes,
    rng: RandomSource = system_random,
) -> bytes:
    """`plaintext` sealed to (`sealing_secret`, `measurement`)."""
    nonce = rng(NONCE_BYTES)
    return _HEADER + nonce + _key(sealing_secret, measurement).encrypt(nonce, plaintext, _HEADER)


def unseal(sealed: bytes, sealing_secret: bytes, measurement: bytes) -> bytes:
    """The plaintext; `SealError` when `sealed` is not ours, was sealed by another build
    (measurement) or with another secret, or was changed."""
    if len(sealed) < len(_HEADER) + NONCE_BYTES + _TAG_BYTES or not sealed.startswith(MAGIC):
        raise SealError("not sealed data (no MCSEAL header)")
    if sealed[len(MAGIC)] != SEAL_VERSION:
        raise SealError(f"sealed data of unknown version {sealed[len(MAGIC)]}")
    nonce = sealed[len(_HEADER) : len(_HEADER) + NONCE_BYTES]
    plaintext = None
    with contextlib.suppress(InvalidTag):
        plaintext = _key(sealing_secret, measurement).decrypt(
            nonce, sealed[len(_HEADER) + NONCE_BYTES :], _HEADER
        )
    if plaintext is None:
        raise SealError("sealed by another enclave build or secret, or damaged")
    return plaintext


@dataclass(frozen=True, slots=True)
class EnclaveKeys:
    """The enclave's two private keys. Never printed."""

    identity_private: bytes = field(repr=False)
    block_signing_seed: bytes = field(repr=False)

    @property
    def identity_public(self) -> bytes:
        return x25519_keypair(lambda _n: self.identity_private)[1]

    @property
    def block_signer_public(self) -> bytes:
        return ed25519_public(self.block_signing_seed)

    @classmethod
    def generate(cls, rng: RandomSource = system_random) -> EnclaveKeys:
        return cls(rng(32), rng(32))

    def to_bytes(self) -> bytes:
        w = binary.Writer()
        w.u8(KEYS_VERSION)
        w.fixed(self.identity_private, 32)
        w.fixed(self.block_signing_seed, 32)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> EnclaveKeys:
        def decode(r: binary.Reader) -> EnclaveKeys:
            version = r.u8()
            if version != KEYS_VERSION:
                raise binary.DecodeError(f"keys of unknown version {version}")
            return cls(r.fixed(32), r.fixed(32))

        return binary.Reader.whole(data, decode)


def load_or_create(
    directory: str | os.PathLike[str],
    measurement: bytes,
    rng: RandomSource = system_random,
) -> EnclaveKeys:
    """The keys sealed in `directory`, made (and sealed there) on first use. `SealError`,
    one line naming the file and what to do, when they cannot be read or unsealed."""
    d = Path(directory)
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(d):
            return _load_or_create(d, measurement, rng)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise SealError(f"{d}: cannot use the enclave key directory: {reason}") from None


def _load_or_create(d: Path, measurement: bytes, rng: RandomSource) -> EnclaveKeys:
    secret_path, keys_path = d / SECRET_FILE, d / KEYS_FILE
    if not secret_path.exists():
        if keys_path.exists():
            raise SealError(
                f"{secret_path} is missing, so {keys_path} cannot be unsealed: restore it, "
                f"or remove {keys_path} to take a new identity and block signer"
            )
        files.write_atomic(secret_path, rng(SECRET_BYTES), mode=0o600)
    try:
        secret = files.read_private_file(secret_path, max_bytes=SECRET_BYTES)
    except files.PrivateFileError as e:
        raise SealError(str(e)) from None
    if not keys_path.exists():
        keys = EnclaveKeys.generate(rng)
        files.write_atomic(keys_path, seal(keys.to_bytes(), secret, measurement, rng), mode=0o600)
        return keys
    plaintext = None
    with contextlib.suppress(SealError):
        plaintext = unseal(keys_path.read_bytes(), secret, measurement)
    if plaintext is None:
        raise SealError(
            f"{keys_path} does not unseal: it was sealed by another enclave build (this one "
            f"measures {measurement.hex()[:16]}...) or with another {SECRET_FILE}. Run the build "
            "that sealed it; remove the file only to take a new identity and block signer "
            "(then tell peers the new block signer)"
        )
    keys = None
    with contextlib.suppress(binary.DecodeError):
        keys = EnclaveKeys.from_bytes(plaintext)
    if keys is None:
        raise SealError(f"{keys_path} unseals, but not to enclave keys of a known version")
    return keys


class _locked:
    """An exclusive `flock` on the directory itself, while keys are read or made (two
    processes starting at once must not each make different keys)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # releases the lock


def provision(directory: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """Make a node's sealed enclave keys ahead of time, in this process (for tools such
    as `mcnode localnet init`, which list every node's block signer before any process
    runs); keys already there are kept. (identity public key, block-signer public key)."""
    keys = load_or_create(directory, measure())
    return keys.identity_public, keys.block_signer_public
