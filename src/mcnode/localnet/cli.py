"""`mcnode localnet [init|up]` and `mcnode load`.

The network's machinery (ledger, keys, processes, the live view) is imported by the command
that runs, so that `--help` and option errors come back at once."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import click


def _topology_args(topology: str) -> dict[str, object]:
    if topology in ("mesh", "ring", "tiered"):
        return {"topology_kind": topology}
    p = Path(topology)
    if not p.exists():
        raise click.BadParameter(
            f"{topology!r}: mesh, ring, tiered or a JSON file", param_hint="--topology"
        )
    return {"topology_file": p}


#: `localnet init` (no load in sight): enough outputs for a minute of 60 tx/s.
INIT_OUTPUTS_PER_ACCOUNT = 200


def _outputs_for_load(given: object, tx_rate: float, duration: float | None) -> int:
    from mcnode.localnet.init import outputs_for_load

    return int(given) if given else outputs_for_load(tx_rate, duration)  # type: ignore[call-overload]


def _init(
    d: Path,
    nodes: int,
    topology: str,
    min_block_interval: float,
    force: bool,
    attestation: bool = True,
    outputs_per_account: int = INIT_OUTPUTS_PER_ACCOUNT,
) -> None:
    from mcnode.localnet.init import LocalnetError, init_network

    try:
        init_network(
            d,
            nodes=nodes,
            min_block_interval=min_block_interval,
            force=force,
            attestation=attestation,
            outputs_per_account=outputs_per_account,
            **_topology_args(topology),
        )  # type: ignore[arg-type]
    except LocalnetError as e:
        raise click.ClickException(str(e)) from None


_load_opts = [
    click.option(
        "--builders",
        default="auto",
        show_default=True,
        metavar="N|auto",
        help="Processes that build (prove and sign) payments; auto: one per core.",
    ),
    click.option(
        "--prebuild",
        default="auto",
        show_default=True,
        metavar="N|auto",
        help="Payments built before the clock starts; auto: the run's, up to 60 s of "
        "them (30 s without --duration), as far as spendable outputs allow.",
    ),
]


def _count_or_auto(value: str, name: str) -> int | None:
    if value == "auto":
        return None
    try:
        n = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: a count or auto", param_hint=name) from None
    if n < 0 or (name == "--builders" and n < 1):
        raise click.BadParameter(f"{value!r}: too small", param_hint=name)
    return n


_common = [
    click.option("--nodes", default=4, show_default=True, help="Number of validators."),
    click.option(
        "--topology",
        default="mesh",
        show_default=True,
        help="mesh, ring, tiered, or a JSON file of quorum sets.",
    ),
    click.option(
        "--min-block-interval",
        default=0.0,
        show_default=True,
        help="Seconds between blocks, at least.",
    ),
    click.option(
        "--outputs-per-account",
        type=click.IntRange(min=1),
        default=None,
        help="Origin outputs paid to each of the 20 sample accounts (a new network only; "
        f"default: for `localnet`, a minute of --tx-rate; for `init`, {INIT_OUTPUTS_PER_ACCOUNT}).",
    ),
    click.option(
        "--attestation/--no-attestation",
        default=True,
        show_default=True,
        help="Simulated SGX attestation: peers and clients trust only this install's "
        "enclave, under the network's simulated root (a new network only).",
    ),
]


def _apply(opts: list, f):  # type: ignore[no-untyped-def]
    for o in reversed(opts):
        f = o(f)
    return f


@click.group("localnet", invoke_without_command=True)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    help="Keep the network here (created if new, reused if it exists).",
)
@click.option("--tx-rate", default=5.0, show_default=True, help="Payments per second.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds.")
@click.option("--json-summary", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--kill-random",
    type=float,
    default=None,
    metavar="EVERY_S",
    help="Chaos: SIGKILL a random validator this often and restart it later.",
)
@click.option("--seed", type=int, default=None, help="Seed the load's choices.")
@click.option(
    "--netns",
    is_flag=True,
    help="Each validator in its own network namespace, the load generator in another, "
    "joined by a userspace WAN switch (root; see --rtt-ms and the README).",
)
@click.option(
    "--rtt-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="--netns: round trip between any two validators.",
)
@click.option(
    "--jitter-ms",
    type=float,
    default=None,
    help="--netns: each packet's one-way "
    "delay varies uniformly by +/- this (reorders packets, as netem does).",
)
@click.option("--loss", default=None, help="--netns: packet loss per direction (0.01 or 1%).")
@click.option(
    "--latency-matrix",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="--netns: JSON round trips per pair of nodes or regions (examples/wan/).",
)
@click.option(
    "--client-rtt-ms",
    type=float,
    default=0.0,
    show_default=True,
    help="--netns: round trip between the load generator and each validator.",
)
@click.option(
    "--partition",
    "partitions",
    multiple=True,
    help='--netns: "node0,node1|node2,node3" cuts both ways, "a>b,c" one way (repeatable).',
)
@click.option(
    "--partition-at",
    "partition_at",
    type=float,
    multiple=True,
    help="Seconds after the load starts (one per --partition; default 5).",
)
@click.option(
    "--heal-at",
    "heal_at",
    type=float,
    multiple=True,
    help="Seconds after the load starts (one per --partition; default: never).",
)
@click.option(
    "--scp-timeouts",
    type=click.Choice(["auto", "keep"]),
    default="auto",
    show_default=True,
    help="--netns: scale node.toml's [scp] timeouts to the slowest round trip (auto) or keep them.",
)
@click.option("--no-live", is_flag=True, help="No live view (for logs and CI).")
@click.option(
    "--scp-trace",
    is_flag=True,
    help="Each validator appends its SCP trace to D/<node>/scp-trace.jsonl.",
)
@click.pass_context
def localnet(
    ctx: click.Context,
    directory: str | None,
    tx_rate: float,
    duration: float | None,
    json_summary: str | None,
    kill_random: float | None,
    seed: int | None,
    no_live: bool,
    scp_trace: bool,
    netns: bool,
    rtt_ms: float,
    jitter_ms: float | None,
    loss: str | None,
    latency_matrix: str | None,
    client_rtt_ms: float,
    partitions: tuple[str, ...],
    partition_at: tuple[float, ...],
    heal_at: tuple[float, ...],
    scp_timeouts: str,
    **kw: object,
) -> None:
    """A whole network on this machine: validators, real payments, a live view.

    With no sub-command: create (or reuse) the network, start it, build payments ahead,
    run the load until --duration or Ctrl-C, stop everything and print a summary (which
    says whether the requested rate was kept and, if not, what limited it)."""
    if ctx.invoked_subcommand is not None:
        return
    builders = _count_or_auto(str(kw["builders"]), "--builders")
    prebuild = _count_or_auto(str(kw["prebuild"]), "--prebuild")
    wan = {
        "--rtt-ms": rtt_ms,
        "--jitter-ms": jitter_ms,
        "--loss": loss,
        "--latency-matrix": latency_matrix,
        "--client-rtt-ms": client_rtt_ms,
        "--partition": partitions,
    }
    if not netns and any(wan.values()):
        used = ", ".join(k for k, v in wan.items() if v)
        raise click.UsageError(f"{used}: only with --netns")
    if netns:
        from mcnode.localnet.netns import why_not_available

        reason = why_not_available()
        if reason:
            click.echo(reason, err=True)
            sys.exit(2)
    from rich.console import Console

    from mcnode.localnet.load import LoadError
    from mcnode.localnet.procs import Cluster
    from mcnode.localnet.run import RunOptions, print_summary, run

    tmp = None
    if directory is None:
        tmp = tempfile.TemporaryDirectory(prefix="mcnode-localnet-")
        d = Path(tmp.name)
    else:
        d = Path(directory)
    try:
        if not (d / "network.json").exists():
            _init(
                d,
                int(kw["nodes"]),
                str(kw["topology"]),  # type: ignore[call-overload]
                float(kw["min_block_interval"]),
                force=False,
                attestation=bool(kw["attestation"]),
                outputs_per_account=_outputs_for_load(kw["outputs_per_account"], tx_rate, duration),
            )  # type: ignore[arg-type]
        console = Console(stderr=True)
        console.print(f"[bold]mcnode localnet[/] in {d}")
        opts = RunOptions(
            directory=d,
            tx_rate=tx_rate,
            duration=duration,
            json_summary=Path(json_summary) if json_summary else None,
            kill_random=kill_random,
            live=not no_live,
            seed=seed,
            builders=builders,
            prebuild=prebuild,
        )
        if netns:
            from mcnode.localnet.wan import WanArgs, run_netns

            summary = run_netns(
                opts,
                WanArgs(
                    rtt_ms=rtt_ms,
                    jitter_ms=jitter_ms,
                    loss=loss,
                    latency_matrix=Path(latency_matrix) if latency_matrix else None,
                    client_rtt_ms=client_rtt_ms,
                    partitions=partitions,
                    partition_at=partition_at,
                    heal_at=heal_at,
                    scp_timeouts=scp_timeouts,
                    scp_trace=scp_trace,
                ),
                console,
            )
        else:
            from mcnode.localnet.init import rehost

            rehost(d, {})  # back on loopback, if a --netns run left it elsewhere
            try:
                summary = run(Cluster(d, scp_trace=scp_trace), opts, console)
            except LoadError as e:
                raise click.ClickException(str(e)) from None
        print_summary(summary, Console())
        ids = {n["last_block_id"] for n in summary["nodes"]}
        ok = len(ids) == 1 and summary["supply_conserved"] is not False
        sys.exit(0 if ok else 1)
    finally:
        if tmp is not None:
            tmp.cleanup()


localnet.params.extend(p for o in _common + _load_opts for p in o(lambda: None).__click_params__)


@localnet.command("init")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Replace a network already there.")
def init_cmd(directory: str, force: bool, **kw: object) -> None:
    """Write D/<node>/node.toml, keys and ledgers for each validator, and the accounts."""
    _init(
        Path(directory),
        int(kw["nodes"]),
        str(kw["topology"]),  # type: ignore[call-overload]
        float(kw["min_block_interval"]),
        force,
        bool(kw["attestation"]),
        int(kw["outputs_per_account"] or INIT_OUTPUTS_PER_ACCOUNT),  # type: ignore[call-overload]
    )  # type: ignore[arg-type]
    click.echo(f"network written to {directory}")


init_cmd.params.extend(p for o in _common for p in o(lambda: None).__click_params__)


@localnet.command("cleanup")
def cleanup_cmd() -> None:
    """Remove network namespaces (and their links) left by `localnet --netns` runs that
    are gone, e.g. after SIGKILL of the launcher and its switch."""
    from mcnode.localnet.netns import cleanup, why_not_available

    reason = why_not_available()
    if reason:
        click.echo(reason.replace("--netns", "cleanup"), err=True)
        sys.exit(2)
    gone = cleanup()
    click.echo(f"removed {len(gone)} namespace(s)" + (": " + ", ".join(gone) if gone else ""))


@localnet.command("up")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, exists=True))
@click.option(
    "--scp-trace",
    is_flag=True,
    help="Each validator appends its SCP trace to D/<node>/scp-trace.jsonl.",
)
def up_cmd(directory: str, scp_trace: bool) -> None:
    """Start every validator of D and keep them running until Ctrl-C."""
    from mcnode.localnet.procs import Cluster

    cluster = Cluster(Path(directory), scp_trace=scp_trace)
    try:
        cluster.start()
        for n in cluster.nodes:
            click.echo(f"{n.name}: client {n.client}, admin http://{n.admin}/")
        while True:
            time.sleep(1)
            for n in cluster.nodes:
                if not n.running():
                    click.echo(f"{n.name} exited: {n.tail_log(3)}", err=True)
                    n.start()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.close()


@click.command("load")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--tx-rate", default=5.0, show_default=True)
@click.option("--duration", default=30.0, show_default=True)
@click.option("--json-summary", type=click.Path(dir_okay=False), default=None)
@click.option("--seed", type=int, default=None)
def load_cmd(
    directory: str,
    tx_rate: float,
    duration: float,
    json_summary: str | None,
    seed: int | None,
    builders: str,
    prebuild: str,
) -> None:
    """Send payments to running validators (started with `mcnode localnet up`)."""
    from mcnode.localnet.load import LoadError, LoadGenerator

    n_builders = _count_or_auto(builders, "--builders")
    n_prebuild = _count_or_auto(prebuild, "--prebuild")
    d = Path(directory)
    net = json.loads((d / "network.json").read_text())
    try:
        load = LoadGenerator(d, net, seed=seed, builders=n_builders)
    except LoadError as e:
        raise click.ClickException(str(e)) from None
    try:
        load.wait_synced(1, timeout=30)
        load.prepare(tx_rate, duration, n_prebuild)
        start = time.monotonic()
        load.start(tx_rate, duration, start)
        try:
            while time.monotonic() - start < duration:
                load.step()
                load.sleep()
        finally:
            load.stop()
        load.drain(20)
        el = time.monotonic() - start
        st = load.stats
        out = {
            "load": load.report(),
            "submitted_txs": st.submitted,
            "committed_txs": st.committed,
            "rejected_txs": dict(st.rejected),
            "failed_submissions": dict(st.failed),
            "tx_per_s": round(st.committed / el, 3),
            "latency_ms": {"p50": st.percentile(0.5), "p99": st.percentile(0.99)},
        }
        text = json.dumps(out, indent=2)
        click.echo(text)
        if json_summary:
            Path(json_summary).write_text(text + "\n")
    finally:
        load.close()


load_cmd.params.extend(p for o in _load_opts for p in o(lambda: None).__click_params__)
