"""Ballot protocol, single node, in the style of stellar-core's TestSCP: node v0 of a "core5"
(QuorumSet(3, [v1..v4]): quorums are v0 and 3 peers, v-blocking sets are 2 peers) or a
"core3" (QuorumSet(1, [v1, v2])) hears hand-built statements from fake peers and we check
what it broadcasts. A = ballots on value x, B = ballots on y (x < y). The harness checks the
protocol invariants after every input (InvariantViolation would fail the test)."""

from __future__ import annotations

from collections.abc import Sequence

from mcnode.scp import (
    INFINITY,
    Ballot,
    Commit,
    Externalize,
    Msg,
    Node,
    NominatePrepare,
    Prepare,
    ScpConfig,
)
from mcnode.scp.msg import ballot_part
from scp_helpers import (
    A,
    B,
    Harness,
    X,
    Y,
    Z,
    always_valid,
    core3,
    core5,
    make_clock,
    max_combine,
    peers_qset,
    sent_prepare,
)

# Rebroadcasts would add a timer of their own; keep them out of the way unless tested.
QUIET = ScpConfig(rebroadcast_interval=1000.0)
CORE5 = ["v0", "v1", "v2", "v3", "v4"]


def started(value: bytes = X, config: ScpConfig = QUIET) -> Harness:
    h = core5(config=config)
    h.start_ballot(value)
    return h


def prepared_a1() -> Harness:
    """b = p = <1,x> (a quorum voted prepare <1,x>)."""
    h = started()
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(1)))
    assert sent_prepare(h.last_ballot()).prepared == A(1)
    return h


def confirmed_a1() -> Harness:
    """b = p = h = c = <1,x> (a quorum accepted prepare <1,x>)."""
    h = prepared_a1()
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(1), A(1)))
    assert h.last_ballot() == Prepare(A(1), A(1), None, 1, 1)
    return h


def committing_a1() -> Harness:
    """COMMIT phase on <1,x> (a quorum voted commit <1,x>)."""
    h = confirmed_a1()
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(1), A(1), None, 1, 1))
    assert h.last_ballot() == Commit(A(1), 1, 1, 1)
    return h


# -- starting ----------------------------------------------------------------------------------
def test_confirmed_nomination_starts_ballot_one() -> None:
    h = core5(config=QUIET)
    h.start_ballot(X)
    m = h.last()
    assert isinstance(m.topic, NominatePrepare)  # nomination still runs alongside PREPARE
    assert m.topic.accepted == frozenset({X})
    assert m.topic.prepare == Prepare(A(1), None, None, 0, 0)
    assert h.state()["phase"] == "PREPARE"


# -- accept prepared -------------------------------------------------------------------------
def test_one_peer_accepting_prepared_is_not_enough() -> None:
    h = started()
    assert h.recv(h.prepare("v1", A(1), A(1))) is None
    assert h.state()["p"] is None


def test_blocking_set_forces_accept_prepared() -> None:
    h = started()
    h.recv(h.prepare("v1", A(1), A(1)))
    out = h.recv(h.prepare("v2", A(1), A(1)))
    assert out is not None and sent_prepare(out) == Prepare(A(1), A(1), None, 0, 0)


def test_blocking_set_accepting_other_value_sets_p() -> None:
    h = started()
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, B(1), B(1)))
    # B1 > A1 (same counter, y > x): p = B1, and we keep our own ballot.
    assert sent_prepare(h.last_ballot()) == Prepare(A(1), B(1), None, 0, 0)


def test_quorum_of_votes_accepts_prepared() -> None:
    h = started()
    h.recv(h.prepare("v1", A(1)))
    assert h.recv(h.prepare("v2", A(1))) is None  # v0, v1, v2: three of five is no quorum
    out = h.recv(h.prepare("v3", A(1)))
    assert out is not None and sent_prepare(out).prepared == A(1)


