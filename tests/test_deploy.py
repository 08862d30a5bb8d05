"""The systemd unit in deploy/: hardened as the README says, and valid to systemd itself
(`systemd-analyze verify`, skipped with the reason where systemd is not installed)."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "systemd" / "mcnode.service"
INSTALLED = "/opt/mcnode/venv/bin/mcnode"


def _service() -> dict[str, list[str]]:
    """The [Service] section; a key given twice keeps both values."""
    values: dict[str, list[str]] = {}
    section = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_unit_is_hardened_and_runs_the_node_as_its_own_user() -> None:
    s = _service()
    assert s["ExecStart"] == [f"{INSTALLED} run --config /var/lib/mcnode/node.toml"]
    assert s["User"] == ["mcnode"] and s["NoNewPrivileges"] == ["yes"]
    assert s["ProtectSystem"] == ["strict"] and s["ReadWritePaths"] == ["/var/lib/mcnode"]
    assert s["PrivateTmp"] == ["yes"] and s["ProtectHome"] == ["yes"]
    assert int(s["LimitNOFILE"][0]) >= 4 * (512 + 128)
    assert s["Restart"] == ["on-failure"] and s["RestartPreventExitStatus"] == ["2"]
    assert float(s["RestartSec"][0]) > 0
    assert s["CapabilityBoundingSet"] == [""]  # no capability at all
    # The enclave child moves into a user + network namespace of its own: allowed, and
    # only those.
    assert set(s["RestrictNamespaces"][0].split()) == {"user", "net"}
    # unshare, prctl and setrlimit (the enclave's hardening) are in @system-service
    assert "@system-service" in s["SystemCallFilter"]


def test_unit_parses_as_ini() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    assert set(parser.sections()) == {"Unit", "Service", "Install"}
    assert parser["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian package systemd; .ci/run installs it)",
)
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify also checks that ExecStart exists: point it at a stand-in executable
    stand_in = tmp_path / "mcnode"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    unit = tmp_path / "mcnode.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(stand_in)))
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0 and "mcnode.service" not in r.stderr, r.stderr
