"""LedgerDB: blocks, the incremental Merkle tree, append checks, and the LedgerView face."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcnode.client.rings import input_credentials
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.ledger import (
    Block,
    BlockContents,
    BlockData,
    LedgerDB,
    LedgerError,
    NotInLedger,
    sign_block,
)
from mcnode.ledger import errors as E
from mcnode.ledger.block import DST_BLOCK_ID, DST_CONTENTS, BlockSignature
from mcnode.ledger.merkle import MerkleFrontier, extend_tree, membership_proof
from mcnode.ledger.origin import origin_block, sample_accounts
from mcnode.ledger.reads import Snapshot
from mcnode.ledger.synthetic import ChainBuilder, fake_key_image, fake_tx_out
from mcnode.transaction import Scanner, TransactionBuilder, validate_tx
from mcnode.transaction.encoding import Reader, Writer, domain_hash
from mcnode.transaction.errors import DecodeError, KeyImageAlreadySpent, OutputPublicKeyExists
from mcnode.transaction.membership import (
    MerkleRoot,
    leaf_hash,
    prove_membership,
    tree_root,
)
from mcnode.transaction.txout import E_MEMO_SIZE, TxOut
from mcnode.transaction.validation import (
    DEFAULT_MINIMUM_FEE,
    check_key_images_unspent,
    check_output_public_keys_new,
)

SK, PK = ed25519_keypair(SeededRandom(7))
OTHER_SK, OTHER_PK = ed25519_keypair(SeededRandom(8))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[LedgerDB]:
    with LedgerDB(tmp_path / "ledger", create=True, expected_signers={PK}) as ledger:
        yield ledger


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(fake_tx_out(i.to_bytes(4, "little"))) for i in range(n)]


# -- the tree ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_tree_matches_membership_tree(seed: int) -> None:
    rng = random.Random(seed)
    stored: dict[tuple[int, int], bytes] = {}
    leaves = _leaves(140)
    size = 0
    while size < len(leaves):
        k = min(rng.choice([1, 1, 2, 3, 7, 16, 33]), len(leaves) - size)
        changed, root = extend_tree(lambda lv, i: stored[(lv, i)], size, leaves[size : size + k])
        stored.update(changed)
        size += k
        assert root == tree_root(leaves[:size])
        want = prove_membership(leaves[:size], range(size))
        got = [membership_proof(lambda lv, i: stored[(lv, i)], i, size) for i in range(size)]
        assert got == want


def test_frontier_matches_tree_root_at_every_size() -> None:
    leaves = _leaves(70)
    frontier = MerkleFrontier()
    assert frontier.root() == tree_root([])
    for n in range(1, len(leaves) + 1):
        frontier.append(leaves[n - 1])
        assert frontier.root() == tree_root(leaves[:n])


# -- blocks ------------------------------------------------------------------------------


def test_block_data_round_trips_and_ids_cover_every_field() -> None:
    chain = ChainBuilder(SK).chain(3, outputs=4, key_images=2)
    for data in chain:
        assert BlockData.from_bytes(data.to_bytes()) == data
        assert Block.from_bytes(data.block.to_bytes()) == data.block
    block = chain[2].block
    for name, value in [
        ("version", 2),
        ("parent_id", bytes(32)),
        ("index", 9),
        ("cumulative_txo_count", 1),
        ("root_element", MerkleRoot(12, bytes(32))),
        ("contents_hash", bytes(32)),
    ]:
        assert dataclasses.replace(block, **{name: value}).expected_id() != block.id, name


def test_signature_covers_block_id_and_signed_at() -> None:
    block = ChainBuilder(SK).chain(2)[1].block
    sig = sign_block(block, SK, 1234)
    assert sig.verify(block.id) and sig.signer == PK
    assert not dataclasses.replace(sig, signed_at=1235).verify(block.id)
    assert not sig.verify(bytes(32))


def _writer_bytes(value: Block | BlockContents | BlockSignature) -> bytes:
    w = Writer()
    value.encode(w)
    return w.getvalue()


_h32 = st.binary(min_size=32, max_size=32)
_u64s = st.integers(0, 2**64 - 1)


@settings(max_examples=200, deadline=None)
@given(
    block=st.builds(
        Block,
        _h32,
        st.integers(0, 2**16 - 1),
        _h32,
        _u64s,
        _u64s,
        st.builds(MerkleRoot, _u64s, _h32),
        _h32,
    ),
    signature=st.builds(BlockSignature, st.binary(min_size=64, max_size=64), _h32, _u64s),
    images=st.lists(_h32, max_size=5),
    tags=st.lists(st.binary(max_size=4), max_size=5),
)
def test_fast_encodings_are_the_writer_encodings(
    block: Block, signature: BlockSignature, images: list[bytes], tags: list[bytes]
) -> None:
    """`to_bytes` shortcuts (struct, join) give `encode`'s bytes; ids and hashes follow."""
    assert block.to_bytes() == _writer_bytes(block)
    assert signature.to_bytes() == _writer_bytes(signature)
    outputs = tuple(fake_tx_out(t) for t in tags)
    for contents in (BlockContents(tuple(images), ()), BlockContents(tuple(images), outputs)):
        assert contents.to_bytes() == _writer_bytes(contents)
        assert contents.hash() == domain_hash(DST_CONTENTS, _writer_bytes(contents))
    w = Writer()
    block.encode(w)
    assert block.expected_id() == domain_hash(DST_BLOCK_ID, w.getvalue()[32:])


