"""`mcnode localnet --netns`: every validator in its own network namespace, WAN between them.

A run is named by a short random id. It makes one namespace per validator
(`mcn-<run>-<node>`) and one for the load generator (`mcn-<run>-client`), all on the
private subnet 10.77.0.0/24 (client .1, node i .10+i); the subnet lives only inside the
run's namespaces, so concurrent runs never collide and nothing is added to the host's
own network. The switch (`netsw.py`, a child process) joins them and applies the links'
delay, jitter and loss and the partitions. Validators are started unchanged, under `ip
netns exec`; the launcher itself (status polls and the load generator) moves its main
thread into the client namespace before it opens any connection.

Rules of this file: nothing outlives the run. The run record `/run/mcnode-netns/<run>.json`
(and a copy in the localnet directory) names the launcher's pid and the namespaces;
validators and the switch die with the launcher (PR_SET_PDEATHSIG), and the switch,
seeing its stdin close, deletes the namespaces and the record. `mcnode localnet cleanup`
removes any `mcn-*` namespace whose run record is gone or names a dead process.
Link conditions are values (`Link`, `NetworkPlan`); parsing them raises `NetnsError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcnode.localnet.netsw import Link, Port, SwitchConfig, setns

RUN_DIR = Path("/run/mcnode-netns")
NS_PREFIX = "mcn-"
CLIENT = "client"
SUBNET = "10.77.0"
_NS_RE = re.compile(r"^mcn-([0-9a-f]{6,})-(.+)$")


class NetnsError(ValueError):
    pass


def why_not_available() -> str | None:
    """One line saying why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "--netns needs root (network namespaces, TUN devices): run it as root"
    if not Path("/dev/net/tun").exists():
        return "--netns needs /dev/net/tun (the TUN driver), which this machine lacks"
    try:
        r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"--netns needs iproute2's `ip netns`: {e}"
    if r.returncode != 0:
        return f"--netns: `ip netns list` failed: {r.stderr.strip()}"
    return None


# -- link conditions -------------------------------------------------------------------


def parse_loss(text: str | float | None) -> float:
    """`1%` or `0.01`: a probability per packet, per direction."""
    if text is None:
        return 0.0
    s = str(text).strip()
    v = float(s[:-1]) / 100 if s.endswith("%") else float(s)
    if not 0.0 <= v < 1.0:
        raise NetnsError(f"--loss {text}: a fraction in [0, 1) or a percentage")
    return v


@dataclass(frozen=True)
class Partition:
    """Traffic from every node of `a` to every node of `b` is dropped between `at` and
    `heal` (seconds after the load starts); both ways unless `one_way`."""

    a: tuple[str, ...]
    b: tuple[str, ...]
    one_way: bool
    at: float
    heal: float | None

    @property
    def spec(self) -> str:
        return ",".join(self.a) + (">" if self.one_way else "|") + ",".join(self.b)

    def pairs(self) -> set[tuple[str, str]]:
        out = {(x, y) for x in self.a for y in self.b}
        if not self.one_way:
            out |= {(y, x) for x in self.a for y in self.b}
        return out


def parse_partition(spec: str, at: float, heal: float | None, names: list[str]) -> Partition:
    """`"node0,node1|node2,node3"` (both ways) or `"node0>node1,node2"` (node0's packets to
    node1 and node2 are dropped; theirs to node0 arrive)."""
    sep = ">" if ">" in spec else "|"
    parts = spec.split(sep)
    if len(parts) != 2:
        raise NetnsError(f"--partition {spec!r}: two groups, split by | (or > for one way)")
    groups = [tuple(x.strip() for x in p.split(",") if x.strip()) for p in parts]
    for g in groups:
        if not g:
            raise NetnsError(f"--partition {spec!r}: an empty group")
        for x in g:
            if x not in names:
                raise NetnsError(f"--partition {spec!r}: no node {x!r} (nodes: {names})")
    if set(groups[0]) & set(groups[1]):
        raise NetnsError(f"--partition {spec!r}: a node on both sides")
    if heal is not None and heal <= at:
        raise NetnsError("--heal-at must come after --partition-at")
    return Partition(groups[0], groups[1], sep == ">", at, heal)


