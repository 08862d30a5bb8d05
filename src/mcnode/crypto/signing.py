"""Ed25519 signatures and checks from ed25519-dalek (`mcnode._native`); X25519 key
agreement, HKDF and an AEAD from `cryptography`.

Thin, typed wrappers over raw 32-byte keys so that callers never handle the library's key
objects. Key generation takes the project's injectable `RandomSource`.

Why Ed25519 comes from dalek: a validator checks a signature on every peer message (about
20 per slot each) and signs each of its own (about 7 per slot), always with caches cold
from the other processes that share its cores. There OpenSSL, through `cryptography`,
takes ~120 us to sign and ~150 us to check; dalek ~60-80 us for each (bench_cold.py).
Dalek's `verify_strict` also refuses small-order keys and R points, which RFC 8032
allows. Signatures are deterministic (RFC 8032): `cryptography`'s signer, kept as
`ed25519_sign_reference`, makes the same bytes, which the tests hold dalek's to.
"""

from __future__ import annotations

import functools

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mcnode._native import Ed25519Signer, Ed25519Verifier
from mcnode.crypto.rng import RandomSource

_RAW = (Encoding.Raw, PublicFormat.Raw)


def ed25519_keypair(rng: RandomSource) -> tuple[bytes, bytes]:
    """(private seed, public key), 32 bytes each."""
    seed = rng(32)
    return seed, ed25519_public(seed)


# Loading a key costs a scalar multiplication (private) or a point decompression (public):
# validators sign and check with the same few keys thousands of times, so the parsed key
# objects are kept. The caches are small and bounded; a private key held here is no more
# exposed than the bytes the caller already holds (and dalek's is zeroized when dropped).
@functools.lru_cache(maxsize=16)
def _signer(private: bytes) -> Ed25519Signer:
    return Ed25519Signer(private)


@functools.lru_cache(maxsize=256)
def _verifier(public: bytes) -> Ed25519Verifier | None:
    """The parsed key, or None if the bytes are no public key (every check then fails)."""
    try:
        return Ed25519Verifier(public)
    except ValueError:
        return None


def ed25519_public(private: bytes) -> bytes:
    return _signer(bytes(private)).public()


def ed25519_sign(private: bytes, message: bytes) -> bytes:
    """64-byte Ed25519 signature (deterministic, RFC 8032)."""
    return _signer(bytes(private)).sign(message)


def ed25519_sign_reference(private: bytes, message: bytes) -> bytes:
    """The same signature from OpenSSL (`cryptography`): the reference the tests hold
    `ed25519_sign` to, byte for byte."""
    return Ed25519PrivateKey.from_private_bytes(private).sign(message)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    v = _verifier(bytes(public))
    return v is not None and v.verify(message, signature)


def x25519_keypair(rng: RandomSource) -> tuple[bytes, bytes]:
    """(private, public), 32 bytes each."""
    private = rng(32)
    public = X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(*_RAW)
    return private, public


def x25519_exchange(private: bytes, peer_public: bytes) -> bytes:
    """The 32-byte shared secret; ValueError for a low-order peer key."""
    key = X25519PrivateKey.from_private_bytes(private)
    return key.exchange(X25519PublicKey.from_public_bytes(peer_public))


def hkdf_sha512(secret: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA512(), length=length, salt=salt, info=info).derive(secret)


def aead_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """ChaCha20-Poly1305: ciphertext || 16-byte tag."""
    return ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes = b"") -> bytes | None:
    """The plaintext, or None when the tag does not verify."""
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        return None