def test_fast_encodings_refuse_what_the_writer_refuses() -> None:
    block = ChainBuilder(SK).chain(2)[1].block
    for bad in [
        dataclasses.replace(block, id=bytes(31)),
        dataclasses.replace(block, parent_id=bytes(33)),
        dataclasses.replace(block, root_element=MerkleRoot(1, bytes(31))),
        dataclasses.replace(block, contents_hash=b""),
    ]:
        with pytest.raises(ValueError, match="must be 32 bytes"):
            bad.to_bytes()
    with pytest.raises(OverflowError):
        dataclasses.replace(block, index=-1).to_bytes()
    with pytest.raises(OverflowError):
        dataclasses.replace(block, version=2**16).expected_id()
    sig = sign_block(block, SK, 5)
    with pytest.raises(ValueError, match="must be 64 bytes"):
        dataclasses.replace(sig, signature=bytes(63)).to_bytes()
    with pytest.raises(OverflowError):
        dataclasses.replace(sig, signed_at=2**64).to_bytes()
    with pytest.raises(ValueError, match="must be 32 bytes"):
        BlockContents((bytes(32), bytes(5)), ()).to_bytes()


_tx_outs = st.builds(
    TxOut, _h32, _u64s, _h32, _h32, st.binary(min_size=E_MEMO_SIZE, max_size=E_MEMO_SIZE)
)


def _fresh_tx_out_bytes(tx_out: TxOut) -> bytes:
    w = Writer()
    tx_out.encode(w)
    return w.getvalue()


@settings(max_examples=200, deadline=None)
@given(tx_out=_tx_outs, other=_tx_outs)
def test_cached_tx_out_encoding_is_the_fresh_encoding(tx_out: TxOut, other: TxOut) -> None:
    """Made by `to_bytes` or kept from `decode`, the cache holds `encode`'s bytes, and it
    is not part of equality or hashing."""
    fresh = _fresh_tx_out_bytes(tx_out)
    untouched = dataclasses.replace(tx_out)
    assert tx_out.to_bytes() == fresh and tx_out.to_bytes() is tx_out.to_bytes()
    assert tx_out == untouched and hash(tx_out) == hash(untouched)
    decoded = TxOut.from_bytes(fresh)
    assert decoded == tx_out and decoded.to_bytes() == fresh
    assert _fresh_tx_out_bytes(decoded) == fresh
    changed = dataclasses.replace(decoded, public_key=other.public_key)
    assert changed.to_bytes() == _fresh_tx_out_bytes(changed)
    assert (changed.to_bytes() == fresh) == (other.public_key == tx_out.public_key)
    both = b"".join([fresh, other.to_bytes()])
    r = Reader(both)
    assert (TxOut.decode(r), TxOut.decode(r)) == (tx_out, other)
    r.finish()


