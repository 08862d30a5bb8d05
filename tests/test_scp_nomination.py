"""Nomination, single node: leader selection (deterministic, weighted, accumulating across
rounds), round timeouts from ScpConfig, echoing leaders' votes, federated accept/confirm of
nominated values, candidates and the composite value that starts the ballot protocol, and
nomination stopping once a ballot is confirmed prepared."""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import pytest

from mcnode.scp import Msg, Node, Nominate, NominatePrepare, Prepare, QuorumSet, ScpConfig
from mcnode.scp.nomination import is_newer_nominate
from scp_helpers import (
    A,
    B,
    Harness,
    K,
    X,
    Y,
    Z,
    always_valid,
    core5,
    make_clock,
    max_combine,
    peers_qset,
    sent_prepare,
)

QUIET = ScpConfig(rebroadcast_interval=1000.0)
CORE5 = ["v0", "v1", "v2", "v3", "v4"]
# Found by listing leaders per slot (they are a pure function of slot, round and quorum set):
SLOT_V0_LEADS = 5  # v0 is the round-1 leader
SLOT_V1_LEADS = 3  # v1 is the leader of rounds 1 and 2


def leaders(h: Harness) -> list[str]:
    return list(h.state()["leaders"])


# -- leader selection ------------------------------------------------------------------------------
def draft_leader(slot: int, round_: int, me: str, qset: QuorumSet) -> set[str]:
    """Independent reading of the draft: neighbours pass Gi(1||r||v) < 2^256 * weight(v)
    (the local node always does); the leader is the neighbour of highest Gi(2||r||v)."""

    def g(kind: int, node: str) -> int:
        data = struct.pack(">QII", slot, kind, round_) + node.encode()
        return int.from_bytes(hashlib.sha256(data).digest(), "big")

    nodes = sorted(qset.nodes() | {me})
    neighbours = [n for n in nodes if n == me or Fraction(g(1, n), 2**256) < qset.weight(n)]
    best = max(g(2, n) for n in neighbours)
    return {n for n in neighbours if g(2, n) == best}


@pytest.mark.parametrize("slot", range(1, 13))
def test_round_one_leader_matches_the_draft_formula(slot: int) -> None:
    h = core5(config=QUIET, slot=slot)
    h.propose(X)
    assert set(leaders(h)) == draft_leader(slot, 1, "v0", h.qset)


def test_leaders_are_deterministic() -> None:
    runs = []
    for _ in range(2):
        h = core5(config=QUIET, slot=7)
        h.propose(X)
        seq = [leaders(h)]
        for _ in range(5):
            h.fire_at_next_timeout()
            seq.append(leaders(h))
        runs.append(seq)
    assert runs[0] == runs[1]


def test_leaders_accumulate_across_rounds() -> None:
    h = core5(config=QUIET, slot=7)
    h.propose(X)
    seen: set[str] = set(leaders(h))
    union: set[str] = set(seen)
    for r in range(2, 8):
        h.fire_at_next_timeout()
        assert h.state()["round"] == r
        now = set(leaders(h))
        assert now >= seen
        union |= draft_leader(7, r, "v0", h.qset)
        assert now == union
        seen = now


def test_weighted_leader_selection() -> None:
    # "heavy" is in every slice (weight 1); each light node is in 1/5 of them.
    lights = [f"l{i}" for i in range(5)]
    qset = QuorumSet(2, ["heavy", QuorumSet(1, lights)])
    assert qset.weight("heavy") == 1 and qset.weight("l0") == Fraction(1, 5)
    counts: Counter[str] = Counter()
    for slot in range(1, 301):
        _, clock = make_clock()
        node = Node("me", qset, always_valid, max_combine, slot, clock, config=QUIET)
        node.propose_values([X])
        state = node.slot_state(slot)
        assert state is not None
        counts.update(state["leaders"])
    assert counts["heavy"] > 2 * max(counts[n] for n in lights)
    assert all(counts[n] > 0 for n in lights)


