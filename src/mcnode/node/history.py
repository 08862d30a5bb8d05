"""What the status page draws: small, fixed-size records of the node's recent past.

- `RateHistory`: counts per time bucket (10 s buckets, one hour), for blocks made and txs
  committed; the page turns them into blocks/min and tx/s.
- `SlotLog`: one `SlotRecord` per slot this node decided (how long nomination and the
  ballot took, how many txs), the last `SLOT_LOG_SIZE` of them (`GET /scp?limit=N`).
- `WarningLog`: the last warnings and errors the node logged (`NodeLog` feeds it).

Rules of this file: memory is bounded by construction (rings, never lists that grow); time
is passed in, never read here, so tests drive it; nothing here knows HTTP or SCP.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

BUCKET_S = 10  # seconds per bucket
BUCKETS = 360  # one hour
SLOT_LOG_SIZE = 100
WARNING_LOG_SIZE = 50


class RateHistory:
    """Counts of named events per `bucket_s`-second bucket over the last `buckets` buckets.
    A bucket is keyed by its start time (a multiple of `bucket_s` since the epoch), so
    buckets of different nodes line up."""

    def __init__(self, names: tuple[str, ...], bucket_s: int = BUCKET_S, buckets: int = BUCKETS):
        if bucket_s < 1 or buckets < 1:
            raise ValueError("bucket_s and buckets must be at least 1")
        self.names = names
        self.bucket_s = bucket_s
        self.buckets = buckets
        self._counts = {n: [0] * buckets for n in names}
        self._latest: int | None = None  # index (time // bucket_s) of the newest bucket

    def _advance(self, now: float) -> int:
        """Move to the bucket holding `now` (never back), zeroing the buckets skipped
        over; returns the newest bucket's index."""
        idx = int(now // self.bucket_s)
        if self._latest is None:
            self._latest = idx
        elif idx > self._latest:
            # At most one lap: past that, every bucket has been zeroed once.
            for i in range(self._latest + 1, min(idx, self._latest + self.buckets) + 1):
                for counts in self._counts.values():
                    counts[i % self.buckets] = 0
            self._latest = idx
        return self._latest

    def add(self, now: float, **counts: int) -> None:
        """Count events at wall time `now` (an event older than the window is dropped; one
        from before the newest bucket, within the window, goes in its own bucket)."""
        latest = self._advance(now)
        idx = int(now // self.bucket_s)
        if idx <= latest - self.buckets:
            return
        for name, n in counts.items():
            self._counts[name][idx % self.buckets] += n

    def series(self, now: float) -> dict[str, Any]:
        """Every bucket of the window ending with the bucket holding `now`, oldest first:
        `{"bucket_s", "start", "end", "<name>": [counts...]}` (`start`, `end`: unix times)."""
        latest = self._advance(now)
        first = latest - self.buckets + 1
        out: dict[str, Any] = {
            "bucket_s": self.bucket_s,
            "start": first * self.bucket_s,
            "end": (latest + 1) * self.bucket_s,
        }
        for name, counts in self._counts.items():
            out[name] = [counts[i % self.buckets] for i in range(first, latest + 1)]
        return out


@dataclass(frozen=True, slots=True)
class SlotRecord:
    """A slot this node decided: when, how many txs, and how long each phase took (seconds
    from the slot's first work: our first nomination, or the previous block for a slot that
    started busy). `phases` maps NOMINATE/PREPARE/COMMIT to the time the slot left it."""

    slot: int
    decided_at: float  # wall time
    txs: int
    total_s: float
    phases: Mapping[str, float]
    nomination_rounds: int
    ballot_counter: int

    @property
    def nomination_s(self) -> float:
        return self.phases.get("NOMINATE", self.total_s)

    @property
    def ballot_s(self) -> float:
        return max(0.0, self.total_s - self.nomination_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "decided_at": round(self.decided_at, 3),
            "txs": self.txs,
            "total_s": round(self.total_s, 4),
            "nomination_s": round(self.nomination_s, 4),
            "ballot_s": round(self.ballot_s, 4),
            "left_phase_at_s": {k: round(v, 4) for k, v in self.phases.items()},
            "nomination_rounds": self.nomination_rounds,
            "ballot_counter": self.ballot_counter,
        }


class SlotLog:
    def __init__(self, size: int = SLOT_LOG_SIZE) -> None:
        self.size = size
        self._records: deque[SlotRecord] = deque(maxlen=size)

    def add(self, record: SlotRecord) -> None:
        self._records.append(record)

    def recent(self, limit: int) -> list[SlotRecord]:
        """The newest `limit` records, newest first."""
        out = list(self._records)[-limit:] if limit > 0 else []
        out.reverse()
        return out

    def last(self) -> SlotRecord | None:
        return self._records[-1] if self._records else None


@dataclass(frozen=True, slots=True)
class LoggedWarning:
    at: float  # wall time
    level: str
    event: str
    fields: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": round(self.at, 3),
            "level": self.level,
            "event": self.event,
            "fields": dict(self.fields),
        }


class WarningLog:
    """The last `size` warnings and errors, as they were logged (the same fields: no
    secrets reach the log, so none reach this)."""

    def __init__(self, size: int = WARNING_LOG_SIZE) -> None:
        self._items: deque[LoggedWarning] = deque(maxlen=size)

    def add(self, item: LoggedWarning) -> None:
        self._items.append(item)

    def recent(self) -> list[LoggedWarning]:
        """Newest first."""
        return list(reversed(self._items))
