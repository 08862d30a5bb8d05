"""The native Merkle append (`merkle.append_encoded`) gives the reference's bytes exactly."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcnode import _native
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import LedgerDB
from mcnode.ledger.merkle import (
    NodeGetter,
    append_encoded,
    extend_tree,
    frontier_of,
    membership_proof,
)
from mcnode.ledger.merkle_store import node_key
from mcnode.ledger.store import int_key
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.transaction.membership import (
    MAX_DEPTH,
    leaf_hash,
    leaf_hash_of_encoding,
    prove_membership,
    tree_root,
)

SK, PK = ed25519_keypair(SeededRandom(31))


def made_up_node(level: int, index: int) -> bytes:
    """A stand-in for any stored node of a tree too big to build."""
    return hashlib.sha256(f"{level}/{index}".encode()).digest()


def check_against_reference(get: NodeGetter, size: int, encodings: Sequence[bytes]) -> None:
    """`append_encoded` from the frontier equals `extend_tree` from the stored nodes."""
    got = append_encoded(size, frontier_of(get, size), encodings)
    leaves = [leaf_hash_of_encoding(e) for e in encodings]
    changed, root = extend_tree(get, size, leaves)
    assert got.leaves == leaves
    assert got.keys == [int_key(size + i) for i in range(len(encodings))]
    nodes = list(zip(got.node_keys, got.node_hashes, strict=True))
    assert nodes == sorted((node_key(lv, i), h) for (lv, i), h in changed.items() if lv)
    assert got.root == root

    def after(level: int, index: int) -> bytes:
        node = changed.get((level, index))
        return node if node is not None else get(level, index)

    assert got.frontier == frontier_of(after, size + len(encodings))


@settings(max_examples=200, deadline=None)
@given(
    blocks=st.lists(
        st.lists(st.binary(min_size=0, max_size=200), min_size=1, max_size=40),
        min_size=1,
        max_size=12,
    )
)
def test_native_append_matches_reference_block_by_block(blocks: list[list[bytes]]) -> None:
    stored: dict[tuple[int, int], bytes] = {}
    size = 0
    for encodings in blocks:
        check_against_reference(lambda lv, i: stored[(lv, i)], size, encodings)
        changed, _ = extend_tree(
            lambda lv, i: stored[(lv, i)], size, [leaf_hash_of_encoding(e) for e in encodings]
        )
        stored.update(changed)
        size += len(encodings)


@settings(max_examples=300, deadline=None)
@given(
    size=st.one_of(
        st.integers(0, 1 << 20),
        st.integers(0, 47).map(lambda k: (1 << k) - 1),
        st.integers(0, 47).map(lambda k: 1 << k),
        st.integers(0, (1 << MAX_DEPTH) - 64),
    ),
    count=st.integers(1, 64),
    seed=st.integers(0, 2**32),
)
def test_native_append_matches_reference_on_any_old_tree(size: int, count: int, seed: int) -> None:
    """Big old trees too: both read only what `frontier_of` names (made-up stored nodes)."""
    rng = random.Random(seed)
    encodings = [rng.randbytes(rng.randrange(0, 120)) for _ in range(count)]
    check_against_reference(made_up_node, size, encodings)


@pytest.mark.parametrize("seed", [4, 5])
def test_native_appends_give_the_membership_tree(seed: int) -> None:
    rng = random.Random(seed)
    encodings = [rng.randbytes(100) for _ in range(300)]
    leaves = [leaf_hash_of_encoding(e) for e in encodings]
    stored: dict[tuple[int, int], bytes] = {}
    size, frontier = 0, []
    while size < len(encodings):
        k = min(rng.choice([1, 1, 2, 5, 31, 64, 100]), len(encodings) - size)
        ext = append_encoded(size, frontier, encodings[size : size + k])
        stored.update({(0, size + i): h for i, h in enumerate(ext.leaves)})
        stored.update(
            {
                (key[0], int.from_bytes(key[1:], "big")): h
                for key, h in zip(ext.node_keys, ext.node_hashes, strict=True)
            }
        )
        size, frontier = size + k, ext.frontier
        assert ext.root == tree_root(leaves[:size])
    proofs = [membership_proof(lambda lv, i: stored[(lv, i)], j, size) for j in range(size)]
    assert proofs == prove_membership(leaves, range(size))


@settings(max_examples=100, deadline=None)
@given(
    size=st.integers(1, 70),
    data=st.data(),
)
def test_native_proof_root_matches_the_reference(size: int, data: st.DataObject) -> None:
    """`_native.merkle_root_for` (what `MembershipProof.verify` uses) is `root_for` of the
    leaf, byte for byte: for every proof of a tree, for proofs with a sibling or the index
    changed, and for any leaf bytes."""
    encodings = [data.draw(st.binary(min_size=0, max_size=90)) for _ in range(size)]
    leaves = [leaf_hash_of_encoding(e) for e in encodings]
    root = tree_root(leaves)
    proofs = prove_membership(leaves, range(size))
    for j, proof in enumerate(proofs):
        got = _native.merkle_root_for(encodings[j], proof.index, proof.siblings)
        assert got == proof.root_for(leaves[j]) == root.hash
    j = data.draw(st.integers(0, size - 1))
    proof = proofs[j]
    index = data.draw(st.integers(0, 2**64 - 1))
    siblings = list(proof.siblings)
    if siblings:
        k = data.draw(st.integers(0, len(siblings) - 1))
        siblings[k] = data.draw(st.binary(min_size=32, max_size=32))
    other = data.draw(st.binary(max_size=90))
    expected = dataclasses.replace(proof, index=index, siblings=tuple(siblings))
    got = _native.merkle_root_for(other, index, siblings)
    assert got == expected.root_for(leaf_hash_of_encoding(other))


def test_native_proof_root_refuses_bad_siblings() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        _native.merkle_root_for(b"x", 0, [b"short"])
    with pytest.raises(ValueError, match="exceed the limit of 48"):
        _native.merkle_root_for(b"x", 0, [b"\x01" * 32] * (MAX_DEPTH + 1))
    with pytest.raises(TypeError):
        _native.merkle_root_for(b"x", 0, ["not bytes"])


def test_native_append_refuses_bad_input() -> None:
    one = [b"\x01" * 32]
    with pytest.raises(ValueError, match="no TxOuts"):
        _native.ledger_merkle_append(0, [], [])
    with pytest.raises(ValueError, match="frontier of 2 nodes"):
        _native.ledger_merkle_append(3, one, [b"x"])
    with pytest.raises(ValueError, match="32 bytes"):
        _native.ledger_merkle_append(1, [b"short"], [b"x"])
    with pytest.raises(ValueError, match="deeper than 48"):
        _native.ledger_merkle_append(1 << MAX_DEPTH, one, [b"x"])
    with pytest.raises(ValueError, match="deeper than 48"):
        _native.ledger_merkle_append((1 << 64) - 1, one * 64, [b"x"])
    with pytest.raises(TypeError):
        _native.ledger_merkle_append(0, [], ["not bytes"])


@pytest.mark.parametrize("split", [1, 3, 7])
def test_reopened_ledger_continues_the_tree(tmp_path: Path, split: int) -> None:
    """The writer's frontier is rebuilt from stored nodes after a reopen."""
    chain = ChainBuilder(SK).chain(10, outputs=3, key_images=1)
    path = tmp_path / "ledger"
    with LedgerDB(path, create=True, expected_signers={PK}) as db:
        db.append_blocks(chain[:split])
    with LedgerDB(path, expected_signers={PK}) as db:
        for data in chain[split:]:
            db.append_block(data)
        outs = [o for data in chain for o in data.contents.outputs]
        assert db.merkle_root() == tree_root([leaf_hash(o) for o in outs])
        assert db.membership_proofs(range(len(outs))) == prove_membership(
            [leaf_hash(o) for o in outs], range(len(outs))
        )
