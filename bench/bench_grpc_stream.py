"""What one consensus message costs in Python gRPC, against the floor of a plain socket.

    python bench/bench_grpc_stream.py [--msgs 2000] [--gap-ms 1] [--tls]

A validator sends each SCP statement to each peer as one write on a long-lived gRPC
client stream (`ConsensusStream`) and reads its peers' the same way. Statements are
spaced out (one network hop apart), so every message pays its own wake-ups: gRPC's
event-engine thread, its completion-queue poller thread, the GIL and asyncio's loop. This
bench sends `--msgs` ConsensusMsg-sized messages (~400 bytes) one every `--gap-ms`, from
one process to another on loopback, and reports the CPU time per message of the sender
and of the receiver (user + system, whole process; the sender's idle pacing loop's own
cost is taken off), for:

1. gRPC aio (a peer without a consensus port: `grpc.aio` stub write, server read);
2. asyncio streams with a 4-byte length prefix (the floor: one `send` and one `recv`);
3. with `--tls`, the node's own consensus port (`node.frames`: `FrameLink.send`, a
   `FrameServer` behind the peer gate, mutual TLS as between validators).

TLS is off in both unless `--tls`: then both run over TLS 1.3 with a throwaway identity
of the peer port's kind (`node.tls.make_tls_identity`): gRPC's TLS in its C core,
asyncio's through Python's `ssl` (a memory BIO driven by asyncio's Python SSL protocol),
which costs differently per message. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from mcnode.node.tls import PEER_TLS_NAME
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

MSG = pb.ConsensusMsg(
    scp_msg=b"x" * 250, prev_block_id=b"p" * 32, signer=b"s" * 32, signature=b"g" * 64
)


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(d: Path) -> None:
    """A peer port's kind of TLS identity (P-256, self-signed, `PEER_PEER_TLS_NAME`) in `d`."""
    from mcnode.crypto import system_random
    from mcnode.node.tls import make_tls_identity

    ident = make_tls_identity("bench", system_random(32), system_random)
    (d / "key.pem").write_bytes(ident.key_pem)
    (d / "cert.pem").write_bytes(ident.cert_pem)


# -- receivers (run as child processes; print CPU seconds per message on exit) -------------
async def grpc_receiver(port: int, n: int, tls: Path | None) -> None:
    import grpc

    done = asyncio.Event()
    out: list[float] = []

    class Peer(rpc.ConsensusPeerServicer):
        async def ConsensusStream(self, it, context):  # type: ignore[no-untyped-def]
            got, t0 = 0, 0.0
            async for _ in it:
                if got == 0:
                    t0 = cpu()
                got += 1
            out.append((cpu() - t0) / max(1, got - 1))
            done.set()
            return pb.ConsensusMsgResponse()

    server = grpc.aio.server()
    rpc.add_ConsensusPeerServicer_to_server(Peer(), server)
    if tls is None:
        server.add_insecure_port(f"127.0.0.1:{port}")
    else:
        pair = ((tls / "key.pem").read_bytes(), (tls / "cert.pem").read_bytes())
        server.add_secure_port(f"127.0.0.1:{port}", grpc.ssl_server_credentials([pair]))
    await server.start()
    print("ready", flush=True)
    await done.wait()
    await server.stop(None)
    print(out[0], flush=True)


async def socket_receiver(port: int, n: int, tls: Path | None) -> None:
    done = asyncio.Event()
    out: list[float] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        got, t0 = 0, 0.0
        while True:
            head = await r.readexactly(4)
            (size,) = struct.unpack("<I", head)
            if size == 0:
                break
            pb.ConsensusMsg.FromString(await r.readexactly(size))
            if got == 0:
                t0 = cpu()
            got += 1
        out.append((cpu() - t0) / max(1, got - 1))
        w.close()
        done.set()

    ctx = None
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_cert_chain(tls / "cert.pem", tls / "key.pem")
    server = await asyncio.start_server(serve, "127.0.0.1", port, ssl=ctx)
    print("ready", flush=True)
    await done.wait()
    server.close()
    print(out[0], flush=True)


def frame_identities(d: Path) -> dict[str, tuple[Path, Path, bytes]]:
    """Mutual TLS as between two validators: (key, cert, cert PEM) of each, made once."""
    from mcnode.crypto import system_random
    from mcnode.node.tls import make_tls_identity, write_tls_identity

    out = {}
    for name in ("sender", "receiver"):
        key, cert = d / f"{name}.key", d / f"{name}.crt"
        if not cert.exists():
            write_tls_identity(key, cert, make_tls_identity(name, system_random(32), system_random))
        out[name] = (key, cert, cert.read_bytes())
    return out


async def frames_receiver(port: int, n: int, tls: Path | None) -> None:
    import time

    from mcnode.node.config import RateLimits
    from mcnode.node.frames import FrameServer, server_context
    from mcnode.node.gate import Budgets, Gate, Penalties
    from mcnode.node.logs import NodeLog
    from mcnode.node.metrics import NodeMetrics
    from mcnode.node.tls import PeerCerts

    assert tls is not None
    ids = frame_identities(tls)
    done = asyncio.Event()
    state = {"got": 0, "t0": 0.0}

    def receive(msg: pb.ConsensusMsg, peer: str) -> int:
        if state["got"] == 0:
            state["t0"] = cpu()
        state["got"] += 1
        if state["got"] == n + 1:
            done.set()
        return pb.PEER_OK

    certs = PeerCerts({"sender": ids["sender"][2]})
    penalties = Penalties(time.monotonic)
    gate = Gate(
        "peer",
        Budgets.from_limits(RateLimits(), time.monotonic),
        NodeMetrics(),
        NodeLog("receiver"),
        penalties=penalties,
    )
    key, cert, pem = ids["receiver"]
    server = FrameServer(
        server_context(cert, key, certs.bundle + pem),
        certs.name_of_der,
        receive,
        gate,
        penalties,
        NodeLog("receiver"),
        4 * 1024 * 1024,
        128,
    )
    await server.start("127.0.0.1", port)
    print("ready", flush=True)
    await done.wait()
    per = (cpu() - state["t0"]) / max(1, state["got"] - 1)
    await server.close()
    print(per, flush=True)


