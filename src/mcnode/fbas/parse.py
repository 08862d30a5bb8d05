"""Build an `Fbas` from already-parsed documents: the explorer JSON list, stellar-core's
compact form, mcnode node configs (TOML tables), and an optional organizations list.

Rules for messy crawls (each case is reported in `Fbas.skipped`, never fatal):
- quorum set null or missing: the node is kept, has no quorum set, is never in a quorum;
- a validator referenced but not listed: added as a node without a quorum set;
- `innerQuorumSets` (or `validators`) missing or null: empty;
- threshold 0 or above the member count: the (inner) set is unsatisfiable;
- a validator listed twice in one quorum set: counted once;
- a node listed twice: the first entry is kept;
- an organization naming a node that is not in the network: ignored.
Malformed input (wrong JSON shape, a threshold that is not a non-negative integer, an empty
or non-string id, a stellar-core id that is not a valid strkey, nesting deeper than
`MAX_DEPTH`) raises `FbasInputError` with one line naming the problem.

mcnode's own `{threshold, members}` form (node configs, network files, what a node knows of
its peers) is read by scp's `parse_quorum_set`, the one parser of that shape, whose errors
name the path of the bad field; it is then judged by the rules above like any other input.
The explorer and stellar-core forms are other shapes and are read here.

This module reads no files: callers pass `json.load` / `tomllib.load` results.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mcnode.fbas.model import Fbas, FbasInputError, Node, NodeId, QSet, Skipped

if TYPE_CHECKING:
    from mcnode.scp.quorum_set import QuorumSet

MAX_DEPTH = 16


@dataclass
class _Builder:
    """Collects nodes in input order and the skipped-data reports."""

    nodes: dict[NodeId, Node] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    def report(self, node: NodeId, kind: str, reason: str) -> None:
        self.skipped.append(Skipped(node, kind, reason))

    def add(self, node: Node) -> None:
        if node.id in self.nodes:
            self.report(node.id, "duplicate-node", "listed more than once: the first entry is kept")
            return
        if node.qset is None:
            self.report(
                node.id, "no-quorum-set", "no quorum set (null or missing): never in a quorum"
            )
        self.nodes[node.id] = node

    def finish(self) -> Fbas:
        referenced: dict[NodeId, int] = {}
        for n in self.nodes.values():
            if n.qset is not None:
                for v in n.qset.nodes():
                    referenced[v] = referenced.get(v, 0) + 1
        nodes = list(self.nodes.values())
        for v in sorted(set(referenced) - set(self.nodes)):
            self.report(
                v,
                "unknown-validator",
                f"unknown validator (referenced by {referenced[v]} node(s), not listed): "
                "no quorum set, never in a quorum",
            )
            nodes.append(Node(v, None))
        return Fbas(tuple(nodes), tuple(self.skipped))


def _int_threshold(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FbasInputError(f"{where}: threshold must be a non-negative integer, got {value!r}")
    return value


def _check_id(value: object, where: str) -> NodeId:
    if not isinstance(value, str) or not value:
        raise FbasInputError(f"{where}: node id must be a non-empty string, got {value!r}")
    return value


def _make_qset(
    b: _Builder,
    owner: NodeId,
    threshold: int,
    validators: list[NodeId],
    inner: list[QSet],
    depth: int,
) -> QSet:
    seen: set[NodeId] = set()
    unique: list[NodeId] = []
    for v in validators:
        if v in seen:
            b.report(
                owner,
                "duplicate-validator",
                f"validator {v} listed twice in one quorum set: counted once",
            )
            continue
        seen.add(v)
        unique.append(v)
    q = QSet(threshold, tuple(unique), tuple(inner))
    if not q.satisfiable_shape:
        what = "quorum set" if depth == 0 else "inner set"
        effect = "never in a quorum" if depth == 0 else "never satisfied"
        b.report(
            owner,
            "unsatisfiable",
            f"{what} threshold {threshold} of {q.size}: unsatisfiable, {effect}",
        )
    return q


# -- explorer JSON ---------------------------------------------------------------------------


def _explorer_qset(b: _Builder, owner: NodeId, raw: object, depth: int) -> QSet:
    where = f"node {owner}"
    if depth > MAX_DEPTH:
        raise FbasInputError(f"{where}: quorum sets nested deeper than {MAX_DEPTH}")
    if not isinstance(raw, Mapping):
        raise FbasInputError(f"{where}: quorum set must be an object, got {type(raw).__name__}")
    if "threshold" not in raw:
        raise FbasInputError(f"{where}: quorum set has no threshold")
    t = _int_threshold(raw["threshold"], where)
    vals = raw.get("validators") or []
    inner = raw.get("innerQuorumSets") or []
    if not isinstance(vals, list):
        raise FbasInputError(f"{where}: validators must be a list")
    if not isinstance(inner, list):
        raise FbasInputError(f"{where}: innerQuorumSets must be a list")
    ids = [_check_id(v, where) for v in vals]
    subs = [_explorer_qset(b, owner, q, depth + 1) for q in inner]
    return _make_qset(b, owner, t, ids, subs, depth)


def _organizations(raw: object) -> tuple[dict[NodeId, str], dict[str, str]]:
    """node -> org name, and org id -> org name, from a stellarbeat-style list."""
    if not isinstance(raw, list):
        raise FbasInputError("organizations: expected a JSON list of organizations")
    by_node: dict[NodeId, str] = {}
    by_id: dict[str, str] = {}
    for i, org in enumerate(raw):
        if not isinstance(org, Mapping):
            raise FbasInputError(f"organizations[{i}]: expected an object")
        name = org.get("name") or org.get("id")
        if not isinstance(name, str) or not name:
            raise FbasInputError(f"organizations[{i}]: needs a string name or id")
        if isinstance(org.get("id"), str):
            by_id[org["id"]] = name
        vals = org.get("validators") or []
        if not isinstance(vals, list):
            raise FbasInputError(f"organizations[{i}]: validators must be a list")
        for v in vals:
            by_node.setdefault(_check_id(v, f"organizations[{i}]"), name)
    return by_node, by_id


def from_explorer(data: object, organizations: object | None = None) -> Fbas:
    """The network-explorer list of `{"publicKey", "name", "quorumSet"}` objects.

    Organization of a node: the organizations list naming it; else its `organizationId`,
    labelled by the list's name for that id, the node's `homeDomain`, or the id itself."""
    if not isinstance(data, list):
        raise FbasInputError("explorer JSON: expected a list of node objects")
    org_by_node: dict[NodeId, str] = {}
    org_by_id: dict[str, str] = {}
    if organizations is not None:
        org_by_node, org_by_id = _organizations(organizations)
    b = _Builder()
    for i, raw in enumerate(data):
        if not isinstance(raw, Mapping):
            raise FbasInputError(f"node #{i}: expected an object, got {type(raw).__name__}")
        if "publicKey" not in raw:
            raise FbasInputError(f"node #{i}: no publicKey")
        nid = _check_id(raw["publicKey"], f"node #{i}")
        qraw = raw.get("quorumSet")
        qset = None if qraw is None else _explorer_qset(b, nid, qraw, 0)
        name = raw.get("name") or raw.get("hostname")
        org = org_by_node.get(nid)
        oid = raw.get("organizationId")
        if org is None and isinstance(oid, str) and oid:
            domain = raw.get("homeDomain")
            org = org_by_id.get(oid) or (domain if isinstance(domain, str) and domain else oid)
        b.add(Node(nid, qset, name if isinstance(name, str) else None, org))
    listed = {n for n in b.nodes}
    for v in sorted(set(org_by_node) - listed):
        b.report(
            v,
            "unknown-org-member",
            f"organization {org_by_node[v]} names a node not in the network: ignored",
        )
    return b.finish()


# -- stellar-core compact form ---------------------------------------------------------------

_STRKEY_ACCOUNT_VERSION = 6 << 3  # 'G...' ed25519 public key


def _crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def is_stellar_node_id(value: str) -> bool:
    """A valid strkey for an ed25519 public key (what stellar-core accepts as a node id)."""
    if len(value) != 56:
        return False
    try:
        raw = base64.b32decode(value)
    except (binascii.Error, ValueError):
        return False
    body, check = raw[:-2], raw[-2:]
    return body[0] == _STRKEY_ACCOUNT_VERSION and int.from_bytes(check, "little") == _crc16_xmodem(
        body
    )


def _core_id(value: object, where: str) -> NodeId:
    nid = _check_id(value, where)
    if not is_stellar_node_id(nid):
        raise FbasInputError(f"{where}: {nid!r} is not a valid Stellar node id (strkey)")
    return nid


def _core_qset(b: _Builder, owner: NodeId, raw: object, depth: int) -> QSet:
    where = f"node {owner}"
    if depth > MAX_DEPTH:
        raise FbasInputError(f"{where}: quorum sets nested deeper than {MAX_DEPTH}")
    if not isinstance(raw, Mapping) or "t" not in raw:
        raise FbasInputError(f'{where}: qset must be an object with "t" and "v"')
    t = _int_threshold(raw["t"], where)
    members = raw.get("v") or []
    if not isinstance(members, list):
        raise FbasInputError(f'{where}: "v" must be a list')
    ids: list[NodeId] = []
    subs: list[QSet] = []
    for m in members:
        if isinstance(m, Mapping):
            subs.append(_core_qset(b, owner, m, depth + 1))
        else:
            ids.append(_core_id(m, where))
    return _make_qset(b, owner, t, ids, subs, depth)


def from_stellar_core(data: object) -> Fbas:
    """stellar-core's `{"nodes": [{"node", "qset": {"t", "v"}}]}` (ids must be strkeys)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), list):
        raise FbasInputError('stellar-core JSON: expected {"nodes": [...]}')
    b = _Builder()
    for i, raw in enumerate(data["nodes"]):
        if not isinstance(raw, Mapping) or "node" not in raw:
            raise FbasInputError(f'nodes[{i}]: expected an object with "node"')
        nid = _core_id(raw["node"], f"nodes[{i}]")
        qraw = raw.get("qset")
        name = raw.get("name")
        qset = None if qraw is None else _core_qset(b, nid, qraw, 0)
        b.add(Node(nid, qset, name if isinstance(name, str) else None))
    return b.finish()


