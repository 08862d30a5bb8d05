"""Quorum health (node/health.py), the operator's ring buffers (node/history.py) and the
admin server's new endpoints (node/admin.py) against fake views: no sockets but the admin
app's own, no processes, a clock the test sets."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host_fakes import KEYS, Rig, tx
from mcnode.node import admin
from mcnode.node.health import (
    DELAYED_AFTER_S,
    MISSING_AFTER_S,
    Observations,
    Verdict,
    closure,
    fail_at,
    report,
)
from mcnode.node.history import (
    LoggedWarning,
    RateHistory,
    SlotLog,
    SlotRecord,
    WarningLog,
)
from mcnode.node.logs import NodeLog
from mcnode.node.messages import sign_msg
from mcnode.node.metrics import NodeMetrics
from mcnode.scp import Ballot, Externalize, Nominate, Prepare, QuorumSet

FAST = settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
T0 = 1_800_000_000.0  # a wall time
V1, V2 = (b"\x01" * 32,), (b"\x02" * 32,)


# -- fail_at --------------------------------------------------------------------------------
@st.composite
def quorum_sets(draw: st.DrawFn, depth: int = 2) -> QuorumSet:
    """A valid nested quorum set over distinct ids n0, n1, ... (at most ~9 nodes)."""
    counter = itertools.count()

    def build(level: int) -> QuorumSet:
        members: list[Any] = []
        for _ in range(draw(st.integers(1, 4))):
            if level < depth and draw(st.integers(0, 3)) == 0:
                members.append(build(level + 1))
            else:
                members.append(f"n{next(counter)}")
        return QuorumSet(draw(st.integers(1, len(members))), members)

    q = build(0)
    q.validate()
    return q


def brute_force_fail_at(q: QuorumSet, me: str, failed: set[str]) -> int | None:
    """The fewest further failures among the available nodes after which `q` (with `me`
    implicit) is no longer satisfied, by trying every set in order of size."""
    available = sorted(q.nodes() - failed - {me})
    for k in range(len(available) + 1):
        for extra in itertools.combinations(available, k):
            left = (q.nodes() - failed - set(extra)) | {me}
            if not q.is_satisfied_by(left):
                return k
    return None


@FAST
@given(q=quorum_sets(), data=st.data())
def test_fail_at_is_the_brute_force_minimum(q: QuorumSet, data: st.DataObject) -> None:
    nodes = sorted(q.nodes())
    failed = set(data.draw(st.lists(st.sampled_from(nodes), unique=True)))
    # Sometimes the node itself is listed in its own set: it is implicit, never a failure.
    me = data.draw(st.sampled_from([*nodes, "me"]))
    failed.discard(me)
    assert fail_at(q.normalized(remove=me), failed) == brute_force_fail_at(q, me, failed)


def test_fail_at_of_a_four_node_mesh_drops_by_one_per_missing_member() -> None:
    q = QuorumSet(2, ["b", "c", "d"])  # 3 of 4 with ourselves
    assert [fail_at(q, set(f)) for f in ((), ("b",), ("b", "c"), ("b", "c", "d"))] == [2, 1, 0, 0]


def test_fail_at_counts_a_nested_set_as_one_member() -> None:
    # 2 of {a, {2 of x, y, z}}: losing a leaves the inner set, which two failures block.
    q = QuorumSet(2, ["a", QuorumSet(2, ["x", "y", "z"])])
    assert fail_at(q, set()) == 1
    assert fail_at(QuorumSet(1, ["a", QuorumSet(2, ["x", "y", "z"])]), {"a"}) == 2


def test_a_node_that_needs_no_peer_cannot_be_stopped_by_others() -> None:
    rep = report("solo", QuorumSet(1, ["solo"]), [])
    assert rep.fail_at is None and rep.has_quorum
    assert "needs no peer" in rep.line


# -- verdicts -------------------------------------------------------------------------------
def judge(obs: Observations, node: str = "b", **kw: Any) -> Any:
    args: dict[str, Any] = {"link_up": True, "blocks": 0, "now": T0, "busy_for": None}
    args.update(kw)
    return obs.judge(node, **args)


def externalize(values: tuple[bytes, ...]) -> Externalize:
    return Externalize(Ballot(1, values), 1)


def test_a_member_whose_link_is_down_is_missing() -> None:
    obs = Observations()
    obs.heard("b", 5, Nominate(frozenset(V1), frozenset()), T0 - 1)
    m = judge(obs, link_up=False)
    assert m.verdict is Verdict.MISSING and m.why == "link down"
    assert m.said is not None and m.said.statement == "Nominate" and m.said_ago_s == 1.0


def test_a_quiet_member_of_an_idle_network_agrees_and_a_quiet_one_of_a_busy_slot_is_missing() -> (
    None
):
    obs = Observations()
    obs.heard("b", 5, externalize(V1), T0 - 100)
    assert judge(obs).verdict is Verdict.AGREE  # idle: nobody speaks
    assert judge(obs, busy_for=MISSING_AFTER_S - 1).verdict is Verdict.AGREE  # not long yet
    m = judge(obs, busy_for=MISSING_AFTER_S + 1)
    assert m.verdict is Verdict.MISSING and "silent for 100 s" in m.why
    obs.heard("b", 6, Prepare(Ballot(1, V1), None, None, 0, 0), T0 - 1)
    assert judge(obs, busy_for=MISSING_AFTER_S + 1).verdict is Verdict.AGREE


def test_a_node_we_do_not_link_to_and_never_heard_is_missing() -> None:
    m = judge(Observations(), "stranger", link_up=None)
    assert m.verdict is Verdict.MISSING and "not one of our peers" in m.why
    assert m.to_json()["link"] is None


def test_a_member_that_externalized_other_values_disagrees_until_it_matches_us_again() -> None:
    obs = Observations()
    obs.decided(5, V1, T0 - 2)
    obs.heard("b", 5, externalize(V2), T0 - 1)
    m = judge(obs)
    assert m.verdict is Verdict.DISAGREE and "slot 5" in m.why
    assert judge(obs, link_up=False).verdict is Verdict.MISSING  # a down link says more
    obs.decided(6, V2, T0)
    obs.heard("b", 6, externalize(V2), T0)
    assert judge(obs).verdict is Verdict.AGREE


def test_a_member_building_on_another_chain_disagrees() -> None:
    obs = Observations()
    obs.decided(5, V1, T0 - 2)
    obs.heard("b", 5, externalize(V1), T0 - 2)
    obs.other_chain("b", 7)  # its slot-7 message names a block 6 that is not ours
    assert judge(obs).verdict is Verdict.DISAGREE


def test_a_member_behind_our_decisions_is_delayed_after_a_grace() -> None:
    obs = Observations()
    obs.heard("b", 4, externalize(V1), T0 - 30)
    obs.decided(5, V1, T0 - 1)
    assert judge(obs).verdict is Verdict.AGREE  # our decision is fresh: it may be in flight
    m = judge(obs, now=T0 + DELAYED_AFTER_S)
    assert m.verdict is Verdict.DELAYED and m.decided == 4
    # Its height, asked by catch-up, shows it caught up without a word of SCP.
    assert judge(obs, now=T0 + DELAYED_AFTER_S, blocks=6).verdict is Verdict.AGREE


def test_no_quorum_line_counts_this_node_and_names_who_is_missing() -> None:
    obs = Observations()
    q = QuorumSet(2, ["b", "c", "d"])
    members = [
        judge(obs, "b"),
        judge(obs, "c", link_up=False),
        judge(obs, "d", link_up=False),
    ]
    rep = report("a", q, members)
    assert not rep.has_quorum and rep.fail_at == 0
    assert rep.line == (
        "no quorum: 2 of 3 needed are reachable (reachable: this node, b; missing: c, d)"
    )
    ok = report("a", q, [judge(obs, n) for n in "bcd"])
    assert ok.fail_at == 2
    assert ok.line == "quorum: 4 reachable, 3 needed; 2 more failures would leave no quorum"
    body = ok.to_json()
    assert body["counts"] == {"agree": 3, "delayed": 0, "missing": 0, "disagree": 0}
    assert set(body["members"]) == {"b", "c", "d"}


def test_closure_follows_known_quorum_sets() -> None:
    known = {"b": QuorumSet(1, ["x"]), "x": QuorumSet(1, ["y"])}
    assert closure(QuorumSet(1, ["b", "c"]), known) == ["b", "c", "x", "y"]


# -- the host feeds them ----------------------------------------------------------------------
def test_the_host_records_what_peers_said_and_what_it_decided(tmp_path: Path) -> None:
    t = tx(7)

    async def go() -> None:
        rig = Rig(tmp_path)
        rig.enclave.txs[t.tx_hash] = t
        rig.host.pool.add(t)
        for peer in ("n1", "n2"):
            msg = rig.msg(peer, 1, externalize((t.tx_hash,)))
            rig.host.receive(rig.wire(peer, msg), peer)
        await rig.spawned.drain()
        assert rig.ledger.num_blocks() == 2
        now = 1_700_000_000.0 + rig.t[0]
        (rec,) = rig.host.slot_log.recent(5)
        assert (rec.slot, rec.txs) == (1, 1) and rec.total_s >= 0
        series = rig.host.rates.series(now)
        assert (sum(series["blocks"]), sum(series["txs"])) == (1, 1)
        obs = rig.host.observed
        assert obs.last_decided() == (1, now)
        agree = obs.judge("n1", link_up=True, blocks=0, now=now, busy_for=None)
        assert agree.verdict is Verdict.AGREE and agree.decided == 1
        assert agree.said is not None and agree.said.statement == "Externalize"
        # n3 speaks on another chain: it disagrees.
        other = rig.msg("n3", 2, Nominate(frozenset({tx(8).tx_hash}), frozenset()))
        rig.host.receive(sign_msg(other, b"\x99" * 32, KEYS["n3"][0], "n3"), "n3")
        m = obs.judge("n3", link_up=True, blocks=0, now=now, busy_for=None)
        assert m.verdict is Verdict.DISAGREE, m

    asyncio.run(go())


# -- history --------------------------------------------------------------------------------
def test_rate_history_buckets_zero_what_time_skipped_and_forget_the_past() -> None:
    h = RateHistory(("blocks", "txs"), bucket_s=10, buckets=6)
    h.add(100.0, blocks=1, txs=3)
    h.add(105.0, blocks=1, txs=2)
    h.add(125.0, blocks=1)
    s = h.series(130.0)
    assert (s["start"], s["end"], s["bucket_s"]) == (80, 140, 10)
    assert s["blocks"] == [0, 0, 2, 0, 1, 0] and s["txs"] == [0, 0, 5, 0, 0, 0]
    h.add(121.0, blocks=4)  # late, but inside the window: its own bucket
    h.add(50.0, blocks=9)  # older than the window: dropped
    assert h.series(130.0)["blocks"] == [0, 0, 2, 0, 5, 0]
    assert h.series(160.0)["blocks"] == [0, 5, 0, 0, 0, 0]  # 100-110 fell out
    assert h.series(10_000.0)["blocks"] == [0] * 6  # a long silence zeroes every bucket
    with pytest.raises(ValueError):
        RateHistory(("x",), bucket_s=0)


def test_slot_log_and_warning_log_keep_only_the_newest() -> None:
    log = SlotLog(size=3)
    for i in range(5):
        log.add(SlotRecord(i, T0 + i, 1, 0.5, {"NOMINATE": 0.2}, 1, 1))
    assert [r.slot for r in log.recent(10)] == [4, 3, 2]
    assert [r.slot for r in log.recent(2)] == [4, 3]
    j = log.recent(1)[0].to_json()
    assert j["nomination_s"] == 0.2 and j["ballot_s"] == 0.3
    w = WarningLog(size=2)
    for i in range(3):
        w.add(LoggedWarning(T0, "warning", f"e{i}", {}))
    assert [x.event for x in w.recent()] == ["e2", "e1"]


def test_node_log_keeps_warnings_whatever_the_level() -> None:
    log = NodeLog("n0")
    log.info("fine")
    log.warning("peer unreachable", peer="b", key=b"\xab" * 32)
    log.error("boom", where="x")
    got = [w.to_json() for w in log.warnings.recent()]
    assert [(g["level"], g["event"]) for g in got] == [
        ("error", "boom"),
        ("warning", "peer unreachable"),
    ]
    assert got[1]["fields"] == {"peer": "b", "key": "ab" * 8}


# -- the admin app --------------------------------------------------------------------------
def fake_views(calls: list[Any]) -> admin.Views:
    def rec(name: str) -> Any:
        def f(*args: Any) -> Any:
            calls.append((name, *args))
            return {"view": name, "args": list(args)}

        return f

    return admin.Views(
        status=rec("status"),
        info=rec("info"),
        quorum=rec("quorum"),
        peers=rec("peers"),
        scp_recent=rec("scp_recent"),
        scp_slot=lambda slot: None if slot > 10 else {"slot": slot},
        history=rec("history"),
        warnings=rec("warnings"),
    )


async def _requests(paths: list[str]) -> tuple[list[tuple[int, str]], list[Any]]:
    calls: list[Any] = []
    app = admin.make_app("n0 <&>", fake_views(calls), NodeMetrics(), NodeLog("n0"))
    async with TestClient(TestServer(app)) as client:
        out = []
        for p in paths:
            r = await client.get(p)
            out.append((r.status, await r.text()))
    return out, calls


def test_admin_endpoints_answer_and_pass_their_parameters() -> None:
    paths = [
        "/info",
        "/quorum",
        "/quorum?transitive=true",
        "/peers",
        "/scp",
        "/scp?limit=100",
        "/history",
        "/warnings",
        "/status?anything=1",  # /status keeps taking what it always took
        "/scp/3",
    ]
    answers, calls = asyncio.run(_requests(paths))
    assert [a[0] for a in answers] == [200] * len(paths), answers
    assert ("quorum", False) in calls and ("quorum", True) in calls
    assert ("scp_recent", 10) in calls and ("scp_recent", 100) in calls
    assert json.loads(answers[-1][1]) == {"slot": 3}


def test_status_page_names_its_node_escaped() -> None:
    ((status, page),), _ = asyncio.run(_requests(["/"]))
    assert status == 200
    assert "<title>mcnode n0 &lt;&amp;&gt;</title>" in page and "__NODE_NAME__" not in page


@pytest.mark.parametrize(
    ("path", "sentence"),
    [
        ("/scp?limit=0", "limit must be a whole number from 1 to 100, not '0'"),
        ("/scp?limit=101", "limit must be a whole number from 1 to 100, not '101'"),
        ("/scp?limit=abc", "limit must be a whole number from 1 to 100, not 'abc'"),
        ("/scp?limit=%D9%A3", "limit must be a whole number from 1 to 100"),  # Arabic-Indic 3
        ("/scp?limit=", "limit must be a whole number from 1 to 100, not ''"),
        ("/scp?limit=1&limit=2", "query parameter 'limit' is given more than once"),
        ("/scp?lmit=5", "unknown query parameter 'lmit': /scp takes limit (1 to 100)"),
        ("/quorum?transitive=yes", "transitive must be true or false, not 'yes'"),
        ("/info?verbose=1", "unknown query parameter 'verbose': /info takes no parameters"),
        ("/?x=1", "unknown query parameter 'x'"),
    ],
)
def test_bad_query_values_are_a_400_with_one_clear_sentence(path: str, sentence: str) -> None:
    (answer,), calls = asyncio.run(_requests([path]))
    assert answer[0] == 400 and answer[1].startswith(sentence), answer
    assert answer[1].count("\n") == 1
    assert not calls  # no view was computed for a bad request


def test_an_unknown_slot_is_a_404() -> None:
    (answer,), _ = asyncio.run(_requests(["/scp/11"]))
    assert answer == (404, "slot 11 is not kept in memory\n")


# -- the status page file -------------------------------------------------------------------
def test_status_page_is_package_data_and_loads_nothing_from_elsewhere() -> None:
    page = admin.status_page().decode("utf-8")
    assert page.startswith("<!doctype html>")
    # Every URL the page names is a path on the node itself (the SVG namespace is a name,
    # not a load).
    urls = re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']*)""", page)
    urls += re.findall(r"""fetch\(\s*["'`]([^"'`]*)""", page)
    urls += re.findall(r"url\(([^)]*)\)", page) + re.findall(r"@import", page)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}
    for path in ("/info", "/quorum", "/peers", "/history", "/scp?limit=", "/warnings"):
        assert path in page, path


def test_status_page_file_would_be_packaged() -> None:
    """maturin puts every file under src/mcnode in the wheel unless git ignores it."""
    git = shutil.which("git")
    root = Path(__file__).resolve().parents[1]
    if git is None or not (root / ".git").exists():
        pytest.skip("not a git checkout: nothing to ask git")
    path = root / "src" / "mcnode" / "node" / "static" / "status.html"
    r = subprocess.run(
        [git, "-C", str(root), "check-ignore", "-q", str(path)], check=False, timeout=30
    )
    assert r.returncode == 1, "status.html is ignored by git, so maturin would leave it out"
