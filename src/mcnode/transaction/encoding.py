"""Canonical binary encoding primitives with hard limits on every field.

Integers are fixed-width little-endian; lists carry a count that must not exceed the
field's limit; variable byte strings carry a length that must not exceed theirs. A decoder
must consume its input exactly. Every failure is a `DecodeError` (a ValueError).
"""

from __future__ import annotations

import hashlib

from mcnode.transaction.errors import DecodeError


class Writer:
    def __init__(self) -> None:
        self._buf = bytearray()

    def u8(self, n: int) -> None:
        self._buf += n.to_bytes(1, "little")

    def u16(self, n: int) -> None:
        self._buf += n.to_bytes(2, "little")

    def u64(self, n: int) -> None:
        self._buf += n.to_bytes(8, "little")

    def fixed(self, data: bytes, size: int) -> None:
        if len(data) != size:
            raise ValueError(f"field must be {size} bytes, got {len(data)}")
        self._buf += data

    def var(self, data: bytes, limit: int) -> None:
        if len(data) > limit:
            raise ValueError(f"field longer than {limit} bytes")
        self.u16(len(data))
        self._buf += data

    def count(self, n: int, limit: int) -> None:
        if n > limit:
            raise ValueError(f"list longer than {limit}")
        self.u8(n)

    def getvalue(self) -> bytes:
        return bytes(self._buf)


class Reader:
    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise DecodeError("expected bytes")
        self._data = bytes(data)
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError("truncated input")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self._take(2), "little")

    def u64(self) -> int:
        return int.from_bytes(self._take(8), "little")

    def fixed(self, size: int) -> bytes:
        return self._take(size)

    def var(self, limit: int) -> bytes:
        n = self.u16()
        if n > limit:
            raise DecodeError(f"field of {n} bytes is over its limit of {limit}")
        return self._take(n)

    def count(self, limit: int) -> int:
        n = self.u8()
        if n > limit:
            raise DecodeError(f"list of {n} is over its limit of {limit}")
        return n

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"{len(self._data) - self._pos} trailing bytes")


def domain_hash(dst: bytes, *parts: bytes) -> bytes:
    """SHA-512/256 of a length-prefixed domain tag and length-prefixed parts: the one
    construction for identities of encoded values (tx hash, block id, contents hash)."""
    tagged = _TAGGED.get(dst)
    if tagged is None:
        tagged = hashlib.new("sha512_256")
        tagged.update(bytes([len(dst)]) + dst)
        if len(_TAGGED) < 64:  # the tags are a handful of constants
            _TAGGED[dst] = tagged
    h = tagged.copy()
    for p in parts:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)  # not concatenated: parts can be a block's whole contents
    return h.digest()


_TAGGED: dict[bytes, hashlib._Hash] = {}
