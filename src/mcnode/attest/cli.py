"""`mcnode attest`: verify remote-attestation evidence under a policy.

`mcnode attest verify` (stable, tools rely on it) exits 0 when the evidence verified and
the policy holds, 1 when it was refused (one line saying why), 2 when the input cannot be
read (a missing file, bad hex, bad JSON, a quote that does not parse, a root that is not
a PEM certificate, an incomplete MRSIGNER policy). This is the one attest module that may
read the clock, files, or print. Never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from mcnode.attest.sim_cli import sim_pki

if TYPE_CHECKING:
    from mcnode.attest.policy import Verdict

EXIT_REFUSED = 1
EXIT_UNREADABLE = 2

#: the keys of `--json`, in order (stable)
JSON_KEYS = (
    "verified",
    "tcb_status",
    "advisories",
    "mrenclave",
    "mrsigner",
    "isv_prod_id",
    "isv_svn",
    "debug",
    "report_data",
    "reason",
    "identity_required",
)


class _Unreadable(Exception):
    pass


def _hex32(text: str, flag: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise _Unreadable(f"{flag} must be 64 hex digits, got {text.strip()!r}")
    return raw


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise _Unreadable(f"{what} {path}: {e.strerror or e}") from None


@click.group()
def attest() -> None:
    """Remote attestation: verify SGX quotes and their collateral under a policy."""


attest.add_command(sim_pki, "sim-pki")


@attest.command("verify")
@click.option(
    "--quote",
    "quote_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The quote: SGX ECDSA, version 3, raw bytes.",
)
@click.option(
    "--collateral",
    "collateral_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Its collateral, JSON in Intel PCS's shape (as dcap-qvl reads it).",
)
@click.option(
    "--root-ca",
    "root_ca_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PEM root of a simulated PKI to verify against instead of Intel's "
    "(names it, so simulated evidence is allowed).",
)
@click.option(
    "--now",
    type=click.IntRange(0, 2**63 - 1),
    metavar="UNIX_SECONDS",
    help="Verify as of this time (default: now).",
)
@click.option("--mrenclave", multiple=True, metavar="HEX", help="A trusted MRENCLAVE (repeatable).")
@click.option("--mrsigner", metavar="HEX", help="The trusted MRSIGNER (with the next two).")
@click.option("--isv-prod-id", type=click.IntRange(0, 0xFFFF), metavar="N")
@click.option("--min-isv-svn", type=click.IntRange(0, 0xFFFF), metavar="N")
@click.option(
    "--allow-status",
    multiple=True,
    metavar="S",
    help="Accept this TCB status besides UpToDate (repeatable).",
)
@click.option(
    "--allow-advisory", multiple=True, metavar="ID", help="Accept this advisory (repeatable)."
)
@click.option("--allow-debug", is_flag=True, help="Accept an enclave in DEBUG mode.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(
    quote_path: Path,
    collateral_path: Path,
    root_ca_path: Path | None,
    now: int | None,
    mrenclave: tuple[str, ...],
    mrsigner: str | None,
    isv_prod_id: int | None,
    min_isv_svn: int | None,
    allow_status: tuple[str, ...],
    allow_advisory: tuple[str, ...],
    allow_debug: bool,
    as_json: bool,
) -> None:
    """Verify a quote and its collateral, then the policy given by the flags.

    With no --mrenclave and no --mrsigner any enclave identity is accepted (to inspect a
    quote), and the output says so (identity_required: false).
    """
    from cryptography.utils import CryptographyDeprecationWarning

    from mcnode.attest.verify import (
        AttestationRefused,
        EvidenceUnreadable,
        Policy,
        root_ca_der_from_pem,
        verify_evidence,
    )

    identity_required = bool(mrenclave or mrsigner is not None)
    at = int(time.time()) if now is None else now
    try:
        if mrsigner is not None and (isv_prod_id is None or min_isv_svn is None):
            raise _Unreadable("--mrsigner needs --isv-prod-id and --min-isv-svn")
        if mrsigner is None and (isv_prod_id is not None or min_isv_svn is not None):
            raise _Unreadable("--isv-prod-id and --min-isv-svn need --mrsigner")
        try:
            policy = Policy(
                mrenclaves=frozenset(_hex32(m, "--mrenclave") for m in mrenclave),
                mrsigner=None if mrsigner is None else _hex32(mrsigner, "--mrsigner"),
                isv_prod_id=isv_prod_id,
                min_isv_svn=min_isv_svn,
                allowed_statuses=frozenset(allow_status),
                allowed_advisories=frozenset(allow_advisory),
                allow_debug=allow_debug,
                allow_simulation=root_ca_path is not None,
                any_identity=not identity_required,
            )
        except ValueError as e:
            raise _Unreadable(str(e)) from None
        quote = _read(quote_path, "quote")
        collateral = _read(collateral_path, "collateral")
        root = None
        if root_ca_path is not None:
            root = root_ca_der_from_pem(_read(root_ca_path, "root CA"))
        with warnings.catch_warnings():
            # a damaged certificate can make cryptography warn; the refusal says enough
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            verdict = verify_evidence(quote, collateral, policy, at, root)
    except (_Unreadable, EvidenceUnreadable) as e:
        _unreadable(str(e), as_json, identity_required)
    except AttestationRefused as e:
        fields = _fields(e.verdict)
        if as_json:
            _print_json(False, fields, e.message, identity_required)
        else:
            click.echo(f"REFUSED ({e.reason}): {e.message}")
        sys.exit(EXIT_REFUSED)

    fields = _fields(verdict)
    if as_json:
        _print_json(True, fields, None, identity_required)
        return
    chain = "a simulated root (--root-ca)" if verdict.simulated else "Intel's SGX root"
    advisories = ", ".join(verdict.advisories) or "none"
    click.echo(f"VERIFIED against {chain}, as of {at}")
    click.echo(f"TCB status {verdict.tcb_status}; advisories: {advisories}")
    click.echo(f"mrenclave   {fields['mrenclave']}")
    click.echo(f"mrsigner    {fields['mrsigner']}")
    click.echo(
        f"isv_prod_id {verdict.isv_prod_id}, isv_svn {verdict.isv_svn}, "
        f"debug {'yes' if verdict.debug else 'no'}"
    )
    click.echo(f"report_data {fields['report_data']}")
    if not identity_required:
        click.echo("no enclave identity was required (no --mrenclave, no --mrsigner)")


def _fields(verdict: Verdict | None) -> dict[str, Any]:
    if verdict is None:
        return {k: None for k in JSON_KEYS[1:9]}
    return {
        "tcb_status": verdict.tcb_status,
        "advisories": list(verdict.advisories),
        "mrenclave": verdict.mrenclave.hex(),
        "mrsigner": verdict.mrsigner.hex(),
        "isv_prod_id": verdict.isv_prod_id,
        "isv_svn": verdict.isv_svn,
        "debug": verdict.debug,
        "report_data": verdict.report_data.hex(),
    }


def _print_json(
    verified: bool, fields: dict[str, Any], reason: str | None, identity_required: bool
) -> None:
    obj = {
        "verified": verified,
        **fields,
        "reason": reason,
        "identity_required": identity_required,
    }
    assert tuple(obj) == JSON_KEYS
    click.echo(json.dumps(obj))


def _unreadable(message: str, as_json: bool, identity_required: bool) -> NoReturn:
    if as_json:
        _print_json(False, _fields(None), message, identity_required)
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_UNREADABLE)
