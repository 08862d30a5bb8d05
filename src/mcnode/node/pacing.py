"""When to offer pending txs to SCP.

Rules of this file: arithmetic on times and slot numbers the caller passes; no I/O, no
clock of its own.

A validator nominates once per slot: the txs pending when the slot starts, or when the
first tx of an idle slot arrives. Txs arriving after that wait for the next slot, which
starts as soon as this one's block is appended (and not before `min_block_interval`
after the last block). Precisely, once per nomination round of a slot: a round that
times out without a candidate (SCP then starts the next one) lets us nominate again with
what is pending, so a slot whose first nominations all named txs that turned out
unusable (spent meanwhile, say) is not stuck with them while new txs wait.

Why not re-nominate as txs arrive: under load each new nomination names txs the peers
are still checking, and a peer hands a nomination to SCP only once it holds every tx
it names, so the slot chases a growing set until a ballot timeout settles it. Measured
(bench/RESULTS.md, 2026-12-02, eleventh session): at 50 tx/s on four validators, slots of
30 ms alternated with slots of ~1.1 s and p50 was ~0.7 s; with one nomination per slot
slots are regular and p50 halves. The price is one slot for a tx that arrives just after
its validator nominated, which a slot still in nomination could have taken (+~4 % p50
at 100 ms RTT and 5 tx/s).
"""

from __future__ import annotations

#: (slot index, nomination round)
Round = tuple[int, int]


class NominationPacer:
    def __init__(self, min_block_interval: float) -> None:
        self.min_block_interval = min_block_interval
        self.requested = False
        self._nominated_in: Round | None = None  # (slot, round) of our last nomination
        self._last_block = float("-inf")

    def request(self) -> None:
        """Txs are pending: nominate them in the first round we have not nominated in."""
        self.requested = True

    def due_at(self, round_: Round) -> float | None:
        """When the pending request may be served in `round_` (the current (slot,
        nomination round)), or None: no request, or we nominated in it already."""
        if not self.requested or round_ == self._nominated_in:
            return None
        return self._last_block + self.min_block_interval

    def take(self, now: float, round_: Round) -> bool:
        """True (and the request is consumed) if a nomination in `round_` is due by `now`."""
        due = self.due_at(round_)
        if due is None or due > now:
            return False
        self.requested = False
        return True

    def nominated(self, round_: Round) -> None:
        self._nominated_in = round_

    def block_appended(self, now: float) -> None:
        self._last_block = now
