"""Consensus rules for a transaction: one small function and one error type per rule.

`validate_tx` runs the ledger-independent rules in the order below and raises the first
failure; everything it needs from the ledger comes in as arguments (the current block
index and the Merkle root the proofs are for). The two rules that need to look things up
in the ledger take a read-only `LedgerView` and are run separately by the caller:
`check_key_images_unspent`, `check_output_public_keys_new`.

`WellFormedTxContext` is all that the untrusted host may learn of a validated transaction.

No threads here (house rule): whether two rules may run side by side is the caller's choice,
passed to `validate_tx` as `beside` (the enclave runs the ring signatures on its worker).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mcnode.crypto import commitments_balance, verify_range, verify_range_batch
from mcnode.transaction import mlsag
from mcnode.transaction.errors import (
    DuplicateKeyImage,
    DuplicateOutputPublicKey,
    FeeTooLow,
    InvalidInputCount,
    InvalidMembershipProof,
    InvalidOutputCount,
    InvalidRangeProof,
    InvalidRingSignature,
    InvalidRingSize,
    InvalidTombstone,
    KeyImageAlreadySpent,
    OutputPublicKeyExists,
    TxValidationError,
    UnbalancedTx,
    UnsortedInputs,
    UnsortedRing,
)
from mcnode.transaction.membership import MerkleRoot
from mcnode.transaction.tx import MAX_INPUTS, MAX_OUTPUTS, RING_SIZE, Tx, signing_message

#: The minimum fee, in the token's smallest unit: MobileCoin's 400 µMOB, in picoMOB (amounts
#: are u64 picoMOB, as in MobileCoin). The one default: node config's `[block] min_fee`, the
#: enclave, the wallet's and the load generator's fee all read it (README, "minimum fee").
DEFAULT_MINIMUM_FEE = 400_000_000
#: A tombstone block may be at most this far past the current block (about two weeks).
MAX_TOMBSTONE_BLOCKS = 20160


def check_input_count(tx: Tx) -> None:
    n = len(tx.prefix.inputs)
    if not 1 <= n <= MAX_INPUTS:
        raise InvalidInputCount(f"{n} inputs, expected 1..{MAX_INPUTS}")


def check_output_count(tx: Tx) -> None:
    n = len(tx.prefix.outputs)
    if not 1 <= n <= MAX_OUTPUTS:
        raise InvalidOutputCount(f"{n} outputs, expected 1..{MAX_OUTPUTS}")


def check_ring_sizes(tx: Tx) -> None:
    for i, tx_in in enumerate(tx.prefix.inputs):
        if len(tx_in.ring) != RING_SIZE:
            raise InvalidRingSize(f"input {i} has a ring of {len(tx_in.ring)}, not {RING_SIZE}")


def check_rings_sorted(tx: Tx) -> None:
    for i, tx_in in enumerate(tx.prefix.inputs):
        keys = [m.public_key for m in tx_in.ring]
        if any(a >= b for a, b in itertools.pairwise(keys)):
            raise UnsortedRing(f"ring of input {i} is not strictly sorted by public key")


def check_inputs_sorted(tx: Tx) -> None:
    # Ties are allowed: independently chosen rings may share their smallest member, and
    # a wallet must never be unable to order its inputs. Signatures cover the order.
    firsts = [tx_in.ring[0].public_key for tx_in in tx.prefix.inputs]
    if any(a > b for a, b in itertools.pairwise(firsts)):
        raise UnsortedInputs("inputs are not sorted by the public key of their first ring member")


def check_membership_proofs(tx: Tx, root: MerkleRoot) -> None:
    for i, tx_in in enumerate(tx.prefix.inputs):
        if len(tx_in.proofs) != len(tx_in.ring):
            raise InvalidMembershipProof(f"input {i}: one proof per ring member is required")
        for tx_out, proof in zip(tx_in.ring, tx_in.proofs, strict=True):
            if not proof.verify(tx_out, root):
                raise InvalidMembershipProof(
                    f"input {i}: ring member {proof.index} is not in the tree of size "
                    f"{root.size} with the given root"
                )


def check_ring_signatures(tx: Tx) -> None:
    sig = tx.signature
    n = len(tx.prefix.inputs)
    if len(sig.ring_signatures) != n or len(sig.pseudo_output_commitments) != n:
        raise InvalidRingSignature("need one ring signature and one pseudo-output per input")
    msg = signing_message(tx.prefix, sig.pseudo_output_commitments, sig.range_proof)
    for i, (tx_in, ring_sig, pseudo) in enumerate(
        zip(tx.prefix.inputs, sig.ring_signatures, sig.pseudo_output_commitments, strict=True)
    ):
        ring = [(m.target_key, m.commitment) for m in tx_in.ring]
        if not mlsag.verify(ring_sig, msg, ring, pseudo):
            raise InvalidRingSignature(f"ring signature of input {i} does not verify")


def check_balance(tx: Tx) -> None:
    try:
        balanced = commitments_balance(
            tx.signature.pseudo_output_commitments,
            [o.commitment for o in tx.prefix.outputs],
            tx.prefix.fee,
        )
    except ValueError as e:
        raise UnbalancedTx(f"commitment is not a valid point: {e}") from e
    if not balanced:
        raise UnbalancedTx("pseudo-outputs do not equal outputs plus fee")


def range_proof_statement(tx: Tx) -> tuple[bytes, list[bytes]]:
    """The tx's range proof and the commitments it covers: pseudo-outputs, then outputs."""
    commitments = list(tx.signature.pseudo_output_commitments)
    commitments.extend(o.commitment for o in tx.prefix.outputs)
    return tx.signature.range_proof, commitments


