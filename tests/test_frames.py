"""The consensus port (`node.frames`): framing, and a real TLS listener and link on
loopback: who gets in, what ends a connection, what keeps one alive, and redialling."""

from __future__ import annotations

import asyncio
import itertools
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcnode.crypto.rng import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.node import frames
from mcnode.node.config import Budget, RateLimits
from mcnode.node.frames import (
    PREFACE,
    FrameDecoder,
    FrameError,
    FrameLink,
    FrameServer,
    client_context,
    frame,
    server_context,
)
from mcnode.node.gate import Budgets, Gate, Penalties
from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics
from mcnode.node.tls import PeerCerts, make_tls_identity, write_tls_identity
from mcnode.wire import consensus_pb2 as pb

# -- framing ------------------------------------------------------------------------------------


def stream_of(payloads: list[bytes]) -> bytes:
    return PREFACE + b"".join(frame(p) for p in payloads)


@given(
    st.lists(st.binary(max_size=300), max_size=20),
    st.lists(st.integers(min_value=0, max_value=7000), max_size=30),
)
def test_any_split_of_a_stream_gives_its_frames(payloads: list[bytes], cuts: list[int]) -> None:
    data = stream_of(payloads)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    d = FrameDecoder(300)
    out: list[bytes] = []
    for a, b in itertools.pairwise(points):
        out += d.feed(data[a:b])
    assert out == payloads


def test_a_frame_over_the_limit_is_refused_before_its_body() -> None:
    d = FrameDecoder(100)
    assert d.feed(PREFACE + frame(b"x" * 100)) == [b"x" * 100]
    with pytest.raises(FrameError, match="over the limit"):
        d.feed((101).to_bytes(4, "big"))  # the length alone is enough


@pytest.mark.parametrize("data", [b"X", b"MCF2", b"GET / HTTP/1.1\r\n", b"\x00\x00\x00\x05hello"])
def test_a_stream_without_the_preface_is_refused(data: bytes) -> None:
    with pytest.raises(FrameError, match="preface"):
        FrameDecoder(100).feed(data)


def test_heartbeats_are_empty_frames() -> None:
    assert FrameDecoder(10).feed(PREFACE + frames.HEARTBEAT * 2 + frame(b"a")) == [b"", b"", b"a"]


# -- a listener and a link on loopback ------------------------------------------------------------


class Ident:
    """A node's TLS files (as `mcnode keygen` writes them)."""

    def __init__(self, d: Path, name: str, seed: int) -> None:
        rng = SeededRandom(seed)
        ident = make_tls_identity(name, ed25519_keypair(rng)[0], rng)
        self.key, self.cert = d / f"{name}.key", d / f"{name}.pem"
        write_tls_identity(self.key, self.cert, ident)
        self.pem = ident.cert_pem


