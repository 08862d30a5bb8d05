"""Flood control in front of every gRPC method, and clean refusals.

Rules of this file:

- `Gate` is a server interceptor, so every method of its server goes through it (including
  ones registered later). It hands gRPC a handler that keeps the request's raw bytes, and
  for each call, and each message of a client stream, in this order:
  1. charges the caller's budget for the method's class (`method_class`): one call (or
     message) and the request's length in bytes. Over budget is RESOURCE_EXHAUSTED with
     the fixed sentence `OVER_BUDGET`, before any parsing, and the servicer never runs
     (a stream ends there);
  2. parses the bytes with the method's own deserializer; failure is INVALID_ARGUMENT with
     the fixed sentence `UNDECODABLE` (never the parser's words), and gRPC logs nothing;
  3. calls the servicer. A stream's servicer must read its request iterator (not
     `context.read()`, which would hand it raw bytes).
- The caller is its source address without the port (`source_of`): IPv4 "ipv4:a.b.c.d";
  IPv6 its /64, "ipv6:[2001:db8::]/64", since one host commonly holds a whole /64;
  anything else (unix sockets) as gRPC names it. On the peer port, where mutual TLS says
  which configured peer a connection is (`whose`), the caller is that peer ("peer:bob"):
  peers that share an address (a NAT, or one host's loopback) each get their own budget.
- Budgets are token buckets (`Budgets`), per source and, for some classes, for all
  sources together. A request larger than a bucket's burst is let through only when the
  bucket is full, and leaves it in debt: the long-run rate holds for any size, and no size
  is refused forever. Memory is bounded: at most `max_sources` sources are remembered,
  the least recently seen forgotten first, and a forgotten source starts again with full
  buckets (so a caller with more addresses than that gets its bursts again: the
  all-sources caps, not these, bound what it costs us).
- Time comes only from the clock given (tests pass a fake one).
- Each refusal is counted (`mcnode_requests_refused_total{api,method,reason}`, reason
  `over_budget` or `undecodable`) and logged at most once per source, method and reason
  per minute, with the number held back since (and at most `LOG_LINES_PER_MINUTE` such
  lines in all).
- `make_server` is the one place for the servers' gRPC options: connection, stream,
  metadata and keepalive limits.
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NamedTuple, NoReturn
from urllib.parse import unquote

import grpc

from mcnode.node.config import Budget, Limits, RateLimits
from mcnode.node.logs import NodeLog, Throttle
from mcnode.node.metrics import NodeMetrics

OVER_BUDGET = "too many requests from this address; slow down"
UNDECODABLE = "request could not be decoded"
REFUSAL_LOG_INTERVAL = 60.0
LOG_LINES_PER_MINUTE = 100  # refusal lines, all sources together

# Budget classes by method; other methods of these services fall in the service's class.
_METHOD_CLASSES = {
    "/mcnode.v1.ConsensusClient/Auth": "auth",
    "/mcnode.v1.ConsensusClient/ProposeTx": "propose_tx",
    "/mcnode.v1.ConsensusPeer/ConsensusStream": "peer_msgs",
    "/mcnode.v1.ConsensusPeer/SendConsensusMsg": "peer_msgs",
}
_SERVICE_CLASSES = {
    "/mcnode.v1.ConsensusPeer/": "peer_calls",
    "/mcnode.v1.Blockchain/": "blockchain",
}
# Budgets shared by all sources, on top of each source's own.
OVERALL_CLASSES = {"auth": "auth_all"}


def method_class(method: str) -> str:
    """The budget class of a full method name ("/package.Service/Method")."""
    name = _METHOD_CLASSES.get(method)
    if name is not None:
        return name
    service = method[: method.rfind("/") + 1]
    return _SERVICE_CLASSES.get(service, "other")


@functools.lru_cache(maxsize=4096)
def source_of(peer: str) -> str:
    """The caller's address without its port, from `context.peer()`: "ipv4:127.0.0.1:5555"
    -> "ipv4:127.0.0.1"; IPv6 ("ipv6:%5B2001:db8::1%5D:5555") -> its /64,
    "ipv6:[2001:db8::]/64" (an IPv4-mapped one -> "ipv4:a.b.c.d")."""
    scheme, _, rest = peer.partition(":")
    if scheme == "ipv4":
        return "ipv4:" + rest.rpartition(":")[0]
    if scheme != "ipv6":
        return peer[:200]
    host = unquote(rest).rpartition(":")[0].strip("[]").partition("%")[0]
    try:
        addr = ipaddress.IPv6Address(host)
    except ValueError:
        return "ipv6:" + host[:100]
    if addr.ipv4_mapped is not None:
        return f"ipv4:{addr.ipv4_mapped}"
    prefix = ipaddress.IPv6Address(int(addr) >> 64 << 64)
    return f"ipv6:[{prefix}]/64"


class _Bucket:
    """Tokens of one budget: calls and bytes, as of `stamp`."""

    __slots__ = ("bytes", "calls", "stamp")

    def __init__(self, budget: Budget, now: float) -> None:
        self.calls = budget.burst
        self.bytes = budget.bytes_burst
        self.stamp = now

    def refill(self, budget: Budget, now: float) -> None:
        dt = max(0.0, now - self.stamp)
        self.stamp = max(self.stamp, now)
        self.calls = min(budget.burst, self.calls + dt * budget.calls)
        self.bytes = min(budget.bytes_burst, self.bytes + dt * budget.bytes)

    def short(self, budget: Budget, nbytes: int) -> str | None:
        """Which token runs short for one call of `nbytes` ("calls" or "bytes"), if any."""
        if self.calls < 1:
            return "calls"
        if self.bytes < min(nbytes, budget.bytes_burst):
            return "bytes"
        return None

    def take(self, nbytes: int) -> None:
        self.calls -= 1
        self.bytes -= nbytes


class Budgets:
    """Token buckets per (source, class), and per class for all sources together."""

    def __init__(
        self,
        per_source: Mapping[str, Budget],
        overall: Mapping[str, Budget],
        max_sources: int,
        clock: Callable[[], float],
    ) -> None:
        self.per_source = dict(per_source)
        self.overall = dict(overall)
        self.max_sources = max_sources
        self.clock = clock
        self._sources: OrderedDict[str, dict[str, _Bucket]] = OrderedDict()
        self._all: dict[str, _Bucket] = {}

    @classmethod
    def from_limits(cls, limits: RateLimits, clock: Callable[[], float]) -> Budgets:
        names = {*_METHOD_CLASSES.values(), *_SERVICE_CLASSES.values(), "other"}
        return cls(
            {n: limits.budget(n) for n in names},
            {n: limits.budget(o) for n, o in OVERALL_CLASSES.items()},
            limits.max_sources,
            clock,
        )

    def __len__(self) -> int:
        return len(self._sources)

    def charge(self, source: str, name: str, nbytes: int) -> str | None:
        """Take one call of `nbytes` of class `name` from `source`'s buckets (and the
        all-sources ones): None if taken; otherwise which ran short ("calls", "bytes",
        "all calls", "all bytes"), and nothing is taken."""
        now = self.clock()
        buckets = self._sources.get(source)
        if buckets is None:
            buckets = self._sources[source] = {}
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(source)
        budget = self.per_source[name]
        mine = buckets.get(name)
        if mine is None:
            mine = buckets[name] = _Bucket(budget, now)
        else:
            mine.refill(budget, now)
        short = mine.short(budget, nbytes)
        if short is not None:
            return short
        shared_budget = self.overall.get(name)
        shared = None
        if shared_budget is not None:
            shared = self._all.get(name)
            if shared is None:
                shared = self._all[name] = _Bucket(shared_budget, now)
            else:
                shared.refill(shared_budget, now)
            short = shared.short(shared_budget, nbytes)
            if short is not None:
                return "all " + short
            shared.take(nbytes)
        mine.take(nbytes)
        return None


class Penalties:
    """Configured peers refused for a while after misbehaving (forging on their stream, or
    running over their budget): 1 s, doubling with each offence to `MAX_PENALTY`,
    forgotten after an hour without one. One instance is shared by the peer server's gate
    and its servicer."""

    FIRST, MAX_PENALTY, FORGIVE = 1.0, 60.0, 3600.0

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._until: dict[str, tuple[float, float]] = {}  # peer -> (refused until, length)

    def punish(self, peer: str) -> float:
        now = self.clock()
        last = self._until.get(peer)
        # A first offence, or the first after an hour of good behaviour, costs FIRST. (Not
        # "an hour since refused-until 0": the monotonic clock counts from boot, so within
        # a host's first hour that made a first offence cost nothing.)
        if last is None or now - last[0] > self.FORGIVE:
            length = self.FIRST
        else:
            length = min(self.MAX_PENALTY, last[1] * 2)
        self._until[peer] = (now + length, length)
        return length

    def refused(self, peer: str) -> bool:
        return self._until.get(peer, (0.0, 0.0))[0] > self.clock()


class _Handler(NamedTuple):
    """The fields gRPC reads of a method handler (as `grpc.RpcMethodHandler`)."""

    request_streaming: bool
    response_streaming: bool
    request_deserializer: Callable[[bytes], Any] | None
    response_serializer: Callable[[Any], bytes] | None
    unary_unary: Callable[..., Any] | None
    unary_stream: Callable[..., Any] | None
    stream_unary: Callable[..., Any] | None
    stream_stream: Callable[..., Any] | None


async def _result(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Gate(grpc.aio.ServerInterceptor):
    """Budgets and clean refusals for every method of one server (`api`: "peer" or
    "client", for metrics and logs)."""

    def __init__(
        self,
        api: str,
        budgets: Budgets,
        metrics: NodeMetrics,
        log: NodeLog,
        clock: Callable[[], float] = time.monotonic,
        whose: Callable[[grpc.aio.ServicerContext], str | None] | None = None,
        penalties: Penalties | None = None,
    ) -> None:
        self.api = api
        self.whose = whose
        self.penalties = penalties
        self.budgets = budgets
        self.metrics = metrics
        self.log = log
        self._said = Throttle(
            REFUSAL_LOG_INTERVAL,
            clock,
            max_keys=budgets.max_sources,
            overall=LOG_LINES_PER_MINUTE,
        )
        # method -> (the servicer's handler, ours); only methods the server has.
        self._wrapped: dict[str, tuple[Any, _Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:  # no such method: gRPC answers UNIMPLEMENTED
            return handler
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is not None and known[0] is handler:
            return known[1]  # type: ignore[return-value]
        wrapped = self.wrap(method, handler)
        if len(self._wrapped) < 1024:
            self._wrapped[method] = (handler, wrapped)
        return wrapped  # type: ignore[return-value]

    def _source(self, context: grpc.aio.ServicerContext) -> str:
        if self.whose is not None:
            peer = self.whose(context)
            if peer is not None:
                return f"peer:{peer}"
        return source_of(context.peer())

    # -- the three steps ------------------------------------------------------------------
    def admit(self, source: str, klass: str, n: int) -> str | None:
        """Charge `source` one call of `n` bytes of budget class `klass`: None if taken,
        else which limit ran short (a peer over its budget is also refused for a while,
        so that its next streams end before their first message; the text says so)."""
        short = self.budgets.charge(source, klass, n)
        if short is not None and self.penalties is not None and source.startswith("peer:"):
            short += f"; refused for {self.penalties.punish(source.removeprefix('peer:')):g} s"
        return short

    async def _charge(
        self, context: grpc.aio.ServicerContext, source: str, method: str, klass: str, n: int
    ) -> None:
        peer = source.removeprefix("peer:") if source.startswith("peer:") else None
        if peer is not None and self.penalties is not None and self.penalties.refused(peer):
            await self._refuse(
                context, source, method, "penalised", grpc.StatusCode.RESOURCE_EXHAUSTED
            )
        short = self.admit(source, klass, n)
        if short is not None:
            await self._refuse(
                context, source, method, "over_budget", grpc.StatusCode.RESOURCE_EXHAUSTED, short
            )

    async def _parse(
        self,
        context: grpc.aio.ServicerContext,
        source: str,
        method: str,
        parse: Callable[[bytes], Any] | None,
        raw: bytes,
    ) -> Any:
        if parse is None:
            return raw
        try:
            return parse(raw)
        except Exception:  # whatever the parser raises, the caller hears one sentence
            await self._refuse(
                context, source, method, "undecodable", grpc.StatusCode.INVALID_ARGUMENT
            )

    def refused(self, source: str, method: str, reason: str, short: str = "") -> None:
        """Count a refusal and log it (at most once a minute per source, method and
        reason, with the number held back since)."""
        self.metrics.requests_refused.labels(self.api, method, reason).inc()
        held = self._said.check((source, method, reason))
        if held is not None:
            extra = {"limit": short} if short else {}
            self.log.warning(
                "request refused",
                api=self.api,
                method=method,
                source=source,
                why=reason,
                **extra,
                suppressed=held,
            )

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext,
        source: str,
        method: str,
        reason: str,
        code: grpc.StatusCode,
        short: str = "",
    ) -> NoReturn:
        self.refused(source, method, reason, short)
        sentence = UNDECODABLE if reason == "undecodable" else OVER_BUDGET
        await context.abort(code, sentence)
        raise AssertionError("abort raises")

    # -- handlers -------------------------------------------------------------------------
    def wrap(self, method: str, h: grpc.RpcMethodHandler) -> _Handler:
        """`h` behind the gate: gRPC hands us raw bytes; we charge, parse and call."""
        name = method.rsplit("/", 1)[-1]
        klass = method_class(method)
        parse = h.request_deserializer

        async def admit(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            source = self._source(context)
            await self._charge(context, source, name, klass, len(raw))
            return await self._parse(context, source, name, parse, raw)

        async def messages(
            raws: AsyncIterator[bytes], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            source = self._source(context)
            await self._charge(context, source, name, klass, 0)  # opening is a call too
            async for raw in raws:
                await self._charge(context, source, name, klass, len(raw))
                yield await self._parse(context, source, name, parse, raw)

        def entry(behavior: Callable[..., Any], first: Callable[..., Awaitable[Any]]) -> Any:
            """`behavior` called on what `first` makes of gRPC's argument, in the same form
            (coroutine, async generator or generator) so that gRPC treats it the same."""
            if inspect.isasyncgenfunction(behavior):

                async def agen(arg: Any, context: grpc.aio.ServicerContext) -> Any:
                    async for out in behavior(await first(arg, context), context):
                        yield out

                return agen
            if inspect.isgeneratorfunction(behavior):

                async def sgen(arg: Any, context: grpc.aio.ServicerContext) -> Any:
                    for out in behavior(await first(arg, context), context):
                        yield out

                return sgen

            async def coro(arg: Any, context: grpc.aio.ServicerContext) -> Any:
                return await _result(behavior(await first(arg, context), context))

            return coro

        async def stream(raws: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> Any:
            return messages(raws, context)

        first = stream if h.request_streaming else admit
        return _Handler(
            request_streaming=h.request_streaming,
            response_streaming=h.response_streaming,
            request_deserializer=None,  # gRPC passes the raw bytes through
            response_serializer=h.response_serializer,
            unary_unary=h.unary_unary and entry(h.unary_unary, first),
            unary_stream=h.unary_stream and entry(h.unary_stream, first),
            stream_unary=h.stream_unary and entry(h.stream_unary, first),
            stream_stream=h.stream_stream and entry(h.stream_stream, first),
        )


# -- servers -------------------------------------------------------------------------------
# gRPC core's read-ahead per stream (bytes a caller may send before our handler reads).
READ_AHEAD_BYTES = 1024 * 1024


def server_options(api: str, limits: Limits) -> list[tuple[str, Any]]:
    """gRPC core's limits for our servers: slow, idle and chatty connections end."""
    opts: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", limits.max_message_bytes),
        ("grpc.max_receive_message_length", limits.max_message_bytes),
        # Streams at once on one connection: a peer uses one stream and a few calls.
        ("grpc.max_concurrent_streams", 32 if api == "peer" else 64),
        ("grpc.max_metadata_size", 16 * 1024),
        # gRPC core reads each stream ahead of our handler by a window. By default the
        # window grows with gRPC's bandwidth-delay estimate, so a sender outpacing a busy
        # node could push megabytes per stream before the gate saw a byte (a peer's 1 MiB
        # flood grew a node by 175 MB). Ours is fixed; honest requests are far smaller.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", READ_AHEAD_BYTES),
        ("grpc.max_allowed_incoming_connections", getattr(limits, f"{api}_connections")),
        # A connection must finish its handshakes (TCP to HTTP/2) within 10 s.
        ("grpc.server_handshake_timeout_ms", 10_000),
        # We ping each connection after a minute of silence and drop it if the ping is not
        # answered within 20 s (half-open connections). Callers may ping us while they
        # have calls open (see below), never without one; a third ping too soon ends the
        # connection.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        # Peers ping every 2 s (so that a partitioned link is redialled soon after the
        # heal); clients may ping every 5 s.
        ("grpc.http2.min_ping_interval_without_data_ms", 1_000 if api == "peer" else 5_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_ping_strikes", 2),
        # A connection with no call for 5 minutes is closed (the caller reconnects).
        ("grpc.max_connection_idle_ms", 300_000),
    ]
    if api == "client":
        # Clients' connections are renewed hourly (a minute's grace for calls under way),
        # so that none holds a stream open forever; peers' consensus streams stay.
        opts += [
            ("grpc.max_connection_age_ms", 3_600_000),
            ("grpc.max_connection_age_grace_ms", 60_000),
        ]
    return opts


# Calls under way at once on the client port: beyond it, RESOURCE_EXHAUSTED from gRPC.
CLIENT_CONCURRENT_RPCS = 1000


def make_server(api: str, limits: Limits, gate: Gate) -> grpc.aio.Server:
    """A server for `api` ("peer" or "client") with `gate` in front of every method."""
    return grpc.aio.server(
        interceptors=[gate],
        options=server_options(api, limits),
        maximum_concurrent_rpcs=CLIENT_CONCURRENT_RPCS if api == "client" else None,
    )
