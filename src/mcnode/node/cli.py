"""`mcnode run` and `mcnode keygen`."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from mcnode.node.config import ConfigError, check_network_intersection, load_config, peer_uri


@click.command("keygen")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Directory for node.key, tls.key and tls.pem (created if missing).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Peer address host.")
@click.option("--port", default=7001, show_default=True, help="Peer address port.")
@click.option(
    "--consensus-port",
    type=int,
    default=None,
    help="The consensus port ([listen] consensus), named in the URI; none if left out.",
)
@click.option("--name", default="mcnode", show_default=True, help="Name in the TLS certificate.")
@click.option("--force", is_flag=True, help="Replace an existing node.key and TLS files.")
def keygen(
    out_dir: str, host: str, port: int, consensus_port: int | None, name: str, force: bool
) -> None:
    """Create a validator's message-signing key and TLS identity; print its peer URI."""
    from mcnode.crypto.rng import system_random
    from mcnode.crypto.signing import ed25519_keypair
    from mcnode.node.keys import write_node_key
    from mcnode.node.tls import default_paths, make_tls_identity, write_tls_identity

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "node.key"
    tls_key, tls_cert = default_paths(d)
    for p in (path, tls_key, tls_cert):
        if p.exists() and not force:
            raise click.ClickException(f"{p} exists; pass --force to replace it")
    private, public = ed25519_keypair(system_random)
    write_node_key(path, private)
    write_tls_identity(tls_key, tls_cert, make_tls_identity(name, private, system_random))
    click.echo(f"key: {path} (mode 0600)")
    click.echo(f"tls: {tls_key} (mode 0600), {tls_cert} (give it to your peers)")
    click.echo(peer_uri(host, port, public, consensus_port))


@click.command("run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The node's TOML configuration.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--force", is_flag=True, help="Start even if network_file shows no quorum intersection."
)
@click.option(
    "--scp-trace",
    "trace_path",
    type=click.Path(dir_okay=False),
    help="Append every SCP step (JSON lines: which quorum or v-blocking set moved it).",
)
def run(config_path: str, log_level: str, force: bool, trace_path: str | None) -> None:
    """Run one validator until SIGINT/SIGTERM."""
    from mcnode.node.logs import quiet_grpc_core, setup

    quiet_grpc_core()  # before anything imports grpc
    try:
        cfg = load_config(config_path)
        problem = check_network_intersection(cfg)
    except ConfigError as e:
        click.echo(f"mcnode run: config error: {e}", err=True)
        sys.exit(2)
    if problem and not force:
        click.echo(f"mcnode run: refusing to start: {problem}", err=True)
        sys.exit(2)
    from mcnode.ledger.errors import LedgerError
    from mcnode.node.keys import NodeKeyError
    from mcnode.node.service import run_validator
    from mcnode.node.tls import TlsError

    setup(log_level)
    profile_dir = os.environ.get("MCNODE_PROFILE_DIR")
    profiler = None
    if profile_dir:  # developer aid: a cProfile of the whole run, written on exit
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        trace = None if trace_path is None else open(trace_path, "a", buffering=1)  # noqa: SIM115
    except OSError as e:
        click.echo(f"mcnode run: --scp-trace: {e}", err=True)
        sys.exit(2)
    try:
        code = asyncio.run(run_validator(cfg, trace))
    except NodeKeyError as e:
        click.echo(f"mcnode run: config error: key_file: {e}", err=True)
        sys.exit(2)
    except TlsError as e:
        click.echo(f"mcnode run: config error: tls: {e}", err=True)
        sys.exit(2)
    except LedgerError as e:
        click.echo(f"mcnode run: ledger error: {e}", err=True)
        sys.exit(3)
    except OSError as e:
        click.echo(f"mcnode run: {e}", err=True)
        sys.exit(3)
    finally:
        if trace is not None:
            trace.close()
        if profiler is not None and profile_dir:
            profiler.disable()
            profiler.dump_stats(os.path.join(profile_dir, f"{cfg.name}.prof"))
    sys.exit(code)


@click.group("config")
def config() -> None:
    """node.toml: every key's reference, and a check of a file before it runs."""


@config.command("reference")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write it here (docs/CONFIG.md) instead of printing it.",
)
def reference(out: Path | None) -> None:
    """Every node.toml key (type, default, meaning) as Markdown, from what the parser
    reads."""
    from mcnode.node.config_reference import reference as render

    text = render()
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text)


@config.command("check")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="The node's TOML configuration.",
)
def check(config_path: str) -> None:
    """Check a node.toml and what it names (keys, certificates, ledger, network file) as
    `mcnode run` would, without starting anything. Exit 0 ok, 2 with one line naming
    the problem."""
    from mcnode.ledger.db import LedgerDB
    from mcnode.ledger.errors import LedgerError
    from mcnode.node.keys import NodeKeyError, read_node_key
    from mcnode.node.tls import TlsError, read_peer_cert, read_tls_identity

    def fail(message: str) -> NoReturn:
        click.echo(f"mcnode config check: {message}", err=True)
        sys.exit(2)

    try:
        cfg = load_config(config_path)
        problem = check_network_intersection(cfg)
    except ConfigError as e:
        fail(f"config error: {e}")
    if problem:
        fail(problem)
    try:
        key = read_node_key(cfg.key_file)
        read_tls_identity(cfg.tls_key, cfg.tls_cert, key)
        for p in cfg.peers:
            read_peer_cert(p.tls_cert, p.signing_key, p.name)
    except NodeKeyError as e:
        fail(f"key_file: {e}")
    except TlsError as e:
        fail(f"tls: {e}")
    try:
        with LedgerDB(cfg.ledger_dir, readonly=True) as led:
            blocks, origin = led.num_blocks(), led.get_block(0).id.hex()
    except LedgerError as e:
        fail(f"ledger_dir: {e}")
    q = cfg.quorum_set
    click.echo(
        f"ok: {cfg.name}: quorum set {q.to_dict()} (v-blocking {q.blocking_size()}), "
        f"{len(cfg.peers)} peers"
    )
    click.echo(
        f"listen: peer {cfg.peer_listen}, client {cfg.client_listen}, admin {cfg.admin_listen}"
    )
    click.echo(f"ledger: {blocks} blocks, origin block id {origin}")
    click.echo(f"attestation: {cfg.attestation.mode}, network {cfg.attestation.network!r}")
