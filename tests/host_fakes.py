"""Fakes for the consensus host's ports: a ledger, an enclave, peer links and a clock.

Everything is in memory and deterministic. The network's truth is one synthetic chain
(`ledger.synthetic.ChainBuilder`): the fake enclave "forms" block k as that chain's block
k, fake peers serve it for catch-up, and the fake ledger appends only the block that
follows its tip, so a test sees exactly which blocks moved where.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.enclave import EnclaveApi, FormedBlock, SessionId
from mcnode.enclave.errors import PeerSessionError, UnknownTx
from mcnode.ledger.block import Block, BlockData
from mcnode.ledger.errors import InvalidBlock, LedgerCorruptError
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.node.config import NodeConfig, parse_config, peer_uri
from mcnode.node.host import ConsensusHost
from mcnode.node.logs import NodeLog
from mcnode.node.messages import sign_msg
from mcnode.node.metrics import NodeMetrics
from mcnode.node.peers import PeerCallError
from mcnode.scp import Msg, QuorumSet
from mcnode.transaction.validation import WellFormedTxContext
from mcnode.wire import consensus_pb2 as pb

NAMES = ("n0", "n1", "n2", "n3")
KEYS = {n: ed25519_keypair(SeededRandom(i + 1)) for i, n in enumerate(NAMES)}  # (priv, pub)
CHAIN = ChainBuilder(KEYS["n0"][0], seed=b"host tests").chain(40)


def tx(i: int, tombstone: int = 1000, fee: int = 400) -> WellFormedTxContext:
    return WellFormedTxContext(
        tx_hash=bytes([i]) * 32,
        fee=fee,
        tombstone_block=tombstone,
        key_images=(bytes([i, 1]) * 16,),
        output_public_keys=(bytes([i, 2]) * 16,),
        highest_indices=(0,),
    )


def qset_of(name: str) -> QuorumSet:
    """Each node trusts the other three, two of them (with itself: 3 of 4)."""
    return QuorumSet(2, [n for n in NAMES if n != name])


class FakeLedger:
    def __init__(self, blocks: int = 1) -> None:
        self.blocks: list[BlockData] = list(CHAIN[:blocks])
        self.corrupt = False  # the next append finds our own store damaged
        self.explode: Exception | None = None  # the next append raises this

    def num_blocks(self) -> int:
        return len(self.blocks)

    def num_tx_outs(self) -> int:
        return len(self.blocks)

    def last_block(self) -> Block | None:
        return self.blocks[-1].block if self.blocks else None

    def get_block(self, index: int) -> Block:
        return self.blocks[index].block

    def append_block(self, data: BlockData) -> None:
        self.append_blocks([data])

    def append_blocks(self, blocks: Sequence[BlockData]) -> None:
        if self.corrupt:
            raise LedgerCorruptError("data.mdb: page checksum mismatch")
        if self.explode is not None:
            e, self.explode = self.explode, None
            raise e
        for data in blocks:
            if data.block.index != len(self.blocks) or data != CHAIN[data.block.index]:
                raise InvalidBlock(f"block {data.block.index} does not follow the ledger")
            self.blocks.append(data)

    def iter_block_data(self, start: int = 0, stop: int | None = None) -> Iterator[BlockData]:
        yield from self.blocks[start:stop]

    def get_block_data(self, index: int) -> BlockData:
        return self.blocks[index]


class FakeEnclave(EnclaveApi):
    """Holds txs by hash; seals a batch as the concatenation of its hashes."""

    def __init__(self) -> None:
        self.txs: dict[bytes, WellFormedTxContext] = {}
        self.sessions: set[str] = set()
        self.forgotten: list[bytes] = []
        self.formed: list[int] = []
        self.refuse_form = False

    identity_public_key = b"\x01" * 32
    block_signing_public_key = KEYS["n0"][1]

    def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]:
        raise AssertionError("the host never handshakes with clients")

    def client_tx_propose(self, session: SessionId, ciphertext: bytes) -> WellFormedTxContext:
        raise AssertionError("the host never proposes client txs")

    def client_close(self, session: SessionId) -> None:
        raise AssertionError("the host never closes client sessions")

    def peer_initiate(self, peer_name: str, expected_identity: bytes | None = None) -> bytes:
        return b"hello " + peer_name.encode()

    def peer_accept(
        self, peer_name: str, msg1: bytes, expected_identity: bytes | None = None
    ) -> bytes:
        self.sessions.add(peer_name)
        return b"welcome " + peer_name.encode()

    def peer_complete(self, peer_name: str, msg2: bytes) -> None:
        self.sessions.add(peer_name)

    def peer_identity(self, peer_name: str) -> bytes:
        return b"\x02" * 32

    def txs_for_peer(self, peer_name: str, tx_hashes: Sequence[bytes]) -> bytes:
        if peer_name not in self.sessions:
            raise PeerSessionError(f"no session established with peer {peer_name!r}")
        return b"".join(h for h in tx_hashes if h in self.txs)

    def peer_tx_propose(self, peer_name: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        if peer_name not in self.sessions:
            raise PeerSessionError(f"no session established with peer {peer_name!r}")
        hashes = [ciphertext[i : i + 32] for i in range(0, len(ciphertext), 32)]
        for h in hashes:
            self.txs[h] = tx(h[0])
        return [self.txs[h] for h in hashes]

    def tx_is_well_formed(self, tx_hash: bytes, block_index: int) -> WellFormedTxContext:
        if tx_hash not in self.txs:
            raise UnknownTx((tx_hash,))
        return self.txs[tx_hash]

    def form_block(self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int) -> FormedBlock:
        missing = tuple(h for h in tx_hashes if h not in self.txs)
        if missing or self.refuse_form:
            raise UnknownTx(missing or tuple(tx_hashes))
        self.formed.append(parent.index + 1)
        return FormedBlock(CHAIN[parent.index + 1], tuple(tx_hashes), ())

    def forget(self, tx_hashes: Sequence[bytes]) -> None:
        for h in tx_hashes:
            self.txs.pop(h, None)
            self.forgotten.append(h)

    def cached_tx_hashes(self) -> frozenset[bytes]:
        return frozenset(self.txs)


@dataclass
class FakePeer:
    """A peer link: records what we send it; answers calls from what it `has`."""

    name: str
    height: int = 1
    has: set[bytes] = field(default_factory=set)
    down: bool = False
    slot: int = 0
    blocks: int = 0
    blocks_asked: float | None = None
    last_heard: float | None = None
    sent: list[pb.ConsensusMsg] = field(default_factory=list)
    proposed: list[bytes] = field(default_factory=list)
    fetches: int = 0
    block_calls: int = 0

    def send(self, msg: pb.ConsensusMsg) -> None:
        self.sent.append(msg)

    def _call(self) -> None:
        if self.down:
            raise PeerCallError(self.name, "UNAVAILABLE", "connection refused")

    async def peer_auth(self, handshake: bytes) -> bytes:
        self._call()
        return b"welcome"

    async def fetch_txs(self, tx_hashes: list[bytes]) -> bytes:
        self.fetches += 1
        self._call()
        return b"".join(h for h in tx_hashes if h in self.has)

    async def propose_txs(self, ciphertext: bytes) -> None:
        self._call()
        self.proposed.append(ciphertext)

    async def num_blocks(self) -> int:
        self._call()
        return self.height

    async def get_blocks(self, offset: int, limit: int) -> list[bytes]:
        self.block_calls += 1
        self._call()
        return [d.to_bytes() for d in CHAIN[offset : min(self.height, offset + limit)]]


class Spawned:
    """`spawn` for tests: background coroutines wait here until the test runs them."""

    def __init__(self) -> None:
        self.waiting: list[Coroutine[Any, Any, None]] = []

    def __call__(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        self.waiting.append(coro)

    async def drain(self) -> int:
        """Run everything spawned (and what that spawns) to completion; how many ran."""
        ran = 0
        while self.waiting:
            batch, self.waiting = self.waiting, []
            await asyncio.gather(*batch)
            ran += len(batch)
        return ran

    def close(self) -> None:
        for c in self.waiting:
            c.close()


def node_config(tmp: Path, **extra: str) -> NodeConfig:
    """n0's config: three peers, each trusted; `extra` adds TOML tables by name."""
    key = tmp / "node.key"
    key.write_bytes(b"")
    lines = [
        'name = "n0"',
        'key_file = "node.key"',
        'state_dir = "state"',
        'quorum_set = { threshold = 2, members = ["n1", "n2", "n3"] }',
        "[listen]",
        'peer = "127.0.0.1:0"',
        'client = "127.0.0.1:0"',
    ]
    for i, n in enumerate(NAMES[1:]):
        lines += [
            "[[peers]]",
            f'name = "{n}"',
            f'uri = "{peer_uri("127.0.0.1", 7001 + i, KEYS[n][1])}"',
        ]
    for table, body in extra.items():
        lines += [f"[{table}]", body]
    return parse_config("\n".join(lines) + "\n", tmp / "node.toml")


