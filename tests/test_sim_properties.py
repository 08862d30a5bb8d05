"""Property tests and the safety sweep: no two honest nodes ever externalize different
values for a slot when the honest nodes enjoy quorum intersection despite the Byzantine ones;
and every honest node externalizes everything once faults stop, when the honest set is
intact. A failing seed is a bug: rerun it with `mcnode sim` to see it."""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mcnode.scp import ScpConfig
from mcnode.scp.quorum_set import QuorumSet
from mcnode.sim.byzantine import KINDS
from mcnode.sim.network import LinkModel, SimConfig, simulate
from mcnode.sim.topology import mesh
from sim_props import intact, intersects_despite

PROPS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


@st.composite
def networks(draw: st.DrawFn) -> tuple[dict[str, QuorumSet], frozenset[str], dict[str, str]]:
    n = draw(st.integers(3, 8))
    ids = [f"n{i}" for i in range(n)]
    qsets: dict[str, QuorumSet] = {}
    for me in ids:
        others = [x for x in ids if x != me]
        members = draw(st.lists(st.sampled_from(others), min_size=1, unique=True))
        lo = (len(members) + 1) // 2
        t = draw(st.integers(max(1, lo), len(members)))
        qsets[me] = QuorumSet(t, sorted(members))
    f = draw(st.integers(0, min(2, n - 2)))
    byz = frozenset(draw(st.lists(st.sampled_from(ids), min_size=f, max_size=f, unique=True)))
    kinds = {b: draw(st.sampled_from(KINDS)) for b in sorted(byz)}
    return qsets, byz, kinds


links = st.builds(
    LinkModel,
    latency_min=st.sampled_from([0.001, 0.01]),
    latency_max=st.sampled_from([0.02, 0.2, 1.5]),
    loss=st.sampled_from([0.0, 0.1, 0.3]),
    duplicate=st.sampled_from([0.0, 0.1]),
    faults_until=st.just(15.0),
)


def node_scp(node_rules: bool) -> ScpConfig:
    """The draft's nomination and ballot-start rules, or the node's (vote_own_values,
    late_candidates)."""
    return replace(SimConfig().scp, vote_own_values=node_rules, late_candidates=node_rules)


@PROPS
@given(net=networks(), link=links, seed=st.integers(0, 2**32 - 1), node_rules=st.booleans())
def test_honest_nodes_never_disagree(net, link: LinkModel, seed: int, node_rules: bool) -> None:  # type: ignore[no-untyped-def]
    qsets, byz, kinds = net
    assume(intersects_despite(qsets, byz))
    cfg = SimConfig(
        seed=seed,
        values=15,
        max_values_per_slot=5,
        link=link,
        byzantine=tuple(kinds.items()),
        max_time=60.0,
        scp=node_scp(node_rules),
    )
    r = simulate(qsets, cfg)
    assert r.agreement, r.disagreements


@PROPS
@given(net=networks(), link=links, seed=st.integers(0, 2**32 - 1), node_rules=st.booleans())
def test_intact_honest_nodes_externalize_everything_once_faults_stop(
    net, link: LinkModel, seed: int, node_rules: bool
) -> None:  # type: ignore[no-untyped-def]
    qsets, byz, kinds = net
    assume(intersects_despite(qsets, byz) and intact(qsets, byz))
    cfg = SimConfig(
        seed=seed,
        values=15,
        max_values_per_slot=5,
        link=link,
        byzantine=tuple(kinds.items()),
        max_time=400.0,
        scp=node_scp(node_rules),
    )
    r = simulate(qsets, cfg)
    assert r.agreement, r.disagreements
    assert r.live, f"{r.values_externalized}/15 after {r.sim_time_s}s: {r.nodes}"


def _sweep_case(seed: int) -> tuple[dict[str, QuorumSet], SimConfig]:
    """One random but reproducible run: values reach single nodes at random times (so
    nodes nominate different sets and ballots conflict), links are slow and lossy, and up
    to the tolerated number of nodes are Byzantine."""
    rng = random.Random(seed)
    big = rng.random() < 0.3
    topo = mesh(7, 4) if big else mesh(5, 3)  # tolerate 2 and 1 Byzantine nodes for safety
    byz_nodes = ["n6", "n5"] if big else ["n4"]
    f = rng.randint(0, len(byz_nodes))
    cfg = SimConfig(
        seed=seed,
        values=rng.randint(5, 30),
        max_values_per_slot=rng.randint(1, 5),
        submit_to="one",
        value_rate=rng.choice([None, 5.0, 50.0]),
        link=LinkModel(
            latency_min=0.001,
            latency_max=rng.choice([0.02, 0.3, 2.0]),
            loss=rng.choice([0.0, 0.05, 0.2, 0.4]),
            duplicate=rng.choice([0.0, 0.2]),
            faults_until=10.0,
        ),
        byzantine=tuple((b, rng.choice(KINDS)) for b in byz_nodes[:f]),
        garbage_interval=0.01,
        max_time=30.0,
        # The node's settings against the draft's, in every combination over 4 seeds: odd
        # seeds vote their own values in every round (vote_own_values), seeds 1 and 2 mod 4
        # replace an unprepared first ballot with a late candidate (late_candidates).
        # Seed 1 mod 4 is the node's setting.
        scp=replace(
            SimConfig().scp,
            vote_own_values=seed % 2 == 1,
            late_candidates=seed % 4 in (1, 2),
        ),
    )
    return topo, cfg


def _run_seed(seed: int) -> tuple[int, object] | None:
    topo, cfg = _sweep_case(seed)
    r = simulate(topo, cfg)
    return None if r.agreement else (seed, r.disagreements)


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    """Workers for the sweeps, one per core (spawned, not forked: earlier tests leave
    gRPC threads in this process)."""
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=ctx) as ex:
        yield ex


def _sweep(pool: ProcessPoolExecutor, seeds: range) -> None:
    """Each seed is an independent, deterministic simulation, so they run on every core;
    a failing seed reproduces alone with `_run_seed(seed)`."""
    results = list(pool.map(_run_seed, seeds, chunksize=5))
    failures = [r for r in results if r is not None]
    assert not failures, f"seeds with disagreement: {failures[:5]}"


SWEEP_SEEDS = int(os.environ.get("MCNODE_SWEEP_SEEDS", "1000"))


@pytest.mark.parametrize("block", range(10))
def test_safety_sweep(pool: ProcessPoolExecutor, block: int) -> None:
    """1,000 seeds by default (in ten blocks); MCNODE_SWEEP_SEEDS changes the count."""
    per = SWEEP_SEEDS // 10
    _sweep(pool, range(block * per, (block + 1) * per))


@pytest.mark.soak
@pytest.mark.parametrize("block", range(100))
def test_safety_soak(pool: ProcessPoolExecutor, block: int) -> None:
    """10,000+ further seeds: `pytest -m soak`."""
    _sweep(pool, range(100_000 + block * 100, 100_000 + (block + 1) * 100))