def test_node_of_weight_zero_is_never_a_leader() -> None:
    # "outsider" is not in v0's quorum set: weight 0. It nominates, is never a leader, never echoed.
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    h.qsets["outsider"] = QuorumSet(1, ["v0"])
    assert h.qset.weight("outsider") == 0
    h.propose(X)
    h.recv(h.nominate("outsider", voted=[Z]))
    for _ in range(12):
        h.fire_at_next_timeout()
        assert "outsider" not in leaders(h)
    assert Z.hex() not in h.state()["X"]


# -- round timeouts ------------------------------------------------------------------------------
def test_nomination_round_timeouts_default() -> None:
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    h.propose(X)
    assert h.node.next_timeout() == 2.0  # draft: 1 + round seconds
    h.fire_at_next_timeout()
    assert h.state()["round"] == 2 and h.node.next_timeout() == 2.0 + 3.0
    h.fire_at_next_timeout()
    assert h.state()["round"] == 3 and h.node.next_timeout() == 5.0 + 4.0
    assert h.node.stats["nomination_timeouts"] == 2  # exported by the service


def test_nomination_round_timeouts_follow_config() -> None:
    cfg = ScpConfig(
        nomination_timeout=0.5,
        nomination_timeout_increment=0.25,
        ballot_timeout=7.0,
        ballot_timeout_increment=3.0,
        rebroadcast_interval=1000.0,
    )
    h = core5(config=cfg, slot=SLOT_V1_LEADS)
    h.propose(X)
    assert h.node.next_timeout() == 0.5
    h.fire_at_next_timeout()
    assert h.node.next_timeout() == 0.5 + 0.75
    h.fire_at_next_timeout()
    assert h.node.next_timeout() == 1.25 + 1.0
    # ... and the ballot timer of the same node uses the ballot settings.
    for p in h.peers:
        h.recv(h.nominate(p, accepted=[X]))
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(1)))
    assert h.node.next_timeout() == h.t[0] + 7.0


def test_timer_does_not_fire_early() -> None:
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    h.propose(X)
    assert h.advance(1.999) == []
    assert h.state()["round"] == 1
    h.advance(0.001)
    assert h.state()["round"] == 2


def test_no_nomination_timer_before_nominating() -> None:
    h = core5(config=QUIET)
    assert h.node.next_timeout() is None
    assert h.fire() == []


# -- voting ----------------------------------------------------------------------------------------
def test_leader_nominates_its_own_values() -> None:
    h = core5(config=QUIET, slot=SLOT_V0_LEADS)
    out = h.propose(X, Y)
    assert out is not None and out.topic == Nominate(frozenset({X, Y}), frozenset())


def test_non_leader_waits_and_echoes_leader() -> None:
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    assert h.propose(X) is None  # v1 leads round 1: we have nothing to say yet
    assert h.recv(h.nominate("v2", voted=[Z])) is None  # not a leader: not echoed
    out = h.recv(h.nominate("v1", voted=[Y]))
    assert out is not None and out.topic == Nominate(frozenset({Y}), frozenset())


OWN = ScpConfig(rebroadcast_interval=1000.0, vote_own_values=True)


def test_vote_own_values_votes_at_once_without_leading() -> None:
    h = core5(config=OWN, slot=SLOT_V1_LEADS)
    out = h.propose(X)  # v1 leads round 1, but we vote our own value now
    assert out is not None and out.topic == Nominate(frozenset({X}), frozenset())
    later = h.propose(Y)  # and values proposed later in the round too
    assert later is not None and later.topic == Nominate(frozenset({X, Y}), frozenset())
    assert h.recv(h.nominate("v2", voted=[Z])) is None  # a non-leader still is not echoed
    out = h.recv(h.nominate("v1", voted=[Z]))  # the leader still is
    assert out is not None and out.topic == Nominate(frozenset({X, Y, Z}), frozenset())


def test_vote_own_values_stops_at_the_first_candidate() -> None:
    h = core5(config=OWN, slot=SLOT_V1_LEADS)
    h.propose(X)
    h.recv_from(["v2", "v3", "v4"], lambda s: h.nominate(s, accepted=[X]))
    assert h.state()["Z"] == [X.hex()]
    h.propose(Y)
    assert Y.hex() not in h.state()["X"]


