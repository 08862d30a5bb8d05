"""NodeMetrics.follow_scp: SCP's own counters (`Node.stats`) become Prometheus counters that
only ever grow, across the SCP node the service replaces after a catch-up."""

from __future__ import annotations

from collections import Counter

import pytest

from mcnode.node.metrics import NodeMetrics, SlotTimer


def bumps(m: NodeMetrics, by: str) -> float | None:
    return m.registry.get_sample_value("mcnode_scp_ballot_bumps_total", {"by": by})


def timeouts(m: NodeMetrics) -> float | None:
    return m.registry.get_sample_value("mcnode_scp_nomination_timeouts_total")


def test_every_cause_is_a_series_at_zero_from_the_start() -> None:
    # So that increase() over a window sees the first bump of each cause.
    m = NodeMetrics()
    causes = ("timer", "v_blocking", "late_candidate", "overridden")
    assert [bumps(m, by) for by in causes] == [0, 0, 0, 0]
    assert timeouts(m) == 0


def test_scp_counts_are_added_as_they_grow() -> None:
    m = NodeMetrics()
    stats: Counter[str] = Counter()
    m.follow_scp(stats)
    assert timeouts(m) == 0
    stats.update({"ballot_bumps_timer": 2, "ballot_bumps_late_candidate": 1})
    stats["nomination_timeouts"] += 3
    m.follow_scp(stats)
    m.follow_scp(stats)  # nothing new: nothing added
    assert bumps(m, "timer") == 2 and bumps(m, "late_candidate") == 1
    assert timeouts(m) == 3
    stats["ballot_bumps_v-blocking"] += 1
    m.follow_scp(stats)
    assert bumps(m, "v_blocking") == 1 and bumps(m, "timer") == 2


def test_a_new_scp_node_counts_from_zero_and_ours_go_on() -> None:
    m = NodeMetrics()
    old: Counter[str] = Counter({"ballot_bumps_timer": 5, "nomination_timeouts": 4})
    m.follow_scp(old)
    new: Counter[str] = Counter({"ballot_bumps_timer": 1})  # rebuilt after a catch-up
    m.follow_scp(new)
    assert bumps(m, "timer") == 6 and timeouts(m) == 4


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_slot_that_starts_busy_keeps_its_clock_when_we_nominate() -> None:
    # Found by CI: peers' messages, released when the slot began, took it out of
    # NOMINATE before our own nomination; the nomination restarted the slot's clock, so
    # the status page showed a nomination phase (6.9 ms) longer than its slot (1.7 ms).
    clock = Clock()
    timer = SlotTimer(NodeMetrics(), clock)
    timer.next_slot()  # the last block
    clock.now += 0.007
    timer.observe(2, ("PREPARE", 1, 1))  # peers' messages moved the slot on
    clock.now += 0.001
    timer.work_started()  # then we nominate our pending txs
    clock.now += 0.002
    total = timer.externalized()
    assert timer.left_at["NOMINATE"] == pytest.approx(0.007)
    assert total == pytest.approx(0.010) and total >= timer.left_at["NOMINATE"]


def test_a_slot_we_start_is_timed_from_our_first_nomination() -> None:
    clock = Clock()
    timer = SlotTimer(NodeMetrics(), clock)
    timer.next_slot()
    clock.now += 5.0  # idle: no work, no time
    timer.work_started()
    clock.now += 0.003
    timer.work_started()  # a second nomination round does not restart it
    timer.observe(2, ("PREPARE", 1, 1))
    clock.now += 0.004
    assert timer.externalized() == pytest.approx(0.007)
    assert timer.left_at == {"NOMINATE": pytest.approx(0.003)}
