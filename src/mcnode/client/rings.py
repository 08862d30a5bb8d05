"""Rings for spending an owned output: decoys drawn from a ledger, each with its proof.

A ring is the real output and `RING_SIZE - 1` distinct decoys drawn uniformly from every
TxOut in the ledger, sorted by public key as validation requires, each with a membership
proof against one tree. This is wallet logic: the ledger only answers the read questions
of `RingLedger` (a `LedgerDB`, opened read-only beside a node or as a wallet's own copy).
It must not know how the ledger stores anything. While the ledger grows between those
questions the ring stays sound: TxOuts never change once written, and the proofs all come
from one call, so they share one tree (which holds every member).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from mcnode.crypto import RandomSource
from mcnode.ledger.errors import NotInLedger
from mcnode.transaction.builder import InputCredentials
from mcnode.transaction.membership import MembershipProof
from mcnode.transaction.tx import RING_SIZE
from mcnode.transaction.txout import OwnedOutput, TxOut


class RingLedger(Protocol):
    """The ledger reads a ring needs (`ledger.LedgerDB` answers them)."""

    def num_tx_outs(self) -> int: ...

    def get_tx_out(self, index: int) -> TxOut: ...

    def get_tx_out_index_by_public_key(self, public_key: bytes) -> int: ...

    def membership_proofs(self, indices: Sequence[int]) -> list[MembershipProof]:
        """Proofs for each of `indices`, all against the same tree."""
        ...


def sample_ring(
    ledger: RingLedger, real_index: int, rng: RandomSource, ring_size: int = RING_SIZE
) -> list[tuple[TxOut, MembershipProof]]:
    """A ring around TxOut `real_index`: `ring_size - 1` distinct decoys drawn uniformly
    from the ledger, each member with its proof, sorted by public key. `NotInLedger` when
    the ledger lacks `real_index` or holds fewer TxOuts than a ring."""
    size = ledger.num_tx_outs()
    if not 0 <= real_index < size:
        raise NotInLedger(f"no TxOut {real_index} (the ledger has {size})")
    if size < ring_size:
        raise NotInLedger(f"the ledger has {size} TxOuts, a ring needs {ring_size}")
    chosen = {real_index}
    while len(chosen) < ring_size:
        chosen.add(int.from_bytes(rng(8), "little") % size)
    indices = list(chosen)
    ring = zip(map(ledger.get_tx_out, indices), ledger.membership_proofs(indices), strict=True)
    return sorted(ring, key=lambda member: member[0].public_key)


def input_credentials(
    ledger: RingLedger, owned: OwnedOutput, rng: RandomSource, ring_size: int = RING_SIZE
) -> InputCredentials:
    """What `TransactionBuilder.add_input` takes to spend `owned`, with a ring from
    `ledger` (`transaction.fake_ledger.FakeLedger` offers the same for tests)."""
    real = ledger.get_tx_out_index_by_public_key(owned.tx_out.public_key)
    ring = sample_ring(ledger, real, rng, ring_size)
    return InputCredentials(owned, tuple(m[0] for m in ring), tuple(m[1] for m in ring))
