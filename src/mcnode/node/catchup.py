"""Catch-up: a validator that fell behind fetches the blocks it lacks and rejoins consensus.

Rules of this file: it decides when we are behind, fetches blocks from peers (or imports
them from archives) and appends them; it never touches SCP (the host's `rejoin` restarts
SCP on the first slot we have no block for). Its state is one `SyncState`, changed only
through `TRANSITIONS` (MobileCoin's `LedgerSyncState` is the model), with a log line per
change. Clients are served only in `SERVING`.

We are behind when we decided a slot we could not append, or when a v-blocking set of
peers has blocks we lack: they speak about a slot at least two past ours (a peer one
slot ahead may just have externalized first; SCP's replies bring us along), or they say
so when asked. Quiet peers are asked their height every `HEIGHT_POLL` seconds, so a node
that fell behind an idle network notices. Nothing is polled otherwise: the host wakes us
when a message shows a peer ahead, a block could not be made, or peers externalized a
slot whose block we still lack a while later (`host.EXTERNALIZED_GRACE`; an EXTERNALIZE
tells the host its signer's height).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from mcnode.ledger.block import BlockData
from mcnode.ledger.errors import LedgerCorruptError, LedgerError
from mcnode.node.archives import ArchiveSource, FetchPolicy, import_source
from mcnode.node.blocks import LedgerPort, LedgerUnusable
from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics
from mcnode.node.peers import PeerCallError
from mcnode.scp import QuorumSet

BLOCKS_PER_PAGE = 100
HEIGHT_POLL = 5.0  # seconds of silence before we ask a peer for its height


class SyncState(enum.Enum):
    SERVING = "serving"  # in step: in consensus, serving clients
    CATCHING_UP = "catching_up"  # fetching blocks from peers
    IMPORTING = "importing"  # no peer had blocks for us: reading archives
    REJOINING = "rejoining"  # blocks appended: SCP restarts on the next slot


S = SyncState
# (state, event) -> next state. Anything else is a bug (`InvalidTransition`).
TRANSITIONS: dict[tuple[SyncState, str], SyncState] = {
    (S.SERVING, "behind"): S.CATCHING_UP,
    (S.CATCHING_UP, "fetched"): S.CATCHING_UP,  # a page appended; maybe more to come
    (S.CATCHING_UP, "in_step"): S.REJOINING,
    (S.CATCHING_UP, "peers_dry"): S.IMPORTING,
    (S.IMPORTING, "imported"): S.CATCHING_UP,
    (S.IMPORTING, "archives_dry"): S.REJOINING,  # what we got, if anything, is kept
    (S.CATCHING_UP, "failed"): S.REJOINING,  # an unexpected error: keep what we got
    (S.REJOINING, "rejoined"): S.SERVING,
}


class InvalidTransition(RuntimeError):
    """A catch-up event that the table does not allow from the current state."""


class PeerChainCalls(Protocol):
    """What catch-up needs of a peer link (`peers.PeerLink`; a fake in tests)."""

    name: str
    slot: int
    blocks: int
    blocks_asked: float | None
    last_heard: float | None

    async def num_blocks(self) -> int: ...

    async def get_blocks(self, offset: int, limit: int) -> list[bytes]: ...


class CatchUp:
    def __init__(
        self,
        ledger: LedgerPort,
        peers: Mapping[str, PeerChainCalls],
        quorum_set: QuorumSet,
        archive_sources: Sequence[ArchiveSource],
        metrics: NodeMetrics,
        log: NodeLog,
        clock: Callable[[], float],
        wall: Callable[[], float],
        decided_ahead: Callable[[], bool],
        rejoin: Callable[[int], Awaitable[None]],
    ) -> None:
        self.ledger = ledger
        self.peers = peers
        self.quorum_set = quorum_set
        self.archive_sources = list(archive_sources)
        self.archive_policy = FetchPolicy()
        self.metrics = metrics
        self.log = log
        self.clock = clock
        self.wall = wall
        self.decided_ahead = decided_ahead  # SCP decided a slot the ledger lacks
        self.rejoin = rejoin  # (blocks gained) -> awaitable: the host restarts SCP
        self.state = SyncState.SERVING
        self._wake = asyncio.Event()

    @property
    def serving(self) -> bool:
        return self.state is SyncState.SERVING

    def fire(self, event: str, **why: object) -> None:
        """Move by the table; one log line when the state changes."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise InvalidTransition(f"{event!r} in state {self.state.value}")
        if new is not self.state:
            self.log.info(
                "sync state",
                old=self.state.value,
                new=new.value,
                on=event,
                blocks=self.ledger.num_blocks(),
                **why,
            )
            self.state = new
            self.metrics.catching_up.set(0 if new is SyncState.SERVING else 1)

    def wake(self) -> None:
        """Something suggests we are behind: look now."""
        self._wake.set()

    # -- when ------------------------------------------------------------------------------
    def ahead_peers(self) -> list[str]:
        n = self.ledger.num_blocks()
        return [p.name for p in self.peers.values() if p.slot >= n + 2 or p.blocks > n]

    def blocks_behind(self) -> int:
        """How many blocks the most advanced peer has that we lack, as far as we know: a
        peer speaking about slot s holds at least blocks 0..s-1 (slot k decides block k),
        and one asked its height said `blocks`. 0 when no peer is known to be ahead."""
        best = max((max(p.slot, p.blocks) for p in self.peers.values()), default=0)
        return max(0, best - self.ledger.num_blocks())

    def behind(self) -> bool:
        if self.decided_ahead():
            return True
        ahead = self.ahead_peers()
        return bool(ahead) and self.quorum_set.is_blocked_by(set(ahead))

    def next_poll(self) -> float | None:
        """Clock time at which some peer becomes quiet enough to be asked its height."""
        times = [self._poll_due(p) for p in self.peers.values()]
        return min(times) if times else None

    def _poll_due(self, p: PeerChainCalls) -> float:
        due = float("-inf")
        if p.last_heard is not None:  # wall time: convert its age to our clock
            due = self.clock() + (p.last_heard + HEIGHT_POLL - self.wall())
        if p.blocks_asked is not None:
            due = max(due, p.blocks_asked + HEIGHT_POLL)
        return due

    async def poll_heights(self) -> None:
        """Ask every quiet peer how many blocks it has."""
        now = self.clock()
        for p in self.peers.values():
            if self._poll_due(p) > now:
                continue
            with contextlib.suppress(PeerCallError):  # asked again after HEIGHT_POLL
                p.blocks = await p.num_blocks()
            p.blocks_asked = now

    # -- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        """Until cancelled: wait for a wake-up or a quiet peer, look, catch up if behind.
        `LedgerUnusable` ends it (the node must stop)."""
        while True:
            due = self.next_poll()
            timeout = None if due is None else max(0.0, due - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            await self.poll_heights()
            if self.behind():
                await self.catch_up()

    async def catch_up(self) -> int:
        """Fetch and append until in step (or no source has more); returns blocks gained.
        Only `LedgerUnusable` escapes: any other failure is logged and counted, what was
        appended is kept, and we rejoin and try again at the next sign."""
        start = self.ledger.num_blocks()
        self.fire("behind", slot_ahead=self.decided_ahead(), peers_ahead=len(self.ahead_peers()))
        try:
            while self.state is not SyncState.REJOINING:
                if self.state is SyncState.CATCHING_UP:
                    if not self.behind():
                        self.fire("in_step")
                    elif await self._fetch_from_peers():
                        self.fire("fetched")
                    else:
                        self.fire("peers_dry")
                elif await self._import_archives():
                    self.fire("imported")
                else:
                    self.fire("archives_dry")
        except (LedgerUnusable, InvalidTransition):
            raise
        except Exception as e:
            self.metrics.errors.labels("catch_up").inc()
            self.log.error("catch-up failed", error=repr(e))
            self.fire("failed")
        gained = self.ledger.num_blocks() - start
        if gained:
            self.metrics.blocks_caught_up.inc(gained)
        await self.rejoin(gained)
        self.fire("rejoined", gained=gained)
        return gained

    async def _fetch_from_peers(self) -> bool:
        """One page of blocks from the first peer (highest slot first) that gives us some
        that check out; False if none did."""
        n = self.ledger.num_blocks()
        for link in sorted(self.peers.values(), key=lambda p: -p.slot):
            try:
                raws = await link.get_blocks(n, BLOCKS_PER_PAGE)
            except PeerCallError:
                continue
            try:
                blocks = [BlockData.from_bytes(raw) for raw in raws]
            except ValueError:
                self.log.warning("peer sent undecodable blocks", peer=link.name)
                continue
            # The slot in progress may have been decided (and its block appended) while the
            # answer was on its way: those blocks we have; a fork shows at the next one.
            first = self.ledger.num_blocks()
            blocks = blocks[max(0, first - n) :]
            if not blocks:
                if first > n:
                    return True
                continue
            try:
                self.ledger.append_blocks(blocks)  # verifies chain, contents, signers
            except LedgerCorruptError as e:
                raise LedgerUnusable(f"ledger unusable: {e}") from e
            except LedgerError as e:
                self.log.warning("peer's blocks rejected", peer=link.name, error=str(e))
                continue
            self.log.info("blocks fetched", peer=link.name, first=first, count=len(blocks))
            return True
        return False

    async def _import_archives(self) -> bool:
        """Import from the first source, in the configured order, that gives us blocks;
        a source that fails (unreachable, garbage, a block refused) is one warning naming
        it, the block we wanted and what was wrong, and we go on to the next. Good blocks
        read before a failure are kept."""
        before = self.ledger.num_blocks()
        for src in self.archive_sources:
            start = self.ledger.num_blocks()
            try:
                await import_source(src, self.ledger, self.archive_policy)
            except LedgerCorruptError as e:
                raise LedgerUnusable(f"ledger unusable: {e}") from e
            except Exception as e:
                self.metrics.errors.labels("archive_import").inc()
                self.log.warning(
                    "archive source failed",
                    source=str(src),
                    block=self.ledger.num_blocks(),
                    error=str(e),
                )
            gained = self.ledger.num_blocks() - start
            if gained:
                self.log.info("blocks imported", source=str(src), first=start, count=gained)
            if self.ledger.num_blocks() > before:
                return True
        return False
