"""Host-side pieces of the validator: pending pool, combine, signed messages, SCP state."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.node.messages import BadConsensusMsg, check_msg, sign_msg
from mcnode.node.pending import PendingPool, PoolFull, combine_txs
from mcnode.node.state import ScpState
from mcnode.scp import Ballot, Msg, Nominate, Prepare, QuorumSet
from mcnode.transaction.validation import WellFormedTxContext
from mcnode.wire import consensus_pb2 as pb


def ctx(
    h: int,
    fee: int = 400,
    images: tuple[int, ...] = (),
    outs: tuple[int, ...] = (),
    tombstone: int = 100,
) -> WellFormedTxContext:
    return WellFormedTxContext(
        tx_hash=bytes([h]) * 32,
        fee=fee,
        tombstone_block=tombstone,
        key_images=tuple(bytes([i]) * 32 for i in images) or (bytes([h, 1]) * 16,),
        output_public_keys=tuple(bytes([o]) * 32 for o in outs) or (bytes([h, 2]) * 16,),
        highest_indices=(0,),
    )


def test_pool_is_fifo_dedup_and_bounded() -> None:
    pool = PendingPool(limit=3)
    assert pool.add(ctx(1)) and pool.add(ctx(2))
    assert not pool.add(ctx(1))
    pool.add(ctx(3))
    with pytest.raises(PoolFull):
        pool.add(ctx(4))
    assert pool.oldest(2) == [bytes([1]) * 32, bytes([2]) * 32]


def test_pool_prunes_expired_and_invalid() -> None:
    pool = PendingPool(limit=10)
    pool.add(ctx(1, tombstone=5))
    pool.add(ctx(2, tombstone=50))
    pool.add(ctx(3, tombstone=50))
    dropped = pool.prune(5, lambda c: c.tx_hash != bytes([3]) * 32)
    assert sorted(dropped) == [bytes([1]) * 32, bytes([3]) * 32]
    assert pool.oldest(10) == [bytes([2]) * 32]


def test_combine_orders_by_fee_then_hash_and_skips_conflicts() -> None:
    txs = {
        c.tx_hash: c
        for c in [
            ctx(1, fee=400, images=(9,)),
            ctx(2, fee=900, images=(9,)),  # same key image as 1, higher fee: wins
            ctx(3, fee=500, outs=(7,)),
            ctx(4, fee=500, outs=(7,)),  # same output key as 3, same fee: 3 wins by hash
            ctx(5, fee=100),
        ]
    }
    out = combine_txs(list(txs)[::-1], txs.get, max_txs=10)
    assert out == [bytes([2]) * 32, bytes([3]) * 32, bytes([5]) * 32]
    assert combine_txs(list(txs), txs.get, max_txs=2) == [bytes([2]) * 32, bytes([3]) * 32]


def _msg(sender: str = "b") -> Msg:
    q = QuorumSet(2, ["a", "c", "d"])
    b = Ballot(1, (b"x" * 32,))
    return Msg(sender, 3, q, Prepare(b, b, None, 1, 1))


def test_signed_message_round_trip_and_rejections() -> None:
    rng = SeededRandom(1)
    priv_b, pub_b = ed25519_keypair(rng)
    priv_x, _ = ed25519_keypair(rng)
    signers = {pub_b: "b"}
    wire = sign_msg(_msg(), b"p" * 32, priv_b)
    ok = check_msg(wire, signers, 1 << 20)
    assert ok.peer == "b" and ok.msg == _msg() and ok.prev_block_id == b"p" * 32

    def code(w: pb.ConsensusMsg, max_bytes: int = 1 << 20) -> int:
        with pytest.raises(BadConsensusMsg) as e:
            check_msg(w, signers, max_bytes)
        return e.value.code

    assert code(sign_msg(_msg(), b"p" * 32, priv_x)) == pb.PEER_UNKNOWN_SIGNER
    tampered = pb.ConsensusMsg()
    tampered.CopyFrom(wire)
    tampered.prev_block_id = b"q" * 32
    assert code(tampered) == pb.PEER_BAD_SIGNATURE
    assert code(sign_msg(_msg("c"), b"", priv_b)) == pb.PEER_WRONG_SENDER
    garbage = pb.ConsensusMsg(scp_msg=b"\x01garbage", signer=pub_b)
    garbage.signature = sign_msg(_msg(), b"", priv_b).signature
    assert code(garbage) == pb.PEER_BAD_SIGNATURE
    assert code(wire, max_bytes=10) == pb.PEER_TOO_LARGE


def test_signed_garbage_is_malformed_not_a_crash() -> None:
    from mcnode.crypto.signing import ed25519_sign
    from mcnode.node.messages import DOMAIN

    rng = SeededRandom(2)
    priv, pub = ed25519_keypair(rng)
    for junk in (b"", b"\x01", b"\x02" * 100, bytes(range(256))):
        sig = ed25519_sign(priv, DOMAIN + b"\x00\x00" + junk)
        with pytest.raises(BadConsensusMsg) as e:
            check_msg(pb.ConsensusMsg(scp_msg=junk, signer=pub, signature=sig), {pub: "b"}, 1 << 20)
        assert e.value.code == pb.PEER_MALFORMED


def test_scp_state_persists_last_message(tmp_path: Path) -> None:
    from mcnode.node.state import SLOT

    st = ScpState(tmp_path / "state")
    assert st.load() is None
    m1 = Msg("a", 4, QuorumSet(1, ["b"]), Nominate(frozenset({b"v"}), frozenset()))
    st.save(m1)
    st.save(_msg("a"))
    assert st.load() == _msg("a")
    assert ScpState(tmp_path / "state").load() == _msg("a")  # after a restart
    f = tmp_path / "state" / "scp-last-msg.bin"
    assert f.stat().st_mode & 0o777 == 0o600
    # A save torn by a crash (the newest slot damaged): the previous message survives.
    with open(f, "r+b") as fh:
        fh.seek(0)  # the second save went to slot 0
        fh.write(b"\xff" * 20)
    assert ScpState(tmp_path / "state").load() == m1
    with open(f, "r+b") as fh:
        fh.seek(SLOT)
        fh.write(b"\xff" * 20)
    assert ScpState(tmp_path / "state").load() is None


def test_only_new_ballot_statements_are_made_durable() -> None:
    """What the host fdatasyncs before sending (restart safety rests on ballots)."""
    from mcnode.node.state import ballot_to_save
    from mcnode.scp import Commit, Externalize, NominatePrepare

    q = QuorumSet(1, ["b"])
    b1, b2 = Ballot(1, (b"v",)), Ballot(2, (b"v",))
    nom = Msg("a", 4, q, Nominate(frozenset({b"v"}), frozenset()))
    assert ballot_to_save(nom, 4, None) is None
    np1 = Msg("a", 4, q, NominatePrepare(frozenset({b"v"}), frozenset(), b1, None, None, 0, 0))
    first = ballot_to_save(np1, 4, None)
    assert first == (4, Prepare(b1, None, None, 0, 0))
    # more nomination votes, the same PREPARE: nothing new to make durable
    np2 = Msg(
        "a", 4, q, NominatePrepare(frozenset({b"v", b"w"}), frozenset({b"v"}), b1, None, None, 0, 0)
    )
    assert ballot_to_save(np2, 4, first) is None
    # a PREPARE that moved on must be saved, also on its own (no nomination part)
    assert ballot_to_save(Msg("a", 4, q, Prepare(b1, b1, None, 0, 0)), 4, first) is not None
    assert ballot_to_save(Msg("a", 4, q, Prepare(b1, None, None, 0, 0)), 4, first) is None
    assert ballot_to_save(Msg("a", 5, q, Prepare(b1, None, None, 0, 0)), 5, first) is not None
    commit = Msg("a", 4, q, Commit(b2, 2, 1, 2))
    assert ballot_to_save(commit, 4, first) == (4, commit.topic)
    # EXTERNALIZE: saved only while the ledger lacks the block (form_block failed)
    ext = Msg("a", 4, q, Externalize(b2, 2))
    assert ballot_to_save(ext, 4, (4, commit.topic)) == (4, ext.topic)
    assert ballot_to_save(ext, 5, (4, commit.topic)) is None
