"""The enclave: client sessions and proposals, every result code, peer sessions, block
forming, and the rule that the host never sees a plaintext tx."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from mcnode import binary
from mcnode.client.rings import input_credentials
from mcnode.crypto import PEDERSEN_H, Scalar, SeededRandom, commit
from mcnode.crypto.signing import ed25519_keypair, ed25519_sign, x25519_keypair
from mcnode.enclave import (
    CapacityError,
    ClientSession,
    Enclave,
    EnclaveConfig,
    MessageDecodeError,
    MessageTooLarge,
    PeerAuthError,
    PeerEnclave,
    PeerHandshake,
    PeerSessionError,
    ProposeTxError,
    ProposeTxResult,
    ServerIdentityMismatch,
    SessionError,
    SessionId,
    StaleParent,
    UnknownTx,
    checks,
    peer_auth_message,
    worker,
)
from mcnode.enclave.enclave import MAX_FETCH_HASHES, encode_batch
from mcnode.enclave.errors import VALIDATION_CODES
from mcnode.enclave.noise import PEER_PROTOCOL, Handshake, peer_prologue
from mcnode.enclave.peers import HandshakePayload
from mcnode.ledger import Block, BlockContents, BlockData, LedgerDB, check_block_data
from mcnode.transaction import AccountKey, OwnedOutput, Scanner, TransactionBuilder, Tx, validation
from mcnode.transaction.builder import InputCredentials, assemble_tx
from mcnode.transaction.errors import FeeTooLow, TxValidationError
from mcnode.transaction.membership import leaf_hash, tree_root
from mcnode.transaction.txout import create_output
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE, WellFormedTxContext

R = ProposeTxResult
FEE = DEFAULT_MINIMUM_FEE
VALUE = 10**12
SIGNING_SK, SIGNING_PK = ed25519_keypair(SeededRandom(11))
#: Seed of an output that is already in the origin block, for OUTPUT_PUBLIC_KEY_EXISTS.
TAKEN_SEED = 4242
SIGNED_AT = 1_760_000_000
#: Each test host's consensus-message key (Ed25519), by the name its peers know it by.
HOSTS = {name: ed25519_keypair(SeededRandom(50 + i)) for i, name in enumerate("abcdx")}


@dataclass
class World:
    ledger: LedgerDB
    alice: AccountKey
    bob: AccountKey
    owned: list[OwnedOutput]
    rng: SeededRandom

    @property
    def next_index(self) -> int:
        return self.ledger.num_blocks()

    def enclave(self, seed: int = 1, **config: object) -> Enclave:
        rng = SeededRandom(1000 + seed)
        cfg = EnclaveConfig(SIGNING_SK, rng=rng, **config)  # type: ignore[arg-type]
        return Enclave(cfg, self.ledger)

    def creds(self, i: int) -> InputCredentials:
        return input_credentials(self.ledger, self.owned[i], self.rng)

    def pay(
        self,
        *inputs: int,
        value: int = VALUE // 3,
        fee: int = FEE,
        tombstone: int | None = None,
        memo: bytes = b"thanks",
    ) -> Tx:
        tomb = self.next_index + 10 if tombstone is None else tombstone
        b = TransactionBuilder(self.alice, fee=fee, tombstone_block=tomb)
        for i in inputs or (0,):
            b.add_input(self.creds(i))
        b.add_output(self.bob.default_address, value, memo)
        return b.build(self.rng)

    def assemble(self, inputs: list[InputCredentials], outputs: list, fee: int = FEE) -> Tx:
        return assemble_tx(inputs, outputs, fee, self.next_index + 10, self.rng)


def make_world(
    path: Path, seed: int, signers: Collection[bytes] | None = frozenset({SIGNING_PK})
) -> World:
    rng = SeededRandom(seed)
    alice, bob = AccountKey.random(rng), AccountKey.random(rng)
    others = [AccountKey.random(rng) for _ in range(6)]
    owners = [alice] * 16 + others * 4
    tx_outs = [create_output(a.default_address, VALUE, rng).tx_out for a in owners]
    tx_outs.append(create_output(bob.default_address, VALUE - FEE, SeededRandom(TAKEN_SEED)).tx_out)
    tx_outs.sort(key=lambda o: o.public_key)
    contents = BlockContents((), tuple(tx_outs))
    origin = Block.new(None, contents, tree_root([leaf_hash(o) for o in tx_outs]))
    ledger = LedgerDB(path, create=True, expected_signers=signers)
    ledger.append_block(BlockData(origin, contents, None))
    return World(ledger, alice, bob, Scanner(alice).scan(tx_outs), rng)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path / "ledger", 5)
    yield w
    w.ledger.close()


@pytest.fixture(scope="module")
def spent_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A ledger of two blocks: the origin, then a block spending alice's output 7."""
    w = make_world(tmp_path_factory.mktemp("enclave") / "ledger", 6)
    enclave = w.enclave()
    tx = w.pay(7)
    propose(enclave, tx)
    formed = enclave.form_block([tx.tx_hash()], w.ledger.last_block(), SIGNED_AT)
    assert formed.block_data is not None
    w.ledger.append_block(formed.block_data)
    yield w
    w.ledger.close()


@dataclass
class Client:
    session_id: SessionId
    session: ClientSession


def connect(enclave: Enclave) -> Client:
    session = ClientSession.connect(None, None, expected_identity=enclave.identity_public_key)
    session_id, msg2 = enclave.client_handshake(session.first_message)
    session.finish(msg2)
    return Client(session_id, session)


def propose(enclave: Enclave, tx: Tx | bytes, client: Client | None = None) -> WellFormedTxContext:
    client = client or connect(enclave)
    data = tx if isinstance(tx, bytes) else tx.to_bytes()
    return enclave.client_tx_propose(client.session_id, client.session.encrypt_tx(data))


def vouch(host: str, hs: PeerHandshake) -> bytes:
    """What `host` sends along with its enclave's handshake message."""
    return ed25519_sign(HOSTS[host][0], peer_auth_message(hs.transcript))


def peer_up(
    a: Enclave, b: Enclave, a_name: str = "a", b_name: str = "b"
) -> tuple[PeerEnclave, PeerEnclave]:
    """`a` opens a session with `b` (a's label for it is `b_name`, b's is `a_name`), each
    host vouching for its enclave's message: (what a learned of b, what b learned of a)."""
    hs1 = a.peer_initiate(b_name)
    hs2, seen_by_b = b.peer_accept(a_name, hs1.message, vouch(a_name, hs1), HOSTS[a_name][1])
    seen_by_a = a.peer_complete(b_name, hs2.message, vouch(b_name, hs2), HOSTS[b_name][1])
    return seen_by_a, seen_by_b