def test_quorum_votes_at_higher_counters_count_for_lower_ballots() -> None:
    h = started()
    h.recv(h.prepare("v1", A(4)))  # prepare(<4,x>) votes prepare(<1,x>) too
    h.recv(h.prepare("v2", A(2)))
    assert sent_prepare(h.last_ballot()).prepared is None
    h.recv(h.prepare("v3", A(3)))
    assert sent_prepare(h.last_ballot()).prepared is not None


def test_quorum_votes_for_other_value_do_not_make_us_accept() -> None:
    # Our own statement must be in any quorum we count, and we voted for x.
    h = started()
    h.recv_from(["v1", "v2", "v3", "v4"], lambda s: h.prepare(s, B(1)))
    assert sent_prepare(h.last_ballot()).prepared is None


# -- conflicting prepared ballots: p and p' ------------------------------------------------------
def test_higher_incompatible_prepared_moves_p_to_p_prime() -> None:
    h = prepared_a1()
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, B(1), B(1)))
    st = sent_prepare(h.last_ballot())
    assert (st.prepared, st.prepared_prime) == (B(1), A(1))


def test_lower_incompatible_prepared_becomes_p_prime() -> None:
    h = started()
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, B(2), B(2)))
    assert sent_prepare(h.last_ballot()).prepared == B(2)
    h.recv_from(["v3", "v4"], lambda s: h.prepare(s, A(1), A(1)))
    st = sent_prepare(h.last_ballot())
    assert (st.prepared, st.prepared_prime) == (B(2), A(1))


def test_lower_compatible_prepared_changes_nothing() -> None:
    h = started()
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, B(3), B(3)))
    before = h.last_ballot()
    h.recv_from(["v3", "v4"], lambda s: h.prepare(s, B(2), B(2)))
    st = sent_prepare(h.last_ballot())
    assert (st.prepared, st.prepared_prime) == (B(3), None)
    assert st.prepared == sent_prepare(before).prepared


def test_p_prime_only_grows() -> None:
    h = started()
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, B(5), B(5), A(3)))
    st = sent_prepare(h.last_ballot())
    assert (st.prepared, st.prepared_prime) == (B(5), A(3))
    h.recv_from(["v3", "v4"], lambda s: h.prepare(s, A(2), A(2)))  # below p': useless
    st = sent_prepare(h.last_ballot())
    assert (st.prepared, st.prepared_prime) == (B(5), A(3))


def test_accepting_higher_incompatible_prepared_clears_commit_vote() -> None:
    h = confirmed_a1()
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, B(2), B(2)))
    st = sent_prepare(h.last_ballot())
    assert st.prepared == B(2) and st.prepared_prime == A(1)
    assert st.c_n == 0  # voting commit <1,x> would contradict accepting abort of it
    # The v-blocking set is at counter 2: we bump, staying on x (confirmed prepared).
    assert st.ballot == A(2) and st.h_n == 1


# -- confirm prepared --------------------------------------------------------------------------
def test_quorum_accepting_prepared_confirms_h_and_c() -> None:
    h = prepared_a1()
    h.recv(h.prepare("v1", A(1), A(1)))
    assert h.recv(h.prepare("v2", A(1), A(1))) is None
    out = h.recv(h.prepare("v3", A(1), A(1)))
    assert out is not None
    # Confirmed prepared: nomination stops, so a plain PREPARE goes out.
    assert out.topic == Prepare(A(1), A(1), None, 1, 1)
    assert h.state()["h"] == {"n": 1, "values": [X.hex()]}


def test_confirm_prepared_at_higher_counter_bumps_ballot() -> None:
    h = started()
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(3), A(3)))
    # v1, v2 are v-blocking: accept <3,x> and bump to counter 3; v3 makes the quorum that
    # confirms it: h = c = <3,x>.
    assert h.last_ballot() == Prepare(A(3), A(3), None, 3, 3)


