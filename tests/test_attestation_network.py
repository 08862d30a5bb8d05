"""Attestation between running validators (separate processes, loopback): a validator
whose enclave runs other code (another MRENCLAVE) is refused by its peers' enclaves and
by clients, with the reason in logs, /status and /metrics; the others carry on."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import mcnode
from mcnode.client.node_client import NodeClient
from mcnode.client.trust import read_network_trust
from mcnode.enclave.errors import AttestationFailed
from mcnode.localnet.procs import Cluster
from netutil import build_txs, key_images_in, make_net, submit


@pytest.fixture
def net(tmp_path: Path) -> Iterator[tuple[Path, Cluster]]:
    cluster = make_net(tmp_path)
    try:
        yield tmp_path, cluster
    finally:
        cluster.close()


def _other_build(tmp: Path) -> Path:
    """A copy of this install whose enclave code differs by one comment line."""
    copy = tmp / "other-build" / "mcnode"
    shutil.copytree(
        Path(mcnode.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    checks = copy / "enclave" / "checks.py"
    checks.write_bytes(checks.read_bytes() + b"# another build\n")
    return copy.parent


def _status(cluster: Cluster, node: str) -> dict:  # type: ignore[type-arg]
    s = cluster.node(node).status(5.0)
    assert s is not None, cluster.node(node).tail_log(10)
    return s


def test_a_validator_running_other_enclave_code_is_refused_by_peers_and_clients(
    net: tuple[Path, Cluster],
) -> None:
    d, cluster = net
    # node3 runs another build: its enclave measures differently. Its operator has no
    # .css for it, and its enclave makes new keys (the old ones are sealed to the old code).
    rogue = cluster.node("node3")
    rogue.env = {**os.environ, "PYTHONPATH": str(_other_build(d))}
    toml = d / "node3" / "node.toml"
    toml.write_text("\n".join(x for x in toml.read_text().splitlines() if not x.startswith("css")))
    shutil.rmtree(d / "node3" / "state" / "enclave")
    txs = build_txs(d, 3)
    cluster.start()

    honest = ["node0", "node1", "node2"]
    deadline = time.monotonic() + 30
    while True:
        peers = {n: {p["name"]: p for p in _status(cluster, n)["peers"]} for n in honest}
        refused = [peers[n]["node3"]["enclave_refused"] for n in honest]
        attested = [peers[n][m]["attested"] for n in honest for m in honest if m != n]
        if all(refused) and all(attested):
            break
        assert time.monotonic() < deadline, (refused, attested)
        time.sleep(0.2)
    mine = _status(cluster, "node0")["enclave"]
    assert mine["mode"] == "sim" and mine["notice"].startswith("SIMULATED")
    theirs = _status(cluster, "node3")["enclave"]["mrenclave"]
    assert theirs != mine["mrenclave"]
    for n in honest:
        assert peers[n]["node3"]["attested"] is not True
        assert "attestation" in peers[n]["node3"]["enclave_refused"], peers[n]["node3"]
        assert peers[n]["node1" if n != "node1" else "node0"]["mrenclave"] == mine["mrenclave"]
    log = (d / "node0" / "node.log").read_text()
    said = [x for x in log.splitlines() if 'event="peer enclave refused" peer=node3' in x]
    assert len(said) == 1 and "reason=attestation:mrenclave" in said[0], said
    metrics = http_text(f"http://{cluster.node('node0').admin}/metrics")
    assert 'mcnode_attestation_failures_total{peer="node3",reason="attestation:mrenclave"}' in (
        metrics
    )

    # A client holding the network's policy pays through an honest node, and will not
    # hand a payment to node3's enclave.
    trust = read_network_trust(d / "network.json")
    assert submit(cluster, "node0", txs[0]).ok
    with (
        NodeClient(
            cluster.node("node3").client, policy=trust.policy, root_ca_der=trust.root_ca_der
        ) as c,
        pytest.raises(AttestationFailed) as refusal,
    ):
        c.propose_tx(txs[1].to_bytes())
    assert refusal.value.reason == "mrenclave", refusal.value
    deadline = time.monotonic() + 60
    while not all(all(key_images_in(d, n, list(txs[0].key_images))) for n in honest):
        assert time.monotonic() < deadline, "the honest validators stopped"
        time.sleep(0.1)


def http_text(url: str) -> str:
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as r:
        return r.read().decode()  # type: ignore[no-any-return]
