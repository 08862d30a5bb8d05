"""The FBAS as values: quorum sets, nodes, what the parser set aside, and the one definition
of "a set satisfies a quorum set" every analysis agrees with.

Semantics (standard FBAS, as in the SCP paper and draft-mazieres-dinrg-scp):
- A node's slices are {v} plus any set satisfying its quorum set: the node is implicitly in
  each of its slices. A quorum is a non-empty set Q in which every member's quorum set is
  satisfied by Q.
- A quorum set with threshold t is satisfied by S when at least t of its members are: a node
  member when it is in S, an inner set recursively. t = 0 or t > the member count is
  unsatisfiable (crawlers write t = 2^53 - 1 with no members for "unknown"; a quorum set
  trusting nobody would make its owner a one-node quorum, so we refuse to treat t = 0 as true).
- A node without a quorum set (null or missing, or only referenced by others) is never in a
  quorum.

This module knows nothing of files, formats or solvers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

NodeId = str


class FbasError(Exception):
    """Base of the errors this package raises."""


class FbasInputError(FbasError):
    """The input is malformed (not just messy): one line naming the problem."""


class FbasInternalError(FbasError):
    """An analysis produced an answer that failed its own check (a bug, never input)."""


@dataclass(frozen=True)
class QSet:
    """A quorum set: `threshold` of (`validators` + `inner` sets). Duplicates are removed by
    the parser; an out-of-range threshold is kept as given (and is unsatisfiable)."""

    threshold: int
    validators: tuple[NodeId, ...] = ()
    inner: tuple[QSet, ...] = ()

    @property
    def size(self) -> int:
        return len(self.validators) + len(self.inner)

    @property
    def satisfiable_shape(self) -> bool:
        """Whether the threshold is in range (it says nothing about inner sets)."""
        return 1 <= self.threshold <= self.size

    def nodes(self) -> frozenset[NodeId]:
        """Every node named, at any depth."""
        out = set(self.validators)
        for q in self.inner:
            out |= q.nodes()
        return frozenset(out)

    def satisfied_by(self, members: frozenset[NodeId] | set[NodeId]) -> bool:
        if not self.satisfiable_shape:
            return False
        count = sum(1 for v in self.validators if v in members)
        if count >= self.threshold:
            return True
        for q in self.inner:
            if q.satisfied_by(members):
                count += 1
                if count >= self.threshold:
                    return True
        return False


@dataclass(frozen=True)
class Node:
    id: NodeId
    qset: QSet | None
    name: str | None = None
    org: str | None = None  # organization label, when a mapping exists


SKIP_KINDS = (
    "no-quorum-set",
    "unknown-validator",
    "unsatisfiable",
    "duplicate-node",
    "duplicate-validator",
    "unknown-org-member",
)


@dataclass(frozen=True)
class Skipped:
    """Something in the input that the analyses ignore or read by a rule, and why."""

    node: NodeId
    kind: str  # one of SKIP_KINDS
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"node": self.node, "kind": self.kind, "reason": self.reason}


@dataclass(frozen=True)
class Fbas:
    """A network: every node known or referenced (referenced-only nodes have no quorum set),
    in a deterministic order, and what the parser reported."""

    nodes: tuple[Node, ...]
    skipped: tuple[Skipped, ...] = field(default=())

    @cached_property
    def by_id(self) -> Mapping[NodeId, Node]:
        return {n.id: n for n in self.nodes}

    @property
    def ids(self) -> tuple[NodeId, ...]:
        return tuple(n.id for n in self.nodes)

    def qset(self, node: NodeId) -> QSet | None:
        n = self.by_id.get(node)
        return n.qset if n is not None else None

    def label(self, node: NodeId) -> str:
        n = self.by_id.get(node)
        return n.name if n is not None and n.name else node

    def org_of(self, node: NodeId) -> str | None:
        n = self.by_id.get(node)
        return n.org if n is not None else None

    @property
    def has_orgs(self) -> bool:
        return any(n.org for n in self.nodes)

    def is_quorum(self, members: Iterable[NodeId]) -> bool:
        """The definition, checked directly: non-empty, every member has a quorum set and
        that set is satisfied by the members."""
        s = frozenset(members)
        if not s:
            return False
        for v in s:
            q = self.qset(v)
            if q is None or not q.satisfied_by(s):
                return False
        return True

    def group_by_org(self, members: Iterable[NodeId]) -> list[tuple[str | None, list[NodeId]]]:
        """Members grouped by organization label (None last), each group in input order."""
        order = {n.id: i for i, n in enumerate(self.nodes)}
        groups: dict[str | None, list[NodeId]] = {}
        for v in sorted(members, key=lambda x: order.get(x, len(order))):
            groups.setdefault(self.org_of(v), []).append(v)
        return sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
