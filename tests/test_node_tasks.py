"""The service's task group: what stops a node, with which exit code, and what does not."""

from __future__ import annotations

import asyncio

from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics
from mcnode.node.tasks import EXIT_INTERNAL, EXIT_LEDGER, EXIT_STOPPED, Supervisor


def supervisor() -> Supervisor:
    return Supervisor(NodeLog("t"), NodeMetrics())


async def forever(started: list[str], name: str) -> None:
    started.append(name)
    try:
        await asyncio.Event().wait()
    finally:
        started.append(f"{name} cancelled")


def test_stop_cancels_every_service_and_returns_0() -> None:
    async def go() -> tuple[int, list[str]]:
        sup, log = supervisor(), []
        asyncio.get_running_loop().call_later(0.01, sup.stop)
        code = await sup.run({"a": forever(log, "a"), "b": forever(log, "b")})
        return code, log

    code, log = asyncio.run(go())
    assert code == EXIT_STOPPED
    assert sorted(log) == ["a", "a cancelled", "b", "b cancelled"]


def test_fail_from_outside_the_group_stops_with_its_code_and_first_reason_wins() -> None:
    async def go() -> tuple[int, str]:
        sup, log = supervisor(), []

        def from_a_grpc_handler() -> None:
            sup.fail(EXIT_LEDGER, "ledger unusable: disk full")
            sup.fail(EXIT_INTERNAL, "later")

        asyncio.get_running_loop().call_later(0.01, from_a_grpc_handler)
        return await sup.run({"a": forever(log, "a")}), sup.exit_reason

    assert asyncio.run(go()) == (EXIT_LEDGER, "ledger unusable: disk full")


def test_a_failing_service_stops_the_node_with_exit_4() -> None:
    async def broken() -> None:
        await asyncio.sleep(0)
        raise KeyError("bug")

    async def go() -> tuple[int, list[str], str]:
        sup, log = supervisor(), []
        code = await sup.run({"a": forever(log, "a"), "broken": broken()})
        return code, log, sup.exit_reason

    code, log, reason = asyncio.run(go())
    assert code == EXIT_INTERNAL and "KeyError" in reason
    assert log == ["a", "a cancelled"]


def test_a_service_that_returns_is_a_bug_too() -> None:
    async def quits() -> None:
        return None

    assert asyncio.run(supervisor().run({"quits": quits()})) == EXIT_INTERNAL


def test_background_work_that_fails_is_counted_and_the_node_goes_on() -> None:
    async def go() -> tuple[int, float | None, list[str]]:
        sup, log = supervisor(), []

        async def bad() -> None:
            raise ValueError("one message's bug")

        async def good() -> None:
            log.append("good ran")

        async def starter() -> None:
            sup.spawn(bad(), "bad")
            sup.spawn(good(), "good")
            await asyncio.sleep(0.02)
            log.append("still running")
            sup.stop()
            await asyncio.Event().wait()

        code = await sup.run({"starter": starter()})
        failures = sup.metrics.registry.get_sample_value("mcnode_errors_total", {"where": "task"})
        return code, failures, log

    assert asyncio.run(go()) == (EXIT_STOPPED, 1.0, ["good ran", "still running"])


def test_work_spawned_when_the_node_is_not_running_is_dropped_unstarted() -> None:
    ran: list[int] = []

    async def work() -> None:
        ran.append(1)

    sup = supervisor()
    coro = work()
    sup.spawn(coro, "late")
    assert coro.cr_frame is None  # closed, never started: no "never awaited" warning
    assert not ran


def test_a_stop_before_run_starts_returns_at_once() -> None:
    async def go() -> int:
        sup, log = supervisor(), []
        sup.stop()
        return await sup.run({"a": forever(log, "a")})

    assert asyncio.run(go()) == EXIT_STOPPED
