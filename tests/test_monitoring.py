"""The monitoring kit in deploy/: Prometheus alert rules and their promtool unit tests, the
Grafana dashboard, and a live network's /metrics as promtool lints it and as the rules
judge it. Tests that run promtool skip, saying why, where it is not installed (Debian's
`prometheus` package has it; .ci/run installs it)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from host_fakes import Rig
from mcnode.localnet.procs import Cluster
from mcnode.node.metrics import NodeMetrics
from netutil import build_txs, key_images_in, make_net, submit

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "mcnode-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "mcnode-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "mcnode-dashboard.json"
# Quorum-health gauges of the node's /quorum work (issue 17): the rules and the dashboard
# use them; they are accepted by name whether or not metrics.py has them yet.
QUORUM_GAUGES = frozenset({"mcnode_quorum_fail_at", "mcnode_quorum_members_missing"})
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not installed (Debian package `prometheus`; .ci/run installs it)",
)
_OP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    """Run promtool; its whole output, after asserting it exited 0."""
    assert PROMTOOL is not None
    r = subprocess.run(
        [PROMTOOL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    return out


def rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for g in groups for rule in g["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, PromQL with Grafana's variables) of every query on the dashboard."""
    return [
        (f"{p['title']} {t['refId']}", t["expr"])
        for p in dashboard()["panels"]
        for t in p.get("targets", [])
    ]


def registry_names() -> set[str]:
    """Every sample name the node's registry can expose."""
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
    }
    return {
        family.name + suffix
        for family in NodeMetrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def metric_names(text: str) -> set[str]:
    return set(re.findall(r"\bmcnode_[a-z0-9_]+", text))


# -- the shipped files -----------------------------------------------------------------------
def test_every_metric_the_rules_and_the_dashboard_name_exists() -> None:
    known = registry_names() | QUORUM_GAUGES
    in_rules = metric_names(RULES.read_text())  # expressions and the words to operators
    in_dashboard = metric_names(DASHBOARD.read_text())
    assert len(in_rules) >= 12 and len(in_dashboard) >= 20
    assert in_rules - known == set()
    assert in_dashboard - known == set()
    # Beside mcnode's own, the rules use only Prometheus's `up`.
    for rule in rules():
        bare = set(re.findall(r"\b([a-z_:][a-z0-9_:]*)\s*[{\[]", rule["expr"]))
        assert bare - known <= {"up"}, rule["alert"]


def test_every_alert_has_a_wait_a_severity_and_words_for_the_operator() -> None:
    seen = set()
    for rule in rules():
        name = rule["alert"]
        assert re.fullmatch(r"Mcnode[A-Z][A-Za-z]+", name), name
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), name
        severity = rule["labels"]["severity"]
        assert severity in ("warning", "critical"), name
        assert (name, severity) not in seen, name
        seen.add((name, severity))
        notes = rule["annotations"]
        assert set(notes) == {"summary", "description"}, name
        assert "{{ $labels.instance }}" in notes["summary"], name
        assert len(notes["description"]) > 120, name  # says what to do, not only what is wrong
    names = {n for n, _ in seen}
    for wanted in (
        "McnodeLedgerStalled",
        "McnodeBlocksBehind",
        "McnodePeerDown",
        "McnodeQuorumAtRisk",
        "McnodeNoQuorum",
        "McnodeAttestationEvidenceExpiring",
        "McnodeEnclaveRestarted",
        "McnodeCatchingUpTooLong",
        "McnodeErrors",
    ):
        assert wanted in names


def test_the_rule_tests_show_each_alert_firing_and_quiet() -> None:
    fired: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for group in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in group["alert_rule_test"]:
            if not case["exp_alerts"]:
                quiet.add(case["alertname"])
            for a in case["exp_alerts"]:
                fired.add((case["alertname"], a["exp_labels"]["severity"]))
    assert fired == {(r["alert"], r["labels"]["severity"]) for r in rules()}
    assert quiet == {r["alert"] for r in rules()}


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    out = promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(rules())} rules found" in out, out


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)


