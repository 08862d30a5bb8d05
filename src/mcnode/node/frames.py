"""The consensus port: peers' SCP messages as length-prefixed frames over mutual TLS.

Why not the gRPC stream that the peer port also serves: Python gRPC costs ~250 us of CPU
per message over both ends (a write ~170 us, a read ~240 us: `bench/bench_grpc_stream.py`),
and a validator sends and reads every message once per peer: at four validators ~8 ms per
block per validator, at seven ~17 ms, a quarter of the host's CPU. Here a message is one
synchronous `transport.write` (no task wakes up to send it) and a read is parsed in the
event loop's own callback (no task wakes up to read it).

Wire, version 1 (`PREFACE`):
- TLS 1.3, mutual, with the peer port's identities: each side shows its `tls.pem` and
  trusts exactly the pinned certificates of its configured peers, so nobody else gets past
  the handshake, and the certificate says which peer a connection is.
- The connecting side writes the 4 bytes `MCF1`, then frames: a 4-byte big-endian length
  and that many bytes of a `ConsensusMsg` (the gRPC stream's message, unchanged: signed by
  its sender, checked by the receiver exactly as a gRPC one). A frame of length 0 is a
  heartbeat.
- Only the connecting side writes. Each node dials each peer: messages from a to b go on
  a's connection to b. The listening side never answers; a refusal closes the connection.

Liveness: the connecting side sends a heartbeat after `HEARTBEAT_S` without a message, and
sets TCP_USER_TIMEOUT (`USER_TIMEOUT_MS`), so a path that stops carrying packets (a
partition) fails its connection within ~3 s and the link redials every second at most
until the path is back; the listening side closes a connection silent for `IDLE_S`.

What the listening side enforces, as the gRPC gate does for the peer port: at most
`Limits.peer_connections` connections at once (counted from the TCP accept, so that
handshakes are bounded too), `HANDSHAKE_S` to finish TLS, and one connection per peer (a
new one replaces the old); the `peer_msgs` budget (one
call and its bytes per frame); a frame larger than `max_message_bytes`, a bad preface or
an undecodable message ends the connection; a forged signature ends it and refuses the
peer for a while (`Penalties`). Each refusal is counted and logged through the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from google.protobuf.message import DecodeError

from mcnode.node.gate import REFUSAL_LOG_INTERVAL, Gate, Penalties
from mcnode.node.logs import NodeLog, Throttle
from mcnode.node.messages import FORGERY
from mcnode.node.tls import PEER_TLS_NAME
from mcnode.wire import consensus_pb2 as pb

PREFACE = b"MCF1"
HEADER = 4
HEARTBEAT = b"\0\0\0\0"
HEARTBEAT_S = 1.0
IDLE_S = 5.0
HANDSHAKE_S = 10.0
CONNECT_S = 3.0  # TCP connect and TLS handshake, dialling a peer
USER_TIMEOUT_MS = 3_000
REDIAL_MIN_S, REDIAL_MAX_S = 0.05, 1.0
STABLE_S = 10.0  # a connection that lasted this long restarts the redial backoff
METHOD = "ConsensusFrames"  # its name in metrics and logs
BUDGET_CLASS = "peer_msgs"  # the gRPC stream's budget class: one budget for both


class FrameError(ValueError):
    """The bytes on a consensus connection break the framing (the connection ends)."""


def frame(raw: bytes) -> bytes:
    return len(raw).to_bytes(HEADER, "big") + raw


class FrameDecoder:
    """Bytes as they arrive -> whole frames (b"" for a heartbeat). Holds at most one
    unfinished frame: a length over `max_bytes` is refused before its body is read."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._preface = False

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        if not self._preface:
            if len(buf) < len(PREFACE):
                if not PREFACE.startswith(bytes(buf)):
                    raise FrameError("not a consensus connection (bad preface)")
                return []
            if buf[: len(PREFACE)] != PREFACE:
                raise FrameError("not a consensus connection (bad preface)")
            del buf[: len(PREFACE)]
            self._preface = True
        out: list[bytes] = []
        pos, end = 0, len(buf)
        while end - pos >= HEADER:
            n = int.from_bytes(buf[pos : pos + HEADER], "big")
            if n > self.max_bytes:
                raise FrameError(f"frame of {n} bytes, over the limit of {self.max_bytes}")
            if end - pos - HEADER < n:
                break
            out.append(bytes(buf[pos + HEADER : pos + HEADER + n]))
            pos += HEADER + n
        if pos:
            del buf[:pos]
        return out


def server_context(cert: Path, key: Path, trusted_pem: bytes) -> ssl.SSLContext:
    """TLS 1.3 that requires a client certificate among `trusted_pem` (the pinned peers')."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=trusted_pem.decode())
    return ctx


def client_context(cert: Path, key: Path, peer_pem: bytes) -> ssl.SSLContext:
    """TLS 1.3 to one peer: we show our certificate and accept only its pinned one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cadata=peer_pem.decode())
    return ctx  # check_hostname: the certificate must name PEER_TLS_NAME


