"""`node.toml`: everything an operator configures, checked before anything starts.

Every key is read (unknown keys are errors: a setting nothing reads is a lie), every error
is one line naming the field. Relative paths are relative to the config file's directory.
The reference of every key (type, default, meaning) is docs/CONFIG.md, generated from
what this parser reads by `mcnode config reference` (`node/config_reference.py`; a test
keeps the two equal). A sketch:

    name = "alice"
    key_file = "node.key"              # Ed25519 message-signing key (mode 0600)
    tls_key = "tls.key"                # the peer port's TLS key (mode 0600; default shown)
    tls_cert = "tls.pem"               # its certificate, vouched for by key_file's key:
                                       # peers pin it (both from `mcnode keygen`)
    ledger_dir = "ledger"
    state_dir = "state"                # SCP restart state
    allow_unsafe_quorum = false
    network_file = "network.json"      # optional: the whole network's quorum sets; `mcnode
                                       # run` refuses to start if they lack intersection

    [listen]
    peer = "127.0.0.1:7001"
    client = "127.0.0.1:7101"
    admin = "127.0.0.1:7201"           # default: 127.0.0.1, port 7201
    consensus = "127.0.0.1:7301"       # optional: SCP messages as TLS frames (node/frames.py);
                                       # peers name its port in our URI (consensus-port)

    [quorum_set]                       # by peer name; nested sets allowed, and members
    threshold = 2                      # in MobileCoin's form: { type = "Node", args = "bob" },
    members = ["bob", "carol", { threshold = 2, members = ["dave", "erin"] }]
                                       # { type = "InnerSet", args = { threshold, members } }

    [[peers]]
    name = "bob"
    uri = "mcp://127.0.0.1:7002/?consensus-msg-key=<64 hex>&consensus-port=7302"
                                       # consensus-port optional: without it, bob gets our
                                       # SCP messages on the peer port's gRPC stream
    tls_cert = "peers/bob.pem"         # bob's tls.pem: only bob can connect as bob

    [archive]
    sources = ["/srv/archive", "https://archive.example.org/mcnode/"]
                                       # catch-up sources, tried in order: directories
                                       # and http(s):// URLs of archives served as they are
    export = "/srv/my-archive"         # write every new block here (optional)

    [limits]
    pending_txs = 10000
    values_per_slot = 100
    max_txs_per_block = 1000
    max_message_bytes = 4194304
    client_connections = 512           # open connections to the client port, at most
    peer_connections = 128             # and to the peer port

    [rate_limits]                      # per source address (IPv6: per /64), as token
    max_sources = 4096                 # buckets; sources remembered (least recent forgotten)
    auth = { calls = 20, burst = 40 }  # calls per second (a stream: messages) and at once;
                                       # bytes = request bytes per second, bytes_burst at once;
                                       # a key left out keeps its default (see RateLimits)
    auth_all = { calls = 500 }         # Auth from all sources together (enclave DH work)
    propose_tx = { calls = 50, burst = 200, bytes = 2097152 }
    peer_msgs = { calls = 2000, bytes = 8388608 }  # ConsensusStream, SendConsensusMsg
    peer_calls = { calls = 200 }       # the other ConsensusPeer calls
    blockchain = { calls = 50 }        # GetLastBlockInfo, GetBlocks (either port)
    other = { calls = 20 }             # GetNodeConfig, health checks

    [scp]                              # defaults: scp.ScpConfig (the draft's 1 + n s)
    nomination_timeout = 2.0
    nomination_timeout_increment = 1.0
    ballot_timeout = 2.0
    ballot_timeout_increment = 1.0
    vote_own_values = true             # vote our own pending txs in every nomination
                                       # round (false: only as a round's leader, as the
                                       # SCP draft; see README "Real network conditions")
    late_candidates = true             # a candidate confirmed after our ballot
                                       # started, while nothing of it is prepared, moves
                                       # it to the next counter with the new composite;
                                       # so does a value a quorum confirmed prepared
                                       # (false: only a timeout or a v-blocking set, as
                                       # the draft)

    [block]
    min_interval = 0.0                 # seconds between blocks, at least
    min_fee = 400000000                # smallest units (picoMOB); the default is
                                       # transaction.validation.DEFAULT_MINIMUM_FEE

    [attestation]                      # absent: mode "off" (warned at start)
    mode = "sim"                       # "sim": simulated SGX evidence (no hardware here);
                                       # "dcap": SGX hardware (not available in this build)
    network = "mainnet"                # bound into every peer handshake: enclaves of
                                       # networks named differently cannot pair
    sim_pki = "pki"                    # sim: the network's simulated PKI directory
    root_ca = "pki/root-ca.pem"        # trust anchor for peers' evidence (default, sim:
                                       # <sim_pki>/root-ca.pem; dcap: Intel's root)
    css = "enclave.css"                # optional: the enclave starts only if this signs it
    trusted_mrenclaves = ["<64 hex>"]  # and/or the next three
    trusted_mrsigner = "<64 hex>"
    isv_prod_id = 0
    min_isv_svn = 0
    allowed_statuses = []              # TCB statuses accepted besides UpToDate
    allowed_advisories = []            # every advisory of an accepted status must be here
    valid_days = 30                    # sim: the window of the collateral we make
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from mcnode.attest.policy import Policy
from mcnode.node.archives import ArchiveSource, BadArchiveSource, parse_archive_source
from mcnode.scp import QuorumSet, QuorumSetError, ScpConfig
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE


class ConfigError(ValueError):
    """A configuration that must not start: the message is one line naming the field."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PeerConfig:
    name: str
    host: str
    port: int
    signing_key: bytes  # Ed25519 public key (consensus-msg-key)
    tls_cert: Path | None = None  # its pinned TLS certificate (`node.tls`)
    consensus_port: int | None = None  # its consensus port (`node.frames`), if it has one

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Limits:
    pending_txs: int = 10_000
    values_per_slot: int = 100
    max_txs_per_block: int = 1000
    max_message_bytes: int = 4 * 1024 * 1024
    client_connections: int = 512
    peer_connections: int = 128


