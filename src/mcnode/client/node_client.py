"""A synchronous client of one validator's client and blockchain APIs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlparse

import grpc

from mcnode.attest.policy import Policy
from mcnode.enclave.client import ClientSession
from mcnode.ledger.block import BlockData
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

MAX_MESSAGE = 8 * 1024 * 1024


class ClientError(RuntimeError):
    """The node could not be reached or answered something unusable."""


@dataclass(frozen=True)
class ProposeResult:
    result: str  # "OK" or a ProposeTxResult name
    detail: str
    num_blocks: int
    tx_hash: bytes

    @property
    def ok(self) -> bool:
        return self.result == "OK"


def parse_node_address(uri: str) -> str:
    """`mc://host:port`, `host:port` -> `host:port`."""
    if "://" in uri:
        u = urlparse(uri)
        if not u.hostname or u.port is None:
            raise ClientError(f"{uri!r}: expected mc://host:port")
        return f"{u.hostname}:{u.port}"
    if ":" not in uri:
        raise ClientError(f"{uri!r}: expected host:port")
    return uri


class NodeClient:
    """A validator's client API. With `policy`, every enclave session is attested: the
    enclave's evidence must verify under `policy` (chained to `root_ca_der`; None:
    Intel's root) or `connect` raises `enclave.AttestationFailed`. Without one, the
    session is not attested (enclaves with attestation "off" only) and the enclave's
    identity key is trusted on first use, from GetNodeConfig."""

    def __init__(
        self,
        uri: str,
        timeout: float = 10.0,
        *,
        policy: Policy | None = None,
        root_ca_der: bytes | None = None,
    ) -> None:
        self.address = parse_node_address(uri)
        self.timeout = timeout
        self.policy = policy
        self.root_ca_der = root_ca_der
        opts = [
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
        ]
        self.channel = grpc.insecure_channel(self.address, options=opts)
        self.client = rpc.ConsensusClientStub(self.channel)
        self.chain = rpc.BlockchainStub(self.channel)
        self._session: ClientSession | None = None
        self._session_id = b""

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn, req):  # type: ignore[no-untyped-def]
        try:
            return fn(req, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ClientError(f"{self.address}: {e.code().name}: {e.details()}") from None

    def node_config(self) -> pb.NodeConfigResponse:
        return self._call(self.client.GetNodeConfig, pb.Empty())

    def connect(self, expected_identity: bytes | None = None) -> None:
        """Noise NX with the node's enclave: attested under the client's policy when it
        has one; checks the identity key when one is expected (without a policy, from
        GetNodeConfig: trust on first use)."""
        if expected_identity is None and self.policy is None:
            expected_identity = bytes(self.node_config().enclave_identity)
        session = ClientSession.connect(
            self.policy, self.root_ca_der, expected_identity=expected_identity
        )
        resp = self._call(self.client.Auth, pb.AuthRequest(handshake=session.first_message))
        session.finish(bytes(resp.handshake))
        self._session, self._session_id = session, bytes(resp.session_id)

    def propose_tx(self, tx_bytes: bytes) -> ProposeResult:
        if self._session is None:
            self.connect()
        assert self._session is not None
        resp = self._call(
            self.client.ProposeTx,
            pb.ProposeTxRequest(
                session_id=self._session_id, ciphertext=self._session.encrypt_tx(tx_bytes)
            ),
        )
        if resp.result == "BAD_SESSION":  # the node restarted or evicted us: once more
            self.connect()
            resp = self._call(
                self.client.ProposeTx,
                pb.ProposeTxRequest(
                    session_id=self._session_id, ciphertext=self._session.encrypt_tx(tx_bytes)
                ),
            )
        return ProposeResult(resp.result, resp.detail, resp.num_blocks, bytes(resp.tx_hash))

    def last_block_info(self) -> pb.LastBlockInfo:
        return self._call(self.chain.GetLastBlockInfo, pb.Empty())

    def blocks(self, offset: int, limit: int = 100) -> list[BlockData]:
        resp = self._call(self.chain.GetBlocks, pb.GetBlocksRequest(offset=offset, limit=limit))
        try:
            return [BlockData.from_bytes(bytes(b)) for b in resp.blocks]
        except ValueError as e:
            raise ClientError(f"{self.address}: undecodable block: {e}") from None

    def wait_for_blocks(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            have = self.last_block_info().num_blocks
            if have >= n or time.monotonic() > deadline:
                return int(have)
            time.sleep(0.05)
