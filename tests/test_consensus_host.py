"""The consensus host through its ports: a fake ledger, enclave and peer links, and a clock
the test moves (`host_fakes.py`). No sockets, no threads, no sleeping: each scenario is
one `asyncio.run`, and time passes only when the test says so.

Covered: our messages out (signed, saved when they must be, sent to every peer), the
relay rules, dropped and duplicate messages, held messages and fetch-before-deliver with
its retries, nomination pacing, SCP's timers, block making and its failures, every
catch-up transition, restart state and rejoining, and the SCP trace file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import pytest

from host_fakes import CHAIN, KEYS, FakeLedger, Rig, qset_of, signer_of, transcript_of, tx, vouched
from mcnode.crypto.signing import ed25519_sign
from mcnode.enclave.api import peer_auth_message
from mcnode.enclave.errors import PeerAuthError
from mcnode.ledger.archive import LocalDirectory, export_archive
from mcnode.node.catchup import TRANSITIONS, InvalidTransition, SyncState
from mcnode.node.host import EXTERNALIZED_GRACE
from mcnode.node.inbox import FETCH_RETRIES
from mcnode.node.messages import sign_msg
from mcnode.node.state import RestartState
from mcnode.node.tasks import EXIT_LEDGER
from mcnode.node.txrelay import AlreadySpent
from mcnode.scp import Ballot, Externalize, Nominate, NominatePrepare, Prepare, QuorumSet
from mcnode.wire import consensus_pb2 as pb

X, Y, Z = tx(7), tx(8), tx(9)
LEADER_SLOT = 3  # n0 leads nomination rounds 1 and 2 of slot 3: it nominates its own txs


def recv(rig: Rig, wire: pb.ConsensusMsg) -> int:
    """`wire` as it arrives on the stream of the peer its `relayed_by` names (the signer,
    or the test's relaying peer)."""
    return rig.host.receive(wire, wire.relayed_by or "n1")


def run(coro: Coroutine[Any, Any, object]) -> None:
    asyncio.run(coro)


def nominate(rig: Rig, sender: str, *values: bytes, slot: int = 1, **kw: Any) -> pb.ConsensusMsg:
    return rig.wire(sender, rig.msg(sender, slot, Nominate(frozenset(values), frozenset()), **kw))


def externalize(rig: Rig, sender: str, *values: bytes, slot: int = 1) -> pb.ConsensusMsg:
    return rig.wire(sender, rig.msg(sender, slot, Externalize(Ballot(1, values), 1)))


def holding(rig: Rig, *txs: Any) -> None:
    """The enclave and the pool hold these txs (as after a client proposed them)."""
    for t in txs:
        rig.enclave.txs[t.tx_hash] = t
        rig.host.pool.add(t)


# -- our own messages ------------------------------------------------------------------------
def test_a_client_tx_is_relayed_to_every_peer_nominated_and_sent_unsaved(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path, blocks=LEADER_SLOT)
        rig.enclave.txs[X.tx_hash] = X
        assert rig.host.txs.add_client_tx(X)
        assert await rig.spawned.drain() == 3  # one relay task per peer
        assert all(p.proposed == [X.tx_hash] for p in rig.peers.values())
        # Each session was vouched for by our host's key and answered by the peer's.
        for p in rig.peers.values():
            ((hello, signature),) = p.auths
            assert vouched(hello, signature, KEYS["n0"][1])
        assert sorted(rig.learned) == sorted((n, signer_of(n)) for n in rig.peers)
        assert rig.host.next_due() == 0.0  # the nomination is due at once
        rig.advance(0.0)
        for name in ("n1", "n2", "n3"):
            (m,) = rig.sent_to(name)
            assert m.sender_id == "n0" and m.topic == Nominate(frozenset({X.tx_hash}), frozenset())
        # Nomination-only statements never contradict each other: no fdatasync for them.
        assert rig.host.restart.store.load() is None

    run(go())


def test_txs_arriving_together_share_one_nomination_and_later_ones_wait_a_slot(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        holding(rig, X, Y)
        rig.host.nominate()
        rig.host.nominate()
        rig.advance(0.0)
        (m,) = rig.sent_to("n1")
        assert m.topic.voted == {X.tx_hash, Y.tx_hash}  # type: ignore[union-attr]
        # One nomination per slot: Z, arriving after it, waits for the next slot, and
        # the pacer arms no timer for it meanwhile (no busy wake-ups).
        holding(rig, Z)
        rig.host.nominate()
        assert rig.host.pacer.due_at(rig.host._nomination_round()) is None
        rig.advance(1.5)  # within the first nomination round (2 s)
        assert all(Z.tx_hash not in getattr(m.topic, "voted", ()) for m in rig.sent_to("n1"))
        # Slot 1 decides X and Y; slot 2 starts with Z, nominated at once.
        recv(rig, externalize(rig, "n1", X.tx_hash, Y.tx_hash))
        recv(rig, externalize(rig, "n2", X.tx_hash, Y.tx_hash))
        await rig.spawned.drain()
        assert rig.ledger.num_blocks() == 2
        rig.advance(0.0)
        (m2,) = [m for m in rig.sent_to("n1") if m.slot_index == 2]
        assert m2.topic == Nominate(frozenset({Z.tx_hash}), frozenset())

    run(go())


def test_a_nomination_round_that_times_out_lets_the_pending_txs_in(tmp_path: Path) -> None:
    # The slot's first nomination named X, which then left the pool (spent by a block
    # meanwhile, say): no candidate can come of it. Z, arriving later, is nominated once
    # the round times out, not left waiting for a slot that cannot end.
    rig = Rig(tmp_path, blocks=LEADER_SLOT)
    holding(rig, X)
    rig.host.nominate()
    rig.advance(0.0)
    assert [m.topic for m in rig.sent_to("n1")] == [Nominate(frozenset({X.tx_hash}), frozenset())]
    rig.host.pool.remove([X.tx_hash])
    holding(rig, Z)
    rig.host.nominate()
    rig.advance(1.9)
    assert len(rig.sent_to("n1")) == 1
    rig.advance(0.2)  # round 1 (2 s) is over: round 2
    assert rig.host.scp.progress()[:2] == ("NOMINATE", 2)
    rig.advance(0.0)  # the timer task's next turn (the round's start woke it)
    assert Z.tx_hash in rig.sent_to("n1")[-1].topic.voted  # type: ignore[union-attr]


def test_scp_timers_fire_through_run_due(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    holding(rig, X)
    rig.host.nominate()
    rig.advance(0.0)
    assert rig.host.scp.progress()[1] == 1
    due = rig.host.next_due()
    assert due is not None and due == rig.cfg.scp.nomination_timeout
    rig.advance(due)
    assert rig.host.scp.progress()[1] == 2  # round 2


# -- messages in --------------------------------------------------------------------------------
def test_a_full_mesh_relays_nothing(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    holding(rig, X)
    assert recv(rig, nominate(rig, "n1", X.tx_hash)) == pb.PEER_OK
    assert rig.metric("mcnode_consensus_msgs_in_total") == 1
    assert all(
        not p.sent or all(w.signer == KEYS["n0"][1] for w in p.sent) for p in rig.peers.values()
    )


def test_a_message_is_relayed_once_only_to_peers_its_signer_does_not_know(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    holding(rig, X)
    knows_n2 = QuorumSet(2, ["n0", "n2"])  # n1 sends to n0 and n2 only
    wire = nominate(rig, "n1", X.tx_hash, qset=knows_n2)
    recv(rig, wire)
    relayed = [w for w in rig.peers["n3"].sent if w.signer == KEYS["n1"][1]]
    assert len(relayed) == 1 and relayed[0].relayed_by == "n0"
    assert not [w for w in rig.peers["n2"].sent if w.signer == KEYS["n1"][1]]
    # A copy from n3 (which has it now) is a duplicate: counted, not relayed again.
    copy = pb.ConsensusMsg()
    copy.CopyFrom(wire)
    copy.relayed_by = "n3"
    assert recv(rig, copy) == pb.PEER_OK
    assert rig.metric("mcnode_consensus_msgs_duplicate_total") == 1
    assert len([w for w in rig.peers["n3"].sent if w.signer == KEYS["n1"][1]]) == 1


def test_unsigned_relayed_by_text_is_never_read(tmp_path: Path) -> None:
    """Who handed us a copy is the connection's peer, whatever the copy says."""
    rig = Rig(tmp_path)
    holding(rig, X)
    wire = nominate(rig, "n1", X.tx_hash)
    recv(rig, wire)
    for i in range(50):
        copy = pb.ConsensusMsg()
        copy.CopyFrom(wire)
        copy.relayed_by = f"stranger-{i}-" + "x" * 10_000
        assert rig.host.receive(copy, "n2") == pb.PEER_OK
    holders = {h for key in list(rig.host.flood._holders) for h in rig.host.flood.holders(key)}
    assert holders == {"n1", "n2"}
    assert rig.metric("mcnode_consensus_msgs_duplicate_total") == 50


def test_forged_and_unknown_signers_are_dropped_and_counted(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    holding(rig, X)
    forged = nominate(rig, "n1", X.tx_hash)
    forged.signature = bytes(64)
    assert recv(rig, forged) == pb.PEER_BAD_SIGNATURE
    stranger = sign_msg(
        rig.msg("n1", 1, Nominate(frozenset({X.tx_hash}), frozenset())),
        CHAIN[0].block.id,
        bytes(range(32)),
    )
    assert recv(rig, stranger) == pb.PEER_UNKNOWN_SIGNER
    assert rig.metric("mcnode_consensus_msgs_dropped_total", reason="bad_signature") == 1
    assert rig.metric("mcnode_consensus_msgs_dropped_total", reason="unknown_signer") == 1
    assert rig.host.scp.stats["msgs_received"] == 0


def test_a_message_on_another_chain_is_dropped(tmp_path: Path) -> None:
    rig = Rig(tmp_path, blocks=3)
    msg = rig.msg("n1", 2, Nominate(frozenset({X.tx_hash}), frozenset()))
    wire = sign_msg(msg, b"\x99" * 32, KEYS["n1"][0], "n1")  # builds on a block we lack
    recv(rig, wire)
    assert rig.metric("mcnode_consensus_msgs_dropped_total", reason="other_chain") == 1


def test_a_message_for_the_next_slot_waits_until_we_get_there(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        holding(rig, X, Y)
        recv(rig, nominate(rig, "n1", Y.tx_hash, slot=2))
        assert rig.host.inbox.held() == 1 and rig.host.scp.stats["msgs_received"] == 0
        recv(rig, externalize(rig, "n2", X.tx_hash))
        recv(rig, externalize(rig, "n3", X.tx_hash))
        # Decided: while the enclave forms block 1, slot 2's messages wait, and so does SCP.
        assert rig.host.forming and rig.host.scp.current_slot_index == 2
        recv(rig, nominate(rig, "n2", Y.tx_hash, slot=2))
        assert rig.host.inbox.held() == 2 and rig.host.next_due() is None
        await rig.spawned.drain()
        assert not rig.host.forming and rig.ledger.num_blocks() == 2
        # Delivered once block 1 is in the ledger, after the two EXTERNALIZEs of slot 1.
        assert rig.host.inbox.held() == 0
        assert rig.host.scp.stats["msgs_received"] == 4
        latest = rig.host.scp.slot_state(2)["latest"]  # type: ignore[index]
        assert latest["n1"]["nominate"]["voted"] == 1 and latest["n2"]["nominate"]["voted"] == 1

    run(go())


def test_txs_a_message_names_are_fetched_before_scp_sees_it(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        rig.peers["n1"].has = {Y.tx_hash}
        recv(rig, nominate(rig, "n1", Y.tx_hash))
        assert rig.host.scp.stats["msgs_received"] == 0
        await rig.spawned.drain()
        assert Y.tx_hash in rig.host.pool
        assert rig.host.scp.stats["msgs_processed"] == 1
        assert rig.metric("mcnode_txs_validated_total", source="peer") == 1
        wait = "mcnode_consensus_msg_tx_wait_seconds_count"
        assert rig.metric(wait, outcome="fetched") == 1 and rig.metric(wait, outcome="relayed") == 0

    run(go())


def test_a_named_tx_that_arrives_by_relay_meanwhile_is_not_fetched(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        rig.peers["n1"].has = {Y.tx_hash}
        recv(rig, nominate(rig, "n1", Y.tx_hash))  # its vote outran its relay
        running = asyncio.create_task(rig.spawned.drain())  # the fetch task runs now
        await asyncio.sleep(0.01)
        assert rig.host.scp.stats["msgs_received"] == 0  # held for Y
        rig.enclave.txs[Y.tx_hash] = Y
        rig.host.txs.add_client_tx(Y)  # Y lands in the pool (as a relay's txs do)
        await running
        await rig.spawned.drain()
        assert rig.peers["n1"].fetches == 0
        assert rig.host.scp.stats["msgs_processed"] == 1
        wait = "mcnode_consensus_msg_tx_wait_seconds_count"
        assert rig.metric(wait, outcome="relayed") == 1 and rig.metric(wait, outcome="fetched") == 0

    run(go())


def test_a_failed_fetch_is_retried_then_scp_judges_what_we_have(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        rig.peers["n1"].down = True
        recv(rig, nominate(rig, "n1", Y.tx_hash))
        for attempt in range(1, FETCH_RETRIES + 1):
            await rig.spawned.drain()
            assert rig.host.scp.stats["msgs_received"] == 0
            assert rig.host.next_due() == pytest.approx(rig.t[0] + 0.1 * attempt)
            rig.advance(0.1 * attempt)
        await rig.spawned.drain()
        assert rig.host.scp.stats["msgs_invalid_value"] == 1  # judged without Y
        wait = "mcnode_consensus_msg_tx_wait_seconds_count"
        assert rig.metric(wait, outcome="missing") == FETCH_RETRIES + 1
        assert rig.metric("mcnode_errors_total", where="fetch_txs") == FETCH_RETRIES + 1

    run(go())


# -- blocks ---------------------------------------------------------------------------------
def test_a_decided_slot_becomes_a_block_before_our_externalize_goes_out(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        holding(rig, X, Y)
        recv(rig, externalize(rig, "n1", X.tx_hash))
        assert recv(rig, externalize(rig, "n2", X.tx_hash)) == pb.PEER_OK
        assert not [m for m in rig.sent_to("n3") if isinstance(m.topic, Externalize)]
        await rig.spawned.drain()
        assert rig.ledger.num_blocks() == 2 and rig.enclave.formed == [1]
        assert X.tx_hash not in rig.host.pool and X.tx_hash in rig.enclave.forgotten
        assert rig.metric("mcnode_txs_committed_total") == 1
        ext = [m for m in rig.sent_to("n3") if isinstance(m.topic, Externalize)]
        assert len(ext) == 1 and ext[0].slot_index == 1
        # Its block was in the ledger before it was sent: no fdatasync for it.
        assert rig.host.restart.store.load() is None
        # Y is still pending: the next slot's nomination starts at once.
        assert rig.host.scp.progress() == ("NOMINATE", 0, 0)
        rig.advance(0.0)
        assert rig.host.scp.progress() == ("NOMINATE", 1, 0)

    run(go())


def test_no_nomination_names_a_tx_the_new_block_made_stale(tmp_path: Path) -> None:
    # While the enclave re-checks the pending txs against the new block, the timer task
    # may run (the re-check is an IPC call): it must not nominate from the pool as it
    # was, or the slot's one nomination names a tx that can no longer go in a block.
    async def go() -> None:
        rig = Rig(tmp_path)
        holding(rig, X)
        rig.host.nominate()
        rig.advance(0.0)  # slot 1's nomination: X
        stale = tx(10, tombstone=2)  # no longer valid once block 1 is in
        holding(rig, stale)
        rig.host.nominate()  # it waits for the next slot
        checked = rig.enclave.block_appended

        async def slow_recheck(block_index: int, done: Sequence[bytes]) -> list[bytes]:
            rig.advance(0.0)  # the timer task's turn, mid re-check
            return await checked(block_index, done)

        rig.enclave.block_appended = slow_recheck  # type: ignore[method-assign]
        recv(rig, externalize(rig, "n1", X.tx_hash))
        recv(rig, externalize(rig, "n2", X.tx_hash))
        await rig.spawned.drain()
        assert rig.ledger.num_blocks() == 2 and stale.tx_hash not in rig.host.pool
        rig.advance(0.0)
        assert not [m for m in rig.sent_to("n1") if m.slot_index == 2]
        # Slot 2's one nomination is still ours to make: the next tx gets it at once.
        holding(rig, Z)
        rig.host.nominate()
        rig.advance(0.0)
        (m,) = [m for m in rig.sent_to("n1") if m.slot_index == 2]
        assert m.topic == Nominate(frozenset({Z.tx_hash}), frozenset())

    run(go())


def test_a_block_the_enclave_cannot_form_wakes_catch_up(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        holding(rig, X)
        rig.enclave.refuse_form = True
        recv(rig, externalize(rig, "n1", X.tx_hash))
        recv(rig, externalize(rig, "n2", X.tx_hash))
        await rig.spawned.drain()
        assert rig.ledger.num_blocks() == 1 and rig.host.scp.current_slot_index == 2
        assert rig.metric("mcnode_errors_total", where="form_block") == 1
        assert rig.host.catchup._wake.is_set() and rig.host.catchup.behind()
        # Our EXTERNALIZE still goes out (made durable first: its block is not ours yet).
        assert [m for m in rig.sent_to("n3") if isinstance(m.topic, Externalize)]
        assert rig.host.restart.store.load() is not None
        assert not rig.failed

    run(go())


def test_a_damaged_own_ledger_stops_the_node_with_exit_3(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        holding(rig, X)
        rig.ledger.corrupt = True
        recv(rig, externalize(rig, "n1", X.tx_hash))
        recv(rig, externalize(rig, "n2", X.tx_hash))
        await rig.spawned.drain()
        assert rig.failed and rig.failed[0][0] == EXIT_LEDGER
        assert "ledger unusable" in rig.failed[0][1]

    run(go())


# -- catch-up ---------------------------------------------------------------------------------
class Transitions:
    """Records every (state, event) a catch-up goes through."""

    def __init__(self, rig: Rig) -> None:
        self.seen: list[tuple[SyncState, str]] = []
        cu = rig.host.catchup
        fire = cu.fire

        def spy(event: str, **why: object) -> None:
            self.seen.append((cu.state, event))
            fire(event, **why)

        cu.fire = spy  # type: ignore[method-assign]


async def _fetch_from_peers(tmp: Path) -> list[tuple[SyncState, str]]:
    rig = Rig(tmp)
    tr = Transitions(rig)
    for name in ("n1", "n2"):
        rig.peers[name].height, rig.peers[name].slot = 150, 150
    assert rig.host.catchup.behind()
    assert await rig.host.catchup.catch_up() == len(CHAIN) - 1
    S = SyncState
    assert tr.seen == [
        (S.SERVING, "behind"),
        (S.CATCHING_UP, "fetched"),
        (S.CATCHING_UP, "peers_dry"),  # the chain ends short of what they claimed
        (S.IMPORTING, "archives_dry"),
        (S.REJOINING, "rejoined"),
    ]
    assert rig.host.catchup.state is S.SERVING
    assert rig.host.scp.current_slot_index == rig.ledger.num_blocks() == len(CHAIN)
    assert rig.metric("mcnode_blocks_caught_up_total") == len(CHAIN) - 1
    return tr.seen


def test_behind_a_blocking_set_fetch_from_peers_then_rejoin(tmp_path: Path) -> None:
    run(_fetch_from_peers(tmp_path))


async def _in_step(tmp: Path) -> list[tuple[SyncState, str]]:
    rig = Rig(tmp)
    tr = Transitions(rig)
    for name in ("n1", "n2", "n3"):
        rig.peers[name].height, rig.peers[name].slot = 12, 12
    assert await rig.host.catchup.catch_up() == 11
    assert tr.seen[-2:] == [
        (SyncState.CATCHING_UP, "in_step"),
        (SyncState.REJOINING, "rejoined"),
    ]
    assert rig.host.scp.current_slot_index == 12
    return tr.seen


def test_in_step_after_fetching_then_rejoin(tmp_path: Path) -> None:
    run(_in_step(tmp_path))


def test_a_block_decided_while_a_page_was_on_its_way_is_not_a_rejection(tmp_path: Path) -> None:
    """The slot in progress decides while we wait for a peer's page (found by a minority
    partition healing at 50 ms): the page starts at a block we now have, and the rest of
    it is appended, not refused as "block index 22, expected 23"."""

    async def go() -> None:
        rig = Rig(tmp_path)
        warnings = []
        rig.host.catchup.log.warning = lambda event, **kv: warnings.append(event)  # type: ignore[method-assign]
        for p in rig.peers.values():
            p.height, p.slot = 12, 12
        get = type(rig.peers["n1"]).get_blocks

        async def decided_meanwhile(self: Any, offset: int, limit: int) -> list[bytes]:
            if rig.ledger.num_blocks() == offset:  # our own slot decides first
                rig.ledger.append_block(CHAIN[offset])
            return await get(self, offset, limit)

        for p in rig.peers.values():
            p.get_blocks = decided_meanwhile.__get__(p)  # type: ignore[method-assign]
        assert await rig.host.catchup.catch_up() == 11
        assert rig.ledger.num_blocks() == 12 and warnings == []

    run(go())


async def _from_archive(tmp: Path) -> list[tuple[SyncState, str]]:
    archive = tmp / "archive"
    export_archive(FakeLedger(20), LocalDirectory(archive))  # type: ignore[arg-type]
    rig = Rig(tmp, archive=f'sources = ["{archive}"]')
    tr = Transitions(rig)
    for p in rig.peers.values():
        p.down, p.slot = True, 30
    assert await rig.host.catchup.catch_up() == 19
    S = SyncState
    assert tr.seen == [
        (S.SERVING, "behind"),
        (S.CATCHING_UP, "peers_dry"),
        (S.IMPORTING, "imported"),
        (S.CATCHING_UP, "peers_dry"),
        (S.IMPORTING, "archives_dry"),
        (S.REJOINING, "rejoined"),
    ]
    assert rig.ledger.num_blocks() == 20
    return tr.seen


def test_no_peer_answers_so_blocks_come_from_an_archive(tmp_path: Path) -> None:
    run(_from_archive(tmp_path))


async def _unexpected_failure(tmp: Path) -> list[tuple[SyncState, str]]:
    rig = Rig(tmp)
    tr = Transitions(rig)
    for name in ("n1", "n2"):
        rig.peers[name].height, rig.peers[name].slot = 30, 30
    rig.ledger.explode = RuntimeError("disk on fire")
    assert await rig.host.catchup.catch_up() == 0
    assert (SyncState.CATCHING_UP, "failed") in tr.seen
    assert rig.host.catchup.state is SyncState.SERVING and not rig.failed
    assert rig.metric("mcnode_errors_total", where="catch_up") == 1
    return tr.seen


def test_an_unexpected_failure_keeps_what_was_fetched_and_rejoins(tmp_path: Path) -> None:
    run(_unexpected_failure(tmp_path))


def test_the_catch_up_scenarios_walk_every_transition_in_the_table(tmp_path: Path) -> None:
    seen: set[tuple[SyncState, str]] = set()
    for i, scenario in enumerate((_fetch_from_peers, _in_step, _from_archive, _unexpected_failure)):
        (tmp_path / str(i)).mkdir()
        seen |= set(asyncio.run(scenario(tmp_path / str(i))))
    assert seen == set(TRANSITIONS)


def test_an_event_the_table_does_not_allow_is_a_bug(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    with pytest.raises(InvalidTransition):
        rig.host.catchup.fire("rejoined")
    assert rig.host.catchup.state is SyncState.SERVING


def test_quiet_peers_are_asked_their_height_and_a_blocking_set_ahead_starts_catch_up(
    tmp_path: Path,
) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        for name in ("n2", "n3"):
            rig.peers[name].height = 9
        task = asyncio.create_task(rig.host.catchup.run())
        for _ in range(1000):
            if rig.ledger.num_blocks() == 9 and rig.host.catchup.serving:
                break
            await asyncio.sleep(0)
        task.cancel()
        assert rig.ledger.num_blocks() == 9 and rig.host.scp.current_slot_index == 9
        assert all(p.blocks_asked == 0.0 for p in rig.peers.values())
        # Asked again only once they have been quiet for HEIGHT_POLL seconds.
        assert rig.host.catchup.next_poll() == 5.0

    run(go())


def test_a_message_two_slots_ahead_wakes_catch_up(tmp_path: Path) -> None:
    rig = Rig(tmp_path, blocks=3)
    recv(rig, nominate(rig, "n1", X.tx_hash, slot=5))
    assert rig.host.catchup._wake.is_set()
    assert rig.peers["n1"].slot == 5


def test_peers_that_externalized_a_slot_we_cannot_finish_wake_catch_up(tmp_path: Path) -> None:
    # The peers decided slot 1 on Y, a tx we lack and cannot get (as one our enclave
    # refused: it spends the key image of a tx we hold). SCP cannot bring us along, so
    # after EXTERNALIZED_GRACE catch-up is woken, and it sees a v-blocking set ahead.
    rig = Rig(tmp_path)
    for name in ("n1", "n2", "n3"):
        recv(rig, externalize(rig, name, Y.tx_hash))
    assert [p.blocks for p in rig.peers.values()] == [2, 2, 2]  # each holds block 1
    assert not rig.host.catchup._wake.is_set()
    due = rig.host.next_due()
    assert due is not None and due <= EXTERNALIZED_GRACE
    rig.advance(EXTERNALIZED_GRACE / 2)
    # An EXTERNALIZE for a later slot (a liar's, say) does not put the check off.
    recv(rig, externalize(rig, "n1", Y.tx_hash, slot=2))
    assert not rig.host.catchup._wake.is_set()
    rig.advance(EXTERNALIZED_GRACE / 2)
    assert rig.host.catchup._wake.is_set() and rig.host.catchup.behind()
    rig.spawned.close()


# -- restart --------------------------------------------------------------------------------
def test_a_restarted_node_resumes_its_saved_ballot_and_never_contradicts_it(tmp_path: Path) -> None:
    saved = Rig(tmp_path).msg(
        "n0", 1, Prepare(Ballot(3, (X.tx_hash,)), None, None, 0, 0), qset_of("n0")
    )
    state = RestartState(tmp_path / "state", "n0")
    state.store.save(saved)
    state.close()
    rig = Rig(tmp_path)
    assert rig.host.scp.latest_msg(1) == saved
    assert rig.host.scp.progress() == ("PREPARE", rig.host.scp.progress()[1], 3)


def test_a_saved_ballot_for_a_slot_we_have_a_block_for_is_ignored(tmp_path: Path) -> None:
    saved = Rig(tmp_path).msg(
        "n0", 1, Prepare(Ballot(3, (X.tx_hash,)), None, None, 0, 0), qset_of("n0")
    )
    state = RestartState(tmp_path / "state", "n0")
    state.store.save(saved)
    state.close()
    rig = Rig(tmp_path, blocks=4)
    assert rig.host.scp.current_slot_index == 4 and rig.host.scp.latest_msg(4) is None


def test_a_new_ballot_statement_is_durable_before_it_is_sent(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    holding(rig, X)
    for name in ("n1", "n2"):  # a v-blocking set accepted X, and with us they are a quorum
        accepted = Nominate(frozenset(), frozenset({X.tx_hash}))
        recv(rig, rig.wire(name, rig.msg(name, 1, accepted)))
    sent = rig.sent_to("n1")[-1]
    assert isinstance(sent.topic, NominatePrepare) and sent.topic.ballot == Ballot(1, (X.tx_hash,))
    assert rig.host.restart.store.load() == sent


def test_rejoin_never_moves_scp_back_to_a_slot_it_spoke_in(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        holding(rig, X)
        rig.enclave.refuse_form = True
        recv(rig, externalize(rig, "n1", X.tx_hash))
        recv(rig, externalize(rig, "n2", X.tx_hash))
        await rig.spawned.drain()
        assert rig.host.scp.current_slot_index == 2 and rig.ledger.num_blocks() == 1
        await rig.host.rejoin(0)
        assert rig.host.scp.current_slot_index == 2

    run(go())


# -- trace -----------------------------------------------------------------------------------
def test_the_trace_file_explains_each_step_with_its_quorum(tmp_path: Path) -> None:
    out = io.StringIO()
    rig = Rig(tmp_path, trace_file=out)
    holding(rig, X)
    recv(rig, externalize(rig, "n1", X.tx_hash))
    recv(rig, externalize(rig, "n2", X.tx_hash))
    asyncio.run(rig.spawned.drain())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines and all(r["node"] == "n0" and r["slot"] == 1 for r in lines)
    confirm = next(r for r in lines if r["event"] == "confirm commit")
    assert confirm["by"] == "quorum" and set(confirm["nodes"]) == {"n0", "n1", "n2"}
    accept = next(r for r in lines if r["event"] == "accept commit")
    assert accept["by"] == "v-blocking" and set(accept["nodes"]) <= {"n1", "n2"}


# -- enclave sessions and the enclave process -----------------------------------------------
def test_a_peer_whose_host_does_not_vouch_for_its_answer_gets_no_session(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        rig.peers["n1"].forge = True
        assert not await rig.host.txs.connect("n1")
        assert await rig.host.txs.connect("n2")
        assert "out:n1" not in rig.enclave.sessions and "out:n2" in rig.enclave.sessions
        assert rig.learned == [("n2", signer_of("n2"))]

    run(go())


def test_a_forged_peer_auth_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        hello = b"hello in:n1"
        with pytest.raises(PeerAuthError):  # signed by a stranger, claiming to be n1
            await rig.host.txs.accept_session("n1", hello, ed25519_sign(bytes(32), hello))
        assert "in:n1" not in rig.enclave.sessions and not rig.learned
        good = ed25519_sign(KEYS["n1"][0], peer_auth_message(transcript_of(hello)))
        reply, signature = await rig.host.txs.accept_session("n1", hello, good)
        assert vouched(reply, signature, KEYS["n0"][1]) and "in:n1" in rig.enclave.sessions

    run(go())


def test_kept_sessions_are_made_again_when_they_drop(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        keeper = asyncio.create_task(rig.host.txs.keep_session("n1"))
        for _ in range(100):
            await asyncio.sleep(0)
        assert len(rig.peers["n1"].auths) == 1
        rig.host.enclave_restarted()  # every session of the old enclave is gone
        for _ in range(100):
            await asyncio.sleep(0)
        assert len(rig.peers["n1"].auths) == 2
        keeper.cancel()

    run(go())


def test_an_enclave_restart_empties_the_pool_and_the_node_goes_on(tmp_path: Path) -> None:
    async def go() -> None:
        rig = Rig(tmp_path)
        holding(rig, X, Y)
        rig.enclave.down = True  # died: the block cannot be formed
        recv(rig, externalize(rig, "n1", X.tx_hash))
        recv(rig, externalize(rig, "n2", X.tx_hash))
        await rig.spawned.drain()
        assert rig.ledger.num_blocks() == 1 and rig.host.catchup.behind()
        rig.enclave.down = False
        rig.host.enclave_restarted()
        assert len(rig.host.pool) == 0 and rig.metric("mcnode_pending_txs") == 0
        assert rig.metric("mcnode_enclave_restarts_total") == 1
        # Catch-up brings the block from peers; consensus goes on from slot 2.
        for name in ("n1", "n2"):
            rig.peers[name].height = 2
        await rig.host.catchup.catch_up()
        assert rig.ledger.num_blocks() == 2 and rig.host.scp.current_slot_index == 2

    run(go())


def test_a_tx_a_block_spent_meanwhile_is_refused_and_never_voted(tmp_path: Path) -> None:
    """The enclave checks txs beside the host: one it passed just before a block spending
    its key image landed must not reach the pool, nor be voted if it is there already (a
    node voting a spent tx has its statements refused by every peer for the slot)."""

    async def go() -> None:
        rig = Rig(tmp_path, blocks=LEADER_SLOT)
        spent = CHAIN[1].contents.key_images[0]  # a key image block 1 spent
        late = dataclasses.replace(tx(5), key_images=(spent,))
        rig.enclave.txs[late.tx_hash] = late
        rig.enclave.sessions.add("in:n1")
        assert await rig.host.txs.accept_relayed("n1", late.tx_hash) == (0, 1)
        assert late.tx_hash not in rig.host.pool and late.tx_hash in rig.enclave.forgotten
        assert rig.metric("mcnode_txs_rejected_total", reason="KEY_IMAGE_ALREADY_SPENT") == 1
        rig.enclave.txs[late.tx_hash] = late
        with pytest.raises(AlreadySpent):
            rig.host.txs.add_client_tx(late)
        assert late.tx_hash not in rig.host.pool
        rig.host.pool.add(late)  # had it reached the pool first, SCP would not vote it
        rig.host.nominate()
        rig.advance(0.0)
        assert not rig.sent_to("n1")

    run(go())