KIB, MIB = 1024, 1024 * 1024


@dataclass(frozen=True)
class Budget:
    """Two token buckets: `calls` per second (each message of a stream is one) holding at
    most `burst`, and request `bytes` per second holding at most `bytes_burst`."""

    calls: float
    burst: float
    bytes: float
    bytes_burst: float


@dataclass(frozen=True)
class RateLimits:
    """`[rate_limits]`: what one source address may ask of us (`node.gate`). The defaults
    are the only ones: an honest peer or wallet stays well inside them."""

    max_sources: int = 4096
    # A client handshake is <= 4 KiB and costs our enclave a DH: 20/s is far more than a
    # wallet needs; all sources together are capped too.
    auth: Budget = Budget(20, 40, 128 * KIB, 256 * KIB)
    auth_all: Budget = Budget(500, 1000, 4 * MIB, 8 * MIB)
    # A tx is 7-100 KB and costs the enclave 6-66 ms to check; the byte budget makes big
    # ones count for more. The burst lets a wallet service hand over a backlog.
    propose_tx: Budget = Budget(50, 200, 2 * MIB, 8 * MIB)
    # Consensus messages of one peer: a busy 4-node net has a few hundred per second.
    peer_msgs: Budget = Budget(2000, 4000, 8 * MIB, 16 * MIB)
    peer_calls: Budget = Budget(200, 400, 8 * MIB, 16 * MIB)
    # Requests are tiny (a GetBlocks page is 100 blocks): 50/s is 5,000 blocks/s.
    blockchain: Budget = Budget(50, 100, 64 * KIB, 128 * KIB)
    other: Budget = Budget(20, 40, 64 * KIB, 128 * KIB)

    def budget(self, name: str) -> Budget:
        value = getattr(self, name)
        assert isinstance(value, Budget), name
        return value


BUDGET_NAMES = ("auth", "auth_all", "propose_tx", "peer_msgs", "peer_calls", "blockchain", "other")


ATTESTATION_MODES = ("off", "sim", "dcap")


