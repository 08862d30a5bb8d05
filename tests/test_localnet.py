"""`mcnode localnet` end to end, chaos, double spends, and the client tools."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mcnode.client.keys import read_account_key
from mcnode.client.rings import input_credentials
from mcnode.crypto import SeededRandom
from mcnode.ledger.db import LedgerDB
from mcnode.transaction.builder import TransactionBuilder
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE
from netutil import block_ids, make_net, submit, wallets

EXPECTED_REJECTIONS = {"OVER_CAPACITY", "NOT_SERVING"}


def run_localnet(d: Path, *args: str, timeout: float = 240) -> dict:  # type: ignore[type-arg]
    summary = d / "summary.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcnode",
            "localnet",
            "--dir",
            str(d),
            "--no-live",
            "--json-summary",
            str(summary),
            "--seed",
            "1",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return json.loads(summary.read_text())  # type: ignore[no-any-return]


def check_summary(s: dict) -> None:  # type: ignore[type-arg]
    for key in (
        "submitted_txs",
        "committed_txs",
        "rejected_txs",
        "tx_per_s",
        "latency_ms",
        "nodes",
    ):
        assert key in s
    assert s["committed_txs"] > 0
    assert set(s["latency_ms"]) >= {"p50", "p99"}
    assert len(s["nodes"]) == 4
    assert len({n["last_block_id"] for n in s["nodes"]}) == 1, s["nodes"]
    assert len({n["block_height"] for n in s["nodes"]}) == 1, s["nodes"]
    assert set(s["rejected_txs"]) <= EXPECTED_REJECTIONS, s["rejected_txs"]
    assert s["supply_conserved"] is True
    cpu = s["cpu"]
    assert cpu["validators"] == 4 and cpu["blocks"] > 0, cpu
    if s["kills"]:  # a killed validator took its CPU count with it: no figure, and why
        assert cpu["validators_ms_per_block"] is None, cpu
        assert cpu["why_none"] == "a validator restarted during the run", cpu
    else:
        # Every block costs each validator a few ms at least (signatures, SCP, a ledger
        # write), and the hosts are part of the validators.
        assert 4 < cpu["validators_ms_per_block"] < 10_000, cpu
        assert 0 < cpu["hosts_ms_per_block"] < cpu["validators_ms_per_block"], cpu


@pytest.fixture(scope="module")
def net_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One network for the runs that need no fresh one (the first run makes it)."""
    return tmp_path_factory.mktemp("localnet") / "net"


def test_localnet_runs_payments_and_agrees(net_dir: Path) -> None:
    d = net_dir
    s = run_localnet(d, "--duration", "10", "--tx-rate", "5")
    check_summary(s)
    total = json.loads((d / "network.json").read_text())["total_supply"]
    assert s["opening_balance"] == total  # a new network: the accounts hold all of it
    # The same network again: it picks up where it was, and its books still balance (the
    # accounts now hold less than the supply, by the first run's fees).
    again = run_localnet(d, "--duration", "5", "--tx-rate", "5")
    check_summary(again)
    assert again["opening_balance"] == total - s["fees_paid"]
    assert again["blocks"] > s["blocks"]
    assert s["failed_submissions"] == {}  # nothing was down: every submission got an answer
    assert s["committed_txs"] == s["submitted_txs"] - sum(s["rejected_txs"].values())
    # The generator kept its word, and says so: built ahead, sent at the rate asked.
    load = s["load"]
    assert load["requested_tx_s"] == 5
    assert abs(load["submitted_tx_s"] - 5) <= 0.5, load
    assert load["limited_by"] is None and load["reason"] is None, load
    assert load["prebuild"]["built"] >= 5 * 10, load
    # Attestation is on by default: every validator's enclave runs this build, in
    # simulation, and every one of them attested every peer's enclave.
    from mcnode.enclave.measure import measure

    for n in s["nodes"]:
        assert (n["attestation"], n["mrenclave"]) == ("sim", measure().hex()), n
        assert n["peers_attested"] == n["peers"] == 3, n


def test_a_generator_that_cannot_keep_the_rate_says_so(net_dir: Path) -> None:
    """One builder process and nothing built ahead cannot make 60 payments a second on
    this machine (proving one is ~28 ms of a core, more on a busy one): the summary
    says the generator, not the network, was the limit, and how far it fell short."""
    s = run_localnet(
        net_dir, "--duration", "4", "--tx-rate", "60", "--builders", "1", "--prebuild", "0"
    )
    check_summary(s)
    load = s["load"]
    assert load["requested_tx_s"] == 60 and load["builders"] == 1
    assert load["prebuild"]["built"] == 0
    assert 0 < load["submitted_tx_s"] < 0.9 * 60, load
    assert load["limited_by"] == "generator", load
    assert "1 builder process made" in load["reason"], load
    assert load["missed"]["generator"] > 0 and load["short_s"]["generator"] > 1.0, load
    # What was sent was real: every submission committed, supply conserved (check_summary).
    assert s["committed_txs"] == s["submitted_txs"] - sum(s["rejected_txs"].values())