def test_confirmed_prepared_on_other_value_sets_no_h_until_we_switch() -> None:
    h = started(Y)  # b = <1,y>
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(1), A(1)))
    st = sent_prepare(h.last_ballot())
    assert st.ballot == B(1) and st.prepared == A(1) and st.h_n == 0 and st.c_n == 0


# -- accept commit -------------------------------------------------------------------------------
def test_quorum_voting_commit_enters_commit_phase() -> None:
    h = confirmed_a1()
    h.recv(h.prepare("v1", A(1), A(1), None, 1, 1))
    assert h.recv(h.prepare("v2", A(1), A(1), None, 1, 1)) is None
    out = h.recv(h.prepare("v3", A(1), A(1), None, 1, 1))
    assert out is not None and out.topic == Commit(A(1), 1, 1, 1)
    assert h.state()["phase"] == "COMMIT"


def test_blocking_set_accepting_commit_enters_commit_phase() -> None:
    h = started()
    h.recv(h.commit("v1", A(1), 1, 1, 1))
    assert h.state()["phase"] == "PREPARE"
    out = h.recv(h.commit("v2", A(1), 1, 1, 1))
    assert out is not None and out.topic == Commit(A(1), 1, 1, 1)


def test_accept_commit_takes_the_widest_interval_from_blocking_set() -> None:
    h = started()
    h.recv_from(["v1", "v2"], lambda s: h.commit(s, A(4), 4, 2, 4))
    assert h.last_ballot() == Commit(A(4), 4, 2, 4)


def test_accept_commit_interval_from_quorum_votes() -> None:
    h = started()
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(2), A(2)))
    assert h.last_ballot() == Prepare(A(2), A(2), None, 2, 2)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(5), A(5), None, 3, 5))
    # We keep c = 2 and confirm h = 5: we vote commit 2..5, the peers 3..5; the widest
    # interval a quorum votes for is 3..5.
    assert h.last_ballot() == Commit(A(5), 5, 3, 5)


def test_no_commit_without_our_own_commit_vote() -> None:
    # A quorum of peers voting commit is not a quorum for us until we vote it too.
    h = prepared_a1()
    h.recv(h.prepare("v1", A(1), A(1), None, 1, 1))
    h.recv(h.prepare("v2", A(1), None, None, 0, 0))
    st = h.last_ballot()
    assert isinstance(st, Prepare)


def test_commit_phase_raises_h_with_more_accepted_commits() -> None:
    h = committing_a1()
    h.recv_from(["v1", "v2"], lambda s: h.commit(s, A(3), 3, 1, 3))
    assert h.last_ballot() == Commit(A(3), 3, 1, 3)


def test_commit_phase_ignores_other_values() -> None:
    h = committing_a1()
    h.recv_from(["v1", "v2", "v3", "v4"], lambda s: h.commit(s, B(5), 5, 5, 5))
    st = h.last_ballot()
    assert isinstance(st, Commit) and st.ballot.values == (X,)


def test_commit_phase_bump_keeps_committed_value() -> None:
    h = committing_a1()
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, B(3)))
    assert h.last_ballot() == Commit(A(3), 1, 1, 1)


# -- confirm commit: externalize -------------------------------------------------------------------
def test_quorum_accepting_commit_externalizes() -> None:
    h = committing_a1()
    h.recv(h.commit("v1", A(1), 1, 1, 1))
    assert h.recv(h.commit("v2", A(1), 1, 1, 1)) is None
    out = h.recv(h.commit("v3", A(1), 1, 1, 1))
    assert out is not None and out.topic == Externalize(A(1), 1)
    assert h.externalized == [(1, [X])]
    assert h.node.get_externalized_values(1) == [X]
    assert h.node.current_slot_index == 2
    assert h.state(1)["phase"] == "EXTERNALIZE"


