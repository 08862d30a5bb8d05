"""Transactions between validators: our enclave's authenticated sessions with each peer's
enclave, client txs relayed to every peer, and txs fetched from a peer whose message
names them.

Rules of this file: the host side of enclave-to-enclave traffic. It holds only tx hashes,
`WellFormedTxContext`s and ciphertext; the enclave opens and seals. It never touches SCP.

Each pair of validators has two Noise IX sessions: the one we initiated ("out:<peer>": our
relays to the peer and our fetches from it) and the one the peer initiated ("in:<peer>":
its relays to us and its fetches from us). Noise numbers its messages implicitly, so each
session must see them in order: whoever initiated a session makes one call at a time on it
(the per-peer lock), and the other side only answers.

A session is made only with a configured peer: each host signs its enclave's handshake
message (`peer_auth_message` of its transcript) with its consensus-message key, and the
other enclave checks that signature against the key configured for that peer before it
derives anything. The handshake also tells each side the other enclave's block signer,
which `on_peer_enclave` hands to the node (catch-up checks peers' blocks against it).

Relays batch by themselves: a client's tx goes to each peer at once; txs that arrive while
a relay call to that peer is in flight go together in the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from mcnode.enclave import EnclaveError
from mcnode.enclave.api import PeerEnclave, peer_auth_message
from mcnode.enclave.errors import PeerAuthError
from mcnode.node.enclave_port import EnclavePort
from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics
from mcnode.node.peers import PeerCallError
from mcnode.node.pending import PendingPool, PoolFull
from mcnode.transaction.validation import WellFormedTxContext


class PeerTxCalls(Protocol):
    """What tx relay needs of a peer link (`peers.PeerLink`; a fake in tests). A failed
    call raises `PeerCallError`."""

    name: str

    async def peer_auth(self, handshake: bytes, signature: bytes) -> tuple[bytes, bytes]: ...

    async def fetch_txs(self, sealed_request: bytes) -> bytes: ...

    async def propose_txs(self, ciphertext: bytes) -> None: ...


SESSION_RETRY_MIN, SESSION_RETRY_MAX = 0.5, 30.0


class AlreadySpent(Exception):
    """A block spent one of the tx's key images after the enclave checked it."""


def out_label(peer: str) -> str:
    return f"out:{peer}"


def in_label(peer: str) -> str:
    return f"in:{peer}"


