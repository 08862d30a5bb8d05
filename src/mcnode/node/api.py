"""gRPC servicers: the peer, client and blockchain APIs of one validator.

Every handler checks sizes and never lets a peer's bytes raise out of it: bad input gets a
result code (or INVALID_ARGUMENT), and the node keeps serving. Each servicer is given the
few things it needs (below, as Protocols), not the whole node.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Protocol

import grpc

from mcnode.enclave import EnclaveApi, EnclaveError, ProposeTxError, ProposeTxResult
from mcnode.ledger.block import Block, BlockData
from mcnode.node.metrics import NodeMetrics
from mcnode.node.pending import PoolFull
from mcnode.transaction.validation import WellFormedTxContext
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

MAX_TX_HASHES = 10_000
MAX_HANDSHAKE = 4096


class ConsensusInbound(Protocol):
    """Consensus messages in and our latest out (`host.ConsensusHost`)."""

    latest_wire: pb.ConsensusMsg | None

    def receive(self, wire: pb.ConsensusMsg) -> int: ...


class PeerTxs(Protocol):
    """Enclave-to-enclave tx traffic a peer starts (`txrelay.TxRelay`)."""

    def accept_session(self, peer: str, handshake: bytes) -> bytes: ...

    def sealed_for(self, peer: str, tx_hashes: Sequence[bytes]) -> bytes: ...

    def accept_relayed(self, peer: str, ciphertext: bytes) -> tuple[int, int]: ...


class ClientTxs(Protocol):
    """Admission of a client's validated tx (`txrelay.TxRelay`)."""

    def add_client_tx(self, ctx: WellFormedTxContext) -> bool: ...


class ChainReads(Protocol):
    """The ledger reads the blockchain API serves (`ledger.LedgerDB`)."""

    def num_blocks(self) -> int: ...

    def num_tx_outs(self) -> int: ...

    def last_block(self) -> Block | None: ...

    def iter_block_data(self, start: int = 0, stop: int | None = None) -> Iterator[BlockData]: ...


