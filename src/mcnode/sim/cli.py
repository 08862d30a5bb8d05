"""`mcnode sim`: run a seeded SCP network simulation and report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mcnode.sim.byzantine import KINDS
from mcnode.sim.network import Crash, LinkModel, Partition, SimConfig, SimResult, Simulator
from mcnode.sim.topology import TopologyError, parse_spec


def _parse_partition(text: str) -> Partition:
    try:
        start, end, nodes = text.split(":", 2)
        group = frozenset(n for n in nodes.split(",") if n)
        if not group:
            raise ValueError
        return Partition(float(start), float(end), group)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected START:END:NODE,NODE,...") from None


def _parse_crash(text: str) -> Crash:
    try:
        node, start, end = text.split(":")
        return Crash(node, float(start), float(end) if end else None)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected NODE:START:END (END empty: never)") from None


@click.command("sim")
@click.option(
    "--topology",
    "spec",
    default="mesh:9:5",
    show_default=True,
    help="mesh:N:K, cyclic:N, metamesh:O:OK:M:MK, tiered:O:M:W or file:PATH.json",
)
@click.option("--values", default=1000, show_default=True, help="Values to submit.")
@click.option("--seed", default=1, show_default=True)
@click.option("--per-slot", default=100, show_default=True, help="Max values per slot.")
@click.option("--submit-to", type=click.Choice(["all", "one"]), default="all", show_default=True)
@click.option("--rate", type=float, default=None, help="Values per simulated second.")
@click.option("--latency", default="0.005:0.05", show_default=True, help="MIN:MAX seconds.")
@click.option(
    "--link-spread",
    default=2.0,
    show_default=True,
    help="Per-link latency factor drawn from [1/S, S] (1: all links alike).",
)
@click.option("--loss", default=0.0, show_default=True, help="Message loss probability.")
@click.option("--duplicate", default=0.0, show_default=True, help="Duplication probability.")
@click.option(
    "--faults-until",
    type=float,
    default=None,
    help="Loss and duplication stop at this simulated time.",
)
@click.option(
    "--partition",
    "partitions",
    multiple=True,
    help="START:END:NODE,... cut those nodes off from the rest for a while.",
)
@click.option("--crash", "crashes", multiple=True, help="NODE:START:END crash and restart.")
@click.option("--byzantine", default=0, show_default=True, help="Number of Byzantine nodes.")
@click.option(
    "--byzantine-kind", type=click.Choice([*KINDS, "mixed"]), default="mixed", show_default=True
)
@click.option("--max-time", default=600.0, show_default=True, help="Simulated seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object as the last line.")
def sim(
    spec: str,
    values: int,
    seed: int,
    per_slot: int,
    submit_to: str,
    rate: float | None,
    latency: str,
    link_spread: float,
    loss: float,
    duplicate: float,
    faults_until: float | None,
    partitions: tuple[str, ...],
    crashes: tuple[str, ...],
    byzantine: int,
    byzantine_kind: str,
    max_time: float,
    as_json: bool,
) -> None:
    """Simulate an SCP network: same seed, same run."""
    try:
        topo = parse_spec(spec, read_file=lambda p: Path(p).read_text())
    except (TopologyError, OSError) as e:
        raise click.ClickException(str(e)) from None
    try:
        lo, hi = (float(x) for x in latency.split(":"))
    except ValueError:
        raise click.BadParameter("expected MIN:MAX", param_hint="--latency") from None
    ids = list(topo)
    if not 0 <= byzantine < len(ids):
        raise click.BadParameter(f"must be in 0..{len(ids) - 1}", param_hint="--byzantine")
    kinds = [k for k in KINDS if k != "silent"] if byzantine_kind == "mixed" else [byzantine_kind]
    byz = tuple((ids[-1 - i], kinds[i % len(kinds)]) for i in range(byzantine))
    cfg = SimConfig(
        seed=seed,
        values=values,
        max_values_per_slot=per_slot,
        submit_to=submit_to,
        value_rate=rate,
        link=LinkModel(lo, hi, loss, duplicate, faults_until, link_spread),
        partitions=tuple(_parse_partition(p) for p in partitions),
        crashes=tuple(_parse_crash(c) for c in crashes),
        byzantine=byz,
        max_time=max_time,
    )
    try:
        simulator = Simulator(topo, cfg)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    result = _run(simulator, values, quiet=as_json)
    if as_json:
        click.echo(result.to_json())
    else:
        _summary(spec, cfg, result)
    sys.exit(0 if result.agreement else 1)


def _run(simulator: Simulator, values: int, quiet: bool) -> SimResult:
    if quiet or not sys.stderr.isatty():
        return simulator.run()
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(
        TextColumn("[bold]sim"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} values"),
        TextColumn("t={task.fields[t]:.1f}s"),
        transient=True,
    ) as bar:
        task = bar.add_task("sim", total=values, t=0.0)

        def progress(s: Simulator) -> None:
            done = min(len(s.actors[i].done) for i in s.honest) if s.honest else 0
            bar.update(task, completed=done, t=s.now)

        return simulator.run(progress)


def _summary(spec: str, cfg: SimConfig, r: SimResult) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"mcnode sim {spec} seed={cfg.seed}", show_header=False)
    rows = [
        ("agreement", "[green]yes[/]" if r.agreement else "[red]NO — honest nodes disagree[/]"),
        ("all values externalized", "yes" if r.live else "no"),
        ("slots", str(r.slots)),
        ("values submitted / externalized", f"{r.values_submitted} / {r.values_externalized}"),
        (
            "messages sent / delivered / dropped",
            f"{r.messages_sent} / {r.messages_delivered} / {r.messages_dropped}",
        ),
        ("simulated time", f"{r.sim_time_s:.3f} s"),
        (
            "time per slot p50 / p99",
            f"{r.slot_time_p50_s * 1000:.1f} / {r.slot_time_p99_s * 1000:.1f} ms",
        ),
        ("CPU", f"{r.cpu_s:.2f} s"),
        ("fingerprint", r.fingerprint[:16]),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
    for d in r.disagreements[:5]:
        Console().print(f"[red]slot {d['slot']}: {d['outcomes']}[/]")