def test_externalize_from_quorum_of_externalize_messages() -> None:
    h = core5(config=QUIET)  # never nominated anything
    assert h.recv(h.externalize("v1", A(2), 3)) is None
    out = h.recv(h.externalize("v2", A(2), 3))
    # v-blocking: accept commit <2..inf, x> (stellar-core: COMMIT AInf, prepared inf, c 2).
    assert out is not None and out.topic == Commit(Ballot(INFINITY, (X,)), INFINITY, 2, INFINITY)
    out = h.recv(h.externalize("v3", A(2), 3))
    assert out is not None and out.topic == Externalize(A(2), INFINITY)
    assert h.node.get_externalized_values(1) == [X]


def test_externalize_other_value_than_our_ballot() -> None:
    h = started(Y)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.externalize(s, A(1), 1))
    assert h.node.get_externalized_values(1) == [X]
    assert all(m.validate() is None for m in h.sent)


def test_externalize_after_commits_mixed_with_externalize() -> None:
    h = committing_a1()
    h.recv(h.externalize("v1", A(1), 1))
    h.recv(h.commit("v2", A(1), 1, 1, 1))
    out = h.recv(h.externalize("v3", A(1), 4))
    assert out is not None and isinstance(out.topic, Externalize)
    assert out.topic.commit.values == (X,)


# -- bumping to the counters of a blocking set -------------------------------------------------
def test_blocking_set_ahead_bumps_to_lowest_counter_no_longer_blocking() -> None:
    h = started()
    h.recv(h.prepare("v1", A(3)))
    assert sent_prepare(h.last_ballot()).ballot == A(1)  # one peer ahead is not enough
    h.recv(h.prepare("v2", A(5)))
    # Above 3 only v2 is left, which is not v-blocking: bump to 3, not 5.
    assert sent_prepare(h.last_ballot()).ballot == A(3)


def test_bump_follows_the_blocking_set_counter_by_counter() -> None:
    h = started()
    for peer, n in [("v1", 3), ("v2", 5), ("v3", 7), ("v4", 9)]:
        h.recv(h.prepare(peer, A(n)))
    assert sent_prepare(h.last_ballot()).ballot == A(7)


def test_bump_uses_composite_value_when_nothing_confirmed() -> None:
    h = started(Y)
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, A(4)))
    assert sent_prepare(h.last_ballot()).ballot == B(4)


def test_bump_is_capped_by_max_counter() -> None:
    h = started()
    h.recv_from(["v1", "v2", "v3", "v4"], lambda s: h.prepare(s, A(50_000)))
    assert sent_prepare(h.last_ballot()).ballot.n == QUIET.max_counter_base
    h.t[0] += 7
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, A(50_001)))
    assert sent_prepare(h.last_ballot()).ballot.n == QUIET.max_counter_base + 7


def test_only_externalized_peers_ahead_does_not_bump_to_infinity() -> None:
    h = started()
    h.recv_from(["v1", "v2"], lambda s: h.externalize(s, B(1), 1))
    # Accepting commit from the v-blocking set takes over instead of a bump to "infinity".
    st = h.last_ballot()
    assert isinstance(st, Commit) and st.ballot.values == (Y,)


# -- the ballot timer ----------------------------------------------------------------------------
def test_timer_armed_only_after_hearing_from_quorum_at_our_counter() -> None:
    h = started()
    h.t[0] = 10.0
    h.recv(h.prepare("v1", A(1)))
    h.recv(h.prepare("v2", A(1)))
    assert h.ballot_protocol().timer_at is None
    assert h.node.next_timeout() == 1000.0  # only the (quiet) rebroadcast
    h.recv(h.prepare("v3", A(1)))
    assert h.ballot_protocol().timer_at == 10.0 + QUIET.ballot_timeout_for(1) == 12.0
    assert h.node.next_timeout() == 12.0


