"""The `mcnode` command line: sub-commands registered lazily, listed by `--help` exactly as
their own help says, and the heavy libraries kept out of `--help` and `fbas check`.

No timings here (they belong to bench/); what is pinned is which modules get imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import mcnode
from mcnode.cli import COMMANDS, main

#: Imported by most sub-commands, by none of `--help` (nor, but python-sat, `fbas check`).
HEAVY = ("grpc", "lmdb", "aiohttp", "cryptography", "mcnode._native", "pysat", "rich")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "networks"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_recorded_help_is_the_first_paragraph_of_the_commands_own(name: str) -> None:
    command = COMMANDS[name].load()
    assert command.help is not None
    assert COMMANDS[name].help == command.help.split("\n\n")[0].strip()
    assert main.get_command(click.Context(main), name) is command


def test_help_lists_the_commands_as_an_eager_group_would() -> None:
    eager = click.Group(
        "mcnode",
        help=main.help,
        params=main.params,
        commands={name: lazy.load() for name, lazy in COMMANDS.items()},
    )
    lazy_help = CliRunner().invoke(main, ["--help"], prog_name="mcnode")
    eager_help = CliRunner().invoke(eager, ["--help"], prog_name="mcnode")
    assert lazy_help.exit_code == 0
    assert lazy_help.output == eager_help.output
    listed = lazy_help.output.split("Commands:\n")[1].splitlines()
    assert [line.split()[0] for line in listed] == sorted(COMMANDS)


def test_unknown_command_is_a_usage_error() -> None:
    r = CliRunner().invoke(main, ["wallet", "new", "x"])
    assert r.exit_code == 2 and "No such command 'wallet'" in r.output


def _imported_by(code: str, *args: str) -> dict[str, list[str]]:
    """Run `code` in a fresh interpreter on this copy of mcnode; it prints a JSON object."""
    src = str(Path(mcnode.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(r.stdout.splitlines()[-1])


_PROBE = f"""
import contextlib, io, json, sys
HEAVY = {HEAVY!r}
def heavy():
    return sorted(m for m in sys.modules if m in HEAVY or m.split(".")[0] in HEAVY)
seen = {{}}
import mcnode.cli
seen["import"] = heavy()
with contextlib.redirect_stdout(io.StringIO()):
    try:
        mcnode.cli.main(sys.argv[1:], prog_name="mcnode")
    except SystemExit:
        pass
seen["run"] = heavy()
print(json.dumps(seen))
"""


def test_cli_import_and_help_load_no_heavy_library() -> None:
    seen = _imported_by(_PROBE, "--help")
    assert seen == {"import": [], "run": []}


def test_fbas_check_loads_python_sat_and_nothing_else_heavy() -> None:
    seen = _imported_by(_PROBE, "fbas", "check", str(EXAMPLES / "mobilecoin_nodes_2021-10-22.json"))
    assert seen["import"] == []
    assert {m.split(".")[0] for m in seen["run"]} == {"pysat"}  # the probe ran the analysis
