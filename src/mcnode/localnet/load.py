"""The load generator: real payments between the sample accounts, at a steady rate.

It keeps its own copy of the ledger, synced block by block from the validators (verified
like any catch-up: chain, contents, signatures by the network's validators), draws rings
from it, tracks change, submits each tx to a random validator over the encrypted session,
and watches its key images land in blocks to measure commit latency.

A tx's commit time is when some validator first reported a height that includes its
block, as seen by `HeightWatcher`, a thread that asks the validators for their heights
in turn every few milliseconds. The generator itself is often busy building the next
payment (tens of ms of proving) when a block lands; timing commits by when it next got
round to reading blocks would charge that to the network."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcnode.client.keys import read_account_key
from mcnode.client.node_client import ClientError, NodeClient
from mcnode.client.trust import trust_from_entry
from mcnode.client.wallet import Wallet
from mcnode.crypto.rng import system_random
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import LedgerError
from mcnode.transaction.builder import InsufficientFunds
from mcnode.transaction.tx import Tx
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE

FEE = DEFAULT_MINIMUM_FEE
SYNC_EVERY = 0.01
# The watcher asks each validator for its height every WATCH_EACH s (25 calls/s: half of
# what the gate allows one source by default, 50 blockchain calls/s per validator), the
# validators in turn, but never more often than WATCH_MIN in all.
WATCH_EACH = 0.04
WATCH_MIN = 0.01
SYNC_IDLE = 0.5  # blocks are read when the watcher reports new ones, else this often


class HeightWatcher:
    """A thread that polls the validators' heights in turn and notes when each block
    index was first reported (monotonic clock). Its own channels: no enclave session."""

    def __init__(self, nodes: dict[str, str]) -> None:
        self.clients = [NodeClient(addr, timeout=1.0) for addr in nodes.values()]
        self.every = max(WATCH_MIN, WATCH_EACH / max(1, len(self.clients)))
        self.height = 0
        self._seen: dict[int, float] = {}  # block index -> when first reported
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="height-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.every):
            client = self.clients[i % len(self.clients)]
            i += 1
            try:
                n = client.last_block_info().num_blocks
            except ClientError:
                continue
            now = time.monotonic()
            with self._lock:
                for index in range(self.height, n):
                    self._seen.setdefault(index, now)
                self.height = max(self.height, n)
                while len(self._seen) > 10_000:  # bounded: oldest first
                    self._seen.pop(next(iter(self._seen)))

    def seen_at(self, index: int) -> float | None:
        with self._lock:
            return self._seen.get(index)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        for c in self.clients:
            c.close()


@dataclass
class InFlight:
    tx_hash: bytes
    submitted_at: float
    key_images: tuple[bytes, ...]
    node: str
    tombstone: int


@dataclass
class LoadStats:
    submitted: int = 0
    committed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)  # could not reach a node
    expired: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    by_node_ms: dict[str, list[float]] = field(default_factory=dict)  # by node submitted to
    fees: int = 0
    blocks: list[tuple[int, int, int, float]] = field(default_factory=list)  # idx, ki, outs, t

    def percentile(self, q: float, node: str | None = None) -> float | None:
        """Submit-to-commit latency (ms) at quantile `q`, of every tx or of those
        submitted to `node`."""
        lat = self.latencies_ms if node is None else self.by_node_ms.get(node, [])
        if not lat:
            return None
        xs = sorted(lat)
        return round(xs[min(len(xs) - 1, int(q * len(xs)))], 2)


class LoadGenerator:
    def __init__(
        self,
        directory: Path,
        network: dict[str, Any],
        seed: int | None = None,
        ledger_dir: Path | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.rng = random.Random(seed)
        self.nodes = {n["id"]: n["client"] for n in network["nodes"]}
        self.signers = [bytes.fromhex(n["block_signer"]) for n in network["nodes"]]
        self.accounts = sorted((self.dir / "accounts").glob("account-*.json"))
        self.wallets = [Wallet(read_account_key(p)) for p in self.accounts]
        trust = trust_from_entry(network.get("attestation"))  # what wallets check
        self.clients = {
            name: NodeClient(
                addr, timeout=5.0, policy=trust.policy, root_ca_der=trust.root_ca_der
            )
            for name, addr in self.nodes.items()
        }
        self.ledger = LedgerDB(
            ledger_dir or self.dir / "loadgen" / "ledger",
            create=True,
            expected_signers=self.signers,
        )
        self.stats = LoadStats()
        self.inflight: dict[bytes, InFlight] = {}
        self.by_image: dict[bytes, bytes] = {}
        self.down: set[str] = set()
        self._last_sync = 0.0
        self.watcher = HeightWatcher(self.nodes)

    def close(self) -> None:
        self.watcher.close()
        for c in self.clients.values():
            c.close()
        self.ledger.close()

    # -- ledger copy ---------------------------------------------------------------------
    def sync(self) -> int:
        """Pull new blocks from some validator; returns how many were appended."""
        names = [n for n in self.nodes if n not in self.down] or list(self.nodes)
        self.rng.shuffle(names)
        for name in names:
            try:
                blocks = self.clients[name].blocks(self.ledger.num_blocks(), 100)
            except ClientError:
                continue
            if not blocks:
                return 0
            try:
                self.ledger.append_blocks(blocks)
            except LedgerError:
                continue  # another node may serve a good copy
            now = time.monotonic()
            for b in blocks:
                seen = self.watcher.seen_at(b.block.index)
                at = now if seen is None else min(seen, now)
                self._on_block(b.block.index, b.contents.key_images, len(b.contents.outputs), at)
            return len(blocks)
        return 0

    def _on_block(self, index: int, images: tuple[bytes, ...], outputs: int, now: float) -> None:
        self.stats.blocks.append((index, len(images), outputs, now))
        for ki in images:
            h = self.by_image.get(ki)
            f = self.inflight.pop(h, None) if h else None
            if f is None:
                continue
            for k in f.key_images:
                self.by_image.pop(k, None)
            self.stats.committed += 1
            self.stats.fees += FEE
            ms = (now - f.submitted_at) * 1000
            self.stats.latencies_ms.append(ms)
            self.stats.by_node_ms.setdefault(f.node, []).append(ms)
        n = self.ledger.num_blocks()
        for h, f in list(self.inflight.items()):
            if f.tombstone <= n:
                self.inflight.pop(h)
                for k in f.key_images:
                    self.by_image.pop(k, None)
                self.stats.expired += 1

    def wait_synced(self, blocks: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.ledger.num_blocks() < blocks and time.monotonic() < deadline:
            if not self.sync():
                time.sleep(0.05)

    # -- payments -----------------------------------------------------------------------------
    def build_one(self) -> Tx | None:
        """A payment from a random funded account to another, or None if nobody can pay."""
        order = list(range(len(self.wallets)))
        self.rng.shuffle(order)
        busy = set(self.by_image)
        for i in order:
            w = self.wallets[i]
            j = self.rng.randrange(len(self.wallets) - 1)
            to = self.wallets[j + (j >= i)].account.default_address
            try:
                spendable = w.unspent(self.ledger, busy)
                if not spendable:
                    continue
                amount = max(1, min(o.value for o in spendable) // self.rng.randint(2, 10))
                tx, _ = w.build_payment(
                    self.ledger,
                    to,
                    amount,
                    system_random,
                    fee=FEE,
                    exclude_key_images=busy,
                    max_inputs=1,
                )
                return tx
            except InsufficientFunds:
                continue
        return None

    def submit(self, tx: Tx, node: str | None = None) -> str:
        """Submit to `node` (or a random live one, trying others if it is down)."""
        names = [node] if node else [n for n in self.nodes if n not in self.down]
        if not names:
            names = list(self.nodes)
        self.rng.shuffle(names)
        for name in names:
            t0 = time.monotonic()
            try:
                r = self.clients[name].propose_tx(tx.to_bytes())
            except ClientError:
                self.down.add(name)
                self.stats.failed["NODE_UNAVAILABLE"] += 1
                continue
            self.down.discard(name)
            self.stats.submitted += 1
            if r.ok:
                f = InFlight(r.tx_hash, t0, tx.key_images, name, tx.prefix.tombstone_block)
                self.inflight[r.tx_hash] = f
                for k in tx.key_images:
                    self.by_image[k] = r.tx_hash
            else:
                self.stats.rejected[r.result] += 1
            return r.result
        return "NODE_UNAVAILABLE"

    def step(self, rate: float, next_at: float) -> float:
        """Submit what is due at `rate` tx/s; sync; return when the next tx is due."""
        now = time.monotonic()
        news = self.watcher.height > self.ledger.num_blocks()
        if (news and now - self._last_sync >= SYNC_EVERY) or now - self._last_sync >= SYNC_IDLE:
            self.sync()
            self._last_sync = now
        if rate > 0 and now >= next_at:
            tx = self.build_one()
            if tx is not None:
                self.submit(tx)
            next_at = max(next_at + 1.0 / rate, now - 1.0)  # no burst after a stall
        return next_at

    def drain(self, timeout: float) -> None:
        """Stop submitting; wait for what is in flight to commit (or expire)."""
        deadline = time.monotonic() + timeout
        while self.inflight and time.monotonic() < deadline:
            if not self.sync():
                time.sleep(0.02)

    # -- accounting -----------------------------------------------------------------------------
    def total_balance(self) -> int:
        return sum(w.balance(self.ledger) for w in self.wallets)