def _with_prefix(tx: Tx, **changes: object) -> Tx:
    return replace(tx, prefix=replace(tx.prefix, **changes))


def _with_sig(tx: Tx, **changes: object) -> Tx:
    return replace(tx, signature=replace(tx.signature, **changes))


# -- client sessions ---------------------------------------------------------------------


def test_client_proposes_a_real_tx_and_gets_its_context(world: World) -> None:
    enclave = world.enclave()
    tx = world.pay(0)
    ctx = propose(enclave, tx)
    assert ctx == WellFormedTxContext.from_tx(tx)
    assert enclave.cached_tx_hashes() == {tx.tx_hash()}
    # Proposing it again (another session) answers from the cache, after a re-check.
    assert propose(enclave, tx) == ctx
    assert enclave.block_appended(world.next_index, []) == []  # still good for the next block
    assert enclave.cached_tx_hashes() == {tx.tx_hash()}
    enclave.forget([tx.tx_hash(), b"\x01" * 32])
    assert enclave.cached_tx_hashes() == frozenset()


def test_one_session_carries_many_txs(world: World) -> None:
    enclave = world.enclave()
    client = connect(enclave)
    txs = [world.pay(i) for i in range(3)]
    assert [propose(enclave, tx, client).tx_hash for tx in txs] == [t.tx_hash() for t in txs]


def test_client_detects_the_wrong_server_identity(world: World) -> None:
    enclave = world.enclave()
    _, impostor = x25519_keypair(SeededRandom(99))
    session = ClientSession.connect(None, None, expected_identity=impostor)
    _, msg2 = enclave.client_handshake(session.first_message)
    with pytest.raises(ServerIdentityMismatch) as err:
        session.finish(msg2)
    assert err.value.code is R.BAD_SESSION
    with pytest.raises(SessionError):
        session.encrypt_tx(b"tx")


def test_client_without_a_pinned_key_learns_the_identity(world: World) -> None:
    enclave = world.enclave(identity_private_key=bytes(range(32)))
    session = ClientSession.connect(None, None)
    _, msg2 = enclave.client_handshake(session.first_message)
    session.finish(msg2)
    assert session.server_identity == enclave.identity_public_key
    assert enclave.identity_public_key == x25519_keypair(lambda _n: bytes(range(32)))[1]


def test_tampered_ciphertext_is_rejected_and_the_session_survives(world: World) -> None:
    enclave = world.enclave()
    client = connect(enclave)
    tx = world.pay(0)
    ciphertext = client.session.encrypt_tx(tx.to_bytes())
    for i in (0, 2, 100, len(ciphertext) - 1):
        bad = bytearray(ciphertext)
        bad[i] ^= 1
        with pytest.raises(SessionError) as err:
            enclave.client_tx_propose(client.session_id, bytes(bad))
        assert err.value.code is R.BAD_SESSION
    for bad in (ciphertext[:-1], ciphertext[:20], b"", ciphertext + b"\0\0"):
        with pytest.raises(SessionError):
            enclave.client_tx_propose(client.session_id, bad)
    assert enclave.client_tx_propose(client.session_id, ciphertext).tx_hash == tx.tx_hash()
    with pytest.raises(SessionError):  # a replay uses a spent nonce
        enclave.client_tx_propose(client.session_id, ciphertext)


def test_garbage_handshakes_are_refused(world: World) -> None:
    enclave = world.enclave()
    for msg1 in (b"", b"\0" * 31, b"\x09" * 32 + b"junk", b"\0" * 70000):
        with pytest.raises(SessionError):
            enclave.client_handshake(msg1)
    with pytest.raises(SessionError):  # a peer's IX first message is not a client's NX
        enclave.client_handshake(world.enclave(2).peer_initiate("x").message)


def test_client_sessions_are_bounded_oldest_evicted(world: World) -> None:
    enclave = world.enclave(max_client_sessions=2)
    first, second = connect(enclave), connect(enclave)
    tx = world.pay(0)
    propose(enclave, tx, first)
    propose(enclave, tx, second)
    propose(enclave, tx, first)  # first is now the most recently used
    third = connect(enclave)
    propose(enclave, tx, third)  # established: evicts second, the least recently used
    with pytest.raises(SessionError):
        propose(enclave, tx, second)
    propose(enclave, tx, first)
    propose(enclave, tx, third)
    enclave.client_close(third.session_id)
    with pytest.raises(SessionError):
        propose(enclave, tx, third)


def test_a_handshake_flood_never_evicts_a_session_that_carried_a_tx(world: World) -> None:
    """Half-open sessions (a handshake and nothing since) churn among themselves only."""
    enclave = world.enclave(max_client_sessions=4, max_half_open_sessions=8)
    wallet = connect(enclave)
    tx = world.pay(0)
    propose(enclave, tx, wallet)
    late = connect(enclave)  # handshook, has not sent yet
    for _ in range(7):
        enclave.client_handshake(os.urandom(32))  # what an attacker sends
    propose(enclave, tx, late)  # 7 newer half-open sessions: still within the tier's 8
    for _ in range(100):  # a flood of first messages that never go further
        enclave.client_handshake(os.urandom(32))  # what an attacker sends
    propose(enclave, tx, wallet)
    propose(enclave, tx, late)
    victim = connect(enclave)
    for _ in range(8):
        enclave.client_handshake(os.urandom(32))  # what an attacker sends
    with pytest.raises(SessionError):  # half-open, pushed out by 8 newer ones
        propose(enclave, tx, victim)


def test_a_tx_over_one_noise_message_travels_in_frames(world: World) -> None:
    enclave = world.enclave()
    client = connect(enclave)
    big = world.pay(*range(16), value=VALUE)  # 16 inputs, each a ring of 11 with proofs
    assert len(big.to_bytes()) > 65535
    assert propose(enclave, big, client).tx_hash == big.tx_hash()
    # A 200 kB blob is no tx (DECODE_ERROR), but it arrives whole and in step.
    with pytest.raises(MessageDecodeError):
        propose(enclave, b"\x01" * 200_000, client)
    propose(enclave, world.pay(0), client)


# -- every result code ---------------------------------------------------------------------


def _case_decode_error(w: World) -> None:
    propose(w.enclave(), b"\x01not a transaction")


