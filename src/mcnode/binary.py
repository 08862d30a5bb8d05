"""The one binary encoding of mcnode: a `Writer` and a `Reader` of canonical bytes.

Rules of this file:
- One byte order: every integer is fixed-width **little-endian** (u8, u16, u32, u64), as
  the transaction encoding, `domain_hash` and the Rust core in native/ have always been.
- Every count and every variable length is written in a stated width and checked against
  a stated limit on both sides: the writer refuses (`ValueError`; `OverflowError` for an
  integer outside its width) to produce what the reader would refuse, so a value that
  encodes also decodes.
- A reader consumes its input exactly: a short read, a count or length over its limit,
  input over the reader's `max_size`, and (at `finish`) trailing bytes are decode errors.
  Integers have one encoding each, so a format built from these primitives, adding no
  choice of its own, has one encoding per value: equal values have equal bytes, which is
  what signatures, hashes and deduplication rely on.
- Decode failures raise the reader's `error`, a `DecodeError` subclass chosen by the layer
  that owns the format (scp: `MsgDecodeError`; transaction and ledger:
  `transaction.errors.DecodeError`), so each layer's `except` clauses keep their meaning.

Layout of the composite primitives:
    count    := n:uW                          W = 1, 2, 4 or 8 bytes, n <= limit
    var      := len:uW bytes                  len <= limit
    var_list := n:u32 (len:u32 bytes)*        n <= limit, each len <= item_limit

This module knows no format built on it (messages, transactions, blocks, batches): those
live with their types. It imports nothing of mcnode, so every layer may import it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import ClassVar, Self, TypeVar

T = TypeVar("T")

_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_UINT = {1: _U8, 2: _U16, 4: _U32, 8: _U64}
_NO_ITEMS = _U32.pack(0)


class DecodeError(ValueError):
    """Bytes that are not the canonical encoding of the expected value."""


class Writer:
    """Appends canonical fields; `getvalue()` is the encoding."""

    __slots__ = ("_parts",)

    # A list of parts joined once: cheaper than growing a bytearray for the many short
    # fields of an SCP message (measured with bench/bench_scp.py's codec figures).
    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def getvalue(self) -> bytes:
        return b"".join(self._parts)

    def u8(self, n: int) -> None:
        self._parts.append(_pack(_U8, n))

    def u16(self, n: int) -> None:
        self._parts.append(_pack(_U16, n))

    def u32(self, n: int) -> None:
        self._parts.append(_pack(_U32, n))

    def u64(self, n: int) -> None:
        self._parts.append(_pack(_U64, n))

    def fixed(self, data: bytes, size: int) -> None:
        if len(data) != size:
            raise ValueError(f"field must be {size} bytes, got {len(data)}")
        self._parts.append(data)

    def count(self, n: int, limit: int, *, width: int, what: str = "items") -> None:
        """A list's length, before its items."""
        if n > limit:
            raise ValueError(f"{n} {what} exceed the limit of {limit}")
        self._parts.append(_pack(_UINT[width], n))

    def var(self, data: bytes, limit: int, *, width: int, what: str = "field") -> None:
        """A byte string of at most `limit` bytes, after its length."""
        if len(data) > limit:
            raise ValueError(f"{what} of {len(data)} bytes exceeds the limit of {limit}")
        self._parts += (_pack(_UINT[width], len(data)), data)

    def var_list(
        self, items: Sequence[bytes], limit: int, item_limit: int, *, what: str = "items"
    ) -> None:
        """At most `limit` byte strings of at most `item_limit` bytes each, in order."""
        if len(items) > limit:
            raise ValueError(f"{len(items)} {what} exceed the limit of {limit}")
        if not items:
            self._parts.append(_NO_ITEMS)
            return
        sizes = list(map(len, items))
        if max(sizes) > item_limit:
            raise ValueError(f"an item of {max(sizes)} bytes exceeds the limit of {item_limit}")
        # Lengths and items interleaved by slice assignment: no Python loop per item (the
        # value sets of SCP messages come through here).
        interleaved: list[bytes] = [b""] * (2 * len(sizes))
        interleaved[0::2] = map(_U32.pack, sizes)
        interleaved[1::2] = items
        self._parts.append(_U32.pack(len(sizes)))
        self._parts += interleaved