def test_tx_out_encoding_cache_cannot_go_stale() -> None:
    tx_out = fake_tx_out(b"stale")
    with pytest.raises(TypeError):
        TxOut(*dataclasses.astuple(tx_out)[:5], _encoding=b"x")  # type: ignore[call-arg]
    tx_out.to_bytes()
    with pytest.raises(dataclasses.FrozenInstanceError):
        tx_out.public_key = bytes(32)  # type: ignore[misc]
    # A mutable field is never cached: the encoding follows it.
    memo = bytearray(tx_out.e_memo)
    mutable = dataclasses.replace(tx_out, e_memo=memo)  # type: ignore[arg-type]
    assert mutable.to_bytes() == tx_out.to_bytes()
    memo[0] ^= 1
    assert mutable.to_bytes() == _fresh_tx_out_bytes(mutable) != tx_out.to_bytes()
    # Sizes are still refused on every path, cached or not.
    with pytest.raises(ValueError, match="must be 32 bytes"):
        dataclasses.replace(tx_out, target_key=bytes(31)).to_bytes()
    with pytest.raises(DecodeError, match="truncated"):
        TxOut.from_bytes(tx_out.to_bytes()[:-1])
    with pytest.raises(DecodeError, match="trailing"):
        TxOut.from_bytes(tx_out.to_bytes() + b"\0")


def test_ledger_records_are_the_canonical_encodings(db: LedgerDB) -> None:
    """The writer stores the bytes its checks used; they are each value's encoding,
    whether the TxOuts came cached (decoded, hashed) or not (mutable fields)."""
    builder = ChainBuilder(SK)
    chain = builder.chain(3, outputs=3, key_images=2)
    fresh = builder.next(outputs=2, key_images=2)
    memo = bytearray(fresh.contents.outputs[0].e_memo)
    outputs = (
        dataclasses.replace(fresh.contents.outputs[0], e_memo=memo),
        *fresh.contents.outputs[1:],
    )
    chain.append(
        BlockData(fresh.block, BlockContents(fresh.contents.key_images, outputs), fresh.signature)
    )
    chain.append(BlockData.from_bytes(builder.next(outputs=4).to_bytes()))
    db.append_blocks(chain[:2])
    for data in chain[2:]:
        db.append_block(data)
    tables = {
        name: dict(_table(db, name)) for name in ("blocks", "contents", "signatures", "tx_outs")
    }
    outs = [o for data in chain for o in data.contents.outputs]
    assert list(tables["tx_outs"].values()) == [_fresh_tx_out_bytes(o) for o in outs]
    for i, data in enumerate(chain):
        key = i.to_bytes(8, "big")
        assert tables["blocks"][key] == _writer_bytes(data.block)
        assert tables["contents"][key] == _writer_bytes(BlockContents(data.contents.key_images, ()))
        if data.signature is not None:
            assert tables["signatures"][key] == _writer_bytes(data.signature)


def _table(db: LedgerDB, name: str) -> list[tuple[bytes, bytes]]:
    with db.store.begin() as txn:
        return list(txn.cursor(db=db.store.tables[name]))


# -- append and read ---------------------------------------------------------------------


def test_append_and_read_back(db: LedgerDB) -> None:
    chain = ChainBuilder(SK).chain(20, outputs=3, key_images=2)
    for data in chain[:5]:
        db.append_block(data)
    db.append_blocks(chain[5:])
    assert db.num_blocks() == 20 and db.num_tx_outs() == 60
    assert db.last_block() == chain[-1].block
    assert [db.get_block_data(i) for i in range(20)] == chain
    assert list(db.iter_block_data(3, 7)) == chain[3:7]
    assert db.get_block_contents(4) == chain[4].contents
    assert db.get_block_signature(0) is None
    outs = [o for d in chain for o in d.contents.outputs]
    assert db.get_tx_outs(0, 100) == outs
    assert db.get_tx_out(17) == outs[17]
    assert db.get_tx_out_index_by_public_key(outs[17].public_key) == 17
    assert db.get_tx_out_index_by_hash(leaf_hash(outs[17])) == 17
    image = chain[6].contents.key_images[1]
    assert db.contains_key_image(image) and db.get_key_image_block(image) == 6
    assert not db.contains_key_image(bytes(32))
    assert db.contains_output_public_key(outs[3].public_key)
    leaves = [leaf_hash(o) for o in outs]
    assert db.merkle_root() == tree_root(leaves) == chain[-1].block.root_element
    assert db.membership_proofs(range(60)) == prove_membership(leaves, range(60))
    assert db.root_for_size(30) == chain[9].block.root_element
    with pytest.raises(NotInLedger):
        db.root_for_size(31)
    with pytest.raises(NotInLedger):
        db.get_block(20)
    with pytest.raises(NotInLedger):
        db.get_tx_out_index_by_public_key(bytes(32))
    with pytest.raises(NotInLedger):
        db.membership_proof(60)