def test_peers_below_our_counter_do_not_arm_the_timer() -> None:
    h = started()
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, A(3)))  # bump to 3
    h.recv(h.prepare("v3", A(2)))
    assert sent_prepare(h.last_ballot()).ballot == A(3)
    assert h.ballot_protocol().timer_at is None
    h.recv(h.prepare("v3", A(3)))
    assert h.ballot_protocol().timer_at == QUIET.ballot_timeout_for(3) == 4.0


def test_commit_statements_count_as_at_our_counter() -> None:
    h = committing_a1()
    # Only v1, v2 at counter 1: but committing peers are ahead of any counter.
    h2 = started()
    h2.recv_from(["v1", "v2"], lambda s: h2.commit(s, A(1), 1, 1, 1))
    h2.recv(h2.prepare("v3", A(1)))
    assert h2.ballot_protocol().timer_at is not None
    assert h.ballot_protocol().timer_at is not None


def test_timeout_without_h_bumps_counter_with_composite() -> None:
    h = started(Y)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, B(1)))
    assert h.advance(1.9) == []
    out = h.advance(0.1)
    assert len(out) == 1
    assert sent_prepare(out[0]) == Prepare(B(2), B(1), None, 0, 0)
    assert h.ballot_protocol().timer_at is None  # re-armed only once a quorum is at 2


def test_timeout_with_h_keeps_value_from_h() -> None:
    # Composite is y, but a quorum confirmed prepare(<1,x>): after a timeout we ballot on x.
    h = started(Y)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(1), A(1)))
    assert sent_prepare(h.last_ballot()).ballot == B(1)
    out = h.advance(2.0)
    assert len(out) == 1
    st = sent_prepare(out[0])
    assert st.ballot == A(2) and st.prepared == A(1) and st.h_n == 1
    # A further timeout (once a quorum is at 2) stays on x, h carried along.
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(2), A(1)))
    out = h.advance(QUIET.ballot_timeout_for(2))
    st = sent_prepare(out[-1])
    assert st.ballot == A(3) and st.h_n == 1


def test_timeout_in_commit_phase_keeps_commit() -> None:
    h = committing_a1()
    out = h.fire_at_next_timeout()
    assert out and out[-1].topic == Commit(A(2), 1, 1, 1)


def test_ballot_timeouts_follow_config() -> None:
    cfg = ScpConfig(ballot_timeout=0.5, ballot_timeout_increment=0.25, rebroadcast_interval=1000.0)
    h = started(config=cfg)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(1)))
    assert h.node.next_timeout() == 0.5
    h.advance(0.5)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(2)))
    assert h.node.next_timeout() == 0.5 + 0.75
    h.advance(0.75)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(3)))
    assert h.node.next_timeout() == 1.25 + 1.0


def test_no_ballot_timer_after_externalize() -> None:
    h = committing_a1()
    h.recv_from(["v1", "v2", "v3"], lambda s: h.commit(s, A(1), 1, 1, 1))
    assert h.node.current_slot_index == 2
    assert h.node.next_timeout() is None
    assert h.fire() == []


# -- restart: never vote against what we voted ----------------------------------------------------
def restored(saved_topic: object, slot: int = 1) -> Harness:
    qset = peers_qset("v0", CORE5, 4)
    t, clock = make_clock()
    saved = Msg("v0", slot, qset, saved_topic)  # type: ignore[arg-type]
    node = Node.from_saved("v0", qset, always_valid, max_combine, [saved], clock, config=QUIET)
    return Harness(CORE5, 4, node=node, t=t, slot=slot)


def sent_ballots(h: Harness) -> list[Prepare | Commit | Externalize]:
    out = []
    for m in h.sent:
        m.validate()
        bp = ballot_part(m.topic)
        if bp is not None:
            out.append(bp)
    return out


