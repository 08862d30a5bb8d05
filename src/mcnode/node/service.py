"""`mcnode run`: one validator process — gRPC servers, admin HTTP, the consensus driver.

Start-up order: config (already checked), keys, ledger (exclusive writer), enclave, peer
links, servers, driver. Stops cleanly on SIGINT/SIGTERM, or when its own ledger becomes
unusable (with one clear line, exit code 3)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mcnode.crypto.signing import ed25519_public
from mcnode.enclave import Enclave, EnclaveConfig
from mcnode.ledger.db import LedgerDB
from mcnode.node import admin
from mcnode.node.api import BlockchainApi, ClientApi, PeerApi
from mcnode.node.config import NodeConfig
from mcnode.node.driver import ConsensusDriver
from mcnode.node.keys import read_node_key
from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics
from mcnode.node.peers import PeerLink, channel_options
from mcnode.wire import consensus_pb2_grpc as rpc


class Validator:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.log = NodeLog(cfg.name)
        self.metrics = NodeMetrics()
        self.signing_key = read_node_key(cfg.key_file)
        self.signing_public = ed25519_public(self.signing_key)
        self.signers = {p.signing_key: p.name for p in cfg.peers}
        trusted = {self.signing_public} | {
            p.signing_key for p in cfg.peers if p.name in cfg.quorum_set.nodes()
        }
        self.ledger = LedgerDB(cfg.ledger_dir, expected_signers=trusted)
        self.enclave = Enclave(
            EnclaveConfig(block_signing_key=self.signing_key, minimum_fee=cfg.min_fee),
            self.ledger,
        )
        self.peers = {
            p.name: PeerLink(p, cfg.limits.max_message_bytes, self.log, self.metrics.msgs_out.inc)
            for p in cfg.peers
        }
        self.driver = ConsensusDriver(
            cfg, self.signing_key, self.ledger, self.enclave, self.peers, self.metrics, self.log
        )
        self.started_at = time.time()
        self._servers: list[grpc.aio.Server] = []
        self._admin: web.AppRunner | None = None
        self.ports: dict[str, int] = {}

    # -- servers ------------------------------------------------------------------------------
    async def start(self) -> None:
        opts = channel_options(self.cfg.limits.max_message_bytes)
        peer_server = grpc.aio.server(options=opts)
        rpc.add_ConsensusPeerServicer_to_server(PeerApi(self), peer_server)
        rpc.add_BlockchainServicer_to_server(BlockchainApi(self), peer_server)
        client_server = grpc.aio.server(options=opts)
        rpc.add_ConsensusClientServicer_to_server(ClientApi(self), client_server)
        rpc.add_BlockchainServicer_to_server(BlockchainApi(self), client_server)
        self.health = health.aio.HealthServicer()
        for s in (peer_server, client_server):
            health_pb2_grpc.add_HealthServicer_to_server(self.health, s)
        self.ports["peer"] = peer_server.add_insecure_port(str(self.cfg.peer_listen))
        self.ports["client"] = client_server.add_insecure_port(str(self.cfg.client_listen))
        for s in (peer_server, client_server):
            await s.start()
        self._servers = [peer_server, client_server]
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)

        runner = web.AppRunner(admin.make_app(self), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.admin_listen.host, self.cfg.admin_listen.port)
        await site.start()
        self._admin = runner
        sockets = getattr(site._server, "sockets", None) or []
        self.ports["admin"] = sockets[0].getsockname()[1] if sockets else 0

        for p in self.peers.values():
            p.start()
        self.driver.start()
        q = self.cfg.quorum_set
        self.log.info(
            "started",
            blocks=self.ledger.num_blocks(),
            slot=self.driver.scp.current_slot_index,
            peer_port=self.ports["peer"],
            client_port=self.ports["client"],
            admin_port=self.ports["admin"],
            quorum_threshold=q.threshold,
            v_blocking_size=q.blocking_size(),
            peers=len(self.peers),
        )

    async def stop(self) -> None:
        await self.driver.stop()
        for p in self.peers.values():
            await p.close()
        for s in self._servers:
            await s.stop(grace=0.5)
        if self._admin is not None:
            await self._admin.cleanup()
        self.ledger.close()
        self.log.info("stopped")

    # -- status -------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        led = self.ledger
        last = led.last_block()
        scp = self.driver.scp
        now = time.time()
        peers = []
        for p in self.peers.values():
            d = p.status()
            d["last_heard_ago_s"] = None if p.last_heard is None else round(now - p.last_heard, 3)
            peers.append(d)
        q = self.cfg.quorum_set
        return {
            "node_id": self.cfg.name,
            "block_height": led.num_blocks(),
            "last_block_id": last.id.hex() if last else None,
            "slot_index": scp.current_slot_index,
            "phase": scp.phase(),
            "peers": peers,
            "sync_state": self.driver.sync_state,
            "pending_txs": len(self.driver.pool),
            "quorum_set": q.to_dict(),
            "v_blocking_size": q.blocking_size(),
            "quorum_intersection": self.quorum_intersection(),
            "signing_key": self.signing_public.hex(),
            "enclave_identity": self.enclave.identity_public_key.hex(),
            "uptime_s": round(now - self.started_at, 3),
            "scp_stats": dict(scp.stats),
        }

    def quorum_intersection(self) -> bool | None:
        """Verdict over the quorum sets we know (ours and those peers sent us); None when
        some peer's set is still unknown."""
        from mcnode.scp import QuorumSet

        known: dict[str, QuorumSet] = dict(self.driver.peer_quorum_sets)
        known.update(self.driver.scp.known_quorum_sets())
        known[self.cfg.name] = self.cfg.quorum_set
        if not self.cfg.quorum_set.nodes() <= set(known) | {self.cfg.name}:
            return None
        try:
            from mcnode.fbas import check_intersection, from_quorum_sets

            result = check_intersection(
                from_quorum_sets({k: q.to_dict() for k, q in known.items()})
            )
            return bool(result.intersection)
        except Exception:
            return None


async def run_validator(cfg: NodeConfig) -> int:
    v = Validator(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await v.start()
    try:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            if v.driver.fatal:
                break
    finally:
        await v.stop()
    return 3 if v.driver.fatal else 0