def check_range_proof(tx: Tx) -> None:
    proof, commitments = range_proof_statement(tx)
    try:
        ok = verify_range(proof, commitments)
    except ValueError as e:
        raise InvalidRangeProof(str(e)) from e
    if not ok:
        raise InvalidRangeProof("range proof does not verify")


def range_proofs_hold(txs: Sequence[Tx]) -> bool:
    """True when every tx's range proof verifies, checked as one batch (much cheaper per
    proof than one by one); False when any does not or is malformed. A caller that gets
    True may pass `range_proof_checked=True` to `validate_tx` for these txs; on False it
    validates them one by one, which finds the culprit and its exact error."""
    try:
        return verify_range_batch([range_proof_statement(tx) for tx in txs])
    except ValueError:
        return False


def check_fee(tx: Tx, minimum_fee: int) -> None:
    if tx.prefix.fee < minimum_fee:
        raise FeeTooLow(f"fee {tx.prefix.fee} is below the minimum {minimum_fee}")


def check_key_images_unique(tx: Tx) -> None:
    if len(set(tx.key_images)) != len(tx.key_images):
        raise DuplicateKeyImage("two inputs have the same key image (double spend)")


def check_output_public_keys_unique(tx: Tx) -> None:
    keys = tx.output_public_keys
    if len(set(keys)) != len(keys):
        raise DuplicateOutputPublicKey("two outputs share a public key")


def check_tombstone(tx: Tx, current_block: int) -> None:
    t = tx.prefix.tombstone_block
    if not current_block < t <= current_block + MAX_TOMBSTONE_BLOCKS:
        raise InvalidTombstone(
            f"tombstone block {t} not in ({current_block}, {current_block + MAX_TOMBSTONE_BLOCKS}]"
        )


#: Starts a check and returns a function that waits for it to finish and raises what it
#: raised: how a caller lets `validate_tx` run a costly rule beside the others (for
#: instance on a thread, with `lambda check: executor.submit(check).result`).
RunBeside = Callable[[Callable[[], None]], Callable[[], object]]


def _error_of(check: Callable[[Tx], None], tx: Tx) -> TxValidationError | None:
    try:
        check(tx)
    except TxValidationError as e:
        return e
    return None


def _check_shape(tx: Tx) -> None:
    check_input_count(tx)
    check_output_count(tx)
    check_ring_sizes(tx)
    check_rings_sorted(tx)
    check_inputs_sorted(tx)


def _check_before_range_proof(tx: Tx, root: MerkleRoot) -> None:
    """Every rule that comes before the range proof, in order."""
    _check_shape(tx)
    check_membership_proofs(tx, root)
    check_ring_signatures(tx)
    check_balance(tx)


def _check_after_range_proof(tx: Tx, current_block: int, minimum_fee: int) -> None:
    """Every rule that comes after the range proof, in order."""
    check_fee(tx, minimum_fee)
    check_key_images_unique(tx)
    check_output_public_keys_unique(tx)
    check_tombstone(tx, current_block)


def validate_tx(
    tx: Tx,
    *,
    current_block: int,
    root: MerkleRoot,
    minimum_fee: int = DEFAULT_MINIMUM_FEE,
    range_proof_checked: bool = False,
    beside: RunBeside | None = None,
) -> None:
    """Raise the first `TxValidationError` of the ledger-independent rules, in order.

    `range_proof_checked`: the caller has verified this tx's range proof already (in a
    batch, `range_proofs_hold`), so that rule is known to pass and is not run again.
    `beside`: run the ring signatures with it while this call checks the range proof (the
    two costly rules); the verdict is the same, the first failing rule's."""
    if beside is None or range_proof_checked:
        _check_before_range_proof(tx, root)
        if not range_proof_checked:
            check_range_proof(tx)
    else:
        _check_shape(tx)
        # Both rules are native code that releases the GIL: given a thread, the ring
        # signatures (~1.3 ms) are done before the range proof (~2.8 ms) here. Verdicts
        # are taken in rule order, so the first failing rule is still the one raised.
        ring_signatures = beside(functools.partial(check_ring_signatures, tx))
        check_membership_proofs(tx, root)
        range_error = _error_of(check_range_proof, tx)
        ring_signatures()
        check_balance(tx)
        if range_error is not None:
            raise range_error
    _check_after_range_proof(tx, current_block, minimum_fee)


