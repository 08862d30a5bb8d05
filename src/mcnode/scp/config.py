"""Tunable settings of an SCP `Node`. Every field is read somewhere; tests pin each one."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ScpConfig:
    # Nomination round r lasts nomination_timeout + (r - 1) * nomination_timeout_increment.
    # The draft's "1 + n seconds" is the default (2, 3, 4, ... seconds).
    nomination_timeout: float = 2.0
    nomination_timeout_increment: float = 1.0
    # The ballot timer for counter n fires after ballot_timeout + (n - 1) * increment
    # (draft: "ballot.counter + 1" seconds).
    ballot_timeout: float = 2.0
    ballot_timeout_increment: float = 1.0
    # Externalized slots kept to answer laggards with our EXTERNALIZE message.
    max_slot_history: int = 5
    # Messages for slots ahead of ours are buffered (bounded) and replayed on arrival.
    max_future_slots: int = 3
    max_buffered_per_slot: int = 256
    # Re-send our latest message when a slot has made no progress for this long, so that a
    # lossy transport cannot stall the protocol. None: same as ballot_timeout.
    rebroadcast_interval: float | None = None
    # Ballot counters stay below max_counter_base + seconds spent on the slot (draft,
    # "Prepare message", exhaustion exception).
    max_counter_base: int = 1000
    # Vote for our own proposed values in every nomination round, not only in rounds
    # where we are a leader. The draft has only leaders introduce values, so that few
    # distinct values circulate; nomination has no part in safety (the ballot protocol
    # alone gives it), so this only changes how fast candidates appear. With one value
    # per tx and a union combine (mcnode's), every node holding a tx votes it at once:
    # a candidate needs two one-way delays instead of three, and a leader with nothing
    # to propose no longer costs a round timeout. Off here (the draft); on in the node.
    vote_own_values: bool = False
    # A candidate confirmed after our ballot started, while nothing of that ballot is
    # prepared yet (no p, no h), replaces it: we abandon to the next counter with the
    # new composite, as a ballot timeout would, without waiting for one. Nodes that
    # started their ballots with different candidate sets (some had a late value, some
    # not) then meet within a message delay (a ballot votes to prepare every lower
    # ballot of its value, and a v-blocking set at a higher counter bumps the others),
    # instead of after a ballot timeout. Candidates only accumulate, so this happens at
    # most once per new candidate. Its other half mends the split this can make (some
    # nodes moved to a bigger composite just before learning that the others had
    # prepared the smaller one): a node whose ballot holds another value than one a
    # quorum has confirmed prepared moves at once to the next counter with that value,
    # which the ballot timer would have done anyway (the draft's "value override"); at
    # most once per slot (a second time only toward a value that a v-blocking set
    # already votes to commit) and never for a confirmation older than a ballot it
    # accepted prepared (without both limits, two halves of a 100 ms network swapped
    # values at every counter). Abandoning a ballot is safe at any time; off: the
    # draft's rules.
    late_candidates: bool = False

    def nomination_timeout_for(self, round_: int) -> float:
        return self.nomination_timeout + (round_ - 1) * self.nomination_timeout_increment

    def ballot_timeout_for(self, counter: int) -> float:
        return self.ballot_timeout + (counter - 1) * self.ballot_timeout_increment

    def rebroadcast_after(self) -> float:
        if self.rebroadcast_interval is not None:
            return self.rebroadcast_interval
        return self.ballot_timeout

    def validate(self) -> None:
        for name in (
            "nomination_timeout",
            "ballot_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("nomination_timeout_increment", "ballot_timeout_increment"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.max_slot_history < 1:
            raise ValueError("max_slot_history must be at least 1")
        if self.max_future_slots < 0 or self.max_buffered_per_slot < 1:
            raise ValueError("future-slot buffer limits must be positive")
        if self.rebroadcast_interval is not None and self.rebroadcast_interval <= 0:
            raise ValueError("rebroadcast_interval must be positive")
        if self.max_counter_base < 1:
            raise ValueError("max_counter_base must be at least 1")
