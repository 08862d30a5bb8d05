"""A seeded discrete-event network of SCP `Node`s.

Rules of this file: all randomness comes from one `random.Random(seed)` drawn in a fixed
order, time is simulated (the nodes' clock is the simulator's), and every collection that
feeds a random draw is iterated in a fixed order. Same config, same run, byte for byte.

The driver plays the service's part: it submits values to nodes, re-proposes pending values
when a slot starts, persists each node's last sent message (for crash + restart) and, when a
restarted node is too far behind for SCP replies, syncs its ledger from a peer (as the
service's catch-up would) before it rejoins.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mcnode.scp import Msg, Node, QuorumSet, ScpConfig, Value
from mcnode.sim import byzantine
from mcnode.sim.topology import Topology

_SIM_SCP = ScpConfig(
    nomination_timeout=1.0,
    nomination_timeout_increment=0.5,
    ballot_timeout=1.0,
    ballot_timeout_increment=0.5,
)


@dataclass(frozen=True)
class LinkModel:
    latency_min: float = 0.005
    latency_max: float = 0.050
    loss: float = 0.0
    duplicate: float = 0.0
    faults_until: float | None = None  # loss and duplication stop at this time
    # Each directed link gets its own latency range: [min, max] scaled by a factor drawn
    # once per link from [1/spread, spread] (1.0: every link alike).
    spread: float = 2.0


@dataclass(frozen=True)
class Partition:
    start: float
    end: float
    group: frozenset[str]  # cut off from everybody else while active


@dataclass(frozen=True)
class Crash:
    node: str
    start: float
    end: float | None  # restart time, None: stays down


@dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    values: int = 100
    max_values_per_slot: int = 100
    submit_to: str = "all"  # "all" nodes, or "one" random node per value
    value_rate: float | None = None  # values per simulated second; None: all at t=0
    link: LinkModel = field(default_factory=LinkModel)
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    byzantine: tuple[tuple[str, str], ...] = ()  # (node, kind)
    garbage_interval: float = 0.05
    catchup_after: float = 5.0  # a node stuck this long behind a peer's ledger syncs
    max_time: float = 600.0
    max_events: int = 3_000_000
    scp: ScpConfig = _SIM_SCP


@dataclass
class SimResult:
    agreement: bool
    live: bool  # every honest node externalized every submitted value
    slots: int  # slots externalized by every honest node
    values_submitted: int
    values_externalized: int  # distinct values externalized by every honest node
    messages_sent: int
    messages_delivered: int
    messages_dropped: int
    sim_time_s: float
    slot_time_p50_s: float
    slot_time_p99_s: float
    cpu_s: float
    events: int
    fingerprint: str  # hash of every honest ledger: equal runs, equal fingerprints
    disagreements: list[dict[str, Any]]
    nodes: dict[str, dict[str, Any]]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def value_name(i: int) -> Value:
    return b"v" + i.to_bytes(8, "big")


class _Actor:
    """One simulated process: a Node plus what its host keeps (ledger, saved messages)."""

    def __init__(self, node_id: str, qset: QuorumSet, kind: str | None) -> None:
        self.id = node_id
        self.qset = qset
        self.kind = kind  # None: honest
        self.node: Node | None = None
        self.incarnation = 0
        self.up = True
        self.ledger: dict[int, list[Value]] = {}
        self.synced: set[int] = set()
        self.externalized_at: dict[int, float] = {}
        self.done: set[Value] = set()
        self.pending: dict[Value, None] = {}  # insertion-ordered
        self.saved: dict[int, Msg] = {}
        self.timer_at: float | None = None
        self.sent_log: list[Msg] = []
        self.slot_index_seen = 1
        self.slot_since = 0.0


class Simulator:
    def __init__(self, topology: Topology, config: SimConfig) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.now = 0.0
        self._seq = 0
        self._queue: list[tuple[float, int, str, tuple[Any, ...]]] = []
        byz = dict(config.byzantine)
        unknown = set(byz) - set(topology)
        if unknown:
            raise ValueError(f"byzantine nodes not in topology: {sorted(unknown)}")
        for kind in byz.values():
            if kind not in byzantine.KINDS:
                raise ValueError(f"unknown byzantine kind {kind!r}")
        self.ids = list(topology)
        self.actors = {i: _Actor(i, topology[i], byz.get(i)) for i in self.ids}
        self.honest = [i for i in self.ids if byz.get(i) is None]
        self.values: list[Value] = [value_name(i) for i in range(config.values)]
        self.submitted = 0
        self.sent = self.delivered = self.dropped = 0
        self.events = 0
        for a in self.actors.values():
            a.node = self._make_node(a, 1)
        lo, hi = 1.0 / max(config.link.spread, 1.0), max(config.link.spread, 1.0)
        self.link_factor = {
            (x, y): self.rng.uniform(lo, hi) for x in self.ids for y in self.ids if x != y
        }

    # -- node plumbing -----------------------------------------------------------------------
    def _clock(self) -> float:
        return self.now

    def _validity(self, actor: _Actor) -> Callable[[Value], bool]:
        def valid(v: Value) -> bool:
            return len(v) == 9 and v[:1] == b"v" and v not in actor.done

        return valid

    def _combine(self, values: Sequence[Value]) -> list[Value]:
        return sorted(values)[: self.cfg.max_values_per_slot]

    def _drain(self, actor: _Actor) -> None:
        """Record what the node externalized in its last call (before its reply goes out,
        as a host appends a block before it broadcasts)."""
        assert actor.node is not None
        for ev in actor.node.take_externalized():
            self._record(actor, ev.slot_index, list(ev.values), synced=False)
            self._push(self.now, "propose", (actor.id, actor.incarnation))

    def _record(self, actor: _Actor, slot: int, values: list[Value], synced: bool) -> None:
        actor.ledger[slot] = list(values)
        if synced:
            actor.synced.add(slot)
        actor.externalized_at[slot] = self.now
        actor.done.update(values)
        for v in values:
            actor.pending.pop(v, None)

    def _make_node(self, actor: _Actor, slot: int, saved: list[Msg] | None = None) -> Node:
        kwargs: dict[str, Any] = {"config": self.cfg.scp}
        if saved:
            return Node.from_saved(
                actor.id,
                actor.qset,
                self._validity(actor),
                self._combine,
                saved,
                self._clock,
                **kwargs,
            )
        return Node(
            actor.id,
            actor.qset,
            self._validity(actor),
            self._combine,
            slot,
            self._clock,
            **kwargs,
        )

    # -- events ------------------------------------------------------------------------------
    def _push(self, at: float, kind: str, data: tuple[Any, ...]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, data))

    def _faults_active(self) -> bool:
        fu = self.cfg.link.faults_until
        return fu is None or self.now < fu

    def _cut(self, a: str, b: str) -> bool:
        for p in self.cfg.partitions:
            if p.start <= self.now < p.end and ((a in p.group) != (b in p.group)):
                return True
        return False

    def _send(self, sender: _Actor, msg: Msg, to: Sequence[str] | None = None) -> None:
        """Put `msg` on the wire to every other node (or `to`), through the link model."""
        link = self.cfg.link
        targets = to if to is not None else [i for i in self.ids if i != sender.id]
        for dst in targets:
            self.sent += 1
            faulty = self._faults_active()
            if self._cut(sender.id, dst) or (
                faulty and link.loss and self.rng.random() < link.loss
            ):
                self.dropped += 1
                continue
            copies = 2 if faulty and link.duplicate and self.rng.random() < link.duplicate else 1
            factor = self.link_factor[(sender.id, dst)]
            for _ in range(copies):
                delay = factor * self.rng.uniform(link.latency_min, link.latency_max)
                self._push(self.now + delay, "deliver", (dst, msg))

    def _broadcast(self, actor: _Actor, msg: Msg | None) -> None:
        if msg is None:
            return
        actor.saved[msg.slot_index] = msg  # the host persists before sending
        for old in [s for s in actor.saved if s < msg.slot_index - 10]:
            del actor.saved[old]
        if actor.kind is None:
            self._send(actor, msg)
            return
        self._send_byzantine(actor, msg)

    def _send_byzantine(self, actor: _Actor, msg: Msg) -> None:
        kind = actor.kind
        others = [i for i in self.ids if i != actor.id]
        actor.sent_log.append(msg)
        if kind == "silent":
            return
        if kind == "invalid":
            self._send(actor, byzantine.poison(self.rng, msg))
            return
        if kind == "equivocate":
            pool = self._pool()
            for i, dst in enumerate(others):
                m = msg if i % 2 == 0 else byzantine.equivocate(self.rng, msg, pool)
                self._send(actor, m, [dst])
            return
        if kind == "replay":
            self._send(actor, msg)
            if actor.sent_log and self.rng.random() < 0.5:
                old = actor.sent_log[self.rng.randrange(len(actor.sent_log))]
                self._send(actor, old, [self.rng.choice(others)])
            return
        self._send(actor, msg)  # garbage nodes also send their real messages

    def _pool(self) -> list[Value]:
        lo = min(len(self.actors[i].done) for i in self.honest) if self.honest else 0
        return self.values[max(0, lo - 20) : lo + 200] or self.values[:1]

    def _schedule_timer(self, actor: _Actor) -> None:
        if actor.node is None or not actor.up:
            return
        due = actor.node.next_timeout()
        if due is None:
            return
        due = max(due, self.now)
        if actor.timer_at is None or due < actor.timer_at or actor.timer_at < self.now:
            actor.timer_at = due
            self._push(due, "timer", (actor.id, actor.incarnation))

    def _propose(self, actor: _Actor) -> None:
        if actor.node is None or not actor.up or actor.kind == "silent":
            return
        batch = list(actor.pending)[: self.cfg.max_values_per_slot]
        if batch:
            out = actor.node.propose_values(batch)
            self._drain(actor)
            self._broadcast(actor, out)

    # -- run ---------------------------------------------------------------------------------
    def run(self, progress: Callable[[Simulator], None] | None = None) -> SimResult:
        cpu0 = time.process_time()
        cfg = self.cfg
        if cfg.value_rate is None:
            self._push(0.0, "submit", (len(self.values),))
        else:
            self._push(0.0, "submit", (1,))
        for c in cfg.crashes:
            self._push(c.start, "crash", (c.node,))
            if c.end is not None:
                self._push(c.end, "restart", (c.node,))
        self._push(1.0, "catchup", ())
        for a in self.actors.values():
            if a.kind in ("garbage", "split"):
                self._push(cfg.garbage_interval, "garbage", (a.id,))
        last_progress = 0.0
        while self._queue and self.events < cfg.max_events:
            at, _, kind, data = heapq.heappop(self._queue)
            if at > cfg.max_time:
                break
            self.now = max(self.now, at)
            self.events += 1
            getattr(self, "_ev_" + kind)(*data)
            if self._finished():
                break
            if progress is not None and self.now - last_progress >= 0.5:
                last_progress = self.now
                progress(self)
        return self._result(time.process_time() - cpu0)

    def _finished(self) -> bool:
        if self.submitted < len(self.values):
            return False
        n = len(self.values)
        return all(len(self.actors[i].done) >= n for i in self.honest)

    def _ev_submit(self, count: int) -> None:
        start = self.submitted
        end = min(len(self.values), start + count)
        for v in self.values[start:end]:
            targets = self.ids if self.cfg.submit_to == "all" else [self.rng.choice(self.ids)]
            for t in targets:
                a = self.actors[t]
                if v not in a.done:
                    a.pending[v] = None
        self.submitted = end
        for t in self.ids:
            self._propose(self.actors[t])
            self._schedule_timer(self.actors[t])
        if self.cfg.value_rate is not None and end < len(self.values):
            self._push(self.now + 1.0 / self.cfg.value_rate, "submit", (1,))

    def _ev_deliver(self, dst: str, msg: Msg) -> None:
        a = self.actors[dst]
        if not a.up or a.node is None:
            self.dropped += 1
            return
        self.delivered += 1
        out = a.node.handle_message(msg)
        self._drain(a)
        self._broadcast(a, out)
        self._schedule_timer(a)

    def _ev_timer(self, node_id: str, incarnation: int) -> None:
        a = self.actors[node_id]
        if a.incarnation != incarnation or not a.up or a.node is None:
            return
        a.timer_at = None
        due = a.node.next_timeout()
        if due is not None and due <= self.now:
            outs = a.node.process_timeouts()
            self._drain(a)
            for m in outs:
                self._broadcast(a, m)
        self._schedule_timer(a)

    def _ev_propose(self, node_id: str, incarnation: int) -> None:
        a = self.actors[node_id]
        if a.incarnation == incarnation:
            self._propose(a)
            self._schedule_timer(a)

    def _ev_crash(self, node_id: str) -> None:
        a = self.actors[node_id]
        a.up = False
        a.node = None
        a.incarnation += 1
        a.timer_at = None

    def _ev_restart(self, node_id: str) -> None:
        a = self.actors[node_id]
        a.up = True
        a.incarnation += 1
        next_slot = max(a.ledger, default=0) + 1
        saved = a.saved.get(next_slot)
        if saved is not None:
            # Crashed mid-slot: rebuild from what we last said there (restart safety) and say
            # it again, so peers that have moved on answer with their EXTERNALIZE.
            a.node = self._make_node(a, next_slot, [saved])
            self._send(a, saved)
        else:
            a.node = self._make_node(a, next_slot)
        a.slot_since = self.now
        self._propose(a)
        self._schedule_timer(a)

    def _ev_catchup(self) -> None:
        """The service's ledger sync: a node stuck behind an honest peer's ledger copies the
        missing blocks from it and rejoins consensus on the next slot."""
        for i in self.honest:
            a = self.actors[i]
            if not a.up or a.node is None:
                continue
            cur = a.node.current_slot_index
            if cur != a.slot_index_seen:
                a.slot_index_seen, a.slot_since = cur, self.now
                continue
            if self.now - a.slot_since < self.cfg.catchup_after:
                continue
            src = max(
                (self.actors[j] for j in self.honest if j != i),
                key=lambda p: max(p.ledger, default=0),
                default=None,
            )
            top = max(src.ledger, default=0) if src is not None else 0
            if src is None or top < cur:
                continue
            for s in range(cur, top + 1):
                if s in src.ledger and s not in a.ledger:
                    self._record(a, s, src.ledger[s], synced=True)
            a.incarnation += 1
            a.node = self._make_node(a, top + 1)
            a.slot_index_seen, a.slot_since = top + 1, self.now
            self._propose(a)
            self._schedule_timer(a)
        self._push(self.now + 1.0, "catchup", ())

    def _ev_garbage(self, node_id: str) -> None:
        a = self.actors[node_id]
        if a.kind == "split" and a.up:
            pool = self._pool()
            for victim in self.honest:
                v = self.actors[victim]
                if v.node is None:
                    continue
                half = byzantine.split_target(victim)
                value = pool[min(half, len(pool) - 1)]
                msg = byzantine.split_message(node_id, a.qset, v.node.current_slot_index, value)
                self._send(a, msg, [victim])
        elif a.up and a.node is not None:
            others = [i for i in self.ids if i != node_id]
            slot = a.node.current_slot_index + self.rng.choice([-1, 0, 0, 0, 1])
            qset = (
                a.qset
                if self.rng.random() < 0.7
                else byzantine.random_qset(self.rng, self.ids, node_id)
            )
            topic = byzantine.random_topic(self.rng, self._pool())
            msg = Msg(node_id, max(1, slot), qset, topic)
            self._send(a, msg, [self.rng.choice(others)])
        if self.now < self.cfg.max_time:
            self._push(self.now + self.cfg.garbage_interval, "garbage", (node_id,))

    # -- result ------------------------------------------------------------------------------
    def _result(self, cpu_s: float) -> SimResult:
        honest = [self.actors[i] for i in self.honest]
        disagreements: list[dict[str, Any]] = []
        all_slots = sorted({s for a in honest for s in a.ledger})
        for s in all_slots:
            seen: dict[tuple[Value, ...], list[str]] = {}
            for a in honest:
                if s in a.ledger and s not in a.synced:
                    seen.setdefault(tuple(a.ledger[s]), []).append(a.id)
            if len(seen) > 1:
                disagreements.append({"slot": s, "outcomes": [sorted(v) for v in seen.values()]})
        common = min((len(a.ledger) for a in honest), default=0)
        everyone = set.intersection(*(a.done for a in honest)) if honest else set()
        durations: list[float] = []
        for a in honest:
            times = [a.externalized_at[s] for s in sorted(a.externalized_at) if s not in a.synced]
            durations.extend(t2 - t1 for t1, t2 in zip([0.0, *times], times, strict=False))
        durations.sort()
        h = hashlib.sha256()
        for a in honest:
            h.update(a.id.encode())
            for s in sorted(a.ledger):
                h.update(s.to_bytes(8, "big") + b"".join(a.ledger[s]))
        nodes = {
            a.id: {
                "kind": a.kind or "honest",
                "slots": len(a.ledger),
                "synced_slots": len(a.synced),
                "values": len(a.done),
                "stats": dict(sorted(a.node.stats.items())) if a.node else {},
            }
            for a in self.actors.values()
        }
        return SimResult(
            agreement=not disagreements,
            live=len(everyone) >= len(self.values) and self.submitted == len(self.values),
            slots=common,
            values_submitted=self.submitted,
            values_externalized=len(everyone),
            messages_sent=self.sent,
            messages_delivered=self.delivered,
            messages_dropped=self.dropped,
            sim_time_s=round(self.now, 6),
            slot_time_p50_s=round(statistics.median(durations), 6) if durations else 0.0,
            slot_time_p99_s=round(durations[min(len(durations) - 1, int(0.99 * len(durations)))], 6)
            if durations
            else 0.0,
            cpu_s=round(cpu_s, 3),
            events=self.events,
            fingerprint=h.hexdigest(),
            disagreements=disagreements,
            nodes=nodes,
        )


def simulate(topology: Topology, config: SimConfig) -> SimResult:
    return Simulator(topology, config).run()
