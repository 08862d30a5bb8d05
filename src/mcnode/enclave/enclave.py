"""`Enclave`: the implementation of `EnclaveApi`, in-process (tests, tools) or inside the
enclave process (`server`), which serves exactly these calls.

It owns the identity key (X25519, for Noise), the block-signing key (Ed25519; in the
enclave process both are generated inside and sealed, `sealing`), every client and peer
session (`peers`), and the plaintext of every tx it has accepted (keyed by tx hash).
The host gets contexts, ciphertext and redacted blocks; refusals carry a result code and
a fixed sentence, never the validator's message (which can name ring members).

Bounds: client sessions live in two tiers, each least-recently-used first with its oldest
evicted when a new one would pass its bound (that client gets BAD_SESSION and handshakes
again: clients of a request/response API never say goodbye, so refusing new sessions
would lock everyone out). A new session is *half-open* (`max_half_open_sessions`): a
handshake costs its sender 32 bytes, so a flood of them may churn this tier, and only
this tier. A session moves to the *established* tier (`max_client_sessions`) when a
message on it decrypts, which only the client that finished the handshake can send;
half-open sessions never evict established ones. Peer session labels (each with at most
one handshake, one pending and one current session) and cached txs are refused past their bound with
`CapacityError` (OVER_CAPACITY), since evicting either would lose consensus work.

Peers exchange txs in batches (`encode_batch`) and ask for txs by hash with fetch
requests (`encode_fetch_request`), both sealed on the session of a label.

Attestation (`config.attestation`; None is mode "off"): in mode "sim" the enclave is its
own simulated quoting enclave (`attestation.EvidenceMaker`, quoting `config.code_identity`)
and every handshake payload it writes, to clients and peers, carries evidence bound to
that handshake; peers' evidence is held to the configuration's policy (`peers`). Mode "off"
offers no evidence and requires none: for in-process tests and tools only.

No wall clock inside: block signing times come from the caller, and the time evidence is
made and checked at comes from `config.now`, a function at the configuration's edge (tests
fix it); `form_block` never calls it. Randomness (session ids, a
generated identity key) comes from `config.rng`. Every public call holds one lock, so the
host may call from worker threads. New txs are validated together where they come
together (`txs_propose`, which the enclave process feeds with the client proposals and
peer batches that arrive at once): their range proofs as one batch, on the
enclave's worker thread while this one checks their ring signatures (`worker.py`: the
enclave's choice, not the transaction rules'); a lone tx's ring signatures run there
beside its range proof. Nothing here logs plaintext: logs are host-side.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

from mcnode import binary
from mcnode.attest.config import AttestationConfig
from mcnode.crypto import RandomSource, system_random
from mcnode.crypto.signing import ed25519_public, x25519_keypair
from mcnode.enclave.api import (
    MAX_FETCH_HASHES,
    EnclaveApi,
    EnclaveLedger,
    FormedBlock,
    PeerEnclave,
    PeerHandshake,
    SessionId,
)
from mcnode.enclave.attestation import CodeIdentity, EvidenceMaker, payload_maker
from mcnode.enclave.checks import check_new_txs, recheck_tx, redacted_contents, select_for_block
from mcnode.enclave.errors import (
    CapacityError,
    EnclaveError,
    MessageDecodeError,
    MessageTooLarge,
    SessionError,
    StaleParent,
    TxRejected,
    UnknownTx,
    code_for,
    run_rules,
)
from mcnode.enclave.noise import (
    CLIENT_PROLOGUE,
    CLIENT_PROTOCOL,
    Handshake,
    Transport,
    peer_prologue,
)
from mcnode.enclave.peers import PeerSessions, PeerTrust
from mcnode.enclave.worker import run_beside
from mcnode.ledger.block import BLOCK_VERSION, Block, BlockData, sign_block
from mcnode.transaction.errors import DecodeError, TxValidationError
from mcnode.transaction.tx import MAX_TX_BYTES, Tx
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE, WellFormedTxContext

log = logging.getLogger(__name__)

#: Largest batch of txs sealed for or opened from a peer, in bytes and in txs (the byte
#: limit binds first for real txs, ~7 KB each; the count bounds a batch of tiny junk).
MAX_PEER_BATCH_BYTES = 32 * 1024 * 1024
MAX_PEER_BATCH_TXS = 10_000
MAX_FETCH_REQUEST_BYTES = 4 + 32 * MAX_FETCH_HASHES
SESSION_ID_BYTES = 16


def unix_now() -> int:
    """The wall clock in whole unix seconds: `EnclaveConfig.now`'s default."""
    return int(time.time())


