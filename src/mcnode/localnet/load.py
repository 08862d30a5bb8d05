"""The load generator: real payments between the sample accounts, at the rate asked for,
and an honest account of when it could not keep that rate, and why.

It keeps its own copy of the ledger, synced block by block from the validators (verified
like any catch-up: chain, contents, signatures by the network's validators). From it the
`Purse` knows which outputs the sample accounts own and which are promised to a payment.
For each payment the generator reserves one output, draws its ring, and hands both to a
builder process (`builders.BuilderPool`), which proves and signs it; built payments wait
in a queue. Before the timed run it builds ahead (`prepare`, with progress): on two cores
shared with the validators, proving as it goes could not sustain more than a few tens of
payments per second. During the run the builders keep the queue topped up, niced, with
what the validators leave, from outputs committed since.

Due payments (`pace.Pace`) are handed to submitter threads (`submit.Submitters`), two per
validator, each with its own attested session; a validator that cannot be reached gets
nothing for a while and its payment goes to another. When a payment is due and none is
built, or every submitter is still waiting for an answer, the tally says so, and
`pace.judge` names the limit.

A tx's commit time is when some validator's ledger first held its block, as seen by
`ledgerwatch.LedgerHeights`, a thread woken by every write to the validators' ledger files
(they are on this machine), which reads their heights read-only. Timing commits by when
the generator next got round to reading blocks would charge its own delays to the
network; asking each validator for its height every few milliseconds
(`submit.HeightWatcher`, kept for ledgers this machine cannot read) would charge the
asking to the validators' CPU."""

from __future__ import annotations

import contextlib
import math
import os
import queue
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcnode.client.keys import read_account_key
from mcnode.client.node_client import ClientError, NodeClient
from mcnode.client.rings import input_credentials
from mcnode.client.trust import trust_from_entry
from mcnode.crypto.rng import system_random
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import LedgerError
from mcnode.localnet.builders import NICE_DURING_RUN, BuilderPool, BuildJob, Coin, Payment
from mcnode.localnet.ledgerwatch import HeightFollower, LedgerHeights
from mcnode.localnet.pace import CAPACITY_REFUSALS, Limit, Pace, Tally, Verdict, judge
from mcnode.localnet.purse import Purse
from mcnode.localnet.submit import HeightWatcher, InFlight, Submitters
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE, MAX_TOMBSTONE_BLOCKS

FEE = DEFAULT_MINIMUM_FEE
SYNC_IDLE = 0.5  # blocks are read when the watcher reports new ones, else this often
DOWN_FOR = 2.0  # a validator that could not be reached gets no payment for this long
#: Built ahead by default: the run's payments, up to this many seconds of them (more is
#: built during the run). Never more than MAX_QUEUE payments (~9 KB each) are held.
PREBUILD_MAX_S = 60.0
UNTIMED_BUFFER_S = 30.0  # without --duration: what the builders keep in the queue
MAX_QUEUE = 10_000
#: A payment is built long before it is sent, so its tombstone is far off (but within the
#: consensus limit); one whose tombstone comes near before it is sent is dropped unsent.
TOMBSTONE_WINDOW = MAX_TOMBSTONE_BLOCKS // 2
TOMBSTONE_MARGIN = 10
LIVE_WINDOW_S = 5.0  # the live view judges the last this many seconds


class LoadError(ValueError):
    """The load cannot run as asked (one line for the user)."""


def default_builders() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass
class LoadStats:
    submitted: int = 0
    accepted: int = 0
    committed: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)  # could not reach a node
    expired: int = 0
    stale: int = 0  # built, never sent: its tombstone came near or its input was spent
    latencies_ms: list[float] = field(default_factory=list)
    by_node_ms: dict[str, list[float]] = field(default_factory=dict)  # by node submitted to
    fees: int = 0
    blocks: list[tuple[int, int, int, float]] = field(default_factory=list)  # idx, ki, outs, t
    built: int = 0
    build_failed: int = 0
    build_cpu_s: float = 0.0

    def percentile(self, q: float, node: str | None = None) -> float | None:
        """Submit-to-commit latency (ms) at quantile `q`, of every tx or of those
        submitted to `node`."""
        lat = self.latencies_ms if node is None else self.by_node_ms.get(node, [])
        if not lat:
            return None
        xs = sorted(lat)
        return round(xs[min(len(xs) - 1, int(q * len(xs)))], 2)