def _case_bad_session(w: World) -> None:
    w.enclave().client_tx_propose(SessionId(bytes(16)), b"\0" * 40)


def _case_over_capacity(w: World) -> None:
    enclave = w.enclave(max_cached_txs=1)
    propose(enclave, w.pay(0))
    propose(enclave, w.pay(1))


def _case_input_count(w: World) -> None:
    propose(w.enclave(), _with_prefix(w.pay(0), inputs=()))


def _case_output_count(w: World) -> None:
    propose(w.enclave(), _with_prefix(w.pay(0), outputs=()))


def _case_ring_size(w: World) -> None:
    tx = w.pay(0)
    tx_in = tx.prefix.inputs[0]
    short = replace(tx_in, ring=tx_in.ring[:10], proofs=tx_in.proofs[:10])
    propose(w.enclave(), _with_prefix(tx, inputs=(short,)))


def _case_unsorted_ring(w: World) -> None:
    tx = w.pay(0)
    tx_in = tx.prefix.inputs[0]
    backwards = replace(tx_in, ring=tx_in.ring[::-1], proofs=tx_in.proofs[::-1])
    propose(w.enclave(), _with_prefix(tx, inputs=(backwards,)))


def _case_unsorted_inputs(w: World) -> None:
    tx = w.pay(0, 1)
    while len({tx_in.ring[0] for tx_in in tx.prefix.inputs}) < 2:  # a tie is in order
        tx = w.pay(0, 1)
    propose(w.enclave(), _with_prefix(tx, inputs=tx.prefix.inputs[::-1]))


def _case_membership_proof(w: World) -> None:
    tx = w.pay(0)
    tx_in = tx.prefix.inputs[0]
    proof = tx_in.proofs[3]
    bad = replace(proof, siblings=(bytes(32), *proof.siblings[1:]))
    tampered = replace(tx_in, proofs=(*tx_in.proofs[:3], bad, *tx_in.proofs[4:]))
    propose(w.enclave(), _with_prefix(tx, inputs=(tampered,)))


def _case_ring_signature(w: World) -> None:
    tx = w.pay(0)
    [sig] = tx.signature.ring_signatures
    flipped = replace(sig, responses=(Scalar(1).to_bytes(), *sig.responses[1:]))
    propose(w.enclave(), _with_sig(tx, ring_signatures=(flipped,)))


def _case_unbalanced(w: World) -> None:
    out = create_output(w.bob.default_address, VALUE - FEE + 1, w.rng)
    propose(w.enclave(), w.assemble([w.creds(3)], [out]))


def _negative_output_tx(w: World) -> Tx:
    """Balanced and signed, but one output holds -10: only the range proof catches it."""
    big = create_output(w.bob.default_address, VALUE - FEE + 10, w.rng)
    zero = create_output(w.alice.default_address, 0, w.rng)
    minus_ten = commit(0, zero.blinding) - Scalar(10) * PEDERSEN_H
    negative = replace(zero, tx_out=replace(zero.tx_out, commitment=minus_ten.encoding))
    outputs = sorted([big, negative], key=lambda o: o.tx_out.public_key)
    return w.assemble([w.creds(3)], outputs)


def _case_range_proof(w: World) -> None:
    propose(w.enclave(), _negative_output_tx(w))


def _case_fee(w: World) -> None:
    propose(w.enclave(), w.pay(0, fee=FEE - 1))


def _case_duplicate_key_image(w: World) -> None:
    first = second = w.creds(4)
    while second.ring[0] == first.ring[0]:  # same output, a ring that sorts differently
        second = w.creds(4)
    inputs = sorted([first, second], key=lambda c: c.ring[0].public_key)
    out = create_output(w.bob.default_address, 2 * VALUE - FEE, w.rng)
    propose(w.enclave(), w.assemble(inputs, [out]))