def _pack(fmt: struct.Struct, n: int) -> bytes:
    try:
        return fmt.pack(n)
    except struct.error:
        # OverflowError, as int.to_bytes raises: a caller's bug, never input.
        raise OverflowError(f"{n!r} does not fit in {fmt.size} bytes unsigned") from None


class Reader:
    """Reads canonical fields from `data`; call `finish()` when the value is read.

    A layer subclasses it to set `error` (and `max_size`), and may add the readers of its
    own structures on top of these primitives."""

    __slots__ = ("_buf", "_pos")

    error: ClassVar[type[DecodeError]] = DecodeError
    #: Largest input this reader accepts at all (None: no limit beyond the fields').
    max_size: ClassVar[int | None] = None

    def __init__(self, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise self.error(f"expected bytes, got {type(data).__name__}")
        if self.max_size is not None and len(data) > self.max_size:
            raise self.error(f"input of {len(data)} bytes exceeds the limit of {self.max_size}")
        self._buf = bytes(data)
        self._pos = 0

    def _truncated(self, n: int) -> DecodeError:
        return self.error(f"truncated: need {n} bytes at offset {self._pos}")

    @property
    def offset(self) -> int:
        """How many bytes have been read."""
        return self._pos

    def finish(self) -> None:
        """The value is complete: anything left over makes the input non-canonical."""
        if self._pos != len(self._buf):
            raise self.error(f"{len(self._buf) - self._pos} trailing bytes")

    @classmethod
    def whole(cls, data: bytes, decode: Callable[[Self], T]) -> T:
        """`decode` read from all of `data`: what every `from_bytes` is."""
        r = cls(data)
        value = decode(r)
        r.finish()
        return value

    def _uint(self, fmt: struct.Struct) -> int:
        pos = self._pos
        try:
            (n,) = fmt.unpack_from(self._buf, pos)
        except struct.error:
            raise self._truncated(fmt.size) from None
        self._pos = pos + fmt.size
        return int(n)

    def u8(self) -> int:
        return self._uint(_U8)

    def u16(self) -> int:
        return self._uint(_U16)

    def u32(self) -> int:
        return self._uint(_U32)

    def u64(self) -> int:
        return self._uint(_U64)

    def fixed(self, size: int) -> bytes:
        pos = self._pos
        end = pos + size
        if end > len(self._buf):
            raise self._truncated(size)
        self._pos = end
        return self._buf[pos:end]

    def count(self, limit: int, *, width: int, what: str = "items") -> int:
        n = self._uint(_UINT[width])
        if n > limit:
            raise self.error(f"{n} {what} exceed the limit of {limit}")
        return n

    def var(self, limit: int, *, width: int, what: str = "field") -> bytes:
        n = self._uint(_UINT[width])
        if n > limit:
            raise self.error(f"{what} of {n} bytes exceeds the limit of {limit}")
        return self.fixed(n)

    def var_list(self, limit: int, item_limit: int, *, what: str = "items") -> list[bytes]:
        n = self._uint(_U32)
        if n > limit:
            raise self.error(f"{n} {what} exceed the limit of {limit}")
        # One loop over locals: the value sets of SCP messages run through here.
        buf, pos, end, unpack = self._buf, self._pos, len(self._buf), _U32.unpack_from
        out: list[bytes] = []
        for _ in range(n):
            if pos + 4 > end:
                self._pos = pos
                raise self._truncated(4)
            (size,) = unpack(buf, pos)
            if size > item_limit:
                raise self.error(f"an item of {size} bytes exceeds the limit of {item_limit}")
            pos += 4
            if pos + size > end:
                self._pos = pos
                raise self._truncated(size)
            out.append(buf[pos : pos + size])
            pos += size
        self._pos = pos
        return out