def test_the_dashboard_is_a_grafana_dashboard_of_the_node() -> None:
    d = dashboard()
    assert d["schemaVersion"] >= 36 and d["uid"] and d["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    instance = variables["instance"]
    assert instance["type"] == "query" and instance["includeAll"] and instance["multi"]
    assert instance["definition"] == "label_values(mcnode_ledger_blocks, instance)"
    panels = d["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    taken: dict[tuple[int, int], str] = {}  # no two panels overlap on the 24-column grid
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
        for cell in (
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        ):
            assert cell not in taken, (p["title"], taken.get(cell))
            taken[cell] = p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"], p["title"]
            assert 'instance=~"$instance"' in t["expr"], p["title"]  # follows the picker
    exprs = " ".join(e for _, e in dashboard_exprs())
    for shown in (
        "mcnode_ledger_blocks",  # height and block rate
        "mcnode_txs_committed_total",  # committed tx/s
        "mcnode_scp_phase_seconds_bucket",  # time by phase
        "mcnode_slot_seconds_bucket",
        "mcnode_pending_txs",
        "mcnode_peers_connected",
        "mcnode_quorum_fail_at",
        "mcnode_catching_up",
        "mcnode_requests_refused_total",
        "mcnode_enclave_restarts_total",
        "mcnode_ledger_last_block_timestamp_seconds",
    ):
        assert shown in exprs, shown


@needs_promtool
def test_the_dashboard_queries_are_promql(tmp_path: Path) -> None:
    """Each query, with Grafana's variables given values, as a recording rule that promtool
    parses."""
    grafana = {"$__rate_interval": "5m", "$__interval": "1m", "$instance": ".+"}
    records = []
    for i, (_, expr) in enumerate(dashboard_exprs()):
        for var, value in grafana.items():
            expr = expr.replace(var, value)
        assert "$" not in expr, expr
        records.append({"record": f"mcnode_dashboard:query{i}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    assert f"SUCCESS: {len(records)} rules found" in promtool("check", "rules", str(path))


# -- gauges read from the node ----------------------------------------------------------------
def test_blocks_behind_counts_what_the_most_advanced_peer_holds(tmp_path: Path) -> None:
    rig = Rig(tmp_path, blocks=5)
    catchup = rig.host.catchup
    assert catchup.blocks_behind() == 0  # no peer said anything yet: 0, never negative
    rig.peers["n1"].slot = 5  # speaking about the slot we are on
    assert catchup.blocks_behind() == 0
    rig.peers["n2"].slot = 9  # it holds blocks 0..8
    assert catchup.blocks_behind() == 4
    rig.peers["n3"].blocks = 12  # it said so when asked its height
    assert catchup.blocks_behind() == 7


def test_a_reading_has_no_sample_while_unknown() -> None:
    m = NodeMetrics()
    name = "mcnode_attestation_evidence_expiry_timestamp_seconds"
    assert m.registry.get_sample_value(name) is None
    assert f"# TYPE {name} gauge" in m.render().decode()
    expires: list[int | None] = [1_800_000_000]
    m.evidence_expiry.set_function(lambda: expires[0])
    assert m.registry.get_sample_value(name) == 1_800_000_000
    expires[0] = None
    assert m.registry.get_sample_value(name) is None


# -- a live network ----------------------------------------------------------------------------
def scrape(cluster: Cluster, node: str) -> str:
    with _OP.open(f"http://{cluster.node(node).admin}/metrics", timeout=5) as r:
        return r.read().decode()  # type: ignore[no-any-return]


def samples(text: str) -> dict[str, float]:
    """`name{a="x",b="y"}` (labels sorted) -> value, for every sample of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def wait_metrics(
    cluster: Cluster, node: str, want: dict[str, float], timeout: float = 20.0
) -> dict[str, float]:
    """`node`'s samples once every sample in `want` has its value (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        got = samples(scrape(cluster, node))
        if all(got.get(k) == v for k, v in want.items()):
            return got
        if time.monotonic() > deadline:
            raise AssertionError({k: got.get(k) for k in want})
        time.sleep(0.2)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, float]]:
    """Four validators on loopback that committed one payment: (cluster, start wall time).
    The tests below run in file order; the last one stops a validator."""
    d = tmp_path_factory.mktemp("monitoring")
    cluster = make_net(d)
    tx = build_txs(d, 1)[0]
    started = time.time()
    try:
        cluster.start()
        assert submit(cluster, "node0", tx).ok
        deadline = time.monotonic() + 60
        while not all(key_images_in(d, "node0", tx.key_images)):
            assert time.monotonic() < deadline, cluster.node("node0").tail_log()
            time.sleep(0.05)
        wait_metrics(cluster, "node0", {"mcnode_peers_connected": 3})
        yield cluster, started
    finally:
        cluster.close()


@needs_promtool
def test_promtool_finds_nothing_to_lint_in_a_live_nodes_metrics(
    live: tuple[Cluster, float],
) -> None:
    cluster, _ = live
    for node in cluster.nodes:
        text = scrape(cluster, node.name)
        assert "mcnode_slot_seconds_bucket" in text and "mcnode_txs_committed_total" in text
        assert promtool("check", "metrics", stdin=text) == "", node.name


def test_a_live_nodes_gauges_say_what_is_so(live: tuple[Cluster, float]) -> None:
    cluster, started = live
    m = samples(scrape(cluster, "node0"))
    now = time.time()
    assert m["mcnode_peers_configured"] == 3 and m["mcnode_peers_connected"] == 3
    for peer in ("node1", "node2", "node3"):
        assert m[f'mcnode_peer_connected{{peer="{peer}"}}'] == 1
    assert m["mcnode_ledger_blocks"] >= 2
    assert started - 2 <= m["mcnode_ledger_last_block_timestamp_seconds"] <= now + 2
    assert m["mcnode_ledger_blocks_behind"] == 0 and m["mcnode_catching_up"] == 0
    assert m["mcnode_enclave_up"] == 1 and m["mcnode_enclave_restarts_total"] == 0
    # localnet's enclaves make 30-day simulated collateral, issued an hour back.
    expiry = m["mcnode_attestation_evidence_expiry_timestamp_seconds"]
    assert now + 29 * 86400 < expiry <= now + 30 * 86400
    status = cluster.node("node0").status()
    assert status is not None and expiry == status["enclave"]["evidence_expires"]


# -- the rules on a live node's metrics ----------------------------------------------------
def _render(text: str, labels: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        key = m.group(1).strip()
        assert key.startswith("$labels."), f"template not handled here: {key}"
        return labels[key.removeprefix("$labels.")]

    return re.sub(r"\{\{(.*?)\}\}", one, text)


def judge(
    tmp: Path,
    instance: str,
    timeline: list[tuple[int, str, float]],
    at: int,
    fires: dict[str, list[dict[str, str]]],
) -> None:
    """Hold each /metrics snapshot of `timeline` (minutes, text, scrape wall time) in turn
    as promtool's input series of `instance`, and check that at minute `at` the alerts named
    in `fires` fire with exactly those labels (none for an empty list). Unix-time gauges
    are moved onto promtool's clock, which starts at 0."""
    series: dict[str, list[str]] = {}  # key -> one value a minute ("_": no sample)
    start = 0
    for minutes, text, wall in timeline:
        for key, value in samples(text).items():
            if key.partition("{")[0].endswith("_timestamp_seconds"):
                value = value - wall + start * 60
            held = series.setdefault(key, ["_"] * start)
            held += [repr(value) if math.isfinite(value) else "_"] * minutes
        start += minutes
        for held in series.values():  # absent from this snapshot
            held += ["_"] * (start - len(held))
    input_series = []
    for key, held in series.items():
        name, _, labels = key.partition("{")
        extra = f'instance="{instance}",job="mcnode"'
        inner = f"{labels[:-1]},{extra}" if labels else extra
        input_series.append({"series": f"{name}{{{inner}}}", "values": " ".join(held)})
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in rules():
        by_name.setdefault(rule["alert"], []).append(rule)
    cases = []
    for name, expected in fires.items():
        exp = []
        for labels in expected:
            candidates = [
                r
                for r in by_name[name]
                if labels.get("severity", r["labels"]["severity"]) == r["labels"]["severity"]
            ]
            assert len(candidates) == 1, (name, labels)
            full = {"instance": instance, "job": "mcnode", **labels, **candidates[0]["labels"]}
            notes = {k: _render(v, full) for k, v in candidates[0]["annotations"].items()}
            exp.append({"exp_labels": full, "exp_annotations": notes})
        cases.append({"eval_time": f"{at}m", "alertname": name, "exp_alerts": exp})
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": input_series, "alert_rule_test": cases}],
    }
    path = tmp / "live-rules.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    promtool("test", "rules", str(path))


@needs_promtool
def test_a_healthy_idle_network_raises_no_alert(
    live: tuple[Cluster, float], tmp_path: Path
) -> None:
    cluster, _ = live
    snapshot = (scrape(cluster, "node0"), time.time())
    # Twenty minutes of it: no payment waits, so the ageing ledger is no cause for alarm.
    judge(tmp_path, "node0", [(20, *snapshot)], 19, {r["alert"]: [] for r in rules()})


@needs_promtool
def test_a_stopped_peer_and_an_enclave_restart_raise_their_alerts(
    live: tuple[Cluster, float], tmp_path: Path
) -> None:
    cluster, _ = live
    node0 = cluster.node("node0")
    before = (scrape(cluster, "node0"), time.time())
    cluster.node("node3").stop()
    status = node0.status()
    assert status is not None
    os.kill(status["enclave"]["pid"], signal.SIGKILL)  # node0's enclave process
    m = wait_metrics(
        cluster,
        "node0",
        {
            'mcnode_peer_connected{peer="node3"}': 0,
            "mcnode_peers_connected": 2,
            "mcnode_enclave_restarts_total": 1,
            "mcnode_enclave_up": 1,
        },
        timeout=30,
    )
    assert m['mcnode_peer_connected{peer="node1"}'] == 1
    after = (scrape(cluster, "node0"), time.time())
    quiet = (
        "McnodeAllPeersDown",
        "McnodeEnclaveDown",
        "McnodeLedgerStalled",
        "McnodeBlocksBehind",
        "McnodeCatchingUpTooLong",
        "McnodeNoQuorum",
        "McnodeAttestationEvidenceExpiring",
        "McnodeTargetDown",
    )
    judge(
        tmp_path,
        "node0",
        [(10, *before), (10, *after)],
        19,
        {
            "McnodePeerDown": [{"peer": "node3"}],
            "McnodeEnclaveRestarted": [{}],
            **{name: [] for name in quiet},
        },
    )
