"""Structured concurrency for the service: every task of a running node lives in one
`asyncio.TaskGroup`, so stopping the node cancels all of them and nothing outlives it.

Rules of this file: three kinds of work, one way each.
- **Services** (`run(services)`): the long-lived loops (SCP timers, catch-up, peer links).
  One that fails takes the node down: the group cancels the rest and `run` returns the
  exit code, after one log line.
- **Background work** (`spawn`): short tasks started while handling a message (fetch a
  peer's txs, relay txs). Their expected failures are handled inside them; anything that
  escapes is a bug in handling one message, logged and counted, and the node goes on.
- **Stopping** (`stop()`, or `fail(code, reason)` from anywhere, including gRPC handlers
  that run outside the group): the group is cancelled and `run` returns the code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any

from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics

EXIT_STOPPED = 0  # SIGINT/SIGTERM
EXIT_LEDGER = 3  # our own ledger cannot be written
EXIT_INTERNAL = 4  # a service task failed: a bug
EXIT_ENCLAVE = 5  # the enclave process could not start


class _Shutdown(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Supervisor:
    def __init__(self, log: NodeLog, metrics: NodeMetrics) -> None:
        self.log = log
        self.metrics = metrics
        self._group: asyncio.TaskGroup | None = None
        self._stop: asyncio.Future[int] | None = None
        self._code: int | None = None
        self._reason = ""

    @property
    def running(self) -> bool:
        return self._group is not None

    async def run(self, services: Mapping[str, Coroutine[Any, Any, None]]) -> int:
        """Run `services` (name -> coroutine) until `stop`, `fail`, or one of them fails;
        returns the exit code."""
        loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        if self._code is not None:  # stopped before it started
            self._stop.set_result(self._code)
        try:
            async with asyncio.TaskGroup() as tg:
                self._group = tg
                for name, coro in services.items():
                    tg.create_task(self._service(name, coro), name=name)
                tg.create_task(self._until_stopped(), name="stop")
        except* _Shutdown:
            pass
        except* Exception as eg:
            self._code = EXIT_INTERNAL
            first = eg.exceptions[0]
            self._reason = f"{type(first).__name__}: {first}"
            self.log.error("stopping: a service task failed", error=self._reason)
        finally:
            self._group = None
        return self._code or EXIT_STOPPED

    async def _service(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        await coro
        raise RuntimeError(f"service {name!r} returned")  # services run until cancelled

    async def _until_stopped(self) -> None:
        assert self._stop is not None
        code = await self._stop
        raise _Shutdown(code)

    def stop(self, code: int = EXIT_STOPPED, reason: str = "") -> None:
        """Stop the node (first caller's code wins); safe from any task or callback."""
        if self._code is not None:
            return
        self._code, self._reason = code, reason
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(code)

    def fail(self, code: int, reason: str) -> None:
        """Stop the node because it cannot go on: one error line, then exit `code`."""
        if self._code is None:
            self.log.error("stopping", code=code, error=reason)
        self.stop(code, reason)

    @property
    def exit_reason(self) -> str:
        return self._reason

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        """Background work inside the group; its failure is logged and counted. Dropped
        (closed unstarted) when the node is not running, e.g. while it stops."""
        if self._group is None or self._code is not None:
            coro.close()
            return
        self._group.create_task(self._guarded(coro, what), name=what)

    async def _guarded(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await coro
        except Exception as e:
            self.metrics.errors.labels("task").inc()
            self.log.error("background task failed", task=what, error=repr(e))