@dataclass(frozen=True)
class NetworkPlan:
    """What every link does: `rtt_ms[(a, b)]` is the round trip between two ports (the
    switch delays each direction by half of it)."""

    names: tuple[str, ...]  # validators
    rtt_ms: dict[tuple[str, str], float]  # unordered pairs stored both ways
    jitter_ms: float = 0.0
    loss: float = 0.0
    client_rtt_ms: float = 0.0
    matrix: dict[str, Any] | None = None  # the file's content, for the summary
    partitions: tuple[Partition, ...] = ()

    @property
    def mode(self) -> str:
        return "matrix" if self.matrix is not None else "uniform"

    def links(self) -> dict[tuple[str, str], Link]:
        out: dict[tuple[str, str], Link] = {}
        j = self.jitter_ms / 1000
        for a in self.names:
            for b in self.names:
                if a != b:
                    out[(a, b)] = Link(self.rtt_ms[(a, b)] / 2000, j, self.loss)
            c = Link(self.client_rtt_ms / 2000, 0.0, 0.0)
            out[(CLIENT, a)] = out[(a, CLIENT)] = c
        return out

    def max_rtt_ms(self) -> float:
        return max(self.rtt_ms.values(), default=0.0)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": f"netns/{self.mode}"}
        if self.matrix is not None:
            out["matrix"] = {f"{a}-{b}": v for (a, b), v in sorted(self.rtt_ms.items()) if a < b}
            out["regions"] = self.matrix.get("nodes")
        else:
            out["rtt_ms"] = next(iter(self.rtt_ms.values()), 0.0)
        out.update(jitter_ms=self.jitter_ms, loss=self.loss, client_rtt_ms=self.client_rtt_ms)
        return out


def uniform_plan(
    names: list[str], rtt_ms: float, jitter_ms: float = 0.0, loss: float = 0.0, **kw: Any
) -> NetworkPlan:
    if rtt_ms < 0 or jitter_ms < 0:
        raise NetnsError("--rtt-ms and --jitter-ms are at least 0")
    rtt = {(a, b): float(rtt_ms) for a in names for b in names if a != b}
    return NetworkPlan(tuple(names), rtt, jitter_ms, loss, **kw)


