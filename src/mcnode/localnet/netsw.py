"""The WAN switch: one process that moves IP packets between network namespaces, late.

`python -m mcnode.localnet.netsw CONFIG.json` (started by `localnet --netns`, never by
hand). For every port of the config it enters that port's namespace, opens a TUN device
there (`mcn0`, no packet info, MTU 1500), gives it the port's address and a route for the
run's /24 through it, and comes back: every packet a namespace sends to another address
of the subnet is then read here. Per directed pair of ports (src -> dst) it

- drops the packet while the pair is cut (a partition; one-way when only one direction
  is cut),
- drops it with the link's loss probability (TCP then retransmits for real),
- else delivers it to the destination's TUN after the link's one-way delay (half the
  configured round trip) plus, if asked, a uniform jitter in [-jitter, +jitter] (netem's
  meaning; jitter reorders packets, as netem does; without jitter the delay is constant,
  so every flow stays in order).

Rules of this file: one thread, one selector loop, one heap of (due, seq, fd, packet); no
packet is ever delivered early; nothing here knows about mcnode (it moves IPv4 packets;
anything else, e.g. IPv6 router solicitations, is dropped). Control is JSON lines on
stdin: `{"cut": [[src, dst], ...]}` replaces the set of cut directed pairs, `{"stats":
true}` answers one JSON line on stdout. End of stdin means the launcher is gone: the
switch then deletes the run's namespaces (config `own_netns`) and its run record, and
exits, so a SIGKILLed launcher leaves nothing behind. Its TUN devices go with it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import heapq
import json
import os
import random
import selectors
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
TUN_NAME = "mcn0"
MTU = 1500

_LIBC = ctypes.CDLL(None, use_errno=True)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace open at `fd`."""
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@dataclass(frozen=True)
class Port:
    name: str
    netns: str
    address: str  # IPv4, inside the run's /24


@dataclass(frozen=True)
class Link:
    delay_s: float  # one way
    jitter_s: float = 0.0
    loss: float = 0.0

    def to_dict(self) -> dict[str, float]:
        return {"delay_s": self.delay_s, "jitter_s": self.jitter_s, "loss": self.loss}


@dataclass(frozen=True)
class SwitchConfig:
    ports: tuple[Port, ...]
    links: dict[tuple[str, str], Link]  # directed; missing pairs: zero delay, no loss
    prefix_len: int = 24
    seed: int | None = None
    own_netns: tuple[str, ...] = ()
    run_record: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "ports": [p.__dict__ for p in self.ports],
                "links": [[a, b, lk.to_dict()] for (a, b), lk in self.links.items()],
                "prefix_len": self.prefix_len,
                "seed": self.seed,
                "own_netns": list(self.own_netns),
                "run_record": self.run_record,
            }
        )

    @staticmethod
    def from_json(text: str) -> SwitchConfig:
        d = json.loads(text)
        return SwitchConfig(
            ports=tuple(Port(**p) for p in d["ports"]),
            links={(a, b): Link(**lk) for a, b, lk in d["links"]},
            prefix_len=int(d["prefix_len"]),
            seed=d.get("seed"),
            own_netns=tuple(d.get("own_netns", ())),
            run_record=d.get("run_record"),
        )


