"""Accounts, addresses, outputs and scanning, membership proofs."""

from __future__ import annotations

import hashlib

import pytest

from mcnode.crypto import Scalar, SeededRandom, basepoint_mul
from mcnode.transaction import AccountKey, DecodeError, PublicAddress, Scanner, TxOut
from mcnode.transaction.membership import (
    NIL_HASH,
    MembershipProof,
    MerkleRoot,
    leaf_hash,
    node_hash,
    prove_membership,
    tree_root,
)
from mcnode.transaction.mlsag import key_image
from mcnode.transaction.txout import create_output

PINS = {
    "address": (
        "xqDRNECysRjJUx64v8cs2Hbmu3S9iuFqac9bwT9kurVNskVytypnEioWoJ5x"
        "wcejanv7PsVtNed9DZrxmggSTFKny5FVY"
    ),
    "key_image": "02d58696aea5d15c29248862d6e459668090284a195eb94eb1bf5a0de2ac5e23",
    "tx_out": "464e58e7f5c82e6730773875726ae6ddfd1fa776681915c44fa340adc8361a58",
    "leaf": "7098f1c0bb1091830ca6f560e9bec3540283a68be6f86d6e24a4888116d8e58e",
}


def test_address_string_round_trip_and_checksum_seed_21() -> None:
    account = AccountKey.random(SeededRandom(21))
    address = account.default_address
    text = address.to_string()
    assert PublicAddress.from_string(text) == address
    typo = text[:10] + ("2" if text[10] != "2" else "3") + text[11:]
    with pytest.raises(DecodeError, match="checksum"):
        PublicAddress.from_string(typo)
    with pytest.raises(DecodeError):
        PublicAddress.from_string(text + "0")  # '0' is not base58
    with pytest.raises(DecodeError):
        PublicAddress.from_string(text[:-2])
    with pytest.raises(DecodeError):
        PublicAddress.from_string("1" * 500)


def test_account_key_round_trip_and_subaddresses_seed_22() -> None:
    account = AccountKey.random(SeededRandom(22))
    assert AccountKey.from_bytes(account.to_bytes()) == account
    addresses = {account.subaddress(i) for i in range(5)}
    assert len(addresses) == 5
    assert "secret" in repr(account)
    with pytest.raises(DecodeError):
        AccountKey.from_bytes(b"\xff" * 64)
    with pytest.raises(DecodeError):
        AccountKey.from_bytes(account.to_bytes()[:-1])


def test_scanning_finds_only_own_outputs_and_unmasks_seed_23() -> None:
    rng = SeededRandom(23)
    alice, bob = AccountKey.random(rng), AccountKey.random(rng)
    outs = [
        create_output(alice.subaddress(0), 5, rng, b"hello").tx_out,
        create_output(bob.default_address, 6, rng).tx_out,
        create_output(alice.change_address, 2**64 - 1, rng).tx_out,
        create_output(alice.subaddress(7), 8, rng).tx_out,  # not in the scanned table
    ]
    found = Scanner(alice).scan(outs)
    assert [(o.value, o.subaddress_index, o.memo) for o in found] == [
        (5, 0, b"hello"),
        (2**64 - 1, 1, b""),
    ]
    assert [o.value for o in Scanner(alice, range(10)).scan(outs)] == [5, 2**64 - 1, 8]
    assert [o.value for o in Scanner(bob).scan(outs)] == [6]
    assert outs[0].masked_value != 5
    # The one-time private key really is log_G(target key).
    assert basepoint_mul(found[0].onetime_private).encoding == outs[0].target_key
    assert TxOut.from_bytes(outs[0].to_bytes()) == outs[0]
    with pytest.raises(DecodeError):
        TxOut.from_bytes(outs[0].to_bytes() + b"\0")
    with pytest.raises(ValueError):
        create_output(bob.default_address, 1, rng, b"x" * 65)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 9, 17])
def test_membership_proofs_for_every_leaf(size: int) -> None:
    rng = SeededRandom(size)
    owner = AccountKey.random(rng).default_address
    outs = [create_output(owner, i, rng).tx_out for i in range(size)]
    leaves = [leaf_hash(t) for t in outs]
    root = tree_root(leaves)
    proofs = prove_membership(leaves, range(size))
    for tx_out, proof in zip(outs, proofs, strict=True):
        assert proof.verify(tx_out, root)
        assert not proof.verify(outs[(proof.index + 1) % size], root) or size == 1
        assert not proof.verify(tx_out, MerkleRoot(size + 1, root.hash))
    with pytest.raises(IndexError):
        prove_membership(leaves, [size])


def test_membership_tree_shape_is_documented() -> None:
    a, b, c = (bytes([i]) * 32 for i in range(3))
    assert tree_root([a, b, c]).hash == node_hash(node_hash(a, b), node_hash(c, NIL_HASH))
    assert tree_root([a]).hash == a
    assert tree_root([]) == MerkleRoot(0, NIL_HASH)
    bad = MembershipProof(index=5, size=3, siblings=(a, b))
    assert not bad.verify(
        create_output(
            AccountKey.random(SeededRandom(1)).default_address, 1, SeededRandom(2)
        ).tx_out,
        tree_root([a, b, c]),
    )


def test_consensus_formats_are_pinned() -> None:
    # Golden values from this implementation: a change here changes the ledger format
    # (addresses, key images, outputs), so it must be deliberate.
    account = AccountKey(Scalar(1), Scalar(2))
    tx_out = create_output(account.default_address, 1000, SeededRandom(1), b"memo").tx_out
    pins = {
        "address": account.default_address.to_string(),
        "key_image": key_image(Scalar(7)).hex(),
        "tx_out": hashlib.sha256(tx_out.to_bytes()).hexdigest(),
        "leaf": leaf_hash(tx_out).hex(),
    }
    assert pins == PINS
