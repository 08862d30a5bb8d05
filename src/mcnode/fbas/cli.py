"""`mcnode fbas ...`: quorum analysis from the command line.

The only place in this package that reads files. Exit codes (stable): `check` exits 0 when
all quorums intersect, 1 when it found two disjoint quorums; every command exits 2 on bad
input, with one line naming the problem on stderr.

FILE is the explorer JSON (a list of nodes), stellar-core's compact JSON (`{"nodes": ...}`),
or a directory of mcnode node configs (`*.toml`, read in name order).

Only what reading a network and `check` need is imported here; each other command imports
its own analysis (MaxSAT for splitting, the renderer for graph) when it runs, so that
`mcnode fbas check` starts fast.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

import click

from mcnode.fbas.intersection import check_intersection
from mcnode.fbas.model import Fbas, FbasError, NodeId
from mcnode.fbas.parse import from_json, from_node_configs

EXIT_BAD_INPUT = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"mcnode fbas: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _read_json(path: Path) -> object:
    try:
        with path.open("rb") as f:
            return json.load(f)
    except OSError as e:
        _fail(f"{path}: cannot read: {e.strerror or e}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        _fail(f"{path}: not valid JSON: {e}")


def load(path: Path, orgs: Path | None) -> Fbas:
    """Read FILE (and an organizations file) into an `Fbas`; exit 2 on bad input."""
    try:
        if path.is_dir():
            import tomllib

            if orgs is not None:
                _fail("--orgs applies to the explorer JSON form; node configs name their own")
            configs = []
            # node configs in DIR, or one per sub-directory (a `mcnode localnet` directory)
            for p in sorted([*path.glob("*.toml"), *path.glob("*/node.toml")]):
                try:
                    with p.open("rb") as f:
                        configs.append((p.name, tomllib.load(f)))
                except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                    _fail(f"{p}: not valid TOML: {e}")
            return from_node_configs(configs)
        data = _read_json(path)
        return from_json(data, None if orgs is None else _read_json(orgs))
    except FbasError as e:
        _fail(f"{path}: {e}")
    except OSError as e:
        _fail(f"{path}: cannot read: {e.strerror or e}")


def _describe(fbas: Fbas, nodes: Iterable[NodeId]) -> str:
    """Node labels, grouped by organization when the network has organizations."""
    nodes = list(nodes)
    if not fbas.has_orgs:
        return ", ".join(fbas.label(v) for v in nodes)
    parts = []
    for org, group in fbas.group_by_org(nodes):
        parts.append(f"[{org or 'no organization'}] " + ", ".join(fbas.label(v) for v in group))
    return "; ".join(parts)


def _skipped_summary(fbas: Fbas, verbose: bool) -> None:
    if not fbas.skipped:
        return
    counts = Counter(s.kind for s in fbas.skipped)
    summary = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    click.echo(f"skipped/read by rule: {len(fbas.skipped)} ({summary})")
    if verbose:
        for s in fbas.skipped:
            click.echo(f"  {fbas.label(s.node)}: {s.reason}")


def _emit_json(obj: object) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


_file = click.argument(
    "file", type=click.Path(path_type=Path, exists=False, dir_okay=True, file_okay=True)
)
_orgs = click.option(
    "--orgs",
    type=click.Path(path_type=Path),
    default=None,
    help="Organizations JSON (a list of {id, name, validators}), for the explorer form.",
)
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_verbose = click.option("-v", "--verbose", is_flag=True, help="List every skipped item.")


def _command(fn: Callable[..., None]) -> Callable[..., None]:
    return _file(_orgs(_json(_verbose(fn))))


@click.group()
def fbas() -> None:
    """Quorum analysis: intersection, blocking and splitting sets, top tier, trust graph."""


@fbas.command()
@_command
def check(file: Path, orgs: Path | None, as_json: bool, verbose: bool) -> None:
    """Do all quorums intersect? Exit 0 yes, 1 no (two disjoint quorums printed), 2 bad input."""
    net = load(file, orgs)
    result = check_intersection(net)
    if as_json:
        _emit_json(result.to_dict())
    else:
        if result.intersection:
            note = "" if result.has_quorum else " (vacuously: no quorum exists)"
            click.echo(f"quorum intersection: yes{note}")
        else:
            assert result.disjoint_quorums is not None
            q1, q2 = result.disjoint_quorums
            click.echo("quorum intersection: NO, two disjoint quorums:")
            click.echo(f"  Q1 ({len(q1)}): {_describe(net, q1)}")
            click.echo(f"  Q2 ({len(q2)}): {_describe(net, q2)}")
        _skipped_summary(net, verbose)
    sys.exit(0 if result.intersection else 1)


@fbas.command()
@_command
@click.option(
    "--all-up-to",
    type=click.IntRange(min=0),
    default=None,
    help="Also list every minimal blocking set of at most this many nodes.",
)
def blocking(
    file: Path, orgs: Path | None, as_json: bool, verbose: bool, all_up_to: int | None
) -> None:
    """Smallest sets of nodes whose failure leaves the others without a quorum."""
    from mcnode.fbas.blocking import minimal_blocking_sets

    net = load(file, orgs)
    result = minimal_blocking_sets(net, all_up_to)
    if as_json:
        _emit_json(result.to_dict())
        return
    click.echo(f"minimal blocking set size: {result.size}")
    click.echo(f"  example: {_describe(net, result.example) or '(none: no quorum exists)'}")
    if result.all is not None:
        click.echo(f"all minimal blocking sets of at most {all_up_to} nodes: {len(result.all)}")
        for s in result.all:
            click.echo(f"  {_describe(net, s)}")
    _skipped_summary(net, verbose)


@fbas.command()
@_command
def splitting(file: Path, orgs: Path | None, as_json: bool, verbose: bool) -> None:
    """Smallest sets of nodes that, if Byzantine, let two quorums of the rest disagree."""
    from mcnode.fbas.splitting import minimal_splitting_set

    net = load(file, orgs)
    result = minimal_splitting_set(net)
    if as_json:
        _emit_json(result.to_dict())
        return
    if result.size is None or result.quorums is None:
        click.echo("minimal splitting set: none (no honest node can be in a quorum)")
    else:
        click.echo(f"minimal splitting set size: {result.size}")
        if result.size == 0:
            click.echo("  (no quorum intersection: nothing needs to lie)")
        else:
            click.echo(f"  example: {_describe(net, result.example or ())}")
        bad = set(result.example or ())
        for name, q in zip(("Q1", "Q2"), result.quorums, strict=True):
            honest = [v for v in q if v not in bad]
            click.echo(f"  {name} honest members ({len(honest)}): {_describe(net, honest)}")
    _skipped_summary(net, verbose)


@fbas.command(name="top-tier")
@_command
def top_tier_cmd(file: Path, orgs: Path | None, as_json: bool, verbose: bool) -> None:
    """The union of all minimal quorums."""
    from mcnode.fbas.toptier import top_tier

    net = load(file, orgs)
    result = top_tier(net)
    if as_json:
        _emit_json(result.to_dict())
        return
    click.echo(f"top tier: {len(result.nodes)} nodes")
    if net.has_orgs:
        for org, group in net.group_by_org(result.nodes):
            names = ", ".join(net.label(v) for v in group)
            click.echo(f"  {org or 'no organization'} ({len(group)}): {names}")
    else:
        for v in result.nodes:
            click.echo(f"  {net.label(v)}")
    _skipped_summary(net, verbose)


@fbas.command()
@_file
@_orgs
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Output file: .svg or .png"
)
def graph(file: Path, orgs: Path | None, out: Path) -> None:
    """Draw the trust graph: organizations clustered, top tier highlighted, a disjoint-quorum
    certificate coloured when one exists."""
    from mcnode.fbas.graph import render_png, render_svg

    suffix = out.suffix.lower()
    if suffix not in (".svg", ".png"):
        _fail(f"{out}: --out must end in .svg or .png")
    net = load(file, orgs)
    data = render_svg(net).encode() if suffix == ".svg" else render_png(net)
    try:
        out.write_bytes(data)
    except OSError as e:
        _fail(f"{out}: cannot write: {e.strerror or e}")
    click.echo(f"wrote {out}")