def _open_tun_in(netns: str) -> int:
    """A TUN device made inside `netns` (the fd stays ours after we leave it)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{netns}", os.O_RDONLY)
    try:
        setns(target)
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", TUN_NAME.encode(), IFF_TUN | IFF_NO_PI))
        finally:
            setns(home)
    finally:
        os.close(home)
        os.close(target)
    return fd


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@dataclass
class PairStats:
    packets: int = 0
    bytes: int = 0
    lost: int = 0
    cut: int = 0


class Switch:
    def __init__(self, cfg: SwitchConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.fds: dict[str, int] = {}
        self.by_fd: dict[int, str] = {}
        self.by_addr: dict[bytes, str] = {}
        self.cut: set[tuple[str, str]] = set()
        self.heap: list[tuple[float, int, int, bytes]] = []
        self.seq = 0
        self.pairs: dict[tuple[str, str], PairStats] = {}
        self.late_s: list[float] = []  # delivered minus due, a bounded sample
        self.late_n = 0
        self.late_sum = 0.0
        self.late_max = 0.0
        self.dropped_other = 0
        self.started = time.monotonic()

    def open(self) -> None:
        for p in self.cfg.ports:
            fd = _open_tun_in(p.netns)
            self.fds[p.name] = fd
            self.by_fd[fd] = p.name
            self.by_addr[socket.inet_aton(p.address)] = p.name
            n = p.netns
            _ip("-n", n, "link", "set", "lo", "up")
            _ip("-n", n, "link", "set", TUN_NAME, "mtu", str(MTU))
            _ip("-n", n, "addr", "add", f"{p.address}/{self.cfg.prefix_len}", "dev", TUN_NAME)
            _ip("-n", n, "link", "set", TUN_NAME, "up")

    # -- the data path ---------------------------------------------------------------------
    def receive(self, src: str, pkt: bytes, now: float) -> None:
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            self.dropped_other += 1
            return
        dst = self.by_addr.get(pkt[16:20])
        if dst is None or dst == src:
            self.dropped_other += 1
            return
        pair = (src, dst)
        st = self.pairs.get(pair)
        if st is None:
            st = self.pairs[pair] = PairStats()
        if pair in self.cut:
            st.cut += 1
            return
        link = self.cfg.links.get(pair)
        delay = 0.0
        if link is not None:
            if link.loss and self.rng.random() < link.loss:
                st.lost += 1
                return
            delay = link.delay_s
            if link.jitter_s:
                delay = max(0.0, delay + self.rng.uniform(-link.jitter_s, link.jitter_s))
        st.packets += 1
        st.bytes += len(pkt)
        self.seq += 1
        heapq.heappush(self.heap, (now + delay, self.seq, self.fds[dst], pkt))

    def deliver_due(self, now: float) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            due, _, fd, pkt = heapq.heappop(heap)
            with contextlib.suppress(OSError):
                os.write(fd, pkt)
            late = now - due
            self.late_n += 1
            self.late_sum += late
            self.late_max = max(self.late_max, late)
            if len(self.late_s) < 200_000:
                self.late_s.append(late)

    # -- control -------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        t = os.times()
        xs = sorted(self.late_s)
        return {
            "uptime_s": round(time.monotonic() - self.started, 3),
            "cpu_s": round(t.user + t.system, 3),
            "delivered": self.late_n,
            "late_ms": {
                "mean": round(1000 * self.late_sum / self.late_n, 3) if self.late_n else None,
                "p50": round(1000 * xs[len(xs) // 2], 3) if xs else None,
                "p99": round(1000 * xs[min(len(xs) - 1, int(0.99 * len(xs)))], 3) if xs else None,
                "max": round(1000 * self.late_max, 3),
            },
            "dropped_other": self.dropped_other,
            "pairs": {f"{a}>{b}": s.__dict__ for (a, b), s in sorted(self.pairs.items())},
            "cut": sorted(f"{a}>{b}" for a, b in self.cut),
        }

    def command(self, line: str) -> None:
        msg = json.loads(line)
        if "cut" in msg:
            self.cut = {(str(a), str(b)) for a, b in msg["cut"]}
        if msg.get("stats"):
            sys.stdout.write(json.dumps(self.stats()) + "\n")
            sys.stdout.flush()

    def serve(self) -> None:
        sel = selectors.DefaultSelector()
        for fd in self.by_fd:
            sel.register(fd, selectors.EVENT_READ)
        os.set_blocking(0, False)
        sel.register(0, selectors.EVENT_READ)
        buf = b""
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while True:
            timeout = None
            if self.heap:
                timeout = max(0.0, self.heap[0][0] - time.monotonic())
            events = sel.select(timeout)
            now = time.monotonic()
            for key, _ in events:
                fd = key.fd
                if fd == 0:
                    try:
                        chunk = os.read(0, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        return  # the launcher is gone
                    buf += chunk
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        if line.strip():
                            self.command(line.decode())
                    continue
                src = self.by_fd[fd]
                while True:
                    try:
                        pkt = os.read(fd, 65536)
                    except (BlockingIOError, InterruptedError):
                        break
                    self.receive(src, pkt, now)
            self.deliver_due(time.monotonic())


def _teardown(cfg: SwitchConfig) -> None:
    for n in cfg.own_netns:
        subprocess.run(["ip", "netns", "delete", n], capture_output=True, check=False)
    if cfg.run_record:
        with contextlib.suppress(OSError):
            Path(cfg.run_record).unlink()


def main(argv: list[str]) -> int:
    import signal

    cfg = SwitchConfig.from_json(Path(argv[0]).read_text())
    sw = Switch(cfg)
    # SIGTERM (our parent died: PR_SET_PDEATHSIG) ends the loop like end of stdin does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        sw.open()
        sw.serve()
    finally:
        # Stdin closed, or SIGTERM: the launcher is gone; leave nothing behind. Both come
        # when it dies, so the second must not cut the teardown short.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if not os.environ.get("MCNODE_NETSW_KEEP"):
            _teardown(cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
