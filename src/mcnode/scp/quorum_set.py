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
    """A quorum set that cannot be used: the message says which rule it breaks, after the
    path of the field that breaks it (`quorum_set.members[2].threshold: ...`)."""


class _Problem(Exception):
    """`QuorumSet._validate`'s finding; `validate` turns it into a `QuorumSetError`."""

    def __init__(self, problem: str, member: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path: list[int] = [] if member is None else [member]


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
    # Set by the first `validate()` that passes: the set is immutable, so it stays valid
    # (every peer message carries one, usually the same decoded object: see codec).
    _valid: bool = field(default=False, init=False, repr=False, compare=False)

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
        object.__setattr__(self, "_valid", False)

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

    def validate(self, where: str = "") -> None:
        """Raise `QuorumSetError` naming the first broken rule, after the path of the set
        or member that breaks it (`where` names this set: "quorum_set.members[1]: node
        'b' appears more than once"; a problem of this set itself carries `where` alone)."""
        if self._valid:
            return
        try:
            self._validate(0, set())
            object.__setattr__(self, "_valid", True)
        except _Problem as p:
            path = where + "".join(f".members[{i}]" for i in p.path)
            path = path.removeprefix(".")
            raise QuorumSetError(f"{path}: {p.problem}" if path else p.problem) from None

    def _validate(self, depth: int, seen: set[NodeID]) -> None:
        # Raises `_Problem`, whose path is filled in on the way out: no path is built for
        # a valid set (messages' quorum sets are validated on the hot path).
        if depth > MAX_DEPTH:
            raise _Problem(f"quorum set nested deeper than {MAX_DEPTH} levels")
        if not isinstance(self.threshold, int) or isinstance(self.threshold, bool):
            raise _Problem(f"threshold must be an integer, got {self.threshold!r}")
        if self.threshold < 1:
            raise _Problem(f"threshold must be at least 1, got {self.threshold}")
        if self.threshold > len(self.members):
            raise _Problem(f"threshold {self.threshold} exceeds the {len(self.members)} members")
        for i, m in enumerate(self.members):
            if isinstance(m, QuorumSet):
                try:
                    m._validate(depth + 1, seen)
                except _Problem as p:
                    p.path.insert(0, i)
                    raise
            elif isinstance(m, str):
                try:
                    size = len(m.encode("utf-8"))
                except UnicodeEncodeError:
                    raise _Problem(f"node id is not valid UTF-8 text: {m!r}", i) from None
                if not m or size > MAX_NODE_ID_LEN:
                    raise _Problem(f"node id must be 1..{MAX_NODE_ID_LEN} bytes: {m!r}", i)
                if m in seen:
                    raise _Problem(f"node {m!r} appears more than once", i)
                seen.add(m)
                if len(seen) > MAX_NODES:
                    raise _Problem(f"quorum set names more than {MAX_NODES} nodes", i)
            else:
                raise _Problem(f"member must be a node id or quorum set, got {m!r}", i)

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
    def from_dict(cls, d: Mapping[str, Any], where: str = "quorum_set") -> QuorumSet:
        """Build from `{"threshold": t, "members": [...]}` (`parse_quorum_set`) and
        validate; raise `QuorumSetError` naming the path of the bad field (`where` names
        the set itself)."""
        q = parse_quorum_set(d, where)
        q.validate(where)
        return q

    def __repr__(self) -> str:
        inner = ", ".join(repr(m) for m in self.members)
        return f"QuorumSet({self.threshold}, [{inner}])"


def parse_quorum_set(
    raw: object, where: str = "quorum_set", *, max_depth: int = MAX_DEPTH
) -> QuorumSet:
    """The one reader of a quorum set written as data (node.toml, network JSON, fbas node
    configs, `to_dict()`): `{threshold, members}`, each member a node id, a nested
    `{threshold, members}`, or MobileCoin's `{type = "Node", args = ID}` /
    `{type = "InnerSet", args = {threshold, members}}`.

    Strict about shape: exactly those keys, a non-negative integer threshold, a list of
    members, non-empty string ids, nesting at most `max_depth` levels below the top (so
    hostile nesting is an error, not a RecursionError). Each error is a `QuorumSetError`
    "<path of the bad field>: <problem>", the path starting with `where`. It does not
    judge the set (threshold in range, duplicates, sizes): `validate()` does that, and
    fbas reads the shape alone so that it can report an unusable set instead of refusing
    the whole network."""
    return _parse(raw, where, 0, max_depth)


def _parse(raw: object, where: str, depth: int, max_depth: int) -> QuorumSet:
    if depth > max_depth:
        raise QuorumSetError(f"{where}: quorum set nested deeper than {max_depth} levels")
    if not isinstance(raw, Mapping):
        raise QuorumSetError(
            f"{where}: expected a table {{threshold, members}}, got {type(raw).__name__}"
        )
    for key in raw:
        if key not in ("threshold", "members"):
            raise QuorumSetError(f"{where}.{key}: unknown quorum set key")
    if "threshold" not in raw:
        raise QuorumSetError(f"{where}.threshold: missing")
    t = raw["threshold"]
    if not isinstance(t, int) or isinstance(t, bool) or t < 0:
        raise QuorumSetError(f"{where}.threshold: expected a non-negative integer, got {t!r}")
    if "members" not in raw:
        raise QuorumSetError(f"{where}.members: missing")
    members = raw["members"]
    if not isinstance(members, list | tuple):
        raise QuorumSetError(f"{where}.members: expected a list, got {type(members).__name__}")
    out: list[Member] = []
    for i, m in enumerate(members):
        at = f"{where}.members[{i}]"
        if isinstance(m, str):
            if not m:
                raise QuorumSetError(f"{at}: empty node id")
            out.append(m)
        elif isinstance(m, Mapping) and "type" in m:
            out.append(_parse_tagged(m, at, depth, max_depth))
        elif isinstance(m, Mapping):
            out.append(_parse(m, at, depth + 1, max_depth))
        else:
            raise QuorumSetError(f"{at}: expected a node id or a nested set, got {m!r}")
    return QuorumSet(t, out)


def _parse_tagged(m: Mapping[str, object], at: str, depth: int, max_depth: int) -> Member:
    """MobileCoin's form of a member (its network configs): `{type, args}`."""
    for key in m:
        if key not in ("type", "args"):
            raise QuorumSetError(f"{at}.{key}: unknown member key")
    kind, args = m["type"], m.get("args")
    if kind == "Node":
        if not isinstance(args, str) or not args:
            raise QuorumSetError(f"{at}.args: expected a node id, got {args!r}")
        return args
    if kind == "InnerSet":
        return _parse(args, f"{at}.args", depth + 1, max_depth)
    raise QuorumSetError(f"{at}.type: unknown quorum_set member type {kind!r} (Node or InnerSet)")
