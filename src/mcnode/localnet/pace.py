"""Is the load generator keeping its word? The schedule, its tally, and who is to blame.

`Pace` says how many payments are due at the requested rate, and drops (as *missed*)
what is more than `catch_up_s` behind: a stall is made good for a second, never by a
burst of minutes. Every moment a payment is owed, the generator knows why it is not
sent yet: no payment built (the generator's fault; worse, no output free to build one
from), or every submitter still waiting for a validator's answer (the network's). The
`Tally` counts all that, cumulatively; `judge` compares two tallies (the whole run, or
the last few seconds for the live view) and names the limit, in one sentence.

The generator is also the limit when validators refuse its payments as invalid (sending
at the rate is no use then). The network is the limit when it refuses payments for
capacity (`OVER_CAPACITY`, `NOT_SERVING`, a rate budget), or when payments it accepted
wait long for their block: by Little's law, the time-integral of the payments waiting,
over the number accepted, is how long one waited on average.

Pure: no clock, no I/O (times come in as arguments)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Limit = Literal["generator", "network"]
#: Refusals that mean "not now, too busy", as opposed to "this payment is bad".
CAPACITY_REFUSALS = frozenset({"OVER_CAPACITY", "NOT_SERVING", "OVER_BUDGET"})
MET = 0.95  # the rate is kept when at least this share of what was due went out
REFUSED_SHARE = 0.01  # more refused for capacity than this share: the network is the limit
LAG_SECONDS = 2.0  # an accepted payment waits longer than this for its block: lag


@dataclass
class Pace:
    rate: float
    start: float
    catch_up_s: float = 1.0
    sent: int = 0
    missed_generator: int = 0
    missed_network: int = 0

    def due(self, now: float) -> int:
        """Payments due by `now`: one at `start`, then one every 1/rate seconds."""
        if self.rate <= 0 or now < self.start:
            return 0
        return math.floor((now - self.start) * self.rate) + 1

    def owed(self, now: float) -> int:
        return self.due(now) - self.sent - self.missed_generator - self.missed_network

    def next_due(self) -> float:
        """When the next payment not yet sent (or missed) is due."""
        k = self.sent + self.missed_generator + self.missed_network
        return self.start + k / self.rate if self.rate > 0 else math.inf

    def drop_stale(self, now: float, blame: Limit) -> int:
        """Give up (as missed, blamed on `blame`) what is owed beyond `catch_up_s`."""
        excess = self.owed(now) - max(1, math.ceil(self.rate * self.catch_up_s))
        if excess <= 0:
            return 0
        if blame == "generator":
            self.missed_generator += excess
        else:
            self.missed_network += excess
        return excess


@dataclass(frozen=True)
class Tally:
    """Counts since the load started, at time `t` (seconds since it started)."""

    t: float = 0.0
    due: int = 0
    sent: int = 0  # handed to a submitter
    submitted: int = 0  # answered by a validator (accepted or refused)
    accepted: int = 0
    committed: int = 0
    refused_capacity: int = 0
    refused_invalid: int = 0  # refused for anything else: the payment itself
    missed_generator: int = 0
    missed_network: int = 0
    short_generator_s: float = 0.0  # owed, and no payment built
    short_no_coins_s: float = 0.0  # ... and no output free to build one from
    short_network_s: float = 0.0  # owed, and every submitter waiting on a validator
    in_flight: int = 0  # accepted, not committed yet (at `t`)
    in_flight_s: float = 0.0  # the integral of in_flight over time (payment-seconds)
    built: int = 0
    build_cpu_s: float = 0.0
    builders: int = 1
    free_coins: int = 0  # at `t`


@dataclass(frozen=True)
class Verdict:
    limited_by: Limit | None
    reason: str | None


def judge(a: Tally, b: Tally, rate: float) -> Verdict:
    """Who limited the load between tallies `a` and `b` (b later), at `rate` tx/s."""
    dt = b.t - a.t
    due = b.due - a.due
    if rate <= 0 or dt <= 0 or due <= 0:
        return Verdict(None, None)
    sent = b.sent - a.sent
    short_gen = b.short_generator_s - a.short_generator_s
    short_net = b.short_network_s - a.short_network_s
    if sent < MET * due:
        pct = 100 * (1 - sent / due)
        if short_gen >= short_net:
            return Verdict("generator", _generator_reason(a, b, dt, pct))
        return Verdict(
            "network",
            f"{pct:.0f}% of due payments not sent: validators answered proposals slower "
            f"than the rate (every submitter waiting, {100 * short_net / dt:.0f}% of the time)",
        )
    submitted = b.submitted - a.submitted
    invalid = b.refused_invalid - a.refused_invalid
    if invalid > max(1, REFUSED_SHARE * submitted):
        return Verdict(
            "generator",
            f"validators refused {invalid} of {submitted} payments as invalid "
            "(see rejected_txs): sent at the rate, but not payments they accept",
        )
    refused = b.refused_capacity - a.refused_capacity
    if refused > max(1, REFUSED_SHARE * submitted):
        return Verdict(
            "network",
            f"validators refused {refused} of {submitted} payments for capacity "
            "(OVER_CAPACITY, NOT_SERVING or over budget)",
        )
    accepted = b.accepted - a.accepted
    lag = (b.in_flight_s - a.in_flight_s) / max(1, accepted)
    if lag > LAG_SECONDS:
        return Verdict(
            "network",
            f"commit lag: an accepted payment waited {lag:.1f} s on average for its block "
            f"(more than {LAG_SECONDS:.0f} s; {b.in_flight} waiting now)",
        )
    return Verdict(None, None)


def _generator_reason(a: Tally, b: Tally, dt: float, pct: float) -> str:
    no_coins = b.short_no_coins_s - a.short_no_coins_s
    short = b.short_generator_s - a.short_generator_s
    if no_coins > short / 2:
        return (
            f"{pct:.0f}% of due payments not sent: no spendable output free "
            f"{100 * no_coins / dt:.0f}% of the time (every one queued or in flight; "
            "change is spendable only once committed)"
        )
    built = b.built - a.built
    cpu = b.build_cpu_s - a.build_cpu_s
    each = f", {1000 * cpu / built:.0f} ms of CPU each" if built else ""
    return (
        f"{pct:.0f}% of due payments not sent: none built in time "
        f"{100 * short / dt:.0f}% of the time ({processes(b.builders)} made "
        f"{built / dt:.1f} payments/s{each})"
    )


def processes(n: int) -> str:
    return f"{n} builder process" + ("" if n == 1 else "es")
