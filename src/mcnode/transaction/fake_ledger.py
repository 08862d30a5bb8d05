"""An in-memory ledger of outputs, for tests, benchmarks and load generation.

It mints outputs out of thin air (no inputs: a genesis-like faucet), picks rings of decoys
around an owned output and cuts membership proofs with `membership.prove_membership`, and
answers the `LedgerView` questions. It is no consensus ledger: nothing here checks a
transaction before `append_tx` takes it in.
"""

from __future__ import annotations

from mcnode.crypto import RandomSource
from mcnode.transaction.account import PublicAddress
from mcnode.transaction.builder import InputCredentials
from mcnode.transaction.membership import (
    MembershipProof,
    MerkleRoot,
    leaf_hash,
    prove_membership,
    tree_root,
)
from mcnode.transaction.tx import RING_SIZE, Tx
from mcnode.transaction.txout import OwnedOutput, TxOut, create_output


class FakeLedger:
    def __init__(self) -> None:
        self.tx_outs: list[TxOut] = []
        self._leaves: list[bytes] = []
        self._index: dict[bytes, int] = {}
        self._key_images: set[bytes] = set()

    def copy(self) -> FakeLedger:
        other = FakeLedger()
        other.tx_outs = list(self.tx_outs)
        other._leaves = list(self._leaves)
        other._index = dict(self._index)
        other._key_images = set(self._key_images)
        return other

    def _append(self, tx_out: TxOut) -> None:
        self._index[tx_out.public_key] = len(self.tx_outs)
        self.tx_outs.append(tx_out)
        self._leaves.append(leaf_hash(tx_out))

    def mint(self, address: PublicAddress, value: int, rng: RandomSource) -> TxOut:
        tx_out = create_output(address, value, rng).tx_out
        self._append(tx_out)
        return tx_out

    def append_tx(self, tx: Tx) -> None:
        for tx_out in tx.prefix.outputs:
            self._append(tx_out)
        self._key_images.update(tx.key_images)

    def root(self) -> MerkleRoot:
        return tree_root(self._leaves)

    def proofs(self, tx_outs: list[TxOut]) -> list[MembershipProof]:
        return prove_membership(self._leaves, [self._index[t.public_key] for t in tx_outs])

    def input_credentials(
        self, owned: OwnedOutput, rng: RandomSource, ring_size: int = RING_SIZE
    ) -> InputCredentials:
        """A ring of `ring_size` around `owned`: decoys drawn uniformly from the ledger."""
        real = self._index[owned.tx_out.public_key]
        if len(self.tx_outs) < ring_size:
            raise ValueError(f"ledger has {len(self.tx_outs)} outputs, a ring needs {ring_size}")
        chosen = {real}
        while len(chosen) < ring_size:
            chosen.add(int.from_bytes(rng(8), "little") % len(self.tx_outs))
        ring = sorted((self.tx_outs[i] for i in chosen), key=lambda t: t.public_key)
        return InputCredentials(owned, tuple(ring), tuple(self.proofs(ring)))

    def contains_key_image(self, key_image: bytes) -> bool:
        return key_image in self._key_images

    def contains_output_public_key(self, public_key: bytes) -> bool:
        return public_key in self._index
