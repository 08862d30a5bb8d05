"""A payment's fate as `mcnode client send` and `mcnode client status` report it: committed
in block N, not yet (it may still commit: never "failed" while it can), or never.

The network tests share one 4-validator network (each validator needs 2 of its 3 peers):
a payment sent while 2 validators are down is reported as pending, then as committed once
they are back; a payment whose tombstone block passed, or whose input another payment
spent, can no longer commit."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner, Result

from mcnode.cli import main
from mcnode.client.keys import read_account_key
from mcnode.client.payments import (
    EXIT_COMMITTED,
    EXIT_FAILED,
    EXIT_PENDING,
    Fate,
    PaymentWatch,
    Receipt,
    ReceiptError,
    read_receipt,
    write_receipt,
)
from mcnode.client.wallet import Wallet
from mcnode.crypto import SeededRandom
from mcnode.ledger.db import LedgerDB
from mcnode.localnet.procs import Cluster
from netutil import make_net

# -- the receipt and the judgement, without a network ------------------------------------


def _receipt(tombstone: int = 10, first: int = 3) -> Receipt:
    return Receipt(
        tx_hash=b"\x01" * 32,
        key_images=(b"\x02" * 32,),
        output_public_keys=(b"\x03" * 32, b"\x04" * 32),
        tombstone_block=tombstone,
        first_block=first,
        parent_block_id=b"\x05" * 32,
        node="127.0.0.1:7101",
        to="address",
        amount=777,
        fee=400_000_000,
    )


def _block(index: int, outputs: tuple[bytes, ...] = (b"\x09" * 32,), images: tuple = ()):  # type: ignore[no-untyped-def, type-arg]
    """What the watch reads of a block: its index, output keys and key images."""
    contents = SimpleNamespace(
        outputs=[SimpleNamespace(public_key=k) for k in outputs], key_images=images
    )
    return SimpleNamespace(block=SimpleNamespace(index=index), contents=contents)


def test_receipt_round_trips_privately_and_refuses_garbage(tmp_path: Path) -> None:
    path = tmp_path / "payments" / "r.json"
    write_receipt(path, _receipt())
    assert read_receipt(path) == _receipt()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it names the recipient and amount
    doc = json.loads(path.read_text())
    del doc["tombstone_block"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ReceiptError, match="missing tombstone_block"):
        read_receipt(path)
    doc["tombstone_block"] = "10"
    path.write_text(json.dumps(doc))
    with pytest.raises(ReceiptError, match="malformed"):
        read_receipt(path)


def test_pending_until_the_last_possible_block_then_failed() -> None:
    r = _receipt(tombstone=10, first=3)
    w = PaymentWatch(r)
    w.see([_block(i) for i in range(0, 9)])  # blocks before `first` are skipped
    assert w.status(9).fate is Fate.PENDING  # block 9 (= tombstone - 1) may still hold it
    assert "any block up to 9 (its tombstone block is 10)" in w.status(9).describe(r)
    w.see([_block(9)])
    s = w.status(10)
    assert (s.fate, s.fate.exit_code) == (Fate.FAILED, EXIT_FAILED)
    assert "can no longer commit" in s.describe(r)
    with pytest.raises(ValueError, match="not seen"):
        PaymentWatch(r).status(5)


def test_committed_in_the_block_holding_its_outputs_even_after_the_tombstone() -> None:
    r = _receipt(tombstone=10, first=3)
    w = PaymentWatch(r)
    w.see([_block(3), _block(4, outputs=(b"\x04" * 32, b"\x08" * 32), images=(b"\x02" * 32,))])
    w.see([_block(i) for i in range(5, 12)])
    s = w.status(12)
    assert (s.fate, s.block, s.fate.exit_code) == (Fate.COMMITTED, 4, EXIT_COMMITTED)
    assert s.describe(r) == "committed in block 4 (the ledger holds 12 blocks, 0 to 11)"


def test_its_key_image_spent_by_another_payment_fails_it_at_once() -> None:
    r = _receipt(tombstone=100, first=3)
    w = PaymentWatch(r)
    w.see([_block(3, images=(b"\x02" * 32,))])
    s = w.status(4)
    assert (s.fate, s.block, s.conflict) == (Fate.FAILED, 3, b"\x02" * 32)
    assert "block 3 spends its input" in s.describe(r)


# -- on a real network -----------------------------------------------------------------


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Cluster]]:
    d = tmp_path_factory.mktemp("payments")
    cluster = make_net(d)
    try:
        cluster.start()
        yield d, cluster
    finally:
        cluster.close()


def _account(d: Path, i: int) -> Path:
    return d / "accounts" / f"account-{i:04d}.json"


def _address(d: Path, i: int) -> str:
    return read_account_key(_account(d, i)).default_address.to_string()


def _send(d: Path, cluster: Cluster, payer: int, receipt: Path, *extra: str) -> Result:
    args = ["client", "send", "--keys", str(_account(d, payer)), "--to", _address(d, 7)]
    args += ["--amount", "777", "--node", cluster.node("node0").client]
    args += ["--network", str(d / "network.json"), "--receipt", str(receipt), *extra]
    return CliRunner().invoke(main, args)


def _status(receipt: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["client", "status", str(receipt), *extra])


def _block_of(d: Path, receipt: Path) -> int | None:
    with LedgerDB(d / "node0" / "ledger", readonly=True) as led:
        return led.get_key_image_block(read_receipt(receipt).key_images[0])


def test_committed_payment_names_its_block_and_status_agrees(
    net: tuple[Path, Cluster], tmp_path: Path
) -> None:
    d, cluster = net
    receipt = tmp_path / "paid.json"
    sent = _send(d, cluster, 0, receipt)
    assert sent.exit_code == EXIT_COMMITTED, sent.output
    block = _block_of(d, receipt)
    assert block is not None and f"committed in block {block} (" in sent.stdout
    checked = _status(receipt)
    assert checked.exit_code == EXIT_COMMITTED, checked.output
    assert f"committed in block {block} (the ledger holds" in checked.stdout
    as_json = json.loads(_status(receipt, "--json").stdout)
    assert (as_json["fate"], as_json["block"]) == ("committed", block)


def test_payment_sent_without_quorum_may_still_commit_and_then_does(
    net: tuple[Path, Cluster], tmp_path: Path
) -> None:
    d, cluster = net
    for name in ("node2", "node3"):  # node0 and node1 alone are no quorum: 3 of 4 needed
        cluster.node(name).stop()
    receipt = tmp_path / "pending.json"
    sent = _send(d, cluster, 1, receipt, "--wait", "2")
    assert sent.exit_code == EXIT_PENDING, sent.output
    assert "not committed yet" in sent.stdout and "may still commit" in sent.stdout
    assert f"check it later with: mcnode client status {receipt} --node " in sent.stdout
    assert "can no longer" not in sent.output
    checked = _status(receipt)
    assert checked.exit_code == EXIT_PENDING and "may still commit" in checked.stdout
    for name in ("node2", "node3"):
        cluster.node(name).start()
    deadline = time.monotonic() + 60
    while (checked := _status(receipt)).exit_code == EXIT_PENDING:
        assert time.monotonic() < deadline, "still pending 60 s after quorum came back"
        time.sleep(0.5)
    assert checked.exit_code == EXIT_COMMITTED, checked.output
    block = _block_of(d, receipt)
    assert block is not None and f"committed in block {block} (" in checked.stdout
    for name in ("node2", "node3"):
        cluster.node(name).wait_ready()


def _unsent(d: Path, payer: int, path: Path, tombstone_window: int) -> Receipt:
    """The receipt of a payment built against node0's ledger and never submitted (as if
    the validator it went to had crashed before relaying it)."""
    wallet = Wallet(read_account_key(_account(d, payer)))
    with LedgerDB(d / "node0" / "ledger", readonly=True) as led:
        tx, _ = wallet.build_payment(
            led,
            read_account_key(_account(d, 7)).default_address,
            777,
            SeededRandom(payer),
            tombstone_window=tombstone_window,
        )
        first = led.num_blocks()
        receipt = Receipt(
            tx.tx_hash(),
            tx.key_images,
            tx.output_public_keys,
            tx.prefix.tombstone_block,
            first,
            led.get_block(first - 1).id,
            "unused",
            "to",
            777,
            400_000_000,
        )
    write_receipt(path, receipt)
    return receipt


def test_payment_past_its_tombstone_or_outspent_can_no_longer_commit(
    net: tuple[Path, Cluster], tmp_path: Path
) -> None:
    d, cluster = net
    node = ("--node", cluster.node("node0").client)
    expiring = tmp_path / "expiring.json"
    r = _unsent(d, 2, expiring, tombstone_window=1)  # only the next block may hold it
    # The wallet spends its largest output first and all are equal: the same coin as the
    # payment sent below, whose block then spends this one's input.
    outspent = tmp_path / "outspent.json"
    _unsent(d, 3, outspent, tombstone_window=100)
    pending = _status(expiring, *node)
    assert pending.exit_code == EXIT_PENDING, pending.output
    assert f"any block up to {r.last_possible_block} " in pending.stdout
    sent = _send(d, cluster, 3, tmp_path / "other.json")
    assert sent.exit_code == EXIT_COMMITTED, sent.output
    failed = _status(expiring, *node)
    assert failed.exit_code == EXIT_FAILED, failed.output
    assert "can no longer commit" in failed.stdout and "it paid nothing" in failed.stdout
    assert f"tombstone block {r.tombstone_block}" in failed.stdout
    spent = _status(outspent, *node)
    assert spent.exit_code == EXIT_FAILED, spent.output
    assert f"block {_block_of(d, tmp_path / 'other.json')} spends its input" in spent.stdout


def test_status_of_an_unreadable_receipt_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("{}")
    os.chmod(path, 0o600)
    r = _status(path)
    assert r.exit_code == 1 and "not a version 1 mcnode-payment-receipt file" in r.stderr
