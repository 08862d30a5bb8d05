"""`Node`: the sans-IO SCP state machine across slots (stable API, see DESIGN.md).

Rules of this file: messages in, messages out, time from the injected `clock`. It never
raises on a peer's message: malformed, insane, stale, forged-value or far-future messages
are counted in `stats` and dropped. It keeps the last few externalized slots to answer
laggards with our EXTERNALIZE, buffers (boundedly) messages for the next few slots, and
moves to slot k+1 as soon as slot k externalizes.

Outcomes are events the caller drains, never callbacks: `take_externalized()` returns the
slots decided since the last call (as aioquic's `next_event()`), so whatever the
application does with a decision (forming a block, writing it to disk) happens outside any
protocol call, and its failures never travel back through this state machine. With
`keep_trace=True`, `take_trace()` drains the step-by-step trace the same way.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mcnode.scp.ballot import EXTERNALIZE
from mcnode.scp.config import ScpConfig
from mcnode.scp.msg import Externalize, InvalidMsg, Msg, Value
from mcnode.scp.quorum_set import NodeID, QuorumSet
from mcnode.scp.slot import Slot


@dataclass(frozen=True, slots=True)
class Externalized:
    """Slot `slot_index` externalized `values` (the composite value, in order)."""

    slot_index: int
    values: tuple[Value, ...]


class Node:
    def __init__(
        self,
        node_id: NodeID,
        quorum_set: QuorumSet,
        validity_fn: Callable[[Value], bool],
        combine_fn: Callable[[Sequence[Value]], list[Value]],
        current_slot_index: int = 1,
        clock: Callable[[], float] = time.monotonic,
        *,
        config: ScpConfig | None = None,
        validating: bool = True,
        keep_trace: bool = False,
    ) -> None:
        quorum_set.validate()
        QuorumSet(1, [node_id]).validate()  # the node id obeys the same rules as members
        if current_slot_index < 1:
            raise ValueError("slot indices start at 1")
        self.node_id = node_id
        self.quorum_set = quorum_set
        self.validity_fn = validity_fn
        self.combine_fn = combine_fn
        self.clock = clock
        self.config = config or ScpConfig()
        self.config.validate()
        self.validating = validating
        self.stats: Counter[str] = Counter()
        self._externalized: list[Externalized] = []  # decided, not yet taken by the caller
        self._trace: list[dict[str, Any]] | None = [] if keep_trace else None
        self._history: OrderedDict[int, Slot] = OrderedDict()  # externalized, oldest first
        self._future: dict[int, list[Msg]] = {}
        self._outbox: list[Msg] = []
        self._replay: list[Msg] = []
        self._done: list[Slot] = []  # externalized, not yet moved past
        self._slot = self._new_slot(current_slot_index)

    # -- stable API ----------------------------------------------------------------------
    @property
    def current_slot_index(self) -> int:
        return self._slot.index

    def propose_values(self, values: Iterable[Value]) -> Msg | None:
        """Nominate `values` (the application's pending set) on the current slot."""
        slot = self._slot
        slot.propose(set(values))
        return self._finish(self._emit(slot))

    def handle_message(self, msg: Msg) -> Msg | None:
        """Take one peer message; return what to broadcast now, if anything."""
        self.stats["msgs_received"] += 1
        try:
            if not isinstance(msg, Msg):
                raise InvalidMsg(f"not a message: {type(msg).__name__}")
            msg.validate()  # a quorum set already validated remembers it (QuorumSet)
        except InvalidMsg:
            self.stats["msgs_invalid"] += 1
            return None
        except Exception:  # malformed objects built by hand: still a peer's fault
            self.stats["msgs_invalid"] += 1
            return None
        if msg.sender_id == self.node_id:
            self.stats["msgs_from_self"] += 1
            return None
        return self._finish(self._dispatch(msg))

    def process_timeouts(self) -> list[Msg]:
        """Fire every timer due by `clock()`; return the messages to broadcast."""
        out: list[Msg] = []
        # Messages buffered for this slot, replayed one batch per call.
        if self._replay:
            batch, self._replay = self._replay, []
            for m in batch:
                r = self._dispatch(m)
                self._finish(None)
                if r is not None:
                    out.append(r)
        slot = self._slot
        slot.on_timers()
        m = self._emit(slot)
        self._finish(None)
        if m is None and slot is self._slot:
            m = slot.take_rebroadcast(self.validating)
            if m is not None:
                self.stats["rebroadcasts"] += 1
        if m is not None:
            out.append(m)
        out.extend(self._outbox)
        self._outbox.clear()
        return out

    def next_timeout(self) -> float | None:
        """Clock time at which `process_timeouts` has work, or None."""
        if self._outbox or self._replay:
            return self.clock()
        return self._slot.next_timer()

    def get_externalized_values(self, slot_index: int) -> list[Value] | None:
        slot = self._history.get(slot_index)
        if slot is None or slot.ballot.externalized is None:
            return None
        return list(slot.ballot.externalized)

    def take_externalized(self) -> list[Externalized]:
        """The slots externalized since the last call, oldest first (each exactly once;
        not the one a restart restored as externalized). Callers drain it after every
        `propose_values`, `handle_message` and `process_timeouts`."""
        out, self._externalized = self._externalized, []
        return out

    def take_trace(self) -> list[dict[str, Any]]:
        """Trace records made since the last call, across slots (empty unless the node was
        built with `keep_trace=True`). Each is a JSON-able dict with `slot`, `t`, `event`."""
        if not self._trace:
            return []
        out = list(self._trace)
        self._trace.clear()  # in place: every slot appends to this one list
        return out

    # -- debug / restart --------------------------------------------------------------------
    def slot_state(self, slot_index: int) -> dict[str, Any] | None:
        """JSON-able snapshot of a live or recently externalized slot."""
        slot = self._slot if slot_index == self._slot.index else self._history.get(slot_index)
        return None if slot is None else slot.snapshot()

    def known_quorum_sets(self) -> dict[NodeID, QuorumSet]:
        """Every node's quorum set as its latest message (in kept slots) stated it."""
        out: dict[NodeID, QuorumSet] = {}
        for slot in [*self._history.values(), self._slot]:
            out.update(slot.qsets)
        return out

    def phase(self) -> str:
        """NOMINATE, PREPARE, COMMIT or EXTERNALIZE for the current slot (cheap)."""
        return self._slot.phase()

    def progress(self) -> tuple[str, int, int]:
        """(phase, nomination round, ballot counter) of the current slot, cheaply."""
        s = self._slot
        b = s.ballot.b
        return s.phase(), s.nomination.round, 0 if b is None else b.n

    def latest_msg(self, slot_index: int | None = None) -> Msg | None:
        """Our last sent message for a slot (default: current): what a caller persists."""
        idx = self._slot.index if slot_index is None else slot_index
        slot = self._slot if idx == self._slot.index else self._history.get(idx)
        return None if slot is None else slot.last_sent

    @classmethod
    def from_saved(
        cls,
        node_id: NodeID,
        quorum_set: QuorumSet,
        validity_fn: Callable[[Value], bool],
        combine_fn: Callable[[Sequence[Value]], list[Value]],
        saved: Iterable[Msg],
        clock: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> Node:
        """Rebuild a node after a crash from its own last sent messages (any slots).

        The highest slot's message restores our votes there, so we never vote against
        them; an EXTERNALIZE restores that slot as externalized and starts the next one."""
        mine = [m for m in saved if m.sender_id == node_id]
        if not mine:
            raise ValueError("no saved messages from this node")
        latest: dict[int, Msg] = {}
        for m in mine:
            m.validate()
            latest[m.slot_index] = m
        top = max(latest)
        node = cls(node_id, quorum_set, validity_fn, combine_fn, top, clock, **kwargs)
        slot = node._slot
        slot.restore(latest[top])
        if slot.ballot.phase == EXTERNALIZE:
            node._advance(slot, notify=False)
        return node

    # -- internals ---------------------------------------------------------------------------
    def _new_slot(self, index: int) -> Slot:
        return Slot(
            index,
            self.node_id,
            self.quorum_set,
            self.validity_fn,
            self.combine_fn,
            self.clock,
            self.config,
            self._slot_externalized,
            self._trace,
            self.stats,
        )

    def _dispatch(self, msg: Msg) -> Msg | None:
        cur = self._slot.index
        if msg.slot_index == cur:
            slot = self._slot
            if not self._values_valid(slot, msg):
                self.stats["msgs_invalid_value"] += 1
                return None
            if not slot.handle(msg):
                self.stats["msgs_stale"] += 1
                return None
            self.stats["msgs_processed"] += 1
            return self._emit(slot)
        if msg.slot_index < cur:
            old = self._history.get(msg.slot_index)
            if old is None:
                self.stats["msgs_too_old"] += 1
                return None
            self.stats["msgs_late"] += 1
            # A laggard still working on a slot we externalized: tell it the outcome, at most
            # once per sender per rebroadcast interval (its retries get fresh answers). Not in
            # the first quarter interval after our EXTERNALIZE went out: a statement arriving
            # then crossed it in flight (its sender is about to get it), and answering every
            # such one would send each EXTERNALIZE twice in a healthy network.
            if isinstance(msg.topic, Externalize) or not self.validating:
                return None
            now = self.clock()
            sent = old.emitted_at
            if sent is not None and now < sent + self.config.rebroadcast_after() / 4:
                self.stats["laggards_in_flight"] += 1
                return None
            last = old.answered.get(msg.sender_id)
            if last is not None and now < last + self.config.rebroadcast_after():
                return None
            old.answered[msg.sender_id] = now
            self.stats["laggards_answered"] += 1
            return old.last_sent
        if msg.slot_index > cur + self.config.max_future_slots:
            self.stats["msgs_too_far_ahead"] += 1
            return None
        buf = self._future.setdefault(msg.slot_index, [])
        if len(buf) >= self.config.max_buffered_per_slot:
            buf.pop(0)
            self.stats["msgs_future_evicted"] += 1
        buf.append(msg)
        self.stats["msgs_future_buffered"] += 1
        return None

    def _values_valid(self, slot: Slot, msg: Msg) -> bool:
        t = msg.topic
        for name in ("voted", "accepted"):
            vals = getattr(t, name, None)
            if vals is not None and not slot.all_valid(vals):
                return False
        for name in ("ballot", "prepared", "prepared_prime", "commit"):
            b = getattr(t, name, None)
            if b is not None and not slot.all_valid(b.values):
                return False
        return True

    def _emit(self, slot: Slot) -> Msg | None:
        m = slot.take_emission(self.validating)
        if m is not None:
            self.stats["msgs_sent"] += 1
        return m

    def _slot_externalized(self, slot: Slot) -> None:
        # Called from deep inside the slot: only note it; `_finish` moves on afterwards, so
        # the application's callback never runs in the middle of a protocol step.
        self._done.append(slot)

    def _finish(self, reply: Msg | None) -> Msg | None:
        while self._done:
            self._advance(self._done.pop(0), notify=True)
        if reply is None and self._outbox:
            reply = self._outbox.pop(0)
        return reply

    def _advance(self, slot: Slot, notify: bool) -> None:
        if slot is not self._slot:
            return
        values = list(slot.ballot.externalized or ())
        # The EXTERNALIZE goes out even if we move on before the caller asks.
        msg = slot.take_emission(self.validating)
        if msg is not None:
            self._outbox.append(msg)
            self.stats["msgs_sent"] += 1
        self._history[slot.index] = slot
        while len(self._history) > self.config.max_slot_history:
            self._history.popitem(last=False)
        self.stats["slots_externalized"] += 1
        nxt = slot.index + 1
        self._slot = self._new_slot(nxt)
        for idx in [i for i in self._future if i <= nxt]:
            msgs = self._future.pop(idx)
            if idx == nxt:
                self._replay.extend(msgs)
        if notify:
            self._externalized.append(Externalized(slot.index, tuple(values)))