class PeerApi(rpc.ConsensusPeerServicer):
    def __init__(
        self, consensus: ConsensusInbound, txs: PeerTxs, is_peer: Callable[[str], bool]
    ) -> None:
        self.consensus = consensus
        self.txs = txs
        self.is_peer = is_peer

    async def SendConsensusMsg(
        self, request: pb.ConsensusMsg, context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        return pb.ConsensusMsgResponse(result=self.consensus.receive(request))

    async def ConsensusStream(
        self, request_iterator: AsyncIterator[pb.ConsensusMsg], context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        """A peer's messages, one after another on one stream; each is checked alone, so
        a bad one is dropped and counted and the stream goes on."""
        async for request in request_iterator:
            self.consensus.receive(request)
        return pb.ConsensusMsgResponse(result=pb.PEER_OK)

    async def GetLatestMsg(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.LatestMsgResponse:
        m = self.consensus.latest_wire
        return pb.LatestMsgResponse(msg=m, has_msg=True) if m else pb.LatestMsgResponse()

    async def PeerAuth(
        self, request: pb.PeerAuthRequest, context: grpc.aio.ServicerContext
    ) -> pb.PeerAuthResponse:
        if not self.is_peer(request.from_peer) or len(request.handshake) > MAX_HANDSHAKE:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a configured peer")
        try:
            reply = self.txs.accept_session(request.from_peer, bytes(request.handshake))
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"handshake failed: {e}")
        return pb.PeerAuthResponse(handshake=reply)

    async def FetchTxs(
        self, request: pb.FetchTxsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncryptedTxs:
        if not self.is_peer(request.from_peer) or len(request.tx_hashes) > MAX_TX_HASHES:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a configured peer")
        try:
            blob = self.txs.sealed_for(request.from_peer, list(request.tx_hashes))
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"no session: {e}")
        return pb.EncryptedTxs(ciphertext=blob)

    async def ProposeTxs(
        self, request: pb.EncryptedTxs, context: grpc.aio.ServicerContext
    ) -> pb.ProposeTxsResponse:
        if not self.is_peer(request.from_peer):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a configured peer")
        try:
            ok, bad = self.txs.accept_relayed(request.from_peer, bytes(request.ciphertext))
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"rejected: {e}")
        return pb.ProposeTxsResponse(accepted=ok, rejected=bad)


class ClientApi(rpc.ConsensusClientServicer):
    def __init__(
        self,
        enclave: EnclaveApi,
        txs: ClientTxs,
        serving: Callable[[], bool],
        pending: Callable[[], int],
        pending_limit: int,
        num_blocks: Callable[[], int],
        node_config: pb.NodeConfigResponse,
        metrics: NodeMetrics,
    ) -> None:
        self.enclave = enclave
        self.txs = txs
        self.serving = serving
        self.pending = pending
        self.pending_limit = pending_limit
        self.num_blocks = num_blocks
        self.node_config = node_config
        self.metrics = metrics

    async def Auth(
        self, request: pb.AuthRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthResponse:
        if len(request.handshake) > MAX_HANDSHAKE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "handshake too large")
        try:
            session, reply = self.enclave.client_handshake(bytes(request.handshake))
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"handshake failed: {e}")
        return pb.AuthResponse(session_id=session, handshake=reply)

    async def ProposeTx(
        self, request: pb.ProposeTxRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProposeTxResponse:
        n = self.num_blocks()

        def answer(
            code: ProposeTxResult, detail: str, tx_hash: bytes = b""
        ) -> pb.ProposeTxResponse:
            if code is not ProposeTxResult.OK:
                self.metrics.txs_rejected.labels(code.name).inc()
            return pb.ProposeTxResponse(
                result=code.name, detail=detail, num_blocks=n, tx_hash=tx_hash
            )

        if not self.serving():
            return answer(ProposeTxResult.NOT_SERVING, "catching up with the network")
        if self.pending() >= self.pending_limit:
            return answer(ProposeTxResult.OVER_CAPACITY, "too many pending transactions")
        try:
            # Runs on the loop (~4 ms of validation): the enclave serialises its calls under
            # one lock anyway; the separate-process enclave will make this a real await.
            ctx = self.enclave.client_tx_propose(
                bytes(request.session_id), bytes(request.ciphertext)
            )
        except ProposeTxError as e:
            return answer(e.code, str(e))
        except EnclaveError as e:
            return answer(ProposeTxResult.DECODE_ERROR, str(e))
        try:
            self.txs.add_client_tx(ctx)
        except PoolFull as e:
            self.enclave.forget([ctx.tx_hash])
            return answer(ProposeTxResult.OVER_CAPACITY, str(e))
        return answer(ProposeTxResult.OK, "accepted", ctx.tx_hash)

    async def GetNodeConfig(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.NodeConfigResponse:
        return self.node_config


class BlockchainApi(rpc.BlockchainServicer):
    PAGE = 100

    def __init__(self, ledger: ChainReads, min_fee: int, max_message_bytes: int) -> None:
        self.ledger = ledger
        self.min_fee = min_fee
        self.max_message_bytes = max_message_bytes

    async def GetLastBlockInfo(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.LastBlockInfo:
        led = self.ledger
        last = led.last_block()
        return pb.LastBlockInfo(
            index=last.index if last else 0,
            block_id=last.id if last else b"",
            num_blocks=led.num_blocks(),
            num_tx_outs=led.num_tx_outs(),
            min_fee=self.min_fee,
        )

    async def GetBlocks(
        self, request: pb.GetBlocksRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBlocksResponse:
        led = self.ledger
        n = led.num_blocks()
        limit = min(max(request.limit, 1), self.PAGE)
        start = min(request.offset, n)
        stop = min(n, start + limit)
        budget = self.max_message_bytes - 1024
        out: list[bytes] = []
        for data in led.iter_block_data(start, stop):
            raw = data.to_bytes()
            budget -= len(raw) + 8
            if budget < 0 and out:
                break
            out.append(raw)
        return pb.GetBlocksResponse(blocks=out, num_blocks=n)
