"""Nomination protocol for one slot (draft-mazieres-dinrg-scp-05, "Nominate message").

Rules of this file: it decides which values this node votes for, accepts and confirms as
nominated, and which peers it echoes (round leaders). It never touches ballots except to
hand the composite candidate to the ballot protocol through the slot. Time comes only from
the slot's clock.

Theory: each round adds the highest-priority neighbour to the set of leaders; the node votes
for (echoes) every valid value its leaders have voted for or accepted, until some value is
confirmed nominated (a candidate). Accept/confirm are federated votes: accept x when a
quorum voted-or-accepted x or a v-blocking set accepted x; confirm x when a quorum accepted
x. The `voted` and `accepted` sets we send are disjoint.
"""

from __future__ import annotations

import hashlib
import struct
from typing import TYPE_CHECKING

from mcnode.scp.codec import MAX_VALUES
from mcnode.scp.msg import Nominate, Value
from mcnode.scp.quorum_set import NodeID

if TYPE_CHECKING:
    from mcnode.scp.slot import Slot

_NEIGHBOR = 1
_PRIORITY = 2
_TWO_256 = 1 << 256


def _g(slot_index: int, kind: int, round_: int, node: NodeID) -> int:
    """Gi(kind || round || node) = SHA-256(i || kind || round || node), read as a 256-bit
    big-endian number. Big-endian on purpose: the draft defines G over XDR encodings
    (RFC 4506), the one place where our bytes follow the draft's, not `mcnode.binary`."""
    data = struct.pack(">QII", slot_index, kind, round_) + node.encode()
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def is_newer_nominate(old: Nominate | None, new: Nominate) -> bool:
    """A nomination statement only grows: everything old said, new says too, and more."""
    if old is None:
        return True
    old_all = old.voted | old.accepted
    new_all = new.voted | new.accepted
    if not (old_all <= new_all and old.accepted <= new.accepted):
        return False
    return len(new_all) > len(old_all) or len(new.accepted) > len(old.accepted)


