"""Whose block signatures a validator accepts (node/signers.py): its own enclave's
signers and its quorum members' enclaves', kept across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcnode.ledger.signers import read_signers_file
from mcnode.node.logs import NodeLog
from mcnode.node.signers import FILE, KEEP_PER_PEER, BlockSigners


def key(n: int) -> bytes:
    return bytes([n]) * 32


def make(d: Path, applied: list[frozenset[bytes]]) -> BlockSigners:
    return BlockSigners(d, ["a", "b"], applied.append, NodeLog("t"))


def test_own_and_quorum_members_signers_are_accepted_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    applied: list[frozenset[bytes]] = []
    s = make(tmp_path, applied)
    s.set_own(key(1))
    s.learn("a", key(2))
    s.learn("outsider", key(3))  # a configured peer outside our quorum set
    assert applied[-1] == {key(1), key(2)}
    assert s.status() == {"a": key(2).hex(), "outsider": key(3).hex()}
    s.set_own(key(4))  # our enclave took a new identity: blocks it signed before stay valid
    s.learn("a", key(5))
    assert applied[-1] == {key(1), key(2), key(4), key(5)}

    again: list[frozenset[bytes]] = []
    r = make(tmp_path, again)
    r.set_own(key(4))  # before any session is up, catch-up can check every one of them
    assert again[-1] == applied[-1]
    assert sorted(read_signers_file(tmp_path / FILE)) == sorted(applied[-1])


def test_each_history_is_bounded_and_relearning_a_key_moves_it_last(tmp_path: Path) -> None:
    applied: list[frozenset[bytes]] = []
    s = make(tmp_path, applied)
    for n in range(KEEP_PER_PEER + 3):
        s.learn("b", key(10 + n))
    assert len(applied[-1]) == KEEP_PER_PEER and key(10) not in applied[-1]
    s.learn("b", key(13))
    assert s.status()["b"] == key(13).hex()
    count = len(applied)
    s.learn("b", key(13))  # nothing new: no write, no log line
    assert len(applied) == count


def test_an_unusable_file_is_relearned_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILE).write_text('{"format": "mcnode-block-signers", "version": 1}')
    applied: list[frozenset[bytes]] = []
    s = make(tmp_path, applied)
    s.set_own(key(1))
    assert applied[-1] == {key(1)}
    assert "block signers file unusable" in caplog.text
    doc = json.loads((tmp_path / FILE).read_text())
    assert doc["own"] == [key(1).hex()] and doc["expected"] == [key(1).hex()]