@dataclass(frozen=True, slots=True)
class EnclaveConfig:
    """What the enclave is started with. Keys never appear in the repr."""

    block_signing_key: bytes = field(repr=False)
    identity_private_key: bytes | None = field(default=None, repr=False)
    minimum_fee: int = DEFAULT_MINIMUM_FEE
    block_version: int = BLOCK_VERSION
    max_client_sessions: int = 10_000
    max_half_open_sessions: int = 2_000
    max_peer_sessions: int = 256
    max_cached_txs: int = 100_000
    rng: RandomSource = field(default=system_random, repr=False)
    #: how to attest and whom to trust (None: mode "off", no evidence offered or required)
    attestation: AttestationConfig | None = None
    #: what the enclave's quotes say it is; required when attestation is not "off"
    code_identity: CodeIdentity | None = None
    #: the time, unix seconds: when evidence is made and peers' evidence is checked
    now: Callable[[], int] = field(default=unix_now, repr=False)

    def __post_init__(self) -> None:
        if len(self.block_signing_key) != 32:
            raise ValueError("block signing key must be a 32-byte Ed25519 seed")
        if self.identity_private_key is not None and len(self.identity_private_key) != 32:
            raise ValueError("identity key must be a 32-byte X25519 private key")
        if self.minimum_fee < 0:
            raise ValueError("minimum fee must be >= 0")
        for name in (
            "max_client_sessions",
            "max_half_open_sessions",
            "max_peer_sessions",
            "max_cached_txs",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        attests = self.attestation is not None and self.attestation.attests
        if attests and self.code_identity is None:
            raise ValueError("an attesting enclave needs its code_identity to quote")

    @property
    def network(self) -> str:
        """The network's name (the attestation configuration's; "" without one)."""
        return "" if self.attestation is None else self.attestation.network


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
        self._clients: OrderedDict[SessionId, Transport] = OrderedDict()  # established
        self._half_open: OrderedDict[SessionId, Transport] = OrderedDict()
        attestation = config.attestation
        self._attestation_mode = "off" if attestation is None else attestation.mode
        self._evidence: EvidenceMaker | None = None
        trust = None
        if attestation is not None and attestation.attests:
            # Mode "sim": load the network's simulated PKI (AttestationConfigError if it
            # does not load; "dcap" is refused there too: no SGX on this machine).
            qe = attestation.load_quoting_enclave(config.rng)
            assert qe is not None and config.code_identity is not None  # attests
            self._evidence = EvidenceMaker(
                qe, config.code_identity, attestation.valid_seconds, config.now
            )
            self._evidence.expires()  # the first collateral, made now
            trust = PeerTrust(attestation.policy, attestation.root_ca_der, config.now)
        self._payload = payload_maker(self._signing_public, self._identity_public, self._evidence)
        self._peers = PeerSessions(
            identity,
            self._payload,
            config.max_peer_sessions,
            prologue=peer_prologue(config.network, config.minimum_fee, config.block_version),
            trust=trust,
        )
        self._txs: dict[bytes, _Cached] = {}
        self._lock = threading.RLock()
        self._beside = run_beside()  # ring signatures on the worker, if there is a free CPU

    def __repr__(self) -> str:
        return (
            f"<Enclave identity={self._identity_public.hex()[:16]} "
            f"clients={len(self._clients)}+{len(self._half_open)} "
            f"peers={len(self._peers)} txs={len(self._txs)}>"
        )

    @property
    def identity_public_key(self) -> bytes:
        return self._identity_public

    @property
    def block_signing_public_key(self) -> bytes:
        return self._signing_public

    @property
    def attestation_mode(self) -> str:
        """ "off" (no evidence offered or required) or "sim"."""
        return self._attestation_mode

    @_locked
    def evidence_expires(self) -> int:
        """Unix seconds when the collateral this enclave serves from now on expires
        (remade first if less than a third of its window is left); 0 when off."""
        return 0 if self._evidence is None else self._evidence.expires()

    # -- clients -----------------------------------------------------------------------

    @_locked
    def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]:
        hs = Handshake(
            CLIENT_PROTOCOL, CLIENT_PROLOGUE, initiator=False, static_private=self._identity_private
        )
        if hs.read(msg1):
            raise SessionError("a client's first handshake message carries no payload")
        msg2 = hs.write(self._payload)  # our block signer, and evidence bound to this handshake
        session = SessionId(self._rng(SESSION_ID_BYTES))
        while len(self._half_open) >= self._config.max_half_open_sessions:
            self._half_open.popitem(last=False)
        self._half_open[session] = hs.transport()
        return session, msg2

    @_locked
    def client_tx_propose(self, session: SessionId, ciphertext: bytes) -> WellFormedTxContext:
        (result,) = self.client_txs_propose([(session, ciphertext)])
        if isinstance(result, EnclaveError):
            raise result
        return result

    def client_txs_propose(
        self, requests: Sequence[tuple[SessionId, bytes]]
    ) -> list[WellFormedTxContext | EnclaveError]:
        """`client_tx_propose` for each (session, ciphertext), in order: per request, the
        context it would return or the error it would raise (`txs_propose`)."""
        return self.txs_propose(requests, ())[0]

    @_locked
    def txs_propose(
        self,
        clients: Sequence[tuple[SessionId, bytes]],
        peers: Sequence[tuple[str, bytes]],
    ) -> tuple[
        list[WellFormedTxContext | EnclaveError], list[list[WellFormedTxContext] | EnclaveError]
    ]:
        """`client_tx_propose` for each (session, ciphertext) of `clients` and
        `peer_tx_propose` for each (label, ciphertext) of `peers`, each kind in order: per
        request, what that call would return or the error it would raise. The new txs of
        all of them are validated together (`_accept_many`: their range proofs as one
        batch), which is why the enclave process gathers the proposals that arrive
        together, a client's and peers' alike, into one call."""
        opened_clients: list[Tx | EnclaveError] = []
        for session, ciphertext in clients:
            try:
                opened_clients.append(_decode_tx(self._open_client(session, ciphertext)))
            except EnclaveError as e:
                opened_clients.append(e)
        opened_peers: list[list[Tx] | EnclaveError] = []
        for label, ciphertext in peers:
            try:
                opened_peers.append(self._open_peer_batch(label, ciphertext))
            except EnclaveError as e:
                opened_peers.append(e)
        txs = [tx for tx in opened_clients if isinstance(tx, Tx)]
        for batch in opened_peers:
            if not isinstance(batch, EnclaveError):
                txs.extend(batch)
        verdicts = iter(self._accept_many(txs))
        client_results = [next(verdicts) if isinstance(tx, Tx) else tx for tx in opened_clients]
        peer_results: list[list[WellFormedTxContext] | EnclaveError] = []
        for (label, _), batch in zip(peers, opened_peers, strict=True):
            if isinstance(batch, EnclaveError):
                peer_results.append(batch)
                continue
            accepted: list[WellFormedTxContext] = []
            refused: dict[str, int] = {}
            for result in (next(verdicts) for _ in batch):
                if isinstance(result, EnclaveError):
                    code = getattr(result, "code", None)
                    key = code.name if code is not None else type(result).__name__
                    refused[key] = refused.get(key, 0) + 1
                else:
                    accepted.append(result)
            if refused:
                log.debug("peer %s: %d txs accepted, refused %s", label, len(accepted), refused)
            peer_results.append(accepted)
        return client_results, peer_results

    def _open_client(self, session: SessionId, ciphertext: bytes) -> bytes:
        transport = self._clients.get(session)
        if transport is not None:
            self._clients.move_to_end(session)
            return transport.open(ciphertext, MAX_TX_BYTES)
        transport = self._half_open.get(session)
        if transport is None:
            raise SessionError("no such session (expired or evicted): handshake again")
        plaintext = transport.open(ciphertext, MAX_TX_BYTES)  # raises unless authentic
        del self._half_open[session]
        while len(self._clients) >= self._config.max_client_sessions:
            self._clients.popitem(last=False)
        self._clients[session] = transport
        return plaintext

    @_locked
    def client_close(self, session: SessionId) -> None:
        self._clients.pop(session, None)
        self._half_open.pop(session, None)

    def _accept_many(self, txs: Sequence[Tx]) -> list[WellFormedTxContext | EnclaveError]:
        """Per tx, in order: its context, or the error refusing it. Txs new to the
        enclave are validated together (`check_new_txs`: range proofs as one batch, ring
        signatures beside it) and the valid ones cached; txs it holds are re-checked
        (`recheck_tx`). New txs past the cache's room are refused with `CapacityError`
        unchecked, in arrival order."""
        block_index = self._ledger.num_blocks()
        room = self._config.max_cached_txs - len(self._txs)
        fresh: dict[bytes, Tx] = {}
        for tx in txs:
            h = tx.tx_hash()
            if h not in self._txs and h not in fresh and len(fresh) < room:
                fresh[h] = tx
        errors = check_new_txs(
            list(fresh.values()),
            self._ledger,
            block_index=block_index,
            minimum_fee=self._config.minimum_fee,
            beside=self._beside,
        )
        verdicts = dict(zip(fresh, errors, strict=True))
        results: list[WellFormedTxContext | EnclaveError] = []
        for tx in txs:
            h = tx.tx_hash()
            cached = self._txs.get(h)
            if cached is not None:  # held before, or a repeat of a tx accepted just now
                results.append(self._recheck(cached, block_index))
            elif h in verdicts:
                error = verdicts[h]
                if error is None:
                    context = WellFormedTxContext.from_tx(tx)
                    self._txs[h] = _Cached(tx, context)
                    results.append(context)
                else:
                    results.append(TxRejected.for_code(code_for(error)))
            else:
                results.append(CapacityError(f"the enclave holds {len(self._txs)} txs, its limit"))
        return results

    def _recheck(self, cached: _Cached, block_index: int) -> WellFormedTxContext | EnclaveError:
        try:
            run_rules(lambda: recheck_tx(cached.tx, self._ledger, block_index=block_index))
        except TxRejected as e:
            return e
        return cached.context

    # -- peers -------------------------------------------------------------------------

    @_locked
    def peer_initiate(self, label: str) -> PeerHandshake:
        return self._peers.initiate(label)

    @_locked
    def peer_accept(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> tuple[PeerHandshake, PeerEnclave]:
        return self._peers.accept(label, message, signature, peer_message_key)

    @_locked
    def peer_complete(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave:
        return self._peers.complete(label, message, signature, peer_message_key)

    @_locked
    def peer_info(self, label: str) -> PeerEnclave:
        return self._peers.info(label)

    @_locked
    def peer_close(self, label: str) -> None:
        """Forget every session and handshake of `label` (in-process callers only)."""
        self._peers.close(label)

    @_locked
    def txs_for_peer(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        return self._peers.seal(label, self._batch_of(tx_hashes))

    @_locked
    def seal_fetch(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        if len(tx_hashes) > MAX_FETCH_HASHES:
            raise MessageTooLarge(f"{len(tx_hashes)} tx hashes, over {MAX_FETCH_HASHES}")
        return self._peers.seal(label, encode_fetch_request(tx_hashes))

    @_locked
    def answer_fetch(self, label: str, sealed_request: bytes) -> bytes:
        transport, plaintext = self._peers.open(label, sealed_request, MAX_FETCH_REQUEST_BYTES)
        try:
            wanted = decode_fetch_request(plaintext)
        except binary.DecodeError:
            wanted = None
        if wanted is None:  # raised outside the handler: nothing rides along as context
            raise MessageDecodeError(f"fetch request from peer {label!r} does not decode")
        return transport.seal(self._batch_of(wanted))

    def _batch_of(self, tx_hashes: Sequence[bytes]) -> bytes:
        """The cached txs among `tx_hashes` (each once, unknown ones skipped) as a batch."""
        txs = [self._txs[h].tx.to_bytes() for h in dict.fromkeys(tx_hashes) if h in self._txs]
        if len(txs) > MAX_PEER_BATCH_TXS:
            raise MessageTooLarge(f"{len(txs)} txs, over {MAX_PEER_BATCH_TXS}: ask for fewer")
        batch = encode_batch(txs)
        if len(batch) > MAX_PEER_BATCH_BYTES:
            raise MessageTooLarge(
                f"{len(txs)} txs make {len(batch)} bytes, over {MAX_PEER_BATCH_BYTES}: "
                "ask for fewer"
            )
        return batch

    def peer_tx_propose(self, label: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        (result,) = self.txs_propose((), [(label, ciphertext)])[1]
        if isinstance(result, EnclaveError):
            raise result
        return result

    def _open_peer_batch(self, label: str, ciphertext: bytes) -> list[Tx]:
        """The txs of a batch sealed on `label`'s session (raises `EnclaveError`)."""
        _, plaintext = self._peers.open(label, ciphertext, MAX_PEER_BATCH_BYTES)
        try:
            encoded = decode_batch(plaintext)
        except binary.DecodeError:
            encoded = None
        if encoded is None:  # raised outside the handler: nothing rides along as context
            raise MessageDecodeError(f"batch from peer {label!r} does not decode")
        return [_decode_tx(data) for data in encoded]

    # -- transactions and blocks -------------------------------------------------------

    @_locked
    def block_appended(self, block_index: int, done: Sequence[bytes]) -> list[bytes]:
        for h in done:
            self._txs.pop(h, None)
        stale: list[bytes] = []
        for tx_hash, cached in self._txs.items():
            try:
                recheck_tx(cached.tx, self._ledger, block_index=block_index)
            except TxValidationError:
                stale.append(tx_hash)
        for tx_hash in stale:
            del self._txs[tx_hash]
        return stale

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


def encode_fetch_request(tx_hashes: Sequence[bytes]) -> bytes:
    """u32 count (at most `MAX_FETCH_HASHES`), then each 32-byte hash."""
    w = binary.Writer()
    w.count(len(tx_hashes), MAX_FETCH_HASHES, width=4, what="tx hashes")
    for h in tx_hashes:
        w.fixed(h, 32)
    return w.getvalue()


def decode_fetch_request(data: bytes) -> list[bytes]:
    """The hashes; `binary.DecodeError` unless `data` is exactly one request."""
    r = binary.Reader(data)
    hashes = [r.fixed(32) for _ in range(r.count(MAX_FETCH_HASHES, width=4, what="tx hashes"))]
    r.finish()
    return hashes


def _decode_tx(data: bytes) -> Tx:
    try:
        return Tx.from_bytes(data)
    except DecodeError:
        pass
    raise MessageDecodeError("not the encoding of a transaction")