def test_vote_own_values_quorum_of_own_votes_accepts_in_one_step() -> None:
    # Every node holding x votes it at once: a quorum of votes (no leader's echo needed)
    # makes x accepted at the first round of messages.
    h = core5(config=OWN, slot=SLOT_V1_LEADS)
    h.propose(X)
    h.recv_from(["v2", "v3"], lambda s: h.nominate(s, voted=[X]))
    out = h.recv(h.nominate("v4", voted=[X]))
    assert out is not None and out.topic == Nominate(frozenset(), frozenset({X}))


def test_peer_nomination_starts_our_rounds_and_leader_is_echoed() -> None:
    # Nomination starts on the first nomination heard, not only on propose_values.
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    out = h.recv(h.nominate("v1", voted=[Y]))
    assert out is not None and out.topic == Nominate(frozenset({Y}), frozenset())
    assert h.state()["round"] == 1 and h.node.next_timeout() == 2.0
    assert h.propose(X) is None  # still not our round to lead: x waits


def test_invalid_values_of_leader_are_not_echoed() -> None:
    h = core5(config=QUIET, slot=SLOT_V1_LEADS, validity_fn=lambda v: v != K)
    h.propose(X)
    assert h.recv(h.nominate("v1", voted=[K])) is None
    assert h.node.stats["msgs_invalid_value"] == 1
    assert h.state()["X"] == []


def test_own_invalid_values_are_not_nominated() -> None:
    h = core5(config=QUIET, slot=SLOT_V0_LEADS, validity_fn=lambda v: v != K)
    out = h.propose(K, X)
    assert out is not None and out.topic == Nominate(frozenset({X}), frozenset())


# -- accept and confirm --------------------------------------------------------------------------
def test_blocking_set_accepting_makes_us_accept() -> None:
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    h.propose(X)
    assert h.recv(h.nominate("v3", accepted=[Z])) is None
    out = h.recv(h.nominate("v4", accepted=[Z]))
    assert out is not None and out.topic == Nominate(frozenset(), frozenset({Z}))


def test_quorum_voting_makes_us_accept_only_with_our_vote() -> None:
    h = core5(config=QUIET, slot=SLOT_V0_LEADS)
    h.propose(X)  # we vote x
    for p in ["v1", "v2"]:
        assert h.recv(h.nominate(p, voted=[X, Y])) is None
    out = h.recv(h.nominate("v3", voted=[X, Y]))
    # x: v0 + 3 voters is a quorum; y: we never voted it (v1 is no leader of ours).
    assert out is not None and out.topic == Nominate(frozenset(), frozenset({X}))


def test_voted_and_accepted_are_disjoint() -> None:
    h = core5(config=QUIET, slot=SLOT_V0_LEADS)
    h.propose(X, Y)
    h.recv_from(["v1", "v2"], lambda s: h.nominate(s, accepted=[X]))
    nom = h.last_nomination()
    assert nom is not None and nom.voted == {Y} and nom.accepted == {X}


def test_quorum_accepting_confirms_candidate_and_starts_ballot() -> None:
    combined: list[list[bytes]] = []

    def combine(values: Sequence[bytes]) -> list[bytes]:
        combined.append(list(values))
        return [max(values)]

    h = core5(config=QUIET, slot=SLOT_V0_LEADS, combine_fn=combine)
    h.propose(X, Y)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.nominate(s, accepted=[X, Y]))
    assert h.state()["Z"] == sorted([X.hex(), Y.hex()])
    assert combined[-1] == [X, Y]  # candidates, sorted
    m = h.last()
    assert isinstance(m.topic, NominatePrepare)
    assert m.topic.prepare == Prepare(B(1), None, None, 0, 0)  # composite: max
    # With candidates, the round timer stops.
    assert h.node.next_timeout() == 1000.0


def test_no_new_votes_once_a_candidate_exists() -> None:
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    h.propose(X)
    h.recv_from(["v2", "v3", "v4"], lambda s: h.nominate(s, accepted=[X]))
    assert h.state()["Z"] == [X.hex()]
    h.recv(h.nominate("v1", voted=[Y]))  # our leader: would be echoed before a candidate
    assert Y.hex() not in h.state()["X"]
    # Accepting still goes on.
    h.recv_from(["v2", "v3"], lambda s: h.nominate(s, accepted=[X, Z]))
    assert Z.hex() in h.state()["Y"]


