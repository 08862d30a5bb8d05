"""When to offer pending txs to SCP.

Rules of this file: arithmetic on times the caller passes; no I/O, no clock of its own.
A request (a new tx, a block appended with txs still pending) is served as soon as the
host's timer task next runs, but never within `spacing` of the last nomination (txs
arriving meanwhile share one message: each nomination is a signed message to every peer)
nor before `min_block_interval` after the last block.
"""

from __future__ import annotations

NOMINATE_SPACING = 0.003  # seconds between two nominations


class NominationPacer:
    def __init__(self, min_block_interval: float, spacing: float = NOMINATE_SPACING) -> None:
        self.min_block_interval = min_block_interval
        self.spacing = spacing
        self.requested = False
        self._last_nomination = float("-inf")
        self._last_block = float("-inf")

    def request(self) -> None:
        self.requested = True

    def due_at(self) -> float | None:
        """When the pending request may be served, or None without one."""
        if not self.requested:
            return None
        return max(self._last_nomination + self.spacing, self._last_block + self.min_block_interval)

    def take(self, now: float) -> bool:
        """True (and the request is consumed) if a nomination is due by `now`."""
        due = self.due_at()
        if due is None or due > now:
            return False
        self.requested = False
        return True

    def nominated(self, now: float) -> None:
        self._last_nomination = now

    def block_appended(self, now: float) -> None:
        self._last_block = now
