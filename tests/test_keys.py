"""Key files: an account's (client/keys.py) and a validator's node key (node/keys.py). Round
trip, 0600, atomic replace, refusal of bad or exposed files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcnode.cli import main
from mcnode.client.keys import KeyFileError, read_account_key, write_account_key
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.node.keys import NodeKeyError, read_node_key, write_node_key
from mcnode.transaction import AccountKey, PublicAddress


def test_round_trip_with_mode_0600_seed_51(tmp_path: Path) -> None:
    account = AccountKey.random(SeededRandom(51))
    path = tmp_path / "alice.key"
    write_account_key(path, account)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_account_key(path) == account
    assert account.default_address.to_string() in path.read_text()


def test_rewrite_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_account_key(path, AccountKey.random(SeededRandom(52)))
    second = AccountKey.random(SeededRandom(53))
    write_account_key(path, second)
    assert read_account_key(path) == second
    assert os.listdir(tmp_path) == ["k"]


def test_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "k"
    write_account_key(path, AccountKey.random(SeededRandom(54)))
    path.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        read_account_key(path)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b'{"format": "other", "version": 1}',
        b'{"format": "mcnode-node-key", "version": 1, "ed25519_private": ""}',
        b"{}",
        b"x" * 5000,
        b'{"format": "mcnode-account-key", "version": 1, "view_private": "zz",'
        b' "spend_private": ""}',
    ],
)
def test_refuses_malformed_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError):
        read_account_key(path)


def test_missing_file_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot open"):
        read_account_key(tmp_path / "absent")


def test_node_key_round_trip_with_mode_0600_seed_55(tmp_path: Path) -> None:
    private, _ = ed25519_keypair(SeededRandom(55))
    path = tmp_path / "node.key"
    write_node_key(path, private)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_node_key(path) == private
    assert os.listdir(tmp_path) == ["node.key"]
    with pytest.raises(NodeKeyError, match="32 bytes"):
        write_node_key(path, private[:31])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "malformed"),
        (b'{"format": "mcnode-account-key", "version": 1}', "not a version 1 mcnode-node-key"),
        (b'{"format": "mcnode-node-key", "version": 1, "ed25519_private": "00"}', "not 32"),
        (b'{"format": "mcnode-node-key", "version": 1}', "malformed"),
    ],
)
def test_node_key_refuses_malformed_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(NodeKeyError, match=message):
        read_node_key(path)


def test_node_key_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    write_node_key(path, ed25519_keypair(SeededRandom(56))[0])
    path.chmod(0o640)
    with pytest.raises(NodeKeyError, match="chmod 600"):
        read_node_key(path)
    with pytest.raises(NodeKeyError, match="cannot open"):
        read_node_key(tmp_path / "absent")


def test_client_new_then_address(tmp_path: Path) -> None:
    path = tmp_path / "w.key"
    runner = CliRunner()
    made = runner.invoke(main, ["client", "new", str(path)])
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    shown = runner.invoke(main, ["client", "address", "--keys", str(path)])
    assert shown.output == made.output
    assert PublicAddress.from_string(shown.output.strip()) == read_account_key(path).default_address
    again = runner.invoke(main, ["client", "new", str(path)])
    assert again.exit_code != 0 and "exists" in again.output
    replaced = runner.invoke(main, ["client", "new", "--force", str(path)])
    assert replaced.exit_code == 0 and replaced.output != made.output
    change = runner.invoke(main, ["client", "address", "--keys", str(path), "--subaddress", "1"])
    assert change.exit_code == 0 and change.output != replaced.output
    assert PublicAddress.from_string(change.output.strip()) == read_account_key(path).subaddress(1)
    path.chmod(0o644)
    refused = runner.invoke(main, ["client", "address", "--keys", str(path)])
    assert refused.exit_code == 1 and "chmod 600" in refused.output
    unwritable = runner.invoke(main, ["client", "new", str(tmp_path / "absent" / "k")])
    assert unwritable.exit_code == 1 and "cannot write" in unwritable.output
