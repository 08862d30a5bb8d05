"""Quorum sets and quorum predicates: validation rules, normal form, dict round trip, a stable
digest, and the predicates (slice satisfaction, v-blocking, greatest quorum) cross-checked
against brute-force enumeration on small random networks."""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcnode.scp import QuorumSet, QuorumSetError, is_quorum, is_v_blocking
from mcnode.scp.predicates import greatest_quorum
from mcnode.scp.quorum_set import parse_quorum_set
from scp_helpers import FAST


def nested(depth: int) -> QuorumSet:
    q = QuorumSet(1, ["leaf"])
    for i in range(depth):
        q = QuorumSet(1, [f"n{i}", q])
    return q


# -- validate ------------------------------------------------------------------------------------
def test_valid_nested_quorum_set_passes() -> None:
    QuorumSet(2, ["a", "b", QuorumSet(1, ["c", "d"])]).validate()
    nested(4).validate()


@pytest.mark.parametrize(
    ("qset", "fragment"),
    [
        (QuorumSet(0, ["a", "b"]), "at least 1"),
        (QuorumSet(-1, ["a"]), "at least 1"),
        (QuorumSet(3, ["a", "b"]), "exceeds"),
        (QuorumSet(1, []), "exceeds"),
        (QuorumSet(1, ["a", QuorumSet(0, ["b"])]), "at least 1"),
        (QuorumSet(1, ["a", QuorumSet(2, ["b"])]), "exceeds"),
        (QuorumSet(2, ["a", "a"]), "more than once"),
        (QuorumSet(2, ["a", QuorumSet(1, ["b", "a"])]), "more than once"),
        (
            QuorumSet(2, [QuorumSet(1, ["a"]), QuorumSet(1, [QuorumSet(1, ["a"])])]),
            "more than once",
        ),
        (nested(5), "deeper than 4"),
        (QuorumSet(1, ["a", ""]), "node id"),
        (QuorumSet(1, ["a", "x" * 257]), "node id"),
        (QuorumSet(1, ["a", 7]), "member must be"),  # type: ignore[list-item]
        (QuorumSet(True, ["a"]), "integer"),
        (QuorumSet(1, [f"n{i}" for i in range(1001)]), "more than 1000"),
        (
            QuorumSet(1, [QuorumSet(1, [f"n{j}-{i}" for i in range(600)]) for j in range(2)]),
            "more than 1000",
        ),
    ],
)
def test_validate_rejects_with_clear_error(qset: QuorumSet, fragment: str) -> None:
    with pytest.raises(QuorumSetError, match=fragment):
        qset.validate()


def test_quorum_set_error_is_value_error() -> None:
    assert issubclass(QuorumSetError, ValueError)


def test_exactly_1000_nodes_and_depth_4_are_allowed() -> None:
    QuorumSet(1, [f"n{i}" for i in range(1000)]).validate()
    assert nested(4).depth() == 4


# -- structure -----------------------------------------------------------------------------------
def test_nodes_collects_every_depth() -> None:
    q = QuorumSet(2, ["a", QuorumSet(1, ["b", QuorumSet(1, ["c", "d"])]), "e"])
    assert q.nodes() == frozenset("abcde")
    assert QuorumSet(1, []).nodes() == frozenset()


def test_quorum_set_is_frozen_and_hashable() -> None:
    q = QuorumSet(1, ["a", "b"])
    assert hash(q) == hash(QuorumSet(1, ("a", "b")))
    assert q == QuorumSet(1, ["a", "b"])
    with pytest.raises(AttributeError):
        q.threshold = 2  # type: ignore[misc]


def test_normalized_sorts_and_collapses_singletons() -> None:
    q = QuorumSet(2, [QuorumSet(1, ["z"]), "b", QuorumSet(2, ["d", "c"]), "a"])
    n = q.normalized()
    assert n == QuorumSet(2, ["a", "b", "z", QuorumSet(2, ["c", "d"])])
    assert n.normalized() == n


def test_normalized_remove_lowers_threshold() -> None:
    q = QuorumSet(3, ["me", "a", "b", "c"])
    assert q.normalized(remove="me") == QuorumSet(2, ["a", "b", "c"])
    inner = QuorumSet(2, ["a", QuorumSet(2, ["me", "x"])])
    assert inner.normalized(remove="me") == QuorumSet(2, ["a", "x"])