def test_next_block_is_what_the_chain_builder_makes(db: LedgerDB) -> None:
    builder = ChainBuilder(SK)
    for _ in range(6):
        data = builder.next(outputs=5)
        assert db.next_block(data.contents) == data.block
        db.append_block(data)


def test_empty_ledger_reads(db: LedgerDB) -> None:
    assert db.num_blocks() == 0 and db.last_block() is None
    assert db.merkle_root() == tree_root([])
    assert list(db.iter_block_data()) == []


def test_a_closed_ledger_says_so(tmp_path: Path) -> None:
    db = LedgerDB(tmp_path / "closed", create=True)
    db.close()
    db.close()  # closing twice is harmless
    with pytest.raises(LedgerError, match=r"closed: ledger is closed$"):
        db.get_tx_outs(0, 1)
    with pytest.raises(LedgerError, match="ledger is closed"):
        db.append_blocks(ChainBuilder(SK).chain(1))


def test_map_grows_when_full(tmp_path: Path) -> None:
    with LedgerDB(tmp_path / "small", create=True, map_size=1 << 16) as small:
        small.append_blocks(ChainBuilder(SK).chain(60, outputs=20))
        assert small.num_tx_outs() == 1200


# -- append refuses bad blocks, leaving the ledger as it was ------------------------------


def _tamper(data: BlockData, **block_fields: object) -> BlockData:
    block = dataclasses.replace(data.block, **block_fields)
    block = dataclasses.replace(block, id=block.expected_id())
    sig = None if data.signature is None else sign_block(block, SK, 1)
    return BlockData(block, data.contents, sig)


def _with_contents(db: LedgerDB, contents: BlockContents, key: bytes = SK) -> BlockData:
    block = db.next_block(contents)
    return BlockData(block, contents, sign_block(block, key, 5))


def test_append_refuses_each_broken_rule(db: LedgerDB) -> None:
    builder = ChainBuilder(SK)
    chain = builder.chain(3, outputs=2)
    db.append_blocks(chain)
    good = builder.next(outputs=2)
    spent = chain[1].contents.key_images[0]
    old_key = chain[1].contents.outputs[0]
    fresh = fake_tx_out(b"fresh")
    cases: list[tuple[type[LedgerError], BlockData]] = [
        (E.WrongBlockIndex, chain[2]),
        (E.WrongParent, _tamper(good, parent_id=bytes(32))),
        (E.UnknownBlockVersion, _tamper(good, version=9)),
        (E.TxOutCountMismatch, _tamper(good, cumulative_txo_count=99)),
        (E.MerkleRootMismatch, _tamper(good, root_element=MerkleRoot(8, bytes(32)))),
        (
            E.BlockIdMismatch,
            dataclasses.replace(good, block=dataclasses.replace(good.block, id=bytes(32))),
        ),
        (E.ContentsHashMismatch, BlockData(good.block, chain[1].contents, good.signature)),
        (E.KeyImageSpent, _with_contents(db, BlockContents((spent,), (fresh,)))),
        (E.KeyImageSpent, _with_contents(db, BlockContents((bytes(32), bytes(32)), (fresh,)))),
        (E.DuplicateOutputKey, _with_contents(db, BlockContents((bytes(32),), (old_key,)))),
        (E.DuplicateOutputKey, _with_contents(db, BlockContents((bytes(32),), (fresh, fresh)))),
        (E.EmptyBlock, _with_contents(db, BlockContents((), (fresh,)))),
        (E.EmptyBlock, _with_contents(db, BlockContents((bytes(32),), ()))),
        (E.InvalidBlockSignature, BlockData(good.block, good.contents, None)),
        (E.InvalidBlockSignature, _with_contents(db, good.contents, key=OTHER_SK)),
        (
            E.InvalidBlockSignature,
            BlockData(good.block, good.contents, dataclasses.replace(good.signature, signed_at=0)),
        ),
    ]
    before = db.table_entries()
    for error, data in cases:
        with pytest.raises(error):
            db.append_block(data)
        assert db.table_entries() == before, error
    db.append_block(good)
    assert db.num_blocks() == 4


