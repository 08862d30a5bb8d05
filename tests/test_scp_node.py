"""`Node` across slots, from the outside: bad input never raises and is counted, the
validity function is asked once per value per slot, stale statements are ignored, laggards
get our EXTERNALIZE (rate-limited), future slots are buffered and replayed, a watcher sends
nothing but still externalizes, `slot_state` is JSON, settings are wired, and random
streams of sane peer messages never break an invariant."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcnode.scp import (
    Ballot,
    Commit,
    Externalize,
    Externalized,
    InvalidMsg,
    Msg,
    Node,
    Nominate,
    NominatePrepare,
    Prepare,
    QuorumSet,
    QuorumSetError,
    ScpConfig,
)
from mcnode.scp.msg import ballot_part
from scp_helpers import (
    FAST,
    A,
    B,
    Harness,
    K,
    X,
    Y,
    Z,
    always_valid,
    core5,
    max_combine,
)

QUIET = ScpConfig(rebroadcast_interval=1000.0)


def externalize_slot(h: Harness, value: bytes = X) -> None:
    """Peers externalize the harness's current slot on `value`; so do we."""
    slot = h.node.current_slot_index
    for p in ["v1", "v2", "v3"]:
        h.recv(h.externalize(p, Ballot(1, (value,)), 1, slot=slot))
    assert h.node.get_externalized_values(slot) == [value]


# -- construction ---------------------------------------------------------------------------------
def test_bad_construction_is_refused() -> None:
    with pytest.raises(QuorumSetError):
        Node("v0", QuorumSet(0, ["v1"]), always_valid, max_combine)
    with pytest.raises(QuorumSetError):
        Node("", QuorumSet(1, ["v1"]), always_valid, max_combine)
    with pytest.raises(ValueError):
        Node("v0", QuorumSet(1, ["v1"]), always_valid, max_combine, current_slot_index=0)
    with pytest.raises(ValueError):
        Node(
            "v0",
            QuorumSet(1, ["v1"]),
            always_valid,
            max_combine,
            config=ScpConfig(ballot_timeout=0),
        )


@pytest.mark.parametrize(
    "cfg",
    [
        ScpConfig(nomination_timeout=0),
        ScpConfig(ballot_timeout=-1),
        ScpConfig(nomination_timeout_increment=-0.1),
        ScpConfig(ballot_timeout_increment=-1),
        ScpConfig(max_slot_history=0),
        ScpConfig(max_future_slots=-1),
        ScpConfig(max_buffered_per_slot=0),
        ScpConfig(rebroadcast_interval=0),
        ScpConfig(max_counter_base=0),
    ],
)
def test_config_validation(cfg: ScpConfig) -> None:
    with pytest.raises(ValueError):
        cfg.validate()


def test_from_saved_needs_our_own_messages() -> None:
    q = QuorumSet(1, ["v1"])
    other = Msg("v1", 1, QuorumSet(1, ["v0"]), Prepare(A(1), None, None, 0, 0))
    with pytest.raises(ValueError):
        Node.from_saved("v0", q, always_valid, max_combine, [other])
    insane = Msg("v0", 1, q, Prepare(A(1), None, B(1), 0, 0))
    with pytest.raises(InvalidMsg):
        Node.from_saved("v0", q, always_valid, max_combine, [insane])


