"""Quorum predicates over the latest statements of peers (draft section 2, paper section 3).

`is_quorum` is the complete search: starting from every node whose latest statement passes
the filter, repeatedly drop nodes whose own quorum set is not satisfied by those that remain
(transitive closure with fixpoint elimination). What is left is the greatest quorum inside
the filtered set, so if any quorum containing the local node exists there, it is found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mcnode.scp.quorum_set import NodeID, QuorumSet


def is_quorum(
    local_id: NodeID,
    local_qset: QuorumSet,
    qsets: Mapping[NodeID, QuorumSet],
    nodes: Iterable[NodeID],
) -> bool:
    """Does `nodes` contain a quorum that includes the local node?

    `qsets` gives each peer's quorum set (from its latest message); a peer without one
    cannot be part of a quorum. The local node must itself be in `nodes`."""
    members = set(nodes)
    if local_id not in members:
        return False
    return greatest_quorum(local_id, local_qset, qsets, members) is not None


def greatest_quorum(
    local_id: NodeID,
    local_qset: QuorumSet,
    qsets: Mapping[NodeID, QuorumSet],
    members: set[NodeID],
) -> frozenset[NodeID] | None:
    """The greatest quorum inside `members` that contains the local node, or None."""
    if local_id not in members:
        return None
    current = set(members)
    while True:
        drop = [
            n
            for n in current
            if n != local_id and (n not in qsets or not qsets[n].is_satisfied_by(current))
        ]
        if not drop:
            break
        current.difference_update(drop)
    if local_qset.is_satisfied_by(current):
        return frozenset(current)
    return None


def is_v_blocking(local_qset: QuorumSet, nodes: Iterable[NodeID]) -> bool:
    """Does `nodes` meet every slice of the local node (draft 2.2, v-blocking)?"""
    s = nodes if isinstance(nodes, set | frozenset) else set(nodes)
    return local_qset.is_blocked_by(s)
