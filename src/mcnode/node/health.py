"""Quorum health as an operator reads it (stellar-core's `quorum` and `info`): for each
member of a quorum set, does it agree with us, is it missing, delayed, or does it
disagree; how many more failures would leave this node without a quorum (`fail_at`);
and, when there is none, one line that says so.

Rules of this file: pure computation. The host feeds `Observations` from verified
consensus messages and its own decisions; the caller passes each link's state and `now`
(wall time). No I/O, no clock of its own, no asyncio: tests drive every case.

A member's verdict, first match wins:
- **missing**: its link is down; or we have worked on our current slot for more than
  `MISSING_AFTER_S` and it said nothing for that long (an idle network says nothing:
  blocks are made only when a payment waits, so a quiet member of an idle network is not
  missing); or it is not one of our peers and we heard nothing from it for that long
  (only configured peers' messages are accepted, so such a node is never heard).
- **disagree**: its latest word on a decision contradicts ours (it externalized other
  values for a slot we externalized, or its message built on another chain), and nothing
  it said since matches a decision of ours.
- **delayed**: reachable, but it has not decided a slot that we decided more than
  `DELAYED_AFTER_S` ago.
- **agree**: otherwise.

`fail_at`: the fewest further failures, among members neither missing nor disagreeing,
that would leave our quorum set unsatisfiable: the smallest v-blocking set once the
failed members are counted as blocking already (nested sets included; the node itself is
implicit in its set and never counted). 0 means no quorum now; None means no failure of
others can stop this node (a one-node network).
"""

from __future__ import annotations

import enum
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mcnode.scp import Externalize, NodeID, QuorumSet
from mcnode.scp.msg import Topic

MISSING_AFTER_S = 10.0  # silence, while a slot is being worked on, that makes a member missing
DELAYED_AFTER_S = 5.0  # how long after our decision a member that has not decided is delayed
KEEP_OURS = 64  # our decisions remembered, to compare with theirs
KEEP_THEIRS = 8  # each member's externalized slots remembered


class Verdict(enum.Enum):
    AGREE = "agree"
    DELAYED = "delayed"
    MISSING = "missing"
    DISAGREE = "disagree"


FAILED = (Verdict.MISSING, Verdict.DISAGREE)  # what cannot help make our quorum


@dataclass(frozen=True, slots=True)
class Said:
    """The latest statement a node made, as we received it."""

    slot: int
    statement: str  # Nominate, NominatePrepare, Prepare, Commit, Externalize
    at: float  # wall time we received it


@dataclass(frozen=True, slots=True)
class MemberHealth:
    node: NodeID
    verdict: Verdict
    why: str
    link_up: bool | None  # None: not one of our peers
    said: Said | None
    said_ago_s: float | None
    decided: int | None  # the highest slot it is known to have decided

    def to_json(self) -> dict[str, Any]:
        said = self.said
        return {
            "node": self.node,
            "verdict": self.verdict.value,
            "why": self.why,
            "link": None if self.link_up is None else "up" if self.link_up else "down",
            "last_said": None
            if said is None
            else {
                "slot": said.slot,
                "statement": said.statement,
                "ago_s": self.said_ago_s,
            },
            "decided_slot": self.decided,
        }


class Observations:
    """What consensus messages told us about each node, and what we decided; bounded
    (senders are configured peers only; slots kept are the last few)."""

    def __init__(self) -> None:
        self.said: dict[NodeID, Said] = {}
        self._decided: dict[NodeID, int] = {}  # highest slot each is known to have decided
        self._theirs: dict[NodeID, OrderedDict[int, tuple[bytes, ...]]] = {}
        self._other_chain: dict[NodeID, int] = {}  # latest slot it built on another chain
        self._ours: OrderedDict[int, tuple[tuple[bytes, ...], float]] = OrderedDict()

    # -- feeding --------------------------------------------------------------------------
    def heard(self, sender: NodeID, slot: int, topic: Topic, at: float) -> None:
        """A verified message from `sender` about `slot`."""
        self.said[sender] = Said(slot, type(topic).__name__, at)
        done = slot if isinstance(topic, Externalize) else slot - 1
        if done > self._decided.get(sender, -1):
            self._decided[sender] = done
        if isinstance(topic, Externalize):
            theirs = self._theirs.setdefault(sender, OrderedDict())
            theirs[slot] = tuple(topic.commit.values)
            theirs.move_to_end(slot)
            while len(theirs) > KEEP_THEIRS:
                theirs.popitem(last=False)

    def other_chain(self, sender: NodeID, slot: int) -> None:
        """`sender`'s message for `slot` builds on a block `slot - 1` that is not ours."""
        self._other_chain[sender] = max(slot - 1, self._other_chain.get(sender, -1))

    def decided(self, slot: int, values: Iterable[bytes], at: float) -> None:
        """We decided `slot` (its block is in our ledger) at wall time `at`."""
        self._ours[slot] = (tuple(values), at)
        self._ours.move_to_end(slot)
        while len(self._ours) > KEEP_OURS:
            self._ours.popitem(last=False)

    # -- reading --------------------------------------------------------------------------
    def last_decided(self) -> tuple[int, float] | None:
        """Our latest decision: (slot, wall time)."""
        if not self._ours:
            return None
        slot = max(self._ours)
        return slot, self._ours[slot][1]

    def _decided_before(self, t: float) -> int | None:
        """The highest slot we decided at or before wall time `t`."""
        old = [s for s, (_, at) in self._ours.items() if at <= t]
        return max(old) if old else None

    def _contradiction(self, node: NodeID) -> int | None:
        """The slot of `node`'s latest contradiction of our decisions, unless a later
        externalize of its matches ours."""
        conflicts, agreements = [], []
        for slot, values in self._theirs.get(node, {}).items():
            ours = self._ours.get(slot)
            if ours is not None:
                (agreements if ours[0] == values else conflicts).append(slot)
        if node in self._other_chain:
            conflicts.append(self._other_chain[node])
        if conflicts and max(conflicts) > max(agreements, default=-1):
            return max(conflicts)
        return None

    def judge(
        self,
        node: NodeID,
        *,
        link_up: bool | None,
        blocks: int,
        now: float,
        busy_for: float | None,
    ) -> MemberHealth:
        """`node`'s verdict. `link_up`: our link to it (None if it is not our peer);
        `blocks`: its block count when last asked (0 if never); `busy_for`: how long we
        have worked on our current slot (None when idle)."""
        said = self.said.get(node)
        ago = None if said is None else round(max(0.0, now - said.at), 3)
        decided = max(self._decided.get(node, -1), blocks - 1)
        known = decided if decided >= 0 else None

        def verdict(v: Verdict, why: str) -> MemberHealth:
            return MemberHealth(node, v, why, link_up, said, ago, known)

        silent = ago is None or ago > MISSING_AFTER_S
        if link_up is False:
            return verdict(Verdict.MISSING, "link down")
        bad = self._contradiction(node)
        if bad is not None:
            return verdict(Verdict.DISAGREE, f"decided otherwise than we did for slot {bad}")
        if link_up is None and silent:
            return verdict(
                Verdict.MISSING,
                "not one of our peers, not heard from"
                if ago is None
                else f"not one of our peers, silent for {ago:.0f} s",
            )
        if busy_for is not None and busy_for > MISSING_AFTER_S and silent:
            quiet = "nothing heard" if ago is None else f"silent for {ago:.0f} s"
            return verdict(
                Verdict.MISSING, f"{quiet} while we worked on our slot for {busy_for:.0f} s"
            )
        target = self._decided_before(now - DELAYED_AFTER_S)
        if target is not None and decided < target:
            behind = "no slot" if known is None else f"slot {known}"
            return verdict(Verdict.DELAYED, f"has decided {behind}; we decided slot {target}")
        return verdict(Verdict.AGREE, "reachable, nothing it said contradicts us")


