"""Fakes for the consensus host's ports: a ledger, an enclave, peer links and a clock.

Everything is in memory and deterministic. The network's truth is one synthetic chain
(`ledger.synthetic.ChainBuilder`): the fake enclave "forms" block k as that chain's block
k, fake peers serve it for catch-up, and the fake ledger appends only the block that
follows its tip, so a test sees exactly which blocks moved where.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair, ed25519_sign, ed25519_verify
from mcnode.enclave import FormedBlock, SessionId
from mcnode.enclave.api import PeerEnclave, PeerHandshake, peer_auth_message
from mcnode.enclave.errors import PeerAuthError, PeerSessionError, UnknownTx
from mcnode.ledger.block import Block, BlockData
from mcnode.ledger.errors import InvalidBlock, LedgerCorruptError
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.node.config import NodeConfig, parse_config, peer_uri
from mcnode.node.enclave_port import EnclaveUnavailable
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

    def contains_key_image(self, key_image: bytes) -> bool:
        return any(key_image in b.contents.key_images for b in self.blocks)

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


def transcript_of(message: bytes) -> bytes:
    """The fakes' stand-in for a Noise handshake hash."""
    return hashlib.sha256(message).digest()


def vouched(message: bytes, signature: bytes, key: bytes) -> bool:
    return ed25519_verify(key, peer_auth_message(transcript_of(message)), signature)


class FakeEnclave:
    """The enclave port, in memory: holds txs by hash; seals a batch as the concatenation
    of its hashes; a peer's handshake message counts only with a signature by the peer's
    configured key over `peer_auth_message(transcript_of(message))`, as a real one."""

    def __init__(self) -> None:
        self.txs: dict[bytes, WellFormedTxContext] = {}
        self.sessions: set[str] = set()
        self.forgotten: list[bytes] = []
        self.formed: list[int] = []
        self.refuse_form = False
        self.down = False  # as an enclave process that died: every call fails

    identity_public_key = b"\x01" * 32
    block_signing_public_key = KEYS["n0"][1]

    def _up(self) -> None:
        if self.down:
            raise EnclaveUnavailable("the enclave process died")

    async def client_handshake(self, msg1: bytes) -> tuple[SessionId, bytes]:
        raise AssertionError("the host never handshakes with clients")

    async def client_tx_propose(self, session: SessionId, ciphertext: bytes) -> WellFormedTxContext:
        raise AssertionError("the host never proposes client txs")

    async def peer_initiate(self, label: str) -> PeerHandshake:
        self._up()
        message = b"hello " + label.encode()
        return PeerHandshake(message, transcript_of(message))

    async def peer_accept(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> tuple[PeerHandshake, PeerEnclave]:
        self._up()
        if not ed25519_verify(
            peer_message_key, peer_auth_message(transcript_of(message)), signature
        ):
            raise PeerAuthError("handshake not vouched for by the peer's key")
        self.sessions.add(label)
        reply = b"welcome " + label.encode()
        return PeerHandshake(reply, transcript_of(reply)), PeerEnclave(b"\x02" * 32, b"\x03" * 32)

    async def peer_complete(
        self, label: str, message: bytes, signature: bytes, peer_message_key: bytes
    ) -> PeerEnclave:
        self._up()
        if not ed25519_verify(
            peer_message_key, peer_auth_message(transcript_of(message)), signature
        ):
            raise PeerAuthError("handshake not vouched for by the peer's key")
        self.sessions.add(label)
        return PeerEnclave(b"\x02" * 32, signer_of(label.removeprefix("out:")))

    def _session(self, label: str) -> None:
        self._up()
        if label not in self.sessions:
            raise PeerSessionError(f"no session established with peer {label!r}")

    async def txs_for_peer(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        self._session(label)
        return b"".join(h for h in tx_hashes if h in self.txs)

    async def seal_fetch(self, label: str, tx_hashes: Sequence[bytes]) -> bytes:
        self._session(label)
        return b"".join(tx_hashes)

    async def answer_fetch(self, label: str, sealed_request: bytes) -> bytes:
        self._session(label)
        return b"".join(h for h in split(sealed_request) if h in self.txs)

    async def peer_tx_propose(self, label: str, ciphertext: bytes) -> list[WellFormedTxContext]:
        self._session(label)
        for h in split(ciphertext):
            self.txs.setdefault(h, tx(h[0]))
        return [self.txs[h] for h in split(ciphertext)]

    async def form_block(
        self, tx_hashes: Sequence[bytes], parent: Block, signed_at: int
    ) -> FormedBlock:
        self._up()
        missing = tuple(h for h in tx_hashes if h not in self.txs)
        if missing or self.refuse_form:
            raise UnknownTx(missing or tuple(tx_hashes))
        self.formed.append(parent.index + 1)
        return FormedBlock(CHAIN[parent.index + 1], tuple(tx_hashes), ())

    async def block_appended(self, block_index: int, done: Sequence[bytes]) -> list[bytes]:
        self._up()
        await self.forget(done)
        stale = [h for h, c in self.txs.items() if c.tombstone_block <= block_index]
        await self.forget(stale)
        return stale

    async def forget(self, tx_hashes: Sequence[bytes]) -> None:
        for h in tx_hashes:
            self.txs.pop(h, None)
            self.forgotten.append(h)


def split(blob: bytes) -> list[bytes]:
    return [blob[i : i + 32] for i in range(0, len(blob), 32)]


def signer_of(peer: str) -> bytes:
    """The block signer each fake peer's enclave announces."""
    return hashlib.sha256(b"signer " + peer.encode()).digest()


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
    forge: bool = False  # its host signs our handshake answers with a key not its own
    auths: list[tuple[bytes, bytes]] = field(default_factory=list)

    def send(self, msg: pb.ConsensusMsg) -> None:
        self.sent.append(msg)

    def _call(self) -> None:
        if self.down:
            raise PeerCallError(self.name, "UNAVAILABLE", "connection refused")

    async def peer_auth(self, handshake: bytes, signature: bytes) -> tuple[bytes, bytes]:
        self._call()
        self.auths.append((handshake, signature))
        reply = b"welcome " + self.name.encode()
        key = KEYS[self.name][0] if not self.forge else bytes(range(32))
        return reply, ed25519_sign(key, peer_auth_message(transcript_of(reply)))

    async def fetch_txs(self, sealed_request: bytes) -> bytes:
        self.fetches += 1
        self._call()
        return b"".join(h for h in split(sealed_request) if h in self.has)

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
            f'tls_cert = "peers/{n}.pem"',
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
        self.learned: list[tuple[str, bytes]] = []
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
            on_peer_enclave=lambda name, peer: self.learned.append((name, peer.block_signer)),
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
