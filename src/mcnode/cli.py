"""The `mcnode` command line. Thin: parse options, call into the packages, print.

Each package that has commands exposes a click group or command in its own `cli` module;
this file only lists them (`COMMANDS`), so that packages never edit each other's commands.

It imports none of them. A sub-command's module, and with it whatever that command needs
(grpc, lmdb, the native extension, python-sat, rich, ...), is imported only when that
sub-command runs or is asked for its own help: `mcnode --help` lists the commands from the
help recorded here, and `mcnode fbas check` pays for quorum analysis alone. A test holds
each recorded help to the command's own, and keeps the heavy modules out of `--help`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from mcnode import __version__


@dataclass(frozen=True)
class LazyCommand:
    """A sub-command not imported yet: where it lives and what `mcnode --help` says of it."""

    #: "package.module:attribute", the click command or group
    target: str
    #: the first paragraph of the command's own help (its docstring)
    help: str

    def load(self) -> click.Command:
        module, _, attribute = self.target.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.target} is not a click command")
        return command


class LazyGroup(click.Group):
    """A click group whose sub-commands are imported on first use (`get_command`), and
    listed in its help without being imported."""

    def __init__(self, *args: Any, lazy: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(self.lazy[cmd_name].load(), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click.Group's listing, except that a sub-command not imported yet is described by
        # a stand-in carrying its recorded help (click shortens it the same way)
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name) or click.Command(name, help=self.lazy[name].help)
            if not command.hidden:
                rows.append((name, command))
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in rows])


# Sub-commands, one line each (keep sorted). The help is the first paragraph of the
# command's docstring, verbatim (tests/test_cli.py compares them).
COMMANDS: dict[str, LazyCommand] = {
    "attest": LazyCommand(
        "mcnode.attest.cli:attest",
        "Remote attestation: verify SGX quotes and their collateral under a policy.",
    ),
    "client": LazyCommand(
        "mcnode.client.cli:client", "An account's key file, address, balance and payments."
    ),
    "config": LazyCommand(
        "mcnode.node.cli:config",
        "node.toml: every key's reference, and a check of a file before it runs.",
    ),
    "enclave": LazyCommand(
        "mcnode.enclave.cli:enclave",
        "The enclave's code identity: MRENCLAVE, the signer key and the signed .css.",
    ),
    "fbas": LazyCommand(
        "mcnode.fbas.cli:fbas",
        "Quorum analysis: intersection, blocking and splitting sets, top tier, trust graph.",
    ),
    "keygen": LazyCommand(
        "mcnode.node.cli:keygen",
        "Create a validator's message-signing key and TLS identity; print its peer URI.",
    ),
    "ledger": LazyCommand(
        "mcnode.ledger.cli:ledger",
        "The ledger: blocks, TxOuts and Merkle proofs in LMDB, and its archives.",
    ),
    "load": LazyCommand(
        "mcnode.localnet.cli:load_cmd",
        "Send payments to running validators (started with `mcnode localnet up`).",
    ),
    "localnet": LazyCommand(
        "mcnode.localnet.cli:localnet",
        "A whole network on this machine: validators, real payments, a live view.",
    ),
    "run": LazyCommand("mcnode.node.cli:run", "Run one validator until SIGINT/SIGTERM."),
    "sim": LazyCommand("mcnode.sim.cli:sim", "Simulate an SCP network: same seed, same run."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(__version__, prog_name="mcnode")
def main() -> None:
    """mcnode: a validator for a private-payments network agreeing with SCP."""
