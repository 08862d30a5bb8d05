"""The `mcnode` command line. Thin: parse options, call into the packages, print.

Each package that has commands exposes a click group or command in its own `cli` module;
this file only assembles them, so that packages never edit each other's commands.
"""

from __future__ import annotations

import click

from mcnode import __version__


@click.group()
@click.version_option(__version__, prog_name="mcnode")
def main() -> None:
    """mcnode: a validator for a private-payments network agreeing with SCP."""


# Sub-command registration: one line per package (keep sorted).
from mcnode.fbas.cli import fbas  # noqa: E402, I001
main.add_command(fbas)
from mcnode.sim.cli import sim as _sim  # noqa: E402

main.add_command(_sim)
from mcnode.ledger.cli import ledger as _ledger  # noqa: E402

main.add_command(_ledger)
from mcnode.node.cli import keygen as _keygen  # noqa: E402
from mcnode.node.cli import run as _run  # noqa: E402

main.add_command(_keygen)
main.add_command(_run)
from mcnode.localnet.cli import load_cmd as _load  # noqa: E402
from mcnode.localnet.cli import localnet as _localnet  # noqa: E402

main.add_command(_localnet)
main.add_command(_load)
from mcnode.client.cli import client as _client  # noqa: E402

main.add_command(_client)
