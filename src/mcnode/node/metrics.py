"""Prometheus metrics of one node (its own registry, so several nodes can share a process),
and `SlotTimer`, which turns SCP's progress into slot and phase timings.

Names follow Prometheus's conventions (`promtool check metrics` passes on a live node):
base units (`_seconds`, unix times as `_timestamp_seconds`), counters end in `_total`
(prometheus-client adds it), gauges of things name what they count. Some gauges are read
from the node when scraped (`set_function`, or `Reading` for a value that may be
unknown) rather than set as things happen. deploy/prometheus/mcnode-rules.yml and
deploy/grafana/mcnode-dashboard.json are written against these names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PHASES = ("NOMINATE", "PREPARE", "COMMIT", "EXTERNALIZE")
# `Node.stats` keys of ballot bumps (scp/slot.py counts them) -> the metric's label.
_SCP_BUMPS = {
    "ballot_bumps_timer": "timer",
    "ballot_bumps_v-blocking": "v_blocking",
    "ballot_bumps_late_candidate": "late_candidate",
    "ballot_bumps_overridden": "overridden",
}


class Reading(Collector):
    """A gauge read from the node when scraped that has no sample while its value is
    unknown (`set_function`'s function returns None), where a `Gauge` would show 0."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self._read: Callable[[], float | None] = lambda: None
        registry.register(self)

    def set_function(self, read: Callable[[], float | None]) -> None:
        self._read = read

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation)]

    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation)
        value = self._read()
        if value is not None:
            family.add_metric([], value)
        return [family]


class NodeMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.slot = Gauge("mcnode_scp_slot_index", "Current SCP slot", registry=r)
        self.phase = Gauge(
            "mcnode_scp_phase", "Phase of the current slot (1 = in it)", ["phase"], registry=r
        )
        self.nomination_round = Gauge("mcnode_scp_nomination_round", "Nomination round", registry=r)
        self.ballot_number = Gauge(
            "mcnode_scp_ballot_number", "Ballot number b.n of the current slot", registry=r
        )
        self.block_height = Gauge("mcnode_ledger_blocks", "Blocks in the ledger", registry=r)
        self.pending = Gauge("mcnode_pending_txs", "Pending transactions", registry=r)
        # Read from the node when scraped (the service binds them): ledger age, how far
        # behind, peers, the enclave and its evidence.
        self.last_block_time = Reading(
            "mcnode_ledger_last_block_timestamp_seconds",
            "Unix time the last block was signed (no sample while the ledger holds only "
            "the origin block). Blocks are made only when payments wait: an idle network's "
            "ledger ages",
            r,
        )
        self.blocks_behind = Gauge(
            "mcnode_ledger_blocks_behind",
            "Blocks the most advanced peer has that this node lacks (from the slots peers "
            "speak about and the heights they report)",
            registry=r,
        )
        self.peers_configured = Gauge(
            "mcnode_peers_configured", "Peers in this node's configuration", registry=r
        )
        self.peers_connected = Gauge(
            "mcnode_peers_connected", "Configured peers whose connection is up", registry=r
        )
        self.peer_connected = Gauge(
            "mcnode_peer_connected",
            "1 while the connection to this peer is up",
            ["peer"],
            registry=r,
        )
        self.enclave_up = Gauge(
            "mcnode_enclave_up",
            "1 while the enclave process runs and has said who it is",
            registry=r,
        )
        self.enclave_restarts = Counter(
            "mcnode_enclave_restarts",
            "Times the enclave process died (it is started again at once)",
            registry=r,
        )
        self.evidence_expiry = Reading(
            "mcnode_attestation_evidence_expiry_timestamp_seconds",
            "Unix time the collateral of the attestation evidence this node's enclave serves "
            "expires (remade when a third of its window is left); no sample when "
            "attestation is off or the enclave is down",
            r,
        )
        self.txs_validated = Counter(
            "mcnode_txs_validated", "Transactions accepted as well formed", ["source"], registry=r
        )
        self.txs_rejected = Counter(
            "mcnode_txs_rejected", "Transactions rejected", ["reason"], registry=r
        )
        self.txs_committed = Counter(
            "mcnode_txs_committed", "Transactions in our blocks", registry=r
        )
        self.msgs_in = Counter(
            "mcnode_consensus_msgs_in", "Consensus messages received", registry=r
        )
        self.msgs_out = Counter(
            "mcnode_consensus_msgs_out", "Consensus messages sent (per peer)", registry=r
        )
        self.msgs_duplicate = Counter(
            "mcnode_consensus_msgs_duplicate",
            "Copies of consensus messages we already had (relays)",
            registry=r,
        )
        self.msgs_dropped = Counter(
            "mcnode_consensus_msgs_dropped", "Consensus messages dropped", ["reason"], registry=r
        )
        self.phase_seconds = Histogram(
            "mcnode_scp_phase_seconds",
            "Time from slot start to leaving each phase",
            ["phase"],
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.slot_seconds = Histogram(
            "mcnode_slot_seconds",
            "Time from slot start to externalize",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.tx_wait_seconds = Histogram(
            "mcnode_consensus_msg_tx_wait_seconds",
            "Time a peer's message waited for txs it names that we lacked, by how they came "
            "(relayed: a peer's relay arrived; fetched: asked for; missing: still lacking)",
            ["outcome"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.catching_up = Gauge(
            "mcnode_catching_up", "1 while catching up from peers or archives", registry=r
        )
        self.blocks_caught_up = Counter(
            "mcnode_blocks_caught_up", "Blocks appended by catch-up", registry=r
        )
        self.peer_refused = Counter(
            "mcnode_peer_calls_refused",
            "Peer API calls refused (not a configured peer, forged or no session)",
            ["call", "reason"],
            registry=r,
        )
        self.requests_refused = Counter(
            "mcnode_requests_refused",
            "gRPC requests refused before any work: over_budget or undecodable",
            ["api", "method", "reason"],
            registry=r,
        )
        self.attestation_failures = Counter(
            "mcnode_attestation_failures",
            "Peer enclaves refused for their attestation evidence, by reason",
            ["peer", "reason"],
            registry=r,
        )
        self.errors = Counter(
            "mcnode_errors", "Errors handled without stopping", ["where"], registry=r
        )

        # Quorum health (node/health.py), computed when scraped: alert rules use these names.
        self.quorum_fail_at = Gauge(
            "mcnode_quorum_fail_at",
            "How many more quorum-set members failing would leave this node without a "
            "quorum (0: no quorum now; +Inf: no failure of others can)",
            registry=r,
        )
        self.quorum_members_missing = Gauge(
            "mcnode_quorum_members_missing",
            "Members of this node's quorum set that are missing (link down, or silent "
            "while a slot is being worked on)",
            registry=r,
        )

        self.ballot_bumps = Counter(
            "mcnode_scp_ballot_bumps",
            "Ballot counter raised (a ballot abandoned), by cause: timer (the ballot timer "
            "fired), v_blocking (a v-blocking set was at a higher counter), late_candidate "
            "(a candidate confirmed after our ballot started), overridden (a quorum confirmed "
            "another value prepared; both [scp] late_candidates)",
            ["by"],
            registry=r,
        )
        self.nomination_timeouts = Counter(
            "mcnode_scp_nomination_timeouts",
            "Nomination rounds ended by their timer (each a new round and a new message)",
            registry=r,
        )
        # Node.stats key -> our counter; each series exists (at 0) from the start.
        self._scp_counters: dict[str, Counter] = {
            key: self.ballot_bumps.labels(by) for key, by in _SCP_BUMPS.items()
        }
        self._scp_counters["nomination_timeouts"] = self.nomination_timeouts
        self._scp_stats: object = None  # the SCP node whose counts we follow
        self._scp_seen: dict[str, int] = {}

    def set_phase(self, phase: str) -> None:
        for p in PHASES:
            self.phase.labels(p).set(1 if p == phase else 0)

    def follow_scp(self, stats: Mapping[str, int]) -> None:
        """Add what SCP's own counters (`Node.stats`) gained since the last call. A new
        SCP node (after catch-up) counts from zero; ours go on from where they were."""
        if stats is not self._scp_stats:
            self._scp_stats, self._scp_seen = stats, {}
        for key, counter in self._scp_counters.items():
            n = stats.get(key, 0)
            if n > self._scp_seen.get(key, 0):
                counter.inc(n - self._scp_seen.get(key, 0))
                self._scp_seen[key] = n

    def render(self) -> bytes:
        return generate_latest(self.registry)


class SlotTimer:
    """Slot and phase gauges and timings. A slot's clock starts at its first work (our
    first nomination, or the last block for a slot that starts busy); each phase's time
    is observed once, when the slot first leaves it. Gauges are set only when what they
    show changed: most messages change neither the slot nor the phase."""

    def __init__(self, metrics: NodeMetrics, clock: Callable[[], float]) -> None:
        self.m = metrics
        self.clock = clock
        self.started = clock()
        self.active = False
        self.left_at: dict[str, float] = {}  # phase -> seconds into the slot it was left
        self._shown: tuple[int, tuple[str, int, int]] | None = None

    def work_started(self) -> None:
        if not self.active:
            self.active = True
            self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def observe(self, slot: int, progress: tuple[str, int, int]) -> None:
        """After every SCP step: `progress` is (phase, nomination round, ballot counter)."""
        if (slot, progress) == self._shown:
            return
        self._shown = (slot, progress)
        self.m.slot.set(slot)
        phase, round_, counter = progress
        self.m.set_phase(phase)
        for earlier in PHASES[: PHASES.index(phase) if phase in PHASES else 0]:
            if earlier not in self.left_at:
                # A slot that leaves a phase before our first nomination started busy (its
                # clock runs from the last block): a nomination now must not restart the
                # clock, or a phase would end after the slot it is part of.
                self.active = True
                self.left_at[earlier] = self.elapsed()
                self.m.phase_seconds.labels(earlier).observe(self.left_at[earlier])
        self.m.nomination_round.set(round_)
        self.m.ballot_number.set(counter)

    def externalized(self) -> float:
        """The slot was decided: its time, observed; returns it in seconds."""
        elapsed = self.elapsed()
        self.m.slot_seconds.observe(elapsed)
        self.m.phase_seconds.labels("EXTERNALIZE").observe(elapsed)
        return elapsed

    def next_slot(self) -> None:
        self.started = self.clock()
        self.active = False
        self.left_at = {}
