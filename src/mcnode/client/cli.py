"""`mcnode client`: an account's key file, its address, balance and payments.

`new` makes a key file (keys from the operating system's CSPRNG, `crypto.rng.system_random`;
the file is `client.keys`'), `address` prints its address or a subaddress. `balance` scans
a validator's blocks with the account's view key. `send` keeps a local copy of the ledger
(synced from the node, every block verified against the signing keys the node names),
draws the ring from it, writes the payment's receipt (`client.payments`), submits over the
enclave's encrypted session, follows the ledger for a while and prints the payment's fate:
committed in block N, not yet (it may still commit until its tombstone block: never "failed"
while it can still commit), or never. `status` judges a receipt again later, from the
blocks that could hold it. The gRPC client is imported only by the commands that talk to a
node."""

from __future__ import annotations

import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mcnode.client.keys import KeyFileError, read_account_key, write_account_key
from mcnode.client.wallet import DEFAULT_FEE, TOMBSTONE_WINDOW, Wallet
from mcnode.transaction.account import AccountKey, PublicAddress
from mcnode.transaction.validation import MAX_TOMBSTONE_BLOCKS

if TYPE_CHECKING:
    from mcnode.client.node_client import NodeClient
    from mcnode.client.payments import Receipt
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


def _node_signers(node: NodeClient) -> set[bytes]:
    """The block signers a validator names: its enclave's and its peers' keys."""
    from mcnode.node.config import parse_peer_uri

    cfg = node.node_config()
    signers = {bytes(cfg.signing_key)}
    for uri in cfg.peers:
        signers.add(parse_peer_uri(uri, "peer")[2])
    return signers


def _synced_ledger(node: NodeClient, cache: Path) -> LedgerDB:
    from mcnode.ledger.db import LedgerDB

    led = LedgerDB(cache, create=True, expected_signers=_node_signers(node))
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
@click.option(
    "--receipt",
    "receipt_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the payment's receipt here (default: payments/<tx hash>.json beside the "
    "key file); `mcnode client status` reads it.",
)
@click.option(
    "--tombstone-blocks",
    type=click.IntRange(1, MAX_TOMBSTONE_BLOCKS),
    default=TOMBSTONE_WINDOW,
    show_default=True,
    help="The payment can go into any of the next N blocks, never later.",
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
    receipt_path: Path | None,
    tombstone_blocks: int,
    wait: float,
) -> None:
    """Pay AMOUNT to an address; wait for the block; print the outcome.

    The payment goes only to an enclave whose attestation evidence meets the network's
    policy (from --network): another build, or evidence that does not verify, is refused
    before any transaction leaves this process.

    Before the payment leaves, its receipt is written (--receipt). Exit codes: 0 committed
    in block N; 1 nothing was sent (bad input, insufficient funds, node unreachable,
    enclave not trusted); 3 sent but not committed yet: it may still commit until its
    tombstone block, so do not send it again; check it with `mcnode client status
    RECEIPT`; 4 it will never commit (refused by the validator, or its tombstone passed
    without it, or its input was spent elsewhere): nothing was paid."""
    from mcnode.client.node_client import ClientError, NodeClient
    from mcnode.client.payments import Receipt, write_receipt
    from mcnode.client.trust import TrustError, read_network_trust
    from mcnode.crypto.rng import system_random
    from mcnode.enclave.errors import AttestationFailed
    from mcnode.ledger.errors import LedgerError
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
                node.connect()  # the enclave attests before anything is built or sent
                try:
                    tx, _ = Wallet(account).build_payment(
                        led,
                        recipient,
                        amount,
                        system_random,
                        fee=fee,
                        tombstone_window=tombstone_blocks,
                    )
                except InsufficientFunds as e:
                    raise click.ClickException(f"insufficient funds: {e}") from None
                first = led.num_blocks()
                receipt = Receipt(
                    tx_hash=tx.tx_hash(),
                    key_images=tx.key_images,
                    output_public_keys=tx.output_public_keys,
                    tombstone_block=tx.prefix.tombstone_block,
                    first_block=first,
                    parent_block_id=led.get_block(first - 1).id,
                    node=uri,
                    to=to,
                    amount=amount,
                    fee=fee,
                )
                path = receipt_path or Path(keys).parent / "payments" / f"{tx.tx_hash().hex()}.json"
                try:
                    write_receipt(path, receipt)
                except OSError as e:
                    raise click.ClickException(f"{path}: cannot write: {e.strerror or e}") from None
                code = _submit_and_follow(node, led, tx.to_bytes(), receipt, path, wait)
            finally:
                led.close()
    except (ClientError, AttestationFailed, LedgerError) as e:  # before the payment left
        raise click.ClickException(str(e)) from None
    finally:
        if tmp:
            tmp.cleanup()
    sys.exit(code)


