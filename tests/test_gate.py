"""The gate in front of the gRPC servers: budgets per source on a fake clock, bounded
memory, and a real in-process server (loopback) refusing floods and undecodable bytes
before its servicers run, with bounded log lines."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from mcnode.node.config import Budget, Limits, RateLimits
from mcnode.node.gate import (
    OVER_BUDGET,
    READ_AHEAD_BYTES,
    UNDECODABLE,
    Budgets,
    Gate,
    Penalties,
    make_server,
    method_class,
    server_options,
    source_of,
)
from mcnode.node.logs import NodeLog, Throttle, quiet_grpc_core
from mcnode.node.metrics import NodeMetrics
from mcnode.node.peers import channel_options
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc


class Clock:
    """Steps in the tests are binary fractions, so that sums are exact."""

    def __init__(self) -> None:
        self.now = 1024.0

    def __call__(self) -> float:
        return self.now


def one(calls: float, burst: float, nbytes: float = 1e9, bytes_burst: float = 1e9) -> Budgets:
    return Budgets({"c": Budget(calls, burst, nbytes, bytes_burst)}, {}, 16, Clock())


# -- buckets --------------------------------------------------------------------------------
def test_a_burst_then_the_rate() -> None:
    b = one(calls=8, burst=3)
    clock = b.clock
    assert isinstance(clock, Clock)
    assert [b.charge("s", "c", 0) for _ in range(4)] == [None, None, None, "calls"]
    clock.now += 0.0625  # half a token
    assert b.charge("s", "c", 0) == "calls"
    clock.now += 0.0625
    assert b.charge("s", "c", 0) is None
    clock.now += 3600  # refills to the burst, no further
    assert [b.charge("s", "c", 0) for _ in range(4)] == [None, None, None, "calls"]


def test_sources_and_classes_have_their_own_buckets() -> None:
    b = Budgets({"x": Budget(1, 1, 1e9, 1e9), "y": Budget(1, 1, 1e9, 1e9)}, {}, 16, Clock())
    assert b.charge("s", "x", 0) is None and b.charge("s", "x", 0) == "calls"
    assert b.charge("s", "y", 0) is None  # another class
    assert b.charge("t", "x", 0) is None  # another source


def test_bytes_and_a_request_larger_than_the_burst() -> None:
    b = one(calls=1000, burst=1000, nbytes=128, bytes_burst=1024)
    clock = b.clock
    assert isinstance(clock, Clock)
    assert b.charge("s", "c", 600) is None
    assert b.charge("s", "c", 600) == "bytes"  # 424 left
    assert b.charge("s", "c", 424) is None
    # Larger than the burst: only from a full bucket, and then it is owed.
    clock.now += 7.75
    assert b.charge("s", "c", 5120) == "bytes"
    clock.now += 0.25
    assert b.charge("s", "c", 5120) is None
    clock.now += 32  # 4096 repaid of 4096 owed: empty, not yet a byte
    assert b.charge("s", "c", 1) == "bytes"
    clock.now += 0.125
    assert b.charge("s", "c", 1) is None


def test_a_refused_call_takes_nothing() -> None:
    b = one(calls=1, burst=2, nbytes=1, bytes_burst=100)
    assert b.charge("s", "c", 200) is None  # full: the big one passes, 100 owed
    assert b.charge("s", "c", 1) == "bytes"
    assert b.charge("s", "c", 1) == "bytes"
    clock = b.clock
    assert isinstance(clock, Clock)
    clock.now += 101  # owed repaid, one byte in; the calls bucket is full again
    assert b.charge("s", "c", 1) is None


def test_the_all_sources_cap() -> None:
    per, shared = Budget(10, 2, 1e9, 1e9), Budget(10, 5, 1e9, 1e9)
    b = Budgets({"auth": per}, {"auth": shared}, 4096, Clock())
    got = [b.charge(f"s{i // 2}", "auth", 0) for i in range(8)]
    assert got == [None] * 5 + ["all calls"] * 3
    assert b.charge("s0", "auth", 0) == "calls"  # its own ran out first


def test_memory_is_bounded_and_a_forgotten_source_starts_full() -> None:
    b = one(calls=1, burst=1)
    assert b.charge("first", "c", 0) is None and b.charge("first", "c", 0) == "calls"
    for i in range(100):
        b.charge(f"s{i}", "c", 0)
    assert len(b) == 16
    assert b.charge("first", "c", 0) is None  # forgotten: a full bucket again
    # The most recently seen are the ones kept.
    assert b.charge("s99", "c", 0) == "calls"


def test_defaults_cover_every_class() -> None:
    b = Budgets.from_limits(RateLimits(), Clock())
    for m in (
        "/mcnode.v1.ConsensusClient/Auth",
        "/mcnode.v1.ConsensusPeer/ConsensusStream",
        "/grpc.health.v1.Health/Check",
        "/mcnode.v1.Blockchain/GetBlocks",
    ):
        assert b.charge("s", method_class(m), 10) is None
    assert b.overall == {"auth": RateLimits().auth_all}


# -- names ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("peer", "source"),
    [
        ("ipv4:127.0.0.1:5555", "ipv4:127.0.0.1"),
        ("ipv6:%5B::1%5D:5555", "ipv6:[::]/64"),
        ("ipv6:[2001:db8:1:2:3:4:5:6]:80", "ipv6:[2001:db8:1:2::]/64"),
        ("ipv6:%5B::ffff:10.0.0.7%5D:1", "ipv4:10.0.0.7"),
        ("ipv6:%5Bnot-an-address%5D:1", "ipv6:not-an-address"),
        ("unix:/tmp/sock", "unix:/tmp/sock"),
    ],
)
def test_source_is_the_address_without_the_port(peer: str, source: str) -> None:
    assert source_of(peer) == source


def test_method_classes() -> None:
    assert method_class("/mcnode.v1.ConsensusClient/Auth") == "auth"
    assert method_class("/mcnode.v1.ConsensusClient/ProposeTx") == "propose_tx"
    assert method_class("/mcnode.v1.ConsensusClient/GetNodeConfig") == "other"
    assert method_class("/mcnode.v1.ConsensusPeer/SendConsensusMsg") == "peer_msgs"
    assert method_class("/mcnode.v1.ConsensusPeer/PeerAuth") == "peer_calls"
    assert method_class("/mcnode.v1.Blockchain/GetLastBlockInfo") == "blockchain"
    assert method_class("/grpc.health.v1.Health/Watch") == "other"


# -- log lines ------------------------------------------------------------------------------
@pytest.mark.parametrize("start", [0.0, 5.0, 100_000.0])
def test_penalties_double_to_the_cap_and_are_forgiven_after_an_hour(start: float) -> None:
    # `start` 0 and 5: a monotonic clock read soon after the host booted. A first offence
    # must cost a second there too (it once cost nothing within a host's first hour).
    now = [start]
    p = Penalties(lambda: now[0])
    assert not p.refused("bob")
    assert p.punish("bob") == 1.0
    assert p.refused("bob") and not p.refused("carol")
    now[0] += 1.5
    assert not p.refused("bob")
    lengths = [p.punish("bob") for _ in range(8)]
    assert lengths == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert p.refused("bob")
    now[0] += 60.0 + 3600.0 + 1.0  # an hour after the last penalty ended
    assert not p.refused("bob")
    assert p.punish("bob") == 1.0


def test_throttle_counts_what_it_held_back() -> None:
    clock = Clock()
    t = Throttle(60, clock)
    assert t.check("k") == 0
    assert [t.check("k") for _ in range(5)] == [None] * 5
    clock.now += 60
    assert t.check("k") == 5 and t.check("k") is None


def test_throttle_overall_cap() -> None:
    clock = Clock()
    t = Throttle(60, clock, overall=3)
    assert [t.check(i) for i in range(5)] == [0, 0, 0, None, None]
    clock.now += 60
    assert t.check(4) == 1  # held back once by the cap: said now, with the count
    assert t.allow(0)


def test_grpc_core_verbosity_is_error_unless_set() -> None:
    env: dict[str, str] = {}
    quiet_grpc_core(env)
    assert env == {"GRPC_VERBOSITY": "ERROR"}
    env = {"GRPC_VERBOSITY": "DEBUG"}
    quiet_grpc_core(env)
    assert env == {"GRPC_VERBOSITY": "DEBUG"}


def test_server_options() -> None:
    peer = dict(server_options("peer", Limits()))
    client = dict(server_options("client", Limits(client_connections=7)))
    assert peer["grpc.max_allowed_incoming_connections"] == Limits().peer_connections
    assert client["grpc.max_allowed_incoming_connections"] == 7
    assert "grpc.max_connection_age_ms" not in peer  # consensus streams stay open
    # Our peers' pings (peers.channel_options) must be allowed.
    pings = dict(channel_options(1 << 20))["grpc.keepalive_time_ms"]
    assert peer["grpc.http2.min_ping_interval_without_data_ms"] <= pings <= 10_000


# -- a real server ----------------------------------------------------------------------------
class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Our lines and gRPC's own (its Python logger), whatever `logs.setup` did before."""
    h = Lines()
    loggers = [logging.getLogger(n) for n in ("mcnode", "grpc")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(h)
        lg.setLevel(logging.INFO)
    yield h
    for lg, level in zip(loggers, levels, strict=True):
        lg.removeHandler(h)
        lg.setLevel(level)


class Counting(rpc.ConsensusClientServicer, rpc.ConsensusPeerServicer):
    def __init__(self) -> None:
        self.calls = 0
        self.msgs = 0

    async def GetNodeConfig(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.NodeConfigResponse:
        self.calls += 1
        return pb.NodeConfigResponse(name="n")

    async def ConsensusStream(
        self, request_iterator: AsyncIterator[pb.ConsensusMsg], context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        async for _ in request_iterator:
            self.msgs += 1
        return pb.ConsensusMsgResponse(result=pb.PEER_OK)


TIGHT = RateLimits(
    other=Budget(1, 3, 1e9, 1e9),
    peer_msgs=Budget(1, 5, 1e9, 1e9),
)


def codes(errors: list[grpc.aio.AioRpcError]) -> list[tuple[str, str]]:
    return [(e.code().name, e.details() or "") for e in errors]


async def _scenario(clock: Clock) -> tuple[Counting, NodeMetrics, list[str]]:
    """Returns the servicer, the metrics and what each step observed, in order."""
    metrics, servicer = NodeMetrics(), Counting()
    gate = Gate("client", Budgets.from_limits(TIGHT, clock), metrics, NodeLog("t"), clock)
    server = make_server("client", Limits(), gate)
    rpc.add_ConsensusClientServicer_to_server(servicer, server)
    rpc.add_ConsensusPeerServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    seen: list[str] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            raw = ch.unary_unary("/mcnode.v1.ConsensusClient/GetNodeConfig")
            # Undecodable bytes: INVALID_ARGUMENT, our sentence, and no servicer.
            errors: list[grpc.aio.AioRpcError] = []
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await raw(b"\xff\xff\xff")
            errors.append(e.value)
            assert codes(errors) == [("INVALID_ARGUMENT", UNDECODABLE)]
            assert servicer.calls == 0
            # The undecodable one was charged: 2 more pass, then the budget is spent.
            assert await raw(b"") == pb.NodeConfigResponse(name="n").SerializeToString()
            await raw(b"")
            for _ in range(10):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await raw(b"")
                assert (e.value.code(), e.value.details()) == (
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    OVER_BUDGET,
                )
            assert servicer.calls == 2
            seen.append("unary")
            # A minute later: budget back, and the next refusal's line counts the 9.
            clock.now += 61
            for _ in range(3):
                await raw(b"")
            with pytest.raises(grpc.aio.AioRpcError):
                await raw(b"")
            seen.append("minute")

            # A stream: opening costs one, so 4 messages pass and the 5th ends it. (An
            # iterator of exactly 5: a write racing the end would fail on the client's
            # side, and gRPC core then reports INTERNAL instead of the server's status, as
            # one CI run saw with 20.)
            call = rpc.ConsensusPeerStub(ch).ConsensusStream(iter([pb.ConsensusMsg()] * 5))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call
            assert (e.value.code(), e.value.details()) == (
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                OVER_BUDGET,
            )
            assert servicer.msgs == 4
            seen.append("stream")

            # An undecodable message ends a stream too.
            clock.now += 61
            bad = ch.stream_unary("/mcnode.v1.ConsensusPeer/ConsensusStream")
            call2 = bad(iter([pb.ConsensusMsg().SerializeToString(), b"\xff\xff"]))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await call2
            assert (e.value.code(), e.value.details()) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                UNDECODABLE,
            )
            assert servicer.msgs == 5
            seen.append("bad stream")
    finally:
        await server.stop(0)
    return servicer, metrics, seen


def test_a_real_server_refuses_floods_and_bad_bytes_before_its_servicer(lines: Lines) -> None:
    clock = Clock()
    _, metrics, seen = asyncio.run(_scenario(clock))
    assert seen == ["unary", "minute", "stream", "bad stream"]
    # gRPC itself logged nothing (it used to: one error line per undecodable request).
    assert not [r for r in lines.records if r.name.startswith("grpc")]
    ours = [
        (r.getMessage(), r.kv["method"], r.kv["why"], r.kv["suppressed"])  # type: ignore[attr-defined]
        for r in lines.records
        if r.name == "mcnode"
    ]
    assert ours == [
        ("request refused", "GetNodeConfig", "undecodable", 0),
        ("request refused", "GetNodeConfig", "over_budget", 0),  # then 9 held back
        ("request refused", "GetNodeConfig", "over_budget", 9),
        ("request refused", "ConsensusStream", "over_budget", 0),
        ("request refused", "ConsensusStream", "undecodable", 0),
    ]
    for r in lines.records:
        assert r.kv["source"] == "ipv4:127.0.0.1" and r.kv["api"] == "client"  # type: ignore[attr-defined]

    def refused(method: str, reason: str) -> float | None:
        return metrics.registry.get_sample_value(
            "mcnode_requests_refused_total",
            {"api": "client", "method": method, "reason": reason},
        )

    assert refused("GetNodeConfig", "over_budget") == 11
    assert refused("GetNodeConfig", "undecodable") == 1
    assert refused("ConsensusStream", "over_budget") == 1
    assert refused("ConsensusStream", "undecodable") == 1


# -- gRPC core's read-ahead ----------------------------------------------------------------------
async def _read_ahead_after_a_stall(size: int) -> tuple[int, int]:
    """A server with our peer options whose handler reads a stream for 2 s and then
    stops (a busy node): how many `size`-byte messages the sender got through before the
    stall, and after it (what gRPC core took in for a handler that was not reading)."""
    stalled = asyncio.Event()

    async def busy(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        async for _ in requests:
            if stalled.is_set():
                await asyncio.sleep(60)
        return b""

    server = grpc.aio.server(options=server_options("peer", Limits()))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "t.S", {"S": grpc.stream_unary_rpc_method_handler(busy)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    payload = b"r" * size
    loop = asyncio.get_running_loop()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.stream_unary("/t.S/S")()
            before = after = 0
            end = loop.time() + 2.0
            while loop.time() < end:
                await call.write(payload)
                before += 1
            stalled.set()
            try:
                while after * size < 64 << 20:
                    await asyncio.wait_for(call.write(payload), 1.0)
                    after += 1
            except TimeoutError:
                pass
            call.cancel()
    finally:
        await server.stop(0)
    return before, after


def test_a_busy_handler_is_read_ahead_one_window_not_a_growing_estimate() -> None:
    """gRPC core reads a stream ahead of its handler. By default that window grows with a
    bandwidth-delay estimate: after 2 s of fast 64 KiB messages a peer could push 3.6-5.4 MiB
    into a node that had stopped reading, and a flood of refused streams churned that much
    each (the node grew 175 MB in one CI run). Ours is `READ_AHEAD_BYTES`, fixed."""
    size = 64 * 1024
    before, after = asyncio.run(_read_ahead_after_a_stall(size))
    assert before > 100  # the handler was reading: a fast sender got through
    assert after * size <= 2 * READ_AHEAD_BYTES, (after, before)


# -- gRPC core's own lines ----------------------------------------------------------------------
_HANDSHAKES = """
import asyncio, datetime, sys
from mcnode.node.logs import quiet_grpc_core
if sys.argv[1] == "quiet":
    quiet_grpc_core()
import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder().subject_name(name).issuer_name(name)
    .public_key(key.public_key()).serial_number(1).not_valid_before(now)
    .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
)
pair = (
    key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ),
    cert.public_bytes(serialization.Encoding.PEM),
)

async def main():
    server = grpc.aio.server()
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([pair]))
    await server.start()
    for _ in range(3):  # plaintext to a TLS port: a failed handshake each
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            try:
                await ch.unary_unary("/x/y")(b"", timeout=0.5)
            except grpc.aio.AioRpcError:
                pass
    await server.stop(0)

asyncio.run(main())
"""


def test_failed_tls_handshakes_write_no_line_once_grpc_core_is_quiet(tmp_path: Path) -> None:
    """What `mcnode run` does first (`quiet_grpc_core`, before grpc is imported) keeps
    gRPC core's INFO line per failed handshake out of the log; without it, one each."""
    script = tmp_path / "handshakes.py"
    script.write_text(_HANDSHAKES)
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    said: dict[str, int] = {}
    for mode in ("loud", "quiet"):
        r = subprocess.run(
            [sys.executable, str(script), mode],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        said[mode] = r.stderr.count("Handshake failed")
    # gRPC may retry a refused connection within a call's deadline, or (loaded) not get
    # to it: some lines when loud, however many attempts that was; none when quiet.
    assert said["loud"] >= 1 and said["quiet"] == 0, said


def test_the_run_command_imports_no_grpc_before_quieting_it() -> None:
    code = "import sys, mcnode.node.cli; print('grpc' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert r.stdout.strip() == "False"