@dataclass(frozen=True)
class AttestationSettings:
    """`[attestation]`: what our enclave proves to others and what we require of theirs."""

    mode: str = "off"
    network: str = "mcnode"
    sim_pki: Path | None = None
    root_ca: Path | None = None
    css: Path | None = None
    trusted_mrenclaves: tuple[bytes, ...] = ()
    trusted_mrsigner: bytes | None = None
    isv_prod_id: int | None = None
    min_isv_svn: int | None = None
    allowed_statuses: tuple[str, ...] = ()
    allowed_advisories: tuple[str, ...] = ()
    valid_days: int = 30

    @property
    def on(self) -> bool:
        return self.mode != "off"


@dataclass(frozen=True)
class NodeConfig:
    name: str
    key_file: Path
    tls_key: Path
    tls_cert: Path
    ledger_dir: Path
    state_dir: Path
    peer_listen: HostPort
    client_listen: HostPort
    admin_listen: HostPort
    quorum_set: QuorumSet
    peers: tuple[PeerConfig, ...]
    archive_sources: tuple[ArchiveSource, ...] = ()  # directories and http(s) URLs
    archive_export: Path | None = None
    limits: Limits = field(default_factory=Limits)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    scp: ScpConfig = field(default_factory=ScpConfig)
    min_block_interval: float = 0.0
    min_fee: int = DEFAULT_MINIMUM_FEE
    network_file: Path | None = None
    attestation: AttestationSettings = field(default_factory=AttestationSettings)
    consensus_listen: HostPort | None = None  # the consensus port (`node.frames`), if any

    def peer(self, name: str) -> PeerConfig | None:
        return next((p for p in self.peers if p.name == name), None)


def peer_uri(
    host: str, port: int, signing_public_key: bytes, consensus_port: int | None = None
) -> str:
    extra = "" if consensus_port is None else f"&consensus-port={consensus_port}"
    return f"mcp://{host}:{port}/?consensus-msg-key={signing_public_key.hex()}{extra}"


def parse_peer_uri(uri: str, where: str) -> tuple[str, int, bytes, int | None]:
    """(host, peer port, consensus-msg-key, consensus port or None)."""
    u = urlparse(uri)
    if u.scheme != "mcp" or not u.hostname or u.port is None:
        raise ConfigError(
            f"{where}: peer URI must look like mcp://host:port/?consensus-msg-key=HEX"
        )
    keys = parse_qs(u.query).get("consensus-msg-key", [])
    try:
        key = bytes.fromhex(keys[0]) if len(keys) == 1 else b""
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{where}: consensus-msg-key must be 64 hex digits (an Ed25519 key)")
    ports = parse_qs(u.query, keep_blank_values=True).get("consensus-port", [])
    consensus_port = None
    if ports:
        if len(ports) != 1 or not ports[0].isdigit() or not 0 < int(ports[0]) <= 65535:
            raise ConfigError(f"{where}: consensus-port must be one port number (1-65535)")
        consensus_port = int(ports[0])
    return u.hostname, u.port, key, consensus_port


@dataclass(frozen=True)
class SettingRead:
    """One key the parser reads, as it reads it: what `mcnode config reference` lists.
    `name` is dotted (`listen.peer`, `rate_limits.auth.calls`; `peers.uri` for a key of
    every `[[peers]]` table); `default` is None for a key that may be left out with no
    value and `...` for a required one."""

    name: str
    kind: str
    default: Any
    required: bool


