"""The consensus host: the SCP node of one validator, fed from the network, its decisions
turned into blocks.

Rules of this file: it owns the `scp.Node` and is the only caller of it. Every call into
SCP goes through `_step`, which then drains what SCP decided (blocks are made after the
call returns, never inside it), broadcasts what SCP said, and records the trace. All time
comes from the injected `clock` (monotonic) and `wall` (for signed block times and "last
heard"); every timer is one of SCP's, a fetch retry, or the nomination pacer, and
`next_due` / `run_due` are the whole timer interface (aioquic's `get_timer` /
`handle_timer`): the service's one timer task waits for `next_due`, tests call `run_due`.
It holds only `WellFormedTxContext`s and ciphertext; the enclave owns plaintext.

Its collaborators, each in its own module: `Flooding` (who has which message), `Inbox`
(messages SCP cannot judge yet), `NominationPacer`, `TxRelay` (enclave-to-enclave tx
traffic), `BlockMaker`, `CatchUp`, `RestartState`, `SlotTimer`. Its ports: a ledger, an
enclave, peer links, `spawn` for background work and `fail` to stop the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TextIO

from mcnode.crypto.signing import ed25519_sign
from mcnode.enclave.api import PeerEnclave
from mcnode.node.blocks import BlockMaker, LedgerPort, LedgerUnusable
from mcnode.node.catchup import CatchUp, PeerChainCalls
from mcnode.node.config import NodeConfig
from mcnode.node.enclave_port import EnclavePort
from mcnode.node.flood import Flooding
from mcnode.node.health import Observations
from mcnode.node.history import RateHistory, SlotLog, SlotRecord
from mcnode.node.inbox import Inbox
from mcnode.node.logs import NodeLog
from mcnode.node.messages import BadConsensusMsg, CheckedMsg, check_msg, dedup_key, sign_msg
from mcnode.node.metrics import NodeMetrics, SlotTimer
from mcnode.node.pacing import NominationPacer, Round
from mcnode.node.pending import PendingPool, combine_txs
from mcnode.node.state import RestartState
from mcnode.node.tasks import EXIT_LEDGER
from mcnode.node.txrelay import PeerTxCalls, TxRelay
from mcnode.scp import Externalize, Externalized, Msg, Node, QuorumSet
from mcnode.transaction.validation import WellFormedTxContext
from mcnode.wire import consensus_pb2 as pb

# A message naming txs we lack waits this long for them to arrive by relay (they usually
# are in flight: see `_await_relayed`) before we fetch them from the message's peer.
RELAY_GRACE = 0.05
# Peers' EXTERNALIZEs for a slot whose block we still lack this long after the first one
# came wake catch-up. Normally we make the block ourselves within milliseconds. But a
# value we cannot check (it names a tx our enclave refused, as one spending the same key
# image as a tx we hold) keeps us in the slot, and SCP's replies to our own messages do
# not bring us along: the peers have moved on and drop our unchanged rebroadcasts as
# copies. Without this, only the height poll (`catchup.HEIGHT_POLL`, 5 s) would notice.
EXTERNALIZED_GRACE = 1.0


class PeerPort(PeerTxCalls, PeerChainCalls, Protocol):
    """A peer link as the host uses it (`peers.PeerLink`; a fake in tests)."""

    def send(self, msg: pb.ConsensusMsg) -> None: ...


def msg_values(msg: Msg) -> set[bytes]:
    """Every value a message names (what we must hold to judge it)."""
    t = msg.topic
    out: set[bytes] = set()
    for name in ("voted", "accepted"):
        out.update(getattr(t, name, ()) or ())
    for name in ("ballot", "prepared", "prepared_prime", "commit"):
        b = getattr(t, name, None)
        if b is not None:
            out.update(b.values)
    return out


class ConsensusHost:
    def __init__(
        self,
        cfg: NodeConfig,
        signing_key: bytes,
        ledger: LedgerPort,
        enclave: EnclavePort,
        peers: Mapping[str, PeerPort],
        metrics: NodeMetrics,
        log: NodeLog,
        *,
        clock: Callable[[], float],
        wall: Callable[[], float],
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        fail: Callable[[int, str], None],
        on_peer_enclave: Callable[[str, PeerEnclave], None] = lambda _name, _peer: None,
        trace_file: TextIO | None = None,
    ) -> None:
        self.cfg = cfg
        self.key = signing_key
        self.ledger = ledger
        self.peers = peers
        self.metrics = metrics
        self.log = log
        self.clock = clock
        self.wall = wall
        self.spawn = spawn
        self.fail = fail
        self.signers = {p.signing_key: p.name for p in cfg.peers}
        self.pool = PendingPool(cfg.limits.pending_txs)
        self.flood = Flooding(peers)
        self.inbox = Inbox()
        self.pacer = NominationPacer(cfg.min_block_interval)
        self.pacer.block_appended(clock())
        self._settling = False  # a block's aftermath is under way (`_next_slot`)
        self.restart = RestartState(cfg.state_dir, cfg.name)
        self.timer = SlotTimer(metrics, clock)
        self.blocks = BlockMaker(ledger, enclave, self.pool, metrics, log, wall, cfg.archive_export)
        self.txs = TxRelay(
            enclave,
            self.spent,
            peers,
            {p.name: p.signing_key for p in cfg.peers},
            lambda message: ed25519_sign(signing_key, message),
            self.pool,
            metrics,
            log,
            spawn,
            self._new_txs,
            on_peer_enclave,
        )
        self.catchup = CatchUp(
            ledger,
            peers,
            cfg.quorum_set,
            cfg.archive_sources,
            metrics,
            log,
            clock,
            wall,
            decided_ahead=self._decided_ahead,
            rejoin=self.rejoin,
        )
        # Each signer's quorum set as its latest verified message stated it (any slot).
        self.peer_quorum_sets: dict[str, QuorumSet] = {}
        # What operators read (admin /info, /quorum, /scp, /history): each bounded.
        self.observed = Observations()  # what each node said and decided, and what we did
        self.slot_log = SlotLog()  # the slots we decided, with their phase timings
        self.rates = RateHistory(("blocks", "txs"))  # blocks made, txs committed, per 10 s
        self.latest_wire: pb.ConsensusMsg | None = None  # our last signed message
        self._trace_file = trace_file
        self._block_ids: OrderedDict[int, bytes] = OrderedDict()  # block index -> id
        self._wake = asyncio.Event()
        self._pool_grew = asyncio.Event()  # set (and cleared) each time txs join the pool
        # A decided slot's block is being formed (the enclave is asked, then the ledger):
        # SCP waits, and peers' messages for the next slot wait in the inbox, until it is
        # in the ledger. Our messages for slot k+1 name block k; they cannot go out first.
        self.forming = False
        # (slot, clock time): peers externalized `slot`; if we still lack its block then,
        # wake catch-up (`EXTERNALIZED_GRACE`).
        self._stuck_check: tuple[int, float] | None = None
        self.scp = self._build_scp()
        metrics.block_height.set(ledger.num_blocks())
        self.timer.observe(self.scp.current_slot_index, self.scp.progress())

    # -- the SCP node -----------------------------------------------------------------------
    def _build_scp(self) -> Node:
        """SCP on the first slot we have no block for, with our saved votes if we crashed
        in the middle of that slot."""
        slot = self.ledger.num_blocks()
        saved = self.restart.saved_for(slot)
        if saved is not None:
            self.log.info("scp state restored", slot=slot, topic=type(saved.topic).__name__)
        return self._new_scp(slot, saved)

    def _new_scp(self, slot: int, saved: Msg | None = None) -> Node:
        args = (self.cfg.name, self.cfg.quorum_set, self._valid, self._combine)
        kwargs: dict[str, Any] = {"config": self.cfg.scp, "keep_trace": bool(self._trace_file)}
        if saved is not None:
            return Node.from_saved(*args, [saved], self.clock, **kwargs)
        return Node(*args, slot, self.clock, **kwargs)

    def _valid(self, tx_hash: bytes) -> bool:
        """SCP's validity: a pending tx not expired whose key images no block spent. The
        last part matters: the enclave validates beside the host, so a tx it passed just
        before a block spending its key image landed can reach the pool after the block;
        a node that voted for it would have every later statement of the slot refused by
        its peers (who know it is spent), and enough such nodes stall the slot."""
        ctx = self.pool.get(tx_hash)
        return (
            ctx is not None
            and ctx.tombstone_block > self.ledger.num_blocks()
            and not self.spent(ctx)
        )

    def spent(self, ctx: WellFormedTxContext) -> bool:
        """A block in our ledger spends one of `ctx`'s key images."""
        return any(self.ledger.contains_key_image(k) for k in ctx.key_images)

    def _combine(self, values: Sequence[bytes]) -> list[bytes]:
        return combine_txs(values, self.pool.get, self.cfg.limits.max_txs_per_block)

    def prev_block_id(self, slot: int) -> bytes:
        """Id of block `slot - 1` (what slot `slot` builds on), or b"" if we lack it."""
        if slot < 1 or slot > self.ledger.num_blocks():
            return b""
        cached = self._block_ids.get(slot - 1)
        if cached is None:
            cached = self._block_ids[slot - 1] = self.ledger.get_block(slot - 1).id
            while len(self._block_ids) > 16:  # recent slots only: others are rare
                self._block_ids.popitem(last=False)
        return cached

    def _step(self, call: Callable[[], Msg | list[Msg] | None]) -> None:
        """One call into SCP, then what follows it: our messages out, trace and gauges.
        If the call decided a slot, its block is made first (in a task: the enclave forms
        it) and our messages go out once it is in the ledger, as then our EXTERNALIZE
        needs no fdatasync (its block is durable) and slot k+1's messages can name it."""
        out = call()
        decided = self.scp.take_externalized()
        msgs = out if isinstance(out, list) else [out] if out is not None else []
        if decided:
            self.forming = True
            if self._stuck_check is not None and self._stuck_check[0] <= decided[-1].slot_index:
                self._stuck_check = None  # we decided it too: its block is on its way
            self.spawn(self._make_blocks(decided, msgs), "make-block")
        else:
            for m in msgs:
                self._broadcast(m)
        self._write_trace()
        self.timer.observe(self.scp.current_slot_index, self.scp.progress())
        self.metrics.follow_scp(self.scp.stats)
        self._wake.set()  # SCP may have armed or moved a timer

    async def _make_blocks(self, decided: Sequence[Externalized], msgs: list[Msg]) -> None:
        done: list[bytes] = []
        made = False
        try:
            for d in decided:
                elapsed = self.timer.externalized()
                result = await self.blocks.make(d.slot_index, d.values, elapsed)
                if not result.made:
                    self.catchup.wake()
                    break
                made = True
                done.extend(result.done)
                self._record_decided(d.slot_index, d.values, result.txs, elapsed)
        except LedgerUnusable as e:
            self.fail(EXIT_LEDGER, str(e))
            return
        finally:
            self.forming = False
            self._wake.set()
        for m in msgs:
            self._broadcast(m)
        if made:
            await self._next_slot(done)

    def _record_decided(self, slot: int, values: Sequence[bytes], txs: int, elapsed: float) -> None:
        """Slot `slot` is block `slot` in our ledger: note it for the operator's views."""
        now = self.wall()
        self.observed.decided(slot, values, now)
        self.rates.add(now, blocks=1, txs=txs)
        snap = self.scp.slot_state(slot) or {}
        ballot = snap.get("b") or {}
        self.slot_log.add(
            SlotRecord(
                slot=slot,
                decided_at=now,
                txs=txs,
                total_s=elapsed,
                phases=dict(self.timer.left_at),
                nomination_rounds=int(snap.get("round", 0)),
                ballot_counter=int(ballot.get("n", 0)),
            )
        )

    def busy_for(self) -> float | None:
        """Seconds we have worked on the current slot (since our first nomination in it),
        or None when idle."""
        return self.timer.elapsed() if self.timer.active else None

    def _write_trace(self) -> None:
        if self._trace_file is None:
            return
        for rec in self.scp.take_trace():
            self._trace_file.write(json.dumps({"node": self.cfg.name, **rec}) + "\n")

    # -- outgoing ---------------------------------------------------------------------------
    def _broadcast(self, msg: Msg) -> None:
        self.restart.before_send(msg, self.ledger.num_blocks())  # durable before it leaves
        self.log.debug("scp out", slot=msg.slot_index, kind=type(msg.topic).__name__)
        wire = sign_msg(msg, self.prev_block_id(msg.slot_index), self.key, self.cfg.name)
        self.latest_wire = wire
        self.flood.sent_by_us(dedup_key(wire))
        for p in self.peers.values():
            p.send(wire)

    # -- incoming -----------------------------------------------------------------------------
    def receive(self, wire: pb.ConsensusMsg, sender: str) -> int:
        """A consensus message as peer `sender` (the connection's authenticated peer) sent
        it: checked, then handled at once (no task per message). Returns the `PeerResult`
        code for the sender. The wire's own `relayed_by` is not read: who handed us a copy
        is the connection's peer, never a claim inside the message."""
        key = dedup_key(wire)
        if self.flood.is_known(key):  # a copy: note who has it, nothing else
            self.flood.note_copy(key, sender)
            self.metrics.msgs_duplicate.inc()
            return pb.PEER_OK
        try:
            checked = check_msg(wire, self.signers, self.cfg.limits.max_message_bytes)
        except BadConsensusMsg as e:
            reason = pb.PeerResult.Name(e.code).removeprefix("PEER_").lower()
            self.metrics.msgs_dropped.labels(reason).inc()
            return e.code
        if self.flood.first_sight(key, sender):
            try:
                self._on_new_msg(checked, key)
            except Exception as e:  # a bug must not end the peer's stream; it is reported
                self.metrics.errors.labels("consensus_msg").inc()
                self.log.error("handling a consensus message failed", exc=True, error=repr(e))
        return pb.PEER_OK

    def _on_new_msg(self, checked: CheckedMsg, key: bytes) -> None:
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
        self.observed.heard(msg.sender_id, msg.slot_index, msg.topic, self.wall())
        link = self.peers.get(checked.peer)
        if link is not None:
            link.last_heard = self.wall()
            link.slot = max(link.slot, msg.slot_index)
        if isinstance(msg.topic, Externalize):
            self._peer_externalized(msg.sender_id, msg.slot_index)
        targets = self.flood.relay_targets(key, msg.quorum_set.nodes())
        if targets:
            relay = pb.ConsensusMsg()
            relay.CopyFrom(checked.wire)
            relay.relayed_by = self.cfg.name
            for name in targets:
                self.peers[name].send(relay)
        self.deliver(checked)

    def _peer_externalized(self, signer: str, slot: int) -> None:
        """`signer` (authenticated) externalized `slot`: it holds blocks 0..slot (a node
        sends its EXTERNALIZE once the block is in its ledger). If that is a block we
        lack, check again after `EXTERNALIZED_GRACE`. A check already due is never moved
        later, so a peer sending EXTERNALIZEs for ever new slots cannot put it off; a
        check only wakes catch-up, which acts only on a v-blocking set of peers ahead."""
        link = self.peers.get(signer)
        if link is not None:
            link.blocks = max(link.blocks, slot + 1)
        if slot >= self.ledger.num_blocks() and self._stuck_check is None:
            self._stuck_check = (slot, self.clock() + EXTERNALIZED_GRACE)
            self._wake.set()

    def deliver(self, checked: CheckedMsg, attempt: int = 0) -> None:
        """Hand a peer's message to SCP once we can judge it: one for a later slot waits
        in the inbox until we get there; txs it names that we lack are fetched first."""
        msg = checked.msg
        n = self.ledger.num_blocks()
        if msg.slot_index <= n:
            ours = self.prev_block_id(msg.slot_index)
            if ours and checked.prev_block_id != ours:
                self.metrics.msgs_dropped.labels("other_chain").inc()
                self.observed.other_chain(msg.sender_id, msg.slot_index)
                self.log.warning(
                    "message builds on another chain", peer=checked.peer, slot=msg.slot_index
                )
                return
        if msg.slot_index > n + 1:
            self.catchup.wake()
        cur = self.scp.current_slot_index
        lowest_held = cur if self.forming else cur + 1
        if lowest_held <= msg.slot_index <= cur + self.cfg.scp.max_future_slots:
            self.inbox.hold(checked)
            return
        if msg.slot_index == cur:
            missing = [v for v in msg_values(msg) if v not in self.pool]
            if missing:
                self.spawn(self._fetch_then_deliver(checked, missing, attempt), "fetch-txs")
                return
        self._step(lambda: self.scp.handle_message(msg))

    async def _fetch_then_deliver(
        self, checked: CheckedMsg, missing: list[bytes], attempt: int
    ) -> None:
        cur = self.scp.current_slot_index
        started = self.clock()
        outcome = "relayed"
        if attempt == 0:
            await self._await_relayed(missing, RELAY_GRACE)
        if any(v not in self.pool for v in missing):
            outcome = "fetched"
            await self.txs.fetch(checked.peer, missing)
            if any(v not in self.pool for v in missing):
                outcome = "missing"
        self.metrics.tx_wait_seconds.labels(outcome).observe(self.clock() - started)
        if self.scp.current_slot_index != cur:
            return  # the slot is over: the message is of no use now
        if any(v not in self.pool for v in missing) and self.inbox.retry_later(
            checked, attempt + 1, self.clock()
        ):
            self._wake.set()
            return
        self._step(lambda: self.scp.handle_message(checked.msg))

    async def _await_relayed(self, hashes: list[bytes], grace: float) -> None:
        """Wait up to `grace` seconds for `hashes` to reach the pool by relay. A peer
        relays a new tx and votes for it at once, so its vote often arrives while the
        relayed tx is still in our enclave's checks; fetching it instead would cost a
        round trip to the peer (two one-way delays on a WAN) for a tx a few ms away."""

        async def arrived() -> None:
            while any(v not in self.pool for v in hashes):
                await self._pool_grew.wait()

        with contextlib.suppress(TimeoutError):  # real time: the relay is on the wire
            await asyncio.wait_for(arrived(), grace)

    def _new_txs(self) -> None:
        """Txs joined the pool (a client's or a peer's relay): wake whoever waits for
        them, and nominate."""
        self._pool_grew.set()
        self._pool_grew.clear()
        self.nominate()

    # -- nomination ---------------------------------------------------------------------------
    def nominate(self) -> None:
        """Offer pending txs to SCP as soon as the pacer allows."""
        self.pacer.request()
        self._wake.set()

    def _nomination_round(self) -> Round:
        """(slot, nomination round) that a nomination now would be in (one that starts
        the slot's nomination starts round 1)."""
        return self.scp.current_slot_index, max(1, self.scp.progress()[1])

    def _nominate_now(self) -> None:
        if not self.catchup.serving or not len(self.pool) or self.forming or self._settling:
            return  # settling: `_next_slot` asks again once the pool is pruned
        self.timer.work_started()
        self.pacer.nominated(self._nomination_round())
        self.log.debug("nominate", slot=self.scp.current_slot_index, pending=len(self.pool))
        values = self.pool.oldest(self.cfg.limits.values_per_slot)
        self._step(lambda: self.scp.propose_values(values))

    # -- timers -------------------------------------------------------------------------------
    def next_due(self) -> float | None:
        """Clock time of the next timer (SCP's, a fetch retry, the pacer, the check that
        wakes catch-up for a slot peers externalized and we have not), or None. While a
        block is being formed only retries and that check count: SCP and the pacer wait
        for it."""
        stuck = None if self._stuck_check is None else self._stuck_check[1]
        if self.forming:
            times: tuple[float | None, ...] = (self.inbox.next_due(), stuck)
        else:
            pacer = self.pacer.due_at(self._nomination_round())
            times = (self.scp.next_timeout(), self.inbox.next_due(), pacer, stuck)
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def run_due(self) -> None:
        """Fire every timer due by now."""
        now = self.clock()
        for checked, attempt in self.inbox.take_due(now):
            self.deliver(checked, attempt)
        if self._stuck_check is not None and self._stuck_check[1] <= now:
            slot, _ = self._stuck_check
            self._stuck_check = None
            if not self.forming and self.ledger.num_blocks() <= slot:
                self.log.info("peers externalized a slot we have not", slot=slot)
                self.catchup.wake()  # it fetches the block if a v-blocking set has it
        if self.forming:
            return
        if self.pacer.take(now, self._nomination_round()):
            self._nominate_now()
        due = self.scp.next_timeout()
        if due is not None and due <= self.clock() and not self.forming:
            self._step(self.scp.process_timeouts)

    async def run_timers(self) -> None:
        """The service's timer task: wait for the next due time or a wake-up, fire."""
        while True:
            self._wake.clear()
            due = self.next_due()
            timeout = None if due is None else max(0.0, due - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self.run_due()

    # -- blocks -------------------------------------------------------------------------------
    def _decided_ahead(self) -> bool:
        """SCP decided a slot whose block is not in the ledger (and is not being formed)."""
        return not self.forming and self.scp.current_slot_index > self.ledger.num_blocks()

    async def _next_slot(self, done: Sequence[bytes] = ()) -> None:
        """The ledger grew: prune, publish, and start the slot's work (what peers already
        said about it, and our pending txs)."""
        # Until the pool is pruned for the new ledger (txs the block spent or settled),
        # no nomination: it would name txs that can no longer go in a block.
        self._settling = True
        try:
            await self.blocks.after_blocks(done)
        finally:
            self._settling = False
        self.timer.next_slot()
        self.pacer.block_appended(self.clock())
        for checked in self.inbox.release(self.scp.current_slot_index):
            self.deliver(checked)
        if len(self.pool):
            self.nominate()

    async def rejoin(self, gained: int) -> None:
        """Catch-up is done: SCP moves to the first slot we have no block for. Never back:
        a node that restarted SCP on a slot it already spoke in would forget its votes."""
        n = self.ledger.num_blocks()
        if n > self.scp.current_slot_index:
            self.scp = self._new_scp(n)
        if gained:
            await self._next_slot()
        self._wake.set()

    def enclave_restarted(self) -> None:
        """Our enclave process was restarted: what it held is gone. The pool's txs are
        dropped (peers still hold them: a slot naming one fetches it) and every enclave
        session is made anew."""
        self.metrics.enclave_restarts.inc()
        self.pool.remove(self.pool.oldest(len(self.pool)))
        self.metrics.pending.set(0)
        self.txs.reset()

    def scp_slot_state(self, slot: int) -> dict[str, Any] | None:
        """SCP's snapshot of a live or recent slot, with its trace (for /scp/<slot>)."""
        return self.scp.slot_state(slot)

    def close(self) -> None:
        self.restart.close()
