"""`mcnode localnet --netns`: the WAN switch applies what it is told, nothing outlives a run,
and validators in their own namespaces agree at 100 ms with loss, through a minority
partition (which catches up) and through a 2|2 split (no quorum: no commits until healed).

The plans, partitions and directory edits are checked everywhere; the rest needs root,
/dev/net/tun and `ip netns`, and without them is skipped with the reason. Each run is
bounded (subprocess and pytest timeouts); the file takes about two minutes on 2 cores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mcnode.localnet.init import init_network, rehost, scp_timeouts_of, set_scp_timeouts
from mcnode.localnet.netns import (
    NetnsError,
    NetnsRun,
    cleanup,
    matrix_plan,
    node_address,
    parse_loss,
    parse_partition,
    scp_timeouts,
    uniform_plan,
    why_not_available,
)

REASON = why_not_available()
needs_netns = pytest.mark.skipif(REASON is not None, reason=REASON or "")
SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _namespaces(run_id: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.startswith(f"mcn-{run_id}-")]


_PEER = r"""
import socket, sys, time
mode, addr = sys.argv[1], sys.argv[2]
if mode == "tcp-server":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 9000)); s.listen(); c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (d := c.recv(100)):
        c.sendall(d)
elif mode == "tcp-echo":
    c = socket.create_connection((addr, 9000), timeout=20)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    xs = []
    for _ in range(30):
        t = time.monotonic(); c.sendall(b"x"); c.recv(10); xs.append(time.monotonic() - t)
    print(sorted(xs)[15] * 1000)
elif mode == "udp-count":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((addr, 9001))
    s.settimeout(1.5); n = 0
    try:
        while True:
            s.recv(100); n += 1
    except TimeoutError:
        print(n)
else:  # udp-send
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(int(sys.argv[3])):
        s.sendto(b"y", (addr, 9001)); time.sleep(0.0005)
