"""Account keys, subaddresses and printable public addresses.

An account is two secret scalars: the view key `a` (finds and reads incoming outputs) and
the spend key `b` (spends them). As in MobileCoin, subaddress i has

    spend private  b_i = Hs("subaddress", a, i) + b      D_i = b_i * G
    view private   c_i = a * b_i                         C_i = c_i * G = a * D_i

and its public address is (C_i, D_i). Index 0 is the default address, index 1 receives
change. A printable address is base58 of (version, C, D, 4-byte SHA-256d checksum).
No files here: key files are `mcnode.client.keys`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mcnode.crypto import RandomSource, RistrettoPoint, Scalar, basepoint_mul, hash_to_scalar
from mcnode.transaction.encoding import Reader, Writer
from mcnode.transaction.errors import DecodeError

DEFAULT_SUBADDRESS_INDEX = 0
CHANGE_SUBADDRESS_INDEX = 1
ADDRESS_VERSION = 1
DST_SUBADDRESS = b"mcnode subaddress v1"

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
#: Longest printable address accepted (69 bytes need 95 base58 digits).
MAX_ADDRESS_CHARS = 100


@dataclass(frozen=True, slots=True)
class PublicAddress:
    """What a payer needs: the subaddress view and spend public keys (C_i, D_i)."""

    view_public: bytes
    spend_public: bytes

    def __post_init__(self) -> None:
        RistrettoPoint(self.view_public)
        RistrettoPoint(self.spend_public)

    def to_bytes(self) -> bytes:
        w = Writer()
        w.fixed(self.view_public, 32)
        w.fixed(self.spend_public, 32)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicAddress:
        r = Reader(data)
        view, spend = r.fixed(32), r.fixed(32)
        r.finish()
        try:
            return cls(view, spend)
        except ValueError as e:
            raise DecodeError(f"bad public address: {e}") from e

    def to_string(self) -> str:
        """Printable, checksummed: base58(version || C || D || checksum)."""
        payload = bytes([ADDRESS_VERSION]) + self.to_bytes()
        return _b58encode(payload + _checksum(payload))

    @classmethod
    def from_string(cls, text: str) -> PublicAddress:
        """Inverse of `to_string`; DecodeError on a bad character, checksum or version."""
        if len(text) > MAX_ADDRESS_CHARS:
            raise DecodeError("address too long")
        raw = _b58decode(text)
        if len(raw) != 1 + 64 + 4:
            raise DecodeError("address has the wrong length")
        payload, check = raw[:-4], raw[-4:]
        if _checksum(payload) != check:
            raise DecodeError("address checksum does not match (mistyped?)")
        if payload[0] != ADDRESS_VERSION:
            raise DecodeError(f"unknown address version {payload[0]}")
        return cls.from_bytes(payload[1:])


@dataclass(frozen=True, slots=True)
class AccountKey:
    """The two secrets of an account."""

    view_private: Scalar
    spend_private: Scalar

    @classmethod
    def random(cls, rng: RandomSource) -> AccountKey:
        return cls(Scalar.random(rng), Scalar.random(rng))

    def subaddress_spend_private(self, index: int) -> Scalar:
        """b_i = Hs(a, i) + b."""
        return (
            hash_to_scalar(
                DST_SUBADDRESS, self.view_private.to_bytes(), index.to_bytes(8, "little")
            )
            + self.spend_private
        )

    def subaddress(self, index: int) -> PublicAddress:
        b_i = self.subaddress_spend_private(index)
        return PublicAddress(
            view_public=basepoint_mul(self.view_private * b_i).encoding,
            spend_public=basepoint_mul(b_i).encoding,
        )

    @property
    def default_address(self) -> PublicAddress:
        return self.subaddress(DEFAULT_SUBADDRESS_INDEX)

    @property
    def change_address(self) -> PublicAddress:
        return self.subaddress(CHANGE_SUBADDRESS_INDEX)

    def to_bytes(self) -> bytes:
        return self.view_private.to_bytes() + self.spend_private.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> AccountKey:
        r = Reader(data)
        view, spend = r.fixed(32), r.fixed(32)
        r.finish()
        try:
            return cls(Scalar.from_bytes(view), Scalar.from_bytes(spend))
        except ValueError as e:
            raise DecodeError(f"bad account key: {e}") from e

    def __repr__(self) -> str:
        return "AccountKey(<secret>)"


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, rem = divmod(n, 58)
        out.append(_B58[rem])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def _b58decode(text: str) -> bytes:
    n = 0
    for ch in text:
        digit = _B58_INDEX.get(ch)
        if digit is None:
            raise DecodeError(f"{ch!r} is not a base58 character")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\0" * zeros + body
