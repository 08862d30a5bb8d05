"""`mcnode enclave`: the enclave's code identity, from the operator's side.

    mcnode enclave measure [--css FILE] [--json]     MRENCLAVE of this install
    mcnode enclave signer-key --out FILE              a new signer key (MRSIGNER)
    mcnode enclave sign --key FILE --out FILE [--isv-prod-id N] [--isv-svn N]
    mcnode enclave show --css FILE [--json]           a .css's fields, signature checked

`measure --json` prints `{"mrenclave", "mrsigner", "isv_prod_id", "isv_svn"}`: the
identity an enclave process of this install reports when started with the `--css` given;
without one, the last three are null (no signer: the process then reports an unsigned
build, MRSIGNER 32 zero bytes, product and SVN 0). A `.css` for another build is refused,
as the enclave process would refuse it.

Exit codes: 0 done; 1 this install cannot be measured (a module the enclave imports is
missing); 2 bad input: a `.css` that is unreadable, forged or for another build, a signer
key that exists already or cannot be used, a file that cannot be written. Errors are one
line on stderr. Runs in the operator's tools (host side), not in the enclave process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from mcnode import files
from mcnode.enclave.css import (
    MAX_ISV,
    Css,
    CssError,
    load_css,
    mrsigner,
    read_css,
    read_css_file,
)
from mcnode.enclave.measure import MeasureError, measure
from mcnode.enclave.signer import SignerKeyError, load_signer_key, new_signer_key, sign_css

EXIT_CANNOT_MEASURE = 1
EXIT_BAD_INPUT = 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _measure() -> bytes:
    try:
        return measure()
    except MeasureError as e:
        _fail(f"cannot measure this install: {e}", EXIT_CANNOT_MEASURE)


@click.group("enclave")
def enclave() -> None:
    """The enclave's code identity: MRENCLAVE, the signer key and the signed .css.

    MRENCLAVE is the digest of the code the enclave process runs; a signer key (RSA-3072,
    exponent 3, as SGX's) signs it with an ISV product id and security version into a
    .css, and its MRSIGNER lets a verifier trust every build that key signed. Start the
    enclave with `--css` and it refuses to run unless the .css signs its own measurement.
    """


@enclave.command("measure")
@click.option(
    "--css",
    "css_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .css of this build: report its signer, product id and SVN too.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def measure_cmd(css_path: Path | None, as_json: bool) -> None:
    """Print the MRENCLAVE of this install (hex), or with --json its whole identity."""
    mrenclave = _measure()
    css: Css | None = None
    if css_path is not None:
        try:
            css = load_css(css_path, mrenclave)
        except CssError as e:
            _fail(str(e))
    if not as_json:
        click.echo(mrenclave.hex())
        return
    identity = {
        "mrenclave": mrenclave.hex(),
        "mrsigner": None if css is None else css.mrsigner.hex(),
        "isv_prod_id": None if css is None else css.isv_prod_id,
        "isv_svn": None if css is None else css.isv_svn,
    }
    click.echo(json.dumps(identity))


@enclave.command("signer-key")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the key (PKCS#8 PEM, mode 0600); never overwritten.",
)
def signer_key(out: Path) -> None:
    """Make a new enclave signer key (RSA-3072, exponent 3) and print its MRSIGNER."""
    try:
        key = new_signer_key(out)
    except SignerKeyError as e:
        _fail(str(e))
    click.echo(f"signer key: {out} (mode 0600)")
    click.echo(f"mrsigner: {mrsigner(key.public_key()).hex()}")


_ISV = click.IntRange(0, MAX_ISV)


@enclave.command("sign")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The signer key (from `mcnode enclave signer-key`).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the .css (replaced if it exists).",
)
@click.option("--isv-prod-id", default=0, show_default=True, type=_ISV, help="Product id.")
@click.option("--isv-svn", default=0, show_default=True, type=_ISV, help="Security version number.")
def sign(key_path: Path, out: Path, isv_prod_id: int, isv_svn: int) -> None:
    """Measure this install and write its .css, signed with the signer key."""
    try:
        key = load_signer_key(key_path)
    except SignerKeyError as e:
        _fail(str(e))
    mrenclave = _measure()
    data = sign_css(key, mrenclave, isv_prod_id, isv_svn)
    try:
        files.write_atomic(out, data, mode=0o644)
    except OSError as e:
        _fail(f"{out}: cannot write: {e.strerror or type(e).__name__}")
    css = read_css(data)
    click.echo(f"{out}: mrenclave {css.mrenclave.hex()}")
    click.echo(f"mrsigner {css.mrsigner.hex()} isv_prod_id {css.isv_prod_id} isv_svn {css.isv_svn}")


@enclave.command("show")
@click.option(
    "--css",
    "css_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The .css to read.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def show(css_path: Path, as_json: bool) -> None:
    """Print the fields of a .css, after checking its signature."""
    try:
        css = read_css_file(css_path)
    except CssError as e:
        _fail(str(e))
    fields = {
        "mrenclave": css.mrenclave.hex(),
        "mrsigner": css.mrsigner.hex(),
        "isv_prod_id": css.isv_prod_id,
        "isv_svn": css.isv_svn,
        "date": css.date.isoformat(),
    }
    if as_json:
        click.echo(json.dumps(fields))
        return
    for name, value in fields.items():
        click.echo(f"{name:<12} {value}")
