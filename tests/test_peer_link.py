"""The link to one peer: how fast it finds a peer that comes (back) up, and what marks it
down. In-process: a real gRPC server on loopback that records what it is sent."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from mcnode.node import peers
from mcnode.node.config import PeerConfig
from mcnode.node.logs import NodeLog
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Recorder(rpc.ConsensusPeerServicer):
    def __init__(self) -> None:
        self.got: list[pb.ConsensusMsg] = []
        self.arrived = asyncio.Event()

    async def ConsensusStream(
        self, request_iterator: AsyncIterator[pb.ConsensusMsg], context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        async for m in request_iterator:
            self.got.append(m)
            self.arrived.set()
        return pb.ConsensusMsgResponse(result=pb.PEER_OK)

    async def FetchTxs(
        self, request: pb.FetchTxsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncryptedTxs:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no session")
        raise AssertionError("unreachable")


async def serve(port: int, rec: Recorder) -> grpc.aio.Server:
    server = grpc.aio.server()
    rpc.add_ConsensusPeerServicer_to_server(rec, server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    await server.start()
    return server


class RecordingLog(NodeLog):
    """Keeps every event and its fields."""

    def __init__(self) -> None:
        super().__init__("test")
        self.events: list[tuple[str, dict[str, object]]] = []

    def _log(self, lvl: int, event: str, exc: bool, /, **kv: object) -> None:
        self.events.append((event, kv))


def link_to(port: int, log: NodeLog | None = None) -> peers.PeerLink:
    cfg = PeerConfig(name="peer", host="127.0.0.1", port=port, signing_key=b"\x00" * 32)
    return peers.PeerLink(cfg, "me", 1 << 20, log or NodeLog("test"), lambda: None)


@contextlib.asynccontextmanager
async def running(link: peers.PeerLink) -> AsyncIterator[peers.PeerLink]:
    """The link's tasks run while inside; cancelled and the channel closed on the way out."""
    task = asyncio.create_task(link.run())
    try:
        yield link
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await link.close()


async def _late_peer(down_for: float) -> tuple[float, peers.PeerLink, Recorder]:
    port = free_port()
    rec = Recorder()
    server = None
    try:
        async with running(link_to(port)) as link:
            link.send(pb.ConsensusMsg(scp_msg=b"while down"))
            await asyncio.sleep(down_for)  # the sender fails, backs off, fails ...
            assert not link.connected and not rec.got
            server = await serve(port, rec)
            up = time.monotonic()
            await asyncio.wait_for(rec.arrived.wait(), 30)
            waited = time.monotonic() - up
            for _ in range(100):  # the channel's state change may be noticed a moment later
                if link.connected:
                    break
                await asyncio.sleep(0.01)
            return waited, link, rec
    finally:
        if server is not None:
            await server.stop(None)


def test_a_peer_that_comes_up_late_hears_from_us_within_about_a_second() -> None:
    """After 7 s down, any backoff of ours would be long; a peer that comes up then must
    not wait it out. gRPC's own reconnect backoff here is at most 1 s."""
    waited, link, rec = asyncio.run(_late_peer(7.0))
    assert rec.got[0].scp_msg == b"while down"
    assert link.connected
    assert waited < 2.5, f"the message waited {waited:.2f}s after the peer came up"


def test_an_application_error_does_not_mark_the_peer_down() -> None:
    async def go() -> tuple[bool, bool]:
        port = free_port()
        server = await serve(port, Recorder())
        try:
            async with running(link_to(port)) as link:
                for _ in range(200):  # connects by itself, with nothing to send
                    if link.connected:
                        break
                    await asyncio.sleep(0.01)
                before = link.connected
                with pytest.raises(peers.PeerCallError) as e:
                    await link.fetch_txs(b"\x01" * 32)
                assert e.value.code == "FAILED_PRECONDITION"
                assert e.value.detail == "no session"
                return before, link.connected
        finally:
            await server.stop(None)

    assert asyncio.run(go()) == (True, True)


async def _until(cond: Callable[[], bool], limit: float) -> float:
    t = time.monotonic()
    while not cond():
        assert time.monotonic() - t < limit, "timed out"
        await asyncio.sleep(0.01)
    return time.monotonic() - t


def test_connected_follows_the_peer_going_down_and_coming_back() -> None:
    """With nothing to send: the link connects by itself, sees the peer stop, and sees it
    come back on the same port. Each change is a log line in plain words (not gRPC's
    connectivity state names)."""
    log = RecordingLog()

    async def go() -> None:
        port = free_port()
        server = await serve(port, Recorder())
        try:
            async with running(link_to(port, log)) as link:
                await _until(lambda: link.connected, 5)
                await server.stop(None)
                await _until(lambda: not link.connected, 5)
                server = await serve(port, Recorder())
                await _until(lambda: link.connected, 5)
        finally:
            await server.stop(None)

    asyncio.run(go())
    changes = [(e, kv) for e, kv in log.events if e in ("peer connected", "peer unreachable")]
    assert [e for e, _ in changes] == ["peer connected", "peer unreachable", "peer connected"]
    down = changes[1][1]
    assert set(down) == {"peer", "reason"} and down["peer"] == "peer"
    assert down["reason"] in set(peers._DOWN_REASONS.values()), down


class Refuser(rpc.ConsensusPeerServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def ConsensusStream(
        self, request_iterator: AsyncIterator[pb.ConsensusMsg], context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        self.calls += 1
        async for _ in request_iterator:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a configured peer")
        return pb.ConsensusMsgResponse(result=pb.PEER_OK)


def test_a_peer_that_refuses_our_stream_is_retried_with_backoff_not_in_a_spin() -> None:
    async def go() -> int:
        port = free_port()
        refuser = Refuser()
        server = grpc.aio.server()
        rpc.add_ConsensusPeerServicer_to_server(refuser, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        try:
            async with running(link_to(port)) as link:
                # A refusal shows at the write after the refused one: keep writing, as SCP
                # does.
                for i in range(30):
                    link.send(pb.ConsensusMsg(scp_msg=b"%d" % i))
                    await asyncio.sleep(0.05)
                assert refuser.calls >= 2  # it does retry
                assert link.connected  # refused is not unreachable
                return refuser.calls
        finally:
            await server.stop(None)

    # Backoff 0.05, 0.1, 0.2, ... s: about 6 calls in 1.5 s; without it, one per message.
    assert asyncio.run(go()) <= 12