def test_restored_prepare_never_sends_lower_ballot() -> None:
    h = restored(Prepare(A(3), A(3), None, 0, 0))
    h.recv_from(["v1", "v2", "v3", "v4"], lambda s: h.prepare(s, A(1), A(1)))
    h.recv_from(["v1", "v2", "v3", "v4"], lambda s: h.prepare(s, B(2), B(2)))
    h.advance(5)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(3), A(3)))
    h.advance(5)
    sent = sent_ballots(h)
    assert sent, "the restored node said nothing"
    for st in sent:
        assert isinstance(st, Prepare) and st.ballot.n >= 3
    assert max(st.ballot.n for st in sent if isinstance(st, Prepare)) >= 4  # a timeout


def test_restored_commit_vote_is_never_contradicted() -> None:
    h = restored(Prepare(A(3), A(3), None, 3, 3))
    h.propose(Y)
    for p in h.peers:
        h.recv(h.nominate(p, accepted=[Y]))
    h.recv_from(["v1", "v2", "v3", "v4"], lambda s: h.prepare(s, B(5)))
    h.advance(10)
    sent = sent_ballots(h)
    assert sent
    for st in sent:
        assert isinstance(st, Prepare)
        assert st.ballot.values == (X,) and st.ballot.n >= 3
        assert st.c_n == 3 and st.h_n == 3
    assert sent[-1].ballot.n >= 5


def test_restored_commit_phase_stays_committed() -> None:
    h = restored(Commit(A(2), 2, 1, 2))
    assert h.state()["phase"] == "COMMIT"
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, B(9)))
    assert h.last_ballot() == Commit(A(9), 2, 1, 2)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.commit(s, A(2), 2, 1, 2))
    assert h.node.get_externalized_values(1) == [X]


def test_restored_externalize_moves_to_next_slot_and_answers_laggards() -> None:
    h = restored(Externalize(A(2), 2), slot=4)
    assert h.node.current_slot_index == 5
    assert h.node.get_externalized_values(4) == [X]
    out = h.recv(h.prepare("v1", B(1), slot=4))
    assert out is not None and out.slot_index == 4 and out.topic == Externalize(A(2), 2)


# -- core3 ---------------------------------------------------------------------------------------
def test_core3_one_peer_makes_a_quorum_both_are_blocking() -> None:
    h = core3(config=QUIET)
    h.start_ballot(X)
    h.recv(h.prepare("v1", A(1)))
    assert sent_prepare(h.last_ballot()).prepared == A(1)  # v0 + v1 is a quorum
    h.recv(h.prepare("v1", A(1), A(1)))
    assert h.last_ballot() == Prepare(A(1), A(1), None, 1, 1)
    h.recv(h.prepare("v1", A(1), A(1), None, 1, 1))
    assert h.last_ballot() == Commit(A(1), 1, 1, 1)
    h.recv(h.commit("v1", A(1), 1, 1, 1))
    assert h.node.get_externalized_values(1) == [X]


def test_core3_bump_needs_both_peers() -> None:
    h = core3(config=QUIET)
    h.start_ballot(X)
    h.recv(h.prepare("v1", A(4)))
    assert sent_prepare(h.last_ballot()).ballot == A(1)
    h.recv(h.prepare("v2", A(6)))
    assert sent_prepare(h.last_ballot()).ballot == A(4)


def test_core3_prepared_by_blocking_set_and_timeout_locked_on_h() -> None:
    h = core3(config=QUIET)
    h.start_ballot(Y)
    h.recv(h.prepare("v1", A(2), A(2)))
    assert sent_prepare(h.last_ballot()).prepared is None  # v1 alone is not blocking
    h.recv(h.prepare("v2", A(2), A(2)))
    st = sent_prepare(h.last_ballot())
    # Blocking set accepted <2,x> and is at counter 2; a quorum (v0+v1) confirms it: b -> <2,x>.
    assert st.prepared == A(2) and st.ballot == A(2) and st.h_n == 2
    out = h.fire_at_next_timeout()
    assert sent_prepare(out[-1]).ballot == A(3)


# -- late candidates: a ballot with nothing prepared is replaced ------------------------------
LATE = ScpConfig(rebroadcast_interval=1000.0, vote_own_values=True, late_candidates=True)


