"""The consensus driver: turns SCP outcomes into blocks, and the network into SCP input.

Rules of this file: it owns the `scp.Node`, the pending pool and the catch-up state; it
holds only `WellFormedTxContext`s and ciphertext (the enclave owns plaintext). It is the
only place that decides when to nominate, when a block is formed, and when to stop serving
clients to catch up. All of it runs on the event loop; SCP calls are synchronous.

Slot k of SCP decides block k (the origin block is block 0), so `scp.current_slot_index`
equals the ledger's block count whenever the node is in step.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Coroutine, Iterable
from typing import Any

import grpc

from mcnode.enclave import EnclaveApi, EnclaveError
from mcnode.ledger.archive import LocalDirectory, export_archive, import_archive
from mcnode.ledger.block import BlockData
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import LedgerCorruptError, LedgerError
from mcnode.node.config import NodeConfig
from mcnode.node.logs import NodeLog
from mcnode.node.messages import CheckedMsg, dedup_key, sign_msg
from mcnode.node.metrics import NodeMetrics
from mcnode.node.peers import PeerLink
from mcnode.node.pending import PendingPool, PoolFull, combine_txs
from mcnode.node.state import ScpState
from mcnode.scp import Msg, Node, QuorumSet
from mcnode.scp.msg import Externalize, Nominate, NominatePrepare
from mcnode.transaction.validation import WellFormedTxContext
from mcnode.wire import consensus_pb2 as pb

SERVING, CATCHING_UP = "serving", "catching_up"
RELAY_MEMORY = 4096
HELD_PER_SLOT = 256  # peers' messages kept for a slot we have not reached
FETCH_TIMEOUT = 3.0
FETCH_RETRIES = 3  # more fetches of a message's missing txs before SCP judges it
BLOCKS_PER_PAGE = 100
HEIGHT_POLL = 5.0  # seconds of silence before we ask a peer for its height
NOMINATE_SPACING = 0.003  # seconds between two nominations: later txs share one message


class LedgerUnusable(RuntimeError):
    """Our own ledger cannot be written: the node stops with this message."""


def msg_values(msg: Msg) -> set[bytes]:
    t = msg.topic
    out: set[bytes] = set()
    for name in ("voted", "accepted"):
        out.update(getattr(t, name, ()) or ())
    for name in ("ballot", "prepared", "prepared_prime", "commit"):
        b = getattr(t, name, None)
        if b is not None:
            out.update(b.values)
    return out


def ballot_to_save(
    msg: Msg, blocks: int, last_saved: tuple[int, object] | None
) -> tuple[int, object] | None:
    """The (slot, ballot statement) of `msg` if it must be made durable before it is sent,
    else None.

    Only the ballot part needs it (each save is an fdatasync on the hot path): "nominate
    x" statements never contradict one another and SCP's safety rests on the ballot
    protocol alone, so a node that forgets its nomination votes after a crash only
    nominates again. So nothing is saved for a nomination-only message, nor for a
    NOMINATE+PREPARE whose PREPARE part is the one saved last, nor for an EXTERNALIZE
    whose block the ledger already holds (`blocks` > slot: a restarted node starts on the
    next slot anyway)."""
    t = msg.topic
    if isinstance(t, Nominate):
        return None
    if isinstance(t, Externalize) and blocks > msg.slot_index:
        return None
    ballot = (msg.slot_index, t.prepare if isinstance(t, NominatePrepare) else t)
    return None if ballot == last_saved else ballot


class ConsensusDriver:
    def __init__(
        self,
        cfg: NodeConfig,
        signing_key: bytes,
        ledger: LedgerDB,
        enclave: EnclaveApi,
        peers: dict[str, PeerLink],
        metrics: NodeMetrics,
        log: NodeLog,
    ) -> None:
        self.cfg = cfg
        self.key = signing_key
        self.ledger = ledger
        self.enclave = enclave
        self.peers = peers
        self.metrics = metrics
        self.log = log
        self.pool = PendingPool(cfg.limits.pending_txs)
        self.state_store = ScpState(cfg.state_dir)
        self.sync_state = SERVING
        self._seen: OrderedDict[bytes, set[str]] = OrderedDict()  # message -> who has it
        self._block_ids: OrderedDict[int, bytes] = OrderedDict()  # block index -> id
        self._saved_ballot: tuple[int, object] | None = None  # what the state file holds
        # Each signer's quorum set as its latest verified message stated it (any slot).
        self.peer_quorum_sets: dict[str, QuorumSet] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._last_sent: pb.ConsensusMsg | None = None
        self._last_block_at = time.monotonic()
        self._slot_started = time.monotonic()
        self._slot_active = False  # has this slot seen work yet (for slot timing)
        self._phase_seen: set[str] = set()
        self._shown_progress: tuple[int, tuple[str, int, int]] | None = None
        self._catchup_lock = asyncio.Lock()
        self._catchup_event = asyncio.Event()
        self._peer_sessions: set[str] = set()  # peers we hold an "out" session with
        self._peer_locks: dict[str, asyncio.Lock] = {}
        self._relay_pending: dict[str, list[bytes]] = {name: [] for name in peers}
        self._relaying: set[str] = set()  # peers with a relay loop running
        self._background: set[asyncio.Task[None]] = set()
        self._held: dict[int, list[CheckedMsg]] = {}  # slot -> peers' messages for it
        self._nominate_scheduled = False
        self._last_nomination = 0.0
        self.fatal: str | None = None
        self.scp = self._build_scp()

    # -- SCP node -----------------------------------------------------------------------
    def _build_scp(self) -> Node:
        """SCP on the first slot we have no block for, with our saved votes if we crashed
        in the middle of that slot."""
        slot = self.ledger.num_blocks()
        saved = self.state_store.load()
        if saved is not None and saved.slot_index == slot and saved.sender_id == self.cfg.name:
            self.log.info("scp state restored", slot=slot, topic=type(saved.topic).__name__)
            return self._new_scp(slot, saved)
        return self._new_scp(slot)

    def _new_scp(self, slot: int, saved: Msg | None = None) -> Node:
        args = (self.cfg.name, self.cfg.quorum_set, self._valid, self._combine)
        kwargs: dict[str, Any] = {"config": self.cfg.scp}
        if saved is not None:
            return Node.from_saved(*args, [saved], time.monotonic, **kwargs)
        return Node(*args, slot, time.monotonic, **kwargs)

    def _valid(self, tx_hash: bytes) -> bool:
        ctx = self.pool.get(tx_hash)
        return ctx is not None and ctx.tombstone_block > self.ledger.num_blocks()

    def _combine(self, values: Any) -> list[bytes]:
        return combine_txs(values, self.pool.get, self.cfg.limits.max_txs_per_block)

    def prev_block_id(self, slot: int) -> bytes:
        if slot < 1 or slot > self.ledger.num_blocks():
            return b""
        cached = self._block_ids.get(slot - 1)
        if cached is None:
            cached = self._block_ids[slot - 1] = self.ledger.get_block(slot - 1).id
            while len(self._block_ids) > 16:  # recent slots only: others are rare
                self._block_ids.popitem(last=False)
        return cached

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._timer_loop(), name="scp-timers"),
            asyncio.create_task(self._catchup_loop(), name="catchup"),
        ]
        self.metrics.block_height.set(self.ledger.num_blocks())
        self._update_metrics()

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._background]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    # -- outgoing -----------------------------------------------------------------------
    def _broadcast(self, msg: Msg | None) -> None:
        if msg is None:
            return
        self._persist(msg)
        self.log.debug("scp out", slot=msg.slot_index, kind=type(msg.topic).__name__)
        wire = sign_msg(msg, self.prev_block_id(msg.slot_index), self.key, self.cfg.name)
        self._last_sent = wire
        self.seen(dedup_key(wire), self.cfg.name, set(self.peers))
        for p in self.peers.values():
            p.send(wire)
        self._wake.set()

    def _persist(self, msg: Msg) -> None:
        """Restart safety: our ballot statement is durable before it leaves the node."""
        ballot = ballot_to_save(msg, self.ledger.num_blocks(), self._saved_ballot)
        if ballot is not None:
            self.state_store.save(msg)
            self._saved_ballot = ballot

    def has_seen(self, key: bytes) -> bool:
        return key in self._seen

    def seen(self, key: bytes, holder: str, also: set[str] | None = None) -> bool:
        """Note that `holder` (and `also`) have message `key`; True if it was new to us.

        Flooding with memory: a message is relayed once, only to peers not known to have
        it (its signer, and whoever handed us a copy)."""
        holders = self._seen.get(key)
        if holders is not None:
            holders.add(holder)
            return False
        self._seen[key] = {holder, *(also or ())}
        while len(self._seen) > RELAY_MEMORY:
            self._seen.popitem(last=False)
        return True

    def latest_wire_msg(self) -> pb.ConsensusMsg | None:
        return self._last_sent

    # -- timers ---------------------------------------------------------------------------
    async def _timer_loop(self) -> None:
        while True:
            due = self.scp.next_timeout()
            delay = 3600.0 if due is None else max(0.0, due - time.monotonic())
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            due = self.scp.next_timeout()
            if due is not None and due <= time.monotonic():
                try:
                    outs = self.scp.process_timeouts()
                    self._drain_decisions()
                    for m in outs:
                        self._broadcast(m)
                except LedgerUnusable as e:
                    self._die(str(e))
                    return
                self._update_metrics()

    # -- incoming consensus messages --------------------------------------------------------
    def on_peer_msg(self, checked: CheckedMsg, key: bytes) -> None:
        """A verified message, new to us, from a configured peer (or relayed by one).
        Handled at once (no task per message); only fetching missing txs runs as a task."""
        msg = checked.msg
        self.metrics.msgs_in.inc()
        self.log.debug(
            "scp in",
            slot=msg.slot_index,
            kind=type(msg.topic).__name__,
            sender=msg.sender_id,
            peer=checked.peer,
        )
        self.peer_quorum_sets[msg.sender_id] = msg.quorum_set
        link = self.peers.get(checked.peer)
        if link is not None:
            link.last_heard = time.time()
            link.slot = max(link.slot, msg.slot_index)
        holders = self._seen.get(key, set())
        holders.add(checked.peer)
        # The signer sent this to every peer it knows, and its quorum set names only peers
        # it knows (config rule): those need no relay. Relay to the rest, once.
        holders.update(msg.quorum_set.nodes())
        if any(name not in holders for name in self.peers):
            relay = pb.ConsensusMsg()
            relay.CopyFrom(checked.wire)
            relay.relayed_by = self.cfg.name
            for name, p in self.peers.items():
                if name not in holders:
                    p.send(relay)
                    holders.add(name)
        self._deliver(checked)

    def _deliver(self, checked: CheckedMsg, attempt: int = 0) -> None:
        """Hand a peer's message to SCP once we can judge it: messages for a later slot
        wait here until we get there, and txs it names that we lack are fetched first."""
        msg = checked.msg
        if msg.slot_index <= self.ledger.num_blocks():
            ours = self.prev_block_id(msg.slot_index)
            if ours and checked.prev_block_id != ours:
                self.metrics.msgs_dropped.labels("other_chain").inc()
                self.log.warning(
                    "message builds on another chain", peer=checked.peer, slot=msg.slot_index
                )
                return
        if msg.slot_index > self.ledger.num_blocks() + 1:
            self._wake_catchup()
        cur = self.scp.current_slot_index
        if cur < msg.slot_index <= cur + self.cfg.scp.max_future_slots:
            # Held here rather than in SCP's own buffer: SCP would judge it the moment we
            # reach its slot, before we could fetch the txs it names, and drop it.
            held = self._held.setdefault(msg.slot_index, [])
            if len(held) < HELD_PER_SLOT:
                held.append(checked)
            return
        if msg.slot_index == cur:
            missing = [v for v in msg_values(msg) if v not in self.pool]
            if missing:
                self._spawn(self._fetch_and_deliver(checked, missing, attempt))
                return
        self._handle(msg)

    async def _fetch_and_deliver(
        self, checked: CheckedMsg, missing: list[bytes], attempt: int
    ) -> None:
        """`_deliver`'s slow path: fetch the txs a message names that we lack, then hand
        it to SCP."""
        cur = self.scp.current_slot_index
        await self._fetch_txs(checked.peer, missing)
        if self.scp.current_slot_index != cur:
            return
        if attempt < FETCH_RETRIES and any(v not in self.pool for v in missing):
            # The peer was busy or the call failed: SCP would drop the message (values it
            # cannot judge), and the peer may not say it again. Retry a few times; after
            # that SCP judges what we have.
            asyncio.get_running_loop().call_later(
                0.1 * (attempt + 1), self._deliver_later, checked, attempt + 1
            )
            return
        self._handle(checked.msg)

    def _deliver_later(self, checked: CheckedMsg, attempt: int = 0) -> None:
        """`_deliver` from a loop callback: a failure is logged and counted like a task's."""
        try:
            self._deliver(checked, attempt)
        except Exception as e:
            self.metrics.errors.labels("task").inc()
            self.log.error("delivering a held message failed", error=repr(e))

    def _handle(self, msg: Msg) -> None:
        try:
            out = self.scp.handle_message(msg)
            self._drain_decisions()
        except LedgerUnusable as e:
            self._die(str(e))
            return
        self._broadcast(out)
        self._update_metrics()
        self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run `coro` as a task the driver keeps (and cancels on stop); a failure is
        logged and counted, never lost."""
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.metrics.errors.labels("task").inc()
            self.log.error("driver task failed", error=repr(task.exception()))

    def _release_held(self) -> None:
        """We reached a new slot: deliver what peers already said about it."""
        cur = self.scp.current_slot_index
        for slot in [s for s in self._held if s <= cur]:
            msgs = self._held.pop(slot)
            if slot == cur:
                loop = asyncio.get_running_loop()
                for checked in msgs:  # after this turn: we may be inside SCP's callback
                    loop.call_soon(self._deliver_later, checked)

    # Enclave-to-enclave traffic. Each pair of nodes has two Noise sessions: the one we
    # initiated ("out:<peer>": our relays to the peer, its answers to our fetches) and the
    # one it initiated ("in:<peer>": its relays to us, our answers to its fetches). Noise
    # numbers its messages implicitly, so each session must see them in order: whoever
    # initiated a session makes one call at a time on it (the per-peer lock below), and the
    # other side only answers. The enclave treats these labels as opaque names.
    @staticmethod
    def out_label(peer: str) -> str:
        return f"out:{peer}"

    @staticmethod
    def in_label(peer: str) -> str:
        return f"in:{peer}"

    def _lock(self, peer: str) -> asyncio.Lock:
        lock = self._peer_locks.get(peer)
        if lock is None:
            lock = self._peer_locks[peer] = asyncio.Lock()
        return lock

    async def _fetch_txs(self, peer: str, hashes: list[bytes]) -> None:
        link = self.peers.get(peer)
        if link is None:
            return
        async with self._lock(peer):
            hashes = [h for h in hashes if h not in self.pool]  # maybe arrived meanwhile
            if not hashes:
                return
            try:
                await self._ensure_session(link)
                resp = await link.call(
                    link.peer.FetchTxs,
                    pb.FetchTxsRequest(from_peer=self.cfg.name, tx_hashes=hashes),
                    timeout=FETCH_TIMEOUT,
                )
                if resp.ciphertext:
                    self._accept_peer_txs(self.out_label(peer), bytes(resp.ciphertext))
            except (grpc.aio.AioRpcError, EnclaveError) as e:
                self.metrics.errors.labels("fetch_txs").inc()
                detail = e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e)
                self.log.warning(
                    "fetching txs failed",
                    peer=peer,
                    count=len(hashes),
                    error=type(e).__name__,
                    detail=detail,
                )
                self._peer_sessions.discard(peer)

    async def _ensure_session(self, link: PeerLink) -> None:
        """Called with the peer's lock held."""
        if link.name in self._peer_sessions:
            return
        label = self.out_label(link.name)
        hello = self.enclave.peer_initiate(label)
        resp = await link.call(
            link.peer.PeerAuth, pb.PeerAuthRequest(from_peer=self.cfg.name, handshake=hello)
        )
        self.enclave.peer_complete(label, bytes(resp.handshake))
        self._peer_sessions.add(link.name)

    def _accept_peer_txs(self, label: str, ciphertext: bytes) -> tuple[int, int]:
        ok = bad = 0
        for ctx in self.enclave.peer_tx_propose(label, ciphertext):
            try:
                if self.pool.add(ctx):
                    self.metrics.txs_validated.labels("peer").inc()
                ok += 1
            except PoolFull:
                bad += 1
                self.metrics.txs_rejected.labels("OVER_CAPACITY").inc()
        if ok:
            self.metrics.pending.set(len(self.pool))
        return ok, bad

    def accept_relayed_txs(self, peer: str, ciphertext: bytes) -> tuple[int, int]:
        """A peer relayed txs to us (over the session it initiated)."""
        ok, bad = self._accept_peer_txs(self.in_label(peer), ciphertext)
        self.log.debug("relayed txs", peer=peer, accepted=ok, refused=bad)
        if ok:
            self.nominate()
        return ok, bad

    # -- client transactions -----------------------------------------------------------------
    def add_client_tx(self, ctx: WellFormedTxContext) -> bool:
        """A validated client tx: pool it, relay it to peers, nominate. Raises PoolFull."""
        added = self.pool.add(ctx)
        self.log.debug("client tx", tx=ctx.tx_hash[:8], new=added)
        self.metrics.pending.set(len(self.pool))
        if added:
            self.metrics.txs_validated.labels("client").inc()
            self._relay(ctx.tx_hash)
            self.nominate()
        return added

    def _relay(self, tx_hash: bytes) -> None:
        """Send a client's tx to every peer's enclave. No fixed delay: while a relay call
        to a peer is in flight, newer txs gather and go to it together in the next one,
        so batches grow with load by themselves."""
        for name, link in self.peers.items():
            self._relay_pending[name].append(tx_hash)
            if name not in self._relaying:
                self._relaying.add(name)
                self._spawn(self._relay_loop(link))

    async def _relay_loop(self, link: PeerLink) -> None:
        try:
            while self._relay_pending[link.name]:
                hashes, self._relay_pending[link.name] = self._relay_pending[link.name], []
                await self._relay_to(link, hashes)
        finally:
            self._relaying.discard(link.name)

    async def _relay_to(self, link: PeerLink, hashes: list[bytes]) -> None:
        async with self._lock(link.name):
            try:
                await self._ensure_session(link)
                blob = self.enclave.txs_for_peer(self.out_label(link.name), hashes)
                if blob:
                    await link.call(
                        link.peer.ProposeTxs,
                        pb.EncryptedTxs(from_peer=self.cfg.name, ciphertext=blob),
                    )
            except (grpc.aio.AioRpcError, EnclaveError):
                self._peer_sessions.discard(link.name)  # it will fetch by hash if needed

    def nominate(self) -> None:
        """Nominate now (at the end of this turn of the event loop), or, if we nominated
        less than NOMINATE_SPACING ago, then: txs arriving meanwhile share one message."""
        if not self._nominate_scheduled:
            self._nominate_scheduled = True
            wait = self._last_nomination + NOMINATE_SPACING - time.monotonic()
            loop = asyncio.get_running_loop()
            if wait > 0:
                loop.call_later(wait, self._nominate_now)
            else:
                loop.call_soon(self._nominate_now)

    def _nominate_now(self) -> None:
        """Offer the oldest pending txs to SCP, once the minimum block interval has passed."""
        self._nominate_scheduled = False
        if self.sync_state != SERVING or not len(self.pool):
            return
        wait = self._last_block_at + self.cfg.min_block_interval - time.monotonic()
        if wait > 0:
            self._nominate_scheduled = True  # one timer, not one per arriving tx
            asyncio.get_running_loop().call_later(wait, self._nominate_now)
            return
        if not self._slot_active:
            self._slot_active = True
            self._slot_started = time.monotonic()
        self._last_nomination = time.monotonic()
        self.log.debug("nominate", slot=self.scp.current_slot_index, pending=len(self.pool))
        try:
            out = self.scp.propose_values(self.pool.oldest(self.cfg.limits.values_per_slot))
            self._drain_decisions()
        except LedgerUnusable as e:
            self._die(str(e))
            return
        self._broadcast(out)
        self._update_metrics()
        self._wake.set()  # SCP may have armed a timer (a nomination round) even if silent

    # -- externalize -> block -------------------------------------------------------------------
    def _drain_decisions(self) -> None:
        """Blocks for the slots SCP decided in the call just made (outside that call)."""
        for ev in self.scp.take_externalized():
            self._externalized(ev.slot_index, list(ev.values))

    def _externalized(self, slot: int, values: list[bytes]) -> None:
        """SCP decided slot `slot`: form, append and publish block `slot`."""
        elapsed = time.monotonic() - self._slot_started
        self.metrics.slot_seconds.observe(elapsed)
        self.metrics.phase_seconds.labels("EXTERNALIZE").observe(elapsed)
        if self.ledger.num_blocks() != slot:
            self.log.warning(
                "externalized out of step with the ledger",
                slot=slot,
                blocks=self.ledger.num_blocks(),
            )
            self._wake_catchup()
            return
        parent = self.ledger.last_block()
        try:
            if parent is None:
                raise LedgerError("the ledger has no origin block")
            formed = self.enclave.form_block(list(values), parent, int(time.time()))
            data = formed.block_data
            if data is None:
                raise EnclaveError("no transaction of the slot survived the block checks")
            self.ledger.append_block(data)
        except LedgerCorruptError as e:
            raise LedgerUnusable(f"ledger unusable: {e}") from e
        except (EnclaveError, LedgerError) as e:
            self.metrics.errors.labels("form_block").inc()
            self.log.error(
                "could not form block; will catch up from peers", slot=slot, error=str(e)
            )
            self._wake_catchup()
            return
        included = list(formed.included)
        dropped = [h for h, _ in formed.dropped]
        self.pool.remove(included)
        self.pool.remove(dropped)
        self.enclave.forget([*included, *dropped])
        self.metrics.txs_committed.inc(len(included))
        self.log.info(
            "block appended",
            block=slot,
            txs=len(included),
            dropped=len(formed.dropped),
            id=data.block.id,
            ms=round(elapsed * 1000, 1),
        )
        self._after_block()

    def _after_block(self) -> None:
        n = self.ledger.num_blocks()
        self.metrics.block_height.set(n)

        def still_ok(ctx: WellFormedTxContext) -> bool:
            try:
                self.enclave.tx_is_well_formed(ctx.tx_hash, n)
                return True
            except EnclaveError:
                return False

        dropped = self.pool.prune(n, still_ok)
        if dropped:
            self.enclave.forget(dropped)
            self.metrics.txs_rejected.labels("STALE_AFTER_BLOCK").inc(len(dropped))
        self.metrics.pending.set(len(self.pool))
        self._last_block_at = time.monotonic()
        self._slot_started = time.monotonic()
        self._slot_active = False
        self._phase_seen.clear()
        self._release_held()
        self._export_archive()
        if len(self.pool):
            asyncio.get_running_loop().call_soon(self.nominate)

    def _export_archive(self) -> None:
        if self.cfg.archive_export is None:
            return
        try:
            export_archive(self.ledger, LocalDirectory(self.cfg.archive_export))
        except Exception as e:  # an archive problem must not stop consensus
            self.metrics.errors.labels("archive_export").inc()
            self.log.error("archive export failed", error=str(e))

    # -- catch-up ---------------------------------------------------------------------------
    def _wake_catchup(self) -> None:
        self._catchup_event.set()

    def ahead_peers(self) -> list[PeerLink]:
        """Peers that have blocks we lack: they said so when asked (GetLastBlockInfo), or
        they speak about a slot two past ours. (A peer one slot ahead in SCP may just have
        externalized first; SCP replies bring us along.)"""
        n = self.ledger.num_blocks()
        return [p for p in self.peers.values() if p.slot >= n + 2 or p.blocks > n]

    async def _poll_heights(self) -> None:
        """Ask quiet peers how many blocks they have, so that a node that fell behind an
        idle network notices it."""
        now = time.monotonic()
        for p in self.peers.values():
            heard = p.last_heard is not None and time.time() - p.last_heard < HEIGHT_POLL
            asked = p.blocks_asked is not None and now - p.blocks_asked < HEIGHT_POLL
            if heard or asked:
                continue
            try:
                info = await p.call(p.chain.GetLastBlockInfo, pb.Empty(), timeout=2.0)
            except grpc.aio.AioRpcError:
                p.blocks_asked = now
                continue
            p.blocks, p.blocks_asked = int(info.num_blocks), now

    def should_catch_up(self) -> bool:
        if self.scp.current_slot_index > self.ledger.num_blocks():
            return True  # we externalized a block we could not append
        ahead = {p.name for p in self.ahead_peers()}
        if not ahead:
            return False
        qset = self.cfg.quorum_set
        return qset.is_blocked_by(ahead)

    async def _catchup_loop(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._catchup_event.wait(), timeout=0.5)
            self._catchup_event.clear()
            with contextlib.suppress(Exception):
                await self._poll_heights()
            if not self.should_catch_up():
                continue
            try:
                await self.catch_up()
            except LedgerUnusable as e:
                self._die(str(e))
                return
            except Exception as e:  # keep the node up; try again later
                self.metrics.errors.labels("catch_up").inc()
                self.log.error("catch-up failed", error=repr(e))

    async def catch_up(self) -> None:
        async with self._catchup_lock:
            self.sync_state = CATCHING_UP
            self.metrics.catching_up.set(1)
            start = self.ledger.num_blocks()
            self.log.info("catching up", blocks=start, slot=self.scp.current_slot_index)
            try:
                progressed = True
                while progressed and (
                    self.should_catch_up() or self.scp.current_slot_index > self.ledger.num_blocks()
                ):
                    progressed = await self._fetch_blocks()
                    if not progressed:
                        progressed = self._import_archives()
            finally:
                self.sync_state = SERVING
                self.metrics.catching_up.set(0)
            gained = self.ledger.num_blocks() - start
            if gained:
                self.metrics.blocks_caught_up.inc(gained)
                self.log.info("caught up", blocks=self.ledger.num_blocks(), gained=gained)
                self._rejoin()

    async def _fetch_blocks(self) -> bool:
        n = self.ledger.num_blocks()
        candidates = sorted(self.peers.values(), key=lambda p: -p.slot)
        for link in candidates:
            try:
                resp = await link.call(
                    link.chain.GetBlocks,
                    pb.GetBlocksRequest(offset=n, limit=BLOCKS_PER_PAGE),
                    timeout=10.0,
                )
            except grpc.aio.AioRpcError:
                continue
            blocks: list[BlockData] = []
            try:
                for raw in resp.blocks:
                    blocks.append(BlockData.from_bytes(bytes(raw)))
            except ValueError:
                self.log.warning("peer sent undecodable blocks", peer=link.name)
                continue
            if not blocks:
                continue
            try:
                self.ledger.append_blocks(blocks)  # verifies chain, contents, signers
            except LedgerCorruptError as e:
                raise LedgerUnusable(f"ledger unusable: {e}") from e
            except LedgerError as e:
                self.log.warning("peer's blocks rejected", peer=link.name, error=str(e))
                continue
            self.log.info("blocks fetched", peer=link.name, first=n, count=len(blocks))
            return True
        return False

    def _import_archives(self) -> bool:
        if not self.cfg.archive_sources:
            return False
        before = self.ledger.num_blocks()
        for src in self.cfg.archive_sources:
            try:
                import_archive(LocalDirectory(src), self.ledger)
            except Exception as e:
                self.log.warning("archive import failed", source=str(src), error=str(e))
            if self.ledger.num_blocks() > before:
                return True
        return False

    def _rejoin(self) -> None:
        """Resume SCP on the first slot we have no block for."""
        n = self.ledger.num_blocks()
        if self.scp.current_slot_index != n:
            self.scp = self._new_scp(n)
        self._after_block()
        self._wake.set()

    # -- status -----------------------------------------------------------------------------------
    def _update_metrics(self) -> None:
        """Called after every SCP step; the gauges are set only when what they show
        changed (most messages change neither the slot nor the phase)."""
        slot = self.scp.current_slot_index
        progress = self.scp.progress()
        if (slot, progress) == self._shown_progress:
            return
        self._shown_progress = (slot, progress)
        m = self.metrics
        m.slot.set(slot)
        phase, round_, counter = progress
        m.set_phase(phase)
        if phase not in self._phase_seen:
            for earlier in self._phase_seen_before(phase):
                m.phase_seconds.labels(earlier).observe(time.monotonic() - self._slot_started)
            self._phase_seen.add(phase)
        m.nomination_round.set(round_)
        m.ballot_counter.set(counter)

    def _phase_seen_before(self, phase: str) -> Iterable[str]:
        order = ["NOMINATE", "PREPARE", "COMMIT", "EXTERNALIZE"]
        i = order.index(phase) if phase in order else 0
        return [p for p in order[:i] if p not in self._phase_seen]

    def _die(self, reason: str) -> None:
        self.fatal = reason
        self.log.error("stopping: own ledger unusable", error=reason)