def test_to_dict_from_dict_round_trip() -> None:
    q = QuorumSet(2, ["a", QuorumSet(1, ["b", QuorumSet(2, ["c", "d"])]), "e"])
    d = q.to_dict()
    assert d == {
        "threshold": 2,
        "members": [
            "a",
            {"threshold": 1, "members": ["b", {"threshold": 2, "members": ["c", "d"]}]},
            "e",
        ],
    }
    assert QuorumSet.from_dict(json.loads(json.dumps(d))) == q


@pytest.mark.parametrize(
    "bad",
    [
        {"threshold": 1},
        {"members": ["a"]},
        {"threshold": "1", "members": ["a"]},
        {"threshold": True, "members": ["a"]},
        {"threshold": 1, "members": "a"},
        {"threshold": 1, "members": [3]},
        {"threshold": 1, "members": ["a"], "extra": 1},
        {"threshold": 2, "members": ["a"]},
        {"threshold": 1, "members": ["a", "a"]},
        ["not", "a", "mapping"],
        nested(5).to_dict(),
    ],
)
def test_from_dict_rejects_malformed(bad: object) -> None:
    with pytest.raises(QuorumSetError):
        QuorumSet.from_dict(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["not", "a", "mapping"], "quorum_set: expected a table {threshold, members}, got list"),
        ({"threshold": 1}, "quorum_set.members: missing"),
        ({"members": ["a"]}, "quorum_set.threshold: missing"),
        (
            {"threshold": 1, "members": ["a"], "extra": 1},
            "quorum_set.extra: unknown quorum set key",
        ),
        (
            {"threshold": 1, "members": ["a", {"threshold": "x", "members": ["b"]}]},
            "quorum_set.members[1].threshold: expected a non-negative integer, got 'x'",
        ),
        (
            {"threshold": 1, "members": ["a", "b", {"threshold": 1, "members": [7]}]},
            "quorum_set.members[2].members[0]: expected a node id or a nested set, got 7",
        ),
        ({"threshold": 1, "members": "a"}, "quorum_set.members: expected a list, got str"),
        ({"threshold": -1, "members": ["a"]}, "quorum_set.threshold: expected a non-negative"),
        ({"threshold": 1, "members": [""]}, "quorum_set.members[0]: empty node id"),
        (
            {
                "threshold": 1,
                "members": [
                    {
                        "type": "InnerSet",
                        "args": {"threshold": 1, "members": [{"type": "Peer", "args": "x"}]},
                    }
                ],
            },
            "quorum_set.members[0].args.members[0].type: unknown quorum_set member type 'Peer'",
        ),
        (
            {"threshold": 1, "members": [{"type": "Node", "args": 3}]},
            "quorum_set.members[0].args: expected a node id, got 3",
        ),
        (
            {"threshold": 1, "members": [{"type": "Node", "args": "a", "x": 1}]},
            "quorum_set.members[0].x: unknown member key",
        ),
        (nested(5).to_dict(), "quorum_set" + ".members[1]" * 5 + ": quorum set nested deeper"),
    ],
)
def test_parse_errors_name_the_path_of_the_bad_field(raw: object, message: str) -> None:
    with pytest.raises(QuorumSetError) as e:
        parse_quorum_set(raw)
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"threshold": 2, "members": ["a", {"threshold": 3, "members": ["b", "c"]}]},
            "peers.quorum_set.members[1]: threshold 3 exceeds the 2 members",
        ),
        (
            {"threshold": 2, "members": ["a", {"threshold": 1, "members": ["b", "a"]}]},
            "peers.quorum_set.members[1].members[1]: node 'a' appears more than once",
        ),
        ({"threshold": 0, "members": ["a"]}, "peers.quorum_set: threshold must be at least 1"),
    ],
)
def test_from_dict_validation_errors_name_the_path_too(raw: object, message: str) -> None:
    with pytest.raises(QuorumSetError) as e:
        QuorumSet.from_dict(raw, "peers.quorum_set")  # type: ignore[arg-type]
    assert str(e.value).startswith(message), str(e.value)


def test_validate_names_the_nested_member_without_a_where() -> None:
    with pytest.raises(QuorumSetError, match=r"^members\[1\]: threshold 2 exceeds"):
        QuorumSet(1, ["a", QuorumSet(2, ["b"])]).validate()
    with pytest.raises(QuorumSetError, match=r"^threshold 3 exceeds"):
        QuorumSet(3, ["a", "b"]).validate()