def test_duplicate_refusals_name_the_key(db: LedgerDB) -> None:
    """The index puts go in lazily; the refusal still names the key and where it was."""
    builder = ChainBuilder(SK)
    chain = builder.chain(2, outputs=2)
    db.append_blocks(chain)
    spent = chain[1].contents.key_images[0]
    old = chain[1].contents.outputs[0]
    fresh = fake_tx_out(b"fresh")
    cases = [
        (E.KeyImageSpent, BlockContents((spent,), (fresh,)), f"{spent.hex()} is already"),
        (E.KeyImageSpent, BlockContents((bytes(32),) * 2, (fresh,)), "appears twice"),
        (E.DuplicateOutputKey, BlockContents((bytes(32),), (old,)), f"{old.public_key.hex()} is"),
        (E.DuplicateOutputKey, BlockContents((bytes(32),), (fresh, fresh)), "appears twice"),
    ]
    for error, contents, message in cases:
        with pytest.raises(error, match=message):
            db.append_block(_with_contents(db, contents))


def test_origin_rules(tmp_path: Path) -> None:
    with LedgerDB(tmp_path / "o", create=True) as db:
        origin = ChainBuilder(SK).next(outputs=3)
        signed = BlockData(origin.block, origin.contents, sign_block(origin.block, SK, 0))
        with pytest.raises(E.InvalidBlockSignature):
            db.append_block(signed)
        with pytest.raises(E.WrongParent):
            db.append_block(_tamper(origin, parent_id=b"\1" * 32))
        db.append_block(origin)


def test_batch_is_all_or_nothing(db: LedgerDB) -> None:
    chain = ChainBuilder(SK).chain(5)
    broken = BlockData(chain[3].block, chain[3].contents, None)
    with pytest.raises(E.InvalidBlockSignature, match="block 3"):
        db.append_blocks([*chain[:3], broken, chain[4]])
    assert db.num_blocks() == 0 and db.last_block() is None
    db.append_blocks(chain[:2])
    with pytest.raises(E.InvalidBlockSignature):
        db.append_blocks([chain[2], broken])
    assert db.num_blocks() == 2 and db.last_block() == chain[1].block


def test_the_writers_remembered_tip_is_what_readers_see(db: LedgerDB) -> None:
    # The writer answers num_blocks / last_block from its last commit, not from LMDB.
    # (LMDB opens an environment once per process: the stored view is read directly.)
    chain = ChainBuilder(SK).chain(6)
    for i, data in enumerate(chain):
        if i % 2:
            db.append_block(data)
        else:
            db.append_blocks([data])
        with Snapshot.read(db.store) as stored:
            stored_count, stored_last = stored.num_blocks(), stored.last_block()
        assert db.num_blocks() == stored_count == i + 1
        assert db.last_block() == stored_last == data.block


# -- the LedgerView face: real transactions ----------------------------------------------


def test_real_transaction_validates_against_the_ledger(tmp_path: Path) -> None:
    rng = SeededRandom(44)
    accounts = sample_accounts(3, rng)
    with LedgerDB(tmp_path / "real", create=True, expected_signers={PK}) as db:
        db.append_block(origin_block(accounts, 4, 10**12, rng))
        owned = Scanner(accounts[0]).scan(db.get_tx_outs(0, db.num_tx_outs()))
        assert len(owned) == 4
        builder = TransactionBuilder(accounts[0], fee=DEFAULT_MINIMUM_FEE, tombstone_block=10)
        builder.add_input(input_credentials(db, owned[0], rng))
        builder.add_output(accounts[1].default_address, 10**11)
        tx = builder.build(rng)
        for tx_in in tx.prefix.inputs:
            assert db.root_for_size(tx_in.proofs[0].size) == db.merkle_root()
        validate_tx(tx, current_block=db.num_blocks(), root=db.merkle_root())
        check_key_images_unspent(tx, db)
        check_output_public_keys_new(tx, db)

        contents = BlockContents(tx.key_images, tx.prefix.outputs)
        block = db.next_block(contents)
        db.append_block(BlockData(block, contents, sign_block(block, SK, 1_700_000_000)))
        with pytest.raises(KeyImageAlreadySpent):
            check_key_images_unspent(tx, db)
        with pytest.raises(OutputPublicKeyExists):
            check_output_public_keys_new(tx, db)
        assert len(Scanner(accounts[1]).scan(db.get_block_contents(1).outputs)) == 1


def test_key_images_helper_is_deterministic() -> None:
    assert fake_key_image(b"a") == fake_key_image(b"a") != fake_key_image(b"b")