class Rig:
    """One host on fakes, with a clock the test moves."""

    def __init__(
        self, tmp: Path, blocks: int = 1, trace_file: TextIO | None = None, **extra: str
    ) -> None:
        self.t = [0.0]
        self.trace_file = trace_file
        self.cfg = node_config(tmp, **extra)
        self.ledger = FakeLedger(blocks)
        self.enclave = FakeEnclave()
        self.peers = {n: FakePeer(n, height=blocks) for n in NAMES[1:]}
        self.spawned = Spawned()
        self.failed: list[tuple[int, str]] = []
        self.log = NodeLog("n0")
        self.metrics = NodeMetrics()
        self.host = self.build()

    def build(self) -> ConsensusHost:
        return ConsensusHost(
            self.cfg,
            KEYS["n0"][0],
            self.ledger,
            self.enclave,
            self.peers,
            self.metrics,
            self.log,
            clock=lambda: self.t[0],
            wall=lambda: 1_700_000_000.0 + self.t[0],
            spawn=self.spawned,
            fail=lambda code, why: self.failed.append((code, why)),
            trace_file=self.trace_file,
        )

    def advance(self, dt: float) -> None:
        self.t[0] += dt
        self.host.run_due()

    def wire(self, sender: str, msg: Msg, relayed_by: str = "") -> pb.ConsensusMsg:
        prev = CHAIN[msg.slot_index - 1].block.id if msg.slot_index <= len(CHAIN) else b""
        w = sign_msg(msg, prev, KEYS[sender][0], relayed_by or sender)
        return w

    def msg(self, sender: str, slot: int, topic: object, qset: QuorumSet | None = None) -> Msg:
        return Msg(sender, slot, qset or qset_of(sender), topic)  # type: ignore[arg-type]

    def sent_to(self, peer: str) -> list[Msg]:
        return [Msg.from_bytes(w.scp_msg) for w in self.peers[peer].sent]

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or None)
        return 0.0 if value is None else value
