"""Canonical, versioned binary encoding of SCP messages.

Layout (all integers big-endian):
    msg      := version:u8(=1) sender:str slot:u64 qset topic
    str      := len:u16 utf8-bytes                 (1..256 bytes)
    qset     := threshold:u32 count:u16 member*    (depth <= 4, <= 1000 nodes in all)
    member   := 0:u8 str | 1:u8 qset
    topic    := tag:u8 body    0 Nominate, 1 NominatePrepare, 2 Prepare, 3 Commit, 4 Externalize
    values   := count:u32 (len:u32 bytes)*        sets: strictly ascending
    ballot   := n:u32 values                      non-empty, no duplicates, order kept
    opt      := 0:u8 | 1:u8 ballot

Decoding accepts only the canonical form (so equal messages have equal bytes, which is what
signatures and dedup rely on) and raises `MsgDecodeError` (a ValueError) on anything else.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from mcnode.scp.quorum_set import MAX_DEPTH, MAX_NODE_ID_LEN, MAX_NODES, QuorumSet

if TYPE_CHECKING:
    from mcnode.scp.msg import Ballot

VERSION = 1
MAX_MSG_BYTES = 4 * 1024 * 1024
MAX_VALUES = 10_000  # per value set
MAX_VALUE_LEN = 64 * 1024

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class MsgDecodeError(ValueError):
    """Bytes that are not a canonical SCP message."""


class Writer:
    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def getvalue(self) -> bytes:
        return b"".join(self._parts)

    def u8(self, v: int) -> None:
        self._parts.append(_U8.pack(v))

    def u32(self, v: int) -> None:
        self._parts.append(_U32.pack(v))

    def u64(self, v: int) -> None:
        self._parts.append(_U64.pack(v))

    def str(self, s: str) -> None:
        b = s.encode()
        self._parts.append(_U16.pack(len(b)))
        self._parts.append(b)

    def qset(self, q: QuorumSet) -> None:
        self._parts.append(_U32.pack(q.threshold) + _U16.pack(len(q.members)))
        for m in q.members:
            if isinstance(m, QuorumSet):
                self.u8(1)
                self.qset(m)
            else:
                self.u8(0)
                self.str(m)

    def values(self, vs: tuple[bytes, ...] | list[bytes]) -> None:
        self._parts.append(_U32.pack(len(vs)))
        for v in vs:
            self._parts.append(_U32.pack(len(v)))
            self._parts.append(v)

    def ballot(self, b: Ballot) -> None:
        self.u32(b.n)
        self.values(b.values)

    def opt_ballot(self, b: Ballot | None) -> None:
        if b is None:
            self.u8(0)
        else:
            self.u8(1)
            self.ballot(b)


class Reader:
    __slots__ = ("_buf", "_nodes", "_pos")

    def __init__(self, buf: bytes) -> None:
        if not isinstance(buf, bytes | bytearray | memoryview):
            raise MsgDecodeError(f"expected bytes, got {type(buf).__name__}")
        if len(buf) > MAX_MSG_BYTES:
            raise MsgDecodeError(f"message of {len(buf)} bytes exceeds {MAX_MSG_BYTES}")
        self._buf = bytes(buf)
        self._pos = 0
        self._nodes = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._buf):
            raise MsgDecodeError(f"truncated: need {n} bytes at offset {self._pos}")
        out = self._buf[self._pos : end]
        self._pos = end
        return out

    def done(self) -> None:
        if self._pos != len(self._buf):
            raise MsgDecodeError(f"{len(self._buf) - self._pos} trailing bytes")

    def u8(self) -> int:
        return int(_U8.unpack(self._take(1))[0])

    def u16(self) -> int:
        return int(_U16.unpack(self._take(2))[0])

    def u32(self) -> int:
        return int(_U32.unpack(self._take(4))[0])

    def u64(self) -> int:
        return int(_U64.unpack(self._take(8))[0])

    def str(self) -> str:
        n = self.u16()
        if not 1 <= n <= MAX_NODE_ID_LEN:
            raise MsgDecodeError(f"node id length {n} outside 1..{MAX_NODE_ID_LEN}")
        try:
            return self._take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MsgDecodeError(f"node id is not UTF-8: {e.reason}") from None

    def qset(self, depth: int = 0) -> QuorumSet:
        if depth > MAX_DEPTH:
            raise MsgDecodeError(f"quorum set nested deeper than {MAX_DEPTH}")
        threshold = self.u32()
        count = self.u16()
        if count > MAX_NODES:
            raise MsgDecodeError(f"quorum set with {count} members")
        members: list[str | QuorumSet] = []
        for _ in range(count):
            tag = self.u8()
            if tag == 0:
                self._nodes += 1
                if self._nodes > MAX_NODES:
                    raise MsgDecodeError(f"quorum set names more than {MAX_NODES} nodes")
                members.append(self.str())
            elif tag == 1:
                members.append(self.qset(depth + 1))
            else:
                raise MsgDecodeError(f"bad quorum set member tag {tag}")
        return QuorumSet(threshold, members)

    def values(self, ascending: bool = True) -> tuple[bytes, ...]:
        """A value list; sets must be strictly ascending, ballot lists only duplicate-free."""
        count = self.u32()
        if count > MAX_VALUES:
            raise MsgDecodeError(f"{count} values exceed the limit of {MAX_VALUES}")
        out: list[bytes] = []
        prev: bytes | None = None
        for _ in range(count):
            n = self.u32()
            if n > MAX_VALUE_LEN:
                raise MsgDecodeError(f"value of {n} bytes exceeds {MAX_VALUE_LEN}")
            v = self._take(n)
            if ascending and prev is not None and v <= prev:
                raise MsgDecodeError("values are not strictly ascending")
            out.append(v)
            prev = v
        if not ascending and len(set(out)) != len(out):
            raise MsgDecodeError("ballot has duplicate values")
        return tuple(out)

    def ballot(self) -> Ballot:
        from mcnode.scp.msg import Ballot

        n = self.u32()
        values = self.values(ascending=False)
        if not values:
            raise MsgDecodeError("ballot with no values")
        return Ballot(n, values)

    def opt_ballot(self) -> Ballot | None:
        tag = self.u8()
        if tag == 0:
            return None
        if tag == 1:
            return self.ballot()
        raise MsgDecodeError(f"bad optional tag {tag}")
