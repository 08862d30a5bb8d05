"""gRPC servicers: the peer, client and blockchain APIs of one validator.

Every handler checks sizes and never lets a peer's bytes raise out of it: bad input gets a
result code (or INVALID_ARGUMENT), and the node keeps serving. Each servicer is given the
few things it needs (below, as Protocols), not the whole node.

The peer API serves configured peers only, and knows which one is calling: the peer port
is mutual TLS with each peer's certificate pinned (`node.tls`), and `whose(context)` names
the peer whose certificate the connection presented. A call whose connection is no peer's
is PERMISSION_DENIED; a `from_peer` that is not the connection's peer likewise. A peer's
consensus messages are credited to that peer, never to what a message claims. A stream
that carries a forged signature is closed and its peer refused for a while (`Penalties`):
an honest peer relays only messages it verified, so a forgery on its connection is its
fault. `PeerAuth` whose handshake is not signed by the peer's consensus key is
UNAUTHENTICATED (our enclave checked it and changed nothing), and `FetchTxs`/`ProposeTxs`
that open under no session of that peer are UNAUTHENTICATED. Each refusal is counted
(`mcnode_peer_calls_refused_total{call,reason}`) and logged at most once per peer (or
caller address) and call per minute.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import NoReturn, Protocol

import grpc

from mcnode.enclave import EnclaveError, ProposeTxError, ProposeTxResult, SessionError
from mcnode.enclave.errors import PeerAuthError
from mcnode.ledger.block import Block, BlockData
from mcnode.node.enclave_port import EnclavePort, EnclaveUnavailable
from mcnode.node.gate import Penalties, source_of
from mcnode.node.logs import NodeLog, Throttle
from mcnode.node.messages import FORGERY
from mcnode.node.metrics import NodeMetrics
from mcnode.node.pending import PoolFull
from mcnode.node.txrelay import AlreadySpent
from mcnode.transaction.validation import WellFormedTxContext
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

# A Noise message is at most 65535 bytes; a peer's message 1 carries its attestation
# evidence (~12.5 kB in simulation), a client's carries only a key.
MAX_HANDSHAKE = 65535
MAX_CLIENT_HANDSHAKE = 4096
MAX_FETCH_REQUEST = 512 * 1024  # a sealed list of at most 10,000 hashes
REFUSAL_LOG_INTERVAL = 60.0
#: A proposal that arrives while we are not serving (catching up, the enclave restarting)
#: waits up to this long for us to serve again before it is refused with NOT_SERVING. A
#: validator a slot or two behind a busy network catches up in tens of milliseconds
#: (blocks fetched from peers); its clients should see that as a moment's delay, not a
#: refusal to retry elsewhere.
SERVING_WAIT = 0.5
SERVING_POLL = 0.01


class ConsensusInbound(Protocol):
    """Consensus messages in and our latest out (`host.ConsensusHost`)."""

    latest_wire: pb.ConsensusMsg | None

    def receive(self, wire: pb.ConsensusMsg, sender: str) -> int: ...


class PeerTxs(Protocol):
    """Enclave-to-enclave tx traffic a peer starts (`txrelay.TxRelay`)."""

    async def accept_session(
        self, peer: str, message: bytes, signature: bytes
    ) -> tuple[bytes, bytes]: ...

    async def answer_fetch(self, peer: str, sealed_request: bytes) -> bytes: ...

    async def accept_relayed(self, peer: str, ciphertext: bytes) -> tuple[int, int]: ...


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
        self,
        consensus: ConsensusInbound,
        txs: PeerTxs,
        whose: Callable[[grpc.aio.ServicerContext], str | None],
        metrics: NodeMetrics,
        log: NodeLog,
        penalties: Penalties | None = None,
    ) -> None:
        self.consensus = consensus
        self.txs = txs
        self.whose = whose
        self.metrics = metrics
        self.log = log
        self.penalties = penalties or Penalties(time.monotonic)
        self._said = Throttle(REFUSAL_LOG_INTERVAL)

    async def _sender(self, context: grpc.aio.ServicerContext, call: str) -> str:
        """The configured peer this connection belongs to (refused otherwise)."""
        peer = self.whose(context)
        if peer is None:
            await self._refuse(
                context, call, "", grpc.StatusCode.PERMISSION_DENIED, "not_a_configured_peer"
            )
        assert peer is not None
        if self.penalties.refused(peer):
            await self._refuse(context, call, peer, grpc.StatusCode.PERMISSION_DENIED, "penalised")
        return peer

    async def SendConsensusMsg(
        self, request: pb.ConsensusMsg, context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        peer = await self._sender(context, "SendConsensusMsg")
        result = self.consensus.receive(request, peer)
        if result in FORGERY:
            await self._forged(context, "SendConsensusMsg", peer)
        return pb.ConsensusMsgResponse(result=result)

    async def ConsensusStream(
        self, request_iterator: AsyncIterator[pb.ConsensusMsg], context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        """A peer's messages, one after another on one stream; each is checked alone, so
        a stale or unknown one is dropped and counted and the stream goes on. A forged one
        ends the stream."""
        peer = await self._sender(context, "ConsensusStream")
        async for request in request_iterator:
            if self.consensus.receive(request, peer) in FORGERY:
                await self._forged(context, "ConsensusStream", peer)
        return pb.ConsensusMsgResponse(result=pb.PEER_OK)

    async def _forged(self, context: grpc.aio.ServicerContext, call: str, peer: str) -> None:
        seconds = self.penalties.punish(peer)
        await self._refuse(
            context,
            call,
            peer,
            grpc.StatusCode.PERMISSION_DENIED,
            "forged_signature",
            f"refused for {seconds:g} s",
        )

    async def GetLatestMsg(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.LatestMsgResponse:
        await self._sender(context, "GetLatestMsg")
        m = self.consensus.latest_wire
        return pb.LatestMsgResponse(msg=m, has_msg=True) if m else pb.LatestMsgResponse()

    async def _refuse(
        self,
        context: grpc.aio.ServicerContext,
        call: str,
        claimed: str,
        code: grpc.StatusCode,
        reason: str,
        detail: str = "",
    ) -> NoReturn:
        self.metrics.peer_refused.labels(call, reason).inc()
        caller = source_of(context.peer() or "")
        who = claimed or caller
        if self._said.allow((who, call, reason)):
            self.log.warning(
                "peer call refused", call=call, caller=caller, peer=claimed[:64], why=reason
            )
        words = f"{call} refused: {reason.replace('_', ' ')}"
        await context.abort(code, f"{words}; {detail}" if detail else words)
        raise AssertionError("abort raises")

    async def _peer_only(self, context: grpc.aio.ServicerContext, call: str, peer: str) -> None:
        """The connection is a configured peer's, and `peer` (what the request says) is it."""
        sender = await self._sender(context, call)
        if peer != sender:
            await self._refuse(
                context, call, sender, grpc.StatusCode.PERMISSION_DENIED, "not_the_connection"
            )

    async def PeerAuth(
        self, request: pb.PeerAuthRequest, context: grpc.aio.ServicerContext
    ) -> pb.PeerAuthResponse:
        peer = request.from_peer
        await self._peer_only(context, "PeerAuth", peer)
        if len(request.handshake) > MAX_HANDSHAKE or len(request.signature) != 64:
            await self._refuse(
                context, "PeerAuth", peer, grpc.StatusCode.INVALID_ARGUMENT, "malformed"
            )
        try:
            reply, signature = await self.txs.accept_session(
                peer, bytes(request.handshake), bytes(request.signature)
            )
        except PeerAuthError as e:
            why = "bad_signature" if e.reason == "signature" else e.reason
            await self._refuse(context, "PeerAuth", peer, grpc.StatusCode.UNAUTHENTICATED, why)
        except EnclaveError:
            await self._refuse(
                context, "PeerAuth", peer, grpc.StatusCode.INVALID_ARGUMENT, "bad_handshake"
            )
        return pb.PeerAuthResponse(handshake=reply, signature=signature)

    async def FetchTxs(
        self, request: pb.FetchTxsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncryptedTxs:
        peer = request.from_peer
        await self._peer_only(context, "FetchTxs", peer)
        if len(request.sealed_request) > MAX_FETCH_REQUEST:
            await self._refuse(
                context, "FetchTxs", peer, grpc.StatusCode.INVALID_ARGUMENT, "malformed"
            )
        try:
            blob = await self.txs.answer_fetch(peer, bytes(request.sealed_request))
        except SessionError:
            await self._refuse(
                context, "FetchTxs", peer, grpc.StatusCode.UNAUTHENTICATED, "no_session"
            )
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"FetchTxs: {e}")
        return pb.EncryptedTxs(ciphertext=blob)

    async def ProposeTxs(
        self, request: pb.EncryptedTxs, context: grpc.aio.ServicerContext
    ) -> pb.ProposeTxsResponse:
        peer = request.from_peer
        await self._peer_only(context, "ProposeTxs", peer)
        try:
            ok, bad = await self.txs.accept_relayed(peer, bytes(request.ciphertext))
        except SessionError:
            await self._refuse(
                context, "ProposeTxs", peer, grpc.StatusCode.UNAUTHENTICATED, "no_session"
            )
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"ProposeTxs: {e}")
        return pb.ProposeTxsResponse(accepted=ok, rejected=bad)


