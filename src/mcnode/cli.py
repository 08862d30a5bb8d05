"""The `mcnode` command line. Thin: parse options, call into the packages, print."""

from __future__ import annotations

import click

from mcnode import __version__


@click.group()
@click.version_option(__version__, prog_name="mcnode")
def main() -> None:
    """mcnode: a validator for a private-payments network agreeing with SCP."""