def test_parse_reads_mobilecoin_members_and_leaves_judging_to_validate() -> None:
    plain = {"threshold": 2, "members": ["a", {"threshold": 1, "members": ["b", "c"]}]}
    tagged = {
        "threshold": 2,
        "members": [
            {"type": "Node", "args": "a"},
            {"type": "InnerSet", "args": {"threshold": 1, "members": ["b", "c"]}},
        ],
    }
    assert parse_quorum_set(tagged) == parse_quorum_set(plain) == QuorumSet.from_dict(plain)
    # Shape only: fbas reports these as unsatisfiable instead of refusing the network.
    assert parse_quorum_set({"threshold": 0, "members": []}) == QuorumSet(0, [])
    assert parse_quorum_set({"threshold": 5, "members": ["a", "a"]}) == QuorumSet(5, ["a", "a"])
    assert parse_quorum_set(nested(9).to_dict(), max_depth=16) == nested(9)


def test_from_dict_deep_nesting_is_an_error_not_recursion() -> None:
    d: dict[str, object] = {"threshold": 1, "members": ["x"]}
    for _ in range(5000):
        d = {"threshold": 1, "members": [d]}
    with pytest.raises(QuorumSetError):
        QuorumSet.from_dict(d)


def test_digest_is_stable_and_ignores_order() -> None:
    a = QuorumSet(2, ["a", "b", QuorumSet(1, ["c", "d"])])
    b = QuorumSet(2, [QuorumSet(1, ["d", "c"]), "b", "a"])
    assert a.digest() == b.digest()
    assert len(a.digest()) == 32
    assert a.digest() != QuorumSet(3, ["a", "b", QuorumSet(1, ["c", "d"])]).digest()
    assert a.digest() != QuorumSet(2, ["a", "b", QuorumSet(1, ["c", "e"])]).digest()
    # Pinned: peers compare digests, so the value must not drift between releases.
    assert QuorumSet(2, ["b", "a"]).digest().hex() == (
        "eaa2958d597cdca88d6f90f717ba99d6cb86d07ce4ce5b1ffe235c313e4ac785"
    )


def test_weight_is_fraction_of_slices() -> None:
    q = QuorumSet(2, ["a", "b", QuorumSet(1, ["c", "d"])])
    assert q.weight("a") == Fraction(2, 3)
    assert q.weight("c") == Fraction(2, 3) * Fraction(1, 2)
    assert q.weight("zz") == 0


# -- predicates: hand-made cases -----------------------------------------------------------------
def test_slice_satisfaction_and_blocking_core5() -> None:
    q = QuorumSet(3, ["v1", "v2", "v3", "v4"])
    assert q.is_satisfied_by({"v1", "v2", "v3"})
    assert not q.is_satisfied_by({"v1", "v2"})
    assert is_v_blocking(q, ["v1", "v2"])
    assert not is_v_blocking(q, ["v1"])
    assert not is_v_blocking(q, ["v0", "v1"])  # the local node is never part of a v-blocking set
    assert q.blocking_size() == 2


def test_nested_blocking() -> None:
    q = QuorumSet(2, ["a", QuorumSet(2, ["b", "c", "d"]), QuorumSet(1, ["e", "f"])])
    assert is_v_blocking(q, {"a", "e", "f"})
    assert is_v_blocking(q, {"a", "b", "c"})
    assert not is_v_blocking(q, {"a", "b"})
    assert q.blocking_size() == 3


def test_is_quorum_requires_local_node_and_peer_slices() -> None:
    nodes = ["v0", "v1", "v2", "v3"]
    qsets = {n: QuorumSet(2, [m for m in nodes if m != n]) for n in nodes}
    local = qsets["v0"]
    assert is_quorum("v0", local, qsets, ["v0", "v1", "v2"])
    assert not is_quorum("v0", local, qsets, ["v1", "v2", "v3"])  # without v0 itself
    assert not is_quorum("v0", local, qsets, ["v0", "v1"])
    # A peer whose quorum set we never saw cannot be counted.
    assert not is_quorum("v0", local, {"v0": local, "v1": qsets["v1"]}, ["v0", "v1", "v2"])


def test_greatest_quorum_drops_unsatisfied_peers_to_a_fixpoint() -> None:
    # v3 needs v4 (absent): dropping v3 leaves v2 without its slice, which drops v2 too.
    qsets = {
        "v0": QuorumSet(1, ["v1", "v2"]),
        "v1": QuorumSet(1, ["v0"]),
        "v2": QuorumSet(1, ["v3"]),
        "v3": QuorumSet(1, ["v4"]),
    }
    got = greatest_quorum("v0", qsets["v0"], qsets, {"v0", "v1", "v2", "v3"})
    assert got == frozenset({"v0", "v1"})
    assert greatest_quorum("v0", qsets["v0"], qsets, {"v0", "v2", "v3"}) is None