"""


def _peer(tmp: Path, net: NetnsRun, node: str, *args: str) -> list[str]:
    script = tmp / "peer.py"
    script.write_text(_PEER)
    return [*net.exec_prefix(node), sys.executable, str(script), *args]


@needs_netns
@pytest.mark.timeout(60)
def test_switch_delays_by_the_configured_rtt(tmp_path: Path) -> None:
    with NetnsRun(uniform_plan(["a", "b"], 100.0), tmp_path) as net:
        srv = subprocess.Popen(_peer(tmp_path, net, "b", "tcp-server", node_address(1)))
        try:
            time.sleep(0.5)
            r = subprocess.run(
                _peer(tmp_path, net, "a", "tcp-echo", node_address(1)),
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
        finally:
            srv.kill()
            srv.wait()
        rtt = float(r.stdout)
        assert 100.0 <= rtt <= 110.0, rtt  # never early; within 10% late
    assert _namespaces(net.run_id) == []


@needs_netns
@pytest.mark.timeout(60)
def test_switch_loss_and_one_way_cut(tmp_path: Path) -> None:
    plan = uniform_plan(["a", "b"], 0.0, loss=0.2)
    with NetnsRun(plan, tmp_path, seed=3) as net:

        def count(src: str, dst: str, n: int) -> int:
            ix = {"a": 0, "b": 1}
            rx = subprocess.Popen(
                _peer(tmp_path, net, dst, "udp-count", node_address(ix[dst])),
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(0.4)
            subprocess.run(
                _peer(tmp_path, net, src, "udp-send", node_address(ix[dst]), str(n)),
                check=True,
                timeout=30,
            )
            out, _ = rx.communicate(timeout=30)
            return int(out)

        got = count("a", "b", 1000)
        assert 700 <= got <= 880, got  # 20% loss, per packet
        net.set_cut({("a", "b")})  # a's packets to b are dropped, b's to a arrive
        assert count("a", "b", 200) == 0
        assert count("b", "a", 200) > 100
        st = net.stats()
        assert st is not None and st["pairs"]["a>b"]["cut"] == 200


@needs_netns
@pytest.mark.timeout(60)
def test_nothing_outlives_a_sigkilled_launcher(tmp_path: Path) -> None:
    code = (
        "import sys, time\nfrom pathlib import Path\n"
        "from mcnode.localnet.netns import NetnsRun, uniform_plan\n"
        "net = NetnsRun(uniform_plan(['node0', 'node1'], 50.0), Path(sys.argv[1]))\n"
        "net.__enter__(); print(net.run_id, flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=_env()
    )
    assert p.stdout is not None
    run_id = p.stdout.readline().strip()
    assert len(_namespaces(run_id)) == 3  # client, node0, node1
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 15
    while _namespaces(run_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _namespaces(run_id) == []  # the switch saw its launcher go and tore down
    # A leftover whose run record is gone (both killed at once): `cleanup` removes it.
    subprocess.run(["ip", "netns", "add", "mcn-0dead0-node0"], check=True)
    assert "mcn-0dead0-node0" in cleanup()
    assert _namespaces("0dead0") == []


def test_netns_without_root_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from mcnode.cli import main

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    r = CliRunner().invoke(main, ["localnet", "--netns", "--rtt-ms", "100", "--duration", "1"])
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "needs root" in r.output
    r = CliRunner().invoke(main, ["localnet", "--rtt-ms", "100"])
    assert r.exit_code == 2 and "only with --netns" in r.output


def run_netns(d: Path, *args: str, timeout: float = 150) -> dict[str, Any]:
    summary = d / "summary.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcnode",
            "localnet",
            "--netns",
            "--dir",
            str(d),
            "--no-live",
            "--json-summary",
            str(summary),
            "--seed",
            "1",
            "--tx-rate",
            "5",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(),
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    s: dict[str, Any] = json.loads(summary.read_text())
    # No fork, ever: every validator ends on the same block at the same height, and the
    # load generator (which verifies every block it syncs) saw one chain.
    assert len({n["last_block_id"] for n in s["nodes"]}) == 1, s["nodes"]
    assert len({n["block_height"] for n in s["nodes"]}) == 1, s["nodes"]
    assert s["nodes"][0]["block_height"] == s["blocks"]
    assert s["supply_conserved"] is True
    assert s["committed_txs"] > 0
    for n in s["nodes"]:
        assert set(n["commit_latency_ms"]) == {"p50", "p99", "count"}
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "mcn-" + json.loads((d / "netns-run.json").read_text())["run"] not in out
    return s


@needs_netns
@pytest.mark.timeout(200)
def test_four_validators_agree_at_100ms_with_loss(tmp_path: Path) -> None:
    s = run_netns(tmp_path / "net", "--rtt-ms", "100", "--loss", "1%", "--duration", "20")
    net = s["network"]
    assert (net["mode"], net["rtt_ms"], net["loss"]) == ("netns/uniform", 100.0, 0.01)
    lost = sum(p["lost"] for p in net["switch"]["pairs"].values())
    assert lost > 0  # loss happened, TCP recovered
    assert 100 <= s["latency_ms"]["p50"] <= 2000, s["latency_ms"]
    assert s["committed_txs"] >= 0.8 * s["submitted_txs"]
    # The directory is back on loopback: a plain localnet run reuses it.
    toml = (tmp_path / "net" / "node0" / "node.toml").read_text()
    assert "10.77." not in toml and "127.0.0.1" in toml


@needs_netns
@pytest.mark.timeout(200)
def test_minority_partition_does_not_stop_commits_and_catches_up(tmp_path: Path) -> None:
    s = run_netns(
        tmp_path / "net",
        "--rtt-ms",
        "50",
        "--duration",
        "24",
        "--partition",
        "node3|node0,node1,node2",
        "--partition-at",
        "4",
        "--heal-at",
        "14",
    )
    (p,) = s["network"]["partitions"]
    assert p["spec"] == "node3|node0,node1,node2" and not p["one_way"]
    assert p["blocks_while_cut"] > 0, p  # the majority has a quorum
    h = p["heights_at_heal"]
    assert h["node3"] < min(h["node0"], h["node1"], h["node2"]), p  # node3 was cut off
    assert p["caught_up_after_heal_s"] is not None, p
    assert p["caught_up_after_heal_s"] < 5, p  # keepalive redials a cut link (README)


@needs_netns
@pytest.mark.timeout(200)
def test_two_two_split_stops_commits_until_healed(tmp_path: Path) -> None:
    s = run_netns(
        tmp_path / "net",
        "--rtt-ms",
        "50",
        "--duration",
        "26",
        "--partition",
        "node0,node1|node2,node3",
        "--partition-at",
        "4",
        "--heal-at",
        "14",
    )
    (p,) = s["network"]["partitions"]
    assert p["blocks_while_cut"] == 0, p  # no quorum on either side
    h = p["heights_at_heal"].values()
    assert max(h) - min(h) <= 1, p  # a slot may have ended on one side only; not a fork
    assert p["blocks_after_heal"] > 0, p  # and commits resumed
    assert s["committed_txs"] == s["submitted_txs"] - sum(s["rejected_txs"].values())


# -- without root: plans, partitions, the directory ---------------------------------------

NAMES = ["node0", "node1", "node2", "node3"]
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wan" / "aws-4-regions.json"


def test_partitions_parse_both_ways_and_one_way() -> None:
    p = parse_partition("node0,node1|node2,node3", 5, 15, NAMES)
    assert p.pairs() == {(a, b) for a in NAMES for b in NAMES if (a < "node2") != (b < "node2")}
    q = parse_partition("node3>node0,node1", 1, None, NAMES)
    assert q.one_way and q.pairs() == {("node3", "node0"), ("node3", "node1")}
    for bad in ("node0|node0", "node0", "node9|node1", "|node1"):
        with pytest.raises(NetnsError):
            parse_partition(bad, 1, 2, NAMES)
    with pytest.raises(NetnsError):
        parse_partition("node0|node1", 5, 4, NAMES)
    assert parse_loss("1%") == parse_loss("0.01") == 0.01
    with pytest.raises(NetnsError):
        parse_loss("1.5")


def test_example_matrix_gives_each_pair_its_regions_round_trip() -> None:
    plan = matrix_plan(NAMES, EXAMPLE)
    assert plan.rtt_ms[("node0", "node3")] == plan.rtt_ms[("node3", "node0")] == 217.0
    assert plan.max_rtt_ms() == 239.0
    links = plan.links()
    assert links[("node1", "node2")].delay_s == 0.0685  # half of 137 ms, each way
    assert links[("client", "node0")].delay_s == 0.0
    s = plan.summary()
    assert s["mode"] == "netns/matrix" and s["regions"]["node3"] == "ap-southeast"
    u = uniform_plan(NAMES, 100.0, 5.0, 0.01)
    assert {lk.delay_s for lk in u.links().values()} == {0.05, 0.0}
    assert u.summary()["rtt_ms"] == 100.0


def test_scp_timeouts_scale_only_beyond_loopback_figures() -> None:
    assert (
        scp_timeouts(0)
        == scp_timeouts(100)
        == {
            "nomination_timeout": 0.25,
            "nomination_timeout_increment": 0.25,
            "ballot_timeout": 0.5,
            "ballot_timeout_increment": 0.5,
        }
    )
    assert scp_timeouts(200)["ballot_timeout"] == 1.0


def test_rehost_moves_the_nodes_and_back(tmp_path: Path) -> None:
    d = tmp_path / "net"
    init_network(d, nodes=3, attestation=False, accounts=2)
    before = {f: f.read_text() for f in [d / "network.json", *d.glob("node*/node.toml")]}
    rehost(d, {"node0": "10.77.0.10", "node1": "10.77.0.11", "node2": "10.77.0.12"})
    toml = (d / "node1" / "node.toml").read_text()
    assert 'peer = "10.77.0.11:' in toml and "mcp://10.77.0.10:" in toml
    assert "127.0.0.1" not in toml
    had = scp_timeouts_of(d, "node0")
    set_scp_timeouts(d, scp_timeouts(200))
    assert scp_timeouts_of(d, "node2")["ballot_timeout"] == 1.0
    set_scp_timeouts(d, had)
    rehost(d, {})
    assert {f: f.read_text() for f in before} == before
