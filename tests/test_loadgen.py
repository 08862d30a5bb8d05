"""The load generator's parts without a network: its schedule and verdicts, the purse
that keeps two payments from spending one output, and a builder process."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from mcnode.client.keys import write_account_key
from mcnode.crypto import SeededRandom
from mcnode.ledger.origin import sample_accounts
from mcnode.localnet.builders import BuilderPool, BuildJob, Coin
from mcnode.localnet.load import FEE, LoadError, LoadGenerator
from mcnode.localnet.pace import Pace, Tally, judge
from mcnode.localnet.purse import Purse
from mcnode.transaction.fake_ledger import FakeLedger
from mcnode.transaction.mlsag import key_image
from mcnode.transaction.txout import Scanner, TxOut, create_output
from mcnode.transaction.validation import validate_tx

# -- the schedule --------------------------------------------------------------------------


def test_pace_is_due_at_the_rate_and_drops_what_is_over_a_second_behind() -> None:
    p = Pace(rate=10.0, start=100.0)
    assert p.due(99.0) == 0
    assert p.due(100.0) == 1
    assert p.due(101.0) == 11
    p.sent = 5
    assert p.owed(101.0) == 6
    assert p.drop_stale(101.0, "generator") == 0  # six owed: within a second's worth
    assert p.owed(105.0) == 46
    assert p.drop_stale(105.0, "generator") == 36  # keep 10 (one second), drop the rest
    assert (p.missed_generator, p.missed_network, p.owed(105.0)) == (36, 0, 10)
    assert p.drop_stale(106.0, "network") == 10
    assert p.missed_network == 10
    assert p.next_due() == 100.0 + (5 + 36 + 10) / 10  # the 52nd payment, due at 105.1 s


# -- verdicts --------------------------------------------------------------------------------
RATE = 50.0
KEPT = Tally(t=10.0, due=501, sent=500, submitted=500, accepted=500, committed=495, built=500)


def test_a_kept_rate_is_limited_by_nothing() -> None:
    v = judge(Tally(), KEPT, RATE)
    assert (v.limited_by, v.reason) == (None, None)


def test_nothing_built_when_due_is_the_generator() -> None:
    b = replace(KEPT, sent=200, submitted=200, short_generator_s=6.0, built=200,
                build_cpu_s=6.0, builders=1)  # fmt: skip
    v = judge(Tally(), b, RATE)
    assert v.limited_by == "generator"
    assert v.reason is not None
    assert "60% of due payments not sent" in v.reason
    assert "1 builder process made 20.0 payments/s, 30 ms of CPU each" in v.reason


def test_no_free_output_is_the_generator_and_says_so() -> None:
    b = replace(KEPT, sent=100, submitted=100, short_generator_s=8.0, short_no_coins_s=7.0)
    v = judge(Tally(), b, RATE)
    assert v.limited_by == "generator"
    assert v.reason is not None and "no spendable output free 70% of the time" in v.reason


def test_submitters_all_waiting_on_validators_is_the_network() -> None:
    b = replace(KEPT, sent=300, submitted=300, short_generator_s=0.5, short_network_s=4.0)
    v = judge(Tally(), b, RATE)
    assert v.limited_by == "network"
    assert v.reason is not None and "validators answered proposals slower" in v.reason


def test_refusals_for_capacity_are_the_network_even_at_full_rate() -> None:
    v = judge(Tally(), replace(KEPT, refused_capacity=40), RATE)
    assert v.limited_by == "network"
    assert v.reason is not None and "refused 40 of 500" in v.reason
    assert judge(Tally(), replace(KEPT, refused_capacity=1), RATE).limited_by is None


def test_payments_refused_as_invalid_are_the_generator_even_at_full_rate() -> None:
    v = judge(Tally(), replace(KEPT, refused_invalid=500, accepted=0, committed=0), RATE)
    assert v.limited_by == "generator"
    assert v.reason is not None and "refused 500 of 500 payments as invalid" in v.reason
    assert judge(Tally(), replace(KEPT, refused_invalid=1), RATE).limited_by is None


def test_commit_lag_is_the_network() -> None:
    """500 payments accepted in 10 s, 150 waiting on average: each waited 3 s (Little)."""
    v = judge(Tally(), replace(KEPT, in_flight=120, in_flight_s=1500.0), RATE)
    assert v.limited_by == "network"
    assert v.reason is not None and "waited 3.0 s on average" in v.reason
    # 10 waiting on average (0.2 s each) is a network keeping up.
    assert judge(Tally(), replace(KEPT, in_flight_s=100.0), RATE).limited_by is None


def test_the_live_window_judges_only_itself() -> None:
    """A generator that fell behind early and then kept up is fine in the last seconds."""
    early = replace(KEPT, t=5.0, due=251, sent=100, short_generator_s=3.0)
    late = replace(early, t=10.0, due=501, sent=350, submitted=350)
    assert judge(Tally(), late, RATE).limited_by == "generator"
    assert judge(early, late, RATE).limited_by is None


# -- the purse -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> tuple[list, list[TxOut], list[Coin]]:  # type: ignore[type-arg]
    rng = SeededRandom(7)
    accounts = sample_accounts(3, rng)
    outs, coins = [], []
    for i, a in enumerate(accounts):
        for v in (10**12, 2 * 10**12):
            tx_out = create_output(a.default_address, v, rng).tx_out
            owned = Scanner(a).try_open(tx_out)
            assert owned is not None
            outs.append(tx_out)
            coins.append(Coin(i, owned, key_image(owned.onetime_private)))
    return accounts, outs, coins


def test_a_coin_is_picked_once_until_released(world) -> None:  # type: ignore[no-untyped-def]
    accounts, outs, coins = world
    purse = Purse(accounts, random.Random(1), min_value=FEE + 2)
    purse.add_coins(coins, len(outs), FakeLedger())
    assert purse.free == 6
    picked = [purse.pick() for _ in range(6)]
    assert purse.pick() is None  # every coin is promised to a payment
    assert len({c.key_image for c in picked if c is not None}) == 6
    first = picked[0]
    assert first is not None
    purse.release([first.key_image])
    assert purse.free == 1 and purse.pick() == first
    purse.spent([first.key_image])  # committed: gone for good, even when released
    purse.release([first.key_image])
    assert purse.free == 0
    assert purse.balance(FakeLedger()) == sum(c.value for c in coins) - first.value


def test_outputs_are_spendable_only_once_in_a_block_and_scanned_if_unexpected(world) -> None:  # type: ignore[no-untyped-def]
    accounts, outs, coins = world
    purse = Purse(accounts, random.Random(1), min_value=FEE + 2)
    # Found by the parent's own scan (nothing expected): who owns what is right.
    assert purse.add_outputs(0, outs) == len(outs)
    assert purse.free == len(outs) and purse.next_index == len(outs)
    assert purse.add_outputs(0, outs) == 0  # each output is looked at once
    # A dust output is owned (counted in the balance) but never picked.
    dust = create_output(accounts[0].default_address, FEE, SeededRandom(3)).tx_out
    purse.add_outputs(len(outs), [dust])
    assert purse.free == len(outs)
    assert purse.balance(FakeLedger()) == sum(c.value for c in coins) + FEE


def test_no_builder_or_no_accounts_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one builder"):
        BuilderPool([], 0)
    with pytest.raises(LoadError, match="need at least two sample accounts"):
        LoadGenerator(tmp_path, {"nodes": []})


def test_a_builder_process_makes_a_valid_payment_and_opens_its_outputs(
    tmp_path: Path,
    world,  # type: ignore[no-untyped-def]
) -> None:
    accounts, _, _ = world
    files = []
    for i, a in enumerate(accounts):
        files.append(tmp_path / f"account-{i:04d}.json")
        write_account_key(files[-1], a)
    rng = SeededRandom(11)
    led = FakeLedger()
    for _ in range(20):
        led.mint(accounts[2].default_address, 5, rng)  # decoys
    coin_out = led.mint(accounts[0].default_address, 10**12, rng)
    owned = Scanner(accounts[0]).try_open(coin_out)
    assert owned is not None
    creds = led.input_credentials(owned, rng)
    pool = BuilderPool(files, 1)
    try:
        job = BuildJob(
            sender=0,
            recipient=1,
            amount=12345,
            fee=FEE,
            tombstone=50,
            ring_blocks=1,
            credentials=creds,
        )
        payment = pool.build(job).result(timeout=60)
        found, _ = pool.scan(led.tx_outs)
    finally:
        pool.close()
    from mcnode.transaction.tx import Tx

    tx = Tx.from_bytes(payment.tx_bytes)
    validate_tx(tx, current_block=1, root=led.root())
    assert payment.key_images == tx.key_images == (key_image(owned.onetime_private),)
    assert (payment.tombstone, payment.ring_blocks) == (50, 1)
    assert {(c.account, c.value) for c in payment.creates} == {
        (1, 12345),
        (0, 10**12 - 12345 - FEE),
    }
    assert {c.public_key for c in payment.creates} == set(tx.output_public_keys)
    # The scan found exactly the outputs each account owns in the ledger.
    assert sorted((c.account, c.value) for c in found) == [(0, 10**12)] + [(2, 5)] * 20


def _children(pid: int) -> list[int]:
    """PIDs of the children of `pid` (Linux /proc), by any of its threads."""
    out: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            out += [int(c) for c in listing.read_text().split()]
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_builder_outlives_a_killed_generator() -> None:
    """SIGKILL of the process that owns a builder pool (`mcnode localnet`, `mcnode load`)
    takes its builder processes down too."""
    code = "from mcnode.localnet.builders import BuilderPool\nBuilderPool([], 2).warm()\ninput()"
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while len(_children(p.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _children(p.pid)
        assert len(workers) >= 2  # the builders (and multiprocessing's resource tracker)
        p.kill()
        p.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [w for w in workers if _alive(w)] == []
    finally:
        p.kill()
