"""`mcnode client`: an account's key file, its address, balance and payments.

`new` makes a key file (keys from the operating system's CSPRNG, `crypto.rng.system_random`;
the file is `client.keys`'), `address` prints its address or a subaddress. `balance` scans
a validator's blocks with the account's view key. `send` keeps a local copy of the ledger
(synced from the node, every block verified against the signing keys the node names),
draws the ring from it, submits over the enclave's encrypted session, waits for the block
and prints the result or the exact rejection. The gRPC client is imported only by the
commands that talk to a node."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mcnode.client.keys import KeyFileError, read_account_key, write_account_key
from mcnode.client.wallet import DEFAULT_FEE, Wallet
from mcnode.transaction.account import AccountKey, PublicAddress

if TYPE_CHECKING:
    from mcnode.client.node_client import NodeClient
    from mcnode.ledger.db import LedgerDB


def _account(path: str | Path) -> AccountKey:
    try:
        return read_account_key(path)
    except KeyFileError as e:
        raise click.ClickException(str(e)) from None


@click.group("client")
def client() -> None:
    """An account's key file, address, balance and payments."""


@client.command("new")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def new(path: Path, force: bool) -> None:
    """Create a new account key file at PATH (mode 0600) and print its address."""
    from mcnode.crypto.rng import system_random

    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; pass --force to replace it")
    account = AccountKey.random(system_random)
    try:
        write_account_key(path, account)
    except OSError as e:
        raise click.ClickException(f"{path}: cannot write: {e.strerror or e}") from None
    click.echo(account.default_address.to_string())


@client.command("address")
@click.option("--keys", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--subaddress",
    "index",
    type=click.IntRange(0, 2**64 - 1),
    default=0,
    show_default=True,
    help="Subaddress index (1 receives change).",
)
def address(keys: str, index: int) -> None:
    """Print the account's public address (or one of its subaddresses)."""
    click.echo(_account(keys).subaddress(index).to_string())


def _synced_ledger(node: NodeClient, cache: Path) -> LedgerDB:
    from mcnode.ledger.db import LedgerDB
    from mcnode.node.config import parse_peer_uri

    cfg = node.node_config()
    signers = {bytes(cfg.signing_key)}
    for uri in cfg.peers:
        signers.add(parse_peer_uri(uri, "peer")[2])
    led = LedgerDB(cache, create=True, expected_signers=signers)
    while True:
        blocks = node.blocks(led.num_blocks(), 100)
        if not blocks:
            return led
        led.append_blocks(blocks)


@client.command("balance")
@click.option("--keys", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--node", "uri", required=True, help="The validator's client address.")
def balance(keys: str, uri: str) -> None:
    """Scan the node's blocks for the account's outputs; print the unspent total."""
    from mcnode.client.node_client import ClientError, NodeClient
    from mcnode.transaction.mlsag import key_image
    from mcnode.transaction.txout import Scanner

    account = _account(keys)
    scanner = Scanner(account)
    owned = {}
    spent: set[bytes] = set()
    try:
        with NodeClient(uri) as node:
            offset = 0
            while True:
                blocks = node.blocks(offset, 100)
                if not blocks:
                    break
                for b in blocks:
                    spent.update(b.contents.key_images)
                    for o in scanner.scan(b.contents.outputs):
                        owned[key_image(o.onetime_private)] = o.value
                offset += len(blocks)
    except ClientError as e:
        raise click.ClickException(str(e)) from None
    unspent = sum(v for ki, v in owned.items() if ki not in spent)
    click.echo(
        f"{unspent} ({len([k for k in owned if k not in spent])} unspent outputs, "
        f"{offset} blocks scanned)"
    )


@client.command("send")
@click.option("--keys", required=True, type=click.Path(dir_okay=False, exists=True))
@click.option("--to", "to", required=True, help="Recipient's public address.")
@click.option("--amount", required=True, type=click.IntRange(1, 2**64 - 1))
@click.option("--fee", default=DEFAULT_FEE, show_default=True)
@click.option("--node", "uri", required=True, help="The validator's client address.")
@click.option(
    "--network",
    "network_file",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The network file (network.json) whose attestation policy the validator's "
    "enclave must meet before it sees the payment.",
)
@click.option(
    "--ledger-cache",
    type=click.Path(file_okay=False),
    default=None,
    help="Keep the synced ledger copy here (default: a temporary directory).",
)
@click.option("--wait", default=30.0, show_default=True, help="Seconds to wait for the block.")
def send(
    keys: str,
    to: str,
    amount: int,
    fee: int,
    uri: str,
    network_file: str,
    ledger_cache: str | None,
    wait: float,
) -> None:
    """Pay AMOUNT to an address; wait for the block; print the outcome.

    The payment goes only to an enclave whose attestation evidence meets the network's
    policy (from --network): another build, or evidence that does not verify, is refused
    before any transaction leaves this process."""
    from mcnode.client.node_client import ClientError, NodeClient
    from mcnode.client.trust import TrustError, read_network_trust
    from mcnode.crypto.rng import system_random
    from mcnode.enclave.errors import AttestationFailed
    from mcnode.transaction.builder import InsufficientFunds

    account = _account(keys)
    try:
        recipient = PublicAddress.from_string(to)
    except ValueError as e:
        raise click.BadParameter(f"not an address: {e}", param_hint="--to") from None
    tmp = tempfile.TemporaryDirectory(prefix="mcnode-client-") if ledger_cache is None else None
    cache = Path(tmp.name if tmp else ledger_cache) / "ledger"  # type: ignore[arg-type]
    try:
        trust = read_network_trust(network_file)
    except TrustError as e:
        raise click.ClickException(str(e)) from None
    if not trust.attested:
        click.echo("warning: this network runs without attestation", err=True)
    try:
        with NodeClient(uri, policy=trust.policy, root_ca_der=trust.root_ca_der) as node:
            led = _synced_ledger(node, cache)
            try:
                w = Wallet(account)
                try:
                    tx, _ = w.build_payment(led, recipient, amount, system_random, fee=fee)
                except InsufficientFunds as e:
                    raise click.ClickException(f"insufficient funds: {e}") from None
                r = node.propose_tx(tx.to_bytes())
                if not r.ok:
                    click.echo(f"rejected: {r.result}: {r.detail}", err=True)
                    sys.exit(1)
                click.echo(f"accepted: tx {r.tx_hash.hex()}")
                deadline = time.monotonic() + wait
                images = set(tx.key_images)
                while time.monotonic() < deadline:
                    led.append_blocks(node.blocks(led.num_blocks(), 100))
                    if all(led.contains_key_image(k) for k in images):
                        block = led.get_key_image_block(next(iter(images)))
                        click.echo(f"committed in block {block}")
                        return
                    if led.num_blocks() >= tx.prefix.tombstone_block:
                        break
                    time.sleep(0.1)
                click.echo("not committed (tombstone passed or timed out)", err=True)
                sys.exit(1)
            finally:
                led.close()
    except (ClientError, AttestationFailed) as e:
        raise click.ClickException(str(e)) from None
    finally:
        if tmp:
            tmp.cleanup()