class ClientApi(rpc.ConsensusClientServicer):
    def __init__(
        self,
        enclave: EnclavePort,
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

    async def _until_serving(self) -> bool:
        """Wait up to `SERVING_WAIT` for `serving()`; whether it came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SERVING_WAIT
        while loop.time() < deadline:
            await asyncio.sleep(SERVING_POLL)
            if self.serving():
                return True
        return False

    async def Auth(
        self, request: pb.AuthRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthResponse:
        if len(request.handshake) > MAX_CLIENT_HANDSHAKE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "handshake too large")
        try:
            session, reply = await self.enclave.client_handshake(bytes(request.handshake))
        except EnclaveUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"enclave restarting: {e}")
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"handshake failed: {e}")
        return pb.AuthResponse(session_id=session, handshake=reply)

    async def ProposeTx(
        self, request: pb.ProposeTxRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProposeTxResponse:
        serving = self.serving() or await self._until_serving()
        n = self.num_blocks()

        def answer(
            code: ProposeTxResult, detail: str, tx_hash: bytes = b""
        ) -> pb.ProposeTxResponse:
            if code is not ProposeTxResult.OK:
                self.metrics.txs_rejected.labels(code.name).inc()
            return pb.ProposeTxResponse(
                result=code.name, detail=detail, num_blocks=n, tx_hash=tx_hash
            )

        if not serving:
            return answer(ProposeTxResult.NOT_SERVING, "catching up, or the enclave restarting")
        if self.pending() >= self.pending_limit:
            return answer(ProposeTxResult.OVER_CAPACITY, "too many pending transactions")
        try:
            # Validated in the enclave's process, on the other core: the loop goes on.
            ctx = await self.enclave.client_tx_propose(
                bytes(request.session_id), bytes(request.ciphertext)
            )
        except ProposeTxError as e:
            return answer(e.code, str(e))
        except EnclaveUnavailable:
            return answer(ProposeTxResult.NOT_SERVING, "the enclave is restarting")
        except EnclaveError as e:
            return answer(ProposeTxResult.DECODE_ERROR, str(e))
        try:
            self.txs.add_client_tx(ctx)
        except PoolFull as e:
            await self.enclave.forget([ctx.tx_hash])
            return answer(ProposeTxResult.OVER_CAPACITY, str(e))
        except AlreadySpent as e:
            await self.enclave.forget([ctx.tx_hash])
            return answer(ProposeTxResult.KEY_IMAGE_ALREADY_SPENT, str(e))
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
