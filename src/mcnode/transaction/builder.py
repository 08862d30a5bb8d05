"""TransactionBuilder: what a wallet does to pay someone.

From an account's owned outputs (each with a ring of ledger outputs around it and their
membership proofs), recipients, fee and tombstone block, `build` makes a `Tx` that passes
`validate_tx`: outputs (plus change to the account's change subaddress) sorted by public
key, pseudo-outputs whose blindings sum to the outputs' so the tx balances, one aggregated
range proof, and one MLSAG per input. Randomness comes only from the `rng` argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mcnode.crypto import RandomSource, Scalar, commit, prove_range
from mcnode.transaction import mlsag
from mcnode.transaction.account import AccountKey, PublicAddress
from mcnode.transaction.membership import MembershipProof
from mcnode.transaction.tx import (
    MAX_INPUTS,
    MAX_OUTPUTS,
    SignatureRctBulletproofs,
    Tx,
    TxIn,
    TxPrefix,
    signing_message,
)
from mcnode.transaction.txout import MEMO_SIZE, OutputSecret, OwnedOutput, TxOut, create_output


class TxBuildError(ValueError):
    """The wallet's request cannot become a valid transaction."""


class InsufficientFunds(TxBuildError):
    """Inputs do not cover outputs plus fee."""


@dataclass(frozen=True, slots=True)
class InputCredentials:
    """An owned output to spend, its ring (which contains it) and one proof per member."""

    owned: OwnedOutput
    ring: tuple[TxOut, ...]
    proofs: tuple[MembershipProof, ...]

    def sorted_ring(self) -> tuple[tuple[TxOut, ...], tuple[MembershipProof, ...], int]:
        """Ring and proofs sorted by public key, and where the real output ended up."""
        if len(self.ring) != len(self.proofs):
            raise TxBuildError("one membership proof per ring member is required")
        pairs = sorted(zip(self.ring, self.proofs, strict=True), key=lambda p: p[0].public_key)
        ring = tuple(p[0] for p in pairs)
        if self.owned.tx_out not in ring:
            raise TxBuildError("the ring does not contain the output being spent")
        return ring, tuple(p[1] for p in pairs), ring.index(self.owned.tx_out)


@dataclass(frozen=True, slots=True)
class Recipient:
    address: PublicAddress
    value: int
    memo: bytes = b""


class TransactionBuilder:
    def __init__(self, account: AccountKey, *, fee: int, tombstone_block: int) -> None:
        self._account = account
        self._fee = fee
        self._tombstone = tombstone_block
        self._inputs: list[InputCredentials] = []
        self._recipients: list[Recipient] = []

    def add_input(self, credentials: InputCredentials) -> None:
        self._inputs.append(credentials)

    def add_output(self, address: PublicAddress, value: int, memo: bytes = b"") -> None:
        if value < 0 or len(memo) > MEMO_SIZE:
            raise TxBuildError("output value must be >= 0 and memo at most 64 bytes")
        self._recipients.append(Recipient(address, value, memo))

    def build(self, rng: RandomSource) -> Tx:
        if not 1 <= len(self._inputs) <= MAX_INPUTS:
            raise TxBuildError(f"need 1..{MAX_INPUTS} inputs, have {len(self._inputs)}")
        total_in = sum(c.owned.value for c in self._inputs)
        total_out = sum(r.value for r in self._recipients) + self._fee
        if total_in < total_out:
            raise InsufficientFunds(f"inputs hold {total_in}, outputs and fee need {total_out}")
        recipients = list(self._recipients)
        if total_in > total_out:
            recipients.append(Recipient(self._account.change_address, total_in - total_out))
        if not 1 <= len(recipients) <= MAX_OUTPUTS:
            raise TxBuildError(f"need 1..{MAX_OUTPUTS} outputs, have {len(recipients)}")

        secrets = sorted(
            (create_output(r.address, r.value, rng, r.memo) for r in recipients),
            key=lambda s: s.tx_out.public_key,
        )
        creds = sorted(self._inputs, key=lambda c: c.sorted_ring()[0][0].public_key)
        return assemble_tx(creds, secrets, self._fee, self._tombstone, rng)


def assemble_tx(
    inputs: Sequence[InputCredentials],
    outputs: Sequence[OutputSecret],
    fee: int,
    tombstone_block: int,
    rng: RandomSource,
) -> Tx:
    """Sign and prove a Tx from exactly these inputs and outputs, in this order.

    No checks of its own: the builder uses it after checking, and tests use it to make
    transactions that are signed and proved properly yet break one consensus rule.
    """
    rings = [c.sorted_ring() for c in inputs]
    # Pseudo-output blindings: random, except the last, which makes their sum equal the
    # outputs' so that sum(pseudo) - sum(outputs) = fee * H exactly when values balance.
    pseudo_blindings = [Scalar.random(rng) for _ in inputs[:-1]]
    last = Scalar(0)
    for o in outputs:
        last = last + o.blinding
    for b in pseudo_blindings:
        last = last - b
    pseudo_blindings.append(last)
    pseudo = tuple(
        commit(c.owned.value, b).encoding for c, b in zip(inputs, pseudo_blindings, strict=True)
    )
    proof, _ = prove_range(
        [c.owned.value for c in inputs] + [o.value for o in outputs],
        pseudo_blindings + [o.blinding for o in outputs],
        rng,
    )
    prefix = TxPrefix(
        inputs=tuple(TxIn(ring, proofs) for ring, proofs, _ in rings),
        outputs=tuple(o.tx_out for o in outputs),
        fee=fee,
        tombstone_block=tombstone_block,
    )
    msg = signing_message(prefix, pseudo, proof)
    signatures = tuple(
        mlsag.sign(
            msg,
            [(m.target_key, m.commitment) for m in ring],
            real_index,
            cred.owned.onetime_private,
            cred.owned.blinding - blinding,
            pseudo_commitment,
            rng,
        )
        for cred, (ring, _, real_index), blinding, pseudo_commitment in zip(
            inputs, rings, pseudo_blindings, pseudo, strict=True
        )
    )
    return Tx(prefix, SignatureRctBulletproofs(signatures, pseudo, proof))