# -- mcnode node configs ---------------------------------------------------------------------


def _config_qset(b: _Builder, owner: NodeId, raw: object, where: str) -> QSet:
    """mcnode's own `{threshold, members}` form, read by the one parser of that shape
    (`scp.parse_quorum_set`, strict about shape), then judged here like every other input:
    an out-of-range threshold is reported as unsatisfiable, not refused."""
    # Imported here: the explorer and stellar-core forms, `mcnode fbas`'s usual input, do
    # not need the SCP package loaded (the CLI's start-up time is benchmarked).
    from mcnode.scp.quorum_set import QuorumSetError, parse_quorum_set

    try:
        q = parse_quorum_set(raw, f"{where}: quorum_set", max_depth=MAX_DEPTH)
    except QuorumSetError as e:
        raise FbasInputError(str(e)) from None
    return _analysis_qset(b, owner, q, 0)


def _analysis_qset(b: _Builder, owner: NodeId, q: QuorumSet, depth: int) -> QSet:
    """The one place a `QSet` (the analyses' form: validators and inner sets apart,
    duplicates counted once, the threshold kept as given) is built from an scp
    `QuorumSet`; what it sets aside is reported like any other input's."""
    validators = [m for m in q.members if isinstance(m, str)]
    inner = [_analysis_qset(b, owner, m, depth + 1) for m in q.members if not isinstance(m, str)]
    return _make_qset(b, owner, q.threshold, validators, inner, depth)