def _case_duplicate_output_key(w: World) -> None:
    twin = create_output(w.bob.default_address, (VALUE - FEE) // 2, SeededRandom(77))
    again = create_output(w.bob.default_address, (VALUE - FEE) // 2, SeededRandom(77))
    propose(w.enclave(), w.assemble([w.creds(5)], [twin, again]))


def _case_tombstone(w: World) -> None:
    propose(w.enclave(), w.pay(0, tombstone=w.next_index))


def _case_key_image_spent(w: World) -> None:
    propose(w.enclave(), w.pay(7))  # spent in block 1 of `spent_world`


def _case_output_key_exists(w: World) -> None:
    taken = create_output(w.bob.default_address, VALUE - FEE, SeededRandom(TAKEN_SEED))
    propose(w.enclave(), w.assemble([w.creds(2)], [taken]))


CASES: dict[ProposeTxResult, Callable[[World], None]] = {
    R.DECODE_ERROR: _case_decode_error,
    R.BAD_SESSION: _case_bad_session,
    R.OVER_CAPACITY: _case_over_capacity,
    R.INVALID_INPUT_COUNT: _case_input_count,
    R.INVALID_OUTPUT_COUNT: _case_output_count,
    R.INVALID_RING_SIZE: _case_ring_size,
    R.UNSORTED_RING: _case_unsorted_ring,
    R.UNSORTED_INPUTS: _case_unsorted_inputs,
    R.INVALID_MEMBERSHIP_PROOF: _case_membership_proof,
    R.INVALID_RING_SIGNATURE: _case_ring_signature,
    R.UNBALANCED_TX: _case_unbalanced,
    R.INVALID_RANGE_PROOF: _case_range_proof,
    R.FEE_TOO_LOW: _case_fee,
    R.DUPLICATE_KEY_IMAGE: _case_duplicate_key_image,
    R.DUPLICATE_OUTPUT_PUBLIC_KEY: _case_duplicate_output_key,
    R.INVALID_TOMBSTONE: _case_tombstone,
    R.KEY_IMAGE_ALREADY_SPENT: _case_key_image_spent,
    R.OUTPUT_PUBLIC_KEY_EXISTS: _case_output_key_exists,
}


def test_every_code_but_the_hosts_own_has_a_case() -> None:
    assert set(CASES) == set(ProposeTxResult) - {R.OK, R.NOT_SERVING}
    assert [c.value for c in ProposeTxResult] == sorted({c.value for c in ProposeTxResult})


def test_every_validation_error_type_has_a_code() -> None:
    def subclasses(cls: type) -> set[type]:
        return {s for c in cls.__subclasses__() for s in {c} | subclasses(c)}

    assert set(VALIDATION_CODES) == subclasses(TxValidationError)
    assert len(set(VALIDATION_CODES.values())) == len(VALIDATION_CODES)


@pytest.mark.parametrize("code", list(CASES), ids=lambda c: c.name)
def test_each_rejection_carries_its_code(spent_world: World, code: ProposeTxResult) -> None:
    with pytest.raises(ProposeTxError) as err:
        CASES[code](spent_world)
    assert err.value.code is code
    assert str(err.value).startswith(code.name + ": ")
    assert err.value.__cause__ is None and err.value.__context__ is None


def test_a_tx_the_ledger_settled_is_refused_before_its_signatures_are_checked(
    spent_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tx spending a key image the ledger holds is refused on the lookup: neither its
    (here also broken) ring signature nor anything else of it is checked, so sending a
    committed tx again costs a lookup, not a validation. Its batch-mate is validated."""
    validated: list[Tx] = []
    validate_txs = checks.validate_txs

    def counted(txs: Sequence[Tx], **kwargs: Any) -> list[TxValidationError | None]:
        validated.extend(txs)
        return validate_txs(txs, **kwargs)

    monkeypatch.setattr(checks, "validate_txs", counted)
    spent = spent_world.pay(7)  # alice's output 7 was spent in block 1
    [sig] = spent.signature.ring_signatures
    broken = _with_sig(spent, ring_signatures=(replace(sig, c_zero=bytes(32)),))
    fresh = spent_world.pay(1)
    enclave = spent_world.enclave()
    client = connect(enclave)
    results = enclave.client_txs_propose(
        [(client.session_id, client.session.encrypt_tx(tx.to_bytes())) for tx in (broken, fresh)]
    )
    assert isinstance(results[0], ProposeTxError)
    assert results[0].code is R.KEY_IMAGE_ALREADY_SPENT
    assert isinstance(results[1], WellFormedTxContext)
    assert validated == [fresh]


@pytest.mark.parametrize(("cpus", "threaded"), [({0}, False), ({0, 1}, True)])
def test_the_enclave_runs_checks_beside_only_with_a_second_cpu(
    monkeypatch: pytest.MonkeyPatch, cpus: set[int], threaded: bool
) -> None:
    """The worker thread is the enclave's (transaction/ starts none): with one usable CPU
    it would only add hand-offs, so there is none; with two, checks run on it and its
    errors come back to the caller."""
    monkeypatch.setattr(worker.os, "sched_getaffinity", lambda _pid: cpus, raising=False)
    worker._pool.cache_clear()
    try:
        beside = worker.run_beside()
        assert (beside is not None) is threaded
        if beside is not None:
            seen: list[int] = []
            beside(lambda: seen.append(threading.get_ident()))()
            assert seen and seen[0] != threading.get_ident()

            def refuse() -> None:
                raise FeeTooLow("refused on the worker")

            with pytest.raises(FeeTooLow, match="on the worker"):
                beside(refuse)()
    finally:
        worker._pool.cache_clear()


def test_proofs_from_a_tree_the_ledger_never_had_are_invalid(spent_world: World) -> None:
    w = spent_world
    tx = w.pay(0)
    tx_in = tx.prefix.inputs[0]
    # Same proofs, claiming a tree one TxOut larger: no block ended there.
    grown = tuple(replace(p, size=p.size + 1) for p in tx_in.proofs)
    with pytest.raises(ProposeTxError) as err:
        propose(w.enclave(), _with_prefix(tx, inputs=(replace(tx_in, proofs=grown),)))
    assert err.value.code is R.INVALID_MEMBERSHIP_PROOF


def test_proofs_cut_before_the_last_block_still_verify(spent_world: World) -> None:
    # Wallets build against the root they saw; a block later the tx is still good.
    w = spent_world
    old_size = w.ledger.get_block(0).cumulative_txo_count
    assert w.ledger.num_tx_outs() > old_size
    tx = w.pay(1)
    assert all(p.size == w.ledger.num_tx_outs() for p in tx.prefix.inputs[0].proofs)
    propose(w.enclave(), tx)


# -- peers -------------------------------------------------------------------------------


def test_peer_sessions_carry_txs_both_ways(world: World) -> None:
    a, b = world.enclave(1), world.enclave(2)
    seen_by_a, seen_by_b = peer_up(a, b)
    assert seen_by_a == PeerEnclave(b.identity_public_key, b.block_signing_public_key)
    assert seen_by_b == PeerEnclave(a.identity_public_key, a.block_signing_public_key)
    assert a.peer_info("b") == seen_by_a
    tx1, tx2 = world.pay(0), world.pay(1)
    propose(a, tx1)
    propose(b, tx2)

    sealed = a.txs_for_peer("b", [tx1.tx_hash(), b"\x07" * 32, tx1.tx_hash()])
    assert b.peer_tx_propose("a", sealed) == [WellFormedTxContext.from_tx(tx1)]
    assert b.peer_info("a") == seen_by_b  # the session b accepted is in use now
    sealed = b.txs_for_peer("a", [tx2.tx_hash(), tx1.tx_hash()])
    got = a.peer_tx_propose("b", sealed)
    assert [c.tx_hash for c in got] == [tx2.tx_hash(), tx1.tx_hash()]
    assert a.cached_tx_hashes() == b.cached_tx_hashes() == {tx1.tx_hash(), tx2.tx_hash()}
    assert a.peer_tx_propose("b", b.txs_for_peer("a", [])) == []

    with pytest.raises(SessionError):  # a replayed batch
        a.peer_tx_propose("b", sealed)
    with pytest.raises(PeerSessionError):  # sealed for b, not for a's session with c
        a.peer_tx_propose("c", sealed)


def test_fetches_are_answered_on_the_session_they_came_on(world: World) -> None:
    a, b = world.enclave(1), world.enclave(2)
    peer_up(a, b)
    tx1, tx2 = world.pay(0), world.pay(1)
    propose(b, tx1)
    propose(b, tx2)
    request = a.seal_fetch("b", [tx2.tx_hash(), b"\x07" * 32, tx1.tx_hash()])
    answer = b.answer_fetch("a", request)  # opens on b's pending session: now current
    got = a.peer_tx_propose("b", answer)
    assert [c.tx_hash for c in got] == [tx2.tx_hash(), tx1.tx_hash()]
    assert a.cached_tx_hashes() == {tx1.tx_hash(), tx2.tx_hash()}

    # A replayed request, or a batch where a request should be, is refused...
    with pytest.raises(SessionError):
        b.answer_fetch("a", request)
    with pytest.raises(MessageDecodeError):
        b.answer_fetch("a", a.txs_for_peer("b", [tx1.tx_hash()]))
    # ...and the session carries on.
    assert a.peer_tx_propose("b", b.answer_fetch("a", a.seal_fetch("b", []))) == []
    with pytest.raises(MessageTooLarge):
        a.seal_fetch("b", [bytes(32)] * (MAX_FETCH_HASHES + 1))
    with pytest.raises(PeerSessionError):  # nobody opened a session as "c"
        b.answer_fetch("c", a.seal_fetch("b", []))


def _raw_first_message(enclave: Enclave, payload: bytes) -> PeerHandshake:
    """An IX message 1 from `enclave`'s identity key carrying any payload."""
    config = enclave._config
    prologue = peer_prologue(config.network, config.minimum_fee, config.block_version)
    hs = Handshake(
        PEER_PROTOCOL, prologue, initiator=True, static_private=enclave._identity_private
    )
    message = hs.write(payload)
    return PeerHandshake(message, hs.transcript)


def test_an_outsider_cannot_open_a_session_in_a_peers_name(world: World) -> None:
    a, b, x = world.enclave(1), world.enclave(2), world.enclave(3)
    peer_up(a, b)
    tx = world.pay(0)
    propose(b, tx)
    assert a.peer_tx_propose("b", b.answer_fetch("a", a.seal_fetch("b", [tx.tx_hash()])))
    a_key = HOSTS["a"][1]
    own = x.peer_initiate("b")
    elsewhere = a.peer_initiate("other")  # a's host signs this message of a's, not x's
    unknown = _raw_first_message(a, b"\x03" + a.block_signing_public_key)
    attempts = [
        (own.message, vouch("x", own), a_key),  # signed by the outsider's own host key
        (own.message, vouch("a", elsewhere), a_key),  # by a's host, another transcript
        (own.message, b"\0" * 64, a_key),
        (own.message, b"short", a_key),
        (own.message, vouch("a", own), b"\x01" * 31),  # a configured key of the wrong size
        (b"\0" * 10, vouch("a", own), a_key),  # not a handshake message at all
        (unknown.message, vouch("a", unknown), a_key),  # a payload version nobody knows
    ]
    # The control: the same outsider message with a's signature would have been taken.
    assert ed25519_sign(HOSTS["a"][0], peer_auth_message(own.transcript)) != vouch("x", own)
    for message, signature, key in attempts:
        with pytest.raises(PeerAuthError) as err:
            b.peer_accept("a", message, signature, key)
        assert err.value.code is R.BAD_SESSION
    # Nothing changed: nothing the outsider sends opens, and a's session carries on.
    with pytest.raises(SessionError):
        b.answer_fetch("a", b"\0" * 40)
    got = a.peer_tx_propose("b", b.answer_fetch("a", a.seal_fetch("b", [tx.tx_hash()])))
    assert [c.tx_hash for c in got] == [tx.tx_hash()]
    assert b.peer_info("a").identity == a.identity_public_key
    assert len(b._peers) == 1


def test_a_replayed_first_message_leaves_the_real_session_working(world: World) -> None:
    a, b = world.enclave(1), world.enclave(2)
    hs1 = a.peer_initiate("b")
    captured = (hs1.message, vouch("a", hs1))  # off the wire
    hs2, _ = b.peer_accept("a", *captured, HOSTS["a"][1])
    a.peer_complete("b", hs2.message, vouch("b", hs2), HOSTS["b"][1])
    tx1, tx2 = world.pay(0), world.pay(1)
    propose(a, tx1)
    propose(a, tx2)
    assert b.peer_tx_propose("a", a.txs_for_peer("b", [tx1.tx_hash()]))
    # The replay is validly signed, so b answers it, with a session nobody can use...
    _, seen = b.peer_accept("a", *captured, HOSTS["a"][1])
    assert seen.identity == a.identity_public_key
    # ...and a's session carries on: its messages open under the current session.
    got = b.peer_tx_propose("a", a.txs_for_peer("b", [tx2.tx_hash()]))
    assert [c.tx_hash for c in got] == [tx2.tx_hash()]
    assert a.peer_tx_propose("b", b.answer_fetch("a", a.seal_fetch("b", []))) == []
    assert b.cached_tx_hashes() == {tx1.tx_hash(), tx2.tx_hash()}


def test_a_new_session_is_pending_until_the_peer_uses_it(world: World) -> None:
    a, b = world.enclave(1), world.enclave(2)
    peer_up(a, b)
    txs = [world.pay(i) for i in range(4)]
    for tx in txs:
        propose(a, tx)

    def relay(i: int) -> bytes:
        return a.txs_for_peer("b", [txs[i].tx_hash()])

    assert b.peer_tx_propose("a", relay(0))
    hs1 = a.peer_initiate("b")  # a starts over (say, it restarted its link)
    assert b.peer_tx_propose("a", relay(1))  # a's current session still works meanwhile
    hs2, _ = b.peer_accept("a", hs1.message, vouch("a", hs1), HOSTS["a"][1])
    on_old = relay(2)  # sealed on a's old session, delivered late
    a.peer_complete("b", hs2.message, vouch("b", hs2), HOSTS["b"][1])
    got = b.peer_tx_propose("a", relay(3))  # on the new session: b switches to it
    assert [c.tx_hash for c in got] == [txs[3].tx_hash()]
    with pytest.raises(SessionError):  # the old session is gone
        b.peer_tx_propose("a", on_old)
    assert a.peer_tx_propose("b", b.answer_fetch("a", a.seal_fetch("b", []))) == []


def test_a_peers_answer_must_be_vouched_for_by_its_host(world: World) -> None:
    a, b = world.enclave(1), world.enclave(2)
    peer_up(a, b)
    tx = world.pay(0)
    propose(a, tx)
    assert b.peer_tx_propose("a", a.txs_for_peer("b", [tx.tx_hash()]))
    hs1 = a.peer_initiate("b")
    hs2, _ = b.peer_accept("a", hs1.message, vouch("a", hs1), HOSTS["a"][1])
    with pytest.raises(PeerAuthError):  # signed by another host than the one configured
        a.peer_complete("b", hs2.message, vouch("x", hs2), HOSTS["b"][1])
    with pytest.raises(PeerSessionError):  # and that handshake is over: start again
        a.peer_complete("b", hs2.message, vouch("b", hs2), HOSTS["b"][1])
    # The session a had is untouched.
    assert a.peer_tx_propose("b", b.answer_fetch("a", a.seal_fetch("b", []))) == []
    hs1 = a.peer_initiate("b")
    b.peer_accept("a", hs1.message, vouch("a", hs1), HOSTS["a"][1])
    with pytest.raises(PeerAuthError):
        a.peer_complete("b", b"\0" * 100, vouch("b", hs2), HOSTS["b"][1])
    with pytest.raises(PeerSessionError):  # nothing is waiting for a reply
        b.peer_complete("a", hs2.message, vouch("b", hs2), HOSTS["b"][1])
    with pytest.raises(PeerSessionError):
        world.enclave(3).txs_for_peer("a", [])
    peer_up(a, b)  # a new handshake replaces a failed one
    b.peer_close("a")
    with pytest.raises(PeerSessionError):
        b.txs_for_peer("a", [])


def test_handshake_payloads_are_versioned() -> None:
    signer = bytes(range(32))
    payload = HandshakePayload(signer).to_bytes()
    assert payload == b"\x01" + signer
    assert HandshakePayload.from_bytes(payload).block_signer == signer
    for bad in (
        b"",
        b"\x01" + signer[:31],
        payload + b"evidence",
        b"\x02" + signer,
        b"\x03" + signer,
    ):
        with pytest.raises(binary.DecodeError):
            HandshakePayload.from_bytes(bad)


def test_a_peer_refuses_what_it_finds_invalid(world: World) -> None:
    # Enclaves with different minimum fees cannot pair (the prologue binds the fee): a
    # peer that sends a tx under the fee seals it raw, past its own checks.
    lenient, strict = world.enclave(1), world.enclave(2)
    peer_up(lenient, strict)
    cheap, fine = world.pay(0, fee=FEE // 2), world.pay(1)
    sealed = lenient._peers.seal("b", encode_batch([cheap.to_bytes(), fine.to_bytes()]))
    assert [c.tx_hash for c in strict.peer_tx_propose("a", sealed)] == [fine.tx_hash()]
    assert strict.cached_tx_hashes() == {fine.tx_hash()}


def test_a_peer_batch_has_its_range_proofs_checked_together(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = world.enclave(1), world.enclave(2)
    peer_up(a, b)
    singles: list[bytes] = []
    one_by_one = validation.verify_range

    def counted(proof: bytes, commitments: Sequence[bytes]) -> bool:
        singles.append(proof)
        return one_by_one(proof, commitments)

    monkeypatch.setattr(validation, "verify_range", counted)
    good = [world.pay(0), world.pay(1)]
    bad = _negative_output_tx(world)

    # All good: one batch check, no proof checked on its own.
    sealed = a._peers.seal("b", encode_batch([t.to_bytes() for t in good]))
    assert [c.tx_hash for c in b.peer_tx_propose("a", sealed)] == [t.tx_hash() for t in good]
    assert singles == []

    # One bad proof among them: the batch fails, every new tx is checked on its own, the
    # bad one is refused and the good ones are kept. Txs already held are not re-proved.
    c = world.enclave(3)
    peer_up(a, c)  # a's session named "b" now leads to c
    propose(c, good[0])
    batch = encode_batch([good[0].to_bytes(), bad.to_bytes(), good[1].to_bytes()])
    got = c.peer_tx_propose("a", a._peers.seal("b", batch))
    assert [x.tx_hash for x in got] == [t.tx_hash() for t in good]
    assert singles == [good[0].signature.range_proof] + [
        t.signature.range_proof for t in (bad, good[1])
    ]
    assert c.cached_tx_hashes() == {t.tx_hash() for t in good}


def _count_range_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the range-proof batches checked from now on, as they are checked."""
    batches: list[int] = []
    many = validation.verify_range_batch

    def counted(items: Sequence[tuple[bytes, Sequence[bytes]]]) -> bool:
        batches.append(len(items))
        return many(items)

    monkeypatch.setattr(validation, "verify_range_batch", counted)
    return batches


def test_client_proposals_taken_together_each_get_their_own_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the enclave process does with client proposals that arrive together: one call,
    # the new txs' range proofs checked as one batch. A bad proof or signature among them
    # is refused with its own code, and its batch-mates are accepted all the same.
    enclave = world.enclave()
    batches = _count_range_batches(monkeypatch)
    good = [world.pay(i) for i in range(4)]
    bad_range = _negative_output_tx(world)
    [sig] = world.pay(5).signature.ring_signatures
    bad_signature = _with_sig(
        world.pay(5), ring_signatures=(replace(sig, responses=(bytes(32), *sig.responses[1:])),)
    )
    propose(enclave, good[3])  # held already: re-checked, not validated again
    txs = [good[0], bad_range, good[1], bad_signature, good[1], good[2], good[3]]
    clients = [connect(enclave) for _ in txs]
    requests = [
        (c.session_id, c.session.encrypt_tx(t.to_bytes()))
        for c, t in zip(clients, txs, strict=True)
    ]
    requests.insert(2, (SessionId(bytes(16)), b"\0" * 40))  # no such session
    got = enclave.client_txs_propose(requests)
    assert len(got) == 8
    assert [g.tx_hash if isinstance(g, WellFormedTxContext) else g.code for g in got] == [
        good[0].tx_hash(),
        R.INVALID_RANGE_PROOF,
        R.BAD_SESSION,
        good[1].tx_hash(),
        R.INVALID_RING_SIGNATURE,
        good[1].tx_hash(),  # the same tx twice: accepted once, then found held
        good[2].tx_hash(),
        good[3].tx_hash(),
    ]
    assert enclave.cached_tx_hashes() == {t.tx_hash() for t in good}
    # One batch of the 5 new txs (failed by bad_range), then halves until it is alone.
    assert batches[0] == 5 and len(batches) > 1
    # The same answers as one proposal at a time, to a fresh enclave.
    fresh = world.enclave(2)
    answers = [g for g in got if not isinstance(g, SessionError)]
    for tx, answer in zip(txs, answers, strict=True):
        try:
            one = propose(fresh, tx)
        except ProposeTxError as e:
            assert not isinstance(answer, WellFormedTxContext) and answer.code is e.code
        else:
            assert answer == one


def test_client_and_peer_proposals_taken_together(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The enclave process gathers peers' batches with clients' proposals: the new txs of
    # all of them have their range proofs checked as one batch, and each request gets the
    # answer it would have got alone, a peer's batch in the order its peer sealed it.
    a, b = world.enclave(1), world.enclave(2)
    peer_up(a, b)
    batches = _count_range_batches(monkeypatch)
    mine, theirs = world.pay(0), [world.pay(1), world.pay(2), world.pay(3)]
    bad = _negative_output_tx(world)
    first = a._peers.seal("b", encode_batch([theirs[0].to_bytes(), bad.to_bytes()]))
    second = a._peers.seal("b", encode_batch([theirs[1].to_bytes(), mine.to_bytes()]))
    client = connect(b)
    for_clients, for_peers = b.txs_propose(
        [
            (client.session_id, client.session.encrypt_tx(mine.to_bytes())),
            (SessionId(bytes(16)), b"\0" * 40),  # no such session
        ],
        [("a", first), ("c", first), ("a", second)],  # "c": nobody opened that session
    )
    assert for_clients[0] == WellFormedTxContext.from_tx(mine)
    assert isinstance(for_clients[1], SessionError)
    assert [c.tx_hash for c in for_peers[0]] == [theirs[0].tx_hash()]  # bad is refused
    assert isinstance(for_peers[1], PeerSessionError)
    assert [c.tx_hash for c in for_peers[2]] == [theirs[1].tx_hash(), mine.tx_hash()]
    # One batch of the four new txs (failed by bad), then halves until it is alone.
    assert batches[0] == 4 and len(batches) > 1
    assert b.cached_tx_hashes() == {mine.tx_hash(), theirs[0].tx_hash(), theirs[1].tx_hash()}
    # The peer's session went on in order: its next batch opens.
    third = a._peers.seal("b", encode_batch([theirs[2].to_bytes()]))
    assert [c.tx_hash for c in b.peer_tx_propose("a", third)] == [theirs[2].tx_hash()]


def test_a_full_peer_takes_what_fits(world: World) -> None:
    a, b = world.enclave(1), world.enclave(2, max_cached_txs=1)
    peer_up(a, b)
    txs = [world.pay(0), world.pay(1)]
    for tx in txs:
        propose(a, tx)
    got = b.peer_tx_propose("a", a.txs_for_peer("b", [t.tx_hash() for t in txs]))
    assert [c.tx_hash for c in got] == [txs[0].tx_hash()]


def test_calls_from_many_threads_are_safe(world: World) -> None:
    enclave = world.enclave()
    txs = [world.pay(i) for i in range(6)]
    clients = [connect(enclave) for _ in txs]
    sealed = [c.session.encrypt_tx(t.to_bytes()) for c, t in zip(clients, txs, strict=True)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(
            pool.map(
                lambda i: enclave.client_tx_propose(clients[i].session_id, sealed[i]),
                range(len(txs)),
            )
        )
    assert [c.tx_hash for c in got] == [t.tx_hash() for t in txs]


def test_peer_sessions_are_bounded(world: World) -> None:
    a, b = world.enclave(1, max_peer_sessions=2), world.enclave(2)
    a.peer_initiate("p1")
    a.peer_initiate("p2")
    a.peer_initiate("p2")  # the same peer again takes no new room
    with pytest.raises(CapacityError) as err:
        a.peer_initiate("p3")
    assert err.value.code is R.OVER_CAPACITY
    hs1 = b.peer_initiate("x")
    with pytest.raises(CapacityError):  # an accepted (pending) session takes room too
        a.peer_accept("p3", hs1.message, vouch("b", hs1), HOSTS["b"][1])
    a.peer_accept("p2", hs1.message, vouch("b", hs1), HOSTS["b"][1])  # p2 has its room


# -- blocks ------------------------------------------------------------------------------


def test_form_block_drops_double_spends_and_sorts(world: World) -> None:
    enclave = world.enclave()
    spend0, again0 = world.pay(0, value=1000), world.pay(0, value=2000)
    assert spend0.key_images == again0.key_images
    spend1 = world.pay(1, 2)
    twin = create_output(world.bob.default_address, VALUE - FEE, SeededRandom(31))
    same_out = create_output(world.bob.default_address, VALUE - FEE, SeededRandom(31))
    out_a = world.assemble([world.creds(3)], [twin])
    out_b = world.assemble([world.creds(4)], [same_out])
    txs = [again0, spend1, spend0, out_a, out_b]
    for tx in txs:
        propose(enclave, tx)
    parent = world.ledger.last_block()
    assert parent is not None

    formed = enclave.form_block([t.tx_hash() for t in txs], parent, SIGNED_AT)
    assert formed.included == (again0.tx_hash(), spend1.tx_hash(), out_a.tx_hash())
    assert formed.dropped == (
        (spend0.tx_hash(), R.KEY_IMAGE_ALREADY_SPENT),
        (out_b.tx_hash(), R.OUTPUT_PUBLIC_KEY_EXISTS),
    )
    data = formed.block_data
    assert data is not None
    kept = (again0, spend1, out_a)
    images = [i for t in kept for i in t.key_images]
    outputs = [o for t in kept for o in t.prefix.outputs]
    assert list(data.contents.key_images) == sorted(images)
    assert list(data.contents.outputs) == sorted(outputs, key=lambda o: o.public_key)
    assert data.signature is not None and data.signature.verify(data.block.id)
    assert data.signature.signer == enclave.block_signing_public_key == SIGNING_PK
    assert data.signature.signed_at == SIGNED_AT
    check_block_data(data, parent, {SIGNING_PK})
    world.ledger.append_block(data)  # the ledger agrees on the Merkle root

    # Afterwards: what the block spent no longer passes, what it left out gets its reason.
    with pytest.raises(ProposeTxError):
        propose(enclave, again0)
    with pytest.raises(StaleParent):
        enclave.form_block([spend0.tx_hash()], parent, SIGNED_AT)
    nothing = enclave.form_block([spend0.tx_hash()], data.block, SIGNED_AT + 5)
    assert nothing == type(nothing)(None, (), ((spend0.tx_hash(), R.KEY_IMAGE_ALREADY_SPENT),))
    # The host says the block is in: the included txs go, and so do those it made invalid.
    assert enclave.block_appended(world.next_index, formed.included) == [
        spend0.tx_hash(),
        out_b.tx_hash(),
    ]
    assert enclave.cached_tx_hashes() == frozenset()


def test_every_node_forms_the_same_block(world: World) -> None:
    a, b = world.enclave(1), world.enclave(2)
    txs = [world.pay(0), world.pay(1), world.pay(0, value=5)]
    for tx in txs:
        propose(a, tx)
        propose(b, tx)
    parent = world.ledger.last_block()
    assert parent is not None
    hashes = sorted(t.tx_hash() for t in txs)  # SCP externalizes values in bytes order
    fa, fb = a.form_block(hashes, parent, SIGNED_AT), b.form_block(hashes, parent, SIGNED_AT + 1)
    assert fa.block_data is not None and fb.block_data is not None
    assert fa.block_data.block == fb.block_data.block
    assert (fa.included, fa.dropped) == (fb.included, fb.dropped)


def test_form_block_needs_every_tx_and_expires_tombstones(world: World) -> None:
    enclave = world.enclave()
    soon = world.pay(0, tombstone=world.next_index + 1)
    later = world.pay(1)
    propose(enclave, soon)
    propose(enclave, later)
    parent = world.ledger.last_block()
    assert parent is not None
    with pytest.raises(UnknownTx) as err:
        enclave.form_block([later.tx_hash(), b"\x05" * 32], parent, SIGNED_AT)
    assert err.value.tx_hashes == (b"\x05" * 32,)
    formed = enclave.form_block([later.tx_hash()], parent, SIGNED_AT)
    assert formed.block_data is not None
    world.ledger.append_block(formed.block_data)
    enclave.forget(formed.included)
    with pytest.raises(UnknownTx):
        enclave.form_block([later.tx_hash()], formed.block_data.block, SIGNED_AT)
    expired = enclave.form_block([soon.tx_hash()], formed.block_data.block, SIGNED_AT)
    assert expired.dropped == ((soon.tx_hash(), R.INVALID_TOMBSTONE),)
    assert enclave.block_appended(world.next_index, [b"\x05" * 32]) == [soon.tx_hash()]
    assert enclave.cached_tx_hashes() == frozenset()


def test_block_appended_keeps_what_is_still_good(world: World) -> None:
    enclave = world.enclave()
    soon, later, done = world.pay(0, tombstone=world.next_index + 2), world.pay(1), world.pay(2)
    for tx in (soon, later, done):
        propose(enclave, tx)
    assert enclave.block_appended(world.next_index, [done.tx_hash()]) == []
    assert enclave.cached_tx_hashes() == {soon.tx_hash(), later.tx_hash()}
    # Two blocks on (as the host would say after a catch-up), `soon` has expired.
    assert enclave.block_appended(world.next_index + 2, []) == [soon.tx_hash()]
    assert enclave.cached_tx_hashes() == {later.tx_hash()}


# -- the host never sees plaintext ---------------------------------------------------------


def test_the_host_never_sees_plaintext(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    identity = bytes(range(1, 33))
    a = world.enclave(1, identity_private_key=identity)
    b = world.enclave(2)  # the same network config: a minimum fee apart, they cannot pair
    memo = b"SECRET memo: rent for March"
    paid = 123_456_789_012
    tx = world.pay(0, 1, value=paid, memo=memo, fee=FEE * 2)
    cheap = world.pay(2, memo=memo)
    seen: list[object] = []  # everything the host gets back or could print

    seen += [repr(a), repr(b), repr(a._config), a.identity_public_key]
    client = connect(a)
    seen += [client.session_id, client.session.first_message, repr(client.session)]
    ciphertext = client.session.encrypt_tx(tx.to_bytes())
    seen += [ciphertext, a.client_tx_propose(client.session_id, ciphertext)]
    seen.append(propose(a, cheap))
    for bad in (_with_prefix(tx, fee=tx.prefix.fee + 1), _with_prefix(tx, tombstone_block=1)):
        with pytest.raises(ProposeTxError) as err:
            propose(a, bad)
        seen += [str(err.value), repr(err.value)]
    hs1 = a.peer_initiate("b")
    hs2, seen_by_b = b.peer_accept("a", hs1.message, vouch("a", hs1), HOSTS["a"][1])
    seen_by_a = a.peer_complete("b", hs2.message, vouch("b", hs2), HOSTS["b"][1])
    sealed = a.txs_for_peer("b", [tx.tx_hash(), cheap.tx_hash()])
    from_peer = b.peer_tx_propose("a", sealed)
    assert [c.tx_hash for c in from_peer] == [tx.tx_hash(), cheap.tx_hash()]
    fetched = b.answer_fetch("a", a.seal_fetch("b", [tx.tx_hash()]))
    seen += [hs1, hs2, seen_by_a, seen_by_b, sealed, from_peer, fetched, repr(a._peers)]
    formed = a.form_block([tx.tx_hash(), cheap.tx_hash()], world.ledger.last_block(), SIGNED_AT)
    assert formed.block_data is not None
    seen += [repr(formed), formed.block_data.to_bytes()]
    world.ledger.append_block(formed.block_data)
    seen += [world.ledger.get_block_data(1).to_bytes()]
    with pytest.raises(ProposeTxError) as err:
        propose(a, tx)
    seen += [str(err.value), a.block_appended(world.next_index, []), caplog.text]

    blob = b"".join(_flatten(seen))
    text = blob.decode("latin-1")
    in_tx: list[bytes] = []  # parts of the plaintext txs
    for t in (tx, cheap):
        for tx_in in t.prefix.inputs:
            for member in tx_in.ring:
                in_tx += [member.public_key, member.target_key, member.commitment]
        in_tx += list(t.signature.pseudo_output_commitments)
        in_tx.append(t.signature.range_proof[:32])
        in_tx += [s.c_zero for s in t.signature.ring_signatures]
    assert all(s in tx.to_bytes() + cheap.to_bytes() for s in in_tx)  # the net is cast right
    openings = [o.blinding.to_bytes() for o in Scanner(world.bob).scan(tx.prefix.outputs)]
    assert len(openings) == 1
    secrets = [memo, paid.to_bytes(8, "little"), identity, SIGNING_SK, *in_tx, *openings]
    for secret in secrets:
        assert secret not in blob
        assert secret.hex() not in text
    assert str(paid) not in text and "March" not in text


def _flatten(values: list[object]) -> Iterator[bytes]:
    for v in values:
        if isinstance(v, bytes):
            yield v
        elif isinstance(v, str):
            yield v.encode("latin-1", "replace")
        elif isinstance(v, list):
            yield from _flatten(v)
        elif dataclasses.is_dataclass(v):
            yield repr(v).encode()
            yield from _flatten(
                [x for f in dataclasses.fields(v) for x in _as_list(getattr(v, f.name))]
            )
        else:
            raise TypeError(type(v))


def _as_list(v: object) -> list[object]:
    if isinstance(v, tuple):
        return [x for item in v for x in _as_list(item)]
    if isinstance(v, int):
        return [str(v)]
    return [v]
