"""The operator's view of a real running network: the stellar-core-style endpoints, the
status page in a real browser (Debian's chromium, headless), and quorum health as
validators are stopped. One 4-validator network (mesh: each trusts 2 of its 3 peers, 3 of
4 with itself) is shared by the tests of this file; the last one stops two validators."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mcnode.localnet.procs import Cluster, http_json
from mcnode.transaction.tx import Tx
from netutil import build_txs, key_images_in, make_net, submit

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Net:
    def __init__(self, d: Path, cluster: Cluster, txs: list[Tx]) -> None:
        self.dir = d
        self.cluster = cluster
        self.txs = txs
        self.admin = cluster.node("node0").admin

    def get(self, path: str, node: str = "node0") -> Any:
        return http_json(f"http://{self.cluster.node(node).admin}{path}", timeout=5)

    def pay(self, n: int, timeout: float = 30.0) -> None:
        """`n` more payments, spread over the nodes (each tx used once), committed in
        node0's ledger when this returns."""
        paid = [self.txs.pop() for _ in range(n)]
        for i, tx in enumerate(paid):
            assert submit(self.cluster, f"node{i % 4}", tx).ok
        images = [k for tx in paid for k in tx.key_images]
        wait_for(
            f"{n} payments committed",
            lambda: all(key_images_in(self.dir, "node0", images)),
            timeout,
        )

    def height(self) -> int:
        return int(self.get("/info")["ledger"]["height"])


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    d = tmp_path_factory.mktemp("status-net")
    cluster = make_net(d)
    txs = build_txs(d, 12)
    try:
        cluster.start()
        yield Net(d, cluster, txs)
    finally:
        cluster.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll `check` until it returns something truthy (bounded); that value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not after {timeout} s (last: {last!r})")


def view_when(net: Net, path: str, what: str, ok: Callable[[Any], bool]) -> Any:
    """node0's `path` once `ok` holds for it (bounded): links come up, and go down, within
    a second or two of a peer starting or stopping."""

    def check() -> Any:
        view = net.get(path)
        return view if ok(view) else None

    return wait_for(what, check)


def test_info_quorum_peers_scp_and_history_describe_a_running_network(net: Net) -> None:
    start = net.height()
    net.pay(4)
    # Links to the peer that started last may still be inside gRPC's reconnect backoff.
    q = view_when(net, "/quorum", "every member agrees", lambda q: q["counts"]["agree"] == 3)
    assert q["fail_at"] == 2 and q["quorum"] is True, q
    assert q["line"] == "quorum: 4 reachable, 3 needed; 2 more failures would leave no quorum"
    said = q["members"]["node1"]["last_said"]
    assert said["slot"] >= 1 and said["statement"] in (
        "Nominate",
        "NominatePrepare",
        "Prepare",
        "Commit",
        "Externalize",
    )
    info = net.get("/info")
    assert info["state"] == "synced" and info["healthy"] is True, info
    assert info["activity"] == "idle" and info["pending_txs"] == 0
    assert info["ledger"]["height"] == info["ledger"]["last_index"] + 1 > start
    assert info["ledger"]["age_s"] is not None and info["ledger"]["age_s"] < 60
    assert info["peers"] == {"configured": 3, "connected": 3, "attested": 3}
    assert info["enclave"]["mode"] == "sim" and info["enclave"]["notice"].startswith("SIMULATED")
    assert len(info["enclave"]["mrenclave"]) == 64
    # The transitive view: every node's quorum set is known, and all quorums intersect.
    t = net.get("/quorum?transitive=true")["transitive"]
    assert set(t["nodes"]) == {"node1", "node2", "node3"} and t["intersection"] is True
    peers = net.get("/peers")["peers"]
    assert [p["name"] for p in peers] == ["node1", "node2", "node3"]
    assert all(p["link"] == "up" and p["attested"] and len(p["mrenclave"]) == 64 for p in peers)
    scp = net.get("/scp?limit=3")
    assert 1 <= len(scp["slots"]) <= 3
    newest = scp["slots"][0]
    assert newest["slot"] == info["ledger"]["last_index"] and newest["txs"] >= 1
    assert 0 <= newest["nomination_s"] <= newest["total_s"]
    assert scp["current"]["slot"] == newest["slot"] + 1
    hist = net.get("/history")
    assert len(hist["blocks"]) == 360 and hist["end"] - hist["start"] == 3600
    assert sum(hist["blocks"]) == len([s for s in net.get("/scp?limit=100")["slots"]])
    assert sum(hist["txs"]) >= 4
    metrics = _NO_PROXY.open(f"http://{net.admin}/metrics", timeout=5).read().decode()
    assert "mcnode_quorum_fail_at 2.0" in metrics
    assert "mcnode_quorum_members_missing 0.0" in metrics