# -- senders (this process) ---------------------------------------------------------------
async def idle_loop(n: int, gap: float) -> float:
    t0 = cpu()
    for _ in range(n):
        await asyncio.sleep(gap)
    return (cpu() - t0) / n


def grpc_channel(port: int, tls: Path | None) -> object:
    import grpc

    if tls is None:
        return grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    creds = grpc.ssl_channel_credentials(root_certificates=(tls / "cert.pem").read_bytes())
    opts = [("grpc.ssl_target_name_override", PEER_TLS_NAME)]
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=opts)


async def grpc_sender(port: int, n: int, gap: float, tls: Path | None) -> float:
    async with grpc_channel(port, tls) as ch:  # type: ignore[attr-defined]
        call = rpc.ConsensusPeerStub(ch).ConsensusStream(wait_for_ready=True)
        await call.write(MSG)
        t0 = cpu()
        for _ in range(n):
            await asyncio.sleep(gap)
            await call.write(MSG)
        per = (cpu() - t0) / n
        await call.done_writing()
        await call
    return per


async def socket_sender(port: int, n: int, gap: float, tls: Path | None) -> float:
    ctx = None
    if tls is not None:
        ctx = ssl.create_default_context(cafile=tls / "cert.pem")
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    name = PEER_TLS_NAME if tls is not None else None
    _, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=name)
    w.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    raw = MSG.SerializeToString()
    w.write(struct.pack("<I", len(raw)) + raw)
    t0 = cpu()
    for _ in range(n):
        await asyncio.sleep(gap)
        w.write(struct.pack("<I", len(raw)) + MSG.SerializeToString())
        await w.drain()
    per = (cpu() - t0) / n
    w.write(struct.pack("<I", 0))
    await w.drain()
    w.close()
    return per


async def frames_sender(port: int, n: int, gap: float, tls: Path | None) -> float:
    from mcnode.node.frames import FrameLink, client_context
    from mcnode.node.logs import NodeLog

    assert tls is not None
    ids = frame_identities(tls)
    key, cert, _ = ids["sender"]
    ctx = client_context(cert, key, ids["receiver"][2])
    link = FrameLink(
        "receiver", "127.0.0.1", port, ctx, NodeLog("sender"), lambda: None, lambda u, w: None, 1000
    )
    task = asyncio.create_task(link.run())
    while not link.up:
        await asyncio.sleep(0.01)
    link.send(MSG)
    t0 = cpu()
    for _ in range(n):
        await asyncio.sleep(gap)
        link.send(MSG)
    per = (cpu() - t0) / n
    await asyncio.sleep(0.5)  # let the last frames leave before the connection closes
    task.cancel()
    return per


def run(kind: str, n: int, gap: float, tls: Path | None) -> tuple[float, float]:
    port = free_port()
    cmd = [sys.executable, __file__, "--receiver", kind, "--port", str(port), "--msgs", str(n)]
    child = subprocess.Popen(
        cmd + (["--tls-dir", str(tls)] if tls is not None else []),
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    sender = {"grpc": grpc_sender, "socket": socket_sender, "frames": frames_sender}[kind]
    sent = asyncio.run(sender(port, n, gap, tls))
    received = float(child.stdout.readline())
    child.wait(30)
    return sent, received


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--msgs", type=int, default=2000)
    ap.add_argument("--gap-ms", type=float, default=1.0)
    ap.add_argument("--receiver", choices=["grpc", "socket", "frames"])
    ap.add_argument("--port", type=int)
    ap.add_argument("--tls", action="store_true", help="both over TLS 1.3")
    ap.add_argument("--tls-dir", type=Path)  # the receiver's: where the key and cert are
    a = ap.parse_args()
    if a.receiver:
        recv = {"grpc": grpc_receiver, "socket": socket_receiver, "frames": frames_receiver}[
            a.receiver
        ]
        asyncio.run(recv(a.port, a.msgs, a.tls_dir))
        return
    gap = a.gap_ms / 1000
    idle = asyncio.run(idle_loop(a.msgs, gap))
    out: dict[str, float | str | bool] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "tls": a.tls,
    }
    with tempfile.TemporaryDirectory() as d:
        tls = Path(d) if a.tls else None
        if tls is not None:
            make_cert(tls)
        measure(a.msgs, gap, idle, tls, out)
    print(json.dumps(out))


def measure(
    n: int, gap: float, idle: float, tls: Path | None, out: dict[str, float | str | bool]
) -> None:
    kinds = ("grpc", "socket", "frames") if tls is not None else ("grpc", "socket")
    for kind in kinds * 2:  # interleaved, best of two
        sent, received = run(kind, n, gap, tls)
        send_us = 1e6 * (sent - idle)
        recv_us = 1e6 * received  # the receiver has no pacing loop of its own
        print(f"{kind:6s}: send {send_us:6.0f} us CPU per message, receive {recv_us:6.0f} us")
        for key, v in ((f"{kind}_send_us", send_us), (f"{kind}_receive_us", recv_us)):
            out[key] = round(min(float(out.get(key, v)), v), 1)
    print(f"(the pacing loop alone: {1e6 * idle:.0f} us CPU per message, taken off above)")


if __name__ == "__main__":
    main()
