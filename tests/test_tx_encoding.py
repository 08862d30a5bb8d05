"""Canonical encoding: round trips, hostile and fuzzed decoding, bit flips, properties."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcnode.crypto import SeededRandom
from mcnode.transaction import (
    AccountKey,
    DecodeError,
    Scanner,
    TransactionBuilder,
    Tx,
    TxValidationError,
    validate_tx,
)
from mcnode.transaction.encoding import Reader, Writer
from mcnode.transaction.fake_ledger import FakeLedger
from mcnode.transaction.membership import MembershipProof
from mcnode.transaction.mlsag import RingMLSAG
from mcnode.transaction.tx import MAX_TX_BYTES, TX_VERSION

CURRENT = 5
DETERMINISTIC = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


class Wallet:
    def __init__(self, seed: int) -> None:
        self.rng = SeededRandom(seed)
        self.alice = AccountKey.random(self.rng)
        self.bob = AccountKey.random(self.rng)
        self.ledger = FakeLedger()
        for i in range(24):
            owner = self.alice if i % 4 == 0 else AccountKey.random(self.rng)
            self.ledger.mint(owner.default_address, 2**63 + i, self.rng)
        self.owned = Scanner(self.alice).scan(self.ledger.tx_outs)

    def tx(self, value: int, fee: int, n_inputs: int = 1) -> Tx:
        b = TransactionBuilder(self.alice, fee=fee, tombstone_block=CURRENT + 1)
        for owned in self.owned[:n_inputs]:
            b.add_input(self.ledger.input_credentials(owned, self.rng))
        b.add_output(self.bob.default_address, value)
        return b.build(self.rng)

    def validate(self, tx: Tx) -> None:
        validate_tx(tx, current_block=CURRENT, root=self.ledger.root(), minimum_fee=0)


@pytest.fixture(scope="module")
def wallet() -> Wallet:
    return Wallet(41)


@pytest.fixture(scope="module")
def raw(wallet: Wallet) -> bytes:
    return wallet.tx(12345, 400).to_bytes()


def test_tx_round_trip(wallet: Wallet, raw: bytes) -> None:
    tx = Tx.from_bytes(raw)
    assert tx.to_bytes() == raw
    assert raw[0] == TX_VERSION
    wallet.validate(tx)
    assert len(tx.tx_hash()) == 32
    assert tx.tx_hash() == Tx.from_bytes(raw).tx_hash()
    # The prefix keeps the part of the bytes it was decoded from: the same bytes as
    # encoding its fields afresh, and so the same signing-message hash.
    fresh = dataclasses.replace(tx.prefix)
    assert tx.prefix.to_bytes() == fresh.to_bytes() == raw[1 : 1 + len(fresh.to_bytes())]
    assert tx.prefix.hash() == fresh.hash()


def test_parts_round_trip(raw: bytes) -> None:
    tx = Tx.from_bytes(raw)
    proof = tx.prefix.inputs[0].proofs[0]
    w = Writer()
    proof.encode(w)
    assert MembershipProof.decode(Reader(w.getvalue())) == proof
    w = Writer()
    tx.signature.ring_signatures[0].encode(w)
    assert RingMLSAG.decode(Reader(w.getvalue())) == tx.signature.ring_signatures[0]


def test_every_truncation_is_a_decode_error(raw: bytes) -> None:
    for n in range(len(raw)):
        with pytest.raises(DecodeError):
            Tx.from_bytes(raw[:n])


def test_trailing_oversized_and_bad_version_are_decode_errors(raw: bytes) -> None:
    for bad in (raw + b"\0", bytes([TX_VERSION + 1]) + raw[1:], b"\0" * (MAX_TX_BYTES + 1)):
        with pytest.raises(DecodeError):
            Tx.from_bytes(bad)
    # an input count over the limit (16) is refused before reading any input
    with pytest.raises(DecodeError, match="limit"):
        Tx.from_bytes(bytes([TX_VERSION, 17]) + raw[2:])


def test_decode_errors_are_value_errors() -> None:
    assert issubclass(DecodeError, ValueError)


@DETERMINISTIC
@given(st.binary(max_size=4096))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Tx.from_bytes(data)


@DETERMINISTIC
@given(st.data())
def test_random_splices_of_a_valid_tx_only_raise_decode_errors(
    raw: bytes, data: st.DataObject
) -> None:
    start = data.draw(st.integers(0, len(raw)))
    junk = data.draw(st.binary(max_size=64))
    spliced = raw[:start] + junk + raw[start + len(junk) :]
    with contextlib.suppress(DecodeError):
        tx = Tx.from_bytes(spliced)
        # Whatever decodes is canonical: re-encoding from the fields (not the bytes the
        # Tx keeps from decoding) gives the same bytes, so the kept bytes are its encoding.
        assert Tx(dataclasses.replace(tx.prefix), tx.signature).to_bytes() == spliced


@settings(DETERMINISTIC, max_examples=60)
@given(st.data())
def test_any_single_bit_flip_fails_decoding_or_validation(
    wallet: Wallet, raw: bytes, data: st.DataObject
) -> None:
    bit = data.draw(st.integers(0, 8 * len(raw) - 1))
    flipped = bytearray(raw)
    flipped[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises((DecodeError, TxValidationError)):
        wallet.validate(Tx.from_bytes(bytes(flipped)))


@settings(DETERMINISTIC, max_examples=8)
@given(
    value=st.integers(0, 2**62),
    fee=st.integers(0, 2**62),
    n_inputs=st.integers(1, 2),
)
def test_random_amounts_and_fees_build_valid_txs(
    wallet: Wallet, value: int, fee: int, n_inputs: int
) -> None:
    tx = wallet.tx(value, fee, n_inputs)
    wallet.validate(tx)
    assert Tx.from_bytes(tx.to_bytes()) == tx
    [paid] = Scanner(wallet.bob).scan(tx.prefix.outputs)
    assert paid.value == value