def union(values: Sequence[bytes]) -> list[bytes]:
    return sorted(values)


def first_ballot_on_x(config: ScpConfig) -> Harness:
    """We vote X and Y; every peer accepts X: X is the one candidate, PREPARE <1, X>."""
    h = core5(config=config, combine_fn=union)
    h.propose(X, Y)
    h.recv_from(h.peers, lambda s: h.nominate(s, accepted=[X]))
    assert sent_prepare(h.last()).ballot == Ballot(1, (X,))
    return h


def confirm(h: Harness, *values: bytes) -> None:
    h.recv_from(h.peers, lambda s: h.nominate(s, accepted=values))


def test_a_late_candidate_replaces_a_first_ballot_with_nothing_prepared() -> None:
    h = first_ballot_on_x(LATE)
    confirm(h, X, Y)
    assert sent_prepare(h.last()).ballot == Ballot(2, tuple(sorted([X, Y])))
    bumps = [e for e in h.state()["events"] if e["event"] == "bump"]
    assert [e["by"] for e in bumps] == ["nomination", "late candidate"]
    assert h.node.stats["ballot_bumps_late_candidate"] == 1


def test_each_late_candidate_moves_an_unprepared_ballot_to_the_next_counter() -> None:
    h = first_ballot_on_x(LATE)
    confirm(h, X, Y)
    confirm(h, X, Y, Z)
    assert sent_prepare(h.last()).ballot == Ballot(3, tuple(sorted([X, Y, Z])))
    assert h.node.stats["ballot_bumps_late_candidate"] == 2


def test_a_late_candidate_replaces_a_later_ballot_while_nothing_is_prepared() -> None:
    h = first_ballot_on_x(LATE)
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, Ballot(2, (Z,))))  # v-blocking, ahead
    assert sent_prepare(h.last()).ballot == Ballot(2, (X,))  # our composite, at counter 2
    assert sent_prepare(h.last()).prepared is None
    confirm(h, X, Y)
    assert sent_prepare(h.last()).ballot == Ballot(3, tuple(sorted([X, Y])))


def test_a_candidate_that_leaves_the_composite_as_it_is_moves_nothing() -> None:
    h = core5(config=LATE, combine_fn=lambda values: [min(values)])  # the composite: X alone
    h.propose(X, Y)
    h.recv_from(h.peers, lambda s: h.nominate(s, accepted=[X]))
    assert sent_prepare(h.last()).ballot == Ballot(1, (X,))
    confirm(h, X, Y)  # Y is a candidate too, but the composite is still (X,)
    assert sent_prepare(h.last()).ballot == Ballot(1, (X,))
    assert "ballot_bumps_late_candidate" not in h.node.stats


def test_a_late_candidate_leaves_a_ballot_with_something_prepared() -> None:
    h = first_ballot_on_x(LATE)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, Ballot(1, (X,))))
    assert sent_prepare(h.last()).prepared == Ballot(1, (X,))  # accepted prepared
    confirm(h, X, Y)
    assert sent_prepare(h.last()).ballot == Ballot(1, (X,))


def test_a_ballot_overtaken_by_a_value_confirmed_prepared_moves_on_at_once() -> None:
    # The split a late candidate can make: we moved to <2, XY> just before learning that
    # the others had <1, X> prepared. A quorum (v1-v3 and us) then confirms <1, X>
    # prepared, so the others vote only for X from now on; <2, XY> would sit until the
    # ballot timer. We move to <3, X> at once, with h = <1, X>.
    h = first_ballot_on_x(LATE)
    confirm(h, X, Y)
    assert sent_prepare(h.last()).ballot == Ballot(2, tuple(sorted([X, Y])))
    x1 = Ballot(1, (X,))
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, x1, p=x1))
    st = sent_prepare(h.last())
    assert (st.ballot, st.prepared, st.h_n) == (Ballot(3, (X,)), x1, 1)
    bumps = [e["by"] for e in h.state()["events"] if e["event"] == "bump"]
    assert bumps == ["nomination", "late candidate", "overridden"]
    assert h.node.stats["ballot_bumps_overridden"] == 1