def test_nomination_stops_once_ballot_confirmed_prepared() -> None:
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    h.start_ballot(X)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(1), A(1)))
    assert isinstance(h.last().topic, Prepare)  # no more NOMINATE-PREPARE
    before = h.state()["Y"]
    h.recv_from(["v1", "v2", "v3", "v4"], lambda s: h.nominate(s, accepted=[X, Z]))
    assert h.state()["Y"] == before
    assert isinstance(h.last().topic, Prepare)
    assert sent_prepare(h.last()).h_n == 1


# -- staleness -------------------------------------------------------------------------------------
def N(voted: set[bytes], accepted: set[bytes]) -> Nominate:
    return Nominate(frozenset(voted), frozenset(accepted))


@pytest.mark.parametrize(
    ("old", "new", "newer"),
    [
        (None, N({X}, set()), True),
        (N({X}, set()), N({X}, set()), False),
        (N({X}, set()), N({X, Y}, set()), True),
        (N({X}, set()), N(set(), {X}), True),  # x moves from voted to accepted
        (N(set(), {X}), N({X}, set()), False),  # accepted never goes back
        (N({X, Y}, set()), N({X}, set()), False),
        (N({X}, set()), N({Y}, set()), False),  # not a superset
        (N({X}, {Y}), N({X, Z}, {Y}), True),
    ],
)
def test_is_newer_nominate(old: Nominate | None, new: Nominate, newer: bool) -> None:
    assert is_newer_nominate(old, new) is newer


def test_stale_nomination_is_ignored_and_counted() -> None:
    h = core5(config=QUIET, slot=SLOT_V1_LEADS)
    h.propose(X)
    h.recv(h.nominate("v1", voted=[X, Y]))
    assert h.recv(h.nominate("v1", voted=[X])) is None
    assert h.node.stats["msgs_stale"] == 1


# -- restart ---------------------------------------------------------------------------------------
def test_restored_nomination_keeps_running_rounds() -> None:
    qset = peers_qset("v0", CORE5, 4)
    t, clock = make_clock()
    saved = Msg("v0", SLOT_V1_LEADS, qset, Nominate(frozenset({X}), frozenset()))
    node = Node.from_saved("v0", qset, always_valid, max_combine, [saved], clock, config=QUIET)
    h = Harness(CORE5, 4, node=node, t=t, slot=SLOT_V1_LEADS)
    h.propose(X)
    assert h.state()["round"] >= 1 and leaders(h)
    nt = h.node.next_timeout()
    assert nt is not None and nt < 1000.0  # a nomination round timer, not just rebroadcast
    # ... and it echoes its round leader like a fresh node would.
    out = h.recv(h.nominate("v1", voted=[Y]))
    assert out is not None and Y in out.topic.voted  # type: ignore[union-attr]
    # It never drops what it voted before the restart.
    assert X in out.topic.voted  # type: ignore[union-attr]


def test_listing_ourselves_does_not_change_leaders() -> None:
    plain = QuorumSet(3, ["v1", "v2", "v3", "v4"])
    listed = QuorumSet(4, ["v0", "v1", "v2", "v3", "v4"])
    assert listed.normalized(remove="v0") == plain  # the same slices for v0
    for slot in range(1, 30):
        got = []
        for q in (plain, listed):
            _, clock = make_clock()
            node = Node("v0", q, always_valid, max_combine, slot, clock, config=QUIET)
            node.propose_values([X])
            state = node.slot_state(slot)
            assert state is not None
            got.append(state["leaders"])
        assert got[0] == got[1], f"slot {slot}"


def test_listing_ourselves_does_not_change_quorums_or_blocking() -> None:
    plain = QuorumSet(2, ["v1", QuorumSet(1, ["v2", "v3"])])
    listed = QuorumSet(3, ["v1", QuorumSet(2, ["v0", "v2", "v3"]), "v0"])
    assert listed.normalized(remove="v0") == plain
    peers = ["v1", "v2", "v3"]
    for r in range(len(peers) + 1):
        for combo in itertools.combinations(peers, r):
            s = frozenset(combo)
            assert plain.is_satisfied_by(s | {"v0"}) == listed.is_satisfied_by(s | {"v0"})
            assert plain.is_blocked_by(s) == listed.is_blocked_by(s)
