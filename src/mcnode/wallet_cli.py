"""`mcnode wallet`: make an account key file and print its addresses.

The wallet side of `transaction/`, at the command line. Key files are `mcnode.keyfile`'s;
fresh keys come from the operating system's CSPRNG (`crypto.rng.system_random`).
"""

from __future__ import annotations

from pathlib import Path

import click

from mcnode.client.keys import KeyFileError, read_account_key, write_account_key
from mcnode.crypto import system_random
from mcnode.transaction import AccountKey


@click.group()
def wallet() -> None:
    """Account keys and public addresses for private payments."""


@wallet.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def new(path: Path, force: bool) -> None:
    """Create a new account key file at PATH (mode 0600) and print its address."""
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to replace it")
    account = AccountKey.random(system_random)
    write_account_key(path, account)
    click.echo(account.default_address.to_string())


@wallet.command("address")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--subaddress",
    "index",
    type=click.IntRange(0, 2**64 - 1),
    default=0,
    show_default=True,
    help="Subaddress index (1 receives change).",
)
def address(path: Path, index: int) -> None:
    """Print the printable public address of the account in PATH."""
    try:
        account = read_account_key(path)
    except KeyFileError as e:
        raise click.ClickException(str(e)) from e
    click.echo(account.subaddress(index).to_string())