# -- hostile input --------------------------------------------------------------------------------
Q = QuorumSet(3, ["v0", "v2", "v3", "v4"])
GARBAGE: list[Any] = [
    None,
    "prepare",
    42,
    b"\x01\x02",
    Msg("v1", 1, Q, "topic"),  # type: ignore[arg-type]
    Msg("v1", 0, Q, Nominate(frozenset({X}), frozenset())),
    Msg("v1", 1, QuorumSet(9, ["v0"]), Nominate(frozenset({X}), frozenset())),
    Msg("v1", 1, Q, Prepare(A(0), None, None, 0, 0)),
    Msg("v1", 1, Q, Prepare(A(2), A(1), A(0), 0, 0)),
    Msg("v1", 1, Q, Commit(A(1), 1, 2, 1)),
    Msg("v1", 1, Q, Externalize(A(3), 1)),
    Msg("v1", 1, Q, Nominate(frozenset(), frozenset())),
    # wrongly typed fields, as a buggy or hostile transport might build them
    Msg(None, 1, Q, Nominate(frozenset({X}), frozenset())),  # type: ignore[arg-type]
    Msg("v1", "1", Q, Nominate(frozenset({X}), frozenset())),  # type: ignore[arg-type]
    Msg("v1", 1, None, Nominate(frozenset({X}), frozenset())),  # type: ignore[arg-type]
    Msg("v1", 1, Q, Nominate(None, frozenset())),  # type: ignore[arg-type]
    Msg("v1", 1, Q, Prepare(None, None, None, 0, 0)),  # type: ignore[arg-type]
    Msg("v1", 1, Q, Prepare(Ballot("1", (X,)), None, None, 0, 0)),  # type: ignore[arg-type]
    Msg("v1", 1, Q, Prepare(A(1), None, None, None, 0)),  # type: ignore[arg-type]
    Msg("v1", 1, Q, Commit(Ballot(2, X), 1, 1, 1)),  # type: ignore[arg-type]
    Msg("v1", 1, QuorumSet(1, [QuorumSet(1, [["v0"]])]), Externalize(A(1), 1)),  # type: ignore[list-item]
]


@pytest.mark.parametrize("bad", GARBAGE, ids=[f"garbage{i}" for i in range(len(GARBAGE))])
def test_garbage_is_counted_never_raises(bad: Any) -> None:
    h = core5(config=QUIET)
    h.start_ballot(X)
    before = h.state()
    assert h.node.handle_message(bad) is None
    assert h.node.stats["msgs_invalid"] == 1
    after = h.state()
    assert {k: v for k, v in after.items() if k != "events"} == {
        k: v for k, v in before.items() if k != "events"
    }


def test_own_messages_echoed_back_are_ignored() -> None:
    h = core5(config=QUIET)
    h.start_ballot(X)
    assert h.node.handle_message(h.last()) is None
    assert h.node.stats["msgs_from_self"] == 1


def test_invalid_values_drop_the_message_and_are_counted() -> None:
    h = core5(config=QUIET, validity_fn=lambda v: v != K)
    h.start_ballot(X)
    bad = [
        h.nominate("v1", voted=[K]),
        h.nominate("v2", voted=[X], accepted=[K]),
        h.prepare("v1", Ballot(1, (K,))),
        h.prepare("v2", A(2), Ballot(1, (X, K))),
        h.prepare("v3", A(3), A(2), Ballot(1, (K,))),
        h.commit("v1", Ballot(1, (K,)), 1, 1, 1),
        h.externalize("v2", Ballot(1, (K,)), 1),
        h.m("v3", NominatePrepare(frozenset({X}), frozenset(), Ballot(1, (K,)), None, None, 0, 0)),
    ]
    for m in bad:
        assert h.recv(m) is None
    assert h.node.stats["msgs_invalid_value"] == len(bad)
    assert h.node.stats["msgs_processed"] == 4  # only the nominations that started the ballot
    # Those peers' statements were not recorded: their valid ones still count as new.
    assert h.recv(h.prepare("v1", A(1), A(1))) is None
    assert h.node.stats["msgs_processed"] == 5


def test_validity_fn_called_once_per_valid_value_per_slot() -> None:
    calls: Counter[bytes] = Counter()

    def valid(v: bytes) -> bool:
        calls[v] += 1
        return v != K

    h = core5(config=QUIET, validity_fn=valid, slot=5)
    h.propose(X, Y, K)
    for p in h.peers:
        h.recv(h.nominate(p, voted=[Y], accepted=[X]))
        h.recv(h.nominate(p, voted=[Y, K], accepted=[X]))
        h.recv(h.prepare(p, A(1), A(1)))
        h.recv(h.prepare(p, Ballot(2, (Z, Y)), A(1)))
    h.fire_at_next_timeout()
    assert {v: calls[v] for v in (X, Y, Z)} == {X: 1, Y: 1, Z: 1}
    assert calls[K] > 1  # a "no" is asked again: the value's data may still arrive
    externalize_slot(h, X)
    assert calls[X] == 1
    h.slot = 6
    h.propose(X)
    h.recv(h.nominate("v1", voted=[X]))
    h.recv(h.prepare("v2", A(1)))
    assert calls[X] == 2  # a new slot asks again, once