class World:
    """alice listens; bob is her configured peer; mallory is nobody's."""

    def __init__(self, d: Path, limits: RateLimits | None = None, connections: int = 8) -> None:
        self.alice, self.bob, self.mallory = (
            Ident(d, n, i) for i, n in enumerate(("alice", "bob", "mallory"))
        )
        self.metrics = NodeMetrics()
        self.penalties = Penalties(time.monotonic)
        self.gate = Gate(
            "peer",
            Budgets.from_limits(limits or RateLimits(), lambda: 0.0),
            self.metrics,
            NodeLog("alice"),
            penalties=self.penalties,
        )
        self.got: list[tuple[bytes, str]] = []
        self.arrived = asyncio.Event()
        self.result = pb.PEER_OK
        certs = PeerCerts({"bob": self.bob.pem})
        self.server = FrameServer(
            server_context(self.alice.cert, self.alice.key, certs.bundle + self.alice.pem),
            certs.name_of_der,
            self.receive,
            self.gate,
            self.penalties,
            NodeLog("alice"),
            max_bytes=1000,
            max_connections=connections,
        )
        self.port = 0
        self.states: list[bool] = []

    def receive(self, msg: pb.ConsensusMsg, peer: str) -> int:
        self.got.append((msg.scp_msg, peer))
        self.arrived.set()
        return self.result

    async def start(self) -> None:
        self.port = await self.server.start("127.0.0.1", self.port)

    def link(self, who: Ident | None = None) -> FrameLink:
        who = who or self.bob
        return FrameLink(
            "alice",
            "127.0.0.1",
            self.port,
            client_context(who.cert, who.key, self.alice.pem),
            NodeLog("bob"),
            lambda: None,
            lambda up, why: self.states.append(up),
            queue_limit=10,
        )

    async def raw(
        self, who: Ident | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        who = who or self.bob
        return await asyncio.open_connection(
            "127.0.0.1",
            self.port,
            ssl=client_context(who.cert, who.key, self.alice.pem),
            server_hostname=frames.PEER_TLS_NAME,
        )

    def refused(self, reason: str) -> float:
        counter = self.metrics.requests_refused.labels("peer", frames.METHOD, reason)
        return counter._value.get()  # type: ignore[attr-defined,no-any-return]

    def peer_refused(self, reason: str) -> float:
        counter = self.metrics.peer_refused.labels(frames.METHOD, reason)
        return counter._value.get()  # type: ignore[attr-defined,no-any-return]

    async def until(self, what: Callable[[], bool], seconds: float = 5.0) -> None:
        async def poll() -> None:
            while not what():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(poll(), seconds)


def msg(text: bytes) -> pb.ConsensusMsg:
    return pb.ConsensusMsg(scp_msg=text, signer=b"k" * 32)


def run(tmp_path: Path, body: Callable[[World], Awaitable[None]], **kw: object) -> None:
    async def main() -> None:
        w = World(tmp_path, **kw)  # type: ignore[arg-type]
        await w.start()
        try:
            await body(w)
        finally:
            await w.server.close()

    asyncio.run(main())


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True when the server ends the connection within 3 s."""
    try:
        return await asyncio.wait_for(reader.read(), 3.0) == b""
    except (ConnectionError, ssl.SSLError):
        return True


def test_a_configured_peer_s_messages_arrive_in_order_as_its(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        link = w.link()
        link.send(msg(b"queued before the connection"))
        task = asyncio.create_task(link.run())
        await w.until(lambda: link.up)
        for i in range(50):
            link.send(msg(b"m%d" % i))
        await w.until(lambda: len(w.got) == 51)
        assert w.got == [(b"queued before the connection", "bob")] + [
            (b"m%d" % i, "bob") for i in range(50)
        ]
        assert w.states == [True]
        task.cancel()

    run(tmp_path, body)


def test_a_stranger_does_not_get_past_the_handshake(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        try:  # TLS 1.3: the client may finish before the server checks its certificate
            reader, writer = await w.raw(w.mallory)
        except (ssl.SSLError, ConnectionError):
            pass
        else:
            writer.write(PREFACE + frame(msg(b"hello").SerializeToString()))
            assert await closed_by_server(reader)
        link = w.link(w.mallory)
        task = asyncio.create_task(link.run())
        await asyncio.sleep(0.5)
        assert not link.up and w.got == [] and w.server.connections == 0
        task.cancel()

    run(tmp_path, body)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "undecodable"),  # not our preface
        (PREFACE + (1001).to_bytes(4, "big"), "undecodable"),  # over max_bytes
        (PREFACE + frame(b"\xff\xff\xff"), "undecodable"),  # not a ConsensusMsg
    ],
)
def test_bad_bytes_end_the_connection_and_are_counted(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    async def body(w: World) -> None:
        reader, writer = await w.raw()
        writer.write(data)
        assert await closed_by_server(reader)
        writer.close()
        assert w.refused(reason) == 1 and w.got == []
        await w.until(lambda: w.server.connections == 0)
        # ... and the listener goes on: the next connection is served.
        link = w.link()
        task = asyncio.create_task(link.run())
        await w.until(lambda: link.up)
        link.send(msg(b"after"))
        await w.until(lambda: w.got == [(b"after", "bob")])
        task.cancel()

    run(tmp_path, body)


def test_a_forged_message_ends_the_connection_and_refuses_the_peer(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        w.result = pb.PEER_BAD_SIGNATURE
        reader, writer = await w.raw()
        writer.write(PREFACE + frame(msg(b"forged").SerializeToString()))
        assert await closed_by_server(reader)
        assert w.peer_refused("forged_signature") == 1 and w.penalties.refused("bob")
        reader, _ = await w.raw()  # refused while the penalty lasts
        assert await closed_by_server(reader)
        assert w.refused("penalised") == 1 and len(w.got) == 1

    run(tmp_path, body)


def test_a_peer_over_its_budget_is_cut_off(tmp_path: Path) -> None:
    tight = RateLimits(peer_msgs=Budget(1, 5, 1e9, 1e9))

    async def body(w: World) -> None:
        reader, writer = await w.raw()
        many = b"".join(frame(msg(b"%d" % i).SerializeToString()) for i in range(10))
        writer.write(PREFACE + many)
        assert await closed_by_server(reader)
        # the opening took one call of the burst of 5: four messages got through
        assert len(w.got) == 4 and w.refused("over_budget") == 1

    run(tmp_path, body, limits=tight)


def test_connections_beyond_the_limit_are_closed_at_once(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        held = [await asyncio.open_connection("127.0.0.1", w.port) for _ in range(2)]
        await w.until(lambda: w.server.connections == 2)  # handshakes count
        reader, _ = await asyncio.open_connection("127.0.0.1", w.port)
        assert await closed_by_server(reader)
        assert w.refused("too_many_connections") == 1
        for _, wr in held:
            wr.close()
        await w.until(lambda: w.server.connections == 0)

    run(tmp_path, body, connections=2)


def test_a_peer_s_new_connection_replaces_its_old_one(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        r1, w1 = await w.raw()
        w1.write(PREFACE + frame(msg(b"one").SerializeToString()))
        await w.until(lambda: len(w.got) == 1)
        _, w2 = await w.raw()
        w2.write(PREFACE + frame(msg(b"two").SerializeToString()))
        await w.until(lambda: len(w.got) == 2)
        assert await closed_by_server(r1)  # the first is closed once the second is in
        await w.until(lambda: w.server.connections == 1)
        w2.write(frame(msg(b"three").SerializeToString()))
        await w.until(lambda: len(w.got) == 3)
        assert [m for m, _ in w.got] == [b"one", b"two", b"three"]

    run(tmp_path, body)


def test_a_silent_connection_is_closed_and_heartbeats_keep_a_link_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frames, "IDLE_S", 0.5)
    monkeypatch.setattr(frames, "HEARTBEAT_S", 0.1)

    async def body(w: World) -> None:
        reader, writer = await w.raw()
        writer.write(PREFACE)
        assert await closed_by_server(reader)  # nothing for IDLE_S
        link = w.link()
        task = asyncio.create_task(link.run())
        await w.until(lambda: link.up)
        await asyncio.sleep(1.5)  # three idle periods with nothing but heartbeats
        link.send(msg(b"still here"))
        await w.until(lambda: w.got == [(b"still here", "bob")])
        assert w.states == [True]  # never dropped
        task.cancel()

    run(tmp_path, body)


def test_the_link_redials_a_listener_that_comes_back(tmp_path: Path) -> None:
    async def body(w: World) -> None:
        link = w.link()
        task = asyncio.create_task(link.run())
        await w.until(lambda: link.up)
        link.send(msg(b"first"))
        await w.until(lambda: len(w.got) == 1)
        await w.server.close()
        await w.until(lambda: not link.up)
        link.send(msg(b"while down"))  # queued
        await w.start()  # the same port again
        await w.until(lambda: link.up, 5.0)
        await w.until(lambda: len(w.got) == 2)
        assert w.got[1] == (b"while down", "bob")
        assert w.states == [True, False, True]
        task.cancel()

    run(tmp_path, body)


def test_a_link_stops_at_once_when_cancelled(tmp_path: Path) -> None:
    """Up, or dialling a port where nobody listens: a node's shutdown must not wait."""

    async def body(w: World) -> None:
        up = w.link()
        dead = FrameLink(
            "nobody",
            "127.0.0.1",
            1,  # nothing listens on port 1
            client_context(w.bob.cert, w.bob.key, w.alice.pem),
            NodeLog("bob"),
            lambda: None,
            lambda up, why: None,
            queue_limit=10,
        )
        tasks = [asyncio.create_task(up.run()), asyncio.create_task(dead.run())]
        await w.until(lambda: up.up)
        for delay in (0.0, 0.3):
            await asyncio.sleep(delay)
        for t in tasks:
            t.cancel()
        done, pending = await asyncio.wait(tasks, timeout=1.0)
        assert not pending and all(t.cancelled() for t in done)

    run(tmp_path, body)