# -- fail_at and the no-quorum line -------------------------------------------------------
def blocking_cost(q: QuorumSet, failed: frozenset[NodeID] | set[NodeID]) -> float:
    """How many nodes outside `failed` must also fail for `failed` plus them to block `q`
    (meet every slice); infinite if no set can (a set with threshold 0)."""
    if q.threshold <= 0:
        return math.inf
    costs = sorted(
        blocking_cost(m, failed) if isinstance(m, QuorumSet) else 0 if m in failed else 1
        for m in q.members
    )
    need = max(0, len(q.members) - q.threshold + 1)
    # Node ids are distinct across a valid set, so the cheapest members add up exactly.
    return float(sum(costs[:need]))


def fail_at(q: QuorumSet, failed: frozenset[NodeID] | set[NodeID]) -> int | None:
    cost = blocking_cost(q, failed)
    return None if math.isinf(cost) else int(cost)


def closure(start: QuorumSet, known: Mapping[NodeID, QuorumSet]) -> list[NodeID]:
    """Every node reachable from `start` through the quorum sets we know, sorted."""
    seen: set[NodeID] = set()
    todo = list(start.nodes())
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        q = known.get(n)
        if q is not None:
            todo.extend(q.nodes() - seen)
    return sorted(seen)


@dataclass(frozen=True, slots=True)
class QuorumReport:
    node: NodeID
    quorum_set: QuorumSet  # ours, with ourselves taken out (as SCP uses it)
    members: tuple[MemberHealth, ...]
    fail_at: int | None
    reachable: int  # top-level members of the set that are neither missing nor disagreeing
    line: str

    @property
    def has_quorum(self) -> bool:
        return self.fail_at != 0

    def count(self, verdict: Verdict) -> int:
        return sum(m.verdict is verdict for m in self.members)

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "quorum": self.has_quorum,
            "line": self.line,
            "fail_at": self.fail_at,
            "threshold": self.quorum_set.threshold,
            "reachable": self.reachable,
            "quorum_set": self.quorum_set.to_dict(),
            "members": {m.node: m.to_json() for m in self.members},
            "counts": {v.value: self.count(v) for v in Verdict},
        }


def report(node: NodeID, qset: QuorumSet, members: Iterable[MemberHealth]) -> QuorumReport:
    """The report on our quorum set `qset` (as configured) from its members' verdicts."""
    q = qset.normalized(remove=node)
    ms = tuple(sorted(members, key=lambda m: m.node))
    failed = frozenset(m.node for m in ms if m.verdict in FAILED)
    available = q.nodes() - failed
    reachable = sum(
        (m.is_satisfied_by(available) if isinstance(m, QuorumSet) else m in available)
        for m in q.members
    )
    at = fail_at(q, failed)
    # Counted at the top level of the set, this node included (as in "3 of 4").
    have, need = reachable + 1, q.threshold + 1
    if at is None:
        line = "quorum: this node needs no peer (no failure of others can stop it)"
    elif at == 0:
        up = ", ".join(["this node", *sorted(available)])
        gone = "; ".join(
            f"{v.value}: {', '.join(m.node for m in ms if m.verdict is v and m.node in q.nodes())}"
            for v in FAILED
            if any(m.verdict is v and m.node in q.nodes() for m in ms)
        )
        line = f"no quorum: {have} of {need} needed are reachable (reachable: {up}; {gone})"
    else:
        failures = "failure" if at == 1 else "failures"
        line = (
            f"quorum: {have} reachable, {need} needed; {at} more {failures} would leave no quorum"
        )
    return QuorumReport(node, q, ms, at, reachable, line)
