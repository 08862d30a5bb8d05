"""`mcnode localnet`: validators as processes, real load, a live view, and a summary."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mcnode.localnet.load import LoadGenerator
from mcnode.localnet.pace import processes
from mcnode.localnet.procs import Cluster, CpuMark


class NetworkHook(Protocol):
    """What `localnet --netns` adds to a run (`netns.NetworkFaults`): called every loop
    turn with the seconds since the load started, and asked for the summary's `network`."""

    def tick(self, elapsed: float, cluster: Cluster, load: LoadGenerator) -> None: ...

    def end(self, elapsed: float) -> None: ...  # the load stopped: heal what is still cut

    def summary(self, cluster: Cluster, load: LoadGenerator, started: float) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RunOptions:
    directory: Path
    tx_rate: float = 5.0
    duration: float | None = None
    json_summary: Path | None = None
    kill_random: float | None = None
    live: bool = True
    seed: int | None = None
    network: NetworkHook | None = None
    builders: int | None = None  # builder processes (None: one per core)
    prebuild: int | None = None  # payments built before the clock starts (None: auto)


class _Stop(Exception):
    pass


def _raise_stop(*_: object) -> None:
    raise _Stop


def _view(cluster: Cluster, load: LoadGenerator, started: float) -> Group:
    nodes = Table(title="validators", expand=False)
    for col in ("node", "height", "slot", "phase", "peers up", "pending", "sync", "process"):
        nodes.add_column(col)
    for n in cluster.nodes:
        s = n.status(0.3)
        if s is None:
            nodes.add_row(
                n.name,
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                "[red]down[/]" if not n.running() else "starting",
            )
            continue
        up = sum(1 for p in s["peers"] if p["connected"])
        nodes.add_row(
            n.name,
            str(s["block_height"]),
            str(s["slot_index"]),
            str(s["phase"]),
            f"{up}/{len(s['peers'])}",
            str(s["pending_txs"]),
            s["sync_state"],
            f"up (starts: {n.starts})",
        )
    blocks = Table(title="latest blocks", expand=False)
    for col in ("block", "key images", "outputs", "since previous"):
        blocks.add_column(col)
    recent = load.stats.blocks[-8:]
    prev_t = load.stats.blocks[-9][3] if len(load.stats.blocks) > 8 else None
    for idx, ki, outs, t in recent:
        since = "-" if prev_t is None else f"{(t - prev_t) * 1000:.0f} ms"
        blocks.add_row(str(idx), str(ki), str(outs), since)
        prev_t = t
    el = max(time.monotonic() - started, 1e-9)
    st = load.stats
    summary = Table.grid(padding=(0, 2))
    summary.add_row("elapsed", f"{el:.1f} s")
    verdict, sent_rate, _ = load.live_verdict()
    rate = load.pace.rate if load.pace is not None else 0.0
    summary.add_row("requested / sent (last 5 s)", f"{rate:g} / {sent_rate:.1f} tx/s")
    summary.add_row("limited by", _limit_text(verdict.limited_by, verdict.reason))
    summary.add_row(
        "build queue",
        f"{len(load.ready)} ready, {load.building} building, "
        f"{load.purse.free} free outputs ({processes(load.pool.workers)})",
    )
    summary.add_row(
        "submitted / committed",
        f"{st.submitted} / {st.committed}"
        f"  ({st.submitted / el:.1f} / {st.committed / el:.1f} tx/s)",
    )
    summary.add_row(
        "commit latency p50 / p99", f"{st.percentile(0.5) or '-'} / {st.percentile(0.99) or '-'} ms"
    )
    summary.add_row("rejected", ", ".join(f"{k}={v}" for k, v in st.rejected.items()) or "0")
    summary.add_row("in flight", str(len(load.inflight)))
    return Group(nodes, blocks, summary)


def summarize(
    cluster: Cluster, load: LoadGenerator, elapsed: float, kills: int, supply: int | None
) -> dict[str, Any]:
    st = load.stats
    nodes = []
    for n in cluster.nodes:
        s = n.status(2.0) or {}
        enclave = s.get("enclave") or {}
        nodes.append(
            {
                "node_id": n.name,
                "block_height": s.get("block_height"),
                "last_block_id": s.get("last_block_id"),
                "attestation": enclave.get("mode"),
                "mrenclave": enclave.get("mrenclave"),
                "peers_attested": sum(1 for p in s.get("peers", []) if p.get("attested")),
                "peers": len(s.get("peers", [])),
                "commit_latency_ms": {  # of the txs submitted to this node
                    "p50": st.percentile(0.5, n.name),
                    "p99": st.percentile(0.99, n.name),
                    "count": len(st.by_node_ms.get(n.name, [])),
                },
            }
        )
    balance = load.total_balance()
    return {
        "load": load.report(),
        "duration_s": round(elapsed, 3),
        "submitted_txs": st.submitted,
        "committed_txs": st.committed,
        "rejected_txs": dict(st.rejected),
        "failed_submissions": dict(st.failed),
        "expired_txs": st.expired,
        "in_flight_at_end": len(load.inflight),
        "tx_per_s": round(st.committed / elapsed, 3) if elapsed > 0 else 0.0,
        "latency_ms": {"p50": st.percentile(0.5), "p99": st.percentile(0.99)},
        "blocks": load.ledger.num_blocks(),
        "kills": kills,
        "fees_paid": st.fees,
        "total_balance": balance,
        "opening_balance": load.opening_balance,
        # The accounts' balance at the start, less this run's fees, is what they hold now
        # (a payment moves money between them; only the fee leaves).
        "supply_conserved": load.supply_conserved(supply),
        "nodes": nodes,
    }


