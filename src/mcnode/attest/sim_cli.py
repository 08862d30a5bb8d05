"""`sim-pki`: make a network's simulated SGX PKI and its collateral (wired in as `mcnode
attest sim-pki`).

Exit codes: 0 done; 2 bad input or usage (a PKI already there, no PKI, a malformed or
unreadable one, a file that cannot be written). Errors are one line on stderr. The one
module of `attest/` that reads the clock (when `--now` is not given) or prints.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from mcnode.attest.sim_pki import (
    DAY,
    DEFAULT_CERT_SECONDS,
    DEFAULT_COLLATERAL_SECONDS,
    ROOT_CA_FILE,
    SimPki,
    SimPkiError,
    iso_time,
)
from mcnode.crypto.rng import RandomSource, SeededRandom, system_random
from mcnode.files import write_atomic

EXIT_USAGE = 2


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


@click.group("sim-pki")
def sim_pki() -> None:
    """Make a SIMULATED SGX PKI and its collateral: not Intel's, no hardware protection.

    A network without SGX hardware keeps one simulated PKI: a root CA whose name says it is
    not Intel, a PCK chain for the simulated quoting enclave and a TCB signing key. Quotes
    signed under it go through the real verifier with this root; they prove nothing about
    hardware, and only a policy that allows simulation accepts them.
    """


@sim_pki.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory to write the PKI into (refused if a PKI is there).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Derive every key from this seed (tests only: anyone with the seed has the keys).",
)
@click.option(
    "--valid-days",
    type=click.IntRange(1, 36_500),
    default=DEFAULT_CERT_SECONDS // DAY,
    show_default=True,
    help="Validity of the certificates, from now.",
)
def init(out: Path, seed: int | None, valid_days: int) -> None:
    """Write a new simulated PKI to --out and print its root's SHA-256 fingerprint."""
    if (out / ROOT_CA_FILE).exists():
        _fail(f"{out / ROOT_CA_FILE}: a simulated PKI is already there; not replacing it")
    rng: RandomSource = system_random if seed is None else SeededRandom(seed)
    pki = SimPki.generate(int(time.time()), rng, cert_valid_seconds=valid_days * DAY)
    try:
        pki.save(out)
    except SimPkiError as e:
        _fail(str(e))
    click.echo(f"simulated SGX root CA (not Intel): {out / ROOT_CA_FILE}")
    click.echo(f"sha256 fingerprint {pki.root_fingerprint()}")


@sim_pki.command()
@click.option(
    "--pki",
    "pki_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Directory of the simulated PKI.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write the collateral JSON to.",
)
@click.option(
    "--now",
    type=click.IntRange(0),
    default=None,
    metavar="UNIX",
    help="Issue time, unix seconds [default: the clock].",
)
@click.option(
    "--valid-days",
    type=click.IntRange(1, 3650),
    default=DEFAULT_COLLATERAL_SECONDS // DAY,
    show_default=True,
    help="Days from the issue time to the next update.",
)
def collateral(pki_dir: Path, out: Path, now: int | None, valid_days: int) -> None:
    """Write collateral (TCB info, QE identity, CRLs) for the PKI's quotes to --out."""
    try:
        pki = SimPki.load(pki_dir)
    except SimPkiError as e:
        _fail(str(e))
    issued = int(time.time()) if now is None else now
    data = pki.collateral(issued, valid_days * DAY)
    try:
        write_atomic(out, data, mode=0o644)
    except OSError as e:
        _fail(f"{out}: cannot write: {e.strerror}")
    until = issued + valid_days * DAY
    click.echo(f"collateral valid {iso_time(issued)} to {iso_time(until)}: {out}")