class TxRelay:
    def __init__(
        self,
        enclave: EnclavePort,
        spent: Callable[[WellFormedTxContext], bool],
        peers: Mapping[str, PeerTxCalls],
        peer_keys: Mapping[str, bytes],
        sign: Callable[[bytes], bytes],
        pool: PendingPool,
        metrics: NodeMetrics,
        log: NodeLog,
        spawn: Callable[[Coroutine[Any, Any, None], str], None],
        on_new_txs: Callable[[], None],
        on_peer_enclave: Callable[[str, PeerEnclave], None],
    ) -> None:
        self.enclave = enclave
        # Whether a block in our ledger spends one of a tx's key images. The enclave checks
        # that too, but beside us: a tx it passed may reach us after such a block landed.
        self.spent = spent
        self.peers = peers
        self.peer_keys = peer_keys  # name -> its configured consensus-message key
        self.sign = sign  # our host's consensus-message key, as a function
        self.pool = pool
        self.metrics = metrics
        self.log = log
        self.spawn = spawn
        self.on_new_txs = on_new_txs
        self.on_peer_enclave = on_peer_enclave
        self._sessions: set[str] = set()  # peers we hold an "out" session with
        self._locks: dict[str, asyncio.Lock] = {}
        self._to_relay: dict[str, list[bytes]] = {name: [] for name in peers}
        self._relaying: set[str] = set()  # peers with a relay loop running
        self._lost = {name: asyncio.Event() for name in peers}  # set when a session drops
        # Why our last session attempt with a peer's enclave was refused (for /status);
        # gone once a session is made.
        self.session_errors: dict[str, str] = {}

    def reset(self) -> None:
        """Our enclave restarted: every session it had is gone."""
        self._sessions.clear()
        for lost in self._lost.values():
            lost.set()

    async def keep_session(self, peer: str) -> None:
        """A service: hold a session with `peer`, made again whenever it drops, so that
        we learn its enclave's block signer before catch-up needs it and relays find the
        session ready. A peer that is down is tried again after 0.5 s, doubling to 30 s."""
        backoff = SESSION_RETRY_MIN
        while True:
            self._lost[peer].clear()
            if await self.connect(peer):
                backoff = SESSION_RETRY_MIN
                await self._lost[peer].wait()
            else:
                await asyncio.sleep(backoff)
                backoff = min(SESSION_RETRY_MAX, backoff * 2)

    # -- client txs ---------------------------------------------------------------------
    def add_client_tx(self, ctx: WellFormedTxContext) -> bool:
        """A validated client tx: pool it, relay it to peers, nominate. Raises PoolFull,
        or `AlreadySpent` when a block landed since the enclave checked it."""
        if self.spent(ctx):
            raise AlreadySpent("a block spent one of its key images meanwhile")
        added = self.pool.add(ctx)
        self.log.debug("client tx", tx=ctx.tx_hash[:8], new=added)
        self.metrics.pending.set(len(self.pool))
        if added:
            self.metrics.txs_validated.labels("client").inc()
            self.relay(ctx.tx_hash)
            self.on_new_txs()
        return added

    def relay(self, tx_hash: bytes) -> None:
        for name in self.peers:
            self._to_relay[name].append(tx_hash)
            if name not in self._relaying:
                self._relaying.add(name)
                self.spawn(self._relay_loop(name), f"relay-{name}")

    async def _relay_loop(self, peer: str) -> None:
        try:
            while self._to_relay[peer]:
                hashes, self._to_relay[peer] = self._to_relay[peer], []
                await self._relay_to(peer, hashes)
        finally:
            self._relaying.discard(peer)

    async def _relay_to(self, peer: str, hashes: list[bytes]) -> None:
        link = self.peers[peer]
        async with self._lock(peer):
            try:
                await self._ensure_session(link)
                blob = await self.enclave.txs_for_peer(out_label(peer), hashes)
                if blob:
                    await link.propose_txs(blob)
            except (PeerCallError, EnclaveError) as e:  # the peer fetches by hash if need be
                self._session_failed(peer, "relay", len(hashes), e)

    # -- fetching what a peer's message names ---------------------------------------------
    async def fetch(self, peer: str, hashes: Sequence[bytes]) -> None:
        """Fetch txs we lack from `peer` (over our session with it); failures are logged
        and counted, and leave the pool as it was."""
        link = self.peers.get(peer)
        if link is None:
            return
        async with self._lock(peer):
            wanted = [h for h in hashes if h not in self.pool]  # maybe arrived meanwhile
            if not wanted:
                return
            try:
                await self._ensure_session(link)
                request = await self.enclave.seal_fetch(out_label(peer), wanted)
                blob = await link.fetch_txs(request)
                if blob:
                    await self._accept(out_label(peer), blob)
            except (PeerCallError, EnclaveError) as e:
                self.metrics.errors.labels("fetch_txs").inc()
                self._session_failed(peer, "fetch", len(wanted), e)

    # -- sessions -------------------------------------------------------------------------
    def _lock(self, peer: str) -> asyncio.Lock:
        lock = self._locks.get(peer)
        if lock is None:
            lock = self._locks[peer] = asyncio.Lock()
        return lock

    async def connect(self, peer: str) -> bool:
        """Make our session with `peer` now if we have none (at start, so that we learn
        its enclave's block signer before we need it); True if we hold one after."""
        async with self._lock(peer):
            try:
                await self._ensure_session(self.peers[peer])
            except (PeerCallError, EnclaveError) as e:
                self._session_failed(peer, "connect", 0, e)
        return peer in self._sessions

    async def _ensure_session(self, link: PeerTxCalls) -> None:
        """Called with the peer's lock held."""
        if link.name in self._sessions:
            return
        label = out_label(link.name)
        hello = await self.enclave.peer_initiate(label)
        reply, signature = await link.peer_auth(
            hello.message, self.sign(peer_auth_message(hello.transcript))
        )
        peer = await self.enclave.peer_complete(label, reply, signature, self.peer_keys[link.name])
        self._sessions.add(link.name)
        self.session_errors.pop(link.name, None)
        self.on_peer_enclave(link.name, peer)

    def _session_failed(self, peer: str, what: str, count: int, e: Exception) -> None:
        self._sessions.discard(peer)  # the next call makes a new session
        self._lost[peer].set()
        if what == "connect" and isinstance(e, PeerAuthError):
            self.refused(peer, e)  # its enclave's answer did not prove what it must
            return
        # A relay to a peer that is down fails for every client tx: a debug line. A failed
        # fetch delays a slot: a warning.
        say = self.log.debug if what in ("relay", "connect") else self.log.warning
        say(f"{what} txs failed", peer=peer, count=count, error=type(e).__name__, detail=str(e))

    def refused(self, peer: str, e: PeerAuthError) -> None:
        """Our enclave refused `peer`'s enclave (its evidence, or its handshake): remember
        why for /status, count it, and say so when the reason changes."""
        if e.reason.startswith("attestation"):
            self.metrics.attestation_failures.labels(peer, e.reason).inc()
        before = self.session_errors.get(peer, "")
        if not before.startswith(e.reason + ":"):  # one line per peer and reason
            self.log.warning("peer enclave refused", peer=peer, reason=e.reason, detail=str(e))
        self.session_errors[peer] = f"{e.reason}: {e}"

    # -- what peers send us (the peer API) -------------------------------------------------
    async def accept_session(
        self, peer: str, message: bytes, signature: bytes
    ) -> tuple[bytes, bytes]:
        """A peer opens its session with our enclave, its host's signature vouching for
        it: our answer and our host's signature. Raises `PeerAuthError` (a forgery: nothing
        changed) or another `EnclaveError`."""
        try:
            ours, theirs = await self.enclave.peer_accept(
                in_label(peer), message, signature, self.peer_keys[peer]
            )
        except PeerAuthError as e:
            if e.reason.startswith("attestation"):  # signed by the peer's host: it is the peer
                self.refused(peer, e)
            raise
        self.on_peer_enclave(peer, theirs)
        return ours.message, self.sign(peer_auth_message(ours.transcript))

    async def answer_fetch(self, peer: str, sealed_request: bytes) -> bytes:
        """The txs a peer asks for, sealed over the session it opened. Raises EnclaveError."""
        return await self.enclave.answer_fetch(in_label(peer), sealed_request)

    async def accept_relayed(self, peer: str, ciphertext: bytes) -> tuple[int, int]:
        """A peer relayed txs to us: (accepted, refused). Raises EnclaveError."""
        ok, bad = await self._accept(in_label(peer), ciphertext)
        self.log.debug("relayed txs", peer=peer, accepted=ok, refused=bad)
        if ok:
            self.on_new_txs()
        return ok, bad

    async def _accept(self, label: str, ciphertext: bytes) -> tuple[int, int]:
        ok = bad = 0
        refused: list[bytes] = []
        for ctx in await self.enclave.peer_tx_propose(label, ciphertext):
            if self.spent(ctx):  # a block landed since the enclave checked it
                bad += 1
                refused.append(ctx.tx_hash)
                self.metrics.txs_rejected.labels("KEY_IMAGE_ALREADY_SPENT").inc()
                continue
            try:
                if self.pool.add(ctx):
                    self.metrics.txs_validated.labels("peer").inc()
                ok += 1
            except PoolFull:
                bad += 1
                refused.append(ctx.tx_hash)
                self.metrics.txs_rejected.labels("OVER_CAPACITY").inc()
        if refused:  # what the pool will not hold, the enclave need not hold either
            await self.enclave.forget(refused)
        if ok:
            self.metrics.pending.set(len(self.pool))
        return ok, bad