def matrix_plan(
    names: list[str],
    path: Path,
    jitter_ms: float | None = None,
    loss: float | None = None,
    **kw: Any,
) -> NetworkPlan:
    """A latency matrix file:

        {"rtt_ms": {"us-east": {"eu-west": 75, ...}, ...},   round trips per pair
         "nodes": {"node0": "us-east", ...},                  optional: node -> region
         "intra_rtt_ms": 1, "jitter_ms": 0, "loss": 0}        optional

    Without `nodes` the keys of `rtt_ms` are node names. A pair may be given either way
    round; a missing pair is an error (same region: `intra_rtt_ms`)."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise NetnsError(f"--latency-matrix {path}: {e}") from None
    table = d.get("rtt_ms")
    if not isinstance(table, dict):
        raise NetnsError(f"--latency-matrix {path}: no rtt_ms table")
    where: dict[str, str] = d.get("nodes") or {n: n for n in names}
    missing = [n for n in names if n not in where]
    if missing:
        raise NetnsError(f"--latency-matrix {path}: no region for {missing}")
    intra = float(d.get("intra_rtt_ms", 0.0))

    def rtt(x: str, y: str) -> float:
        if x == y:
            return intra
        for p, q in ((x, y), (y, x)):
            v = table.get(p, {}).get(q)
            if v is not None:
                return float(v)
        raise NetnsError(f"--latency-matrix {path}: no round trip for {x}-{y}")

    pairs = {(a, b): rtt(where[a], where[b]) for a in names for b in names if a != b}
    return NetworkPlan(
        tuple(names),
        pairs,
        float(d.get("jitter_ms", 0.0)) if jitter_ms is None else jitter_ms,
        parse_loss(d.get("loss", 0.0)) if loss is None else loss,
        matrix=d,
        **kw,
    )


def scp_timeouts(max_rtt_ms: float) -> dict[str, float]:
    """`[scp]` for a network whose slowest round trip is `max_rtt_ms` (bench_wan.py,
    bench/RESULTS.md): a nomination round needs about two one-way delays to confirm a
    candidate and a ballot about four, so below 100 ms the localnet's loopback figures
    stand and above it the base timeouts grow to 2.5x and 5x the round trip."""
    r = max_rtt_ms / 1000
    return {
        "nomination_timeout": round(max(0.25, 2.5 * r), 3),
        "nomination_timeout_increment": round(max(0.25, 1.25 * r), 3),
        "ballot_timeout": round(max(0.5, 5 * r), 3),
        "ballot_timeout_increment": round(max(0.5, 2.5 * r), 3),
    }


# -- the run -------------------------------------------------------------------------------


def ns_name(run: str, role: str) -> str:
    return f"{NS_PREFIX}{run}-{role}"


def node_address(index: int) -> str:
    return f"{SUBNET}.{10 + index}"


CLIENT_ADDRESS = f"{SUBNET}.1"


def _pdeathsig() -> None:
    from mcnode.localnet.procs import die_with_parent

    die_with_parent()


@dataclass
class NetnsRun:
    """The namespaces and the switch of one run; a context manager. While it is open the
    calling thread is in the client namespace."""

    plan: NetworkPlan
    directory: Path
    seed: int | None = None
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    switch: subprocess.Popen[str] | None = None
    _home_ns: int | None = None
    _started: float = 0.0
    _cut: set[tuple[str, str]] = field(default_factory=set)

    @property
    def record(self) -> Path:
        return RUN_DIR / f"{self.run_id}.json"

    def exec_prefix(self, node: str) -> list[str]:
        return ["ip", "netns", "exec", ns_name(self.run_id, node)]

    def addresses(self) -> dict[str, str]:
        return {n: node_address(i) for i, n in enumerate(self.plan.names)}

    def __enter__(self) -> NetnsRun:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        roles = [CLIENT, *self.plan.names]
        self.namespaces = [ns_name(self.run_id, r) for r in roles]
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        rec = {
            "run": self.run_id,
            "pid": os.getpid(),
            "started": time.time(),
            "namespaces": self.namespaces,
            "directory": str(self.directory),
        }
        self.record.write_text(json.dumps(rec) + "\n")
        with contextlib.suppress(OSError):
            (self.directory / "netns-run.json").write_text(json.dumps(rec, indent=2) + "\n")
        for n in self.namespaces:
            subprocess.run(["ip", "netns", "add", n], check=True, capture_output=True)
        ports = [Port(CLIENT, self.namespaces[0], CLIENT_ADDRESS)] + [
            Port(n, ns_name(self.run_id, n), a) for n, a in self.addresses().items()
        ]
        cfg = SwitchConfig(
            tuple(ports),
            self.plan.links(),
            seed=self.seed,
            own_netns=tuple(self.namespaces),
            run_record=str(self.record),
        )
        cfg_file = Path(tempfile.mkstemp(prefix=f"mcn-{self.run_id}-", suffix=".json")[1])
        cfg_file.write_text(cfg.to_json())
        self.switch = subprocess.Popen(
            [sys.executable, "-m", "mcnode.localnet.netsw", str(cfg_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_pdeathsig,
        )
        assert self.switch.stdout is not None
        line = self.switch.stdout.readline()
        cfg_file.unlink()
        if line.strip() != "ready":
            err = self.switch.stderr.read() if self.switch.stderr else ""
            raise NetnsError(f"the WAN switch did not start: {line.strip()} {err[-2000:]}")
        self._home_ns = os.open("/proc/self/ns/net", os.O_RDONLY)
        fd = os.open(f"/var/run/netns/{self.namespaces[0]}", os.O_RDONLY)
        try:
            setns(fd)
        finally:
            os.close(fd)
        self._started = time.monotonic()

    def set_cut(self, pairs: set[tuple[str, str]]) -> None:
        self._cut = set(pairs)
        self._send({"cut": sorted(self._cut)})

    def stats(self) -> dict[str, Any] | None:
        if self.switch is None or self.switch.poll() is not None:
            return None
        self._send({"stats": True})
        assert self.switch.stdout is not None
        line = self.switch.stdout.readline()
        return json.loads(line) if line else None

    def _send(self, msg: dict[str, Any]) -> None:
        if self.switch is None or self.switch.stdin is None:
            raise NetnsError("the WAN switch is not running")
        self.switch.stdin.write(json.dumps(msg) + "\n")
        self.switch.stdin.flush()

    def close(self) -> None:
        """Stop the switch (it deletes the namespaces), make sure they are gone, and go
        back to our own namespace."""
        if self.switch is not None:
            with contextlib.suppress(OSError, ValueError):
                if self.switch.stdin:
                    self.switch.stdin.close()
            try:
                self.switch.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.switch.kill()
                self.switch.wait()
            for f in (self.switch.stdout, self.switch.stderr):
                with contextlib.suppress(OSError):
                    f and f.close()
            self.switch = None
        for n in self.namespaces:
            subprocess.run(["ip", "netns", "delete", n], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            self.record.unlink()
        if self._home_ns is not None:
            setns(self._home_ns)
            os.close(self._home_ns)
            self._home_ns = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers() -> list[str]:
    """Every `mcn-<run>-*` namespace whose run is gone (no record, or a dead launcher)."""
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    out = []
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = _NS_RE.match(name)
        if not m:
            continue
        try:
            rec = json.loads((RUN_DIR / f"{m.group(1)}.json").read_text())
            if _alive(int(rec["pid"])):
                continue
        except (OSError, ValueError, KeyError):
            pass
        out.append(name)
    return out


def cleanup() -> list[str]:
    """Delete leftover namespaces (their TUN links go with them) and dead run records."""
    gone = leftovers()
    for n in gone:
        subprocess.run(["ip", "netns", "delete", n], capture_output=True, check=False)
    if RUN_DIR.exists():
        for rec in RUN_DIR.glob("*.json"):
            try:
                pid = int(json.loads(rec.read_text())["pid"])
            except (OSError, ValueError, KeyError):
                pid = -1
            if pid < 0 or not _alive(pid):
                with contextlib.suppress(OSError):
                    rec.unlink()
    return gone


# -- faults during a run (run.NetworkHook) -----------------------------------------------


@dataclass
class _PartitionState:
    p: Partition
    cut_at: float | None = None  # seconds since the load started
    healed_at: float | None = None
    heights_at_cut: dict[str, int | None] = field(default_factory=dict)
    heights_at_heal: dict[str, int | None] = field(default_factory=dict)
    caught_up_s: float | None = None
    last_poll: float = 0.0


def _heights(cluster: Any) -> dict[str, int | None]:
    return {n: (s or {}).get("block_height") for n, s in cluster.statuses().items()}


class NetworkFaults:
    """Cuts and heals the plan's partitions on time, and says what they did: the heights
    at the cut and at the heal, the blocks the load generator saw while cut (counted from
    2 s after the cut, for what was already in flight), and how long after the heal every
    node had reached the highest height at the heal (the minority caught up)."""

    GRACE_S = 2.0

    def __init__(self, net: NetnsRun) -> None:
        self.net = net
        self.states = [_PartitionState(p) for p in net.plan.partitions]

    def _apply(self) -> None:
        cut: set[tuple[str, str]] = set()
        for s in self.states:
            if s.cut_at is not None and s.healed_at is None:
                cut |= s.p.pairs()
        self.net.set_cut(cut)

    def tick(self, elapsed: float, cluster: Any, load: Any) -> None:
        changed = False
        for s in self.states:
            if s.cut_at is None and elapsed >= s.p.at:
                s.cut_at = elapsed
                s.heights_at_cut = _heights(cluster)
                changed = True
            elif (
                s.cut_at is not None
                and s.healed_at is None
                and s.p.heal is not None
                and elapsed >= s.p.heal
            ):
                self._heal(s, elapsed, cluster)
                changed = True
            elif s.healed_at is not None and s.caught_up_s is None and elapsed - s.last_poll > 0.5:
                s.last_poll = elapsed
                self._check_caught_up(s, elapsed, cluster)
        if changed:
            self._apply()

    def _heal(self, s: _PartitionState, elapsed: float, cluster: Any) -> None:
        s.healed_at = elapsed
        s.heights_at_heal = _heights(cluster)

    def _check_caught_up(self, s: _PartitionState, elapsed: float, cluster: Any) -> None:
        target = max((h or 0) for h in s.heights_at_heal.values())
        now = _heights(cluster)
        if all(h is not None and h >= target for h in now.values()):
            s.caught_up_s = round(elapsed - (s.healed_at or elapsed), 3)

    def end(self, elapsed: float) -> None:
        for s in self.states:
            if s.cut_at is not None and s.healed_at is None:
                s.healed_at = elapsed  # heights are read in summary()
        self._apply()

    def summary(self, cluster: Any, load: Any, started: float) -> dict[str, Any]:
        out = self.net.plan.summary()
        parts = []
        for s in self.states:
            if s.healed_at is not None and s.caught_up_s is None:
                # Not seen during the load: by the end of the run (an upper bound).
                if not s.heights_at_heal:
                    s.heights_at_heal = _heights(cluster)
                self._check_caught_up(s, time.monotonic() - started, cluster)
            caught = s.caught_up_s
            blocks = after = None
            if s.cut_at is not None and s.healed_at is not None:
                lo, hi = started + s.cut_at + self.GRACE_S, started + s.healed_at
                blocks = sum(1 for b in load.stats.blocks if lo <= b[3] <= hi)
                after = sum(1 for b in load.stats.blocks if b[3] > hi)
            parts.append(
                {
                    "spec": s.p.spec,
                    "one_way": s.p.one_way,
                    "at_s": s.p.at,
                    "heal_s": s.p.heal,
                    "cut_at_s": None if s.cut_at is None else round(s.cut_at, 3),
                    "healed_at_s": None if s.healed_at is None else round(s.healed_at, 3),
                    "heights_at_cut": s.heights_at_cut,
                    "heights_at_heal": s.heights_at_heal,
                    "blocks_while_cut": blocks,
                    "blocks_after_heal": after,
                    "caught_up_after_heal_s": caught,
                }
            )
        out["partitions"] = parts
        out["switch"] = self.net.stats()
        return out
