"""`Enclave`: the in-process implementation of `EnclaveApi`.

It owns the identity key (X25519, for Noise), the block-signing key (Ed25519), every
client and peer session, and the plaintext of every tx it has accepted (keyed by tx hash).
The host gets contexts, ciphertext and redacted blocks; refusals carry a result code and
a fixed sentence, never the validator's message (which can name ring members).

Bounds: client sessions are kept least-recently-used first and the oldest is evicted when
a new one would pass `max_client_sessions` (its client gets BAD_SESSION and handshakes
again: clients of a request/response API never say goodbye, so refusing new sessions
would lock everyone out). Peer sessions and cached txs are refused past their bound with
`CapacityError` (OVER_CAPACITY), since evicting either would lose consensus work.

No wall clock: block signing times come from the caller. Randomness (session ids, a
generated identity key) comes from `config.rng`. Every public call holds one lock, so the
host may call from worker threads; a new tx's ring signatures are checked on the enclave's
own worker thread beside its range proof (`worker.py`: the enclave's choice, not the
transaction rules'). Nothing here logs plaintext: logs are host-side.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

from mcnode import binary
from mcnode.crypto import RandomSource, system_random
from mcnode.crypto.signing import ed25519_public, x25519_keypair
from mcnode.enclave.api import EnclaveApi, EnclaveLedger, FormedBlock, SessionId
from mcnode.enclave.checks import check_new_tx, recheck_tx, redacted_contents, select_for_block
from mcnode.enclave.errors import (
    CapacityError,
    EnclaveError,
    MessageDecodeError,
    MessageTooLarge,
    PeerSessionError,
    SessionError,
    StaleParent,
    UnknownTx,
    run_rules,
)
from mcnode.enclave.noise import (
    CLIENT_PROLOGUE,
    CLIENT_PROTOCOL,
    PEER_PROLOGUE,
    PEER_PROTOCOL,
    Handshake,
    Transport,
)
from mcnode.enclave.worker import run_beside
from mcnode.ledger.block import BLOCK_VERSION, Block, BlockData, sign_block
from mcnode.transaction.errors import DecodeError
from mcnode.transaction.tx import MAX_TX_BYTES, Tx
from mcnode.transaction.validation import (
    DEFAULT_MINIMUM_FEE,
    WellFormedTxContext,
    range_proofs_hold,
)

log = logging.getLogger(__name__)

#: Largest batch of txs sealed for or opened from a peer, in bytes and in txs (the byte
#: limit binds first for real txs, ~7 KB each; the count bounds a batch of tiny junk).
MAX_PEER_BATCH_BYTES = 32 * 1024 * 1024
MAX_PEER_BATCH_TXS = 10_000
SESSION_ID_BYTES = 16


@dataclass(frozen=True, slots=True)
class EnclaveConfig:
    """What the enclave is started with. Keys never appear in the repr."""

    block_signing_key: bytes = field(repr=False)
    identity_private_key: bytes | None = field(default=None, repr=False)
    minimum_fee: int = DEFAULT_MINIMUM_FEE
    block_version: int = BLOCK_VERSION
    max_client_sessions: int = 10_000
    max_peer_sessions: int = 256
    max_cached_txs: int = 100_000
    rng: RandomSource = field(default=system_random, repr=False)

    def __post_init__(self) -> None:
        if len(self.block_signing_key) != 32:
            raise ValueError("block signing key must be a 32-byte Ed25519 seed")
        if self.identity_private_key is not None and len(self.identity_private_key) != 32:
            raise ValueError("identity key must be a 32-byte X25519 private key")
        if self.minimum_fee < 0:
            raise ValueError("minimum fee must be >= 0")
        for name in ("max_client_sessions", "max_peer_sessions", "max_cached_txs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclass(frozen=True, slots=True)
class _Cached:
    tx: Tx = field(repr=False)
    context: WellFormedTxContext


P = ParamSpec("P")
R = TypeVar("R")


def _locked(fn: Callable[Concatenate[Enclave, P], R]) -> Callable[Concatenate[Enclave, P], R]:
    @functools.wraps(fn)
    def wrapper(self: Enclave, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return fn(self, *args, **kwargs)

    return wrapper


class Enclave(EnclaveApi):
    def __init__(self, config: EnclaveConfig, ledger: EnclaveLedger) -> None:
        self._config = config
        self._ledger = ledger
        self._rng = config.rng
        identity = config.identity_private_key
        if identity is None:
            identity, _ = x25519_keypair(config.rng)
        self._identity_private = identity
        # x25519_keypair derives the public key from what the rng gives it.
        self._identity_public = x25519_keypair(lambda _n: identity)[1]
        self._signing_key = config.block_signing_key
        self._signing_public = ed25519_public(config.block_signing_key)
        self._clients: OrderedDict[SessionId, Transport] = OrderedDict()
        self._peers: dict[str, Handshake | Transport] = {}
        self._peer_expected: dict[str, bytes] = {}
        self._txs: dict[bytes, _Cached] = {}
        self._lock = threading.RLock()
        self._beside = run_beside()  # ring signatures on the worker, if there is a free CPU

    def __repr__(self) -> str:
        return (
            f"<Enclave identity={self._identity_public.hex()[:16]} "
            f"clients={len(self._clients)} peers={len(self._peers)} txs={len(self._txs)}>"
        )

    @property
    def identity_public_key(self) -> bytes:
        return self._identity_public

    @property
    def block_signing_public_key(self) -> bytes:
        return self._signing_public

    # -- clients -----------------------------------------------------------------------

    @_locked
    def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]:
        hs = Handshake(
            CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=False, static_private=self._identity_private
        )
        if hs.read(msg1):
            raise SessionError("a client's first handshake message carries no payload")
        msg2 = hs.write()
        session = SessionId(self._rng(SESSION_ID_BYTES))
        while len(self._clients) >= self._config.max_client_sessions:
            self._clients.popitem(last=False)
        self._clients[session] = hs.transport()
        return session, msg2

    @_locked
    def client_tx_propose(self, session: SessionId, ciphertext: bytes) -> WellFormedTxContext:
        transport = self._clients.get(session)
        if transport is None:
            raise SessionError("no such session (expired or evicted): handshake again")
        self._clients.move_to_end(session)
        return self._accept(_decode_tx(transport.open(ciphertext, MAX_TX_BYTES)))

    @_locked
    def client_close(self, session: SessionId) -> None:
        self._clients.pop(session, None)

    def _accept(self, tx: Tx, range_proof_checked: bool = False) -> WellFormedTxContext:
        """Validate a tx (or re-check one we hold) and cache it; its context.
        `range_proof_checked`: its range proof passed a batch check already."""
        tx_hash = tx.tx_hash()
        block_index = self._ledger.num_blocks()
        cached = self._txs.get(tx_hash)
        if cached is not None:
            run_rules(lambda: recheck_tx(cached.tx, self._ledger, block_index=block_index))
            return cached.context
        if len(self._txs) >= self._config.max_cached_txs:
            raise CapacityError(f"the enclave holds {len(self._txs)} txs, its limit")
        fee = self._config.minimum_fee
        run_rules(
            lambda: check_new_tx(
                tx,
                self._ledger,
                block_index=block_index,
                minimum_fee=fee,
                range_proof_checked=range_proof_checked,
                beside=self._beside,
            )
        )
        context = WellFormedTxContext.from_tx(tx)
        self._txs[tx_hash] = _Cached(tx, context)
        return context

    # -- peers -------------------------------------------------------------------------

    def _peer_handshake(self, initiator: bool) -> Handshake:
        return Handshake(
            PEER_PROTOCOL, PEER_PROLOGUE, initiator=initiator, static_private=self._identity_private
        )

    def _make_room_for_peer(self, peer_name: str) -> None:
        if peer_name not in self._peers and len(self._peers) >= self._config.max_peer_sessions:
            raise CapacityError(f"{len(self._peers)} peer sessions, the limit")

    def _check_peer_identity(self, peer_name: str, hs: Handshake, expected: bytes | None) -> None:
        if expected is not None and hs.remote_static != expected:
            raise PeerSessionError(f"peer {peer_name!r} is not the enclave identity expected")

    @_locked
    def peer_initiate(self, peer_name: str, expected_identity: bytes | None = None) -> bytes:
        self._make_room_for_peer(peer_name)
        hs = self._peer_handshake(initiator=True)
        msg1 = hs.write()
        self._peers[peer_name] = hs
        if expected_identity is None:
            self._peer_expected.pop(peer_name, None)
        else:
            self._peer_expected[peer_name] = expected_identity
        return msg1

    @_locked
    def peer_accept(
        self, peer_name: str, msg1: bytes, expected_identity: bytes | None = None
    ) -> bytes:
        self._make_room_for_peer(peer_name)
        hs = self._peer_handshake(initiator=False)
        hs.read(msg1)
        self._check_peer_identity(peer_name, hs, expected_identity)
        msg2 = hs.write()
        self._peers[peer_name] = hs.transport()
        return msg2

    @_locked
    def peer_complete(self, peer_name: str, msg2: bytes) -> None:
        hs = self._peers.get(peer_name)
        if not isinstance(hs, Handshake):
            raise PeerSessionError(f"no handshake with peer {peer_name!r} is waiting for a reply")
        expected = self._peer_expected.pop(peer_name, None)
        del self._peers[peer_name]  # a handshake gets one answer: right, or start again
        hs.read(msg2)
        self._check_peer_identity(peer_name, hs, expected)
        self._peers[peer_name] = hs.transport()

    def _peer_transport(self, peer_name: str) -> Transport:
        transport = self._peers.get(peer_name)
        if not isinstance(transport, Transport):
            raise PeerSessionError(f"no session established with peer {peer_name!r}")
        return transport

    @_locked
    def peer_identity(self, peer_name: str) -> bytes:
        identity = self._peer_transport(peer_name).remote_static
        assert identity is not None  # IX always carries both static keys
        return identity

    @_locked
    def peer_close(self, peer_name: str) -> None:
        self._peers.pop(peer_name, None)
        self._peer_expected.pop(peer_name, None)

    @_locked
    def txs_for_peer(self, peer_name: str, tx_hashes: Sequence[bytes]) -> bytes:
        transport = self._peer_transport(peer_name)
        txs = [self._txs[h].tx.to_bytes() for h in dict.fromkeys(tx_hashes) if h in self._txs]
        if len(txs) > MAX_PEER_BATCH_TXS:
            raise MessageTooLarge(f"{len(txs)} txs, over {MAX_PEER_BATCH_TXS}: ask for fewer")
        batch = encode_batch(txs)
        if len(batch) > MAX_PEER_BATCH_BYTES:
            raise MessageTooLarge(
                f"{len(txs)} txs make {len(batch)} bytes, over {MAX_PEER_BATCH_BYTES}: "
                "ask for fewer"
            )
        return transport.seal(batch)

    @_locked
    def peer_tx_propose(self, peer_name: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        transport = self._peer_transport(peer_name)
        try:
            encoded = decode_batch(transport.open(ciphertext, MAX_PEER_BATCH_BYTES))
        except binary.DecodeError:
            encoded = None
        if encoded is None:  # raised outside the handler: nothing rides along as context
            raise MessageDecodeError(f"batch from peer {peer_name!r} does not decode")
        txs = [_decode_tx(data) for data in encoded]
        # The range proofs of the txs new to us are checked as one batch (the costliest
        # rule, several times cheaper per proof so); if the batch fails, every tx gets
        # the full checks one by one, which finds the bad one and its exact error.
        fresh = {tx.tx_hash(): tx for tx in txs if tx.tx_hash() not in self._txs}
        batch_ok = len(fresh) > 1 and range_proofs_hold(list(fresh.values()))
        accepted: list[WellFormedTxContext] = []
        refused: dict[str, int] = {}
        for tx in txs:
            try:
                accepted.append(self._accept(tx, batch_ok and tx.tx_hash() in fresh))
            except EnclaveError as e:
                code = getattr(e, "code", None)
                key = code.name if code is not None else type(e).__name__
                refused[key] = refused.get(key, 0) + 1
        if refused:
            log.debug("peer %s: %d txs accepted, refused %s", peer_name, len(accepted), refused)
        return accepted

    # -- transactions and blocks -------------------------------------------------------

    @_locked
    def tx_is_well_formed(self, tx_hash: bytes, block_index: int) -> WellFormedTxContext:
        cached = self._txs.get(tx_hash)
        if cached is None:
            raise UnknownTx((tx_hash,))
        run_rules(lambda: recheck_tx(cached.tx, self._ledger, block_index=block_index))
        return cached.context

    @_locked
    def form_block(self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int) -> FormedBlock:
        """Every hash must be held (else `UnknownTx`: fetch them from peers first, or
        leave out those a peer's batch did not validate; a node that dropped a tx the
        others kept would sign a different block). Included txs stay cached until the
        host calls `forget`."""
        last = self._ledger.last_block()
        if last is None or last != parent:
            raise StaleParent("form_block's parent is not the ledger's last block")
        if not 0 <= signed_at < 1 << 64:
            raise ValueError("signed_at must fit in a u64")
        unique = list(dict.fromkeys(tx_hashes))
        missing = tuple(h for h in unique if h not in self._txs)
        if missing:
            raise UnknownTx(missing)
        kept, dropped = select_for_block(
            [self._txs[h].tx for h in unique], self._ledger, block_index=parent.index + 1
        )
        included = tuple(tx.tx_hash() for tx in kept)
        if not kept:
            return FormedBlock(None, (), tuple(dropped))
        contents = redacted_contents(kept)
        root = self._ledger.next_block(contents).root_element
        block = Block.new(parent, contents, root, self._config.block_version)
        signature = sign_block(block, self._signing_key, signed_at)
        return FormedBlock(BlockData(block, contents, signature), included, tuple(dropped))

    @_locked
    def forget(self, tx_hashes: Sequence[bytes]) -> None:
        for h in tx_hashes:
            self._txs.pop(h, None)

    @_locked
    def cached_tx_hashes(self) -> frozenset[bytes]:
        return frozenset(self._txs)


def encode_batch(txs: Sequence[bytes]) -> bytes:
    """`var_list` of `mcnode.binary`: u32 count, then u32 length and bytes of each tx."""
    w = binary.Writer()
    w.var_list(txs, MAX_PEER_BATCH_TXS, MAX_TX_BYTES, what="txs")
    return w.getvalue()


def decode_batch(data: bytes) -> list[bytes]:
    """The txs' encodings; `binary.DecodeError` unless `data` is exactly one batch."""
    r = binary.Reader(data)
    txs = r.var_list(MAX_PEER_BATCH_TXS, MAX_TX_BYTES, what="txs")
    r.finish()
    return txs


def _decode_tx(data: bytes) -> Tx:
    try:
        return Tx.from_bytes(data)
    except DecodeError:
        pass
    raise MessageDecodeError("not the encoding of a transaction")