class _Reader:
    """Walks the TOML document, remembering which keys were used (and, given `reads`,
    recording each key it is asked for, present or not)."""

    def __init__(
        self,
        doc: Mapping[str, Any],
        prefix: str = "",
        reads: list[SettingRead] | None = None,
        recorded_prefix: str | None = None,
    ) -> None:
        self.doc = doc
        self.prefix = prefix  # in error messages: `peers[2].uri`
        self.recorded_prefix = prefix if recorded_prefix is None else recorded_prefix
        self.used: set[str] = set()
        self.reads = reads

    def note(self, key: str, kind: str, default: Any, required: bool = False) -> None:
        """A key read by hand (not through `get`): marked used and recorded."""
        self.used.add(key)
        if self.reads is not None:
            self.reads.append(SettingRead(self.recorded_prefix + key, kind, default, required))

    def _name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def get(
        self, key: str, kind: type | tuple[type, ...], default: Any = ..., *, required: bool = False
    ) -> Any:
        self.used.add(key)
        if self.reads is not None:
            required = required or default is ...
            self.reads.append(
                SettingRead(
                    self.recorded_prefix + key,
                    _kind_name(kind if isinstance(kind, tuple) else (kind,)),
                    ... if required else default,
                    required,
                )
            )
        if key not in self.doc:
            if required or default is ...:
                raise ConfigError(f"{self._name(key)}: missing")
            return default
        v = self.doc[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(v, bool) and bool not in kinds:
            raise ConfigError(f"{self._name(key)}: expected {_kind_name(kinds)}, got {v!r}")
        if float in kinds and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kinds):
            raise ConfigError(f"{self._name(key)}: expected {_kind_name(kinds)}, got {v!r}")
        return v

    def table(self, key: str) -> _Reader:
        t = self.get(key, dict, {})
        return _Reader(t, f"{self._name(key)}.", self.reads, f"{self.recorded_prefix}{key}.")

    def finish(self) -> None:
        extra = sorted(set(self.doc) - self.used)
        if extra:
            raise ConfigError(f"{self._name(extra[0])}: unknown setting")


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(
        {
            str: "a string",
            int: "an integer",
            float: "a number",
            bool: "true/false",
            dict: "a table",
            list: "a list",
        }.get(k, k.__name__)
        for k in kinds
    )


def _host_port(text: str, where: str, default_host: str = "127.0.0.1") -> HostPort:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = default_host, text
    host = host.strip("[]") or default_host
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"{where}: expected HOST:PORT, got {text!r}") from None
    if not 0 <= p <= 65535:
        raise ConfigError(f"{where}: port {p} out of range")
    return HostPort(host, p)


def _positive(v: float, where: str, allow_zero: bool = False) -> None:
    if v < 0 or (v == 0 and not allow_zero):
        raise ConfigError(f"{where}: must be {'zero or more' if allow_zero else 'positive'}")


def _majority_problem(q: QuorumSet, where: str) -> str | None:
    if q.threshold * 2 <= len(q.members):
        return (
            f"{where}: threshold {q.threshold} of {len(q.members)} is not a majority "
            f"(two disjoint groups could each reach it); set allow_unsafe_quorum = true "
            f"to run anyway"
        )
    for i, m in enumerate(q.members):
        if isinstance(m, QuorumSet):
            problem = _majority_problem(m, f"{where}.members[{i}]")
            if problem:
                return problem
    return None


def _archive_sources(entries: list[Any], base: Path) -> tuple[ArchiveSource, ...]:
    sources: list[ArchiveSource] = []
    for i, entry in enumerate(entries):
        where = f"archive.sources[{i}]"
        if not isinstance(entry, str):
            raise ConfigError(f"{where}: expected a directory or an http(s):// URL, got {entry!r}")
        try:
            source = parse_archive_source(entry, base)
        except BadArchiveSource as e:
            raise ConfigError(f"{where}: {e}") from None
        if source in sources:
            raise ConfigError(f"{where}: {entry!r} is listed twice")
        sources.append(source)
    return tuple(sources)