# -- predicates against brute force ------------------------------------------------------------
def bf_sat(q: QuorumSet, nodes: frozenset[str]) -> bool:
    """Independent evaluator: some slice (pick `threshold` members, each satisfied) is inside."""
    ok = [bf_sat(m, nodes) if isinstance(m, QuorumSet) else m in nodes for m in q.members]
    return any(
        all(ok[i] for i in combo)
        for combo in itertools.combinations(range(len(q.members)), q.threshold)
    )


def bf_is_quorum(qs: frozenset[str], qsets: Mapping[str, QuorumSet]) -> bool:
    return bool(qs) and all(n in qsets and bf_sat(qsets[n], qs) for n in qs)


def bf_greatest(
    local: str, qsets: Mapping[str, QuorumSet], within: set[str]
) -> frozenset[str] | None:
    # The union of quorums is a quorum: the greatest quorum is the union of all of them.
    found: set[str] = set()
    any_found = False
    others = sorted(within - {local})
    if local not in within:
        return None
    for r in range(len(others) + 1):
        for combo in itertools.combinations(others, r):
            q = frozenset((local, *combo))
            if bf_is_quorum(q, qsets):
                found |= q
                any_found = True
    return frozenset(found) if any_found else None


NAMES = ["n0", "n1", "n2", "n3", "n4"]


@st.composite
def qset_over(draw: st.DrawFn, pool: list[str], depth: int = 0) -> QuorumSet:
    members: list[str | QuorumSet] = []
    avail = list(pool)
    count = draw(st.integers(1, max(1, min(4, len(avail)))))
    for _ in range(count):
        if not avail:
            break
        if depth < 2 and len(avail) >= 2 and draw(st.booleans()) and draw(st.booleans()):
            k = draw(st.integers(1, min(2, len(avail))))
            sub = avail[:k]
            avail = avail[k:]
            members.append(draw(qset_over(sub, depth + 1)))
        else:
            i = draw(st.integers(0, len(avail) - 1))
            members.append(avail.pop(i))
    t = draw(st.integers(1, len(members)))
    return QuorumSet(t, members)


@st.composite
def networks(draw: st.DrawFn) -> tuple[dict[str, QuorumSet], set[str]]:
    n = draw(st.integers(2, 5))
    names = NAMES[:n]
    qsets: dict[str, QuorumSet] = {}
    for name in names:
        if name != "n0" and draw(st.integers(0, 9)) == 0:
            continue  # a peer we have no statement from
        others = [m for m in names if m != name]
        pool = draw(st.permutations(others))
        qsets[name] = draw(qset_over(list(pool)))
    within = set(draw(st.sets(st.sampled_from(names))))
    return qsets, within


@FAST
@given(networks())
def test_greatest_quorum_matches_brute_force(net: tuple[dict[str, QuorumSet], set[str]]) -> None:
    qsets, within = net
    for q in qsets.values():
        q.validate()
    want = bf_greatest("n0", qsets, within)
    got = greatest_quorum("n0", qsets["n0"], qsets, set(within))
    assert got == want
    assert is_quorum("n0", qsets["n0"], qsets, within) == (want is not None)


@FAST
@given(networks())
def test_slices_and_blocking_match_brute_force(net: tuple[dict[str, QuorumSet], set[str]]) -> None:
    qsets, within = net
    universe = frozenset(NAMES)
    s = frozenset(within)
    for q in qsets.values():
        assert q.is_satisfied_by(s) == bf_sat(q, s)
        # v-blocking: meets every slice <=> the rest cannot satisfy the set.
        assert q.is_blocked_by(s) == (not bf_sat(q, universe - s))
        # blocking_size is the least size of a blocking set.
        sizes = [
            len(c)
            for r in range(len(universe) + 1)
            for c in itertools.combinations(sorted(q.nodes()), r)
            if q.is_blocked_by(frozenset(c))
        ]
        assert min(sizes) == q.blocking_size()


@FAST
@given(networks())
def test_normalized_and_dict_preserve_meaning(net: tuple[dict[str, QuorumSet], set[str]]) -> None:
    qsets, within = net
    s = frozenset(within)
    for q in qsets.values():
        n = q.normalized()
        assert n.nodes() == q.nodes()
        assert n.is_satisfied_by(s) == q.is_satisfied_by(s)
        assert n.is_blocked_by(s) == q.is_blocked_by(s)
        assert n.digest() == q.digest()
        assert QuorumSet.from_dict(q.to_dict()) == q