def test_a_value_that_turns_valid_within_the_slot_is_accepted_from_then_on() -> None:
    """A validator that lacks a tx its peers nominate drops their messages until the tx
    arrives; after that the same statements count (no remembered "no")."""
    have: set[bytes] = set()
    h = core5(config=QUIET, validity_fn=lambda v: v in have)
    assert h.recv(h.nominate("v1", voted=[X])) is None
    assert h.node.stats["msgs_invalid_value"] == 1
    have.add(X)  # the tx arrived (relayed or fetched)
    h.recv(h.nominate("v1", voted=[X]))
    assert h.node.stats["msgs_invalid_value"] == 1
    assert h.node.stats["msgs_processed"] >= 1


def test_validity_fn_that_raises_counts_as_invalid() -> None:
    def valid(v: bytes) -> bool:
        if v == K:
            raise RuntimeError("application bug")
        return True

    h = core5(config=QUIET, validity_fn=valid)
    assert h.recv(h.nominate("v1", voted=[K])) is None
    assert h.node.stats["msgs_invalid_value"] == 1


# -- stale statements -----------------------------------------------------------------------------
def test_stale_ballot_statements_are_ignored() -> None:
    h = core5(config=QUIET)
    h.start_ballot(X)
    h.recv(h.prepare("v1", A(3), A(2)))
    stale0 = h.node.stats["msgs_stale"]
    for old in [
        h.prepare("v1", A(3), A(2)),  # the same again
        h.prepare("v1", A(2), A(2)),  # lower ballot
        h.prepare("v1", A(3), A(1)),  # same ballot, lower p
    ]:
        assert h.recv(old) is None
    assert h.node.stats["msgs_stale"] == stale0 + 3
    h.recv(h.commit("v1", A(3), 3, 1, 3))
    assert h.recv(h.prepare("v1", A(9), A(9))) is None  # PREPARE after COMMIT is old news
    h.recv(h.externalize("v1", A(3), 3))
    assert h.recv(h.commit("v1", A(4), 4, 1, 4)) is None
    assert h.recv(h.externalize("v1", A(3), 4)) is None  # EXTERNALIZE never changes
    assert h.node.stats["msgs_stale"] == stale0 + 6


# -- other slots ----------------------------------------------------------------------------------
def test_past_slot_messages_answered_with_our_externalize_rate_limited() -> None:
    h = core5()  # default: rebroadcast interval = ballot timeout = 2 s
    h.start_ballot(X)
    externalize_slot(h)
    ours = h.node.latest_msg(1)
    assert ours is not None and isinstance(ours.topic, Externalize)
    # Within a quarter interval of our EXTERNALIZE leaving, a statement crossed it in flight.
    assert h.recv(h.prepare("v4", A(1), slot=1)) is None
    assert h.node.stats["laggards_in_flight"] == 1
    h.t[0] += 0.5
    out = h.recv(h.prepare("v4", A(1), slot=1))
    assert out == ours
    assert h.recv(h.prepare("v4", A(2), slot=1)) is None  # answered a moment ago
    assert h.recv(h.prepare("v2", A(5), slot=1)) == ours  # another laggard
    h.t[0] += 2.0
    assert h.recv(h.prepare("v4", A(3), slot=1)) == ours
    assert h.recv(h.externalize("v4", A(1), 1, slot=1)) is None  # it is done: no answer
    assert h.node.stats["laggards_answered"] == 3


