"""Quorum sets: who a node trusts, as nested threshold sets.

A `QuorumSet(threshold, members)` is satisfied by a set of nodes when at least `threshold`
of its members are satisfied (a node member by being in the set, an inner set recursively).
The owning node is implicitly part of every one of its slices; listing it changes nothing.

This module knows nothing of messages or time; it is pure data and arithmetic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Union

NodeID = str
Member = Union[NodeID, "QuorumSet"]

MAX_DEPTH = 4  # levels of nesting below the top set
MAX_NODES = 1000
MAX_NODE_ID_LEN = 256


class QuorumSetError(ValueError):
    """A quorum set that cannot be used: the message says which rule it breaks."""


@dataclass(frozen=True, slots=True)
class QuorumSet:
    threshold: int
    members: tuple[Member, ...]
    # Derived once for the hot path (satisfaction tests run thousands of times per slot).
    _direct: frozenset[NodeID] = field(default=frozenset(), init=False, repr=False, compare=False)
    _inner: tuple[QuorumSet, ...] = field(default=(), init=False, repr=False, compare=False)
    _hash: int = field(default=0, init=False, repr=False, compare=False)
    # Every message a node sends carries its quorum set: encoded once, on first use.
    _encoding: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __init__(self, threshold: int, members: Sequence[Member] = ()) -> None:
        members = tuple(members)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "members", members)
        object.__setattr__(self, "_direct", frozenset(m for m in members if isinstance(m, str)))
        object.__setattr__(self, "_inner", tuple(m for m in members if isinstance(m, QuorumSet)))
        try:
            h = hash((threshold, members))
        except TypeError:  # unhashable junk members: validate() will refuse them
            h = id(self)
        object.__setattr__(self, "_hash", h)
        object.__setattr__(self, "_encoding", None)

    def __hash__(self) -> int:
        return self._hash

    # -- structure -------------------------------------------------------------------
    def nodes(self) -> frozenset[NodeID]:
        """Every node named, at any depth."""
        return frozenset(self._iter_nodes())

    def _iter_nodes(self) -> Iterator[NodeID]:
        for m in self.members:
            if isinstance(m, QuorumSet):
                yield from m._iter_nodes()
            else:
                yield m

    def depth(self) -> int:
        inner = [m.depth() for m in self.members if isinstance(m, QuorumSet)]
        return 1 + max(inner) if inner else 0

    def validate(self) -> None:
        """Raise `QuorumSetError` naming the first broken rule."""
        self._validate(depth=0, seen=set())

    def _validate(self, depth: int, seen: set[NodeID]) -> None:
        if depth > MAX_DEPTH:
            raise QuorumSetError(f"quorum set nested deeper than {MAX_DEPTH} levels")
        if not isinstance(self.threshold, int) or isinstance(self.threshold, bool):
            raise QuorumSetError(f"threshold must be an integer, got {self.threshold!r}")
        if self.threshold < 1:
            raise QuorumSetError(f"threshold must be at least 1, got {self.threshold}")
        if self.threshold > len(self.members):
            raise QuorumSetError(
                f"threshold {self.threshold} exceeds the {len(self.members)} members"
            )
        for m in self.members:
            if isinstance(m, QuorumSet):
                m._validate(depth + 1, seen)
            elif isinstance(m, str):
                try:
                    size = len(m.encode("utf-8"))
                except UnicodeEncodeError:
                    raise QuorumSetError(f"node id is not valid UTF-8 text: {m!r}") from None
                if not m or size > MAX_NODE_ID_LEN:
                    raise QuorumSetError(f"node id must be 1..{MAX_NODE_ID_LEN} bytes: {m!r}")
                if m in seen:
                    raise QuorumSetError(f"node {m!r} appears more than once")
                seen.add(m)
                if len(seen) > MAX_NODES:
                    raise QuorumSetError(f"quorum set names more than {MAX_NODES} nodes")
            else:
                raise QuorumSetError(f"member must be a node id or quorum set, got {m!r}")

    # -- satisfaction ------------------------------------------------------------------
    def is_satisfied_by(self, nodes: frozenset[NodeID] | set[NodeID]) -> bool:
        """True when `nodes` contains a slice of this set (the owner is not counted)."""
        need = self.threshold - len(self._direct.intersection(nodes))
        if need <= 0:
            return True
        inner = self._inner
        if need > len(inner):
            return False
        for i, q in enumerate(inner):
            if q.is_satisfied_by(nodes):
                need -= 1
                if need <= 0:
                    return True
            elif len(inner) - i - 1 < need:
                return False
        return False

    def is_blocked_by(self, nodes: frozenset[NodeID] | set[NodeID]) -> bool:
        """True when `nodes` is v-blocking: it meets every slice of this set."""
        if self.threshold <= 0:
            return False
        # Blocking needs more than (members - threshold) members blocked.
        need = len(self.members) - self.threshold + 1 - len(self._direct.intersection(nodes))
        if need <= 0:
            return True
        for q in self._inner:
            if q.is_blocked_by(nodes):
                need -= 1
                if need <= 0:
                    return True
        return False

    def blocking_size(self) -> int:
        """Smallest number of nodes that are v-blocking for this set."""
        costs = sorted(m.blocking_size() if isinstance(m, QuorumSet) else 1 for m in self.members)
        return sum(costs[: len(self.members) - self.threshold + 1])

    def weight(self, node: NodeID) -> Fraction:
        """Fraction of this set's slices that contain `node` (draft section 3.3, weight)."""
        n = len(self.members)
        if n == 0:
            return Fraction(0)
        for m in self.members:
            if isinstance(m, QuorumSet):
                w = m.weight(node)
                if w:
                    return Fraction(self.threshold, n) * w
            elif m == node:
                return Fraction(self.threshold, n)
        return Fraction(0)

    # -- normal form, encoding, hash ---------------------------------------------------------
    def normalized(self, remove: NodeID | None = None) -> QuorumSet:
        """Canonical equivalent form: optional node removed (threshold lowered to match),
        singleton inner sets collapsed, nodes sorted before inner sets sorted by encoding."""
        nodes: list[NodeID] = []
        inner: list[QuorumSet] = []
        threshold = self.threshold
        for m in self.members:
            if isinstance(m, QuorumSet):
                q = m.normalized(remove)
                if q.threshold == 1 and len(q.members) == 1:
                    only = q.members[0]
                    if isinstance(only, QuorumSet):
                        inner.append(only)
                    else:
                        nodes.append(only)
                else:
                    inner.append(q)
            elif m == remove:
                threshold -= 1
            else:
                nodes.append(m)
        inner.sort(key=lambda q: q.to_bytes())
        return QuorumSet(max(threshold, 0), [*sorted(nodes), *inner])

    def to_bytes(self) -> bytes:
        """The canonical encoding (`codec.py`); raises ValueError past the codec's limits."""
        encoding = self._encoding
        if encoding is None:
            from mcnode.scp.codec import encode_qset

            encoding = encode_qset(self)
            object.__setattr__(self, "_encoding", encoding)
        return encoding

    def digest(self) -> bytes:
        """Stable 32-byte hash of the normalized set (equivalent sets share it)."""
        return hashlib.sha256(b"mcnode-qset-v1" + self.normalized().to_bytes()).digest()

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "members": [m.to_dict() if isinstance(m, QuorumSet) else m for m in self.members],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], _depth: int = 0) -> QuorumSet:
        """Build from `{"threshold": t, "members": [...]}`; raise QuorumSetError if malformed."""
        if _depth > MAX_DEPTH:
            raise QuorumSetError(f"quorum set nested deeper than {MAX_DEPTH} levels")
        if not isinstance(d, Mapping):
            raise QuorumSetError(f"quorum set must be a mapping, got {type(d).__name__}")
        unknown = set(d) - {"threshold", "members"}
        if unknown:
            raise QuorumSetError(f"unknown quorum set keys: {sorted(unknown)}")
        t = d.get("threshold")
        members = d.get("members")
        if not isinstance(t, int) or isinstance(t, bool):
            raise QuorumSetError(f"threshold must be an integer, got {t!r}")
        if not isinstance(members, list):
            raise QuorumSetError("members must be a list")
        out: list[Member] = []
        for m in members:
            if isinstance(m, str):
                out.append(m)
            elif isinstance(m, Mapping):
                out.append(cls.from_dict(m, _depth + 1))
            else:
                raise QuorumSetError(f"member must be a node id or quorum set, got {m!r}")
        q = cls(t, out)
        if _depth == 0:
            q.validate()
        return q

    def __repr__(self) -> str:
        inner = ", ".join(repr(m) for m in self.members)
        return f"QuorumSet({self.threshold}, [{inner}])"
