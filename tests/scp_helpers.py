"""Shared builders for the scp/ tests: values, hand-made peer messages and a single-node
harness in the style of stellar-core's TestSCP (one real node, fake peers, fake clock).

Peers never run code here: a test writes the statement a peer would send and feeds it to
the node under test, then checks what the node broadcasts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hypothesis import HealthCheck, settings

from mcnode.scp import (
    Ballot,
    Commit,
    Externalize,
    Msg,
    Node,
    Nominate,
    NominatePrepare,
    Prepare,
    QuorumSet,
    ScpConfig,
    Value,
)
from mcnode.scp.msg import BallotTopic, ballot_part, nomination_part

# Deterministic, modest hypothesis runs: the whole scp suite must stay well under a minute.
FAST = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Values are ordered by bytes: X < Y < Z (stellar-core's tests use the same ordering trick).
X: Value = b"x" * 8
Y: Value = b"y" * 8
Z: Value = b"z" * 8
K: Value = b"k" * 8  # the one value our validity functions reject


def ballot(n: int, *values: Value) -> Ballot:
    return Ballot(n, values or (X,))


def A(n: int) -> Ballot:
    return Ballot(n, (X,))


def B(n: int) -> Ballot:
    return Ballot(n, (Y,))


def peers_qset(me: str, nodes: Sequence[str], threshold: int) -> QuorumSet:
    """The quorum set a peer `me` of a symmetric network sends: threshold-1 of the others."""
    return QuorumSet(threshold - 1, [n for n in nodes if n != me])


def max_combine(values: Sequence[Value]) -> list[Value]:
    """Composite = the highest candidate (like stellar-core's test driver)."""
    return [max(values)] if values else []


def always_valid(v: Value) -> bool:
    return True


def make_clock(start: float = 0.0) -> tuple[list[float], Callable[[], float]]:
    t = [start]
    return t, lambda: t[0]


# -- messages ------------------------------------------------------------------------------------
def msg(sender: str, topic: Any, qset: QuorumSet, slot: int = 1) -> Msg:
    return Msg(sender, slot, qset, topic)


class Harness:
    """One node under test ("v0"), named fake peers with their quorum sets, a fake clock.

    Every call that feeds the node checks the ballot invariants afterwards and records what
    the node broadcast in `sent`."""

    def __init__(
        self,
        nodes: Sequence[str],
        threshold: int,
        *,
        me: str = "v0",
        validity_fn: Callable[[Value], bool] = always_valid,
        combine_fn: Callable[[Sequence[Value]], list[Value]] = max_combine,
        config: ScpConfig | None = None,
        validating: bool = True,
        slot: int = 1,
        node: Node | None = None,
        t: list[float] | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.me = me
        self.threshold = threshold
        self.qset = peers_qset(me, nodes, threshold)
        self.qsets = {n: peers_qset(n, nodes, threshold) for n in nodes}
        if t is None:
            t, clock = make_clock()
        else:
            tt = t

            def clock() -> float:
                return tt[0]

        self.t = t
        self.clock = clock
        self.externalized: list[tuple[int, list[Value]]] = []
        if node is None:
            node = Node(
                me,
                self.qset,
                validity_fn,
                combine_fn,
                slot,
                clock,
                config=config,
                validating=validating,
            )
        self.node = node
        self.slot = slot
        self.sent: list[Msg] = []

    @property
    def peers(self) -> list[str]:
        return [n for n in self.nodes if n != self.me]

    # -- building peer messages ---------------------------------------------------------------
    def m(self, sender: str, topic: Any, slot: int | None = None) -> Msg:
        return Msg(sender, self.slot if slot is None else slot, self.qsets[sender], topic)

    def prepare(
        self,
        sender: str,
        b: Ballot,
        p: Ballot | None = None,
        pp: Ballot | None = None,
        c_n: int = 0,
        h_n: int = 0,
        slot: int | None = None,
    ) -> Msg:
        return self.m(sender, Prepare(b, p, pp, c_n, h_n), slot)

    def commit(
        self, sender: str, b: Ballot, p_n: int, c_n: int, h_n: int, slot: int | None = None
    ) -> Msg:
        return self.m(sender, Commit(b, p_n, c_n, h_n), slot)

    def externalize(self, sender: str, c: Ballot, h_n: int, slot: int | None = None) -> Msg:
        return self.m(sender, Externalize(c, h_n), slot)

    def nominate(
        self,
        sender: str,
        voted: Iterable[Value] = (),
        accepted: Iterable[Value] = (),
        slot: int | None = None,
    ) -> Msg:
        return self.m(sender, Nominate(frozenset(voted), frozenset(accepted)), slot)

    # -- feeding the node ------------------------------------------------------------------------
    def check(self) -> None:
        """After every call into the node: invariants hold; drain its decisions."""
        self.node._slot.ballot.check_invariants()
        self.externalized.extend(
            (e.slot_index, list(e.values)) for e in self.node.take_externalized()
        )

    def recv(self, m: Msg) -> Msg | None:
        out = self.node.handle_message(m)
        self.check()
        if out is not None:
            self.sent.append(out)
        return out

    def recv_all(self, msgs: Iterable[Msg]) -> list[Msg]:
        outs = [self.recv(m) for m in msgs]
        return [o for o in outs if o is not None]

    def recv_from(self, senders: Iterable[str], gen: Callable[[str], Msg]) -> list[Msg]:
        return self.recv_all(gen(s) for s in senders)

    def propose(self, *values: Value) -> Msg | None:
        out = self.node.propose_values(values)
        self.check()
        if out is not None:
            self.sent.append(out)
        return out

    def advance(self, dt: float) -> list[Msg]:
        """Move the clock and fire what is due."""
        self.t[0] += dt
        return self.fire()

    def fire(self) -> list[Msg]:
        outs = self.node.process_timeouts()
        self.check()
        self.sent.extend(outs)
        return outs

    def fire_at_next_timeout(self) -> list[Msg]:
        nt = self.node.next_timeout()
        assert nt is not None
        self.t[0] = max(self.t[0], nt)
        return self.fire()

    # -- looking at the node --------------------------------------------------------------------
    def last(self) -> Msg:
        assert self.sent, "the node sent nothing"
        return self.sent[-1]

    def last_ballot(self) -> BallotTopic | None:
        """The ballot part of the node's last message (Prepare, Commit or Externalize)."""
        for m in reversed(self.sent):
            if m.slot_index == self.slot:
                bp = ballot_part(m.topic)
                if bp is not None:
                    return bp
        return None

    def last_nomination(self) -> Nominate | None:
        for m in reversed(self.sent):
            if m.slot_index == self.slot:
                np_ = nomination_part(m.topic)
                if np_ is not None:
                    return np_
        return None

    def state(self, slot: int | None = None) -> dict[str, Any]:
        s = self.node.slot_state(self.slot if slot is None else slot)
        assert s is not None
        return s

    def ballot_protocol(self) -> Any:
        return self.node._slot.ballot

    def start_ballot(self, value: Value = X) -> BallotTopic:
        """Get the node to PREPARE <1, value> the way it really happens: nominate `value`, a
        quorum of peers accepts it, it becomes a candidate and the composite starts a ballot.
        Peers' nomination messages say nothing about ballots, so later steps start clean."""
        self.propose(value)
        for p in self.peers:
            self.recv(self.nominate(p, accepted=[value]))
        bp = self.last_ballot()
        assert isinstance(bp, Prepare), f"expected a PREPARE, got {bp}"
        assert bp.ballot == Ballot(1, (value,))
        return bp


def core5(**kw: Any) -> Harness:
    """v0 with QuorumSet(3, [v1..v4]): quorums are 4 of 5 (with v0), v-blocking is 2 peers."""
    return Harness(["v0", "v1", "v2", "v3", "v4"], 4, **kw)


def core3(**kw: Any) -> Harness:
    """v0 with QuorumSet(1, [v1, v2]): quorums are 2 of 3 (with v0), v-blocking is 2 peers."""
    return Harness(["v0", "v1", "v2"], 2, **kw)


def sent_prepare(m: Msg | BallotTopic | None) -> Prepare:
    t = m.topic if isinstance(m, Msg) else m
    if isinstance(t, NominatePrepare):
        return t.prepare
    assert isinstance(t, Prepare), f"expected PREPARE, got {t}"
    return t