# -- the page in a browser -----------------------------------------------------------------
def dump_dom(net: Net, profile: Path, budget_ms: int = 5000) -> str:
    """The status page's DOM after `budget_ms` of (virtual) time in headless chromium."""
    assert CHROMIUM is not None
    r = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            f"http://{net.admin}/",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert r.returncode == 0 and "<body" in r.stdout, r.stderr[-2000:]
    return r.stdout.split("<script")[0]  # what is shown, not the code that shows it


def text_of(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert m, f"no element #{element_id}"
    return m.group(1)


def chart_points(dom: str, chart: str) -> list[tuple[float, float]]:
    svg = re.search(rf'<svg id="{chart}".*?</svg>', dom, re.S)
    assert svg, f"no chart {chart}"
    path = re.search(r'<path class="series" d="([^"]+)"', svg.group(0))
    assert path, f"chart {chart} has no series path"
    nums = [float(x) for x in re.findall(r"-?[0-9.]+", path.group(1))]
    return list(zip(nums[::2], nums[1::2], strict=True))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_status_page_renders_peers_height_and_charts_and_updates(net: Net, tmp_path: Path) -> None:
    net.pay(2)
    first = dump_dom(net, tmp_path / "profile")
    height1 = int(text_of(first, "height"))
    assert height1 >= 2
    assert int(text_of(first, "ticks")) >= 2  # the page refreshed itself within the dump
    # The peers table: one row per peer, link up, attested, MRENCLAVE shown.
    rows = re.findall(r'<tr data-peer="(node[0-9])">(.*?)</tr>', first, re.S)
    assert [name for name, _ in rows] == ["node1", "node2", "node3"], rows
    for _, row in rows:
        assert '<td class="ok">up</td>' in row and '<td class="ok">yes</td>' in row, row
        assert re.search(r"<code>[0-9a-f]{16}…</code>", row), row
    # Quorum health, sync, the simulation banner.
    assert text_of(first, "fail-at") == "2"
    assert text_of(first, "sync") == "synced"
    assert "SIMULATED: no hardware protection" in text_of(first, "sim-notice")
    assert 'id="no-quorum"' not in first
    # The charts: a point per 10 s bucket of the last hour, the blocks just made above the
    # baseline (smaller y is higher in SVG), and a bar per decided slot.
    for chart in ("chart-blocks", "chart-txs"):
        pts = chart_points(first, chart)
        assert len(pts) == 360, (chart, len(pts))
        baseline = max(y for _, y in pts)
        assert min(y for _, y in pts) < baseline, chart
    assert len(re.findall(r"<rect ", first)) >= 2 * 2  # nomination + ballot per slot

    # More payments: a new page load shows the new height.
    net.pay(2)
    second = dump_dom(net, tmp_path / "profile")
    assert int(text_of(second, "height")) > height1


# -- stopping validators -------------------------------------------------------------------
def test_stopped_validators_read_missing_fail_at_drops_then_no_quorum(
    net: Net, tmp_path: Path
) -> None:
    q = view_when(net, "/quorum", "every member agrees", lambda q: q["counts"]["agree"] == 3)
    assert q["fail_at"] == 2
    net.cluster.node("node3").stop()
    q = view_when(
        net, "/quorum", "node3 missing", lambda q: q["members"]["node3"]["verdict"] == "missing"
    )
    assert q["members"]["node3"]["why"] == "link down"
    assert q["members"]["node3"]["link"] == "down"
    assert q["fail_at"] == 1 and q["quorum"] is True
    assert [q["members"][n]["verdict"] for n in ("node1", "node2")] == ["agree", "agree"]
    info = net.get("/info")
    assert info["quorum"] is True and info["quorum_health"]["missing"] == ["node3"]
    assert info["quorum_health"]["fail_at"] == 1

    net.cluster.node("node2").stop()
    info = view_when(net, "/info", "no quorum", lambda i: not i["quorum"])
    assert info["quorum_line"] == (
        "no quorum: 2 of 3 needed are reachable "
        "(reachable: this node, node1; missing: node2, node3)"
    )
    assert info["healthy"] is False and info["summary"].startswith("NOT HEALTHY")
    assert "no quorum: 2 of 3 needed are reachable" in info["summary"]
    assert info["quorum_health"]["fail_at"] == 0
    assert info["quorum_health"]["missing"] == ["node2", "node3"]
    metrics = _NO_PROXY.open(f"http://{net.admin}/metrics", timeout=5).read().decode()
    assert "mcnode_quorum_fail_at 0.0" in metrics
    assert "mcnode_quorum_members_missing 2.0" in metrics
    if CHROMIUM is not None:  # the page says it too, in a banner
        dom = dump_dom(net, tmp_path / "profile", budget_ms=2500)
        assert text_of(dom, "no-quorum").startswith("no quorum: 2 of 3 needed are reachable")
