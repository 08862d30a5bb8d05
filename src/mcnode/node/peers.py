"""Links to peers: one gRPC channel, one bounded queue, a sender task and a connectivity
watcher per peer; and the peer calls the host makes, as plain methods.

A slow or dead peer never blocks the others: its queue drops the oldest message when full,
and its sender waits for it to come back (or, if it is up and refuses us, retries with
exponential backoff). Consensus messages are only useful while fresh, so delivering the
newest ones is what matters.

A peer whose URI names a consensus port gets our consensus messages there, as TLS frames
(`node.frames`: a third of gRPC's cost per message); the others on the gRPC stream. The
calls below stay on gRPC either way.

This is the only module that knows how peers are reached: the host sees `send`,
`peer_auth`, `fetch_txs`, `propose_txs`, `num_blocks` and `get_blocks`, and one error
type, `PeerCallError` (so host tests use a fake link with no sockets). It also holds what
the host learns about the peer (`last_heard`, `slot`, `blocks`) for catch-up and status.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from mcnode.node.config import PeerConfig
from mcnode.node.frames import FrameLink
from mcnode.node.logs import NodeLog
from mcnode.node.tls import PEER_TLS_NAME, TlsIdentity
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

QUEUE_LIMIT = 1000
CALL_DEADLINE = 2.0
FETCH_DEADLINE = 3.0
BLOCKS_DEADLINE = 10.0
BACKOFF_MIN, BACKOFF_MAX = 0.05, 5.0
STABLE_CALL = 10.0  # seconds a stream must last for its failure to restart the backoff


def channel_options(max_bytes: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.max_receive_message_length", max_bytes),
        # A link that stops carrying anything (a partition drops packets; TCP would only
        # notice after its retransmission backoff, many seconds after the path is back) is
        # found by a ping every 2 s that must be answered within 3 s: the connection is
        # then closed and redialled, so traffic resumes within about a second of the heal.
        ("grpc.keepalive_time_ms", 2_000),
        ("grpc.keepalive_timeout_ms", 3_000),
        ("grpc.http2.max_pings_without_data", 0),
        # A peer that was down must be reachable again within a second or two of coming
        # back, not after gRPC's default reconnect backoff (up to two minutes).
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]


def tls_credentials(own: TlsIdentity, peer_cert_pem: bytes) -> grpc.ChannelCredentials:
    """Mutual TLS to one peer: we show our certificate and accept only its pinned one."""
    return grpc.ssl_channel_credentials(
        root_certificates=peer_cert_pem,
        private_key=own.key_pem,
        certificate_chain=own.cert_pem,
    )


class PeerCallError(Exception):
    """A call to a peer failed: unreachable, timed out, refused, or answered with an error
    (`code` is the gRPC status name, `detail` the peer's words)."""

    def __init__(self, peer: str, code: str, detail: str) -> None:
        super().__init__(f"{peer}: {code}: {detail}")
        self.peer = peer
        self.code = code
        self.detail = detail


#: Why a peer that was connected is not, in plain words, for each state gRPC's channel
#: can be in then (its own names mean little to an operator: IDLE is "not connected and
#: not trying yet", TRANSIENT_FAILURE "the last attempt failed, retrying after a backoff").
_DOWN_REASONS = {
    grpc.ChannelConnectivity.IDLE: "connection closed",
    grpc.ChannelConnectivity.CONNECTING: "connection closed, reconnecting",
    grpc.ChannelConnectivity.TRANSIENT_FAILURE: "cannot connect, retrying",
    grpc.ChannelConnectivity.SHUTDOWN: "link shut down",
}


def down_reason(state: grpc.ChannelConnectivity) -> str:
    """`peer unreachable peer=bob reason="connection closed"`: the log's words for it."""
    return _DOWN_REASONS.get(state, "not connected")


class PeerLink:
    def __init__(
        self,
        cfg: PeerConfig,
        own_name: str,
        max_bytes: int,
        log: NodeLog,
        on_sent: Callable[[], None],
        credentials: grpc.ChannelCredentials | None = None,
        frames: ssl.SSLContext | None = None,
    ) -> None:
        """`credentials`: our TLS identity and the peer's pinned certificate
        (`tls_credentials`); None only for tests that serve a peer in plaintext. `frames`:
        the same as an `ssl` context (`frames.client_context`), for a peer with a
        consensus port; without it, or without the port, messages go on the gRPC stream."""
        self.cfg = cfg
        self.name = cfg.name
        self.own_name = own_name
        self.log = log
        opts = channel_options(max_bytes)
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(cfg.address, options=opts)
        else:
            opts.append(("grpc.ssl_target_name_override", PEER_TLS_NAME))
            self.channel = grpc.aio.secure_channel(cfg.address, credentials, options=opts)
        self.peer = rpc.ConsensusPeerStub(self.channel)
        self.chain = rpc.BlockchainStub(self.channel)
        self.queue: asyncio.Queue[pb.ConsensusMsg] = asyncio.Queue(QUEUE_LIMIT)
        # The transport's own view (gRPC channel connectivity), kept by `_watch`: true while
        # a connection to the peer is up, whether or not we have had anything to send.
        self.connected = False
        self.last_ok: float | None = None  # wall time of the last successful call
        self.last_heard: float | None = None  # wall time of the last message from it
        self.slot = 0  # highest slot it has spoken about
        self.blocks = 0  # its block count when we last asked (GetLastBlockInfo)
        self.blocks_asked: float | None = None  # monotonic time of that answer
        self.dropped = 0
        self.frames: FrameLink | None = None
        if frames is not None and cfg.consensus_port is not None:
            self.frames = FrameLink(
                cfg.name,
                cfg.host,
                cfg.consensus_port,
                frames,
                log,
                on_sent,
                self._set_connected,
                QUEUE_LIMIT,
            )
        # Round trip of the last height query that found the link up (catch-up asks quiet
        # peers every few seconds): the only latency we measure; None until then.
        self.latency_s: float | None = None
        self._on_sent = on_sent

    async def run(self) -> None:
        """The sender and the watcher, until cancelled (the caller's task group owns it)."""
        async with asyncio.TaskGroup() as tg:
            if self.frames is not None:
                tg.create_task(self.frames.run(), name=f"peer-{self.name}")
            else:
                tg.create_task(self._sender(), name=f"peer-{self.name}")
            tg.create_task(self._watch(), name=f"peer-watch-{self.name}")

    async def close(self) -> None:
        await self.channel.close()

    async def _watch(self) -> None:
        """Follows the channel's connectivity, connecting at once (not at the first
        message) and again whenever the channel falls idle; logs each change of up/down."""
        ready = grpc.ChannelConnectivity.READY
        state = self.channel.get_state(try_to_connect=True)
        while True:
            if self.frames is None:  # else the frame connection's state is the link's
                self._set_connected(state == ready, down_reason(state))
            await self.channel.wait_for_state_change(state)
            state = self.channel.get_state(try_to_connect=True)

    def _set_connected(self, up: bool, why: str) -> None:
        """Follow the transport's up/down, logging each change (`why`: why it is down)."""
        if up != self.connected:
            self.connected = up
            if up:
                self.log.info("peer connected", peer=self.name)
            else:
                self.log.warning("peer unreachable", peer=self.name, reason=why)

    def send(self, msg: pb.ConsensusMsg) -> None:
        if self.frames is not None:
            self.frames.send(msg)
            return
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(msg)

    async def _sender(self) -> None:
        """Writes queued messages to one long-lived ConsensusStream call. The call waits
        for the connection (a peer that is down, or not up yet, gets its messages as soon as
        it is up, and a write is never taken into a call that then fails to connect). When
        the call fails (the peer restarted, or refused us), opens a new one; only a peer that
        is up and refuses us is retried with growing backoff. The message whose write failed
        is sent again first unless newer ones are waiting."""
        backoff = BACKOFF_MIN
        msg: pb.ConsensusMsg | None = None
        while True:
            call = self.peer.ConsensusStream(wait_for_ready=True)
            opened = time.monotonic()
            try:
                while True:
                    if msg is None:
                        msg = await self.queue.get()
                    await call.write(msg)
                    msg = None
                    self.last_ok = time.time()
                    self._on_sent()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as e:
                if isinstance(e, grpc.aio.AioRpcError):
                    code, detail = e.code().name, e.details()
                else:  # the call had already ended: write() does not say how
                    code, detail = (await call.code()).name, await call.details()
                call.cancel()
                self.log.debug("peer stream failed", peer=self.name, code=code, detail=detail)
                if self.channel.get_state() == grpc.ChannelConnectivity.READY:
                    # Reachable but the call failed (the peer refuses us): back off. A
                    # write that returned proves nothing (a refusal shows at the next one);
                    # a call that lasted does.
                    if time.monotonic() - opened > STABLE_CALL:
                        backoff = BACKOFF_MIN
                    await asyncio.sleep(backoff)
                    backoff = min(BACKOFF_MAX, backoff * 2)
                else:
                    # The peer went away: the next call waits for it to come back.
                    await asyncio.sleep(BACKOFF_MIN)
                    backoff = BACKOFF_MIN
                if not self.queue.empty():
                    msg = None  # a newer message supersedes this one's urgency
            except asyncio.CancelledError:
                call.cancel()
                raise

    async def call(
        self, fn: Callable[..., Awaitable[Any]], req: Any, timeout: float = CALL_DEADLINE
    ) -> Any:
        """A unary call to this peer with a deadline (waiting for the connection within
        it); any failure is a `PeerCallError`."""
        try:
            out = await fn(req, timeout=timeout, wait_for_ready=True)
        except grpc.aio.AioRpcError as e:
            raise PeerCallError(self.name, e.code().name, e.details() or "") from None
        self.last_ok = time.time()
        return out

    # -- the calls the host makes ------------------------------------------------------------
    async def peer_auth(self, handshake: bytes, signature: bytes) -> tuple[bytes, bytes]:
        """Our enclave's first handshake message to the peer's, with our host's signature
        vouching for it; its answer and the peer host's signature."""
        req = pb.PeerAuthRequest(from_peer=self.own_name, handshake=handshake, signature=signature)
        resp = await self.call(self.peer.PeerAuth, req)
        return bytes(resp.handshake), bytes(resp.signature)

    async def fetch_txs(self, sealed_request: bytes) -> bytes:
        """Ask the peer's enclave for txs (the hashes sealed on our session): the sealed
        answer."""
        req = pb.FetchTxsRequest(from_peer=self.own_name, sealed_request=sealed_request)
        return bytes((await self.call(self.peer.FetchTxs, req, FETCH_DEADLINE)).ciphertext)

    async def propose_txs(self, ciphertext: bytes) -> None:
        """Relay a sealed batch of txs to the peer's enclave."""
        req = pb.EncryptedTxs(from_peer=self.own_name, ciphertext=ciphertext)
        await self.call(self.peer.ProposeTxs, req)

    async def num_blocks(self) -> int:
        up = self.connected  # a call that first waits for the connection is no round trip
        t0 = time.monotonic()
        n = int((await self.call(self.chain.GetLastBlockInfo, pb.Empty())).num_blocks)
        if up:
            self.latency_s = time.monotonic() - t0
        return n

    async def get_blocks(self, offset: int, limit: int) -> list[bytes]:
        """Up to `limit` encoded blocks from `offset` (fewer if the peer has fewer, or
        they would not fit in one answer)."""
        req = pb.GetBlocksRequest(offset=offset, limit=limit)
        resp = await self.call(self.chain.GetBlocks, req, BLOCKS_DEADLINE)
        return [bytes(raw) for raw in resp.blocks]

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.cfg.address,
            "connected": self.connected,
            "last_heard": self.last_heard,
            "last_ok": max(
                (t for t in (self.last_ok, self.frames and self.frames.last_ok) if t),
                default=None,
            ),
            "slot": self.slot,
            "blocks": self.blocks,
            "queued": len(self.frames.queue) if self.frames else self.queue.qsize(),
            "dropped": self.frames.dropped if self.frames else self.dropped,
            "latency_s": self.latency_s,
        }