def test_too_old_slots_are_dropped() -> None:
    h = core5(config=ScpConfig(max_slot_history=2, rebroadcast_interval=1000.0))
    for _ in range(4):
        externalize_slot(h)
    assert h.node.current_slot_index == 5
    assert h.node.get_externalized_values(2) is None
    assert h.node.get_externalized_values(4) == [X]
    assert h.node.slot_state(2) is None
    assert h.recv(h.prepare("v4", A(1), slot=2)) is None
    assert h.node.stats["msgs_too_old"] == 1
    h.t[0] += 250.0  # past the in-flight grace (a quarter of the rebroadcast interval)
    assert h.recv(h.prepare("v4", A(1), slot=4)) is not None


def test_future_slot_messages_are_buffered_and_replayed() -> None:
    h = core5(config=QUIET)
    for p in ["v1", "v2", "v3"]:
        assert h.recv(h.externalize(p, B(1), 1, slot=2)) is None
    assert h.node.stats["msgs_future_buffered"] == 3
    assert h.node.current_slot_index == 1
    externalize_slot(h, X)
    assert h.node.current_slot_index == 2
    assert h.node.next_timeout() == h.t[0]  # replay is due now
    out = h.fire()
    assert h.node.get_externalized_values(2) == [Y]
    assert h.node.current_slot_index == 3
    assert any(m.slot_index == 2 and isinstance(m.topic, Externalize) for m in out)


def test_far_future_messages_dropped_and_buffer_bounded() -> None:
    cfg = ScpConfig(max_future_slots=2, max_buffered_per_slot=3, rebroadcast_interval=1000.0)
    h = core5(config=cfg)
    assert h.recv(h.prepare("v1", A(1), slot=4)) is None
    assert h.node.stats["msgs_too_far_ahead"] == 1
    for n in range(1, 6):
        h.recv(h.prepare("v1", A(n), slot=3))
    assert h.node.stats["msgs_future_buffered"] == 5
    assert h.node.stats["msgs_future_evicted"] == 2


def test_handle_message_returns_externalize_and_moves_on() -> None:
    h = core5(config=QUIET)
    h.recv(h.externalize("v1", A(1), 1))
    h.recv(h.externalize("v2", A(1), 1))
    assert h.externalized == []
    out = h.node.handle_message(h.externalize("v3", A(1), 1))
    assert out is not None and out.slot_index == 1 and isinstance(out.topic, Externalize)
    # The decision is an event the caller drains after the call, exactly once.
    assert h.node.take_externalized() == [Externalized(1, (X,))]
    assert h.node.take_externalized() == []
    assert h.node.current_slot_index == 2
    assert h.node.slot_state(2)["phase"] == "NOMINATE"  # type: ignore[index]


def test_no_application_code_runs_inside_a_protocol_call() -> None:
    """The application's work on a decision (forming a block, writing it) happens after
    the call returns: nothing it raises can pass through the protocol core."""
    h = core5(config=QUIET)
    for v in ("v1", "v2", "v3"):
        h.node.handle_message(h.externalize(v, A(1), 1))
    decided = h.node.take_externalized()
    assert [d.slot_index for d in decided] == [1]
    # A restart from a saved EXTERNALIZE does not report that slot again.
    saved = h.node.latest_msg(1)
    assert saved is not None
    again = Node.from_saved("v0", h.qset, lambda v: True, lambda vs: sorted(vs), [saved], h.clock)
    assert again.current_slot_index == 2 and again.take_externalized() == []


