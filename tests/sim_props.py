"""Brute-force facts about small FBASs, for filtering random test networks.

Independent of scp/'s predicates on purpose: it enumerates subsets."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from mcnode.scp.quorum_set import QuorumSet


def _sat(q: QuorumSet, members: frozenset[str]) -> bool:
    count = 0
    for m in q.members:
        ok = _sat(m, members) if isinstance(m, QuorumSet) else m in members
        count += ok
    return count >= q.threshold


def _subsets(nodes: list[str]) -> Iterator[frozenset[str]]:
    for mask in range(1, 1 << len(nodes)):
        yield frozenset(n for i, n in enumerate(nodes) if mask >> i & 1)


def honest_quorums(
    qsets: Mapping[str, QuorumSet], byzantine: frozenset[str]
) -> list[frozenset[str]]:
    """Non-empty sets Q of honest nodes whose every member has a slice inside Q + byzantine
    (the FBAS with the Byzantine nodes deleted, in the SCP paper's sense)."""
    honest = sorted(set(qsets) - byzantine)
    return [q for q in _subsets(honest) if all(_sat(qsets[n], q | byzantine | {n}) for n in q)]


def intersects_despite(qsets: Mapping[str, QuorumSet], byzantine: frozenset[str]) -> bool:
    qs = honest_quorums(qsets, byzantine)
    return all(a & b for i, a in enumerate(qs) for b in qs[i + 1 :])


def intact(qsets: Mapping[str, QuorumSet], byzantine: frozenset[str]) -> bool:
    """The honest nodes form a quorum without the Byzantine ones, and no Byzantine set is
    v-blocking for an honest node: the conditions under which we promise liveness."""
    honest = frozenset(qsets) - byzantine
    if not all(_sat(qsets[n], honest) for n in honest):
        return False
    return all(not qsets[n].is_blocked_by(byzantine) for n in honest)