def _submit_and_follow(
    node: NodeClient, led: LedgerDB, tx_bytes: bytes, receipt: Receipt, path: Path, wait: float
) -> int:
    """Propose the payment and follow the ledger for up to `wait` seconds; print its fate
    and return the exit code. Nothing raised here may say "not paid" for a payment that
    has left: once it is sent, an error leaves it pending."""
    from mcnode.client.node_client import ClientError
    from mcnode.client.payments import EXIT_FAILED, Fate, PaymentWatch
    from mcnode.enclave.errors import AttestationFailed
    from mcnode.ledger.errors import LedgerError

    check = f"mcnode client status {shlex.quote(str(path))} --node {shlex.quote(node.address)}"
    click.echo(f"payment {receipt.tx_hash.hex()}, receipt {path}")
    watch = PaymentWatch(receipt)
    try:
        r = node.propose_tx(tx_bytes)
    except (ClientError, AttestationFailed) as e:
        click.echo(f"error: sent, but the validator's answer was lost: {e}", err=True)
        r = None
    if r is not None and not r.ok:
        path.unlink(missing_ok=True)  # it never entered the network: nothing to check
        click.echo(f"rejected: {r.result}: {r.detail}", err=True)
        click.echo("not paid: the validator refused it (receipt removed)")
        return EXIT_FAILED
    deadline = time.monotonic() + wait
    try:
        while True:  # also when the answer was lost: it may be in a block
            new = node.blocks(led.num_blocks(), 100)
            led.append_blocks(new)
            watch.see(new)
            if watch.settled or watch.status(led.num_blocks()).fate is not Fate.PENDING:
                break
            if not new:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
    except (ClientError, LedgerError) as e:
        click.echo(f"error: could not follow the ledger: {e}", err=True)
    status = watch.status(watch.next_block if not watch.settled else led.num_blocks())
    click.echo(status.describe(receipt))
    if status.fate is Fate.PENDING:
        click.echo(f"check it later with: {check}")
    return status.fate.exit_code


@client.command("status")
@click.argument("receipt_path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option(
    "--node",
    "uri",
    default=None,
    help="A validator's client address (default: the one the payment was sent to).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(receipt_path: Path, uri: str | None, as_json: bool) -> None:
    """A sent payment's fate, from its receipt: committed in block N, or not yet (it may
    still commit until its tombstone block), or never.

    Reads the blocks that could hold it, each checked against its parent (from the block
    the payment was built on) and the validator's block signers. Exit codes: 0 committed;
    3 not committed yet, may still commit: do not send it again; 4 it can no longer
    commit: nothing was paid; 1 could not check (unreadable receipt, node unreachable,
    blocks that do not verify)."""
    import json

    from mcnode.client.node_client import ClientError, NodeClient
    from mcnode.client.payments import PaymentWatch, ReceiptError, read_receipt
    from mcnode.ledger.errors import InvalidBlock
    from mcnode.ledger.rules import check_block_data

    try:
        receipt = read_receipt(receipt_path)
    except ReceiptError as e:
        raise click.ClickException(str(e)) from None
    watch = PaymentWatch(receipt)
    try:
        with NodeClient(uri or receipt.node) as node:
            signers = _node_signers(node)
            height = int(node.last_block_info().num_blocks)
            if height < receipt.first_block:
                raise click.ClickException(
                    f"{node.address} holds {height} blocks, fewer than the {receipt.first_block}"
                    " the payment was built on: ask another validator, or wait for it to "
                    "catch up"
                )
            parent = None
            offset = receipt.first_block - 1
            stop = min(height, receipt.tombstone_block)
            while offset < stop and not watch.settled:
                blocks = node.blocks(offset, min(100, stop - offset))
                if not blocks:
                    break
                for data in blocks:
                    if parent is None and data.block.id != receipt.parent_block_id:
                        raise click.ClickException(
                            f"{node.address}: its block {data.block.index} is not the one the "
                            "payment was built on: this validator follows another ledger"
                        )
                    if parent is not None:
                        check_block_data(data, parent, signers)
                    parent = data.block
                watch.see(blocks)
                offset += len(blocks)
    except ClientError as e:
        raise click.ClickException(str(e)) from None
    except InvalidBlock as e:
        raise click.ClickException(f"a block from the validator does not verify: {e}") from None
    result = watch.status(height if offset >= stop or watch.settled else offset)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "fate": result.fate.value,
                    "block": result.block,
                    "height": result.height,
                    "tx_hash": receipt.tx_hash.hex(),
                    "tombstone_block": receipt.tombstone_block,
                    "last_possible_block": receipt.last_possible_block,
                    "conflicting_key_image": None
                    if result.conflict is None
                    else result.conflict.hex(),
                }
            )
        )
    else:
        click.echo(f"payment {receipt.tx_hash.hex()}: {result.describe(receipt)}")
    sys.exit(result.fate.exit_code)