def from_node_configs(configs: Sequence[tuple[str, Mapping[str, object]]]) -> Fbas:
    """mcnode node configs, as (source name, parsed TOML) pairs, in the caller's order.

    Each config has `node_id` (or, as in `mcnode run`'s node.toml, just `name`), optional
    `name` and `organization`, and a `[quorum_set]`
    table `{threshold, members}`; a member is a node id, an inner `{threshold, members}`
    table, or MobileCoin's `{type = "Node", args = id}` / `{type = "InnerSet", args = {...}}`.
    """
    b = _Builder()
    for source, cfg in configs:
        if not isinstance(cfg, Mapping):
            raise FbasInputError(f"{source}: expected a table")
        nid = _check_id(cfg.get("node_id", cfg.get("name")), f"{source}: node_id")
        qraw = cfg.get("quorum_set")
        qset = None if qraw is None else _config_qset(b, nid, qraw, source)
        name = cfg.get("name")
        org = cfg.get("organization")
        b.add(
            Node(
                nid,
                qset,
                name if isinstance(name, str) else None,
                org if isinstance(org, str) and org else None,
            )
        )
    if not b.nodes:
        raise FbasInputError("node configs: no node config found")
    return b.finish()


def from_quorum_sets(qsets: Mapping[NodeId, Mapping[str, object] | None]) -> Fbas:
    """Node id -> `{"threshold", "members"}` (the scp `QuorumSet.to_dict()` form) or None:
    what the node knows of its network, for `check_intersection` at start-up."""
    items: list[tuple[str, Mapping[str, object]]] = []
    for nid, q in qsets.items():
        cfg: dict[str, object] = {"node_id": nid}
        if q is not None:
            cfg["quorum_set"] = q
        items.append((f"node {nid}", cfg))
    return from_node_configs(items)


def from_json(data: object, organizations: object | None = None) -> Fbas:
    """Either JSON form, told apart by shape: a list is the explorer form, an object with
    `nodes` is stellar-core's."""
    if isinstance(data, list):
        return from_explorer(data, organizations)
    if isinstance(data, Mapping) and "nodes" in data:
        if organizations is not None:
            raise FbasInputError("organizations are only read with the explorer JSON form")
        nodes = data["nodes"]
        if (
            isinstance(nodes, list)
            and nodes
            and all(isinstance(n, Mapping) and "id" in n and "quorum_set" in n for n in nodes)
        ):
            # mcnode's own network files (`mcnode sim`, `mcnode localnet`'s network.json)
            return from_quorum_sets({str(n["id"]): n["quorum_set"] for n in nodes})
        return from_stellar_core(data)
    raise FbasInputError('unrecognised JSON: expected a list of nodes or {"nodes": [...]}')
