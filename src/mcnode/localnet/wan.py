"""`mcnode localnet --netns`, end to end: the plan from the options, the namespaces and the
switch, the directory moved onto the namespaces' addresses, the run, and back.

Rules of this file: the localnet directory is left as it was found (loopback addresses,
the `[scp]` timeouts it had), whatever happens; the validators run unchanged (only their
node.toml addresses and, with `--scp-timeouts auto`, their `[scp]` values differ).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from mcnode.localnet.init import rehost, scp_timeouts_of, set_scp_timeouts
from mcnode.localnet.netns import (
    NetnsError,
    NetnsRun,
    NetworkFaults,
    NetworkPlan,
    matrix_plan,
    parse_loss,
    parse_partition,
    scp_timeouts,
    uniform_plan,
)
from mcnode.localnet.procs import Cluster
from mcnode.localnet.run import RunOptions, run

DEFAULT_PARTITION_AT = 5.0


@dataclass(frozen=True)
class WanArgs:
    rtt_ms: float = 0.0
    jitter_ms: float | None = None
    loss: str | None = None
    latency_matrix: Path | None = None
    client_rtt_ms: float = 0.0
    partitions: tuple[str, ...] = ()
    partition_at: tuple[float, ...] = ()
    heal_at: tuple[float, ...] = ()
    scp_timeouts: str = "auto"  # or "keep"
    scp_trace: bool = False


def make_plan(names: list[str], a: WanArgs) -> NetworkPlan:
    loss = None if a.loss is None else parse_loss(a.loss)
    if a.latency_matrix is not None:
        plan = matrix_plan(
            names, a.latency_matrix, a.jitter_ms, loss, client_rtt_ms=a.client_rtt_ms
        )
    else:
        plan = uniform_plan(
            names, a.rtt_ms, a.jitter_ms or 0.0, loss or 0.0, client_rtt_ms=a.client_rtt_ms
        )
    if len(a.partition_at) > len(a.partitions) or len(a.heal_at) > len(a.partitions):
        raise NetnsError("one --partition-at / --heal-at per --partition, at most")
    parts = tuple(
        parse_partition(
            spec,
            a.partition_at[i] if i < len(a.partition_at) else DEFAULT_PARTITION_AT,
            a.heal_at[i] if i < len(a.heal_at) else None,
            names,
        )
        for i, spec in enumerate(a.partitions)
    )
    return replace(plan, partitions=parts)


def run_netns(opts: RunOptions, a: WanArgs, console: Console) -> dict[str, Any]:
    import click

    d = opts.directory
    names = [n["id"] for n in json.loads((d / "network.json").read_text())["nodes"]]
    try:
        plan = make_plan(names, a)
    except NetnsError as e:
        raise click.UsageError(str(e)) from None
    before = scp_timeouts_of(d, names[0])
    with NetnsRun(plan, d, seed=opts.seed) as net:
        try:
            rehost(d, net.addresses())
            scp = before
            if a.scp_timeouts == "auto":
                scp = {**before, **scp_timeouts(plan.max_rtt_ms())}
                set_scp_timeouts(d, scp)
            console.print(
                f"netns run {net.run_id}: {len(names)} validators on 10.77.0.0/24, "
                f"{json.dumps(plan.summary())}; scp timeouts {json.dumps(scp)}",
                markup=False,
            )
            cluster = Cluster(d, scp_trace=a.scp_trace)
            for n in cluster.nodes:
                n.prefix = net.exec_prefix(n.name)
            summary = run(cluster, replace(opts, network=NetworkFaults(net)), console)
            if summary:
                summary["network"]["scp"] = scp
        finally:
            rehost(d, {})
            set_scp_timeouts(d, before)
    if opts.json_summary is not None and summary:
        opts.json_summary.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
