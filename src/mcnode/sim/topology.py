"""Network shapes for simulation: who trusts whom.

Every builder returns `{node_id: QuorumSet}` in a deterministic order. Names follow
MobileCoin's mock networks: mesh(n, k) (each node needs k of the other n-1), cyclic(n)
(each node trusts only the next), metamesh (orgs x members, nested thresholds), tiered
(top-tier organizations plus validators that trust the top tier but nobody trusts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mcnode.scp.quorum_set import QuorumSet, QuorumSetError

Topology = dict[str, QuorumSet]


class TopologyError(ValueError):
    """A topology spec or file that cannot be built."""


def _name(i: int) -> str:
    return f"n{i}"


def mesh(n: int, k: int) -> Topology:
    """n nodes; each trusts the n-1 others with threshold k (k of n-1 plus itself)."""
    if n < 1:
        raise TopologyError("mesh needs at least one node")
    if n == 1:
        return {_name(0): QuorumSet(1, [_name(0)])}
    if not 1 <= k <= n - 1:
        raise TopologyError(f"mesh:{n}:{k}: k must be between 1 and {n - 1}")
    ids = [_name(i) for i in range(n)]
    return {i: QuorumSet(k, [j for j in ids if j != i]) for i in ids}


def cyclic(n: int) -> Topology:
    """Node i trusts only node i+1 (mod n): the only quorum is everybody."""
    if n < 1:
        raise TopologyError("cyclic needs at least one node")
    if n == 1:
        return {_name(0): QuorumSet(1, [_name(0)])}
    return {_name(i): QuorumSet(1, [_name((i + 1) % n)]) for i in range(n)}


def metamesh(orgs: int, org_k: int, members: int, member_k: int) -> Topology:
    """`orgs` organizations of `members` nodes. Every node needs org_k of the organizations,
    an organization counting when member_k of its members agree."""
    if not 1 <= org_k <= orgs or not 1 <= member_k <= members:
        raise TopologyError("metamesh thresholds must be within 1..count")
    groups = [[f"o{o}n{m}" for m in range(members)] for o in range(orgs)]
    q = QuorumSet(org_k, [QuorumSet(member_k, g) for g in groups])
    return {n: q for g in groups for n in g}


def tiered(orgs: int, members: int, watchers: int) -> Topology:
    """A top tier of `orgs` organizations x `members` (BFT thresholds at both levels) plus
    `watchers` validators that use the same quorum set but are in no one's."""
    if orgs < 1 or members < 1 or watchers < 0:
        raise TopologyError("tiered needs orgs >= 1, members >= 1, watchers >= 0")
    groups = [[f"t{o}n{m}" for m in range(members)] for o in range(orgs)]
    q = QuorumSet(
        orgs - (orgs - 1) // 3,
        [QuorumSet(members - (members - 1) // 3, g) for g in groups],
    )
    out = {n: q for g in groups for n in g}
    out.update({f"w{i}": q for i in range(watchers)})
    return out


def from_json(data: Any) -> Topology:
    """`{"nodes": [{"id": "a", "quorum_set": {"threshold": 2, "members": [...]}}]}`,
    or a plain `{node_id: quorum_set_dict}` mapping."""
    try:
        if isinstance(data, Mapping) and "nodes" in data:
            items = [(d["id"], d["quorum_set"]) for d in data["nodes"]]
        elif isinstance(data, Mapping):
            items = list(data.items())
        else:
            raise TopologyError("expected an object with 'nodes' or a node -> quorum set map")
        out = {str(k): QuorumSet.from_dict(v, f"{k}.quorum_set") for k, v in items}
    except (KeyError, TypeError) as e:
        raise TopologyError(f"bad topology JSON: missing or wrong field {e}") from None
    except QuorumSetError as e:
        raise TopologyError(f"bad quorum set: {e}") from None
    if not out:
        raise TopologyError("topology has no nodes")
    return out


def parse_spec(spec: str, read_file: Any = None) -> Topology:
    """`mesh:N:K`, `cyclic:N`, `metamesh:ORGS:ORG_K:MEMBERS:MEMBER_K`,
    `tiered:ORGS:MEMBERS:WATCHERS`, or `file:PATH` (JSON, read with `read_file`)."""
    kind, _, rest = spec.partition(":")
    if kind == "file":
        if read_file is None:
            raise TopologyError("file topologies need a reader")
        try:
            return from_json(json.loads(read_file(rest)))
        except json.JSONDecodeError as e:
            raise TopologyError(f"{rest}: not JSON: {e}") from None
    try:
        args = [int(x) for x in rest.split(":")] if rest else []
    except ValueError:
        raise TopologyError(f"bad topology spec {spec!r}: arguments must be integers") from None
    builders: dict[str, tuple[int, Any]] = {
        "mesh": (2, mesh),
        "cyclic": (1, cyclic),
        "metamesh": (4, metamesh),
        "tiered": (3, tiered),
    }
    if kind not in builders:
        raise TopologyError(f"unknown topology {kind!r} (mesh, cyclic, metamesh, tiered, file)")
    arity, fn = builders[kind]
    if len(args) != arity:
        raise TopologyError(f"{kind} takes {arity} numbers, got {spec!r}")
    result: Topology = fn(*args)
    return result