def validator_cpu(before: CpuMark, after: CpuMark, blocks: int) -> dict[str, Any]:
    """The validators' CPU (hosts and enclaves) from the start of the load to the end of
    the drain, in all and per block. On a small machine this is what latency at a low
    rate follows: there each block holds a payment or two, and p50 comes close to the CPU
    every process spends per block over the cores (bench/RESULTS.md). The figures are
    None when a validator restarted meanwhile (the killed process took its CPU count with
    it) or when no block was made."""
    cores = os.cpu_count() or 1
    out: dict[str, Any] = {"cores": cores, "validators": len(after.pids), "blocks": blocks}
    if before.pids != after.pids or None in after.pids or blocks <= 0:
        why = "a validator restarted during the run" if blocks > 0 else "no block was made"
        keys = ("validators_s", "hosts_s", "validators_ms_per_block", "hosts_ms_per_block")
        return out | dict.fromkeys(keys) | {"why_none": why}
    spent, hosts = after.validators - before.validators, after.hosts - before.hosts
    return out | {
        "validators_s": round(spent, 2),
        "hosts_s": round(hosts, 2),
        "validators_ms_per_block": round(1000 * spent / blocks, 1),
        "hosts_ms_per_block": round(1000 * hosts / blocks, 1),
    }


def run(cluster: Cluster, opts: RunOptions, console: Console | None = None) -> dict[str, Any]:
    """Start the cluster, run the load (and chaos) until the duration ends or Ctrl-C, stop
    everything, return the summary. Never leaves a validator process behind."""
    console = console or Console(stderr=True)
    rng = random.Random(opts.seed)
    old_int = signal.signal(signal.SIGINT, _raise_stop)
    old_term = signal.signal(signal.SIGTERM, _raise_stop)
    old_hup = signal.signal(signal.SIGHUP, _raise_stop)  # the terminal went away
    load: LoadGenerator | None = None
    kills = 0
    summary: dict[str, Any] = {}
    try:
        # Validators first: they are forked (to set their parent-death signal before
        # exec), and a fork while this process has gRPC channels can abort the child in
        # gRPC's fork handlers before it runs anything.
        cluster.start()
        load = LoadGenerator(
            opts.directory, cluster.network, seed=opts.seed, builders=opts.builders
        )
        load.wait_synced(1, timeout=30)
        stopping = False
        try:
            _prepare(load, opts, console)
        except _Stop:
            stopping = True
        cpu_before, blocks_before = cluster.cpu_mark(), load.ledger.num_blocks()
        started = time.monotonic()
        load.start(opts.tx_rate, opts.duration, started)
        end = None if opts.duration is None else started + opts.duration
        next_kill = None if not opts.kill_random else started + opts.kill_random
        restart_at: dict[str, float] = {}
        next_view = 0.0
        live = Live(console=console, refresh_per_second=4, transient=False) if opts.live else None
        if live and not stopping:
            live.start()
        try:
            while not stopping and (end is None or time.monotonic() < end):
                load.step()
                now = time.monotonic()
                if next_kill is not None and now >= next_kill:
                    up = [n for n in cluster.nodes if n.running()]
                    if len(up) == len(cluster.nodes):  # one victim at a time
                        victim = rng.choice(up)
                        victim.kill()
                        kills += 1
                        restart_at[victim.name] = now + max(1.0, opts.kill_random / 2)
                    next_kill = now + opts.kill_random
                for name, at in list(restart_at.items()):
                    if now >= at:
                        cluster.node(name).start()
                        del restart_at[name]
                if opts.network is not None:
                    opts.network.tick(now - started, cluster, load)
                if live and now >= next_view:
                    live.update(_view(cluster, load, started))
                    next_view = now + 0.25
                load.sleep()
        except _Stop:
            pass
        finally:
            load.stop()
            if live and live.is_started:
                live.stop()
        if opts.network is not None:
            opts.network.end(time.monotonic() - started)
        for name in list(restart_at):
            cluster.node(name).start()
        for n in cluster.nodes:
            if n.running():
                continue
            n.start()
        for n in cluster.nodes:
            n.wait_ready(30)
        load.drain(timeout=20)
        elapsed = time.monotonic() - started
        # Let every validator reach the same height before we read their tips.
        target = max((s or {}).get("block_height", 0) for s in cluster.statuses().values())
        cluster.wait_height(target, timeout=30)
        cpu_after = cluster.cpu_mark()
        supply = _supply(opts.directory)
        summary = summarize(cluster, load, elapsed, kills, supply)
        summary["cpu"] = validator_cpu(
            cpu_before, cpu_after, load.ledger.num_blocks() - blocks_before
        )
        if opts.network is not None:
            summary["network"] = opts.network.summary(cluster, load, started)
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGHUP, old_hup)
        if load is not None:
            load.close()
        cluster.close()
    if opts.json_summary is not None:
        opts.json_summary.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _prepare(load: LoadGenerator, opts: RunOptions, console: Console) -> None:
    """Build ahead before the clock starts, with a progress bar (or two lines)."""
    if not opts.live:
        console.print("load: finding the accounts' outputs and building payments ahead ...")
        p = load.prepare(opts.tx_rate, opts.duration, opts.prebuild)
        console.print(
            f"load: {p.built} payments built ahead in {p.seconds:.1f} s "
            f"({processes(load.pool.workers)}, {p.free_coins} spendable outputs)"
        )
        return
    with Progress(
        TextColumn("building payments ahead"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("build", total=None)
        load.prepare(
            opts.tx_rate,
            opts.duration,
            opts.prebuild,
            progress=lambda done, wanted: bar.update(task, completed=done, total=wanted),
        )


def _limit_text(limited_by: str | None, reason: str | None) -> str:
    if limited_by == "generator":
        return f"[red]the load generator[/]: {reason}"
    if limited_by == "network":
        return f"[yellow]the network[/]: {reason}"
    return "nothing: the requested rate is kept"


def _supply(directory: Path) -> int | None:
    try:
        return int(json.loads((directory / "network.json").read_text())["total_supply"])
    except (OSError, KeyError, ValueError):
        return None


def _cpu_text(cpu: dict[str, Any] | None) -> str:
    if not cpu:
        return "-"
    if cpu["validators_ms_per_block"] is None:
        return f"- ({cpu['why_none']})"
    return (
        f"{cpu['validators_ms_per_block']:.1f} ms, {cpu['hosts_ms_per_block']:.1f} of it in "
        f"the hosts ({cpu['validators']} validators, {cpu['blocks']} blocks, "
        f"{cpu['cores']} cores)"
    )


def print_summary(summary: dict[str, Any], console: Console) -> None:
    t = Table(title="mcnode localnet summary", show_header=False)
    lat = summary["latency_ms"]
    load = summary["load"]
    rows = [
        ("duration", f"{summary['duration_s']:.1f} s"),
        (
            "requested / submitted / committed tx/s",
            f"{load['requested_tx_s']:g} / {load['submitted_tx_s']:.2f} / "
            f"{load['committed_tx_s']:.2f} (over the {load['window_s']:.1f} s of load)",
        ),
        ("limited by", _limit_text(load["limited_by"], load["reason"])),
        (
            "built ahead / during the run",
            f"{load['prebuild']['built']} in {load['prebuild']['seconds']:.1f} s / "
            f"{load['built_during_run']} ({processes(load['builders'])})",
        ),
        ("submitted / committed", f"{summary['submitted_txs']} / {summary['committed_txs']}"),
        ("committed tx/s", f"{summary['tx_per_s']:.2f}"),
        ("commit latency p50 / p99", f"{lat['p50']} / {lat['p99']} ms"),
        ("rejected", json.dumps(summary["rejected_txs"]) if summary["rejected_txs"] else "0"),
        (
            "failed submissions",
            json.dumps(summary["failed_submissions"]) if summary["failed_submissions"] else "0",
        ),
        ("blocks", str(summary["blocks"])),
        ("validators' CPU per block", _cpu_text(summary.get("cpu"))),
        ("validators killed (chaos)", str(summary["kills"])),
        ("supply conserved", str(summary["supply_conserved"])),
    ]
    for k, v in rows:
        t.add_row(k, v)
    ids = {n["last_block_id"] for n in summary["nodes"]}
    t.add_row("validators agree", "yes" if len(ids) == 1 else f"[red]NO: {len(ids)} tips[/]")
    modes = {n.get("attestation") for n in summary["nodes"]}
    attested = sum(n.get("peers_attested") or 0 for n in summary["nodes"])
    pairs = sum(n.get("peers") or 0 for n in summary["nodes"])
    mode = ", ".join(sorted(str(m) for m in modes))
    notice = " (SIMULATED: no hardware protection)" if modes == {"sim"} else ""
    t.add_row("attestation", f"{mode}{notice}; peer enclaves attested {attested} / {pairs}")
    console.print(t)