def test_trace_names_the_quorum_or_v_blocking_set_of_each_step() -> None:
    h = core5(config=QUIET)
    h.node = Node(
        "v0",
        h.qset,
        lambda v: True,
        lambda vs: sorted(vs),
        1,
        h.clock,
        config=QUIET,
        keep_trace=True,
    )
    for v in ("v1", "v2", "v3"):
        h.node.handle_message(h.externalize(v, A(1), 1))
    trace = h.node.take_trace()
    assert h.node.take_trace() == []  # drained
    assert all(r["slot"] == 1 and "t" in r for r in trace)
    events = {r["event"]: r for r in trace}
    # Three EXTERNALIZEs of five are v-blocking for a threshold-4 set: we accept commit
    # because of them, then confirm it with the quorum they form with us.
    assert events["accept commit"]["by"] == "v-blocking"
    assert set(events["accept commit"]["nodes"]) <= {"v1", "v2", "v3"}
    assert events["confirm commit"]["by"] == "quorum"
    assert set(events["confirm commit"]["nodes"]) == {"v0", "v1", "v2", "v3"}
    assert events["confirm commit"]["phase"] == "EXTERNALIZE"
    json.dumps(trace)  # JSON lines as they are


# -- watcher --------------------------------------------------------------------------------------
def test_watcher_sends_nothing_but_externalizes() -> None:
    h = core5(config=ScpConfig(), validating=False)
    assert h.propose(X) is None
    for p in h.peers:
        assert h.recv(h.nominate(p, accepted=[X])) is None
    assert h.state()["b"] == {"n": 1, "values": [X.hex()]}  # it follows, silently
    for p in ["v1", "v2", "v3"]:
        assert h.recv(h.prepare(p, A(1), A(1), None, 1, 1)) is None
    assert h.state()["phase"] == "COMMIT"
    assert h.advance(10.0) == []  # timers and rebroadcasts: silent
    for p in ["v1", "v2", "v3"]:
        assert h.recv(h.commit(p, A(1), 1, 1, 1)) is None
    assert h.node.get_externalized_values(1) == [X]
    assert h.recv(h.prepare("v4", A(1), slot=1)) is None  # no answers to laggards either
    assert h.sent == [] and h.node.stats["msgs_sent"] == 0


# -- rebroadcast ----------------------------------------------------------------------------------
def test_rebroadcast_of_unchanged_message_follows_config() -> None:
    h = core5(config=ScpConfig(rebroadcast_interval=0.7, nomination_timeout=100.0))
    h.start_ballot(X)
    last = h.last()
    assert h.node.next_timeout() == pytest.approx(0.7)
    assert h.advance(0.6) == []
    assert h.advance(0.1) == [last]
    assert h.node.stats["rebroadcasts"] == 1
    assert h.node.next_timeout() == pytest.approx(1.4)


# -- slot_state -----------------------------------------------------------------------------------
def test_slot_state_is_json_with_the_protocol_variables() -> None:
    h = core5(config=QUIET)
    assert json.loads(json.dumps(h.state()))["phase"] == "NOMINATE"
    h.start_ballot(X)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.prepare(s, A(2), A(2), B(1)))
    s = h.state()
    again = json.loads(json.dumps(s))
    for key in (
        "phase",
        "b",
        "p",
        "p_prime",
        "h",
        "c",
        "X",
        "Y",
        "Z",
        "round",
        "leaders",
        "latest",
    ):
        assert key in again
    assert again["b"] == {"n": 2, "values": [X.hex()]}
    assert again["p_prime"] == {"n": 1, "values": [Y.hex()]}
    assert again["Y"] == [X.hex()] and again["Z"] == [X.hex()]
    assert set(again["latest"]) == {"v0", "v1", "v2", "v3", "v4"}
    assert again["latest"]["v1"]["ballot"]["type"] == "Prepare"
    externalize_slot(h)
    done = json.loads(json.dumps(h.state(1)))
    assert done["phase"] == "EXTERNALIZE" and done["externalized"] == [X.hex()]
    assert h.node.slot_state(99) is None


# -- determinism ----------------------------------------------------------------------------------
def run_script(h: Harness) -> list[bytes]:
    h.start_ballot(Y)
    h.recv_from(["v1", "v2"], lambda s: h.prepare(s, A(2), A(2)))
    h.advance(3.0)
    h.recv_from(["v3", "v4"], lambda s: h.prepare(s, A(3), A(3), None, 2, 3))
    h.advance(5.0)
    h.recv_from(["v1", "v2", "v3"], lambda s: h.commit(s, A(3), 3, 2, 3))
    return [m.to_bytes() for m in h.sent]


