"""Canonical, versioned binary encoding of SCP messages, on `mcnode.binary`.

Layout (all integers little-endian, as everywhere in mcnode; counts and lengths bounded):
    msg      := version:u8(=1) sender:str slot:u64 qset topic
    str      := len:u16 utf8-bytes                 (1..256 bytes)
    qset     := threshold:u32 count:u16 member*    (depth <= 4, <= 1000 nodes in all)
    member   := 0:u8 str | 1:u8 qset
    topic    := tag:u8 body    0 Nominate, 1 NominatePrepare, 2 Prepare, 3 Commit, 4 Externalize
    values   := count:u32 (len:u32 bytes)*        (<= 10,000 values of <= 64 KiB each)
                                                  sets: strictly ascending
    ballot   := n:u32 values                      non-empty, no duplicates, order kept
    opt      := 0:u8 | 1:u8 ballot

This file adds only SCP's structures (node ids, quorum sets, value sets, ballots) to the
shared primitives; the topic layout is in `msg.py`. Decoding accepts only the canonical
form (so equal messages have equal bytes, which is what signatures and dedup rely on) and
raises `MsgDecodeError` (a `binary.DecodeError`, so a ValueError) on anything else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mcnode import binary
from mcnode.scp.quorum_set import MAX_DEPTH, MAX_NODE_ID_LEN, MAX_NODES, QuorumSet

if TYPE_CHECKING:
    from mcnode.scp.msg import Ballot

VERSION = 1
MAX_MSG_BYTES = 4 * 1024 * 1024
MAX_VALUES = 10_000  # per value set
MAX_VALUE_LEN = 64 * 1024


class MsgDecodeError(binary.DecodeError):
    """Bytes that are not a canonical SCP message."""


class MsgWriter(binary.Writer):
    """`binary.Writer` plus the SCP structures."""

    __slots__ = ()

    def str(self, s: str) -> None:
        b = s.encode()
        if not b:
            raise ValueError("empty node id")
        self.var(b, MAX_NODE_ID_LEN, width=2, what="node id")

    def qset(self, q: QuorumSet) -> None:
        self._parts.append(q.to_bytes())  # encoded once per QuorumSet, by `encode_qset`

    def values(self, vs: Sequence[bytes]) -> None:
        self.var_list(vs, MAX_VALUES, MAX_VALUE_LEN, what="values")

    def ballot(self, b: Ballot) -> None:
        self.u32(b.n)
        self.values(b.values)

    def opt_ballot(self, b: Ballot | None) -> None:
        if b is None:
            self.u8(0)
        else:
            self.u8(1)
            self.ballot(b)


def encode_qset(q: QuorumSet) -> bytes:
    """`qset` of the layout; `QuorumSet.to_bytes()` keeps the result."""
    w = MsgWriter()
    w.u32(q.threshold)
    w.count(len(q.members), MAX_NODES, width=2, what="quorum set members")
    for m in q.members:
        if isinstance(m, QuorumSet):
            w.u8(1)
            w.qset(m)
        else:
            w.u8(0)
            w.str(m)
    return w.getvalue()


_DECODED_QSETS: dict[bytes, QuorumSet] = {}  # encoding -> decoded set, oldest first
_DECODED_QSETS_MAX = 256
#: The sets decoded last, most recent first: (encoding, set, nodes it names).
_RECENT_QSETS: list[tuple[bytes, QuorumSet, int]] = []
_RECENT_QSETS_MAX = 8


class MsgReader(binary.Reader):
    """`binary.Reader` plus the SCP structures; every error is a `MsgDecodeError`."""

    __slots__ = ("_nodes",)

    error = MsgDecodeError
    max_size = MAX_MSG_BYTES

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self._nodes = 0

    def str(self) -> str:
        n = self.u16()
        if not 1 <= n <= MAX_NODE_ID_LEN:
            raise MsgDecodeError(f"node id length {n} outside 1..{MAX_NODE_ID_LEN}")
        try:
            return self.fixed(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MsgDecodeError(f"node id is not UTF-8: {e.reason}") from None

    def qset(self, depth: int = 0) -> QuorumSet:
        if depth == 0:
            # Each peer sends the same quorum set in every message. When the bytes here
            # begin with a recently decoded set's encoding, the decoder would read exactly
            # those bytes again (it reads in order and decides nothing from what follows),
            # so that set is the answer: one comparison instead of a parse. A peer that
            # varies its set churns this short list, costing at most its length in
            # comparisons per message (then the parse, as before).
            start = self._pos
            for key, seen, nodes in _RECENT_QSETS:
                if self._nodes + nodes <= MAX_NODES and self._buf.startswith(key, start):
                    self._pos = start + len(key)
                    self._nodes += nodes
                    return seen
            nodes_before = self._nodes
            qs = self._qset(0)
            key = self._buf[start : self._pos]
            # Decoded sets are kept by their bytes, so a repeat beyond the short list is
            # one dict lookup and stays validated.
            seen = _DECODED_QSETS.get(key)
            if seen is None:
                if len(_DECODED_QSETS) >= _DECODED_QSETS_MAX:
                    _DECODED_QSETS.pop(next(iter(_DECODED_QSETS)))
                _DECODED_QSETS[key] = seen = qs
            _RECENT_QSETS.insert(0, (key, seen, self._nodes - nodes_before))
            del _RECENT_QSETS[_RECENT_QSETS_MAX:]
            return seen
        return self._qset(depth)

    def _qset(self, depth: int) -> QuorumSet:
        if depth > MAX_DEPTH:
            raise MsgDecodeError(f"quorum set nested deeper than {MAX_DEPTH}")
        threshold = self.u32()
        count = self.count(MAX_NODES, width=2, what="quorum set members")
        members: list[str | QuorumSet] = []
        for _ in range(count):
            tag = self.u8()
            if tag == 0:
                self._nodes += 1
                if self._nodes > MAX_NODES:
                    raise MsgDecodeError(f"quorum set names more than {MAX_NODES} nodes")
                members.append(self.str())
            elif tag == 1:
                members.append(self._qset(depth + 1))
            else:
                raise MsgDecodeError(f"bad quorum set member tag {tag}")
        return QuorumSet(threshold, members)

    def values(self, ascending: bool = True) -> tuple[bytes, ...]:
        """A value list; sets must be strictly ascending, ballot lists only duplicate-free."""
        out = self.var_list(MAX_VALUES, MAX_VALUE_LEN, what="values")
        # Both checks in C: strictly ascending is "equal to its sorted set".
        if ascending:
            if out != sorted(set(out)):
                raise MsgDecodeError("values are not strictly ascending")
        elif len(set(out)) != len(out):
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