def test_localnet_chaos_no_fork_and_nothing_committed_is_lost(tmp_path: Path) -> None:
    d = tmp_path / "net"
    # Not about the generator: a few payments built ahead, the rest built as it goes.
    s = run_localnet(
        d, "--duration", "21", "--tx-rate", "5", "--kill-random", "4", "--prebuild", "20"
    )
    check_summary(s)
    assert s["kills"] >= 3
    # Failed submissions only ever hit a node that was down at the time.
    assert set(s["failed_submissions"]) <= {"NODE_UNAVAILABLE"}
    # Every block the load generator saw (and counted commits from) is in every validator's
    # ledger, at the same height with the same id: nothing committed was lost, no fork.
    with LedgerDB(d / "loadgen" / "ledger", readonly=True) as led:
        seen = [led.get_block(i).id for i in range(led.num_blocks())]
    for node in ("node0", "node1", "node2", "node3"):
        ids = block_ids(d, node)
        assert ids[: len(seen)] == seen, node
        assert len(ids) == s["nodes"][0]["block_height"]


def test_double_spend_to_two_nodes_commits_exactly_once(tmp_path: Path) -> None:
    cluster = make_net(tmp_path)
    try:
        ws = wallets(tmp_path, 3)
        rng = SeededRandom(5)
        with LedgerDB(tmp_path / "node0" / "ledger", readonly=True) as led:
            coin = ws[0].unspent(led)[0]
            txs = []
            for to in (ws[1], ws[2]):
                b = TransactionBuilder(ws[0].account, fee=DEFAULT_MINIMUM_FEE, tombstone_block=50)
                b.add_input(input_credentials(led, coin, rng))
                b.add_output(to.account.default_address, 1000)
                txs.append(b.build(rng))
        assert txs[0].key_images == txs[1].key_images
        cluster.start()
        results: dict[int, str] = {}

        def go(i: int) -> None:
            results[i] = submit(cluster, f"node{i}", txs[i]).result

        threads = [threading.Thread(target=go, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Each node may accept its copy (neither is spent yet) or refuse the second.
        assert set(results.values()) <= {"OK", "KEY_IMAGE_ALREADY_SPENT"}
        # Every validator gets the coin's spend: in the slot itself, or (one that missed
        # the slot, as one still starting can) by SCP's replies or catch-up, which asks
        # quiet peers their height after `HEIGHT_POLL` s. Then no second block may follow.
        deadline = time.monotonic() + 60
        image = txs[0].key_images[0]
        waiting = ["node0", "node1", "node2", "node3"]
        while waiting and time.monotonic() < deadline:
            with LedgerDB(tmp_path / waiting[0] / "ledger", readonly=True) as led:
                if led.contains_key_image(image):
                    waiting.pop(0)
                    continue
            time.sleep(0.2)
        assert not waiting, f"{waiting} never got the spend"
        time.sleep(2)  # give a second (wrong) block every chance to appear
        for node in ("node0", "node1", "node2", "node3"):
            with LedgerDB(tmp_path / node / "ledger", readonly=True) as led:
                landed = [
                    all(led.contains_output_public_key(k) for k in tx.output_public_keys)
                    for tx in txs
                ]
                assert landed.count(True) == 1, (node, landed)
        _client_tools(tmp_path, cluster)
    finally:
        cluster.close()


def _client_tools(d: Path, cluster) -> None:  # type: ignore[no-untyped-def]
    def mc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mcnode", "client", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    alice, bob = d / "accounts" / "account-0005.json", d / "accounts" / "account-0006.json"
    node = cluster.node("node3").client
    bob_addr = mc("address", "--keys", str(bob)).stdout.strip()
    assert bob_addr == read_account_key(bob).default_address.to_string()
    before = int(mc("balance", "--keys", str(bob), "--node", node).stdout.split()[0])
    net = ("--network", str(d / "network.json"))
    sent = mc(
        "send", "--keys", str(alice), "--to", bob_addr, "--amount", "777", "--node", node, *net
    )
    assert sent.returncode == 0, sent.stderr
    assert "committed in block" in sent.stdout
    after = int(mc("balance", "--keys", str(bob), "--node", node).stdout.split()[0])
    assert after == before + 777
    poor = d / "accounts" / "account-0007.json"
    broke = mc(
        "send", "--keys", str(poor), "--to", bob_addr, "--amount", str(10**15), "--node", node,
        *net,
    )  # fmt: skip
    assert broke.returncode != 0 and "insufficient funds" in broke.stderr


def _validators_of(d: Path) -> list[int]:
    """PIDs of `mcnode run` processes started for the network in `d`."""
    import os

    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b" run --config " in cmd and str(d).encode() in cmd:
            pids.append(int(entry))
    return pids


def test_no_validator_outlives_a_killed_localnet(tmp_path: Path) -> None:
    """Even SIGKILL of `mcnode localnet` takes its validators down (no orphans)."""
    import signal

    d = tmp_path / "net"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcnode",
            "localnet",
            "--dir",
            str(d),
            "--no-live",
            "--duration",
            "120",
            "--tx-rate",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while len(_validators_of(d)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_validators_of(d)) == 4
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)
        deadline = time.monotonic() + 20
        while _validators_of(d) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _validators_of(d) == []
    finally:
        p.kill()
        for pid in _validators_of(d):
            import os

            os.kill(pid, signal.SIGKILL)
