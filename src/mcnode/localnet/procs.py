"""Validator processes on this machine: start, watch, kill, restart — never orphaned.

Each validator runs `python -m mcnode run --config D/<node>/node.toml` in its own process
group; `close()` (also run at interpreter exit) terminates every group it started."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Validators are forked with a preexec_fn (fork, not vfork: their parent-death signal is
# set before exec). gRPC's fork handlers, on by default, can abort such a child before it
# execs when this process has channels (its poller runs in the child after every fd is
# closed: "epoll_wait error: Bad file descriptor"; 15 of 300 forks with busy channels, 0
# with the handlers off). Off here, which works only if grpc is not imported yet (the
# `localnet` commands import this first); this process never forks without exec.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")

_LIVE: weakref.WeakSet[NodeProcess] = weakref.WeakSet()
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _kill_all() -> None:
    for p in list(_LIVE):
        p.kill()


atexit.register(_kill_all)


def _libc_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


# Looked up here, in the parent: the child of a threaded process may not load a library
# between fork and exec (the loader's lock may be held by a thread that is not there).
_PRCTL = _libc_prctl()
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child (before exec, or first thing in a spawned worker): on Linux, get
    SIGTERM when the process that started us dies, even by SIGKILL, so a validator or
    builder is never left behind. Only a call through a pointer resolved before the fork."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


def http_json(url: str, timeout: float = 2.0) -> Any:
    with _NO_PROXY.open(url, timeout=timeout) as r:
        return json.loads(r.read())


TRACE_FILE = "scp-trace.jsonl"


class NodeProcess:
    def __init__(self, node_dir: Path, log_level: str = "info", scp_trace: bool = False) -> None:
        self.dir = Path(node_dir)
        self.config = self.dir / "node.toml"
        cfg = tomllib.loads(self.config.read_text())
        self.name: str = cfg["name"]
        self.admin = cfg["listen"]["admin"]
        self.client = cfg["listen"]["client"]
        self.log_path = self.dir / "node.log"
        self.log_level = log_level
        self.trace_path = self.dir / TRACE_FILE if scp_trace else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.env: dict[str, str] | None = None  # the process's environment (None: ours)
        # Run it under this command (`ip netns exec NS` for `localnet --netns`), which
        # must exec the rest of its arguments in the same process.
        self.prefix: list[str] = []

    def start(self) -> None:
        if self.running():
            return
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                *self.prefix,
                sys.executable,
                "-m",
                "mcnode",
                "run",
                "--config",
                str(self.config),
                "--log-level",
                self.log_level,
                *(["--scp-trace", str(self.trace_path)] if self.trace_path else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,  # only a prctl call: safe before exec
            env=self.env,
        )
        log.close()
        self.starts += 1
        _LIVE.add(self)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM and wait (the node stops cleanly), SIGKILL after 10 s."""
        self.kill(signal.SIGTERM)

    def status(self, timeout: float = 2.0) -> dict[str, Any] | None:
        try:
            return http_json(f"http://{self.admin}/status", timeout)  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    def wait_ready(self, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: {self.tail_log()}"
                )
            s = self.status(0.5)
            if s is not None:
                return s
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s: {self.tail_log()}")

    def tail_log(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User + system CPU seconds of a process (and, with `children`, its live children)
    so far, from Linux /proc; 0.0 for a process that is gone. A validator is its host
    process and its enclave process (the host's child)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # gone, or no /proc
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    listing = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        kids = listing.read_text().split() if children else []
    except OSError:
        kids = []
    return own + sum(cpu_seconds(int(k)) for k in kids)


@dataclass(frozen=True)
class CpuMark:
    """The validators' CPU seconds at one moment, and which processes they were."""

    pids: tuple[int | None, ...]
    validators: float  # hosts and their enclaves
    hosts: float


class Cluster:
    """Every validator of a localnet directory."""

    def __init__(self, directory: Path, log_level: str = "info", scp_trace: bool = False) -> None:
        self.dir = Path(directory)
        net = json.loads((self.dir / "network.json").read_text())
        self.network = net
        self.nodes = [NodeProcess(self.dir / n["id"], log_level, scp_trace) for n in net["nodes"]]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def node(self, name: str) -> NodeProcess:
        return next(n for n in self.nodes if n.name == name)

    def start(self, timeout: float = 60.0) -> None:
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_ready(timeout)

    def close(self) -> None:
        for n in self.nodes:
            n.stop()

    def cpu_mark(self) -> CpuMark:
        pids = tuple(None if n.proc is None else n.proc.pid for n in self.nodes)
        live = [p for p in pids if p is not None]
        return CpuMark(
            pids,
            sum(cpu_seconds(p) for p in live),
            sum(cpu_seconds(p, children=False) for p in live),
        )

    def statuses(self) -> dict[str, dict[str, Any] | None]:
        return {n.name: n.status() for n in self.nodes}

    def wait_height(
        self, height: int, timeout: float, nodes: list[str] | None = None
    ) -> dict[str, dict[str, Any] | None]:
        """Wait until every (named) node has at least `height` blocks."""
        names = nodes or [n.name for n in self.nodes]
        deadline = time.monotonic() + timeout
        while True:
            st = {n: self.node(n).status() for n in names}
            if all(s is not None and s["block_height"] >= height for s in st.values()):
                return st
            if time.monotonic() > deadline:
                return st
            time.sleep(0.1)