class Nomination:
    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.round = 0
        self.started = False
        self.stopped = False
        self.voted: set[Value] = set()
        self.accepted: set[Value] = set()
        self.candidates: set[Value] = set()
        self.own_values: set[Value] = set()
        self.leaders: set[NodeID] = set()
        self.latest: dict[NodeID, Nominate] = {}
        # Who voted-or-accepted / accepted each value, kept as statements arrive (they only
        # grow), so a federated vote on a value needs no scan over all statements.
        self.voters: dict[Value, set[NodeID]] = {}
        self.acceptors: dict[Value, set[NodeID]] = {}
        self.timer_at: float | None = None
        self.composite: tuple[Value, ...] | None = None

    # -- statement ----------------------------------------------------------------------
    def statement(self) -> Nominate | None:
        if not self.voted and not self.accepted:
            return None
        return Nominate(frozenset(self.voted - self.accepted), frozenset(self.accepted))

    def _record_self(self) -> None:
        st = self.statement()
        if st is not None:
            self._set_latest(self.slot.node_id, st)

    def _set_latest(self, node: NodeID, st: Nominate) -> None:
        old = self.latest.get(node)
        self.latest[node] = st
        every = st.voted | st.accepted
        if old is not None:
            every = every - old.voted - old.accepted
        for v in every:
            self.voters.setdefault(v, set()).add(node)
        for v in st.accepted if old is None else st.accepted - old.accepted:
            self.acceptors.setdefault(v, set()).add(node)

    # -- leaders (draft: neighbors, priority) ------------------------------------------------
    def round_leaders(self, round_: int) -> set[NodeID]:
        """Neighbours of this round with the highest priority (ties: all of them)."""
        slot = self.slot
        me = slot.node_id
        best: set[NodeID] = set()
        best_p = -1
        for node in sorted(slot.peer_qset.nodes() | {me}):
            if node != me:
                w = slot.peer_qset.weight(node)
                if (
                    _g(slot.index, _NEIGHBOR, round_, node) * w.denominator
                    >= _TWO_256 * w.numerator
                ):
                    continue
            p = _g(slot.index, _PRIORITY, round_, node)
            if p > best_p:
                best, best_p = {node}, p
            elif p == best_p:
                best.add(node)
        return best

    # -- inputs ----------------------------------------------------------------------------
    def propose(self, values: set[Value]) -> bool:
        """The application offers values; returns True if our statement changed."""
        if self.stopped:
            return False
        self.own_values.update(v for v in values if self.slot.is_valid(v))
        if not self.started:
            return self._start()
        if not self.candidates and self._introduces_own() and self._vote(self.own_values):
            self._record_self()
            self._update(self.own_values)
            return True
        return False

    def handle(self, sender: NodeID, st: Nominate) -> bool:
        """A peer's nomination statement; returns False if it was stale."""
        if not is_newer_nominate(self.latest.get(sender), st):
            return False
        self._set_latest(sender, st)
        if self.stopped:
            return True
        if not self.started:
            self._start()
        changed = False
        if not self.candidates and sender in self.leaders:
            changed = self._vote(st.voted | st.accepted)
            if changed:
                self._record_self()
        self._update(st.voted | st.accepted)
        return True

    def on_timeout(self) -> bool:
        """Round timer fired: move to the next round and echo its leader."""
        self.timer_at = None
        if self.stopped or self.candidates:
            return False
        self.slot.trace("nomination timeout", round=self.round)
        return self._next_round()

    def restart(self) -> None:
        """After a crash: keep the restored votes, begin again at round 1."""
        self._start()

    def stop(self) -> None:
        """Nomination ends once some ballot is confirmed prepared (draft, phase table)."""
        self.stopped = True
        self.timer_at = None

    # -- internals -------------------------------------------------------------------------
    def _start(self) -> bool:
        self.started = True
        return self._next_round()

    def _next_round(self) -> bool:
        self.round += 1
        new_leaders = self.round_leaders(self.round)
        self.leaders |= new_leaders
        self.slot.trace("nomination round", round=self.round, leaders=new_leaders)
        self.timer_at = self.slot.now() + self.slot.config.nomination_timeout_for(self.round)
        changed = self._introduces_own() and self._vote(self.own_values)
        for leader in self.leaders:
            if leader != self.slot.node_id:
                st = self.latest.get(leader)
                if st is not None:
                    changed |= self._vote(st.voted | st.accepted)
        if changed:
            self._record_self()
            self._update(self.voted)
        return changed

    def _introduces_own(self) -> bool:
        """Whether we vote for our own values now: as a leader of some round so far, or
        always with `vote_own_values`."""
        return self.slot.config.vote_own_values or self.slot.node_id in self.leaders

    def _vote(self, values: frozenset[Value] | set[Value]) -> bool:
        """Echo valid values into `voted` (closed once a candidate exists)."""
        if self.candidates:
            return False
        changed = False
        room = MAX_VALUES - len(self.voted)
        for v in sorted(values):
            if room <= 0:
                break
            if v not in self.voted and v not in self.accepted and self.slot.is_valid(v):
                self.voted.add(v)
                room -= 1
                changed = True
        return changed

    def _update(self, values: frozenset[Value] | set[Value]) -> None:
        """Run federated accept/confirm over `values` until nothing moves."""
        slot = self.slot
        pending = set(values)
        new_candidates = False
        # (event, by, nodes) -> values it moved: one trace record per set of nodes.
        moved: dict[tuple[str, str, frozenset[NodeID]], list[Value]] = {}
        while pending:
            progressed = False
            for x in sorted(pending):
                if x not in self.accepted and len(self.accepted) < MAX_VALUES:
                    why = self._can_accept(x)
                    if why is not None:
                        self.accepted.add(x)
                        self.voted.discard(x)
                        moved.setdefault(("accept nominate", *why), []).append(x)
                        progressed = True
                if x in self.accepted and x not in self.candidates:
                    quorum = self._can_confirm(x)
                    if quorum is not None:
                        self.candidates.add(x)
                        moved.setdefault(("confirm nominate", "quorum", quorum), []).append(x)
                        new_candidates = True
                        progressed = True
            if not progressed:
                break
            self._record_self()
            pending = {x for x in pending if x not in self.candidates}
        for (event, by, nodes), xs in moved.items():
            slot.trace(
                event, by=by, nodes=nodes, count=len(xs), values=[v[:8].hex() for v in xs[:8]]
            )
        if new_candidates:
            self.timer_at = None
            combined = slot.combine(sorted(self.candidates))
            self.composite = combined if combined else None
            slot.trace(
                "candidates",
                count=len(self.candidates),
                composite=0 if self.composite is None else len(self.composite),
            )
            if self.composite is not None:
                slot.ballot.on_new_composite(self.composite)

    def _can_accept(self, x: Value) -> tuple[str, frozenset[NodeID]] | None:
        """Accept x when a v-blocking set accepted it or a quorum voted or accepted it;
        the set that did it, or None."""
        if not self.slot.is_valid(x):
            return None
        me = self.slot.node_id
        accepted_by = self.acceptors.get(x)
        if accepted_by:
            others = frozenset(accepted_by) - {me}
            if others and self.slot.v_blocking(others):
                return "v-blocking", others
        supporters = self.voters.get(x)
        if not supporters:
            return None
        quorum = self.slot.quorum(frozenset(supporters))
        return None if quorum is None else ("quorum", quorum)

    def _can_confirm(self, x: Value) -> frozenset[NodeID] | None:
        """Confirm x when a quorum accepted it: that quorum, or None."""
        accepted_by = self.acceptors.get(x)
        return self.slot.quorum(frozenset(accepted_by)) if accepted_by else None
