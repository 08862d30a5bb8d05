"""Quorum analysis: every data file, hand-made messy inputs, and SAT answers against an
independent brute force (subset enumeration over its own quorum-set evaluator) on small
random networks."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcnode.fbas import (
    Fbas,
    FbasInputError,
    Node,
    QSet,
    check_intersection,
    from_explorer,
    from_json,
    from_node_configs,
    from_quorum_sets,
    from_stellar_core,
    is_blocking,
    minimal_blocking_sets,
)
from mcnode.fbas.splitting import is_split_witness, minimal_splitting_set
from mcnode.fbas.toptier import top_tier

DATA = Path(__file__).resolve().parents[1] / "examples" / "networks"

# -- brute force: deliberately shares nothing with mcnode.fbas but the input values ----------


def sat(q: QSet, s: frozenset[str]) -> bool:
    members = len(q.validators) + len(q.inner)
    if q.threshold < 1 or q.threshold > members:
        return False
    hits = sum(v in s for v in q.validators) + sum(sat(i, s) for i in q.inner)
    return hits >= q.threshold


def subsets(items: list[str]) -> Iterator[frozenset[str]]:
    for r in range(len(items) + 1):
        for c in itertools.combinations(items, r):
            yield frozenset(c)


def brute_quorums(fbas: Fbas) -> list[frozenset[str]]:
    cands = [n.id for n in fbas.nodes if n.qset is not None]
    qs = {n.id: n.qset for n in fbas.nodes}
    out = []
    for s in subsets(cands):
        if s and all(sat(qs[v], s) for v in s):  # type: ignore[arg-type]
            out.append(s)
    return out


def brute_intersects(fbas: Fbas) -> bool:
    qs = brute_quorums(fbas)
    return all(a & b for a in qs for b in qs)


def brute_min_blocking(fbas: Fbas) -> tuple[int, list[frozenset[str]]]:
    """Size and all minimum-size blocking sets."""
    qs = brute_quorums(fbas)
    ids = list(fbas.ids)
    for r in range(len(ids) + 1):
        found = [
            frozenset(b) for b in itertools.combinations(ids, r) if all(q & set(b) for q in qs)
        ]
        if found:
            return r, found
    raise AssertionError("unreachable")


def brute_minimal_blocking_up_to(fbas: Fbas, k: int) -> set[frozenset[str]]:
    qs = brute_quorums(fbas)
    blocking = [s for s in subsets(list(fbas.ids)) if len(s) <= k and all(q & s for q in qs)]
    return {s for s in blocking if not any(t < s for t in blocking)}


def brute_min_splitting(fbas: Fbas) -> int | None:
    ids = list(fbas.ids)
    qs = {n.id: n.qset for n in fbas.nodes}
    all_sets = list(subsets(ids))
    for r in range(len(ids) + 1):
        for bad in itertools.combinations(ids, r):
            b = frozenset(bad)
            relaxed = [
                s
                for s in all_sets
                if s - b and all(qs[v] is not None and sat(qs[v], s) for v in s - b)  # type: ignore[arg-type]
            ]
            if any((x & y) <= b for x in relaxed for y in relaxed):
                return r
    return None


def brute_top_tier(fbas: Fbas) -> set[str]:
    qs = brute_quorums(fbas)
    minimal = [q for q in qs if not any(o < q for o in qs)]
    return set().union(*minimal) if minimal else set()


def gfp(fbas: Fbas, s: set[str]) -> set[str]:
    s = {v for v in s if fbas.qset(v) is not None}
    while True:
        drop = {v for v in s if not sat(fbas.qset(v), frozenset(s))}  # type: ignore[arg-type]
        if not drop:
            return s
        s -= drop


# -- data files ------------------------------------------------------------------------------

EXPECTED = {
    # file: (intersection, min blocking size, min splitting size, top tier size)
    "broken.json": (False, 2, 0, 4),
    "correct.json": (True, 2, 1, 3),
    "mobilecoin_nodes_2021-10-22.json": (True, 3, 6, 10),
    "pf_circular_1.json": (True, 1, None, 2),
    "pf_conflicted.json": (False, 4, 0, 6),
    "pf_conflicted_2.json": (False, 2, 0, 4),
    "pf_missing_1.json": (True, 0, 1, 0),
    "pf_top_tier.json": (True, 6, 3, 23),
    "sc_enjoys-intersection.json": (True, 2, 2, 4),
    "sc_no-intersection.json": (False, 3, 0, 4),
    "stellar_pubnet_2025-07-20.json": (True, 6, 3, 21),
    "stellarbeat_nodes_2019-09-17.json": (True, 4, 2, 17),
    "stellarbeat_nodes_2020-01-16_broken_by_hand.json": (False, 5, 0, 22),
}
MALFORMED = {
    "sc_bad-key.json": "not a valid Stellar node id",
    "sc_bad-threshold-type.json": "threshold must be a non-negative integer",
}
BRUTE_MAX = 10  # nodes: brute-force intersection, blocking and top tier up to this size
BRUTE_SPLIT_MAX = 7


def load(name: str) -> Fbas:
    return from_json(json.loads((DATA / name).read_text()))


def test_every_data_file_is_covered() -> None:
    names = {p.name for p in DATA.glob("*.json")} - {"stellarbeat_organizations_2019-09-17.json"}
    assert names == set(EXPECTED) | set(MALFORMED)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_file_is_rejected_with_reason(name: str) -> None:
    with pytest.raises(FbasInputError, match=MALFORMED[name]):
        load(name)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_data_file_verdicts_and_certificates(name: str) -> None:
    fbas = load(name)
    intersects, blocking, splitting, tier = EXPECTED[name]

    r = check_intersection(fbas)
    assert r.intersection is intersects
    if not intersects:
        assert r.disjoint_quorums is not None
        a, b = map(frozenset, r.disjoint_quorums)
        assert not a & b
        assert gfp(fbas, set(a)) == a and gfp(fbas, set(b)) == b  # both are quorums
    else:
        assert r.disjoint_quorums is None

    blk = minimal_blocking_sets(fbas)
    assert blk.size == blocking == len(blk.example)
    assert not gfp(fbas, set(fbas.ids) - set(blk.example))
    for v in blk.example:  # no node of the example is superfluous
        assert gfp(fbas, set(fbas.ids) - (set(blk.example) - {v}))

    spl = minimal_splitting_set(fbas)
    assert spl.size == splitting
    if spl.size is not None:
        assert spl.example is not None and spl.quorums is not None
        assert is_split_witness(fbas, spl.example, *spl.quorums)

    tt = top_tier(fbas)
    assert len(tt.nodes) == tier

    if len(fbas.nodes) <= BRUTE_MAX:
        assert brute_intersects(fbas) is intersects
        size, every = brute_min_blocking(fbas)
        assert size == blocking and frozenset(blk.example) in every
        assert set(tt.nodes) == brute_top_tier(fbas)
    if len(fbas.nodes) <= BRUTE_SPLIT_MAX:
        assert brute_min_splitting(fbas) == splitting


def test_pubnet_skips_watchers_without_quorum_sets() -> None:
    fbas = load("stellar_pubnet_2025-07-20.json")
    assert len(fbas.nodes) == 637
    assert {s.kind for s in fbas.skipped} == {"no-quorum-set"}
    assert len(fbas.skipped) == 533


def test_crawler_unknown_quorum_sets_are_unsatisfiable() -> None:
    fbas = load("stellarbeat_nodes_2019-09-17.json")
    kinds = [s.kind for s in fbas.skipped]
    assert kinds.count("unsatisfiable") == 97  # threshold 2^53 - 1 of no members
    assert kinds.count("unknown-validator") == 6


def test_organizations_file_groups_nodes() -> None:
    nodes = json.loads((DATA / "stellarbeat_nodes_2019-09-17.json").read_text())
    orgs = json.loads((DATA / "stellarbeat_organizations_2019-09-17.json").read_text())
    fbas = from_explorer(nodes, orgs)
    groups = dict(fbas.group_by_org(top_tier(fbas).nodes))
    assert {"LOBSTR", "Stellar Development Foundation"} <= {g for g in groups if g}
    assert len(groups["Stellar Development Foundation"]) == 3


def test_all_minimal_blocking_sets_on_mobilecoin_match_brute_force() -> None:
    fbas = load("mobilecoin_nodes_2021-10-22.json")
    r = minimal_blocking_sets(fbas, all_up_to=4)
    assert r.all is not None
    assert {frozenset(s) for s in r.all} == brute_minimal_blocking_up_to(fbas, 4)


# -- messy and malformed inputs, each rule -----------------------------------------------------


def test_messy_explorer_input_is_read_by_rule_and_reported() -> None:
    data = [
        {"publicKey": "A", "quorumSet": {"threshold": 2, "validators": ["A", "B", "B", "C"]}},
        {
            "publicKey": "B",
            "quorumSet": {"threshold": 2, "validators": ["A", "B"], "innerQuorumSets": None},
        },
        {"publicKey": "C", "quorumSet": None},
        {"publicKey": "D"},
        {"publicKey": "E", "quorumSet": {"threshold": 5, "validators": ["A"]}},
        {"publicKey": "F", "quorumSet": {"threshold": 0, "validators": []}},
        {"publicKey": "G", "quorumSet": {"threshold": 1, "validators": ["X"]}},
        {"publicKey": "A", "quorumSet": {"threshold": 1, "validators": ["C"]}},
    ]
    fbas = from_explorer(data, [{"id": "o", "name": "Org", "validators": ["A", "Z"]}])
    kinds = sorted((s.node, s.kind) for s in fbas.skipped)
    assert kinds == [
        ("A", "duplicate-node"),
        ("A", "duplicate-validator"),
        ("C", "no-quorum-set"),
        ("D", "no-quorum-set"),
        ("E", "unsatisfiable"),
        ("F", "unsatisfiable"),
        ("X", "unknown-validator"),
        ("Z", "unknown-org-member"),
    ]
    assert fbas.qset("A") == QSet(2, ("A", "B", "C"))  # first entry kept, duplicate dropped
    assert fbas.org_of("A") == "Org"
    r = check_intersection(fbas)
    assert r.intersection and r.has_quorum
    assert brute_quorums(fbas) == [frozenset({"A", "B"})]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"publicKey": "A"}, "expected a list"),
        (["A"], "expected an object"),
        ([{"name": "x"}], "no publicKey"),
        ([{"publicKey": ""}], "non-empty string"),
        ([{"publicKey": 7}], "non-empty string"),
        ([{"publicKey": "A", "quorumSet": {"validators": []}}], "no threshold"),
        ([{"publicKey": "A", "quorumSet": {"threshold": -1}}], "non-negative integer"),
        ([{"publicKey": "A", "quorumSet": {"threshold": True}}], "non-negative integer"),
        ([{"publicKey": "A", "quorumSet": {"threshold": 1, "validators": "B"}}], "must be a list"),
        (
            [{"publicKey": "A", "quorumSet": {"threshold": 1, "validators": [1]}}],
            "non-empty string",
        ),
        ([{"publicKey": "A", "quorumSet": []}], "must be an object"),
    ],
)
def test_malformed_explorer_input_raises(data: object, message: str) -> None:
    with pytest.raises(FbasInputError, match=message):
        from_json(data)


def test_deep_nesting_is_malformed_not_a_crash() -> None:
    q: dict[str, object] = {"threshold": 1, "validators": ["A"]}
    for _ in range(40):
        q = {"threshold": 1, "innerQuorumSets": [q]}
    with pytest.raises(FbasInputError, match="nested deeper"):
        from_explorer([{"publicKey": "A", "quorumSet": q}])


def test_stellar_core_form_with_inner_sets_and_null_qset() -> None:
    a, b, c = (
        "GCJVK27XZGYRWKQQJWNBD5ZRHTLEBLRRM6QA2RVVBRPIRKGUSUI3X733",
        "GAAV2GCVFLNN522ORUYFV33E76VPC22E72S75AQ6MBR5V45Z5DWVPWEU",
        "GABMKJM6I25XI4K7U6XWMULOUQIQ27BCTMLS6BYYSOWKTBUXVRJSXHYQ",
    )
    data = {
        "nodes": [
            {"node": a, "qset": {"t": 2, "v": [b, {"t": 1, "v": [c]}]}},
            {"node": b, "qset": {"t": 1, "v": [a]}},
            {"node": c, "qset": None},
        ]
    }
    fbas = from_stellar_core(data)
    assert fbas.qset(a) == QSet(2, (b,), (QSet(1, (c,)),))
    assert [s.kind for s in fbas.skipped] == ["no-quorum-set"]
    assert check_intersection(fbas).has_quorum is False


def test_node_configs_in_both_member_styles() -> None:
    configs = [
        (
            "a.toml",
            {
                "node_id": "a",
                "organization": "O1",
                "quorum_set": {
                    "threshold": 2,
                    "members": ["b", {"threshold": 1, "members": ["c"]}],
                },
            },
        ),
        (
            "b.toml",
            {
                "node_id": "b",
                "quorum_set": {
                    "threshold": 2,
                    "members": [
                        {"type": "Node", "args": "a"},
                        {"type": "InnerSet", "args": {"threshold": 1, "members": ["c"]}},
                    ],
                },
            },
        ),
        ("c.toml", {"node_id": "c", "quorum_set": {"threshold": 1, "members": ["a", "b"]}}),
    ]
    fbas = from_node_configs(configs)
    assert fbas.qset("b") == QSet(2, ("a",), (QSet(1, ("c",)),))
    assert fbas.org_of("a") == "O1"
    assert check_intersection(fbas).intersection
    with pytest.raises(FbasInputError, match="unknown quorum_set member type"):
        from_node_configs(
            [
                (
                    "x",
                    {
                        "node_id": "x",
                        "quorum_set": {"threshold": 1, "members": [{"type": "Peer", "args": "y"}]},
                    },
                )
            ]
        )
    with pytest.raises(FbasInputError, match="node_id"):
        from_node_configs([("x.toml", {"quorum_set": {"threshold": 1, "members": []}})])


def test_node_configs_bad_shape_names_the_field_and_bad_thresholds_are_reported() -> None:
    """mcnode's form goes through scp's one quorum-set parser: a malformed shape is an
    error naming the field, an unusable threshold is only reported (fbas stays lenient)."""
    with pytest.raises(FbasInputError) as e:
        from_node_configs(
            [
                (
                    "a.toml",
                    {
                        "node_id": "a",
                        "quorum_set": {
                            "threshold": 1,
                            "members": ["b", {"threshold": "2", "members": ["c"]}],
                        },
                    },
                )
            ]
        )
    assert str(e.value).startswith(
        "a.toml: quorum_set.members[1].threshold: expected a non-negative integer"
    ), str(e.value)
    fbas = from_node_configs(
        [
            ("a", {"node_id": "a", "quorum_set": {"threshold": 0, "members": ["b"]}}),
            ("b", {"node_id": "b", "quorum_set": {"threshold": 3, "members": ["a", "a"]}}),
        ]
    )
    assert fbas.qset("a") == QSet(0, ("b",)) and fbas.qset("b") == QSet(3, ("a",))
    assert [(s.node, s.kind) for s in fbas.skipped] == [
        ("a", "unsatisfiable"),
        ("b", "duplicate-validator"),
        ("b", "unsatisfiable"),
    ]


def test_node_view_from_scp_quorum_set_dicts() -> None:
    fbas = from_quorum_sets(
        {
            "n0": {"threshold": 1, "members": ["n1"]},
            "n1": {"threshold": 1, "members": ["n0"]},
            "n2": {"threshold": 1, "members": ["n3"]},
            "n3": {"threshold": 1, "members": ["n2"]},
            "n4": None,
        }
    )
    r = check_intersection(fbas)
    assert not r.intersection and r.disjoint_quorums is not None
    assert {frozenset(q) for q in r.disjoint_quorums} == {
        frozenset({"n0", "n1"}),
        frozenset({"n2", "n3"}),
    }


def symmetric(orgs: int, per: int, t_top: int, t_in: int) -> Fbas:
    inner = tuple(QSet(t_in, tuple(f"o{o}n{i}" for i in range(per))) for o in range(orgs))
    q = QSet(t_top, (), inner)
    return Fbas(tuple(Node(f"o{o}n{i}", q, org=f"o{o}") for o in range(orgs) for i in range(per)))


def test_symmetric_twenty_orgs_intersect_only_above_half() -> None:
    assert check_intersection(symmetric(20, 3, 11, 2)).intersection
    r = check_intersection(symmetric(20, 3, 10, 2))
    assert not r.intersection and r.disjoint_quorums is not None
    assert minimal_blocking_sets(symmetric(10, 3, 7, 2)).size == 4 * 2


# -- property: SAT equals brute force on random small networks -------------------------------

IDS = [f"n{i}" for i in range(7)]


@st.composite
def qsets(draw: st.DrawFn, owner: str, pool: list[str], depth: int = 0) -> dict[str, object]:
    """Mostly satisfiable quorum sets (owner often listed, low thresholds), sometimes an
    unknown member or an out-of-range threshold."""
    extra = ["ghost"] if draw(st.integers(0, 9)) == 0 else []
    others = draw(st.lists(st.sampled_from(pool), unique=True, max_size=len(pool)))
    vals = list(dict.fromkeys(([owner] if draw(st.booleans()) else []) + others + extra))
    inner = draw(st.lists(qsets(owner, pool, depth + 1), max_size=2)) if depth == 0 else []
    size = len(vals) + len(inner)
    if draw(st.integers(0, 9)) == 0:
        t = draw(st.sampled_from([0, size + 1]))
    else:
        t = draw(st.integers(min_value=1, max_value=max(1, size // 2 + 1)))
    return {"threshold": t, "validators": vals, "innerQuorumSets": inner}


@st.composite
def networks(draw: st.DrawFn, max_nodes: int) -> Fbas:
    n = draw(st.integers(min_value=2, max_value=max_nodes))
    pool = IDS[:n]
    nodes = []
    for v in pool:
        q = None if draw(st.integers(0, 14)) == 0 else draw(qsets(v, pool))
        nodes.append({"publicKey": v, "quorumSet": q})
    return from_explorer(nodes)


PROP = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROP
@given(networks(max_nodes=7))
def test_intersection_equals_brute_force(fbas: Fbas) -> None:
    r = check_intersection(fbas)
    assert r.intersection is brute_intersects(fbas)
    if r.disjoint_quorums is not None:
        a, b = map(frozenset, r.disjoint_quorums)
        assert not a & b and a in brute_quorums(fbas) and b in brute_quorums(fbas)


@PROP
@given(networks(max_nodes=7))
def test_blocking_and_top_tier_equal_brute_force(fbas: Fbas) -> None:
    size, every = brute_min_blocking(fbas)
    up_to_3 = brute_minimal_blocking_up_to(fbas, 3)
    for method in ("rounds", "ihs"):
        r = minimal_blocking_sets(fbas, all_up_to=3, method=method)
        assert r.size == size and frozenset(r.example) in every
        assert is_blocking(fbas, r.example)
        assert r.all is not None
        assert {frozenset(s) for s in r.all} == up_to_3
    assert set(top_tier(fbas).nodes) == brute_top_tier(fbas)


@settings(PROP, max_examples=150)
@given(networks(max_nodes=6))
def test_splitting_equals_brute_force(fbas: Fbas) -> None:
    r = minimal_splitting_set(fbas)
    assert r.size == brute_min_splitting(fbas)
    if r.size is not None:
        assert r.example is not None and r.quorums is not None
        assert is_split_witness(fbas, r.example, *r.quorums)