# -- the listening side -----------------------------------------------------------------------
class FrameServer:
    """Accepts peers' consensus connections; hands each message to `receive(msg, peer)`
    (the host's, which returns its `PeerResult`)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        whose: Callable[[bytes], str | None],
        receive: Callable[[pb.ConsensusMsg, str], int],
        gate: Gate,
        penalties: Penalties,
        log: NodeLog,
        max_bytes: int,
        max_connections: int,
    ) -> None:
        self.context = context
        self.whose = whose  # DER certificate -> configured peer
        self.receive = receive
        self.gate = gate
        self.penalties = penalties
        self.log = log
        self.max_bytes = max_bytes
        self.max_connections = max_connections
        self.connections = 0  # TCP connections open, handshaking or not
        self._server: asyncio.Server | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._open: set[_Inbound] = set()
        self._by_peer: dict[str, _Inbound] = {}  # each peer's current connection
        self._said = Throttle(REFUSAL_LOG_INTERVAL)

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); the port listened on."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Tcp(self), host, port)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for t in list(self._handshakes):
            t.cancel()
        for c in list(self._open):
            c.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    def refused(self, source: str, reason: str, short: str = "") -> None:
        """A refusal before any message is read (the gate's reasons and counter)."""
        self.gate.refused(source, METHOD, reason, short)

    def peer_refused(self, who: str, reason: str, detail: str = "") -> None:
        """A refusal about who the peer is or what it signed (the peer API's counter)."""
        self.gate.metrics.peer_refused.labels(METHOD, reason).inc()
        if self._said.allow((who, reason)):
            self.log.warning(
                "peer call refused", call=METHOD, peer=who[:64], why=reason, detail=detail
            )

    def _accepted(self, transport: asyncio.Transport) -> None:
        if self.connections >= self.max_connections:
            addr = transport.get_extra_info("peername") or ("?", 0)
            self.refused(f"ip:{addr[0]}", "too_many_connections")
            transport.abort()
            return
        self.connections += 1
        conn = _Inbound(self)
        task = asyncio.get_running_loop().create_task(conn.handshake(transport))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)