@dataclass
class Prebuild:
    """What `prepare` did before the clock started."""

    wanted: int = 0
    built: int = 0
    seconds: float = 0.0
    cpu_main_s: float = 0.0
    cpu_builders_s: float = 0.0
    scanned_outputs: int = 0
    free_coins: int = 0  # spendable outputs found before building


class LoadGenerator:
    def __init__(
        self,
        directory: Path,
        network: dict[str, Any],
        seed: int | None = None,
        ledger_dir: Path | None = None,
        builders: int | None = None,
    ) -> None:
        self.dir = Path(directory)
        self.rng = random.Random(seed)
        self.nodes = {n["id"]: n["client"] for n in network["nodes"]}
        self.signers = [bytes.fromhex(n["block_signer"]) for n in network["nodes"]]
        self.accounts = sorted((self.dir / "accounts").glob("account-*.json"))
        if len(self.accounts) < 2:
            raise LoadError(f"{self.dir / 'accounts'}: need at least two sample accounts")
        keys = [read_account_key(p) for p in self.accounts]
        trust = trust_from_entry(network.get("attestation"))  # what wallets check
        self._make_client: Callable[[str], NodeClient] = lambda addr: NodeClient(
            addr, timeout=5.0, policy=trust.policy, root_ca_der=trust.root_ca_der
        )
        self.clients = {name: self._make_client(addr) for name, addr in self.nodes.items()}
        self.ledger = LedgerDB(
            ledger_dir or self.dir / "loadgen" / "ledger",
            create=True,
            expected_signers=self.signers,
        )
        self.stats = LoadStats()
        self.purse = Purse(keys, self.rng, min_value=FEE + 2)
        self.pool = BuilderPool(self.accounts, builders or default_builders())
        self.pool.warm()  # while we catch up
        self.ready: deque[Payment] = deque()  # built, not sent
        self._building: set[Future[Payment]] = set()
        self._reserved_by: dict[Future[Payment], Coin] = {}
        self._built: queue.SimpleQueue[Future[Payment]] = queue.SimpleQueue()
        self.by_image: dict[bytes, InFlight] = {}  # key image -> its payment, until done
        self.down_until: dict[str, float] = {}
        self.submitters: Submitters | None = None
        self.prebuild = Prebuild()
        self.pace: Pace | None = None
        self.end: float | None = None  # when the timed run ends (None: when stopped)
        self.stopped_at: float | None = None
        self._nice = 0
        self._purse_ready = False
        self.prepared = False
        self.origin_value = 0  # what the origin block paid the sample accounts
        # What the accounts held when this run's load began (None until found): a
        # reused network's earlier runs paid fees too.
        self.opening_balance: int | None = None
        self._short = {"generator": 0.0, "no_coins": 0.0, "network": 0.0}
        self._last_step: float | None = None
        self._last_sync = 0.0
        self._refused_capacity = 0
        self._refused_invalid = 0
        self._waiting = 0  # accepted, not committed (nor expired)
        self._in_flight_s = 0.0
        self._committed_in_window: int | None = None
        self._final: Tally | None = None
        self._cpu0 = 0.0
        self._run_cpu_main = 0.0
        self._tallies: deque[Tally] = deque()
        self.watcher: HeightFollower = self._watcher()

    def _watcher(self) -> HeightFollower:
        """Commit times from the validators' ledger files when they are on this machine
        (`ledgerwatch`: costs the validators nothing), else by asking them for their
        heights (`submit.HeightWatcher`)."""
        ledgers = {name: self.dir / name / "ledger" for name in self.nodes}
        if all((p / "data.mdb").is_file() for p in ledgers.values()):
            with contextlib.suppress(LedgerError):
                return LedgerHeights(ledgers)
        return HeightWatcher(self.nodes)

    def close(self) -> None:
        if self.submitters is not None:
            self.submitters.close()
        self.pool.close()
        self.watcher.close()
        for c in self.clients.values():
            c.close()
        self.ledger.close()

    @property
    def inflight(self) -> list[InFlight]:
        """Payments sent and not yet committed, refused or expired."""
        return list({id(f): f for f in self.by_image.values()}.values())

    @property
    def building(self) -> int:
        return len(self._building)

    # -- ledger copy ---------------------------------------------------------------------
    def sync(self) -> int:
        """Pull new blocks from some validator; returns how many were appended."""
        now = time.monotonic()
        names = [n for n in self.nodes if self.down_until.get(n, 0.0) <= now] or list(self.nodes)
        self.rng.shuffle(names)
        self._last_sync = now
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
                if self._purse_ready:  # else `prepare` scans them all at once
                    first = b.block.cumulative_txo_count - len(b.contents.outputs)
                    self.purse.spent(b.contents.key_images)
                    self.purse.add_outputs(first, b.contents.outputs)
                self._on_block(b.block.index, b.contents.key_images, len(b.contents.outputs), at)
            return len(blocks)
        return 0

    def _on_block(self, index: int, images: tuple[bytes, ...], outputs: int, at: float) -> None:
        self.stats.blocks.append((index, len(images), outputs, at))
        for ki in images:
            f = self.by_image.get(ki)
            if f is None:
                continue
            self._forget(f)
            f.committed = True
            if f.accepted:
                self._waiting -= 1
            self.stats.committed += 1
            self.stats.fees += FEE
            ms = (at - f.submitted_at) * 1000
            self.stats.latencies_ms.append(ms)
            self.stats.by_node_ms.setdefault(f.node, []).append(ms)
        n = self.ledger.num_blocks()
        for f in self.inflight:
            if f.payment.tombstone <= n:
                self._forget(f)
                if f.accepted:
                    self._waiting -= 1
                self.purse.release(f.payment.key_images, f.payment)
                self.stats.expired += 1

    def _forget(self, f: InFlight) -> None:
        for k in f.payment.key_images:
            self.by_image.pop(k, None)

    def wait_synced(self, blocks: int, timeout: float) -> None:
        """Until the ledger copy has `blocks` blocks. The first call starts watching the
        validators' heights."""
        self.watcher.start()
        deadline = time.monotonic() + timeout
        while self.ledger.num_blocks() < blocks and time.monotonic() < deadline:
            if not self.sync():
                time.sleep(0.05)

    def catch_up(self, timeout: float = 60.0) -> None:
        """Sync until no validator has a block we lack (bounded by `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.sync():
            pass

    # -- building ------------------------------------------------------------------------
    def prepare(
        self,
        rate: float,
        duration: float | None,
        prebuild: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        timeout: float = 900.0,
    ) -> Prebuild:
        """Before the timed run: catch up, find the accounts' outputs (scanned by the
        builders, in parallel), start the submitters (attested sessions), and build
        `prebuild` payments ahead (None: the run's, up to PREBUILD_MAX_S of them), as
        many as free outputs allow. `progress(built, wanted)` is called as they come."""
        t0, cpu0 = time.monotonic(), time.process_time()
        self.catch_up()
        n = self.ledger.num_tx_outs()
        coins, scan_cpu = self.pool.scan(self.ledger.get_tx_outs(self.purse.next_index, n))
        self.purse.add_coins(coins, n, self.ledger)
        self._purse_ready = True
        origin = {o.public_key for o in self.ledger.get_tx_outs(0, self._origin_outputs())}
        self.origin_value = sum(c.value for c in coins if c.public_key in origin)
        self.opening_balance = self.purse.balance(self.ledger)
        self.prebuild.scanned_outputs = n
        self.prebuild.cpu_builders_s += scan_cpu
        self.prebuild.free_coins = self.purse.free
        self.submitters = Submitters(self.nodes, self._make_client)
        if prebuild is None:
            seconds = min(duration if duration is not None else UNTIMED_BUFFER_S, PREBUILD_MAX_S)
            prebuild = math.ceil(rate * seconds) + math.ceil(rate) if rate > 0 else 0
        wanted = min(prebuild, MAX_QUEUE, self.purse.free)
        self.prebuild.wanted = wanted
        deadline = time.monotonic() + timeout
        while len(self.ready) < wanted and time.monotonic() < deadline:
            self._feed(wanted - len(self.ready) - len(self._building))
            if not self._building:
                break  # nothing more can be built
            self._collect(block=0.1)
            if progress is not None:
                progress(len(self.ready), wanted)
        self.prepared = True
        self.prebuild.built = len(self.ready)
        self.prebuild.seconds = time.monotonic() - t0
        self.prebuild.cpu_main_s = time.process_time() - cpu0
        self.prebuild.cpu_builders_s += self.stats.build_cpu_s
        self.stats.built = 0
        self.stats.build_cpu_s = 0.0
        return self.prebuild

    def _origin_outputs(self) -> int:
        return self.ledger.get_block(0).cumulative_txo_count if self.ledger.num_blocks() else 0

    def _feed(self, more: int) -> None:
        """Start building up to `more` payments (at most 2 jobs per builder at a time), as
        long as a free output is there to pay from."""
        limit = 2 * self.pool.workers
        while more > 0 and len(self._building) < limit:
            more -= 1
            coin = self.purse.pick()
            if coin is None:
                return
            to = self.purse.recipient_for(coin.account)
            amount = max(1, (coin.value - FEE) // self.rng.randint(2, 10))
            blocks = self.ledger.num_blocks()
            job = BuildJob(
                sender=coin.account,
                recipient=to,
                amount=amount,
                fee=FEE,
                tombstone=blocks + TOMBSTONE_WINDOW,
                ring_blocks=blocks,
                credentials=input_credentials(self.ledger, coin.owned, system_random),
                nice=self._nice,
            )
            fut = self.pool.build(job)
            self._building.add(fut)
            self._reserved_by[fut] = coin
            fut.add_done_callback(self._built.put)

    def _collect(self, block: float = 0.0) -> None:
        """Take in what the builders finished (waiting up to `block` s for the first)."""
        try:
            fut = self._built.get(timeout=block) if block > 0 else self._built.get_nowait()
        except queue.Empty:
            return
        while True:
            self._building.discard(fut)
            coin = self._reserved_by.pop(fut)
            try:
                p = fut.result()
            except Exception:  # a builder died or failed: its coin is free again
                self.stats.build_failed += 1
                self.purse.release([coin.key_image])
            else:
                self.stats.built += 1
                self.stats.build_cpu_s += p.cpu_s
                self.purse.expect(p)
                self.ready.append(p)
            try:
                fut = self._built.get_nowait()
            except queue.Empty:
                return

    # -- the timed run -------------------------------------------------------------------
    def start(self, rate: float, duration: float | None, now: float | None = None) -> None:
        """The clock starts: payments are due at `rate` from now on; builders yield."""
        now = time.monotonic() if now is None else now
        self.pace = Pace(rate, now)
        self.end = None if duration is None else now + duration
        self._nice = NICE_DURING_RUN
        self._last_step = now
        self._cpu0 = time.process_time()
        self._tallies.clear()

    def step(self, now: float | None = None) -> None:
        """One turn of the loop: blocks, answers, builds, and whatever payment is due."""
        assert self.pace is not None and self.submitters is not None, "start() first"
        now = time.monotonic() if now is None else now
        if self.watcher.height > self.ledger.num_blocks() or now - self._last_sync >= SYNC_IDLE:
            self.sync()
        self._answers()
        self._collect()
        self._feed(self._top_up(now))
        blame = self._dispatch(now)
        dt = now - (self._last_step or now)
        self._last_step = now
        self._in_flight_s += self._waiting * dt
        if blame is not None:
            self._short[blame] += dt
            if blame == "generator" and self.purse.free == 0 and not self._building:
                self._short["no_coins"] += dt
            self.pace.drop_stale(now, blame)
        if not self._tallies or now - self._tallies[-1].t - self.pace.start >= 0.5:
            self._tallies.append(self.tally(now))
            while self._tallies and now - self.pace.start - self._tallies[0].t > LIVE_WINDOW_S:
                self._tallies.popleft()

    def sleep(self, most: float = 0.01) -> None:
        """Until the next payment is due, but at most `most` seconds (the loop has
        answers, blocks and builds to take in too)."""
        assert self.pace is not None
        time.sleep(min(most, max(0.002, self.pace.next_due() - time.monotonic())))

    def _top_up(self, now: float) -> int:
        """How many more payments the queue should get to cover the rest of the run."""
        assert self.pace is not None
        rate = self.pace.rate
        rest = UNTIMED_BUFFER_S if self.end is None else max(0.0, self.end - now)
        want = min(MAX_QUEUE, math.ceil(rate * rest) + math.ceil(rate))
        return want - len(self.ready) - len(self._building)

    def _dispatch(self, now: float) -> Limit | None:
        """Send what is due; what stops us, if something does while payments are owed."""
        assert self.pace is not None and self.submitters is not None
        while self.pace.owed(now) > 0:
            if not self.ready:
                return "generator"
            p = self.ready[0]
            if p.tombstone <= self.ledger.num_blocks() + TOMBSTONE_MARGIN or not all(
                self.purse.is_owned(k) for k in p.key_images
            ):
                self.ready.popleft()
                self.stats.stale += 1
                self.purse.release(p.key_images, p)
                continue
            # Only to a validator that has the blocks its ring was drawn from (a proof
            # for a tree size a validator has not reached yet is refused there).
            live = [
                n
                for n in self.nodes
                if self.down_until.get(n, 0.0) <= now
                and self.submitters.outstanding[n] < self.submitters.capacity
                and self.watcher.heights.get(n, 0) >= p.ring_blocks
            ]
            if not live:
                return "network"
            self.ready.popleft()
            name = self.rng.choice(live)
            f = InFlight(p, name, {name})
            for k in p.key_images:
                self.by_image[k] = f
            self.submitters.send(f)
            self.pace.sent += 1
        return None

    def _answers(self) -> None:
        assert self.submitters is not None
        now = time.monotonic()
        while True:
            try:
                a = self.submitters.answers.get_nowait()
            except queue.Empty:
                return
            self.submitters.answered(a.node)
            f = a.flight
            if a.result is None:
                self.stats.failed["NODE_UNAVAILABLE"] += 1
                self.down_until[a.node] = now + DOWN_FOR
                self._retry(f, now)
                continue
            self.stats.submitted += 1
            f.answered = True
            if a.result == "OK":
                self.stats.accepted += 1
                if not f.committed and not f.accepted:
                    f.accepted = True
                    self._waiting += 1
                continue
            self.stats.rejected[a.result] += 1
            if a.result in CAPACITY_REFUSALS:
                self._refused_capacity += 1
            else:
                self._refused_invalid += 1
            if not f.committed:
                self._forget(f)
                self.purse.release(f.payment.key_images, f.payment)

    def _retry(self, f: InFlight, now: float) -> None:
        """Hand `f` to a validator it was not tried on yet; or give it up."""
        assert self.submitters is not None
        if f.committed:
            return
        others = [
            n
            for n in self.nodes
            if n not in f.tried
            and self.down_until.get(n, 0.0) <= now
            and self.watcher.heights.get(n, 0) >= f.payment.ring_blocks
        ]
        if not others:
            self._forget(f)
            self.purse.release(f.payment.key_images, f.payment)
            return
        f.node = self.rng.choice(others)
        f.tried.add(f.node)
        self.submitters.send(f)

    def stop(self) -> None:
        """The timed run ends: nothing more is sent, nothing more is built."""
        now = time.monotonic()
        self.stopped_at = now
        self._run_cpu_main = time.process_time() - self._cpu0
        for fut in self._building:
            fut.cancel()
        self.sync()
        if self.submitters is not None:
            self._answers()
        self._committed_in_window = self.stats.committed
        self._final = self.tally(now)

    def drain(self, timeout: float) -> None:
        """Wait for what is in flight to be answered and to commit (or expire)."""
        deadline = time.monotonic() + timeout
        while self.by_image and time.monotonic() < deadline:
            if self.submitters is not None:
                self._answers()
            if not self.sync():
                time.sleep(0.02)
        if self.submitters is not None:
            self._answers()

    # -- accounting -----------------------------------------------------------------------
    def tally(self, now: float) -> Tally:
        assert self.pace is not None
        st = self.stats
        return Tally(
            t=now - self.pace.start,
            due=self.pace.due(now),
            sent=self.pace.sent,
            submitted=st.submitted,
            accepted=st.accepted,
            committed=st.committed,
            refused_capacity=self._refused_capacity,
            refused_invalid=self._refused_invalid,
            missed_generator=self.pace.missed_generator,
            missed_network=self.pace.missed_network,
            short_generator_s=self._short["generator"],
            short_no_coins_s=self._short["no_coins"],
            short_network_s=self._short["network"],
            in_flight=self._waiting,
            in_flight_s=self._in_flight_s,
            built=st.built,
            build_cpu_s=st.build_cpu_s,
            builders=self.pool.workers,
            free_coins=self.purse.free,
        )

    def live_verdict(self) -> tuple[Verdict, float, float]:
        """Over the last LIVE_WINDOW_S: the verdict, and the sent and due rates."""
        assert self.pace is not None
        if len(self._tallies) < 2:
            return Verdict(None, None), 0.0, 0.0
        a, b = self._tallies[0], self._tallies[-1]
        dt = b.t - a.t
        return judge(a, b, self.pace.rate), (b.sent - a.sent) / dt, (b.due - a.due) / dt

    def report(self) -> dict[str, Any]:
        """The summary's `load` section (after `stop`)."""
        assert self.pace is not None and self._final is not None
        final = self._final
        window = max(final.t, 1e-9)
        v = judge(Tally(), final, self.pace.rate)
        if not self.prepared:
            v = Verdict(None, "stopped while building ahead: no load was run")
        pre = self.prebuild
        return {
            "requested_tx_s": self.pace.rate,
            "submitted_tx_s": round(final.submitted / window, 3),
            "accepted_tx_s": round(final.accepted / window, 3),
            "committed_tx_s": round((self._committed_in_window or 0) / window, 3),
            "limited_by": v.limited_by,
            "reason": v.reason,
            "window_s": round(window, 3),
            "due": final.due,
            "sent": final.sent,
            "missed": {"generator": final.missed_generator, "network": final.missed_network},
            "short_s": {
                "generator": round(final.short_generator_s, 3),
                "no_free_output": round(final.short_no_coins_s, 3),
                "network": round(final.short_network_s, 3),
            },
            "refused_for_capacity": final.refused_capacity,
            "refused_as_invalid": final.refused_invalid,
            # Little's law: how long an accepted payment waited for its block, on average.
            "commit_wait_s": round(final.in_flight_s / max(1, final.accepted), 3),
            "stale_unsent": self.stats.stale,
            "builders": self.pool.workers,
            "prebuild": {
                "wanted": pre.wanted,
                "built": pre.built,
                "seconds": round(pre.seconds, 3),
                "outputs_scanned": pre.scanned_outputs,
                "free_outputs": pre.free_coins,
            },
            "built_during_run": self.stats.built,
            "build_failed": self.stats.build_failed,
            "build_cpu_ms_per_tx": round(1000 * self.stats.build_cpu_s / self.stats.built, 2)
            if self.stats.built
            else (round(1000 * pre.cpu_builders_s / pre.built, 2) if pre.built else None),
            "cpu_s": {
                "prebuild": {
                    "main": round(pre.cpu_main_s, 3),
                    "builders": round(pre.cpu_builders_s, 3),
                },
                "run": {
                    "main": round(self._run_cpu_main, 3),
                    "builders": round(self.stats.build_cpu_s, 3),
                },
            },
            "left_unsent": len(self.ready),
        }

    def total_balance(self) -> int:
        return self.purse.balance(self.ledger)

    def supply_conserved(self, supply: int | None) -> bool | None:
        """The accounts' opening balance, less this run's fees, is what they hold now (a
        payment moves money between them; only the fee leaves); and the origin paid them
        `supply` (`network.json`'s total, when known). None if stopped before the
        accounts were even scanned."""
        if self.opening_balance is None:
            return None
        books = self.total_balance() + self.stats.fees == self.opening_balance
        return books and (supply is None or self.origin_value == supply)
