"""One slot of SCP: the shared context of its nomination and ballot protocols.

Rules of this file: it owns what both protocols need (quorum predicates with caches, the
validity cache, peers' quorum sets, the clock, the trace) and turns their statements into
our one outgoing message per change. It does not know about other slots.

The trace is a list of plain dicts, one per step that changed our state, each naming the
set of nodes that moved it (`by`: "quorum" or "v-blocking", `nodes`), so that a reader can
follow a slot and see why each phase moved (the schema is in the README). Recording it
costs nothing on the message path: steps that change state are a handful per slot.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from mcnode.scp.ballot import CONFIRM, EXTERNALIZE, BallotProtocol
from mcnode.scp.config import ScpConfig
from mcnode.scp.msg import (
    Ballot,
    Msg,
    Nominate,
    NominatePrepare,
    Prepare,
    Topic,
    Value,
    ballot_part,
    nomination_part,
)
from mcnode.scp.nomination import Nomination
from mcnode.scp.predicates import greatest_quorum
from mcnode.scp.quorum_set import NodeID, QuorumSet

TRACE_LIMIT = 200
_MISSING = object()


class Slot:
    def __init__(
        self,
        index: int,
        node_id: NodeID,
        qset: QuorumSet,
        validity_fn: Callable[[Value], bool],
        combine_fn: Callable[[Sequence[Value]], list[Value]],
        clock: Callable[[], float],
        config: ScpConfig,
        on_externalize: Callable[[Slot], None],
        trace_sink: list[dict[str, Any]] | None = None,
        stats: Counter[str] | None = None,
    ) -> None:
        self.index = index
        self.node_id = node_id
        self.qset = qset
        self._validity_fn = validity_fn
        self._combine_fn = combine_fn
        self._clock = clock
        self.config = config
        self._on_externalize = on_externalize
        self.started_at = clock()
        self.qsets: dict[NodeID, QuorumSet] = {node_id: qset}
        # Nomination weights use our set with ourselves taken out (we are implicit in it).
        self.peer_qset = qset.normalized(remove=node_id)
        self._valid_set: set[Value] = set()  # the values found valid (kept for the slot)
        self._quorum_cache: dict[frozenset[NodeID], frozenset[NodeID] | None] = {}
        self._blocking_cache: dict[frozenset[NodeID], bool] = {}
        self.nomination = Nomination(self)
        self.ballot = BallotProtocol(self)
        self.last_sent: Msg | None = None
        self.last_sent_at: float | None = None
        self.answered: dict[NodeID, float] = {}  # laggards told our EXTERNALIZE, and when
        self.emitted_at: float | None = None  # our last new statement left (not restored)
        self.events: deque[dict[str, Any]] = deque(maxlen=TRACE_LIMIT)
        self._trace_sink = trace_sink
        # The node's counters: this slot adds its ballot bumps (by cause) and nomination
        # timeouts, which say whether timeouts suit the network's round trips.
        self._stats: Counter[str] = stats if stats is not None else Counter()

    # -- context for the protocols --------------------------------------------------------
    def now(self) -> float:
        return self._clock()

    def max_counter(self) -> int:
        return self.config.max_counter_base + int(max(0.0, self.now() - self.started_at))

    def is_valid(self, v: Value) -> bool:
        """The application's validity function. A yes is kept for the slot (asked once);
        a no is asked again next time: a value can turn valid within a slot when the data
        behind it arrives (a validator that has not yet received a tx its peers nominate),
        and a node that remembered the no would drop every later message naming the value
        and sit out the slot until catch-up."""
        if v in self._valid_set:
            return True
        try:
            ok = bool(self._validity_fn(v))
        except Exception:  # an application bug must not take consensus down
            ok = False
        if ok:
            self._valid_set.add(v)
        return ok

    def all_valid(self, values: frozenset[Value] | tuple[Value, ...]) -> bool:
        if self._valid_set.issuperset(values):
            return True
        return all(self.is_valid(v) for v in values)

    def combine(self, values: list[Value]) -> tuple[Value, ...]:
        out = list(self._combine_fn(values))
        seen: set[Value] = set()
        unique = [v for v in out if not (v in seen or seen.add(v))]  # type: ignore[func-returns-value]
        return tuple(unique)

    def quorum(self, nodes: frozenset[NodeID]) -> frozenset[NodeID] | None:
        """The greatest quorum including us inside `nodes`, or None. Truthy exactly when
        `nodes` holds a quorum; the set itself is what the trace names."""
        r = self._quorum_cache.get(nodes, _MISSING)
        if r is _MISSING:
            r = greatest_quorum(self.node_id, self.qset, self.qsets, set(nodes))
            self._quorum_cache[nodes] = r
        return r  # type: ignore[return-value]

    def v_blocking(self, nodes: frozenset[NodeID]) -> bool:
        r = self._blocking_cache.get(nodes)
        if r is None:
            r = self.qset.is_blocked_by(nodes)
            self._blocking_cache[nodes] = r
        return r

    def trace(self, event: str, **fields: Any) -> None:
        """Record one step: `event` names it, fields say what changed and who moved it."""
        rec: dict[str, Any] = {
            "slot": self.index,
            "t": round(self.now() - self.started_at, 6),
            "event": event,
        }
        for k, v in fields.items():
            if isinstance(v, Ballot):
                v = ballot_json(v)
            elif isinstance(v, frozenset | set):
                v = sorted(v)
            rec[k] = v
        self.events.append(rec)
        if self._trace_sink is not None:
            self._trace_sink.append(rec)
        if event == "bump" and rec.get("by") != "nomination":
            self._stats[f"ballot_bumps_{str(rec.get('by')).replace(' ', '_')}"] += 1
        elif event == "nomination timeout":
            self._stats["nomination_timeouts"] += 1

    def on_externalized(self, values: tuple[Value, ...]) -> None:
        self.nomination.stop()
        self._on_externalize(self)

    # -- inputs ----------------------------------------------------------------------------
    def propose(self, values: set[Value]) -> None:
        self.nomination.propose(values)

    def handle(self, msg: Msg) -> bool:
        """Apply a validated peer message; False if it was stale (nothing new)."""
        sender = msg.sender_id
        old_q = self.qsets.get(sender)
        if old_q != msg.quorum_set:
            self.qsets[sender] = msg.quorum_set
            self._quorum_cache.clear()
        nom = nomination_part(msg.topic)
        bal = ballot_part(msg.topic)
        used = False
        if nom is not None:
            used |= self.nomination.handle(sender, nom)
        if bal is not None:
            used |= self.ballot.handle(sender, bal)
        return used

    def on_timers(self) -> None:
        now = self.now()
        nt = self.nomination.timer_at
        if nt is not None and nt <= now:
            self.nomination.on_timeout()
        bt = self.ballot.timer_at
        if bt is not None and bt <= now:
            self.ballot.on_timeout()

    def next_timer(self) -> float | None:
        ts = [t for t in (self.nomination.timer_at, self.ballot.timer_at) if t is not None]
        if self.last_sent_at is not None and self.ballot.phase != EXTERNALIZE:
            ts.append(self.last_sent_at + self.config.rebroadcast_after())
        return min(ts) if ts else None

    # -- output ----------------------------------------------------------------------------
    def current_topic(self) -> Topic | None:
        bal = self.ballot.statement()
        nom = self.nomination.statement()
        if bal is None:
            return nom
        if isinstance(bal, Prepare) and nom is not None and not self.nomination.stopped:
            return NominatePrepare(
                nom.voted,
                nom.accepted,
                bal.ballot,
                bal.prepared,
                bal.prepared_prime,
                bal.c_n,
                bal.h_n,
            )
        return bal

    def current_msg(self) -> Msg | None:
        topic = self.current_topic()
        if topic is None:
            return None
        return Msg(self.node_id, self.index, self.qset, topic)

    def take_emission(self, validating: bool) -> Msg | None:
        """Our message if it changed since we last sent it (only validators send)."""
        msg = self.current_msg()
        if msg is None or msg == self.last_sent:
            return None
        self.last_sent = msg
        self.last_sent_at = self.emitted_at = self.now()
        return msg if validating else None

    def take_rebroadcast(self, validating: bool) -> Msg | None:
        """Our unchanged message again, when the slot has stalled for a while."""
        if self.last_sent is None or self.last_sent_at is None:
            return None
        if self.now() < self.last_sent_at + self.config.rebroadcast_after():
            return None
        self.last_sent_at = self.now()
        return self.last_sent if validating else None

    # -- restart -----------------------------------------------------------------------------
    def restore(self, msg: Msg) -> None:
        """Rebuild our votes from our own last message, so we never contradict them."""
        nom = nomination_part(msg.topic)
        if isinstance(nom, Nominate):
            self.nomination.voted = set(nom.voted)
            self.nomination.accepted = set(nom.accepted)
            self.nomination._record_self()
        bal = ballot_part(msg.topic)
        if bal is not None:
            self.ballot.restore(bal)
            if self.ballot.h is not None or self.ballot.phase in (CONFIRM, EXTERNALIZE):
                self.nomination.stop()
        if not self.nomination.stopped and not self.nomination.started:
            # Resume nomination from round 1 with our old votes kept (they only grow).
            self.nomination.restart()
        self.last_sent = msg
        self.last_sent_at = self.now()

    # -- debug view --------------------------------------------------------------------------
    def phase(self) -> str:
        b = self.ballot
        return b.phase if (b.b is not None or b.phase != "PREPARE") else "NOMINATE"

    def snapshot(self) -> dict[str, Any]:
        b = self.ballot
        n = self.nomination

        def bj(x: Ballot | None) -> dict[str, Any] | None:
            return None if x is None else {"n": x.n, "values": [v.hex() for v in x.values]}

        phase = self.phase()
        latest: dict[str, Any] = {}
        for node in sorted(set(n.latest) | set(b.latest)):
            entry: dict[str, Any] = {}
            if node in n.latest:
                st = n.latest[node]
                entry["nominate"] = {"voted": len(st.voted), "accepted": len(st.accepted)}
            if node in b.latest:
                entry["ballot"] = _statement_json(b.latest[node])
            latest[node] = entry
        return {
            "slot": self.index,
            "phase": phase,
            "b": bj(b.b),
            "p": bj(b.p),
            "p_prime": bj(b.pp),
            "h": bj(b.h),
            "c": bj(b.c),
            "X": sorted(v.hex() for v in n.voted - n.accepted),
            "Y": sorted(v.hex() for v in n.accepted),
            "Z": sorted(v.hex() for v in n.candidates),
            "round": n.round,
            "leaders": sorted(n.leaders),
            "heard_from_quorum": b.heard_from_quorum,
            "externalized": None if b.externalized is None else [v.hex() for v in b.externalized],
            "latest": latest,
            "events": list(self.events),
        }


def ballot_json(b: Ballot) -> dict[str, Any]:
    """A ballot in the trace: its counter and short hex prefixes of its values."""
    return {"n": b.n, "values": [v[:8].hex() for v in b.values[:8]], "count": len(b.values)}


def _statement_json(st: object) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(st).__name__}
    for name in getattr(st, "__slots__", ()):
        v = getattr(st, name)
        out[name] = repr(v) if isinstance(v, Ballot) else v
    return out