def parse_config(text: str, path: Path, *, reads: list[SettingRead] | None = None) -> NodeConfig:
    """Parse and check a node.toml; raise ConfigError with one line on any problem. With
    `reads`, every key asked for is appended to it (`node.config_reference`)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path.name}: not valid TOML: {e}") from None
    base = path.parent
    r = _Reader(doc, "", reads)
    name = r.get("name", str, required=True)
    if not name or len(name.encode()) > 256 or any(c.isspace() for c in name):
        raise ConfigError("name: must be 1..256 bytes without spaces")
    key_file = base / r.get("key_file", str, required=True)
    tls_key = base / r.get("tls_key", str, "tls.key")
    tls_cert = base / r.get("tls_cert", str, "tls.pem")
    ledger_dir = base / r.get("ledger_dir", str, "ledger")
    state_dir = base / r.get("state_dir", str, "state")
    allow_unsafe = r.get("allow_unsafe_quorum", bool, False)
    network_file = r.get("network_file", str, None)

    listen = r.table("listen")
    peer_listen = _host_port(listen.get("peer", str, required=True), "listen.peer")
    client_listen = _host_port(listen.get("client", str, required=True), "listen.client")
    admin_listen = _host_port(listen.get("admin", str, "127.0.0.1:7201"), "listen.admin")
    consensus_text = listen.get("consensus", str, None)
    consensus_listen = (
        None if consensus_text is None else _host_port(consensus_text, "listen.consensus")
    )
    listen.finish()

    peers: list[PeerConfig] = []
    seen: set[str] = set()
    r.note("peers", "[[peers]] tables", [])
    raw_peers = doc.get("peers", [])
    if not isinstance(raw_peers, list):
        raise ConfigError("peers: expected [[peers]] tables")
    for i, p in enumerate(raw_peers):
        where = f"peers[{i}]"
        if not isinstance(p, Mapping):
            raise ConfigError(f"{where}: expected a table with name and uri")
        # recorded once, for the first: the keys of every [[peers]] table
        pr = _Reader(p, f"{where}.", reads if i == 0 else None, "peers.")
        pname = pr.get("name", str, required=True)
        host, port, key, cport = parse_peer_uri(pr.get("uri", str, required=True), f"{where}.uri")
        peer_cert = base / pr.get("tls_cert", str, required=True)
        pr.finish()
        if pname == name:
            raise ConfigError(f"{where}.name: {pname!r} is this node itself")
        if pname in seen:
            raise ConfigError(f"{where}.name: duplicate peer name {pname!r}")
        seen.add(pname)
        peers.append(PeerConfig(pname, host, port, key, peer_cert, cport))
    keys = [p.signing_key for p in peers]
    if len(set(keys)) != len(keys):
        raise ConfigError("peers: two peers share one consensus-msg-key")

    r.note("quorum_set", "a table", ..., required=True)
    if "quorum_set" not in doc:
        raise ConfigError("quorum_set: missing")
    try:
        qset = QuorumSet.from_dict(doc["quorum_set"], "quorum_set")
    except QuorumSetError as e:  # already one line naming the field
        raise ConfigError(str(e)) from None
    for node in sorted(qset.nodes()):
        if node != name and node not in seen:
            raise ConfigError(f"quorum_set: {node!r} is not one of the [[peers]]")
    if not allow_unsafe:
        problem = _majority_problem(qset.normalized(remove=name), "quorum_set")
        if problem:
            raise ConfigError(problem)

    archive = r.table("archive")
    sources = _archive_sources(archive.get("sources", list, []), base)
    export = archive.get("export", str, None)
    archive.finish()

    lim = r.table("limits")
    limits = Limits(
        pending_txs=lim.get("pending_txs", int, Limits.pending_txs),
        values_per_slot=lim.get("values_per_slot", int, Limits.values_per_slot),
        max_txs_per_block=lim.get("max_txs_per_block", int, Limits.max_txs_per_block),
        max_message_bytes=lim.get("max_message_bytes", int, Limits.max_message_bytes),
        client_connections=lim.get("client_connections", int, Limits.client_connections),
        peer_connections=lim.get("peer_connections", int, Limits.peer_connections),
    )
    lim.finish()
    for f in (
        "pending_txs",
        "values_per_slot",
        "max_txs_per_block",
        "max_message_bytes",
        "client_connections",
        "peer_connections",
    ):
        _positive(getattr(limits, f), f"limits.{f}")
    if limits.max_message_bytes < 64 * 1024:
        raise ConfigError("limits.max_message_bytes: must be at least 65536")

    rate_limits = _rate_limits(r.table("rate_limits"))

    sc = r.table("scp")
    d = ScpConfig()
    scp = ScpConfig(
        nomination_timeout=sc.get("nomination_timeout", float, d.nomination_timeout),
        nomination_timeout_increment=sc.get(
            "nomination_timeout_increment", float, d.nomination_timeout_increment
        ),
        ballot_timeout=sc.get("ballot_timeout", float, d.ballot_timeout),
        ballot_timeout_increment=sc.get(
            "ballot_timeout_increment", float, d.ballot_timeout_increment
        ),
        # On in the node (not the draft's leaders-only rule): see ScpConfig and README.
        vote_own_values=sc.get("vote_own_values", bool, True),
        # On in the node: see ScpConfig and README ("Real network conditions").
        late_candidates=sc.get("late_candidates", bool, True),
    )
    sc.finish()
    try:
        scp.validate()
    except ValueError as e:
        raise ConfigError(f"scp: {e}") from None

    blk = r.table("block")
    min_interval = blk.get("min_interval", float, 0.0)
    min_fee = blk.get("min_fee", int, DEFAULT_MINIMUM_FEE)
    blk.finish()
    _positive(min_interval, "block.min_interval", allow_zero=True)
    _positive(min_fee, "block.min_fee", allow_zero=True)
    attestation = _attestation(r.table("attestation"), base)
    r.finish()

    if not key_file.exists():
        raise ConfigError(f"key_file: {key_file} does not exist (create it with mcnode keygen)")
    return NodeConfig(
        name=name,
        key_file=key_file,
        tls_key=tls_key,
        tls_cert=tls_cert,
        ledger_dir=ledger_dir,
        state_dir=state_dir,
        peer_listen=peer_listen,
        client_listen=client_listen,
        admin_listen=admin_listen,
        consensus_listen=consensus_listen,
        quorum_set=qset,
        peers=tuple(peers),
        archive_sources=sources,
        archive_export=base / export if export else None,
        limits=limits,
        rate_limits=rate_limits,
        scp=scp,
        min_block_interval=min_interval,
        min_fee=min_fee,
        network_file=base / network_file if network_file else None,
        attestation=attestation,
    )


def _rate_limits(t: _Reader) -> RateLimits:
    """Each budget is a table of up to four numbers; those left out keep their default."""
    d = RateLimits()
    max_sources = t.get("max_sources", int, d.max_sources)
    if not 16 <= max_sources <= 1_000_000:
        raise ConfigError("rate_limits.max_sources: must be 16..1000000")
    budgets: dict[str, Budget] = {}
    for name in BUDGET_NAMES:
        b = t.table(name)
        default = d.budget(name)
        values = {
            k: b.get(k, float, getattr(default, k))
            for k in ("calls", "burst", "bytes", "bytes_burst")
        }
        b.finish()
        for k, v in values.items():
            _positive(v, f"rate_limits.{name}.{k}")
        if values["burst"] < 1:
            raise ConfigError(f"rate_limits.{name}.burst: must be at least 1")
        budgets[name] = Budget(**values)
    t.finish()
    return RateLimits(max_sources=max_sources, **budgets)


def _hex32s(values: list[Any], where: str) -> tuple[bytes, ...]:
    out = []
    for i, v in enumerate(values):
        raw = b""
        if isinstance(v, str):
            try:
                raw = bytes.fromhex(v)
            except ValueError:
                raw = b""
        if len(raw) != 32:
            raise ConfigError(f"{where}[{i}]: must be 64 hex digits")
        out.append(raw)
    return tuple(out)


def _attestation(a: _Reader, base: Path) -> AttestationSettings:
    mode = a.get("mode", str, "off")
    network = a.get("network", str, "mcnode")
    sim_pki = a.get("sim_pki", str, None)
    root_ca = a.get("root_ca", str, None)
    css = a.get("css", str, None)
    mrenclaves = _hex32s(a.get("trusted_mrenclaves", list, []), "attestation.trusted_mrenclaves")
    mrsigner_hex = a.get("trusted_mrsigner", str, None)
    isv_prod_id = a.get("isv_prod_id", int, None)
    min_isv_svn = a.get("min_isv_svn", int, None)
    statuses = a.get("allowed_statuses", list, [])
    advisories = a.get("allowed_advisories", list, [])
    valid_days = a.get("valid_days", int, 30)
    a.finish()
    if mode not in ATTESTATION_MODES:
        raise ConfigError(
            f"attestation.mode: {mode!r} is not one of {', '.join(ATTESTATION_MODES)}"
        )
    if mode == "dcap":
        raise ConfigError(
            "attestation.mode: dcap needs SGX hardware and a runtime to host the enclave, "
            'which this build does not have; use "sim" (simulated evidence)'
        )
    if not network or len(network.encode()) > 64:
        raise ConfigError("attestation.network: must be 1..64 bytes")
    if not 1 <= valid_days <= 366:
        raise ConfigError("attestation.valid_days: must be 1..366")
    mrsigner = _hex32s([mrsigner_hex], "attestation.trusted_mrsigner")[0] if mrsigner_hex else None
    for what, items in (("allowed_statuses", statuses), ("allowed_advisories", advisories)):
        if not all(isinstance(x, str) for x in items):
            raise ConfigError(f"attestation.{what}: must be a list of strings")
    settings = AttestationSettings(
        mode=mode,
        network=network,
        sim_pki=base / sim_pki if sim_pki else None,
        root_ca=base / root_ca if root_ca else None,
        css=base / css if css else None,
        trusted_mrenclaves=mrenclaves,
        trusted_mrsigner=mrsigner,
        isv_prod_id=isv_prod_id,
        min_isv_svn=min_isv_svn,
        allowed_statuses=tuple(statuses),
        allowed_advisories=tuple(advisories),
        valid_days=valid_days,
    )
    if mode == "off":
        return settings
    if settings.sim_pki is None:
        raise ConfigError("attestation.sim_pki: mode sim needs the network's simulated PKI")
    if settings.root_ca is None:
        settings = replace(settings, root_ca=settings.sim_pki / "root-ca.pem")
    try:
        peer_policy(settings)
    except ValueError as e:
        raise ConfigError(f"attestation: {e}") from None
    return settings


def peer_policy(settings: AttestationSettings) -> Policy:
    """What we require of our peers' enclaves (and what our clients should require of
    ours): the trusted identities, statuses and advisories; simulation allowed in sim."""
    return Policy(
        mrenclaves=frozenset(settings.trusted_mrenclaves),
        mrsigner=settings.trusted_mrsigner,
        isv_prod_id=settings.isv_prod_id,
        min_isv_svn=settings.min_isv_svn,
        allowed_statuses=frozenset(settings.allowed_statuses),
        allowed_advisories=frozenset(settings.allowed_advisories),
        allow_simulation=settings.mode == "sim",
    )


def load_config(path: str | Path) -> NodeConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    return parse_config(text, p)


NETWORK_FILE_FORMAT = (
    'the whole network\'s quorum sets as JSON: {"nodes": [{"id": "alice", "quorum_set": '
    '{"threshold": 2, "members": ["bob", "carol", "dave"]}}, ...]} (or a network '
    "explorer's list of publicKey/name/quorumSet); see docs/CONFIG.md, network_file"
)


def _network_json(path: Path) -> Any:
    """The network file's JSON; one line saying what the file should be otherwise."""
    import json

    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"network_file: {path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"network_file: {path}: not UTF-8 text") from None
    try:
        return json.loads(text)
    except ValueError as e:
        try:
            tomllib.loads(text)
            what = "a TOML file (a node.toml?), not JSON"
        except tomllib.TOMLDecodeError:
            what = f"not valid JSON ({e})"
        raise ConfigError(
            f"network_file: {path} is {what}: it must be {NETWORK_FILE_FORMAT}"
        ) from None


