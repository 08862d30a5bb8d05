"""gRPC servicers: the peer, client and blockchain APIs of one validator.

Every handler checks sizes and never lets a peer's bytes raise out of it: bad input gets a
result code (or INVALID_ARGUMENT), and the node keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc

from mcnode.enclave import EnclaveError, ProposeTxError, ProposeTxResult
from mcnode.node.driver import SERVING
from mcnode.node.messages import BadConsensusMsg, check_msg, dedup_key
from mcnode.node.pending import PoolFull
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

if TYPE_CHECKING:
    from mcnode.node.service import Validator

MAX_TX_HASHES = 10_000
MAX_HANDSHAKE = 4096


class PeerApi(rpc.ConsensusPeerServicer):
    def __init__(self, v: Validator) -> None:
        self.v = v

    async def SendConsensusMsg(
        self, request: pb.ConsensusMsg, context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        return pb.ConsensusMsgResponse(result=self._receive(request))

    async def ConsensusStream(
        self, request_iterator: AsyncIterator[pb.ConsensusMsg], context: grpc.aio.ServicerContext
    ) -> pb.ConsensusMsgResponse:
        """A peer's messages, one after another on one stream; each is checked alone, so
        a bad one is dropped and counted and the stream goes on."""
        async for request in request_iterator:
            self._receive(request)
        return pb.ConsensusMsgResponse(result=pb.PEER_OK)

    def _receive(self, request: pb.ConsensusMsg) -> int:
        v = self.v
        key = dedup_key(request)
        if v.driver.has_seen(key):  # a copy we already have: note who has it, nothing else
            v.driver.seen(key, request.relayed_by)
            v.metrics.msgs_duplicate.inc()
            return pb.PEER_OK
        try:
            checked = check_msg(request, v.signers, v.cfg.limits.max_message_bytes)
        except BadConsensusMsg as e:
            reason = pb.PeerResult.Name(e.code).removeprefix("PEER_").lower()
            v.metrics.msgs_dropped.labels(reason).inc()
            return e.code
        relayer = request.relayed_by if v.cfg.peer(request.relayed_by) else checked.peer
        if v.driver.seen(key, relayer):
            try:
                v.driver.on_peer_msg(checked, key)
            except Exception as e:  # a bug must not end the peer's stream; it is reported
                v.metrics.errors.labels("consensus_msg").inc()
                v.log.error("handling a consensus message failed", exc=True, error=repr(e))
        return pb.PEER_OK

    async def GetLatestMsg(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.LatestMsgResponse:
        m = self.v.driver.latest_wire_msg()
        return pb.LatestMsgResponse(msg=m, has_msg=True) if m else pb.LatestMsgResponse()

    def _known_peer(self, name: str) -> bool:
        return self.v.cfg.peer(name) is not None

    async def PeerAuth(
        self, request: pb.PeerAuthRequest, context: grpc.aio.ServicerContext
    ) -> pb.PeerAuthResponse:
        if not self._known_peer(request.from_peer) or len(request.handshake) > MAX_HANDSHAKE:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a configured peer")
        try:
            label = self.v.driver.in_label(request.from_peer)
            reply = self.v.enclave.peer_accept(label, bytes(request.handshake))
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"handshake failed: {e}")
        return pb.PeerAuthResponse(handshake=reply)

    async def FetchTxs(
        self, request: pb.FetchTxsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EncryptedTxs:
        if not self._known_peer(request.from_peer) or len(request.tx_hashes) > MAX_TX_HASHES:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a configured peer")
        try:
            blob = self.v.enclave.txs_for_peer(
                self.v.driver.in_label(request.from_peer), list(request.tx_hashes)
            )
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"no session: {e}")
        return pb.EncryptedTxs(from_peer=self.v.cfg.name, ciphertext=blob)

    async def ProposeTxs(
        self, request: pb.EncryptedTxs, context: grpc.aio.ServicerContext
    ) -> pb.ProposeTxsResponse:
        if not self._known_peer(request.from_peer):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a configured peer")
        try:
            ok, bad = self.v.driver.accept_relayed_txs(request.from_peer, bytes(request.ciphertext))
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"rejected: {e}")
        return pb.ProposeTxsResponse(accepted=ok, rejected=bad)


class ClientApi(rpc.ConsensusClientServicer):
    def __init__(self, v: Validator) -> None:
        self.v = v

    async def Auth(
        self, request: pb.AuthRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthResponse:
        if len(request.handshake) > MAX_HANDSHAKE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "handshake too large")
        try:
            session, reply = self.v.enclave.client_handshake(bytes(request.handshake))
        except EnclaveError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"handshake failed: {e}")
        return pb.AuthResponse(session_id=session, handshake=reply)

    async def ProposeTx(
        self, request: pb.ProposeTxRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProposeTxResponse:
        v = self.v
        n = v.ledger.num_blocks()

        def answer(
            code: ProposeTxResult, detail: str, tx_hash: bytes = b""
        ) -> pb.ProposeTxResponse:
            if code is not ProposeTxResult.OK:
                v.metrics.txs_rejected.labels(code.name).inc()
            return pb.ProposeTxResponse(
                result=code.name, detail=detail, num_blocks=n, tx_hash=tx_hash
            )

        if v.driver.sync_state != SERVING:
            return answer(ProposeTxResult.NOT_SERVING, "catching up with the network")
        if len(v.driver.pool) >= v.cfg.limits.pending_txs:
            return answer(ProposeTxResult.OVER_CAPACITY, "too many pending transactions")
        try:
            # Runs on the loop (~6 ms of validation): the enclave serialises its calls under
            # one lock anyway; the separate-process enclave will make this a real await.
            ctx = v.enclave.client_tx_propose(bytes(request.session_id), bytes(request.ciphertext))
        except ProposeTxError as e:
            return answer(e.code, str(e))
        except EnclaveError as e:
            return answer(ProposeTxResult.DECODE_ERROR, str(e))
        try:
            v.driver.add_client_tx(ctx)
        except PoolFull as e:
            v.enclave.forget([ctx.tx_hash])
            return answer(ProposeTxResult.OVER_CAPACITY, str(e))
        return answer(ProposeTxResult.OK, "accepted", ctx.tx_hash)

    async def GetNodeConfig(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.NodeConfigResponse:
        v = self.v
        from mcnode.node.config import peer_uri

        return pb.NodeConfigResponse(
            name=v.cfg.name,
            min_fee=v.cfg.min_fee,
            block_version=1,
            peers=[peer_uri(p.host, p.port, p.signing_key) for p in v.cfg.peers],
            enclave_identity=v.enclave.identity_public_key,
            signing_key=v.signing_public,
        )


class BlockchainApi(rpc.BlockchainServicer):
    PAGE = 100

    def __init__(self, v: Validator) -> None:
        self.v = v

    async def GetLastBlockInfo(
        self, request: pb.Empty, context: grpc.aio.ServicerContext
    ) -> pb.LastBlockInfo:
        led = self.v.ledger
        last = led.last_block()
        return pb.LastBlockInfo(
            index=last.index if last else 0,
            block_id=last.id if last else b"",
            num_blocks=led.num_blocks(),
            num_tx_outs=led.num_tx_outs(),
            min_fee=self.v.cfg.min_fee,
        )

    async def GetBlocks(
        self, request: pb.GetBlocksRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBlocksResponse:
        led = self.v.ledger
        n = led.num_blocks()
        limit = min(max(request.limit, 1), self.PAGE)
        start = min(request.offset, n)
        stop = min(n, start + limit)
        budget = self.v.cfg.limits.max_message_bytes - 1024
        out: list[bytes] = []
        for data in led.iter_block_data(start, stop):
            raw = data.to_bytes()
            budget -= len(raw) + 8
            if budget < 0 and out:
                break
            out.append(raw)
        return pb.GetBlocksResponse(blocks=out, num_blocks=n)
