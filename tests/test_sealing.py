"""The enclave's measurement (the digest of the code its process runs) and sealed keys:
deterministic, changed by one byte of any measured file, and binding the keys to it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mcnode.crypto import SeededRandom
from mcnode.enclave import SealError
from mcnode.enclave.measure import ENTRY, measure, measured_modules, package_root
from mcnode.enclave.sealing import (
    KEYS_FILE,
    MAGIC,
    SECRET_FILE,
    EnclaveKeys,
    load_or_create,
    provision,
    seal,
    unseal,
)

SECRET = bytes(range(32))
MEASUREMENT = bytes(32)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the installed mcnode package (sources and native extension)."""
    copy = tmp_path_factory.mktemp("tree") / "mcnode"
    shutil.copytree(package_root(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _flip(path: Path, offset: int = 100) -> bytes:
    data = path.read_bytes()
    changed = bytearray(data)
    changed[offset] ^= 0x01
    path.write_bytes(bytes(changed))
    return data


# -- measurement -------------------------------------------------------------------------


def test_the_measurement_is_deterministic_and_independent_of_the_location(tree: Path) -> None:
    here = measure()
    assert len(here) == 32
    assert measure() == here
    assert measure(tree) == here  # the same files elsewhere


@pytest.mark.parametrize(
    "file", ["enclave/checks.py", "binary.py", "__init__.py", "ledger/reads.py", "NATIVE"]
)
def test_one_changed_byte_of_a_measured_file_changes_it(tree: Path, file: str) -> None:
    path = next(tree.glob("_native*.so")) if file == "NATIVE" else tree / file
    assert path in {p for _, p in measured_modules(tree)}
    before = measure(tree)
    original = _flip(path, offset=path.stat().st_size // 2)
    try:
        assert measure(tree) != before
    finally:
        path.write_bytes(original)
    assert measure(tree) == before


def test_host_code_is_not_measured(tree: Path) -> None:
    names = {name for name, _ in measured_modules(tree)}
    assert not {n for n in names if n.split(".")[1:2] in (["node"], ["localnet"], ["wire"])}
    before = measure(tree)
    original = _flip(tree / "node" / "txrelay.py")
    try:
        assert measure(tree) == before
    finally:
        (tree / "node" / "txrelay.py").write_bytes(original)


def test_what_the_enclave_imports_is_measured(tree: Path) -> None:
    # Everything the entry module pulls in when the process starts...
    probe = (
        f"import sys, json, {ENTRY}; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'mcnode')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True)
    imported = set(json.loads(out.stdout))
    measured = {name for name, _ in measured_modules()}
    assert ENTRY in imported and "mcnode._native" in imported
    assert imported <= measured, imported - measured
    # ...and what a changed file would add, absolute or relative, at any depth of its code.
    checks = tree / "enclave" / "checks.py"
    original = checks.read_bytes()
    checks.write_bytes(original + b"\n\ndef later() -> None:\n    from ..fbas import model\n")
    try:
        added = {name for name, _ in measured_modules(tree)} - measured
    finally:
        checks.write_bytes(original)
    assert {"mcnode.fbas", "mcnode.fbas.model"} <= added


# -- sealing -----------------------------------------------------------------------------


def test_sealed_data_opens_only_under_the_same_secret_and_measurement() -> None:
    plaintext = b"the enclave's keys"
    sealed = seal(plaintext, SECRET, MEASUREMENT, SeededRandom(1))
    assert sealed.startswith(MAGIC + b"\x01") and len(sealed) == 7 + 12 + len(plaintext) + 16
    assert plaintext not in sealed
    assert unseal(sealed, SECRET, MEASUREMENT) == plaintext
    refused = [
        (sealed, SECRET, b"\x01" + MEASUREMENT[1:]),  # a modified enclave
        (sealed, bytes(reversed(SECRET)), MEASUREMENT),
        (sealed[:-1], SECRET, MEASUREMENT),
        (b"MCSEAL\x02" + sealed[7:], SECRET, MEASUREMENT),
        (b"NOSEAL\x01" + sealed[7:], SECRET, MEASUREMENT),
        (b"", SECRET, MEASUREMENT),
    ]
    for i in range(7, len(sealed)):
        flipped = bytearray(sealed)
        flipped[i] ^= 0x80
        refused.append((bytes(flipped), SECRET, MEASUREMENT))
    for data, secret, measurement in refused:
        with pytest.raises(SealError) as err:
            unseal(data, secret, measurement)
        assert "\n" not in str(err.value)


def test_keys_are_made_once_sealed_and_then_kept(tmp_path: Path) -> None:
    d = tmp_path / "enclave"
    keys = load_or_create(d, MEASUREMENT, SeededRandom(7))
    secret, sealed = d / SECRET_FILE, d / KEYS_FILE
    assert (secret.stat().st_mode & 0o777, sealed.stat().st_mode & 0o777) == (0o600, 0o600)
    assert d.stat().st_mode & 0o077 == 0
    raw = sealed.read_bytes()
    assert keys.identity_private not in raw and keys.block_signing_seed not in raw
    again = load_or_create(d, MEASUREMENT, SeededRandom(8))
    assert again == keys and sealed.read_bytes() == raw
    assert load_or_create(tmp_path / "other", MEASUREMENT, SeededRandom(9)) != keys
    text = repr(keys)
    assert keys.identity_private.hex() not in text and keys.block_signing_seed.hex() not in text


def test_keys_sealed_by_another_build_are_refused_with_what_to_do(tmp_path: Path) -> None:
    load_or_create(tmp_path, MEASUREMENT)
    with pytest.raises(SealError) as err:
        load_or_create(tmp_path, b"\x01" * 32)
    message = str(err.value)
    assert "\n" not in message and "does not unseal" in message and "remove" in message
    assert str(tmp_path / KEYS_FILE) in message


def test_a_secret_others_can_read_or_a_missing_one_is_refused(tmp_path: Path) -> None:
    load_or_create(tmp_path, MEASUREMENT)
    (tmp_path / SECRET_FILE).chmod(0o644)
    with pytest.raises(SealError, match="chmod 600"):
        load_or_create(tmp_path, MEASUREMENT)
    (tmp_path / SECRET_FILE).unlink()
    with pytest.raises(SealError, match="is missing"):
        load_or_create(tmp_path, MEASUREMENT)
    assert (tmp_path / KEYS_FILE).exists()  # never removed for the operator


def test_provision_makes_what_the_enclave_process_will_unseal(tmp_path: Path) -> None:
    identity, signer = provision(tmp_path)
    keys = load_or_create(tmp_path, measure())
    assert (keys.identity_public, keys.block_signer_public) == (identity, signer)
    assert provision(tmp_path) == (identity, signer)


def test_key_bytes_are_versioned() -> None:
    keys = EnclaveKeys(bytes(32), bytes(range(32)))
    assert EnclaveKeys.from_bytes(keys.to_bytes()) == keys
    assert keys.to_bytes()[0] == 1
    for bad in (b"\x02" + keys.to_bytes()[1:], keys.to_bytes()[:-1], keys.to_bytes() + b"\0"):
        with pytest.raises(ValueError):
            EnclaveKeys.from_bytes(bad)


def test_the_sealing_secret_is_not_the_files_mode_away_from_others(tmp_path: Path) -> None:
    """Created private even under a permissive umask."""
    old = os.umask(0)
    try:
        load_or_create(tmp_path / "k", MEASUREMENT)
    finally:
        os.umask(old)
    assert (tmp_path / "k" / SECRET_FILE).stat().st_mode & 0o077 == 0


def test_the_enclave_command_prints_its_measurement() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mcnode.enclave", "measure"], capture_output=True, check=True
    )
    assert out.stdout.decode().strip() == measure().hex()
