"""Local network benchmarks: 4 validators (processes) on this machine, real payments.

    python bench/bench_localnet.py [--txs 600] [--latency-seconds 30] [--submitters 8]

1. Max committed tx/s: 1-in/2-out payments, built beforehand (so building does not compete
   with the validators for the 2 cores), submitted as fast as the validators take them
   (`--submitters` wallets per validator, each waiting for its answers before the next);
   committed tx/s from the first proposal to the last commit, and each validator's CPU
   per committed tx over that run (host and enclave; the wallets' attested sessions are
   made before it starts). All wallets share 127.0.0.1, one source to a validator's gate:
   a proposal it turns away is asked again, and counted. Eight wallets per validator by
   default: a maximum needs more load offered than the validators take, as a network's
   many clients offer it. With one (`--submitters 1`, the figure of sessions before
   2026-12-02's thirteenth) the load is four sequential clients: every client proposal
   reaches its enclave alone, so its range proof is checked alone (~1.35 ms against
   ~0.45 in a batch), and on this machine that load commits ~2/3 of what eight do at
   ~1.5x the CPU per tx (bench/RESULTS.md).
2. Commit latency at 10 tx/s (submit -> key image seen in a block), minimum block interval
   0: p50 and p99, with prebuilt txs submitted on a steady schedule.
3. Checks alone: the CPU ms per tx of decoding and checking the burst's first 128 txs
   as an enclave does (batches of 32, one thread), before the validators start: the
   floor of the CPU per committed tx above, on this machine at this hour.
4. Consensus messages handled per second per validator, from its Prometheus counters,
   during run 1, and how the messages that named txs a validator lacked got them
   (relayed while they waited, fetched, or still missing after the fetch).
Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from mcnode import _native
from mcnode.client.keys import read_account_key
from mcnode.client.node_client import ClientError, NodeClient
from mcnode.client.rings import input_credentials
from mcnode.client.trust import read_network_trust
from mcnode.client.wallet import Wallet
from mcnode.crypto import SeededRandom
from mcnode.enclave.checks import check_new_txs
from mcnode.ledger.db import LedgerDB
from mcnode.localnet.init import init_network
from mcnode.localnet.ledgerwatch import LedgerHeights
from mcnode.localnet.procs import Cluster, cpu_seconds
from mcnode.transaction.builder import TransactionBuilder
from mcnode.transaction.tx import Tx
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE

_OP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def prebuild(d: Path, count: int) -> list[Tx]:
    """`count` independent 1-in/2-out payments, each spending its own origin output."""
    accts = sorted((d / "accounts").glob("account-*.json"))
    wallets = [Wallet(read_account_key(p)) for p in accts]
    rng = SeededRandom(11)
    txs: list[Tx] = []
    with LedgerDB(d / "node0" / "ledger", readonly=True) as led:
        for i, w in enumerate(wallets):
            to = wallets[(i + 1) % len(wallets)].account.default_address
            for coin in w.unspent(led):
                if len(txs) >= count:
                    return txs
                b = TransactionBuilder(w.account, fee=DEFAULT_MINIMUM_FEE, tombstone_block=10_000)
                b.add_input(input_credentials(led, coin, rng))
                b.add_output(to, coin.value // 2)
                txs.append(b.build(rng))
    return txs


def checks_alone(d: Path, txs: list[Tx], batch: int = 32) -> float:
    """CPU ms per tx of what an enclave does to check new txs that come together (decode,
    `check_new_txs` in batches of `batch`, on one thread), timed here before the
    validators start. The part of each validator's CPU per committed tx that no change
    outside the checks can remove, on this machine in this hour: the speed of the same
    curve arithmetic has differed ~2x between sessions on this 2-core VM
    (bench/RESULTS.md), so a run's CPU per tx is read against its own figure."""
    with LedgerDB(d / "node0" / "ledger", readonly=True) as led:
        blobs = [tx.to_bytes() for tx in txs]
        start = time.process_time()
        for i in range(0, len(blobs), batch):
            chunk = [Tx.from_bytes(b) for b in blobs[i : i + batch]]
            errors = check_new_txs(
                chunk, led, block_index=led.num_blocks(), minimum_fee=DEFAULT_MINIMUM_FEE
            )
            if any(e is not None for e in errors):
                raise RuntimeError(f"a prebuilt tx does not pass the checks: {errors}")
        spent = time.process_time() - start
    return 1000 * spent / len(txs)