class _Tcp(asyncio.Protocol):
    """A TCP connection before its TLS starts."""

    def __init__(self, server: FrameServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.server._accepted(transport)


class _Inbound(asyncio.Protocol):
    """One peer's consensus connection, after TLS: frames in, messages to the host."""

    def __init__(self, server: FrameServer) -> None:
        self.server = server
        self.decoder = FrameDecoder(server.max_bytes)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.source = ""
        self._early = bytearray()  # bytes that came before the handshake's task resumed
        self._counted = True  # holds one of the server's connections
        self._last = 0.0
        self._idle: asyncio.TimerHandle | None = None

    async def handshake(self, tcp: asyncio.Transport) -> None:
        s = self.server
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                tcp, self, s.context, server_side=True, ssl_handshake_timeout=HANDSHAKE_S
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, RuntimeError):
            tcp.abort()
            self._release()
            return
        assert tls is not None
        self.transport = tls
        s._open.add(self)
        sslobj = tls.get_extra_info("ssl_object")
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        peer = s.whose(der) if der else None
        addr = tls.get_extra_info("peername") or ("?", 0)
        if peer is None:
            s.peer_refused(f"ip:{addr[0]}", "not_a_configured_peer")
            return self.abort()
        self.peer, self.source = peer, f"peer:{peer}"
        if s.penalties.refused(peer):
            s.refused(self.source, "penalised")
            return self.abort()
        short = s.gate.admit(self.source, BUDGET_CLASS, 0)  # opening is a call too
        if short is not None:
            s.refused(self.source, "over_budget", short)
            return self.abort()
        # One connection per peer: a new one replaces the old (which is then most likely
        # dead on a path that failed), so a peer holds at most one of our connections.
        old = s._by_peer.get(peer)
        s._by_peer[peer] = self
        if old is not None:
            old.abort()
        self._last = time.monotonic()
        self._idle = loop.call_later(IDLE_S, self._check_idle)
        s.log.debug("consensus connection", peer=peer, replaced=old is not None)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.data_received(early)

    def data_received(self, data: bytes) -> None:
        if self.peer is None:  # TLS is up but `handshake` has not resumed yet
            self._early += data
            if len(self._early) > self.server.max_bytes + 2 * HEADER:
                self.abort()
            return
        if self.transport is None or self.transport.is_closing():
            return
        s = self.server
        self._last = time.monotonic()
        try:
            frames = self.decoder.feed(data)
        except FrameError:
            s.refused(self.source, "undecodable")
            return self.abort()
        for raw in frames:
            if not raw:
                continue  # heartbeat
            short = s.gate.admit(self.source, BUDGET_CLASS, len(raw))
            if short is not None:
                s.refused(self.source, "over_budget", short)
                return self.abort()
            try:
                msg = pb.ConsensusMsg.FromString(raw)
            except DecodeError:
                s.refused(self.source, "undecodable")
                return self.abort()
            if s.receive(msg, self.peer) in FORGERY:
                seconds = s.penalties.punish(self.peer)
                s.peer_refused(self.peer, "forged_signature", f"refused for {seconds:g} s")
                return self.abort()

    def _check_idle(self) -> None:
        quiet = time.monotonic() - self._last
        if quiet >= IDLE_S:
            seconds = round(quiet, 1)
            self.server.log.info("consensus connection idle", peer=self.peer, seconds=seconds)
            self.abort()
            return
        self._idle = asyncio.get_running_loop().call_later(IDLE_S - quiet, self._check_idle)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._closed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed()

    def _closed(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.server._open.discard(self)
        if self.peer is not None and self.server._by_peer.get(self.peer) is self:
            del self.server._by_peer[self.peer]
        self._release()

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self.server.connections -= 1


# -- the connecting side ----------------------------------------------------------------------
class FrameLink:
    """Our consensus connection to one peer: `send` writes at once when it is up, else
    queues (at most `queue_limit`, the oldest dropped first) until it is. `run` dials and
    redials until cancelled."""

    def __init__(
        self,
        peer: str,
        host: str,
        port: int,
        context: ssl.SSLContext,
        log: NodeLog,
        on_sent: Callable[[], None],
        on_state: Callable[[bool, str], None],
        queue_limit: int,
    ) -> None:
        self.peer = peer
        self.host = host
        self.port = port
        self.context = context
        self.log = log
        self.on_sent = on_sent
        self.on_state = on_state  # (up, why) on each change
        self.queue_limit = queue_limit
        self.queue: deque[bytes] = deque()
        self.dropped = 0
        self.last_ok: float | None = None
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self._last_write = 0.0

    @property
    def up(self) -> bool:
        return self._transport is not None

    def send(self, msg: pb.ConsensusMsg) -> None:
        data = frame(msg.SerializeToString())
        t = self._transport
        if t is not None and not self._paused and not self.queue:
            self._write(t, data)
            self.on_sent()
            return
        if len(self.queue) >= self.queue_limit:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(data)

    def _write(self, t: asyncio.Transport, data: bytes) -> None:
        t.write(data)
        self._last_write = time.monotonic()
        self.last_ok = time.time()

    def _flush(self) -> None:
        t = self._transport
        while t is not None and self.queue and not self._paused:
            self._write(t, self.queue.popleft())
            self.on_sent()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = REDIAL_MIN_S
        why = "connecting"
        while True:
            proto = _Outbound(self)
            try:
                # asyncio.timeout, not wait_for: in 3.11 wait_for can swallow a cancellation
                # that comes as the connection completes, and the link would not stop.
                async with asyncio.timeout(CONNECT_S):
                    transport, _ = await loop.create_connection(
                        lambda p=proto: p,  # type: ignore[misc]
                        self.host,
                        self.port,
                        ssl=self.context,
                        server_hostname=PEER_TLS_NAME,
                        ssl_handshake_timeout=CONNECT_S,
                    )
            except (OSError, ssl.SSLError, TimeoutError) as e:
                self.on_state(False, why)
                self.log.debug("consensus dial failed", peer=self.peer, error=type(e).__name__)
                why = "cannot connect, retrying"
                await asyncio.sleep(backoff)
                backoff = min(REDIAL_MAX_S, backoff * 2)
                continue
            assert isinstance(transport, asyncio.Transport)
            sock = transport.get_extra_info("socket")
            if sock is not None and hasattr(socket, "TCP_USER_TIMEOUT"):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
            opened = time.monotonic()
            self._transport, self._paused = transport, False
            transport.write(PREFACE)
            self._last_write = opened
            self.on_state(True, "")
            self._flush()
            try:
                while not proto.lost.done():
                    await asyncio.wait([proto.lost], timeout=HEARTBEAT_S)
                    quiet = time.monotonic() - self._last_write
                    if not proto.lost.done() and not self._paused and quiet >= HEARTBEAT_S * 0.9:
                        transport.write(HEARTBEAT)
                        self._last_write = time.monotonic()
            finally:
                self._transport = None
                transport.abort()
            why = "connection closed, reconnecting"
            self.on_state(False, why)
            if time.monotonic() - opened > STABLE_S:
                backoff = REDIAL_MIN_S
            await asyncio.sleep(backoff)
            backoff = min(REDIAL_MAX_S, backoff * 2)


class _Outbound(asyncio.Protocol):
    def __init__(self, link: FrameLink) -> None:
        self.link = link
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        pass  # the listening side never writes: nothing to read

    def pause_writing(self) -> None:
        self.link._paused = True

    def resume_writing(self) -> None:
        self.link._paused = False
        self.link._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
