"""Validation rules: a valid tx passes; each rule has a tx that breaks exactly it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import pytest

from mcnode.crypto import PEDERSEN_H, Scalar, SeededRandom, commit
from mcnode.transaction import (
    AccountKey,
    InsufficientFunds,
    OwnedOutput,
    Scanner,
    TransactionBuilder,
    Tx,
    TxBuildError,
    WellFormedTxContext,
    check_key_images_unspent,
    check_output_public_keys_new,
    validate_tx,
    validate_txs,
)
from mcnode.transaction import errors as E
from mcnode.transaction.builder import InputCredentials, assemble_tx
from mcnode.transaction.fake_ledger import FakeLedger
from mcnode.transaction.txout import create_output
from mcnode.transaction.validation import (
    DEFAULT_MINIMUM_FEE,
    MAX_TOMBSTONE_BLOCKS,
    RunBeside,
    check_inputs_sorted,
    check_ring_signatures,
    range_proofs_hold,
)

FEE = DEFAULT_MINIMUM_FEE
VALUE = 10**12
CURRENT = 100


@dataclass
class World:
    ledger: FakeLedger
    alice: AccountKey
    bob: AccountKey
    owned: list[OwnedOutput]
    rng: SeededRandom

    def creds(self, i: int) -> InputCredentials:
        return self.ledger.input_credentials(self.owned[i], self.rng)

    def validate(self, tx: Tx, **kw: object) -> None:
        args = {"current_block": CURRENT, "root": self.ledger.root(), **kw}
        validate_tx(tx, **args)  # type: ignore[arg-type]

    def pay(self, value: int, inputs: tuple[int, ...] = (0,), **kw: int) -> Tx:
        b = TransactionBuilder(
            self.alice, fee=kw.get("fee", FEE), tombstone_block=kw.get("tombstone", CURRENT + 10)
        )
        for i in inputs:
            b.add_input(self.creds(i))
        b.add_output(self.bob.default_address, value, b"thanks")
        return b.build(self.rng)


@pytest.fixture(scope="module")
def world() -> World:
    rng = SeededRandom(31)
    alice, bob = AccountKey.random(rng), AccountKey.random(rng)
    ledger = FakeLedger()
    for i in range(48):
        owner = alice if i % 8 == 0 else AccountKey.random(rng)
        ledger.mint(owner.default_address, VALUE, rng)
    owned = Scanner(alice).scan(ledger.tx_outs)
    assert len(owned) == 6
    return World(ledger, alice, bob, owned, rng)


@pytest.fixture(scope="module")
def tx(world: World) -> Tx:
    return world.pay(VALUE // 3)


@pytest.fixture(scope="module")
def tx2(world: World) -> Tx:
    return world.pay(VALUE, inputs=(1, 2))


def test_built_tx_is_valid_and_pays_bob(world: World, tx: Tx) -> None:
    world.validate(tx)
    [paid] = Scanner(world.bob).scan(tx.prefix.outputs)
    assert (paid.value, paid.memo) == (VALUE // 3, b"thanks")
    [change] = Scanner(world.alice).scan(tx.prefix.outputs)
    assert change.value == VALUE - VALUE // 3 - FEE
    assert change.subaddress_index == 1


def test_two_input_tx_is_valid(world: World, tx2: Tx) -> None:
    world.validate(tx2)
    assert len(tx2.prefix.inputs) == 2


def test_insufficient_funds(world: World) -> None:
    with pytest.raises(InsufficientFunds):
        world.pay(VALUE - FEE + 1)
    with pytest.raises(TxBuildError):
        TransactionBuilder(world.alice, fee=FEE, tombstone_block=1).build(world.rng)


def test_exact_payment_has_no_change(world: World) -> None:
    tx = world.pay(VALUE - FEE)
    world.validate(tx)
    assert len(tx.prefix.outputs) == 1


def _with_prefix(tx: Tx, **changes: object) -> Tx:
    return replace(tx, prefix=replace(tx.prefix, **changes))


def test_rule_input_count(world: World, tx: Tx) -> None:
    with pytest.raises(E.InvalidInputCount):
        world.validate(_with_prefix(tx, inputs=()))
    with pytest.raises(E.InvalidInputCount):
        world.validate(_with_prefix(tx, inputs=tx.prefix.inputs * 17))


def test_rule_output_count(world: World, tx: Tx) -> None:
    with pytest.raises(E.InvalidOutputCount):
        world.validate(_with_prefix(tx, outputs=()))
    with pytest.raises(E.InvalidOutputCount):
        world.validate(_with_prefix(tx, outputs=tx.prefix.outputs[:1] * 17))


def test_rule_ring_size(world: World, tx: Tx) -> None:
    tx_in = tx.prefix.inputs[0]
    short = replace(tx_in, ring=tx_in.ring[:10], proofs=tx_in.proofs[:10])
    with pytest.raises(E.InvalidRingSize):
        world.validate(_with_prefix(tx, inputs=(short,)))


def test_rule_ring_sorted_and_unique(world: World, tx: Tx) -> None:
    tx_in = tx.prefix.inputs[0]
    backwards = replace(tx_in, ring=tx_in.ring[::-1], proofs=tx_in.proofs[::-1])
    with pytest.raises(E.UnsortedRing):
        world.validate(_with_prefix(tx, inputs=(backwards,)))
    repeated = replace(tx_in, ring=tx_in.ring[:1] + tx_in.ring[:10])
    with pytest.raises(E.UnsortedRing):
        world.validate(_with_prefix(tx, inputs=(repeated,)))


def test_rule_inputs_sorted(world: World, tx2: Tx) -> None:
    with pytest.raises(E.UnsortedInputs):
        world.validate(_with_prefix(tx2, inputs=tx2.prefix.inputs[::-1]))
    # Rings chosen independently may share their smallest member: a tie is in order.
    first = tx2.prefix.inputs[0]
    check_inputs_sorted(_with_prefix(tx2, inputs=(first, first)))


def test_rule_membership_proofs(world: World, tx: Tx) -> None:
    other_root = replace(world.ledger.root(), hash=bytes(32))
    with pytest.raises(E.InvalidMembershipProof):
        world.validate(tx, root=other_root)  # type: ignore[arg-type]
    tx_in = tx.prefix.inputs[0]
    proof = tx_in.proofs[3]
    bad = replace(proof, siblings=(bytes(32), *proof.siblings[1:]))
    tampered = replace(tx_in, proofs=(*tx_in.proofs[:3], bad, *tx_in.proofs[4:]))
    with pytest.raises(E.InvalidMembershipProof):
        world.validate(_with_prefix(tx, inputs=(tampered,)))


def _with_sig(tx: Tx, **changes: object) -> Tx:
    return replace(tx, signature=replace(tx.signature, **changes))


def test_rule_ring_signature(world: World, tx: Tx) -> None:
    [sig] = tx.signature.ring_signatures
    flipped = replace(sig, responses=(Scalar(1).to_bytes(), *sig.responses[1:]))
    with pytest.raises(E.InvalidRingSignature):
        world.validate(_with_sig(tx, ring_signatures=(flipped,)))
    with pytest.raises(E.InvalidRingSignature):
        world.validate(_with_sig(tx, ring_signatures=()))


def test_tampered_key_image_is_rejected(world: World, tx: Tx) -> None:
    [sig] = tx.signature.ring_signatures
    for image in (PEDERSEN_H.encoding, bytes(32), b"\xff" * 32):
        with pytest.raises(E.InvalidRingSignature):
            world.validate(_with_sig(tx, ring_signatures=(replace(sig, key_image=image),)))


def test_tampered_commitments_are_rejected(world: World, tx: Tx) -> None:
    (pseudo,) = tx.signature.pseudo_output_commitments
    other = (commit(1, Scalar(1)) + commit(0, Scalar(0))).encoding
    with pytest.raises(E.InvalidRingSignature):
        world.validate(_with_sig(tx, pseudo_output_commitments=(other,)))
    out = tx.prefix.outputs[0]
    with pytest.raises(E.InvalidRingSignature):  # the prefix is signed
        world.validate(_with_prefix(tx, outputs=(replace(out, commitment=pseudo),)))
    with pytest.raises(E.InvalidRingSignature):  # so is the range proof
        world.validate(_with_sig(tx, range_proof=tx.signature.range_proof[:-1] + b"\0"))


def test_rule_balance(world: World) -> None:
    # Signed and proved properly, but the outputs hold one unit more than input - fee.
    out = create_output(world.bob.default_address, VALUE - FEE + 1, world.rng)
    tx = assemble_tx([world.creds(3)], [out], FEE, CURRENT + 1, world.rng)
    with pytest.raises(E.UnbalancedTx):
        world.validate(tx)


def _negative_output_tx(world: World, extra: int = 0, fee: int = FEE) -> Tx:
    """Pay bob 10 (+ `extra`) more than we have, balanced (when extra is 0) by an output of
    -10: signed properly, but no range proof can cover -10 (it is made for 0 here)."""
    rng = world.rng
    big = create_output(world.bob.default_address, VALUE - fee + 10 + extra, rng)
    zero = create_output(world.alice.default_address, 0, rng)
    minus_ten = commit(0, zero.blinding) - Scalar(10) * PEDERSEN_H
    negative = replace(zero, tx_out=replace(zero.tx_out, commitment=minus_ten.encoding))
    outputs = sorted([big, negative], key=lambda o: o.tx_out.public_key)
    return assemble_tx([world.creds(3)], outputs, fee, CURRENT + 1, rng)


def test_rule_range_proof_stops_a_negative_output(world: World) -> None:
    with pytest.raises(E.InvalidRangeProof):
        world.validate(_negative_output_tx(world))


def _on_a_thread() -> Iterator[RunBeside]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield lambda check: pool.submit(check).result


def _when_joined() -> Iterator[RunBeside]:
    # The latest a `beside` may run its check: only when its result is asked for.
    yield lambda check: check


def _inline() -> Iterator[None]:
    yield None


@pytest.mark.parametrize("besides", [_inline, _on_a_thread, _when_joined])
def test_rules_fail_in_order_though_checked_side_by_side(
    world: World, besides: Callable[[], Iterator[RunBeside | None]]
) -> None:
    # With a `beside`, ring signatures and the range proof are checked side by side; the
    # error raised is still the first rule's: balance comes before the range proof...
    for beside in besides():
        with pytest.raises(E.UnbalancedTx):
            world.validate(_negative_output_tx(world, extra=1), beside=beside)
        # ...and ring signatures before both.
        tx = _negative_output_tx(world, extra=1)
        [sig] = tx.signature.ring_signatures
        flipped = replace(sig, responses=(Scalar(1).to_bytes(), *sig.responses[1:]))
        with pytest.raises(E.InvalidRingSignature):
            world.validate(_with_sig(tx, ring_signatures=(flipped,)), beside=beside)
        # A bad range proof alone is still found, and a good tx passes.
        with pytest.raises(E.InvalidRangeProof):
            world.validate(_negative_output_tx(world), beside=beside)
        world.validate(world.pay(VALUE // 5), beside=beside)


def test_the_ring_signatures_are_what_runs_beside(world: World, tx: Tx) -> None:
    ran: list[object] = []

    def beside(check: Callable[[], None]) -> Callable[[], object]:
        ran.append(check)
        return check

    world.validate(tx, beside=beside)
    assert len(ran) == 1
    assert getattr(ran[0], "func", None) is check_ring_signatures
    world.validate(tx, beside=beside, range_proof_checked=True)  # nothing to overlap then
    assert len(ran) == 1


def test_a_range_proof_checked_in_a_batch_is_not_checked_again(world: World, tx: Tx) -> None:
    # The caller vouches for the range proof (`range_proofs_hold`); every other rule runs.
    bad_range = _negative_output_tx(world)
    assert not range_proofs_hold([tx, bad_range])
    assert range_proofs_hold([tx, tx])
    world.validate(bad_range, range_proof_checked=True)
    [sig] = tx.signature.ring_signatures
    flipped = replace(sig, responses=(Scalar(1).to_bytes(), *sig.responses[1:]))
    with pytest.raises(E.InvalidRingSignature):
        world.validate(_with_sig(tx, ring_signatures=(flipped,)), range_proof_checked=True)


def _flipped_signature(tx: Tx) -> Tx:
    [sig] = tx.signature.ring_signatures
    flipped = replace(sig, responses=(Scalar(1).to_bytes(), *sig.responses[1:]))
    return _with_sig(tx, ring_signatures=(flipped,))


def _verdict(world: World, tx: Tx) -> type[E.TxValidationError] | None:
    """The error type `validate_tx` raises for `tx` alone (None: valid)."""
    try:
        world.validate(tx)
    except E.TxValidationError as e:
        return type(e)
    return None


@pytest.fixture(scope="module")
def mixed_batch(world: World) -> list[Tx]:
    """Good txs with, among them, one tx breaking each costly rule and two breaking the
    range proof together with a later rule (so only rule order decides the verdict)."""
    goods = [world.pay(VALUE // k) for k in (2, 3, 4, 5, 6)]
    bad_range = _negative_output_tx(world)
    bad_signature = _flipped_signature(world.pay(VALUE // 7))
    bad_signature_and_range = _flipped_signature(_negative_output_tx(world))
    late_fee = _negative_output_tx(world, fee=FEE - 1)  # the fee rule comes after the proof
    unbalanced = _negative_output_tx(world, extra=1)
    return [
        goods[0], bad_range, goods[1], bad_signature, goods[2], bad_signature_and_range,
        late_fee, goods[3], unbalanced, goods[4],
    ]  # fmt: skip


@pytest.mark.parametrize("besides", [_inline, _on_a_thread, _when_joined])
def test_a_batch_gets_each_txs_own_verdict(
    world: World, mixed_batch: list[Tx], besides: Callable[[], Iterator[RunBeside | None]]
) -> None:
    # One bad range proof fails the batch: its batch-mates are still accepted, and every tx
    # gets exactly the error `validate_tx` gives it alone (the first failing rule's).
    alone = [_verdict(world, tx) for tx in mixed_batch]
    assert alone == [
        None, E.InvalidRangeProof, None, E.InvalidRingSignature, None, E.InvalidRingSignature,
        E.InvalidRangeProof, None, E.UnbalancedTx, None,
    ]  # fmt: skip
    root = world.ledger.root()
    for beside in besides():
        errors = validate_txs(
            mixed_batch, current_block=CURRENT, roots=[root] * len(mixed_batch), beside=beside
        )
        assert [None if e is None else type(e) for e in errors] == alone
    # Every tx good: every verdict None; none or one tx: as `validate_tx`.
    goods = [tx for tx, v in zip(mixed_batch, alone, strict=True) if v is None]
    assert validate_txs(goods, current_block=CURRENT, roots=[root] * len(goods)) == [None] * 5
    assert validate_txs([], current_block=CURRENT, roots=[]) == []
    [error] = validate_txs(mixed_batch[1:2], current_block=CURRENT, roots=[root])
    assert isinstance(error, E.InvalidRangeProof)
    with pytest.raises(ValueError, match="roots"):
        validate_txs(goods, current_block=CURRENT, roots=[root])


def test_a_failed_batch_is_halved_until_the_bad_proof_is_alone(
    world: World, mixed_batch: list[Tx], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mcnode.transaction import validation

    goods = [tx for tx in mixed_batch if _verdict(world, tx) is None]
    bad = _negative_output_tx(world)
    batch = [*goods[:3], bad, *goods[3:], goods[0], goods[1], goods[2]]  # 9: bad at 3
    singles: list[bytes] = []
    batches: list[int] = []
    one, many = validation.verify_range, validation.verify_range_batch

    def single(proof: bytes, commitments: list[bytes]) -> bool:
        singles.append(proof)
        return one(proof, commitments)

    def batched(items: list[tuple[bytes, list[bytes]]]) -> bool:
        batches.append(len(items))
        return many(items)

    monkeypatch.setattr(validation, "verify_range", single)
    monkeypatch.setattr(validation, "verify_range_batch", batched)
    errors = validate_txs(batch, current_block=CURRENT, roots=[world.ledger.root()] * 9)
    assert [i for i, e in enumerate(errors) if e is not None] == [3]
    assert isinstance(errors[3], E.InvalidRangeProof)
    # 9 fail together -> halves of 4 (bad) and 5 (good) -> the 4 as 2 (good) and 2 (bad)
    # -> the bad 2 one by one: 5 batch checks and 2 single ones, not 9 single ones.
    assert batches == [9, 4, 2, 2, 5]
    assert singles == [goods[2].signature.range_proof, bad.signature.range_proof]


def test_rule_fee(world: World) -> None:
    tx = world.pay(1000, fee=FEE - 1)
    with pytest.raises(E.FeeTooLow):
        world.validate(tx)
    world.validate(tx, minimum_fee=FEE - 1)  # the minimum is configurable


def test_rule_key_images_unique_double_spend_in_one_tx(world: World) -> None:
    first = world.creds(4)
    second = first
    while second.ring[0] == first.ring[0]:  # same output, a ring that sorts differently
        second = world.creds(4)
    inputs = sorted([first, second], key=lambda c: c.ring[0].public_key)
    out = create_output(world.bob.default_address, 2 * VALUE - FEE, world.rng)
    tx = assemble_tx(inputs, [out], FEE, CURRENT + 1, world.rng)
    with pytest.raises(E.DuplicateKeyImage):
        world.validate(tx)


def test_rule_output_public_keys_unique(world: World) -> None:
    twin = create_output(world.bob.default_address, (VALUE - FEE) // 2, SeededRandom(77))
    again = create_output(world.bob.default_address, (VALUE - FEE) // 2, SeededRandom(77))
    tx = assemble_tx([world.creds(5)], [twin, again], FEE, CURRENT + 1, world.rng)
    with pytest.raises(E.DuplicateOutputPublicKey):
        world.validate(tx)


@pytest.mark.parametrize(
    ("tombstone", "ok"),
    [
        (CURRENT, False),
        (CURRENT + 1, True),
        (CURRENT + MAX_TOMBSTONE_BLOCKS, True),
        (CURRENT + MAX_TOMBSTONE_BLOCKS + 1, False),
    ],
)
def test_rule_tombstone(world: World, tombstone: int, ok: bool) -> None:
    tx = world.pay(1000, tombstone=tombstone)
    if ok:
        world.validate(tx)
    else:
        with pytest.raises(E.InvalidTombstone):
            world.validate(tx)


def test_double_spend_across_txs_is_caught_by_key_image(world: World) -> None:
    ledger = world.ledger.copy()
    first, second = world.pay(1000), world.pay(2000)
    assert first.key_images == second.key_images  # same output, different rings: linked
    check_key_images_unspent(first, ledger)
    ledger.append_tx(first)
    with pytest.raises(E.KeyImageAlreadySpent):
        check_key_images_unspent(second, ledger)
    with pytest.raises(E.OutputPublicKeyExists):
        check_output_public_keys_new(first, ledger)
    check_output_public_keys_new(second, ledger)


def test_well_formed_context_shows_only_public_fields(world: World, tx: Tx) -> None:
    ctx = WellFormedTxContext.from_tx(tx)
    assert ctx.tx_hash == tx.tx_hash()
    assert (ctx.fee, ctx.tombstone_block) == (FEE, CURRENT + 10)
    assert ctx.key_images == tx.key_images
    assert set(ctx.output_public_keys) == {o.public_key for o in tx.prefix.outputs}
    assert ctx.highest_indices == (len(world.ledger.tx_outs) - 1,)
    assert {f.name for f in dataclasses.fields(ctx)} == {
        "tx_hash",
        "fee",
        "tombstone_block",
        "key_images",
        "output_public_keys",
        "highest_indices",
    }