def cpu_all(cluster: Cluster) -> dict[str, float]:
    out = {n.name: cpu_seconds(n.proc.pid) for n in cluster.nodes if n.proc is not None}
    out["bench"] = cpu_seconds(os.getpid(), children=False)
    return out


def cpu_hosts(cluster: Cluster) -> float:
    """CPU seconds of the validators' host processes alone (their enclaves left out)."""
    return sum(cpu_seconds(n.proc.pid, children=False) for n in cluster.nodes if n.proc)


def slot_times(d: Path) -> dict[str, list[float]]:
    """Each validator's slot durations (ms), from its `block appended ... ms=` log lines;
    block 1 left out (its slot clock starts when the validator does)."""
    out: dict[str, list[float]] = {}
    for log in sorted(d.glob("node*/node.log")):
        out[log.parent.name] = [
            float(line.rsplit("ms=", 1)[1].split()[0])
            for line in log.read_text().splitlines()
            if "block appended" in line and "ms=" in line and " block=1 " not in line
        ]
    return out


def scrape(cluster: Cluster, series: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """node -> {series: value} for each of `series` (a metric name with its labels, as
    the exposition writes it) that node's /metrics has."""
    out: dict[str, dict[str, float]] = {}
    for n in cluster.nodes:
        text = _OP.open(f"http://{n.admin}/metrics", timeout=3).read().decode()
        values = (line.rsplit(" ", 1) for line in text.splitlines() if " " in line)
        out[n.name] = {k: float(v) for k, v in values if k in series}
    return out


def msgs_in(cluster: Cluster) -> dict[str, float]:
    key = "mcnode_consensus_msgs_in_total"
    return {k: v[key] for k, v in scrape(cluster, (key,)).items()}


#: How messages that named txs we lacked got them (`host._fetch_then_deliver`).
TX_WAITS = tuple(
    f'mcnode_consensus_msg_tx_wait_seconds_count{{outcome="{o}"}}'
    for o in ("relayed", "fetched", "missing")
)


def tx_waits(cluster: Cluster) -> dict[str, dict[str, float]]:
    return scrape(cluster, TX_WAITS)


class Watcher:
    """Timestamps key images as they land in node0's ledger (`ledgerwatch.LedgerHeights`:
    woken by each write to the ledger's file, read-only), so that the bench neither spends
    the validators' cores on asking nor adds a polling delay to the latency it measures."""

    def __init__(self, d: Path) -> None:
        self.seen: dict[bytes, float] = {}
        self.heights = LedgerHeights({"node0": d / "node0" / "ledger"}, on_blocks=self._landed)
        self.heights.start()

    @property
    def blocks(self) -> int:  # node0's ledger height
        return self.heights.height

    def _landed(self, name: str, led: LedgerDB, old: int, new: int, at: float) -> None:
        for i in range(old, new):
            for ki in led.get_block_contents(i).key_images:
                self.seen[ki] = at

    def close(self) -> None:
        self.heights.close()


#: Proposals a validator's gate turned away (RESOURCE_EXHAUSTED) and the bench asked again:
#: every wallet here comes from 127.0.0.1, one source to the gate (50 tx/s after a burst
#: of 200 per validator, `RateLimits.propose_tx`), where real wallets are many.
SLOWED: list[int] = []


def propose(client: NodeClient, tx: Tx) -> str:
    """Propose as a wallet does: a validator that answers NOT_SERVING (it is catching up
    a slot or two after falling behind in a burst), or whose gate says slow down, is asked
    again, for up to 10 s."""
    deadline = time.monotonic() + 10.0
    while True:
        try:
            result = client.propose_tx(tx.to_bytes()).result
        except ClientError as e:
            if "RESOURCE_EXHAUSTED" not in str(e) or time.monotonic() > deadline:
                raise
            SLOWED.append(1)
            result = "NOT_SERVING"
        if result != "NOT_SERVING" or time.monotonic() > deadline:
            return str(result)
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--txs", type=int, default=600)
    ap.add_argument("--latency-seconds", type=float, default=30.0)
    ap.add_argument("--keep", type=Path, help="run in this (new) directory and keep it")
    ap.add_argument("--log-level", default="info", help="the validators' (debug: SCP traces)")
    ap.add_argument(
        "--submitters",
        type=int,
        default=8,
        help="throughput run: wallets per validator submitting at once, each on its own "
        "attested session (1: one at a time, the worst case for the enclave's batching)",
    )
    a = ap.parse_args()
    rate_txs = int(10 * a.latency_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) if a.keep is None else a.keep
        init_network(
            d,
            nodes=4,
            accounts=60,
            outputs_per_account=(a.txs + rate_txs) // 60 + 1,
            rng=SeededRandom(3),
        )
        t0 = time.monotonic()
        txs = prebuild(d, a.txs + rate_txs)
        print(f"prebuilt {len(txs)} txs in {time.monotonic() - t0:.1f} s")
        floor = checks_alone(d, txs[:128])
        print(f"checks alone (one thread, batches of 32, before the run): {floor:.2f} ms per tx")
        burst, steady = txs[: a.txs], txs[a.txs :]
        with Cluster(d, log_level=a.log_level) as cluster:
            cluster.start()
            trust = read_network_trust(d / "network.json")
            clients = {
                n.name: NodeClient(n.client, policy=trust.policy, root_ca_der=trust.root_ca_der)
                for n in cluster.nodes
            }
            for c in clients.values():
                c.connect()
            watch = Watcher(d)
            # 1. throughput. The wallets' attested sessions are made first: a session is a
            # cost per wallet, not per tx, and stays out of the CPU per committed tx.
            wallets: list[tuple[NodeClient, list[Tx]]] = []
            for i, n in enumerate(cluster.nodes):
                share = burst[i :: len(cluster.nodes)]
                for k in range(a.submitters):
                    c = clients[n.name]
                    if k:  # another wallet: its own attested session
                        c = NodeClient(n.client, policy=trust.policy, root_ca_der=trust.root_ca_der)
                        c.connect()
                    wallets.append((c, share[k :: a.submitters]))
            m0, w0, c0 = msgs_in(cluster), time.monotonic(), cpu_all(cluster)
            h0, t0 = cpu_hosts(cluster), tx_waits(cluster)
            results: list[str] = []

            def submit_all(client: NodeClient, share: list[Tx]) -> None:
                for tx in share:
                    results.append(propose(client, tx))

            threads = [threading.Thread(target=submit_all, args=w) for w in wallets]
            start = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            images = [tx.key_images[0] for tx in burst]
            deadline = time.monotonic() + 120
            while not all(k in watch.seen for k in images) and time.monotonic() < deadline:
                time.sleep(0.05)
            committed = [watch.seen[k] for k in images if k in watch.seen]
            m1, w1, c1 = msgs_in(cluster), time.monotonic(), cpu_all(cluster)
            h1, t1 = cpu_hosts(cluster), tx_waits(cluster)
            cpu_ms_per_tx = {k: 1000 * (c1[k] - c0[k]) / max(1, len(committed)) for k in c0}
            validators = sum(c1[k] - c0[k] for k in c0 if k != "bench")
            host_share = (h1 - h0) / validators if validators else float("nan")
            span = max(committed) - start if committed else float("nan")
            tps = len(committed) / span
            per_node = {k: (m1[k] - m0[k]) / (w1 - w0) for k in m0}
            waits = {  # per outcome, summed over the validators
                o: int(sum(t1[k].get(s, 0) - t0[k].get(s, 0) for k in t1))
                for o, s in zip(("relayed", "fetched", "missing"), TX_WAITS, strict=True)
            }
            print(
                f"throughput: {len(committed)}/{len(burst)} committed in {span:.1f} s = "
                f"{tps:.1f} tx/s (submit results: "
                f"{ {r: results.count(r) for r in set(results)} }; "
                f"asked again after the gate's slow-down: {len(SLOWED)})"
            )
            print(
                f"CPU over {w1 - w0:.1f} s: "
                + ", ".join(f"{k} {c1[k] - c0[k]:.2f} s" for k in c0)
                + " = ms per committed tx: "
                + ", ".join(f"{k} {v:.1f}" for k, v in cpu_ms_per_tx.items())
                + f" (hosts {100 * host_share:.0f} %, enclaves {100 - 100 * host_share:.0f} %)"
            )
            print(
                "consensus msgs handled per s per node: "
                + ", ".join(f"{k} {v:.0f}" for k, v in per_node.items())
            )
            print(
                "msgs that named txs a validator lacked, by how it got them (all validators): "
                + ", ".join(f"{o} {n}" for o, n in waits.items())
            )
            # 2. latency at 10 tx/s
            lat: list[float] = []
            sub_at: dict[bytes, float] = {}
            answers: dict[str, int] = {}
            names = list(clients)
            c2, m2, b2, h2 = cpu_all(cluster), msgs_in(cluster), watch.blocks, cpu_hosts(cluster)
            nxt = time.monotonic()
            for i, tx in enumerate(steady):
                time.sleep(max(0.0, nxt - time.monotonic()))  # one wake-up per tx
                sub_at[tx.key_images[0]] = time.monotonic()
                r = propose(clients[names[i % 4]], tx)
                answers[r] = answers.get(r, 0) + 1
                nxt += 0.1
            deadline = time.monotonic() + 60
            while not all(k in watch.seen for k in sub_at) and time.monotonic() < deadline:
                time.sleep(0.05)
            lat = sorted((watch.seen[k] - t) * 1000 for k, t in sub_at.items() if k in watch.seen)
            p50 = lat[len(lat) // 2] if lat else float("nan")
            p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
            c3, m3, b3, h3 = cpu_all(cluster), msgs_in(cluster), watch.blocks, cpu_hosts(cluster)
            blocks = max(1, b3 - b2)
            host_ms_per_block = 1000 * (h3 - h2) / blocks / len(cluster.nodes)
            per_block = {k: (m3[k] - m2[k]) / blocks for k in m2}
            cpu_per_block = {k: 1000 * (c3[k] - c2[k]) / blocks for k in c2 if k != "bench"}
            # Every process here shares the machine's cores: at one payment per block, p50
            # comes close to this over the cores (bench/RESULTS.md, eighth session).
            all_per_block = sum(1000 * (c3[k] - c2[k]) for k in c2) / blocks
            cores = os.cpu_count() or 1
            print(
                f"latency at 10 tx/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
                f"({len(lat)}/{len(steady)} committed; submit results: {answers}); CPU ms per tx: "
                + ", ".join(f"{k} {1000 * (c3[k] - c2[k]) / max(1, len(lat)):.1f}" for k in c2)
            )
            print(
                f"at 10 tx/s: {b3 - b2} blocks; consensus msgs in per block: "
                + ", ".join(f"{k} {v:.1f}" for k, v in per_block.items())
                + "; CPU ms per block: "
                + ", ".join(f"{k} {v:.1f}" for k, v in cpu_per_block.items())
                + f" (of which the host process: {host_ms_per_block:.1f} on average); "
                f"every process, the bench too: {all_per_block:.1f} ms, over {cores} cores "
                f"{all_per_block / cores:.1f} ms"
            )
            watch.close()
            for c in clients.values():
                c.close()
        slots = slot_times(d)
        print(
            "slot ms (p50 / max, blocks) per node: "
            + ", ".join(
                f"{k} {sorted(v)[len(v) // 2]:.0f} / {max(v):.0f} ({len(v)})"
                for k, v in slots.items()
                if v
            )
        )
        print(
            json.dumps(
                {
                    "machine": f"{platform.machine()} 2 cores",
                    "curve_backend": _native.curve_backend(),
                    "max_committed_tx_per_s": round(tps, 1),
                    "submitters_per_validator": a.submitters,
                    "latency_p50_ms_at_10tps": round(p50, 1),
                    "latency_p99_ms_at_10tps": round(p99, 1),
                    "consensus_msgs_per_s_per_node": {k: round(v) for k, v in per_node.items()},
                    "burst_tx_waits": waits,
                    "cpu_ms_per_committed_tx": {k: round(v, 1) for k, v in cpu_ms_per_tx.items()},
                    "checks_alone_ms_per_tx": round(floor, 2),
                    "at_10tps_msgs_in_per_block": {k: round(v, 1) for k, v in per_block.items()},
                    "at_10tps_cpu_ms_per_block": {k: round(v, 1) for k, v in cpu_per_block.items()},
                    "at_10tps_host_cpu_ms_per_block": round(host_ms_per_block, 1),
                    "at_10tps_all_cpu_ms_per_block": round(all_per_block, 1),
                    "throughput_host_cpu_share": round(host_share, 2),
                }
            )
        )


if __name__ == "__main__":
    main()
