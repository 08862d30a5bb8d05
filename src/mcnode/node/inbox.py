"""Peers' consensus messages that SCP cannot judge yet, kept until it can.

Rules of this file: bookkeeping only, no I/O; time comes from the caller. Two reasons to
wait:
- **A slot we have not reached.** Held here (at most `per_slot` per slot) rather than in
  SCP's own future-slot buffer: SCP would judge such a message the moment we reach its
  slot, before the host could fetch the txs it names, and drop it. `release(slot)` hands
  back what peers said about the slot we just reached and forgets older slots.
- **Txs we lack.** The host fetches them from the sender first; if that failed or the
  peer was busy, it tries again a few times (`retry_later`), since SCP would drop the
  message and the peer may not say it again. After `FETCH_RETRIES`, SCP judges what we
  have.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field

from mcnode.node.messages import CheckedMsg

HELD_PER_SLOT = 256
FETCH_RETRIES = 3
RETRY_STEP = 0.1  # seconds: retry n waits n * RETRY_STEP


@dataclass(frozen=True, order=True)
class _Retry:
    due: float
    seq: int
    attempt: int = field(compare=False)
    checked: CheckedMsg = field(compare=False)


class Inbox:
    def __init__(self, per_slot: int = HELD_PER_SLOT) -> None:
        self.per_slot = per_slot
        self._held: dict[int, list[CheckedMsg]] = {}
        self._retries: list[_Retry] = []
        self._seq = itertools.count()

    def held(self) -> int:
        return sum(len(v) for v in self._held.values())

    def hold(self, checked: CheckedMsg) -> bool:
        """Keep a message for a later slot; False if that slot's share is full."""
        msgs = self._held.setdefault(checked.msg.slot_index, [])
        if len(msgs) >= self.per_slot:
            return False
        msgs.append(checked)
        return True

    def release(self, slot: int) -> list[CheckedMsg]:
        """What peers said about `slot` (now ours), in arrival order; older slots dropped."""
        out: list[CheckedMsg] = []
        for s in [s for s in self._held if s <= slot]:
            msgs = self._held.pop(s)
            if s == slot:
                out = msgs
        return out

    # -- fetch retries --------------------------------------------------------------------
    def retry_later(self, checked: CheckedMsg, attempt: int, now: float) -> bool:
        """Schedule delivery attempt `attempt` (1, 2, ...); False when retries are used up."""
        if attempt > FETCH_RETRIES:
            return False
        due = now + RETRY_STEP * attempt
        heapq.heappush(self._retries, _Retry(due, next(self._seq), attempt, checked))
        return True

    def next_due(self) -> float | None:
        return self._retries[0].due if self._retries else None

    def take_due(self, now: float) -> list[tuple[CheckedMsg, int]]:
        """(message, attempt) for every retry due by `now`, earliest first."""
        out: list[tuple[CheckedMsg, int]] = []
        while self._retries and self._retries[0].due <= now:
            r = heapq.heappop(self._retries)
            out.append((r.checked, r.attempt))
        return out
