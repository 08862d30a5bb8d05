"""The enclave's transaction checks against the ledger, and the choice of a block's txs.

`check_new_txs` is the full validation txs get when they first enter the enclave: the two
ledger lookups, then every rule of `transaction.validation`, each tx against the Merkle
root of the tree size its proofs were cut from; the range proofs of all are checked as
one batch. `recheck_tx` is what can change afterwards as blocks are added (tombstone,
spent key images, taken output keys): signatures, proofs and balance were checked once
and cannot stop holding. `select_for_block` walks txs in the given order and keeps each
that passes `recheck_tx` and conflicts with no tx kept before it, so every node given the
same ledger and the same list keeps the same txs.

Functions over a read-only ledger (no state of their own; `beside` is the caller's
thread); they raise or return `TxValidationError`s with their plaintext-bearing messages,
which callers turn into codes before anything leaves.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcnode.enclave.api import EnclaveLedger
from mcnode.enclave.errors import ProposeTxResult, code_for
from mcnode.ledger.block import BlockContents
from mcnode.ledger.errors import NotInLedger
from mcnode.transaction.errors import (
    KeyImageAlreadySpent,
    OutputPublicKeyExists,
    TxValidationError,
)
from mcnode.transaction.membership import MerkleRoot
from mcnode.transaction.tx import Tx
from mcnode.transaction.validation import (
    RunBeside,
    check_key_images_unspent,
    check_output_public_keys_new,
    check_tombstone,
    validate_txs,
)

#: A root no proof verifies against: for proofs cut from a tree this ledger never had.
_NO_ROOT = MerkleRoot(-1, b"")


def proofs_root(tx: Tx, ledger: EnclaveLedger) -> MerkleRoot:
    """The root the tx's membership proofs claim to lead to: the ledger's root at the
    tree size of the first proof (validation requires every proof to share it)."""
    for tx_in in tx.prefix.inputs:
        for proof in tx_in.proofs:
            try:
                return ledger.root_for_size(proof.size)
            except NotInLedger:
                return _NO_ROOT
    return _NO_ROOT


def check_new_txs(
    txs: Sequence[Tx],
    ledger: EnclaveLedger,
    *,
    block_index: int,
    minimum_fee: int,
    beside: RunBeside | None = None,
) -> list[TxValidationError | None]:
    """Per tx: None when it passes the ledger lookups and every rule (`validate_txs`, in
    rule order), else the first error. `block_index` is the index of the block the txs
    would go into (the ledger's block count); `beside` as `validate_txs` takes it.

    The lookups come first: a tx whose key image the ledger holds, or one of whose output
    keys it holds, is refused for that after a few microseconds instead of after its
    signatures and proofs (2-5 ms). Such a tx can never become valid, and every node's
    ledger shows why, so only the code it is refused with changes (spent, not a bad
    signature it may also have). What it saves: a committed tx sent again (by its wallet,
    or by a peer that saw it relayed, or a copy that arrives after its block) costs
    lookups, not a validation."""
    errors = [_ledger_error(tx, ledger) for tx in txs]
    unsettled = [i for i, error in enumerate(errors) if error is None]
    verdicts = validate_txs(
        [txs[i] for i in unsettled],
        current_block=block_index,
        roots=[proofs_root(txs[i], ledger) for i in unsettled],
        minimum_fee=minimum_fee,
        beside=beside,
    )
    for i, error in zip(unsettled, verdicts, strict=True):
        errors[i] = error
    return errors


def _ledger_error(tx: Tx, ledger: EnclaveLedger) -> TxValidationError | None:
    """Why the ledger alone refuses `tx` (spent key image, output key taken), or None."""
    try:
        check_key_images_unspent(tx, ledger)
        check_output_public_keys_new(tx, ledger)
    except TxValidationError as e:
        return e
    return None


def recheck_tx(tx: Tx, ledger: EnclaveLedger, *, block_index: int) -> None:
    """The rules a valid tx can come to break as the ledger grows."""
    check_tombstone(tx, block_index)
    check_key_images_unspent(tx, ledger)
    check_output_public_keys_new(tx, ledger)


def select_for_block(
    txs: Sequence[Tx], ledger: EnclaveLedger, *, block_index: int
) -> tuple[list[Tx], list[tuple[bytes, ProposeTxResult]]]:
    """(kept txs, dropped (tx hash, reason)) in the given order."""
    kept: list[Tx] = []
    dropped: list[tuple[bytes, ProposeTxResult]] = []
    images: set[bytes] = set()
    outputs: set[bytes] = set()
    for tx in txs:
        try:
            recheck_tx(tx, ledger, block_index=block_index)
            if images.intersection(tx.key_images):
                raise KeyImageAlreadySpent("spent by an earlier tx of the block")
            if outputs.intersection(tx.output_public_keys):
                raise OutputPublicKeyExists("an output key of an earlier tx of the block")
        except TxValidationError as e:
            dropped.append((tx.tx_hash(), code_for(e)))
            continue
        kept.append(tx)
        images.update(tx.key_images)
        outputs.update(tx.output_public_keys)
    return kept, dropped


def redacted_contents(txs: Sequence[Tx]) -> BlockContents:
    """What a block shows of its txs: key images and outputs, each sorted, and nothing
    that ties an output or a key image to the tx it came from."""
    images = sorted(image for tx in txs for image in tx.key_images)
    outputs = sorted((o for tx in txs for o in tx.prefix.outputs), key=lambda o: o.public_key)
    return BlockContents(tuple(images), tuple(outputs))
