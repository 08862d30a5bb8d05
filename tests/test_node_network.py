"""Validators as separate processes on loopback with real ports (issue 5's network tests)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair
from mcnode.localnet.procs import Cluster, http_json
from mcnode.node.keys import write_node_key
from mcnode.node.tls import make_tls_identity, write_tls_identity
from netutil import block_ids, build_txs, key_images_in, make_net, peer_channel, submit


@pytest.fixture
def net(tmp_path: Path) -> Iterator[tuple[Path, Cluster]]:
    cluster = make_net(tmp_path)
    try:
        yield tmp_path, cluster
    finally:
        cluster.close()


def all_images(txs: list) -> list[bytes]:  # type: ignore[type-arg]
    return [k for tx in txs for k in tx.key_images]


def wait_committed(
    d: Path, cluster: Cluster, images: list[bytes], timeout: float, nodes: list[str] | None = None
) -> None:
    names = nodes or [n.name for n in cluster.nodes]
    deadline = time.monotonic() + timeout
    while True:
        if all(all(key_images_in(d, n, images)) for n in names):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not committed everywhere after {timeout}s: "
                + "; ".join(f"{n.name}: {n.tail_log(3)}" for n in cluster.nodes)
            )
        time.sleep(0.05)


def same_ledgers(d: Path, cluster: Cluster) -> list[bytes]:
    chains = {n.name: block_ids(d, n.name) for n in cluster.nodes}
    first = next(iter(chains.values()))
    for name, ids in chains.items():
        assert ids == first, f"{name} differs"
    return first


def test_four_nodes_agree_on_txs_submitted_to_different_nodes(net: tuple[Path, Cluster]) -> None:
    d, cluster = net
    txs = build_txs(d, 6)
    cluster.start()
    for i, tx in enumerate(txs):
        r = submit(cluster, f"node{i % 4}", tx)
        assert r.ok, r
    wait_committed(d, cluster, all_images(txs), timeout=60)
    for n in cluster.nodes:
        n.stop()
    chain = same_ledgers(d, cluster)
    assert len(chain) >= 2
    # A second submission of a committed tx is refused with the exact reason.
    cluster.node("node1").start()
    cluster.node("node1").wait_ready()
    again = submit(cluster, "node1", txs[0])
    assert again.result == "KEY_IMAGE_ALREADY_SPENT", again


def test_node_with_wrong_signing_key_is_ignored(net: tuple[Path, Cluster]) -> None:
    d, cluster = net
    # node3 runs with a key its peers do not know. With only the key replaced it does not
    # start: its TLS certificate is no longer vouched for by its key (one line, exit 2).
    key = ed25519_keypair(SeededRandom(99))[0]
    write_node_key(d / "node3" / "node.key", key)
    r = subprocess.run(
        [sys.executable, "-m", "mcnode", "run", "--config", str(d / "node3" / "node.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2 and "not vouched for by this node's key_file" in r.stderr, r.stderr
    # With a TLS identity made for the new key, it starts, but its peers pinned the old
    # certificate: every connection between it and them ends in the TLS handshake, so the
    # other three carry on as a quorum without it and never hand it a transaction.
    identity = make_tls_identity("node3", key, SeededRandom(98))
    write_tls_identity(d / "node3" / "tls.key", d / "node3" / "tls.pem", identity)
    txs = build_txs(d, 2)
    cluster.start()
    assert submit(cluster, "node0", txs[0]).ok
    wait_committed(d, cluster, all_images(txs[:1]), timeout=60, nodes=["node0", "node1", "node2"])
    node3 = _metrics(cluster, "node3")
    assert _sample(node3, 'mcnode_txs_validated_total{source="peer"}') == 0
    assert _sample(node3, "mcnode_consensus_msgs_in_total") == 0  # it heard nobody
    st = cluster.node("node0").status()
    assert st is not None
    assert not next(p for p in st["peers"] if p["name"] == "node3")["connected"]
    assert all(key_images_in(d, "node0", all_images(txs[:1])))
    assert not any(key_images_in(d, "node3", all_images(txs[:1])))


def _metrics(cluster: Cluster, node: str) -> str:
    import urllib.request

    op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with op.open(f"http://{cluster.node(node).admin}/metrics", timeout=3) as r:
        return r.read().decode()


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def test_garbage_and_oversized_payloads_are_rejected_and_node_serves(
    net: tuple[Path, Cluster],
) -> None:
    d, cluster = net
    txs = build_txs(d, 1)
    cluster.start()
    cfg = cluster.network["nodes"][0]
    ident = lambda b: b  # noqa: E731
    with peer_channel(d, "node1", "node0") as ch:  # a configured peer's connection
        send = ch.unary_unary(
            "/mcnode.v1.ConsensusPeer/SendConsensusMsg",
            request_serializer=ident,
            response_deserializer=ident,
        )
        for junk in (b"\xff" * 64, b"\x0a\x05hello\x12", bytes(range(256)) * 4):
            try:
                send(junk, timeout=5)
            except grpc.RpcError as e:  # undecodable: grpc refuses it before our handler
                assert e.code() in (
                    grpc.StatusCode.UNKNOWN,
                    grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.INVALID_ARGUMENT,
                )
        with pytest.raises(grpc.RpcError) as big:
            send(b"\x0a" + b"\xff" * (6 * 1024 * 1024), timeout=10)
        assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        fetch = ch.unary_unary(
            "/mcnode.v1.ConsensusPeer/FetchTxs",
            request_serializer=ident,
            response_deserializer=ident,
        )
        with pytest.raises(grpc.RpcError) as other:
            fetch(b"\x0a\x07mallory", timeout=5)  # not the connection's peer
        assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with grpc.insecure_channel(cfg["client"]) as ch:
        auth = ch.unary_unary(
            "/mcnode.v1.ConsensusClient/Auth", request_serializer=ident, response_deserializer=ident
        )
        with pytest.raises(grpc.RpcError):
            auth(b"\x0a\x03abc", timeout=5)  # a handshake that is not Noise
    status = http_json(f"http://{cfg['admin']}/status")
    assert status["node_id"] == "node0"
    assert submit(cluster, "node0", txs[0]).ok
    wait_committed(d, cluster, all_images(txs), timeout=60)


def test_killed_node_restarts_catches_up_and_ledgers_match(net: tuple[Path, Cluster]) -> None:
    d, cluster = net
    txs = build_txs(d, 7)
    cluster.start()
    for tx in txs[:2]:
        assert submit(cluster, "node0", tx).ok
    time.sleep(0.05)
    cluster.node("node2").kill(signal.SIGKILL)  # likely mid-slot
    wait_committed(d, cluster, all_images(txs[:2]), timeout=60, nodes=["node0", "node1", "node3"])
    for i, tx in enumerate(txs[2:]):
        assert submit(cluster, ["node1", "node3"][i % 2], tx).ok
        time.sleep(0.3)  # separate blocks, so node2 has several to catch up on
    wait_committed(d, cluster, all_images(txs), timeout=60, nodes=["node0", "node1", "node3"])
    cluster.node("node2").start()
    cluster.node("node2").wait_ready()
    wait_committed(d, cluster, all_images(txs), timeout=60)
    for n in cluster.nodes:
        n.stop()
    chain = same_ledgers(d, cluster)
    assert len(chain) >= 3
    # node2's ledger holds the blocks it fetched while catching up, signed by its peers'
    # enclaves (and any it made itself); its signers file names the set that verifies them.
    verify = [sys.executable, "-m", "mcnode", "ledger", "verify", "--ledger"]
    signers = d / "node2" / "state" / "block-signers.json"
    r = subprocess.run([*verify, str(d / "node2" / "ledger"), "--signers-file", str(signers)],
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    counts = dict(re.findall(r"^\s+([0-9a-f]{64})\s+(\d+) blocks", r.stdout, re.M))
    own = json.loads(signers.read_text())["own"][-1]
    assert set(counts) - {own}, r.stdout  # blocks it fetched carry its peers' signatures
    r = subprocess.run([*verify, str(d / "node2" / "ledger"), "--signer", own],
                       capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert r.returncode == 1 and "not an expected signer" in r.stdout, r.stdout


def _catch_up_after(d: Path, cluster: Cluster, blocks: int) -> None:
    txs = build_txs(d, blocks + 1)
    for n in cluster.nodes[:3]:
        n.start()
    for n in cluster.nodes[:3]:
        n.wait_ready()
    for i, tx in enumerate(txs[:blocks]):
        assert submit(cluster, f"node{i % 3}", tx).ok
        wait_committed(
            d, cluster, list(tx.key_images), timeout=60, nodes=["node0", "node1", "node2"]
        )
    lagger = cluster.node("node3")
    lagger.start()
    lagger.wait_ready()
    # node3 notices it is behind an idle network (it asks its peers' heights), catches up,
    # then takes part in the next block.
    st = cluster.wait_height(blocks + 1, timeout=60, nodes=["node3"])
    assert st["node3"] is not None and st["node3"]["block_height"] >= blocks + 1, lagger.tail_log()
    # The last fetched block lands a moment before the node says it serves again.
    deadline = time.monotonic() + 10
    while (s := lagger.status()) is None or s["sync_state"] != "serving":
        assert time.monotonic() < deadline, (s, lagger.tail_log())
        time.sleep(0.05)
    assert submit(cluster, "node3", txs[blocks]).ok
    wait_committed(d, cluster, list(txs[blocks].key_images), timeout=60)
    for n in cluster.nodes:
        n.stop()
    same_ledgers(d, cluster)


def test_node_far_behind_catches_up_and_rejoins(tmp_path: Path) -> None:
    cluster = make_net(tmp_path, accounts=30)
    try:
        _catch_up_after(tmp_path, cluster, 25)
    finally:
        cluster.close()


@pytest.mark.soak
@pytest.mark.timeout(2400)
def test_node_down_for_1000_blocks_catches_up(tmp_path: Path) -> None:
    cluster = make_net(tmp_path, accounts=260)
    try:
        _catch_up_after(tmp_path, cluster, 1000)
    finally:
        cluster.close()


def test_admin_endpoints_and_archive_export(tmp_path: Path) -> None:
    import json as _json
    import urllib.error
    import urllib.request

    make_net(tmp_path)
    cluster = Cluster(tmp_path, scp_trace=True)
    with open(tmp_path / "node0" / "node.toml", "a") as f:
        f.write('\n[archive]\nexport = "../archive"\n')
    op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        txs = build_txs(tmp_path, 3)
        cluster.start()
        for tx in txs[:2]:
            assert submit(cluster, "node2", tx).ok
        wait_committed(tmp_path, cluster, all_images(txs[:2]), timeout=60)
        # A validator that started last may have found the others two slots ahead and
        # caught up by fetching their blocks, saying nothing: node0 learns its quorum set
        # only from its messages. One more slot, now that every validator is in step,
        # makes each of them speak.
        assert submit(cluster, "node3", txs[2]).ok
        wait_committed(tmp_path, cluster, all_images(txs[2:]), timeout=60)
        admin = cluster.node("node0").admin
        st = http_json(f"http://{admin}/status")
        for key in (
            "node_id",
            "block_height",
            "last_block_id",
            "slot_index",
            "peers",
            "sync_state",
            "pending_txs",
            "quorum_set",
            "v_blocking_size",
            "phase",
            "quorum_intersection",
        ):
            assert key in st, key
        assert {p["name"] for p in st["peers"]} == {"node1", "node2", "node3"}
        # Two things may lag the commit we waited for, on a loaded machine. A commit needs
        # only three of the four, so the link to the peer that started last may still be
        # inside gRPC's reconnect backoff (at most 1 s). And a peer that only caught up
        # with the others' EXTERNALIZEs has its block in its ledger (which is what
        # wait_committed reads) a moment before its own first message reaches node0, and
        # until then node0 does not know that peer's quorum set, so its intersection
        # verdict is None ("unknown"), not True. Wait (bounded) for both.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (
            all(p["connected"] for p in st["peers"]) and st["quorum_intersection"] is not None
        ):
            time.sleep(0.1)
            st = http_json(f"http://{admin}/status")
        assert all(p["connected"] for p in st["peers"]), st["peers"]
        assert st["v_blocking_size"] == 2 and st["quorum_intersection"] is True, st
        slot = st["block_height"] - 1
        snap = http_json(f"http://{admin}/scp/{slot}")
        assert snap["phase"] == "EXTERNALIZE" and snap["externalized"]
        assert any(e["event"] == "confirm commit" for e in snap["events"])
        # The trace file tells the same story, each step with the set that moved it.
        trace = [_json.loads(line) for line in (tmp_path / "node0" / "scp-trace.jsonl").open()]
        steps = [r for r in trace if r["slot"] == slot]
        confirm = next(r for r in steps if r["event"] == "confirm commit")
        assert confirm["node"] == "node0" and confirm["by"] == "quorum"
        assert "node0" in confirm["nodes"] and len(confirm["nodes"]) >= 3
        for bad in ("%D9%A3", "1_000", "%205", "-1"):  # only ASCII digits name a slot
            with pytest.raises(urllib.error.HTTPError) as e:
                op.open(f"http://{admin}/scp/{bad}", timeout=3)
            assert e.value.code == 400, bad
        metrics = _metrics(cluster, "node0")
        for name in (
            "mcnode_scp_slot_index",
            "mcnode_pending_txs",
            "mcnode_ledger_blocks",
            "mcnode_consensus_msgs_in_total",
            "mcnode_scp_phase_seconds_bucket",
            'mcnode_txs_validated_total{source="peer"}',
        ):
            assert name in metrics, name
        page = op.open(f"http://{admin}/", timeout=3).read().decode()
        assert "<html" in page and "node0" in page
        req = urllib.request.Request(f"http://{admin}/loglevel", data=b"debug", method="POST")
        assert op.open(req, timeout=3).read() == b"debug\n"
        for body in (b"loud", b"\xff\xfedebug", "débug".encode("latin-1")):  # not UTF-8 too
            bad = urllib.request.Request(f"http://{admin}/loglevel", data=body, method="POST")
            with pytest.raises(urllib.error.HTTPError) as e:
                op.open(bad, timeout=3)
            assert e.value.code == 400
        with pytest.raises(urllib.error.HTTPError) as e:
            op.open(f"http://{admin}/scp/99999", timeout=3)
        assert e.value.code == 404
        # node0 exported every block it appended to its archive; a fresh ledger imports it.
        head = (tmp_path / "archive" / "HEAD").read_text()
        assert str(st["block_height"]) in head or _json.loads(head)
        from mcnode.ledger.archive import LocalDirectory, import_archive
        from mcnode.ledger.db import LedgerDB

        with LedgerDB(tmp_path / "fresh", create=True) as fresh:
            assert import_archive(LocalDirectory(tmp_path / "archive"), fresh) == st["block_height"]
            assert fresh.last_block().id.hex() == st["last_block_id"]
    finally:
        cluster.close()


def test_bad_messages_on_a_consensus_stream_are_dropped_one_by_one(
    net: tuple[Path, Cluster],
) -> None:
    """Only configured peers get a stream at all (mutual TLS); on a peer's stream, a message
    of a signer we do not know is dropped and counted and the stream goes on, a forged
    signature (which an honest peer never relays) closes the stream and refuses that peer
    for a while, and undecodable bytes end the stream, while the node keeps serving."""
    from mcnode.node.messages import sign_msg
    from mcnode.scp import Msg, Nominate, QuorumSet
    from mcnode.wire import consensus_pb2 as pb

    d, cluster = net
    txs = build_txs(d, 1)
    cluster.start()
    cfg = cluster.network["nodes"][0]
    with grpc.insecure_channel(cfg["peer"]) as outsider:  # no TLS: no connection
        with pytest.raises(grpc.RpcError) as plain:
            outsider.unary_unary("/mcnode.v1.ConsensusPeer/GetLatestMsg")(b"", timeout=5)
        assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    from mcnode.node.tls import PEER_TLS_NAME, make_tls_identity

    mallory = make_tls_identity("mallory", bytes(32), SeededRandom(9))  # a cert of her own
    creds = grpc.ssl_channel_credentials(
        (d / "node0" / "tls.pem").read_bytes(), mallory.key_pem, mallory.cert_pem
    )
    opts = [("grpc.ssl_target_name_override", PEER_TLS_NAME)]
    with grpc.secure_channel(cfg["peer"], creds, options=opts) as outsider:
        with pytest.raises(grpc.RpcError) as unpinned:
            outsider.unary_unary("/mcnode.v1.ConsensusPeer/GetLatestMsg")(b"", timeout=5)
        assert unpinned.value.code() == grpc.StatusCode.UNAVAILABLE
    msg = Msg(
        "node1", 1, QuorumSet(2, ["node0", "node2"]), Nominate(frozenset({b"v" * 32}), frozenset())
    )
    forged = sign_msg(msg, b"", ed25519_keypair(SeededRandom(5))[0], "node1")  # unknown key
    tampered = pb.ConsensusMsg()
    tampered.CopyFrom(forged)
    tampered.signer = bytes.fromhex(cluster.network["nodes"][1]["signing_key"])  # node1's key
    before = _metrics(cluster, "node0")
    with peer_channel(d, "node2", "node0") as ch:  # node2 turned bad
        stream = ch.stream_unary(
            "/mcnode.v1.ConsensusPeer/ConsensusStream",
            request_serializer=pb.ConsensusMsg.SerializeToString,
            response_deserializer=pb.ConsensusMsgResponse.FromString,
        )
        reply = stream(iter([forged, forged]), timeout=10)
        assert reply.result == pb.PEER_OK  # unknown signers: dropped, the stream goes on
        with pytest.raises(grpc.RpcError) as closed:
            stream(iter([forged, tampered, forged]), timeout=10)
        assert closed.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "forged signature" in (closed.value.details() or "")
        with pytest.raises(grpc.RpcError) as penalised:  # node2 is refused for a while
            stream(iter([forged]), timeout=10)
        assert "penalised" in (penalised.value.details() or "")
    with peer_channel(d, "node3", "node0") as ch:
        raw = ch.stream_unary(
            "/mcnode.v1.ConsensusPeer/ConsensusStream",
            request_serializer=lambda b: b,
            response_deserializer=lambda b: b,
        )
        with pytest.raises(grpc.RpcError):
            raw(iter([b"\xff" * 64]), timeout=10)
    after = _metrics(cluster, "node0")
    for reason in ("unknown_signer", "bad_signature"):
        name = f'mcnode_consensus_msgs_dropped_total{{reason="{reason}"}}'
        assert _sample(after, name) - _sample(before, name) >= 1, reason
    assert submit(cluster, "node0", txs[0]).ok
    wait_committed(d, cluster, all_images(txs), timeout=60)


def test_run_refuses_a_key_file_others_can_read_with_one_line_and_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    make_net(tmp_path, nodes=4)
    key = tmp_path / "node0" / "node.key"
    key.chmod(0o644)
    r = subprocess.run(
        [sys.executable, "-m", "mcnode", "run", "--config", str(tmp_path / "node0" / "node.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "key_file" in lines[0] and "chmod 600" in lines[0], r.stderr


def test_run_refuses_to_start_an_enclave_its_css_does_not_sign(tmp_path: Path) -> None:
    """The network's .css signs another build: node0's enclave does not start, and the
    node exits 5 with the enclave's one line naming both measurements."""
    from mcnode.enclave.measure import measure
    from mcnode.enclave.signer import load_signer_key, sign_css

    make_net(tmp_path, nodes=4)
    other = bytes(32)
    sealed = tmp_path / "node0" / "state" / "enclave" / "sealed-keys.bin"
    keys_before = sealed.read_bytes()
    key = load_signer_key(tmp_path / "enclave-signer.pem")
    (tmp_path / "enclave.css").write_bytes(sign_css(key, other))
    r = subprocess.run(
        [sys.executable, "-m", "mcnode", "run", "--config", str(tmp_path / "node0" / "node.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 5, r.stderr[-2000:]
    said = r.stdout + r.stderr
    assert other.hex()[:16] in said and measure().hex()[:16] in said, said[-2000:]
    assert sealed.read_bytes() == keys_before  # refused before it unsealed or made keys