def test_same_inputs_same_bytes() -> None:
    a = run_script(core5(config=QUIET))
    b = run_script(core5(config=QUIET))
    assert a == b and a


# -- random streams of sane peer messages ---------------------------------------------------------
PEERS = ["v1", "v2", "v3", "v4"]
VALS = st.sampled_from([(X,), (Y,), (X, Y)])


@st.composite
def peer_ballot(draw: st.DrawFn) -> Ballot:
    return Ballot(draw(st.integers(1, 5)), draw(VALS))


@st.composite
def sane_topic(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["nom", "prep", "prep", "prep", "commit", "ext"]))
    if kind == "nom":
        voted = draw(st.frozensets(st.sampled_from([X, Y]), max_size=2))
        accepted = draw(st.frozensets(st.sampled_from([X, Y]), max_size=2)) - voted
        if not voted and not accepted:
            voted = frozenset({X})
        return Nominate(voted, accepted)
    b = draw(peer_ballot())
    if kind == "prep":
        p = draw(st.none() | st.builds(Ballot, st.integers(0, b.n), VALS))
        pp = None
        if p is not None and draw(st.booleans()):
            cand = Ballot(draw(st.integers(0, p.n)), draw(VALS))
            if cand < p and cand.values != p.values:
                pp = cand
        h_n = 0
        c_n = 0
        if p is not None and p.values == b.values and draw(st.booleans()):
            h_n = draw(st.integers(1, min(p.n, b.n))) if p.n >= 1 else 0
            if h_n and draw(st.booleans()):
                c_n = draw(st.integers(1, h_n))
        return Prepare(b, p, pp, c_n, h_n)
    if kind == "commit":
        h_n = draw(st.integers(1, b.n))
        c_n = draw(st.integers(1, h_n))
        return Commit(b, draw(st.integers(h_n, 6)), c_n, h_n)
    h_n = draw(st.integers(b.n, 6))
    return Externalize(b, h_n)


events = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(PEERS), sane_topic()),
        st.tuples(st.just("tick"), st.floats(0.1, 5.0)),
        st.tuples(st.just("propose"), st.sampled_from([X, Y])),
        st.tuples(st.just("restart"), st.none()),
    ),
    min_size=1,
    max_size=40,
)


@FAST
@given(events)
def test_random_sane_streams_keep_invariants(evs: list[tuple[str, Any]]) -> None:
    h = core5(config=QUIET)
    last_b: dict[int, Ballot] = {}
    committed: dict[int, tuple[bytes, ...]] = {}
    for who, what in evs:
        slot = h.node.current_slot_index
        h.slot = slot
        if who == "tick":
            h.advance(what)
        elif who == "propose":
            h.propose(what)
        elif who == "restart":  # crash and come back from our last sent message
            saved = h.node.latest_msg()
            if saved is not None:
                h.node = Node.from_saved(
                    "v0", h.qset, always_valid, max_combine, [saved], h.clock, config=QUIET
                )
        else:
            m = h.m(who, what, slot=slot)
            m.validate()
            h.recv(m)
    for m in h.sent:
        m.validate()  # never an insane message from us
        bp = ballot_part(m.topic)
        if bp is None:
            continue
        if isinstance(bp, Externalize):
            assert h.node.get_externalized_values(m.slot_index) == list(bp.commit.values)
            continue
        prev = last_b.get(m.slot_index)
        # Our ballot never goes down, except when accepting commit moves b to h (stellar-core:
        # bumpToBallot(h, check=false) in setAcceptCommit).
        entering_commit = isinstance(bp, Commit) and m.slot_index not in committed
        assert prev is None or entering_commit or prev <= bp.ballot
        last_b[m.slot_index] = bp.ballot
        if isinstance(bp, Commit):
            x = committed.setdefault(m.slot_index, bp.ballot.values)
            assert bp.ballot.values == x  # in COMMIT the value never changes
        else:
            assert m.slot_index not in committed  # COMMIT never goes back to PREPARE
