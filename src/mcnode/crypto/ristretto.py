"""Ristretto255 scalars and points: the value types of mcnode's group arithmetic.

Scalars are Python ints mod l (exact, and fast enough at 32 bytes). Points are their
32-byte canonical encodings; every group operation runs in `mcnode._native`
(curve25519-dalek). Functions named `*_vartime` leak timing and take public data only.

Hashing to the group and to scalars is domain separated: the tag is length-prefixed and
every message part is length-prefixed, so no two (tag, parts) lists hash alike.
This module knows nothing of transactions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from mcnode import _native
from mcnode.crypto.rng import RandomSource

#: Order of the Ristretto255 group (RFC 9496).
L = 2**252 + 27742317777372353535851937790883648493


def _frame(dst: bytes, parts: Sequence[bytes]) -> bytes:
    if len(dst) > 255:
        raise ValueError("domain separation tag longer than 255 bytes")
    out = bytearray([len(dst)])
    out += dst
    for part in parts:
        out += len(part).to_bytes(4, "little")
        out += part
    return bytes(out)


@dataclass(frozen=True, slots=True)
class Scalar:
    """An integer mod l."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value < L:
            raise ValueError("scalar out of range [0, l)")

    @classmethod
    def from_int(cls, n: int) -> Scalar:
        return cls(n % L)

    @classmethod
    def from_bytes(cls, data: bytes) -> Scalar:
        """Canonical 32-byte little-endian encoding; anything else is a ValueError."""
        if len(data) != 32:
            raise ValueError(f"scalar must be 32 bytes, got {len(data)}")
        n = int.from_bytes(data, "little")
        if n >= L:
            raise ValueError("scalar is not canonical (not reduced mod l)")
        return cls(n)

    @classmethod
    def random(cls, rng: RandomSource) -> Scalar:
        """Uniform scalar from 64 random bytes (wide reduction: no bias worth naming)."""
        return cls(int.from_bytes(rng(64), "little") % L)

    def to_bytes(self) -> bytes:
        return self.value.to_bytes(32, "little")

    def __add__(self, other: Scalar) -> Scalar:
        return Scalar((self.value + other.value) % L)

    def __sub__(self, other: Scalar) -> Scalar:
        return Scalar((self.value - other.value) % L)

    def __mul__(self, other: Scalar) -> Scalar:
        if not isinstance(other, Scalar):
            return NotImplemented  # scalar * point: RistrettoPoint.__rmul__
        return Scalar((self.value * other.value) % L)

    def __neg__(self) -> Scalar:
        return Scalar(-self.value % L)

    def invert(self) -> Scalar:
        if self.value == 0:
            raise ZeroDivisionError("zero has no inverse mod l")
        return Scalar(pow(self.value, -1, L))

    def __repr__(self) -> str:
        return "Scalar(<secret>)"


def hash_to_scalar(dst: bytes, *parts: bytes) -> Scalar:
    """SHA-512 of the framed (dst, parts), reduced mod l."""
    digest = hashlib.sha512(_frame(dst, parts)).digest()
    return Scalar(int.from_bytes(digest, "little") % L)


@dataclass(frozen=True, slots=True)
class RistrettoPoint:
    """A Ristretto255 group element, held as its canonical 32-byte encoding."""

    encoding: bytes

    def __post_init__(self) -> None:
        if not _native.is_valid_point(self.encoding):
            raise ValueError("not a valid Ristretto255 point encoding")

    @classmethod
    def _trusted(cls, encoding: bytes) -> RistrettoPoint:
        # Results of native group operations are valid by construction: skip the re-check.
        p = object.__new__(cls)
        object.__setattr__(p, "encoding", encoding)
        return p

    def to_bytes(self) -> bytes:
        return self.encoding

    def __add__(self, other: RistrettoPoint) -> RistrettoPoint:
        return RistrettoPoint._trusted(_native.point_add(self.encoding, other.encoding))

    def __sub__(self, other: RistrettoPoint) -> RistrettoPoint:
        return RistrettoPoint._trusted(_native.point_sub(self.encoding, other.encoding))

    def __rmul__(self, scalar: Scalar) -> RistrettoPoint:
        """scalar * point, constant time."""
        return RistrettoPoint._trusted(_native.scalar_mul(scalar.to_bytes(), self.encoding))

    def __repr__(self) -> str:
        return f"RistrettoPoint({self.encoding.hex()})"


#: The Ristretto255 generator G (RFC 9496).
BASEPOINT = RistrettoPoint._trusted(_native.basepoint_mul((1).to_bytes(32, "little")))
#: The identity element.
IDENTITY = RistrettoPoint._trusted(bytes(32))


def basepoint_mul(s: Scalar) -> RistrettoPoint:
    """s * G, constant time."""
    return RistrettoPoint._trusted(_native.basepoint_mul(s.to_bytes()))


def hash_to_point(dst: bytes, msg: bytes) -> RistrettoPoint:
    """Elligator map of SHA-512(len(dst) || dst || msg): a point of unknown discrete log."""
    return RistrettoPoint._trusted(_native.hash_to_point(dst, msg))


def double_mul_basepoint_vartime(a: Scalar, point: bytes, b: Scalar) -> bytes:
    """a * point + b * G on encodings (ValueError if `point` is invalid). Public data only."""
    return _native.double_scalar_mul_basepoint_vartime(a.to_bytes(), point, b.to_bytes())


def multiscalar_mul_vartime(scalars: Sequence[Scalar], points: Sequence[bytes]) -> bytes:
    """sum(s_i * P_i) on encodings (ValueError if any point is invalid). Public data only."""
    return _native.multiscalar_mul_vartime([s.to_bytes() for s in scalars], list(points))


def point_sub(a: bytes, b: bytes) -> bytes:
    """a - b on encodings (ValueError if either is invalid)."""
    return _native.point_sub(a, b)


def point_sum(points: Sequence[bytes]) -> bytes:
    """Sum of encodings (the identity for an empty list)."""
    if not points:
        return IDENTITY.encoding
    one = Scalar(1)
    return multiscalar_mul_vartime([one] * len(points), points)
