"""Whole-network scenarios after MobileCoin's mock networks, plus faults and determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mcnode.sim.network import Crash, LinkModel, Partition, SimConfig, SimResult, simulate
from mcnode.sim.topology import Topology, cyclic, mesh, metamesh, parse_spec, tiered

NETWORKS: dict[str, Topology] = {
    **{f"cyclic{n}": cyclic(n) for n in range(1, 7)},
    "mesh1": mesh(1, 0),
    "mesh2k1": mesh(2, 1),
    "mesh3k1": mesh(3, 1),
    "mesh3k2": mesh(3, 2),
    "mesh4k3": mesh(4, 3),
    "mesh5k3": mesh(5, 3),
    "mesh5k4": mesh(5, 4),
    "metamesh3k2x3k1": metamesh(3, 2, 3, 1),
    "metamesh3k2x3k2": metamesh(3, 2, 3, 2),
    "metamesh3k2x4k3": metamesh(3, 2, 4, 3),
}


def assert_all_externalized_identically(r: SimResult, values: int) -> None:
    assert r.agreement, r.disagreements
    assert r.live, f"only {r.values_externalized}/{values} values externalized everywhere"
    assert r.values_externalized == values
    slots = {n["slots"] for n in r.nodes.values()}
    assert len(slots) == 1, f"nodes ended on different slots: {slots}"
    assert all(n["synced_slots"] == 0 for n in r.nodes.values())


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_node_externalizes_every_value(name: str) -> None:
    values = 200
    r = simulate(NETWORKS[name], SimConfig(seed=7, values=values, max_values_per_slot=50))
    assert_all_externalized_identically(r, values)
    assert r.slots >= values // 50


def test_values_submitted_to_one_node_each_still_externalize() -> None:
    r = simulate(mesh(5, 3), SimConfig(seed=3, values=60, submit_to="one", max_time=300))
    assert_all_externalized_identically(r, 60)


def test_values_arriving_over_time() -> None:
    r = simulate(mesh(4, 3), SimConfig(seed=4, values=100, value_rate=50.0, max_values_per_slot=20))
    assert_all_externalized_identically(r, 100)


def test_tiered_network_with_watchers() -> None:
    r = simulate(tiered(4, 3, 5), SimConfig(seed=5, values=100, max_values_per_slot=25))
    assert_all_externalized_identically(r, 100)


def test_same_seed_same_run() -> None:
    cfg = SimConfig(seed=11, values=150, link=LinkModel(loss=0.05, duplicate=0.05))
    a = simulate(mesh(5, 3), cfg).to_json()
    b = simulate(mesh(5, 3), cfg).to_json()
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k != "cpu_s"}  # noqa: E731
    assert strip(a) == strip(b)


def test_different_seeds_differ() -> None:
    a = simulate(mesh(5, 3), SimConfig(seed=1, values=50, link=LinkModel(loss=0.05)))
    b = simulate(mesh(5, 3), SimConfig(seed=2, values=50, link=LinkModel(loss=0.05)))
    assert (a.messages_delivered, a.sim_time_s) != (b.messages_delivered, b.sim_time_s)


def test_cli_json_is_identical_across_hash_seeds() -> None:
    """Byte for byte, whatever Python's string/bytes hash randomisation does."""
    outs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        p = subprocess.run(
            [
                sys.executable,
                "-m",
                "mcnode",
                "sim",
                "--topology",
                "mesh:5:3",
                "--values",
                "80",
                "--seed",
                "3",
                "--loss",
                "0.1",
                "--byzantine",
                "1",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert p.returncode == 0, p.stderr
        d = json.loads(p.stdout.strip().splitlines()[-1])
        d.pop("cpu_s")
        outs.append(d)
    assert outs[0] == outs[1]
    for key in (
        "agreement",
        "slots",
        "values_submitted",
        "values_externalized",
        "messages_delivered",
    ):
        assert key in outs[0]


def test_loss_and_duplication_then_recovery() -> None:
    link = LinkModel(loss=0.2, duplicate=0.1, faults_until=20.0)
    r = simulate(mesh(7, 4), SimConfig(seed=21, values=200, link=link, max_time=300))
    assert r.agreement and r.live
    assert r.messages_dropped > 0


def test_partition_minority_then_heal() -> None:
    part = Partition(0.1, 8.0, frozenset({"n0", "n1"}))
    r = simulate(
        mesh(7, 4),
        SimConfig(
            seed=8,
            values=300,
            max_values_per_slot=30,
            value_rate=30.0,
            partitions=(part,),
            max_time=300,
        ),
    )
    assert r.agreement and r.live


def test_partition_without_quorum_stalls_safely_then_recovers() -> None:
    # 5k3 needs 4 nodes: a 2/3 split leaves no quorum on either side.
    part = Partition(0.0, 6.0, frozenset({"n0", "n1"}))
    r = simulate(mesh(5, 3), SimConfig(seed=9, values=40, partitions=(part,), max_time=300))
    assert r.agreement and r.live
    assert r.sim_time_s > 6.0


def test_crash_and_restart_mid_slot() -> None:
    crashes = (Crash("n2", 0.05, 3.0), Crash("n4", 0.5, 1.5))
    r = simulate(
        mesh(5, 3),
        SimConfig(
            seed=12,
            values=200,
            max_values_per_slot=20,
            value_rate=40.0,
            crashes=crashes,
            max_time=300,
        ),
    )
    assert r.agreement and r.live


@pytest.mark.parametrize("kind", ["equivocate", "invalid", "replay", "garbage", "split", "silent"])
def test_byzantine_minority_cannot_split_mesh(kind: str) -> None:
    # mesh 9:5 (quorums of 6 of 9) tolerates 2 Byzantine nodes for safety and liveness.
    byz = (("n7", kind), ("n8", kind))
    r = simulate(mesh(9, 5), SimConfig(seed=13, values=200, byzantine=byz, max_time=300))
    assert r.agreement, r.disagreements
    assert r.live


def test_topology_specs_parse() -> None:
    assert len(parse_spec("mesh:9:5")) == 9
    assert len(parse_spec("cyclic:4")) == 4
    assert len(parse_spec("metamesh:3:2:4:3")) == 12
    assert len(parse_spec("tiered:7:3:14")) == 35
    for bad in ("mesh:9", "mesh:3:5", "ring:3", "mesh:a:b"):
        with pytest.raises(ValueError):
            parse_spec(bad)


def test_split_attack_beyond_tolerance_is_detected() -> None:
    """The checker has teeth: with 3 of 5 nodes colluding (mesh 5:3 tolerates 2 for safety),
    honest nodes can be split, and the simulator reports it."""
    byz = tuple((n, "split") for n in ("n2", "n3", "n4"))
    r = simulate(
        mesh(5, 3),
        SimConfig(
            seed=1, values=20, submit_to="one", byzantine=byz, garbage_interval=0.01, max_time=30
        ),
    )
    assert not r.agreement
    assert r.disagreements


def test_split_attack_within_tolerance_fails() -> None:
    byz = (("n6", "split"), ("n5", "split"))
    r = simulate(
        mesh(7, 4),
        SimConfig(
            seed=1, values=40, submit_to="one", byzantine=byz, garbage_interval=0.01, max_time=120
        ),
    )
    assert r.agreement, r.disagreements
    assert r.live
