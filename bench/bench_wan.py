"""What the network does at distance: 4 validators, each in its own namespace, at 0, 50,
100 and 200 ms round trips (`mcnode localnet --netns`, as root).

    python bench/bench_wan.py [--rtts 0,50,100,200] [--duration 30] [--tx-rate 5]
                              [--compare-timeouts 200] [--switch]

1. Per RTT: submit-to-commit latency p50/p99 and committed tx/s at 5 tx/s (the load
   generator's links have no delay: the figure is the network's, not a wallet's distance),
   with --scp-trace on every validator. From the traces, per slot and node: the time from
   the first nomination round to the confirmed candidate (nomination) and from there to
   externalize (ballot: prepare and commit), their medians, and what they are in one-way
   delays (RTT / 2); how many nomination timeouts and timer-driven ballot bumps fired.
2. --compare-timeouts R: the same at R ms with the localnet's loopback timeouts
   (`--scp-timeouts keep`) against the scaled ones (`auto`).
3. --switch: the switch's own error and cost: round trips of a 1-byte TCP echo through it
   against the configured RTT, and its CPU per MB for a bulk TCP transfer.
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def run_localnet(d: Path, rtt: float, duration: float, rate: float, *extra: str) -> dict[str, Any]:
    for t in d.glob("node*/scp-trace.jsonl"):
        t.unlink()
    out = d / "summary.json"
    cmd = [sys.executable, "-m", "mcnode", "localnet", "--netns", "--dir", str(d), "--no-live"]
    cmd += ["--rtt-ms", str(rtt), "--duration", str(duration), "--tx-rate", str(rate)]
    cmd += ["--json-summary", str(out), "--seed", "1", "--scp-trace", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=duration + 240)
    if r.returncode != 0:
        raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def phases(d: Path) -> dict[str, Any]:
    """Per (node, slot): nomination = first `nomination round` -> first `confirm
    nominate`; ballot = that -> `confirm commit`."""
    nom: list[float] = []
    bal: list[float] = []
    steps: dict[str, list[float]] = defaultdict(list)
    timeouts = bumps = slots = 0
    for f in sorted(d.glob("node*/scp-trace.jsonl")):
        by_slot: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for line in f.read_text().splitlines():
            e = json.loads(line)
            by_slot[e["slot"]].append(e)
        for evs in by_slot.values():
            t0 = next((e["t"] for e in evs if e["event"] == "nomination round"), None)
            tc = next((e["t"] for e in evs if e["event"] == "confirm nominate"), None)
            te = next((e["t"] for e in evs if e["event"] == "confirm commit"), None)
            timeouts += sum(1 for e in evs if e["event"] == "nomination timeout")
            bumps += sum(1 for e in evs if e["event"] == "bump" and e.get("by") == "timer")
            if t0 is None or tc is None or te is None:
                continue
            slots += 1
            nom.append(tc - t0)
            bal.append(te - tc)
            prev = tc
            for name in ("accept prepared", "confirm prepared", "accept commit", "confirm commit"):
                t = next((e["t"] for e in evs if e["event"] == name and e["t"] >= prev), None)
                if t is not None:
                    steps[name].append(t - prev)
                    prev = t
    med = statistics.median
    return {
        "slots": slots,
        "nomination_ms_p50": round(1000 * med(nom), 1) if nom else None,
        "ballot_ms_p50": round(1000 * med(bal), 1) if bal else None,
        "ballot_steps_ms_p50": {k: round(1000 * med(v), 1) for k, v in steps.items()},
        "nomination_timeouts": timeouts,
        "ballot_timer_bumps": bumps,
    }


def row(base: Path, rtt: float, duration: float, rate: float, *extra: str) -> dict[str, Any]:
    """One run on a fresh network (a reused directory's load generator would carry the
    fees of earlier runs in its balances)."""
    from mcnode.localnet.init import init_network

    d = Path(tempfile.mkdtemp(dir=base))
    init_network(d, nodes=4, force=True)
    s = run_localnet(d, rtt, duration, rate, *extra)
    ph = phases(d)
    one_way = rtt / 2
    slot_ms = (ph["nomination_ms_p50"] or 0) + (ph["ballot_ms_p50"] or 0)
    out = {
        "rtt_ms": rtt,
        "scp": s["network"].get("scp"),
        "p50_ms": s["latency_ms"]["p50"],
        "p99_ms": s["latency_ms"]["p99"],
        "tx_per_s": s["tx_per_s"],
        "committed": s["committed_txs"],
        "submitted": s["submitted_txs"],
        "blocks": s["blocks"],
        "agree": len({n["last_block_id"] for n in s["nodes"]}) == 1,
        "switch_late_ms": s["network"]["switch"]["late_ms"],
        **ph,
        "one_way_delays_per_slot": round(slot_ms / one_way, 1) if one_way else None,
        "one_way_delays_per_commit_p50": round(s["latency_ms"]["p50"] / one_way, 1)
        if one_way and s["latency_ms"]["p50"]
        else None,
    }
    print(json.dumps(out), flush=True)
    return out


# -- the switch alone ------------------------------------------------------------------------

_ECHO = r"""
import socket, sys, time
mode, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "server":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 9000)); s.listen(); c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        d = c.recv(1 << 20)
        if not d: break
        if d[:1] == b"x": c.sendall(b"x")