def check_network_intersection(cfg: NodeConfig) -> str | None:
    """With a `network_file`, None if all quorums of that network (our own quorum set taking
    precedence for us) intersect; otherwise one line saying why not."""
    if cfg.network_file is None:
        return None

    from mcnode.fbas import FbasError, check_intersection
    from mcnode.fbas.parse import from_json, from_quorum_sets

    data = _network_json(cfg.network_file)
    try:
        nodes = data.get("nodes") if isinstance(data, dict) else None
        if isinstance(nodes, list) and all(isinstance(n, dict) and "id" in n for n in nodes):
            # mcnode's own format: our quorum set is the one in node.toml, whatever the
            # file says about us.
            qsets = {str(n["id"]): n.get("quorum_set") for n in nodes}
            qsets[cfg.name] = cfg.quorum_set.to_dict()
            net = from_quorum_sets(qsets)
        else:
            net = from_json(data)
    except (ValueError, FbasError) as e:
        raise ConfigError(f"network_file: {cfg.network_file}: {e}") from None
    if cfg.name not in net.by_id:
        raise ConfigError(
            f"network_file: {cfg.network_file} does not list this node ({cfg.name!r})"
        )
    result = check_intersection(net)
    if result.intersection:
        return None
    a, b = result.disjoint_quorums or ((), ())
    return (
        f"network_file: the network has no quorum intersection: {sorted(a)} and "
        f"{sorted(b)} are disjoint quorums (pass --force to start anyway)"
    )
