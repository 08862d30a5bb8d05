"""Hostile input against one validator of a 4-validator localnet, with real payments going on.

    python bench/bench_hostile.py [--seconds 10] [--baseline 5] [--attacks a,b,c,d,e]
                                  [--tx-rate 3] [--auth-seconds 20] [--json PATH|-] [--keep DIR]

Initialises a localnet in a temp dir, starts it, runs `mcnode load` (a separate process)
on 8 of its 12 sample accounts at `--tx-rate`, keeps the other 4 for probe wallets, then
runs each attack of `tests/attacks.py` against node0 for a bounded time:

    a  relayed_by flood (resend a peer's signed message with a fresh 1 MiB relayed_by)
    b  Auth flood (32 random bytes per call, 16 in flight); wallets before/during/after
    c  bad-signature flood (node1 claimed as signer, one ConsensusStream)
    d  garbage flood (undecodable protobuf to 8 methods) and the admin probes
    e  200 connections holding slow streams; 1 MiB metadata; a replayed ProposeTx

For each: node0's peak RSS (host and enclave child, sampled every 0.2 s), CPU cores used,
blocks/s and log lines written, over a baseline window (load only) and during the attack;
answers by gRPC status; whether a wallet paying through node0 during the attack commits.
node0 is restarted between attacks if it died or kept more than 500 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import attacks
from attacks import (
    ACCOUNTS,
    OUTPUTS,
    RESTART_IF_GROWN_MB,
    AttackResult,
    Measured,
    Monitor,
    Target,
    WalletOutcome,
    probe_txs,
    start_load,
    stop_process,
)
from mcnode.crypto import SeededRandom
from mcnode.localnet.init import init_network
from mcnode.localnet.procs import Cluster
from mcnode.transaction.tx import Tx


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.machine()} {os.cpu_count()} cores {model}".strip()


class Bench:
    def __init__(self, d: Path, cluster: Cluster, args: argparse.Namespace) -> None:
        self.d = d
        self.cluster = cluster
        self.args = args
        self.txs = probe_txs(d)
        self.notes: list[str] = []
        self.rows: list[tuple[str, Measured]] = []
        self.target = self._target()
        self.monitor = Monitor(self.target)
        self.start_rss = attacks.rss_mb(self.target.pid) or 0.0

    def _target(self) -> Target:
        n = self.cluster.node("node0")
        return attacks.target_from_dir(n.dir, n.proc.pid if n.proc else None)

    def tx(self) -> Tx:
        return self.txs.pop(0)

    def wait_blocks(self, more: int = 2, timeout: float = 60.0) -> None:
        h0 = attacks.block_height(self.target) or 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (attacks.block_height(self.target) or 0) >= h0 + more:
                return
            time.sleep(0.2)
        self.notes.append(f"blocks did not advance by {more} in {timeout:.0f} s")

    def recover(self, label: str) -> None:
        """node0 fresh again if the attack killed it or left it bloated."""
        n = self.cluster.node("node0")
        rss = attacks.rss_mb(self.target.pid)
        why = ""
        if not n.running():
            why = f"node0 exited (code {n.proc.returncode if n.proc else '?'})"
        elif rss is not None and rss - self.start_rss > RESTART_IF_GROWN_MB:
            why = f"node0 kept {rss:.0f} MB"
        if not why:
            return
        self.notes.append(f"after {label}: {why}; restarted node0")
        self.monitor.close()
        n.stop()
        n.start()
        n.wait_ready(60)
        self.target = self._target()
        self.monitor = Monitor(self.target)
        self.wait_blocks(3)

    async def run_one(
        self,
        label: str,
        attack: Callable[[Target], Awaitable[AttackResult]],
        probe: bool = True,
        seconds: float | None = None,
    ) -> None:
        secs = seconds if seconds is not None else self.args.seconds
        target = self.target

        async def with_probe() -> AttackResult:
            if not probe:
                return await attack(target)
            tx = self.tx()

            async def paying() -> WalletOutcome:
                await asyncio.sleep(secs * 0.4)
                return await attacks.pay(target, tx, commit_timeout=20.0)

            r, w = await asyncio.gather(attack(target), paying())
            return AttackResult(
                r.name, r.seconds, r.sent, r.codes, r.refused_at_connect, r.details,
                r.stopped_early, {**r.wallets, "during": w}, r.extra,
            )  # fmt: skip

        print(f"-- {label}", file=sys.stderr, flush=True)
        m = await attacks.measured(self.monitor, with_probe, self.args.baseline)
        self.rows.append((label, m))
        print(f"   {summary_line(m)}", file=sys.stderr, flush=True)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(self.recover, label)

    async def run(self) -> None:
        a, s = self.args, self.args.seconds
        chosen = set(a.attacks.split(","))
        # A wallet before anything: the network works.
        w = await attacks.pay(self.target, self.tx())
        self.notes.append(f"wallet before any attack: {w.short()}")
        if "a" in chosen:
            await self.run_one("a relayed_by flood", lambda t: attacks.relayed_by_flood(t, s))
        if "b" in chosen:
            txs = [self.tx() for _ in range(4)]
            await self.run_one(
                "b Auth flood",
                lambda t: attacks.auth_flood(t, a.auth_seconds, max_calls=a.auth_calls, txs=txs),
                probe=False,
                seconds=a.auth_seconds,
            )
        if "c" in chosen:
            await self.run_one("c bad-signature flood", lambda t: attacks.bad_signature_flood(t, s))
        if "d" in chosen:
            await self.run_one("d garbage flood", lambda t: attacks.garbage_flood(t, s))
            await self.run_one("d admin probes", attacks.admin_probes, probe=False, seconds=0)
        if "e" in chosen:
            await self.run_one("e 200 held slow streams", lambda t: attacks.held_streams(t, s))
            await self.run_one("e 1 MiB metadata", lambda t: attacks.oversized_metadata(t, s))
            tx, tx2 = self.tx(), self.tx()
            await self.run_one(
                "e replayed ProposeTx",
                lambda t: attacks.replay_propose(t, tx, next_tx=tx2),
                probe=False,
                seconds=0,
            )


def _codes(r: AttackResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(r.codes.items(), key=lambda kv: -kv[1])) or "-"


def _wallets(r: AttackResult) -> str:
    return "; ".join(f"{k}: {w.short()}" for k, w in r.wallets.items()) or "-"


def _arrow(a: float | int | None, b: float | int | None, unit: str = "") -> str:
    def f(x: float | int | None) -> str:
        return "-" if x is None else (f"{x:.0f}" if isinstance(x, float) and x >= 100 else f"{x}")

    return f"{f(a)} → {f(b)}{unit}"


def summary_line(m: Measured) -> str:
    r, b, d = m.result, m.before, m.during
    return (
        f"sent {r.sent} in {r.seconds}s; {_codes(r)}; refused@connect {r.refused_at_connect}; "
        f"rss {_arrow(b.rss_mb_peak, d.rss_mb_peak)} MB; cpu {_arrow(b.cpu_cores, d.cpu_cores)}; "
        f"blk/s {_arrow(b.blocks_per_s, d.blocks_per_s)}; log {_arrow(b.log_lines, d.log_lines)}"
        f"{' ' + r.stopped_early if r.stopped_early else ''}; {_wallets(r)}"
    )


def table(rows: list[tuple[str, Measured]]) -> str:
    head = (
        "| attack | sent (s) | answers | refused at connect | node RSS peak MB | "
        "enclave RSS peak MB | node CPU cores | attacker CPU | blocks/s | log lines (errors) | "
        "wallet via node0 |"
    )
    out = [head, "|" + "---|" * 11]
    for label, m in rows:
        r, b, d = m.result, m.before, m.during
        stop = f" (stopped: {r.stopped_early})" if r.stopped_early else ""
        rate = d.blocks_per_s if d.seconds >= 2 else None  # too short a window to say
        out.append(
            f"| {label} | {r.sent} ({r.seconds}){stop} | {_codes(r)} | {r.refused_at_connect} | "
            f"{_arrow(b.rss_mb_peak, d.rss_mb_peak)} (end {d.rss_mb_end:.0f}) | "
            f"{_arrow(b.enclave_rss_mb_peak, d.enclave_rss_mb_peak)} | "
            f"{_arrow(b.cpu_cores, d.cpu_cores)} | {m.attacker_cpu_cores} | "
            f"{_arrow(b.blocks_per_s, rate)} | "
            f"{b.log_lines} ({b.error_lines}) → {d.log_lines} ({d.error_lines}) | {_wallets(r)} |"
        )
    return "\n".join(out)


def details(rows: list[tuple[str, Measured]]) -> str:
    out = []
    for label, m in rows:
        r = m.result
        out.append(f"{label}:")
        for dt in r.details:
            out.append(f"    detail  {dt}")
        for k, v in r.extra.items():
            out.append(f"    {k}  {json.dumps(v, default=str)}")
    return "\n".join(out)


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    d = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mcnode-hostile-"))
    init_network(
        d, nodes=4, accounts=ACCOUNTS, outputs_per_account=OUTPUTS, rng=SeededRandom(9),
        force=True,
    )  # fmt: skip
    cluster = Cluster(d)
    load: subprocess.Popen[bytes] | None = None
    bench: Bench | None = None
    try:
        cluster.start()
        load = start_load(d, args.tx_rate)
        bench = Bench(d, cluster, args)
        bench.wait_blocks(3)
        await bench.run()
        if load.poll() is not None:
            bench.notes.append(f"the load generator exited early ({load.returncode})")
        return {
            "machine": machine(),
            "args": vars(args),
            "dir": str(d),
            "notes": bench.notes,
            "rows": [
                {"attack": label, "before": asdict(m.before), "during": asdict(m.during),
                 "result": asdict(m.result)}
                for label, m in bench.rows
            ],
            "_rows": bench.rows,
        }  # fmt: skip
    finally:
        if bench is not None:
            bench.monitor.close()
        if load is not None:
            stop_process(load)
        cluster.close()
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="each attack's time bound")
    ap.add_argument("--auth-seconds", type=float, default=45.0, help="attack b's time bound")
    ap.add_argument(
        "--auth-calls", type=int, default=12_000, help="attack b stops after this many calls"
    )
    ap.add_argument("--baseline", type=float, default=5.0, help="load-only window before each")
    ap.add_argument("--attacks", default="a,b,c,d,e", help="which (comma-separated)")
    ap.add_argument("--tx-rate", type=float, default=3.0, help="the steady load's payments/s")
    ap.add_argument("--json", default=None, help="write the results as JSON here (- for stdout)")
    ap.add_argument("--keep", default=None, help="use (and keep) this directory")
    args = ap.parse_args()
    t0 = time.monotonic()
    res = asyncio.run(amain(args))
    rows = res.pop("_rows")
    print(f"machine: {res['machine']}; {time.monotonic() - t0:.0f} s in all")
    print(table(rows))
    print()
    print(details(rows))
    for n in res["notes"]:
        print(f"note: {n}")
    if args.json == "-":
        print(json.dumps(res, default=str))
    elif args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