elif mode == "echo":
    c = socket.create_connection((addr, 9000), timeout=30)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    xs = []
    for _ in range(n):
        t = time.monotonic(); c.sendall(b"x"); c.recv(10); xs.append(time.monotonic() - t)
        time.sleep(0.01)
    print(" ".join(f"{x * 1000:.3f}" for x in xs))
else:
    c = socket.create_connection((addr, 9000), timeout=30)
    buf = b"\0" * (1 << 16); t = time.monotonic(); sent = 0
    while sent < n: c.sendall(buf); sent += len(buf)
    c.shutdown(socket.SHUT_WR); c.recv(1); print(f"{time.monotonic() - t:.3f}")
"""


def switch_error_and_cost(rtts: list[float]) -> dict[str, Any]:
    from mcnode.localnet.netns import NetnsRun, node_address, uniform_plan

    script = Path(tempfile.mkstemp(suffix=".py")[1])
    script.write_text(_ECHO)
    out: dict[str, Any] = {"echo": [], "bulk": None}
    try:
        for rtt in [*rtts, 0.0]:
            with NetnsRun(uniform_plan(["a", "b"], rtt), Path(tempfile.gettempdir())) as net:
                srv = subprocess.Popen(
                    [
                        *net.exec_prefix("b"),
                        sys.executable,
                        str(script),
                        "server",
                        node_address(1),
                        "0",
                    ]
                )
                time.sleep(0.5)
                if rtt > 0:
                    r = subprocess.run(
                        [
                            *net.exec_prefix("a"),
                            sys.executable,
                            str(script),
                            "echo",
                            node_address(1),
                            "100",
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    xs = sorted(float(x) for x in r.stdout.split())
                    out["echo"].append(
                        {
                            "configured_ms": rtt,
                            "p50_ms": xs[len(xs) // 2],
                            "p99_ms": xs[98],
                            "max_ms": xs[-1],
                            "p50_error_pct": round(100 * (xs[len(xs) // 2] - rtt) / rtt, 2),
                        }
                    )
                else:
                    before = net.stats() or {}
                    n = 200 * 2**20
                    r = subprocess.run(
                        [
                            *net.exec_prefix("a"),
                            sys.executable,
                            str(script),
                            "bulk",
                            node_address(1),
                            str(n),
                        ],
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                    after = net.stats() or {}
                    cpu = after["cpu_s"] - before.get("cpu_s", 0.0)
                    mb = n / 2**20
                    out["bulk"] = {
                        "mb": mb,
                        "seconds": float(r.stdout),
                        "mb_per_s": round(mb / float(r.stdout), 1),
                        "switch_cpu_s": round(cpu, 2),
                        "switch_cpu_ms_per_mb": round(1000 * cpu / mb, 2),
                        "late_ms": after["late_ms"],
                    }
                srv.kill()
                srv.wait()
    finally:
        script.unlink()
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtts", default="0,50,100,200")
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--tx-rate", type=float, default=5.0)
    ap.add_argument("--compare-timeouts", type=float, default=None, metavar="RTT_MS")
    ap.add_argument("--switch", action="store_true")
    a = ap.parse_args()
    from mcnode.localnet.netns import why_not_available

    reason = why_not_available()
    if reason:
        sys.exit(reason)
    res: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    if a.switch:
        res["switch"] = switch_error_and_cost([50.0, 100.0, 200.0])
    with tempfile.TemporaryDirectory(prefix="bench-wan-") as tmp:
        d = Path(tmp)
        rtts = [float(x) for x in a.rtts.split(",") if x]
        res["rows"] = [row(d, r, a.duration, a.tx_rate) for r in rtts]
        if a.compare_timeouts is not None:
            r = a.compare_timeouts
            res["timeouts"] = {
                "keep": row(d, r, a.duration, a.tx_rate, "--scp-timeouts", "keep"),
                "auto": row(d, r, a.duration, a.tx_rate, "--scp-timeouts", "auto"),
            }
    print(json.dumps(res))


if __name__ == "__main__":
    main()
