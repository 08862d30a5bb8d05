"""`mcnode run`: one validator process, assembled from its parts and run under one task group.

Start-up order: config (already checked), the node's message key, ledger (exclusive
writer), the enclave process (it alone holds the enclave's keys; we learn its identity),
peer links, the consensus host, servers. Every long-lived task (the host's timers,
catch-up, each peer link, the enclave's watcher) runs under the `Supervisor`'s task group;
gRPC and the admin server run their own handlers, which reach the node only through the
narrow interfaces in `api.py` and `admin.py`; every gRPC method is behind `gate.Gate`
(budgets per caller, clean refusals), each server made by `gate.make_server`. The node
stops on SIGINT/SIGTERM (exit 0), when its own ledger becomes unusable (exit 3), when a
service task fails (exit 4), or when its enclave cannot start (exit 5), with one log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import time
from collections.abc import Callable
from typing import Any, TextIO

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mcnode.crypto.signing import ed25519_public
from mcnode.enclave.api import PeerEnclave
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import LedgerError
from mcnode.node import admin
from mcnode.node.api import BlockchainApi, ClientApi, PeerApi
from mcnode.node.attestation import write_enclave_document
from mcnode.node.config import NodeConfig, peer_uri
from mcnode.node.enclave_process import EnclaveProcess, EnclaveStartError
from mcnode.node.frames import FrameServer, client_context, server_context
from mcnode.node.gate import Budgets, Gate, Penalties, make_server
from mcnode.node.health import MemberHealth, QuorumReport, Verdict, closure, report
from mcnode.node.host import ConsensusHost
from mcnode.node.keys import read_node_key
from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics
from mcnode.node.peers import PeerLink, tls_credentials
from mcnode.node.signers import BlockSigners
from mcnode.node.tasks import EXIT_ENCLAVE, Supervisor
from mcnode.node.tls import PeerCerts, read_peer_cert, read_tls_identity
from mcnode.scp import QuorumSet
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc

# What /status and the status page say of an enclave's attestation mode, plainly.
NOTICES = {
    "sim": "SIMULATED: no hardware protection (simulated SGX evidence)",
    "off": "NOT ATTESTED: attestation is off; peers and clients cannot check this enclave",
}


EVIDENCE_REFRESH_S = 60.0  # how often /status re-reads the enclave's evidence expiry
STALLED_AFTER_S = 60.0  # txs pending and our slot undecided this long: /info says stalled


class Validator:
    def __init__(self, cfg: NodeConfig, trace_file: TextIO | None = None) -> None:
        self.cfg = cfg
        self.log = NodeLog(cfg.name)
        self.metrics = NodeMetrics()
        self.tasks = Supervisor(self.log, self.metrics)
        self.signing_key = read_node_key(cfg.key_file)
        self.signing_public = ed25519_public(self.signing_key)
        # No block is accepted until we know whose: our enclave's signer (at start) and
        # our quorum members' enclaves' (remembered, and learned over their sessions).
        self.ledger = LedgerDB(cfg.ledger_dir, expected_signers=())
        self.signers = BlockSigners(
            cfg.state_dir, cfg.quorum_set.nodes(), self.ledger.expect_signers, self.log
        )
        self.enclave = EnclaveProcess(
            cfg.ledger_dir,
            cfg.state_dir / "enclave",
            cfg.min_fee,
            self.log,
            on_restart=lambda: self.host.enclave_restarted(),
            css=cfg.attestation.css,
            attestation=write_enclave_document(cfg.attestation, cfg.state_dir),
        )
        # The peer port's identity and each peer's pinned certificate (TlsError, one line
        # naming the file, if any is missing or not vouched for by its consensus key).
        self.tls = read_tls_identity(cfg.tls_key, cfg.tls_cert, self.signing_key)
        peer_certs = {p.name: read_peer_cert(p.tls_cert, p.signing_key, p.name) for p in cfg.peers}
        self.peer_certs = PeerCerts(peer_certs)
        max_bytes = cfg.limits.max_message_bytes
        self.peers = {
            p.name: PeerLink(
                p,
                cfg.name,
                max_bytes,
                self.log,
                self.metrics.msgs_out.inc,
                tls_credentials(self.tls, peer_certs[p.name]),
                None
                if p.consensus_port is None
                else client_context(cfg.tls_cert, cfg.tls_key, peer_certs[p.name]),
            )
            for p in cfg.peers
        }
        self.frame_server: FrameServer | None = None
        self.host = ConsensusHost(
            cfg,
            self.signing_key,
            self.ledger,
            self.enclave,
            self.peers,
            self.metrics,
            self.log,
            clock=time.monotonic,
            wall=time.time,
            spawn=self.tasks.spawn,
            fail=self.tasks.fail,
            on_peer_enclave=self._peer_enclave,
            trace_file=trace_file,
        )
        self.peer_enclaves: dict[str, PeerEnclave] = {}  # what each peer's handshake proved
        # The intersection verdict for the last set of known quorum sets (a SAT search:
        # redone only when a quorum set changes, not per request).
        self._intersection: tuple[frozenset[tuple[str, QuorumSet]], bool | None] | None = None
        self._had_quorum = False  # a quorum was reachable at some point since start
        self.metrics.quorum_fail_at.set_function(self._fail_at_gauge)
        self.metrics.quorum_members_missing.set_function(
            lambda: self.quorum_health().count(Verdict.MISSING)
        )
        self.started_at = time.time()
        self._servers: list[grpc.aio.Server] = []
        self._admin: web.AppRunner | None = None
        self.ports: dict[str, int] = {}
        self._watch_metrics()

    def _watch_metrics(self) -> None:
        """Bind the gauges read at each scrape of /metrics to what they show."""
        m, peers, enclave = self.metrics, self.peers, self.enclave
        m.peers_configured.set(len(peers))
        m.peers_connected.set_function(lambda: sum(p.connected for p in peers.values()))
        for name, link in peers.items():
            m.peer_connected.labels(name).set_function(lambda link=link: float(link.connected))
        m.blocks_behind.set_function(self.host.catchup.blocks_behind)
        m.last_block_time.set_function(self._last_block_time)
        m.enclave_up.set_function(lambda: float(enclave.up))
        m.evidence_expiry.set_function(
            lambda: None if enclave.info is None else enclave.info.evidence_expires or None
        )

    def _last_block_time(self) -> float | None:
        """Unix time our last block was signed; None while we hold only the origin."""
        n = self.ledger.num_blocks()
        sig = self.ledger.get_block_signature(n - 1) if n > 1 else None
        return None if sig is None else float(sig.signed_at)

    def _peer_enclave(self, name: str, peer: PeerEnclave) -> None:
        """A session with `name`'s enclave was made: its handshake proved `peer`."""
        self.peer_enclaves[name] = peer
        self.signers.learn(name, peer.block_signer)

    def _whose(self, context: grpc.aio.ServicerContext) -> str | None:
        """The configured peer whose pinned certificate this call's connection showed."""
        presented = context.auth_context().get("x509_pem_cert") or [b""]
        return self.peer_certs.name_of(presented[0])

    # -- servers ------------------------------------------------------------------------------
    async def start_servers(self) -> None:
        cfg, host = self.cfg, self.host
        chain = BlockchainApi(self.ledger, cfg.min_fee, cfg.limits.max_message_bytes)

        penalties = Penalties(time.monotonic)  # peers refused for a while: gate and servicer

        def gate(api: str, whose: Callable[[grpc.aio.ServicerContext], str | None] | None) -> Gate:
            budgets = Budgets.from_limits(cfg.rate_limits, time.monotonic)
            return Gate(api, budgets, self.metrics, self.log, whose=whose, penalties=penalties)

        peer_gate = gate("peer", self._whose)
        peer_server = make_server("peer", cfg.limits, peer_gate)
        peer_api = PeerApi(host, host.txs, self._whose, self.metrics, self.log, penalties)
        rpc.add_ConsensusPeerServicer_to_server(peer_api, peer_server)
        rpc.add_BlockchainServicer_to_server(chain, peer_server)
        client_server = make_server("client", cfg.limits, gate("client", None))
        client_api = ClientApi(
            self.enclave,
            host.txs,
            serving=lambda: host.catchup.serving and self.enclave.up,
            pending=lambda: len(host.pool),
            pending_limit=cfg.limits.pending_txs,
            num_blocks=self.ledger.num_blocks,
            node_config=pb.NodeConfigResponse(
                name=cfg.name,
                min_fee=cfg.min_fee,
                block_version=1,
                peers=[
                    peer_uri(p.host, p.port, p.signing_key, p.consensus_port) for p in cfg.peers
                ],
                enclave_identity=self.enclave.identity_public_key,
                signing_key=self.enclave.block_signing_public_key,
            ),
            metrics=self.metrics,
        )
        rpc.add_ConsensusClientServicer_to_server(client_api, client_server)
        rpc.add_BlockchainServicer_to_server(chain, client_server)
        self.health = health.aio.HealthServicer()
        for s in (peer_server, client_server):
            health_pb2_grpc.add_HealthServicer_to_server(self.health, s)
        self.ports["peer"] = peer_server.add_secure_port(
            str(cfg.peer_listen),
            grpc.ssl_server_credentials(
                [(self.tls.key_pem, self.tls.cert_pem)],
                # Our own certificate too: gRPC wants at least one, and a node with no
                # peers (a one-node network) trusts nobody else.
                root_certificates=self.peer_certs.bundle + self.tls.cert_pem,
                require_client_auth=True,
            ),
        )
        self.ports["client"] = client_server.add_insecure_port(str(cfg.client_listen))
        for s in (peer_server, client_server):
            await s.start()
        self._servers = [peer_server, client_server]
        if cfg.consensus_listen is not None:
            # The consensus port: the peer port's identities, its gate (one `peer_msgs`
            # budget per peer for both ways in), and its own connection limit.
            trusted = self.peer_certs.bundle + self.tls.cert_pem
            self.frame_server = FrameServer(
                server_context(cfg.tls_cert, cfg.tls_key, trusted),
                self.peer_certs.name_of_der,
                host.receive,
                peer_gate,
                penalties,
                self.log,
                cfg.limits.max_message_bytes,
                cfg.limits.peer_connections,
            )
            self.ports["consensus"] = await self.frame_server.start(
                cfg.consensus_listen.host, cfg.consensus_listen.port
            )
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)

        views = admin.Views(
            status=self.status,
            info=self.info,
            quorum=self.quorum,
            peers=self.peers_view,
            scp_recent=self.scp_recent,
            scp_slot=host.scp_slot_state,
            history=self.history,
            warnings=self.warnings,
        )
        app = admin.make_app(cfg.name, views, self.metrics, self.log)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, cfg.admin_listen.host, cfg.admin_listen.port)
        await site.start()
        self._admin = runner
        sockets = getattr(site._server, "sockets", None) or []
        self.ports["admin"] = sockets[0].getsockname()[1] if sockets else 0

    async def start_enclave(self) -> bool:
        """The enclave process first: nothing is served without it. False (and one log
        line) if it cannot start."""
        try:
            info = await self.enclave.start()
        except EnclaveStartError as e:
            self.tasks.fail(EXIT_ENCLAVE, f"the enclave could not start: {e}")
            return False
        self.signers.set_own(info.block_signing_public_key)
        self.log.info(
            "enclave started",
            pid=info.pid,
            identity=info.identity_public_key,
            block_signer=info.block_signing_public_key,
            measurement=info.measurement,
            hardening=",".join(h.name for h in info.hardening if h.applied) or "none",
        )
        if not self.cfg.attestation.on:
            self.log.warning("attestation is off", notice=NOTICES["off"])
        self._refuse_old_ledger()
        return True

    def _refuse_old_ledger(self) -> None:
        """Blocks signed with consensus-message keys come from before blocks were signed
        by enclaves: such a ledger cannot be extended or checked now."""
        n = self.ledger.num_blocks()
        sig = self.ledger.get_block_signature(n - 1) if n > 1 else None
        message_keys = {self.signing_public} | {p.signing_key for p in self.cfg.peers}
        if sig is not None and sig.signer in message_keys:
            raise LedgerError(
                f"{self.cfg.ledger_dir}: block {n - 1} is signed with a consensus-message key "
                "(a ledger made before enclaves signed blocks): start from a new origin "
                "ledger (mcnode ledger init, or mcnode localnet init --force)"
            )

    async def run(self) -> int:
        """Serve until stopped; returns the exit code. Everything started is stopped."""
        try:
            if not await self.start_enclave():
                return await self.tasks.run({})
            await self.start_servers()
            q = self.cfg.quorum_set
            self.log.info(
                "started",
                blocks=self.ledger.num_blocks(),
                slot=self.host.scp.current_slot_index,
                peer_port=self.ports["peer"],
                client_port=self.ports["client"],
                consensus_port=self.ports.get("consensus"),
                admin_port=self.ports["admin"],
                quorum_threshold=q.threshold,
                v_blocking_size=q.blocking_size(),
                peers=len(self.peers),
            )
            services = {
                "enclave": self.enclave.run(),
                "scp-timers": self.host.run_timers(),
                "catch-up": self.host.catchup.run(),
                **{f"peer-{n}": p.run() for n, p in self.peers.items()},
                **{f"session-{n}": self.host.txs.keep_session(n) for n in self.peers},
            }
            if self.cfg.attestation.on:
                services["evidence"] = self.enclave.refresh_identity(EVIDENCE_REFRESH_S)
            return await self.tasks.run(services)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self.frame_server is not None:
            await self.frame_server.close()
        for s in self._servers:
            await s.stop(grace=0.5)
        if self._admin is not None:
            await self._admin.cleanup()
        for p in self.peers.values():
            await p.close()
        await self.enclave.stop()
        self.host.close()
        self.ledger.close()
        self.log.info("stopped")

    # -- status and the operator's views (admin.py serves them) ----------------------------
    def _peer_rows(self, now: float) -> list[dict[str, Any]]:
        rows = []
        signers = self.signers.status()
        for p in self.peers.values():
            d = p.status()
            d["last_heard_ago_s"] = None if p.last_heard is None else round(now - p.last_heard, 3)
            d["block_signer"] = signers.get(p.name)
            proven = self.peer_enclaves.get(p.name)
            d["attested"] = None if proven is None else proven.attested
            attested = proven is not None and proven.attested
            d["mrenclave"] = proven.mrenclave.hex() if proven is not None and attested else None
            d["enclave_refused"] = self.host.txs.session_errors.get(p.name)
            rows.append(d)
        return rows

    def status(self) -> dict[str, Any]:
        led = self.ledger
        last = led.last_block()
        host = self.host
        scp = host.scp
        now = time.time()
        info = self.enclave.info
        mode = self.cfg.attestation.mode
        q = self.cfg.quorum_set
        return {
            "node_id": self.cfg.name,
            "block_height": led.num_blocks(),
            "last_block_id": last.id.hex() if last else None,
            "slot_index": scp.current_slot_index,
            "phase": scp.phase(),
            "peers": self._peer_rows(now),
            "sync_state": host.catchup.state.value,
            "pending_txs": len(host.pool),
            "quorum_set": q.to_dict(),
            "v_blocking_size": q.blocking_size(),
            "quorum_intersection": self.quorum_intersection(),
            "signing_key": self.signing_public.hex(),
            "enclave": {
                "up": self.enclave.up,
                "pid": None if info is None else info.pid,
                "identity": None if info is None else info.identity_public_key.hex(),
                "block_signer": None if info is None else info.block_signing_public_key.hex(),
                "measurement": None if info is None else info.measurement.hex(),
                "mode": mode,
                "notice": NOTICES.get(mode),
                "mrenclave": None if info is None else info.measurement.hex(),
                "mrsigner": None if info is None else info.mrsigner.hex(),
                "isv_prod_id": None if info is None else info.isv_prod_id,
                "isv_svn": None if info is None else info.isv_svn,
                "evidence_expires": None if info is None else info.evidence_expires or None,
                "hardening": {}
                if info is None
                else {
                    h.name: h.detail if h.applied else f"not applied: {h.detail}"
                    for h in info.hardening
                },
                "restarts": self.enclave.restarts,
            },
            "uptime_s": round(now - self.started_at, 3),
            "scp_stats": dict(scp.stats),
        }

    def _judge(self, node: str, now: float, busy_for: float | None) -> MemberHealth:
        link = self.peers.get(node)
        return self.host.observed.judge(
            node,
            link_up=None if link is None else link.connected,
            blocks=0 if link is None else link.blocks,
            now=now,
            busy_for=busy_for,
        )

    def quorum_health(self) -> QuorumReport:
        """Our quorum set's members judged now (cheap: a few peers, no I/O)."""
        now = time.time()
        busy = self.host.busy_for()
        q = self.cfg.quorum_set
        members = [self._judge(n, now, busy) for n in sorted(q.nodes() - {self.cfg.name})]
        rep = report(self.cfg.name, q, members)
        if rep.has_quorum:
            self._had_quorum = True
        return rep

    def _fail_at_gauge(self) -> float:
        at = self.quorum_health().fail_at
        return math.inf if at is None else float(at)

    def _activity(self, now: float) -> tuple[str, str]:
        """("idle" | "working" | "stalled", one line saying what the node is doing)."""
        pending = len(self.host.pool)
        if not pending:
            return "idle", (
                "idle: no payment waiting (blocks are made only when one waits, so the "
                "ledger age grows while the network is idle)"
            )
        busy = self.host.busy_for()
        slot = self.host.scp.current_slot_index
        phase = self.host.scp.phase()
        txs = "1 tx" if pending == 1 else f"{pending} txs"
        if busy is not None and busy > STALLED_AFTER_S:
            return "stalled", (
                f"stalled: {txs} pending, slot {slot} undecided for {busy:.0f} s (phase {phase})"
            )
        since = "" if busy is None else f" for {busy:.1f} s"
        return "working", f"working: {txs} pending, slot {slot} in {phase}{since}"

    def info(self) -> dict[str, Any]:
        """stellar-core's `info`, for this node: what an operator checks first."""
        now = time.time()
        host = self.host
        rep = self.quorum_health()
        sync = host.catchup.state.value
        if sync in ("catching_up", "importing"):
            state = "catching up"
        elif sync == "rejoining" or not self._had_quorum:
            state = "joining"
        else:
            state = "synced"
        activity, activity_line = self._activity(now)
        busy = host.busy_for()
        n = self.ledger.num_blocks()
        last = self.ledger.last_block()
        sig = self.ledger.get_block_signature(n - 1) if n > 1 else None
        closed = None if sig is None else sig.signed_at
        rows = self._peer_rows(now)
        einfo = self.enclave.info
        mode = self.cfg.attestation.mode
        expires = None if einfo is None else einfo.evidence_expires or None
        by = {v: [m.node for m in rep.members if m.verdict is v] for v in Verdict}
        healthy = (
            state == "synced"
            and rep.has_quorum
            and self.enclave.up
            and activity != "stalled"
            and not by[Verdict.DISAGREE]
        )
        summary = f"{state}; {rep.line}; {activity_line.split(' (')[0]}"
        return {
            "node_id": self.cfg.name,
            "healthy": healthy,
            "summary": summary if healthy else "NOT HEALTHY: " + summary,
            "state": state,
            "sync_state": sync,
            "quorum": rep.has_quorum,
            "quorum_line": rep.line,
            "activity": activity,
            "activity_line": activity_line,
            "ledger": {
                "height": n,
                "last_index": n - 1,
                "last_id": None if last is None else last.id.hex(),
                "closed_at": closed,
                "age_s": None if closed is None else round(max(0.0, now - closed), 1),
            },
            "slot": {
                "index": host.scp.current_slot_index,
                "phase": host.scp.phase(),
                "busy_s": None if busy is None else round(busy, 3),
            },
            "pending_txs": len(host.pool),
            "peers": {
                "configured": len(rows),
                "connected": sum(bool(r["connected"]) for r in rows),
                "attested": sum(bool(r["attested"]) for r in rows),
            },
            "quorum_health": {
                "fail_at": rep.fail_at,
                **{v.value: by[v] for v in Verdict},
            },
            "enclave": {
                "up": self.enclave.up,
                "mode": mode,
                "notice": NOTICES.get(mode),
                "mrenclave": None if einfo is None else einfo.measurement.hex(),
                "evidence_expires": expires,
                "evidence_expires_in_s": None if expires is None else round(expires - now),
                "restarts": self.enclave.restarts,
            },
            "uptime_s": round(now - self.started_at, 1),
        }

    def quorum(self, transitive: bool = False) -> dict[str, Any]:
        """stellar-core's `quorum`: our quorum set's members judged; with `transitive`,
        every node reachable through the quorum sets we know, and the intersection verdict."""
        rep = self.quorum_health()
        out = rep.to_json()
        if transitive:
            now = time.time()
            busy = self.host.busy_for()
            known = self._known_quorum_sets()
            nodes = [n for n in closure(self.cfg.quorum_set, known) if n != self.cfg.name]
            out["transitive"] = {
                "nodes": {n: self._judge(n, now, busy).to_json() for n in nodes},
                "quorum_sets_known": sorted(set(known) & set(nodes)),
                "intersection": self.quorum_intersection(),
            }
        return out

    def peers_view(self) -> dict[str, Any]:
        """stellar-core's `peers`: each peer's link in plain words."""
        now = time.time()
        rows = []
        for r in self._peer_rows(now):
            link = self.peers[r["name"]]
            rows.append(
                {
                    "name": r["name"],
                    "address": r["address"],
                    "link": "up" if r["connected"] else "down",
                    "last_heard": r["last_heard"],
                    "last_heard_ago_s": r["last_heard_ago_s"],
                    "slot": r["slot"],
                    # Its height as catch-up last asked it (it asks quiet peers only).
                    "height_asked": r["blocks"] or None,
                    "attested": r["attested"],
                    "mrenclave": r["mrenclave"],
                    "enclave_refused": r["enclave_refused"],
                    "queued": r["queued"],
                    "dropped": r["dropped"],
                    "latency_ms": None
                    if link.latency_s is None
                    else round(link.latency_s * 1000, 1),
                    "in_quorum_set": r["name"] in self.cfg.quorum_set.nodes(),
                }
            )
        return {"node_id": self.cfg.name, "peers": rows}

    def scp_recent(self, limit: int) -> dict[str, Any]:
        """The last `limit` slots this node decided, newest first, and the current one."""
        host = self.host
        busy = host.busy_for()
        phase, round_, counter = host.scp.progress()
        return {
            "current": {
                "slot": host.scp.current_slot_index,
                "phase": phase,
                "nomination_round": round_,
                "ballot_counter": counter,
                "busy_s": None if busy is None else round(busy, 3),
            },
            "slots": [r.to_json() for r in host.slot_log.recent(limit)],
        }

    def history(self) -> dict[str, Any]:
        """Blocks made and txs committed per 10 s bucket over the last hour."""
        return self.host.rates.series(time.time())

    def warnings(self) -> dict[str, Any]:
        return {"warnings": [w.to_json() for w in self.log.warnings.recent()]}

    def _known_quorum_sets(self) -> dict[str, QuorumSet]:
        known: dict[str, QuorumSet] = dict(self.host.peer_quorum_sets)
        known.update(self.host.scp.known_quorum_sets())
        known[self.cfg.name] = self.cfg.quorum_set
        return known

    def quorum_intersection(self) -> bool | None:
        """Verdict over the quorum sets we know (ours and those peers sent us); None when
        some peer's set is still unknown. Cached until a known quorum set changes."""
        known = self._known_quorum_sets()
        key = frozenset(known.items())
        if self._intersection is not None and self._intersection[0] == key:
            return self._intersection[1]
        verdict: bool | None
        if not self.cfg.quorum_set.nodes() <= set(known) | {self.cfg.name}:
            verdict = None
        else:
            try:
                from mcnode.fbas import check_intersection, from_quorum_sets

                result = check_intersection(
                    from_quorum_sets({k: q.to_dict() for k, q in known.items()})
                )
                verdict = bool(result.intersection)
            except Exception:
                verdict = None
        self._intersection = (key, verdict)
        return verdict


async def run_validator(cfg: NodeConfig, trace_file: TextIO | None = None) -> int:
    v = Validator(cfg, trace_file)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, v.tasks.stop)
    return await v.run()