#: A failing group of at most this many range proofs is checked proof by proof; a larger
#: one as two halves, each a batch (with one bad proof among 64: ~12 batch checks of
#: shrinking halves instead of 64 single ones, each costing nearly a batch of 8).
_ONE_BY_ONE = 3


def _range_proof_errors(txs: Sequence[Tx]) -> list[TxValidationError | None]:
    """Each tx's range-proof verdict, exactly `check_range_proof`'s, for txs whose proofs
    failed together in a batch: small groups one by one, larger ones halved."""
    if len(txs) <= _ONE_BY_ONE:
        return [_error_of(check_range_proof, tx) for tx in txs]
    half = len(txs) // 2
    errors: list[TxValidationError | None] = []
    for part in (txs[:half], txs[half:]):
        errors += [None] * len(part) if range_proofs_hold(part) else _range_proof_errors(part)
    return errors


def validate_txs(
    txs: Sequence[Tx],
    *,
    current_block: int,
    roots: Sequence[MerkleRoot],
    minimum_fee: int = DEFAULT_MINIMUM_FEE,
    beside: RunBeside | None = None,
) -> list[TxValidationError | None]:
    """`validate_tx`'s verdict on each tx: None when it is valid, else the error that
    `validate_tx` would raise (`roots[i]` is tx i's root). The range proofs are checked as
    one batch (`range_proofs_hold`: ~6x cheaper per proof at 64 than one by one).

    `beside`: the batch runs there while this call checks the other rules of each tx (the
    ring signatures above all), both native code that releases the GIL. If the batch
    fails, the proofs of the txs that passed every earlier rule are checked again in
    halves and then one by one (`_range_proof_errors`): a bad proof costs its batch-mates
    a few more batch checks, never their acceptance, and every tx gets its own verdict."""
    if len(roots) != len(txs):
        raise ValueError(f"{len(txs)} txs but {len(roots)} roots")
    if not txs:
        return []
    if len(txs) == 1:
        check = functools.partial(
            validate_tx,
            current_block=current_block,
            root=roots[0],
            minimum_fee=minimum_fee,
            beside=beside,
        )
        return [_error_of(check, txs[0])]
    held: list[bool] = []

    def batch() -> None:
        held.append(range_proofs_hold(txs))

    wait = None if beside is None else beside(batch)
    errors = [
        _error_of(functools.partial(_check_before_range_proof, root=root), tx)
        for tx, root in zip(txs, roots, strict=True)
    ]
    if wait is None:
        batch()
    else:
        wait()
    if not held[0]:
        suspects = [i for i, error in enumerate(errors) if error is None]
        for i, error in zip(suspects, _range_proof_errors([txs[i] for i in suspects]), strict=True):
            errors[i] = error
    after = functools.partial(
        _check_after_range_proof, current_block=current_block, minimum_fee=minimum_fee
    )
    return [
        _error_of(after, tx) if error is None else error
        for tx, error in zip(txs, errors, strict=True)
    ]


class LedgerView(Protocol):
    """Read-only questions the ledger-dependent rules ask."""

    def contains_key_image(self, key_image: bytes) -> bool: ...

    def contains_output_public_key(self, public_key: bytes) -> bool: ...


def check_key_images_unspent(tx: Tx, ledger: LedgerView) -> None:
    for image in tx.key_images:
        if ledger.contains_key_image(image):
            raise KeyImageAlreadySpent(f"key image {image.hex()} is already spent")


def check_output_public_keys_new(tx: Tx, ledger: LedgerView) -> None:
    for key in tx.output_public_keys:
        if ledger.contains_output_public_key(key):
            raise OutputPublicKeyExists(f"output public key {key.hex()} is already in the ledger")


@dataclass(frozen=True, slots=True)
class WellFormedTxContext:
    """What the untrusted host may see of a validated tx: enough to order, dedupe and
    expire it, nothing about who pays whom or how much."""

    tx_hash: bytes
    fee: int
    tombstone_block: int
    key_images: tuple[bytes, ...]
    output_public_keys: tuple[bytes, ...]
    highest_indices: tuple[int, ...]

    @classmethod
    def from_tx(cls, tx: Tx) -> WellFormedTxContext:
        return cls(
            tx_hash=tx.tx_hash(),
            fee=tx.prefix.fee,
            tombstone_block=tx.prefix.tombstone_block,
            key_images=tx.key_images,
            output_public_keys=tx.output_public_keys,
            # Per input: the last leaf of the tree its proofs were cut from.
            highest_indices=tuple(
                max((p.size - 1 for p in tx_in.proofs), default=0) for tx_in in tx.prefix.inputs
            ),
        )
