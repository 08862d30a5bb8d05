"""Links to peers: one gRPC channel, one bounded queue and one sender task per peer.

A slow or dead peer never blocks the others: its queue drops the oldest message when full,
and its sender retries with exponential backoff. Consensus messages are only useful while
fresh, so retrying the newest ones is what matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from mcnode.node.config import PeerConfig
from mcnode.node.logs import NodeLog
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

QUEUE_LIMIT = 1000
CALL_DEADLINE = 2.0
BACKOFF_MIN, BACKOFF_MAX = 0.05, 5.0


def channel_options(max_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.keepalive_time_ms", 10_000),
        # A peer that was down must be reachable again within a second or two of coming
        # back, not after gRPC's default reconnect backoff (up to two minutes).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


class PeerLink:
    def __init__(
        self, cfg: PeerConfig, max_bytes: int, log: NodeLog, on_sent: Callable[[], None]
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.log = log
        self.channel = grpc.aio.insecure_channel(cfg.address, options=channel_options(max_bytes))
        self.peer = rpc.ConsensusPeerStub(self.channel)
        self.chain = rpc.BlockchainStub(self.channel)
        self.queue: asyncio.Queue[pb.ConsensusMsg] = asyncio.Queue(QUEUE_LIMIT)
        self.connected = False
        self.last_ok: float | None = None  # wall time of the last successful call
        self.last_heard: float | None = None  # wall time of the last message from it
        self.slot = 0  # highest slot it has spoken about
        self.blocks = 0  # its block count when we last asked (GetLastBlockInfo)
        self.blocks_asked: float | None = None  # monotonic time of that answer
        self.dropped = 0
        self._on_sent = on_sent
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sender(), name=f"peer-{self.name}")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.channel.close()

    def send(self, msg: pb.ConsensusMsg) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(msg)

    async def _sender(self) -> None:
        """Writes queued messages to one long-lived ConsensusStream call; when the call
        fails (peer down or restarted), waits with backoff and opens a new one. The
        message whose write failed is sent again first unless newer ones are waiting."""
        backoff = BACKOFF_MIN
        msg: pb.ConsensusMsg | None = None
        while True:
            call = self.peer.ConsensusStream()
            try:
                while True:
                    if msg is None:
                        msg = await self.queue.get()
                    await call.write(msg)
                    msg = None
                    self._ok()
                    self._on_sent()
                    backoff = BACKOFF_MIN
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
                call.cancel()
                code = e.code().name if isinstance(e, grpc.aio.AioRpcError) else "CLOSED"
                if self.connected:
                    self.log.warning("peer unreachable", peer=self.name, code=code)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(BACKOFF_MAX, backoff * 2)
                if not self.queue.empty():
                    msg = None  # a newer message supersedes this one's urgency
            except asyncio.CancelledError:
                call.cancel()
                raise

    def _ok(self) -> None:
        if not self.connected:
            self.log.info("peer connected", peer=self.name)
        self.connected = True
        self.last_ok = time.time()

    async def call(
        self, fn: Callable[..., Awaitable[Any]], req: Any, timeout: float = CALL_DEADLINE
    ) -> Any:
        """A unary call to this peer with a deadline; marks the link up or down."""
        try:
            out = await fn(req, timeout=timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError:
            self.connected = False
            raise
        self._ok()
        return out

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.cfg.address,
            "connected": self.connected,
            "last_heard": self.last_heard,
            "last_ok": self.last_ok,
            "slot": self.slot,
            "blocks": self.blocks,
            "queued": self.queue.qsize(),
            "dropped": self.dropped,
        }
