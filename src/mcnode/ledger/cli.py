"""`mcnode ledger`: create, inspect, verify, export and import a node's ledger.

Exit codes (all sub-commands): 0 ok; 1 the ledger or archive is inconsistent, corrupt, or
a block was refused (import: no archive given could be read to the end); 2 bad input or
usage (bad options, no ledger there, a ledger locked by another writer, a malformed
signers file). Errors are one line on stderr. This is the
one ledger module that may read the clock or print.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click

from mcnode.client.keys import write_account_key
from mcnode.crypto import SeededRandom, system_random
from mcnode.crypto.rng import RandomSource
from mcnode.ledger.archive import LocalDirectory, export_archive
from mcnode.ledger.block import Block
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import (
    ArchiveError,
    InvalidBlock,
    LedgerCorruptError,
    LedgerError,
    LedgerLockedError,
    LedgerNotFoundError,
    NotInLedger,
)
from mcnode.ledger.origin import origin_block, sample_accounts
from mcnode.ledger.signers import SignersFileError, read_signers_file
from mcnode.ledger.verify import VerifyReport, verify_ledger
from mcnode.transaction.tx import RING_SIZE

EXIT_INCONSISTENT = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _fail_for(e: LedgerError) -> NoReturn:
    usage = (LedgerNotFoundError, LedgerLockedError, NotInLedger)
    _fail(str(e), EXIT_USAGE if isinstance(e, usage) else EXIT_INCONSISTENT)


def _hex32(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        _fail(f"{what} must be 64 hex digits, got {text.strip()!r}", EXIT_USAGE)
    return raw


def _signers(signer: tuple[str, ...], signers_file: Path | None) -> frozenset[bytes] | None:
    keys = [_hex32(s, "--signer") for s in signer]
    if signers_file is not None:
        try:
            keys += read_signers_file(signers_file)
        except SignersFileError as e:
            _fail(str(e), EXIT_USAGE)
    return frozenset(keys) if keys else None


_ledger_opt = click.option(
    "--ledger",
    "ledger_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Ledger directory (one LMDB environment).",
)
_signer_opts = [
    click.option(
        "--signer", multiple=True, metavar="HEX", help="Expected block signer (Ed25519 public key)."
    ),
    click.option(
        "--signers-file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="File of expected signers: one hex public key per line ('#' comments), or a "
        "node's state/block-signers.json.",
    ),
    click.option("--origin-id", metavar="HEX", help="Expected id of the origin block."),
]


def _with_signers(f: Callable[..., None]) -> Callable[..., None]:
    for opt in reversed(_signer_opts):
        f = opt(f)
    return f


@click.group()
def ledger() -> None:
    """The ledger: blocks, TxOuts and Merkle proofs in LMDB, and its archives."""


@ledger.command("init")
@_ledger_opt
@click.option("--accounts", type=click.IntRange(1, 100_000), required=True)
@click.option("--outputs-per-account", type=click.IntRange(1, 10_000), required=True)
@click.option("--amount", type=click.IntRange(0, 2**64 - 1), required=True)
@click.option(
    "--keys-out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the accounts' key files (account-NNNN.json, mode 0600).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Derive keys and outputs from this seed (reproducible test networks only).",
)
def init(
    ledger_dir: Path,
    accounts: int,
    outputs_per_account: int,
    amount: int,
    keys_out: Path,
    seed: int | None,
) -> None:
    """Create a ledger whose origin block pays sample accounts, and their key files."""
    rng: RandomSource = system_random if seed is None else SeededRandom(seed)
    try:
        with LedgerDB(ledger_dir, create=True) as db:
            if db.num_blocks():
                _fail(f"{ledger_dir} already holds {db.num_blocks()} blocks", EXIT_USAGE)
            keys = sample_accounts(accounts, rng)
            origin = origin_block(keys, outputs_per_account, amount, rng)
            keys_out.mkdir(parents=True, exist_ok=True)
            for i, account in enumerate(keys):
                write_account_key(keys_out / f"account-{i:04d}.json", account)
            db.append_block(origin)
    except LedgerError as e:
        _fail_for(e)
    except OSError as e:
        _fail(f"{keys_out}: {e.strerror}", EXIT_USAGE)
    click.echo(f"origin block {origin.block.id.hex()}")
    click.echo(
        f"{accounts} accounts x {outputs_per_account} outputs of {amount}: "
        f"{len(origin.contents.outputs)} TxOuts; keys in {keys_out}"
    )
    if len(origin.contents.outputs) < RING_SIZE:
        click.echo(
            f"warning: a payment's ring is {RING_SIZE} outputs of the ledger, this one holds "
            f"{len(origin.contents.outputs)}: no payment can ever be made from it (make "
            f"accounts x outputs-per-account at least {RING_SIZE})",
            err=True,
        )


def _block_doc(db: LedgerDB, block: Block) -> dict[str, object]:
    contents = db.get_block_contents(block.index)
    sig = db.get_block_signature(block.index)
    return {
        "index": block.index,
        "id": block.id.hex(),
        "version": block.version,
        "parent_id": block.parent_id.hex(),
        "cumulative_txo_count": block.cumulative_txo_count,
        "root": block.root_element.hash.hex(),
        "contents_hash": block.contents_hash.hex(),
        "outputs": len(contents.outputs),
        "key_images": len(contents.key_images),
        "signer": None if sig is None else sig.signer.hex(),
        "signed_at": None if sig is None else sig.signed_at,
    }


@ledger.command("show")
@_ledger_opt
@click.option("--block", "index", type=click.IntRange(0), default=None, help="Show this block.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(ledger_dir: Path, index: int | None, as_json: bool) -> None:
    """Summarise the ledger, or one block."""
    try:
        with LedgerDB(ledger_dir, readonly=True) as db:
            if index is not None:
                doc = _block_doc(db, db.get_block(index))
            else:
                last = db.last_block()
                doc = {
                    "blocks": db.num_blocks(),
                    "tx_outs": db.num_tx_outs(),
                    "key_images": db.table_entries()["key_images"],
                    "last_block_id": None if last is None else last.id.hex(),
                    "merkle_root": db.merkle_root().hash.hex(),
                }
    except LedgerError as e:
        _fail_for(e)
    if as_json:
        click.echo(json.dumps(doc))
        return
    for key, value in doc.items():
        click.echo(f"{key:22} {'-' if value is None else value}")


@ledger.command("verify")
@_ledger_opt
@_with_signers
def verify(
    ledger_dir: Path, signer: tuple[str, ...], signers_file: Path | None, origin_id: str | None
) -> None:
    """Re-check the hash chain, contents hashes, signatures, indexes and Merkle roots."""
    expected = _signers(signer, signers_file)
    origin = None if origin_id is None else _hex32(origin_id, "--origin-id")
    report = VerifyReport()
    started = time.monotonic()
    try:
        db = LedgerDB(ledger_dir, readonly=True)
    except LedgerError as e:
        _fail_for(e)  # not there, or too damaged to open: one line
    try:
        with db:
            verify_ledger(db, report, expected_signers=expected, origin_id=origin)
    except (InvalidBlock, LedgerCorruptError) as e:
        _print_report(ledger_dir, report, expected)
        click.echo(f"FAILED after {report.blocks_checked} good blocks: {e}")
        sys.exit(EXIT_INCONSISTENT)
    except LedgerError as e:
        _fail_for(e)
    _print_report(ledger_dir, report, expected)
    click.echo(f"OK ({time.monotonic() - started:.1f} s)")


def _print_report(
    ledger_dir: Path, report: VerifyReport, expected: frozenset[bytes] | None
) -> None:
    click.echo(
        f"ledger {ledger_dir}: {report.blocks_checked} blocks checked, {report.tx_outs} TxOuts, "
        f"{report.key_images} key images"
    )
    if report.last_block is not None:
        click.echo(f"last block {report.last_block.index}: {report.last_block.id.hex()}")
        click.echo(f"merkle root {report.last_block.root_element.hash.hex()}")
    rule = "any valid signer" if expected is None else f"{len(expected)} expected signers"
    click.echo(f"signatures checked against {rule}:")
    for key, count in sorted(report.signers.items()):
        click.echo(f"  {key.hex()}  {count} blocks")


@ledger.command("export")
@_ledger_opt
@click.option(
    "--archive", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory."
)
def export(ledger_dir: Path, archive: Path) -> None:
    """Write the blocks the archive lacks (one file each, plus merged bundles)."""
    try:
        with LedgerDB(ledger_dir, readonly=True) as db:
            result = export_archive(db, LocalDirectory(archive))
    except LedgerError as e:
        _fail_for(e)
    if result.num_blocks == result.first:
        click.echo(f"{archive} is up to date ({result.num_blocks} blocks)")
    else:
        click.echo(
            f"exported blocks {result.first}..{result.num_blocks - 1} and "
            f"{result.bundles} merged bundles to {archive}"
        )


@ledger.command("import")
@click.option(
    "--archive",
    "archives",
    required=True,
    multiple=True,
    metavar="DIR|URL",
    help="Archive directory, or http(s):// URL of one served by a web server. Repeat to "
    "give fallbacks: each is tried in order until one imports without error.",
)
@_ledger_opt
@_with_signers
@click.option(
    "--any-signer", is_flag=True, help="Accept blocks validly signed by any key (no pinning)."
)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="HTTP archives: objects fetched at once.",
)
def import_(
    archives: tuple[str, ...],
    ledger_dir: Path,
    signer: tuple[str, ...],
    signers_file: Path | None,
    origin_id: str | None,
    any_signer: bool,
    parallel: int,
) -> None:
    """Verify the archive's blocks that the ledger lacks and append them."""
    import asyncio

    # The HTTP client is the node's (all sockets live there); directories take the same way.
    from mcnode.node.archives import (
        BadArchiveSource,
        FetchPolicy,
        import_source,
        parse_archive_source,
    )

    expected = _signers(signer, signers_file)
    if expected is None and not any_signer:
        _fail(
            "name the expected signers (--signer/--signers-file) or pass --any-signer", EXIT_USAGE
        )
    origin = None if origin_id is None else _hex32(origin_id, "--origin-id")
    try:
        sources = [parse_archive_source(a) for a in archives]
    except BadArchiveSource as e:
        _fail(f"--archive: {e}", EXIT_USAGE)
    for src in sources:
        if isinstance(src, Path) and not src.is_dir():
            _fail(f"{src}: no such archive directory", EXIT_USAGE)
    policy = FetchPolicy(parallel=parallel)
    started = time.monotonic()
    try:
        with LedgerDB(ledger_dir, create=True, expected_signers=expected) as db:
            before = db.num_blocks()
            for i, src in enumerate(sources):
                try:
                    asyncio.run(import_source(src, db, policy, origin))
                    break
                except (ArchiveError, InvalidBlock) as e:
                    said = str(e) if isinstance(e, ArchiveError) else f"{src}: {e}"
                    problem = f"{said} (ledger kept {db.num_blocks()} blocks)"
                    if i + 1 == len(sources):
                        _fail(problem, EXIT_INCONSISTENT)
                    click.echo(f"warning: {problem}; trying {sources[i + 1]}", err=True)
            after = db.num_blocks()
    except LedgerError as e:
        _fail_for(e)
    elapsed = time.monotonic() - started
    click.echo(f"imported {after - before} blocks ({before} -> {after}) in {elapsed:.1f} s")