def test_a_ballot_moves_on_for_a_value_confirmed_elsewhere_once_per_slot() -> None:
    # After that one move, another value confirmed prepared waits for the ballot timer
    # as in the draft: at 100 ms between nodes, two halves of a network otherwise swapped
    # values at every counter, each following the other's older confirmation.
    h = first_ballot_on_x(LATE)
    confirm(h, X, Y)
    x1 = Ballot(1, (X,))
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, x1, p=x1))
    assert sent_prepare(h.last()).ballot == Ballot(3, (X,))
    z2 = Ballot(2, (Z,))
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, z2, p=z2))
    st = sent_prepare(h.last())
    assert st.prepared == z2  # accepted, and a quorum confirms it...
    assert st.ballot == Ballot(3, (X,))  # ...but we stay until the timer
    assert h.node.stats["ballot_bumps_overridden"] == 1
    assert h.node._slot.ballot.value_override == (Z,)  # what the next bump takes


def test_a_second_move_is_taken_for_a_value_a_v_blocking_set_votes_to_commit() -> None:
    # The split the first move can make (a 1.5-s stall at 50 tx/s): we moved to <3, X>
    # while a v-blocking set moved the others to Z; they confirmed <2, Z> prepared and
    # vote to commit it, at our counter, so nothing moves us but the ballot timer. Once
    # a v-blocking set votes to commit Z, our quorums are headed there: move at once.
    h = first_ballot_on_x(LATE)
    confirm(h, X, Y)
    x1, z2 = Ballot(1, (X,)), Ballot(2, (Z,))
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, x1, p=x1))
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, z2, p=z2))
    assert sent_prepare(h.last()).ballot == Ballot(3, (X,))  # the once-per-slot wait
    z3 = Ballot(3, (Z,))
    h.recv_from(["v1"], lambda s: h.prepare(s, z3, p=z2, c_n=2, h_n=2))
    assert sent_prepare(h.last()).ballot == Ballot(3, (X,))  # one such peer: not enough
    h.recv_from(["v2"], lambda s: h.prepare(s, z3, p=z2, c_n=2, h_n=2))
    st = sent_prepare(h.last())
    assert (st.ballot, st.prepared) == (Ballot(4, (Z,)), z2)
    assert h.node.stats["ballot_bumps_overridden"] == 2


def test_without_late_candidates_the_first_ballot_stays() -> None:
    # The draft's rule (ScpConfig's default): only a timeout or a v-blocking set moves it.
    h = first_ballot_on_x(ScpConfig(rebroadcast_interval=1000.0, vote_own_values=True))
    confirm(h, X, Y)
    assert sent_prepare(h.last()).ballot == Ballot(1, (X,))


def test_ballot_bumps_are_counted_by_cause() -> None:
    # Node.stats: what the service exports as mcnode_scp_ballot_bumps_total{by}.
    h = first_ballot_on_x(LATE)
    assert not any(k.startswith("ballot_bumps") for k in h.node.stats)  # a start is no bump
    confirm(h, X, Y)  # late candidate: counter 2
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, Ballot(2, tuple(sorted([X, Y])))))
    h.fire_at_next_timeout()  # the ballot timer: counter 3
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, Ballot(5, tuple(sorted([X, Y])))))
    assert sent_prepare(h.last()).ballot.n == 5  # a v-blocking set ahead
    assert {k: v for k, v in h.node.stats.items() if k.startswith("ballot_bumps")} == {
        "ballot_bumps_late_candidate": 1,
        "ballot_bumps_timer": 1,
        "ballot_bumps_v-blocking": 1,
    }
