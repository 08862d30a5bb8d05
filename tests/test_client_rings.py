"""Wallet-side rings (`client.rings`): decoys drawn from a `LedgerDB`, each with its proof."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from mcnode.client.rings import input_credentials, sample_ring
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import Block, BlockContents, BlockData, LedgerDB, NotInLedger
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.transaction import AccountKey, Scanner
from mcnode.transaction.fake_ledger import FakeLedger
from mcnode.transaction.membership import MembershipProof
from mcnode.transaction.txout import TxOut

SK, PK = ed25519_keypair(SeededRandom(7))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[LedgerDB]:
    with LedgerDB(tmp_path / "ledger", create=True, expected_signers={PK}) as ledger:
        yield ledger


def test_sample_ring_is_sorted_distinct_and_proven(db: LedgerDB) -> None:
    db.append_blocks(ChainBuilder(SK).chain(10, outputs=3))
    rng = SeededRandom(5)
    for real in (0, 7, 29):
        ring = sample_ring(db, real, rng)
        keys = [t.public_key for t, _ in ring]
        assert len(ring) == 11 and keys == sorted(set(keys))
        assert db.get_tx_out(real) in [t for t, _ in ring]
        root = db.merkle_root()
        assert all(proof.verify(t, root) for t, proof in ring)
    with pytest.raises(NotInLedger):
        sample_ring(db, 30, rng)
    with pytest.raises(NotInLedger):
        sample_ring(db, 0, rng, ring_size=31)


def test_credentials_are_those_of_the_fake_ledger_over_the_same_outputs(tmp_path: Path) -> None:
    """Same outputs in the same order, same seed: the same ring and the same proofs as
    `FakeLedger`, the reference the transaction tests build with."""
    rng = SeededRandom(12)
    alice = AccountKey.random(rng)
    fake = FakeLedger()
    for i in range(40):
        owner = alice if i % 5 == 0 else AccountKey.random(rng)
        fake.mint(owner.default_address, 10**9, rng)
    contents = BlockContents((), tuple(fake.tx_outs))
    with LedgerDB(tmp_path / "ledger", create=True) as db:
        db.append_block(BlockData(Block.new(None, contents, fake.root()), contents, None))
        owned = Scanner(alice).scan(db.get_tx_outs(0, db.num_tx_outs()))
        assert len(owned) == 8
        for seed, o in enumerate(owned):
            ours = input_credentials(db, o, SeededRandom(seed))
            assert ours == fake.input_credentials(o, SeededRandom(seed))
            assert o.tx_out in ours.ring


class GrowsWhileAsked:
    """A `LedgerDB` that appends a block right after telling how many TxOuts it holds."""

    def __init__(self, db: LedgerDB, more: list[BlockData]) -> None:
        self.db, self.more = db, more

    def num_tx_outs(self) -> int:
        n = self.db.num_tx_outs()
        self.db.append_block(self.more.pop(0))
        return n

    def get_tx_out(self, index: int) -> TxOut:
        return self.db.get_tx_out(index)

    def get_tx_out_index_by_public_key(self, public_key: bytes) -> int:
        return self.db.get_tx_out_index_by_public_key(public_key)

    def membership_proofs(self, indices: Sequence[int]) -> list[MembershipProof]:
        return self.db.membership_proofs(indices)


def test_a_ring_drawn_while_the_ledger_grows_is_proven_against_one_tree(db: LedgerDB) -> None:
    chain = ChainBuilder(SK).chain(8, outputs=2)
    db.append_blocks(chain[:4])
    growing = GrowsWhileAsked(db, chain[4:])
    rng = SeededRandom(3)
    for real in (0, 3, 7):
        before = db.num_tx_outs()
        ring = sample_ring(growing, real, rng, ring_size=5)
        sizes = {proof.size for _, proof in ring}
        assert sizes == {before + 2}  # the tree after the block that came in between
        root = db.root_for_size(before + 2)
        assert all(proof.verify(t, root) for t, proof in ring)
        assert all(proof.index < before for _, proof in ring)  # drawn from what was asked


def test_an_origin_ledger_under_a_ring_of_outputs_is_warned_of(tmp_path: Path) -> None:
    """A ring is 11 distinct ledger outputs: `ledger init` with fewer says nobody can pay,
    and the ring sampler refuses it; with exactly 11 a ring can be drawn."""
    from click.testing import CliRunner

    from mcnode.cli import main

    def init(name: str, accounts: int, outputs: int) -> str:
        args = ["ledger", "init", "--ledger", str(tmp_path / name), "--accounts", str(accounts)]
        args += ["--outputs-per-account", str(outputs), "--amount", "5", "--seed", "1"]
        r = CliRunner().invoke(main, [*args, "--keys-out", str(tmp_path / f"{name}-keys")])
        assert r.exit_code == 0, r.output
        return r.stderr

    assert "no payment can ever be made" in init("small", 2, 5)
    with LedgerDB(tmp_path / "small", readonly=True) as led, pytest.raises(NotInLedger):
        sample_ring(led, 0, SeededRandom(1))
    assert init("enough", 1, 11) == ""
    with LedgerDB(tmp_path / "enough", readonly=True) as led:
        assert len(sample_ring(led, 0, SeededRandom(1))) == 11
