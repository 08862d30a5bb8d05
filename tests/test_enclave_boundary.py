"""The enclave boundary of running validators (separate processes, real gRPC on loopback):
an outsider posing as a configured peer gets nothing, the enclave is a process of its own
whose keys never reach the host, and a validator survives its enclave being killed."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair, ed25519_sign
from mcnode.enclave.noise import PEER_PROLOGUE, PEER_PROTOCOL, Handshake
from mcnode.localnet.procs import Cluster
from mcnode.wire import consensus_pb2 as pb
from mcnode.wire import consensus_pb2_grpc as rpc
from netutil import build_txs, key_images_in, make_net, peer_channel, submit

_OP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@pytest.fixture
def net(tmp_path: Path) -> Iterator[tuple[Path, Cluster]]:
    cluster = make_net(tmp_path)
    try:
        yield tmp_path, cluster
    finally:
        cluster.close()


def metrics(cluster: Cluster, node: str) -> str:
    with _OP.open(f"http://{cluster.node(node).admin}/metrics", timeout=5) as r:
        return r.read().decode()


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def wait_committed(d: Path, nodes: list[str], images: list[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(all(key_images_in(d, n, images)) for n in nodes):
        assert time.monotonic() < deadline, "not committed in time"
        time.sleep(0.05)


def peer_address(d: Path, node: str) -> str:
    import tomllib

    cfg = tomllib.loads((d / node / "node.toml").read_text())
    return str(cfg["listen"]["peer"])


def test_an_outsider_posing_as_a_peer_gets_no_session_and_no_transactions(
    net: tuple[Path, Cluster],
) -> None:
    """An outsider cannot reach the peer API at all (mutual TLS). The next attack: node3's
    host turned bad, holding its TLS key but no enclave, reads tx hashes from GetLatestMsg,
    claims in PeerAuth with a Noise key and a signing key of its own, then FetchTxs and
    ProposeTxs, and claims to be node1 on its own connection. Every step is refused; the
    real peers' relays carry on."""
    d, cluster = net
    txs = build_txs(d, 6)
    cluster.start()
    # Paid through node0, so node0 nominates it and has a message to show below: a tx paid
    # elsewhere can be decided by the other three before node0's connections are up, and
    # node0 then fetches the block and never sends a message for that slot.
    assert submit(cluster, "node0", txs[0]).ok
    wait_committed(d, ["node0", "node1", "node2", "node3"], list(txs[0].key_images), 60)

    with grpc.insecure_channel(peer_address(d, "node0")) as plain:
        with pytest.raises(grpc.RpcError) as no_tls:
            rpc.ConsensusPeerStub(plain).GetLatestMsg(pb.Empty(), timeout=5)
        assert no_tls.value.code() == grpc.StatusCode.UNAVAILABLE

    channel = peer_channel(d, "node3", "node0")
    stub = rpc.ConsensusPeerStub(channel)
    latest = stub.GetLatestMsg(pb.Empty(), timeout=5)
    assert latest.has_msg  # the hashes a node nominates are public; the txs must not be

    outsider_key = ed25519_keypair(SeededRandom(1234))[0]
    noise_key = ed25519_keypair(SeededRandom(4321))[0]  # any 32 bytes make an X25519 key

    def refused(call: object, request: object) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as e:
            call(request, timeout=5)  # type: ignore[operator]
        return e.value.code()  # type: ignore[no-any-return]

    codes: set[tuple[str, grpc.StatusCode]] = set()
    for _ in range(20):  # many tries: each refused, logged once a minute at most
        hs = Handshake(PEER_PROTOCOL, PEER_PROLOGUE, initiator=True, static_private=noise_key)
        hello = hs.write(b"\x01" + bytes(32))
        forged = ed25519_sign(outsider_key, b"mcnode peer auth v1" + bytes(32))
        auth = pb.PeerAuthRequest(from_peer="node3", handshake=hello, signature=forged)
        codes.add(("PeerAuth", refused(stub.PeerAuth, auth)))
        fetch = pb.FetchTxsRequest(from_peer="node3", sealed_request=os.urandom(64))
        codes.add(("FetchTxs", refused(stub.FetchTxs, fetch)))
        relay = pb.EncryptedTxs(from_peer="node3", ciphertext=os.urandom(200))
        codes.add(("ProposeTxs", refused(stub.ProposeTxs, relay)))
        posing = pb.PeerAuthRequest(from_peer="node1", handshake=hello, signature=forged)
        codes.add(("posing", refused(stub.PeerAuth, posing)))
    channel.close()
    assert codes == {
        ("PeerAuth", grpc.StatusCode.UNAUTHENTICATED),
        ("FetchTxs", grpc.StatusCode.UNAUTHENTICATED),
        ("ProposeTxs", grpc.StatusCode.UNAUTHENTICATED),
        ("posing", grpc.StatusCode.PERMISSION_DENIED),
    }
    text = metrics(cluster, "node0")
    base = "mcnode_peer_calls_refused_total"
    assert sample(text, f'{base}{{call="PeerAuth",reason="bad_signature"}}') == 20
    assert sample(text, f'{base}{{call="FetchTxs",reason="no_session"}}') == 20
    assert sample(text, f'{base}{{call="ProposeTxs",reason="no_session"}}') == 20
    assert sample(text, f'{base}{{call="PeerAuth",reason="not_the_connection"}}') == 20
    log = (d / "node0" / "node.log").read_text()
    assert log.count('event="peer call refused"') == 4  # one per (peer, call, reason)

    # The real peers' sessions were not disturbed: their relays and fetches carry on.
    before = sample(metrics(cluster, "node0"), 'mcnode_txs_validated_total{source="peer"}')
    for i, tx in enumerate(txs[1:]):
        assert submit(cluster, f"node{1 + i % 3}", tx).ok
    wait_committed(
        d, ["node0", "node1", "node2", "node3"], [k for t in txs for k in t.key_images], 60
    )
    after = sample(metrics(cluster, "node0"), 'mcnode_txs_validated_total{source="peer"}')
    assert after >= before + 5
    assert "fetch txs failed" not in (d / "node0" / "node.log").read_text()


def status(cluster: Cluster, node: str) -> dict:  # type: ignore[type-arg]
    n = cluster.node(node)
    s = n.status(5.0)
    alive = n.proc is not None and n.proc.poll() is None
    assert s is not None, f"{node} is not answering (alive: {alive}): {n.tail_log(15)}"
    return s


def test_a_killed_enclave_is_restarted_with_its_identity_and_the_network_agrees(
    net: tuple[Path, Cluster],
) -> None:
    """SIGKILL node0's enclave process again and again while payments flow: node0 logs
    it, serves no client meanwhile, restarts it with the same sealed identity, its peers
    make new sessions by themselves, and no committed block is lost or forked."""

    from netutil import block_ids

    d, cluster = net
    txs = build_txs(d, 24)
    cluster.start()
    first = status(cluster, "node0")["enclave"]
    assert first["up"] and first["pid"] and first["pid"] != cluster.node("node0").proc.pid  # type: ignore[union-attr]
    sent: list = []  # type: ignore[type-arg]
    kills = 0
    for i, tx in enumerate(txs):
        r = submit(cluster, f"node{(i % 3) + 1}", tx)  # clients use the other nodes
        assert r.ok, r
        sent.append(tx)
        if i % 6 == 5:  # four kills, each while payments are in flight
            pid = status(cluster, "node0")["enclave"]["pid"]
            os.kill(pid, signal.SIGKILL)
            kills += 1
            deadline = time.monotonic() + 30
            while True:
                e = status(cluster, "node0")["enclave"]
                if e["up"] and e["pid"] != pid:
                    break
                assert time.monotonic() < deadline, "the enclave was not restarted"
                time.sleep(0.1)
    nodes = ["node0", "node1", "node2", "node3"]
    wait_committed(d, nodes, [k for t in sent for k in t.key_images], 90)
    after = status(cluster, "node0")["enclave"]
    assert after["restarts"] == kills
    assert (after["identity"], after["block_signer"]) == (first["identity"], first["block_signer"])
    log = (d / "node0" / "node.log").read_text()
    assert log.count('event="enclave process died; restarting"') == kills
    # node0 takes part again: a payment sent to it commits everywhere.
    late = build_txs(d, 1, seed=99, ledger_node="node1")[0]
    deadline = time.monotonic() + 30
    while not (r := submit(cluster, "node0", late)).ok:
        assert r.result == "NOT_SERVING" and time.monotonic() < deadline, r
        time.sleep(0.2)
    wait_committed(d, nodes, list(late.key_images), 60)
    for n in cluster.nodes:
        n.stop()
    chains = {n: block_ids(d, n) for n in nodes}
    shortest = min(len(c) for c in chains.values())
    assert len({tuple(c[:shortest]) for c in chains.values()}) == 1  # no fork


def _memory_of(pid: int) -> Iterator[bytes]:
    """Every readable private or anonymous mapping of a live process (as root: the test
    stands in for the strongest host, one that reads its own memory)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if fields[1][0] != "r" or end - start > 1 << 30:
                continue
            if len(fields) > 5 and fields[5].startswith("/") and "w" not in fields[1]:
                continue  # read-only file contents (code, data files): not where secrets live
            try:
                mem.seek(start)
                yield mem.read(end - start)
            except OSError:
                continue  # a mapping the kernel will not hand over ([vvar] and the like)


def test_the_host_holds_no_enclave_key_and_no_transaction_plaintext(
    net: tuple[Path, Cluster],
) -> None:
    """Payments go through node0 while it relays others' payments; then node0's host
    process memory, its log and everything it keeps on disk (outside the enclave's sealed
    store) are searched for the enclave's private keys, its sealing secret, and parts of
    each payment only its plaintext carries (pseudo-output commitments, range proofs)."""
    from mcnode.enclave.measure import measure
    from mcnode.enclave.sealing import SECRET_FILE, load_or_create

    d, cluster = net
    txs = build_txs(d, 6)
    cluster.start()
    for i, tx in enumerate(txs):
        assert submit(cluster, ["node0", "node1"][i % 2], tx).ok  # half come by relay
    nodes = ["node0", "node1", "node2", "node3"]
    wait_committed(d, nodes, [k for t in txs for k in t.key_images], 60)

    sealed = d / "node0" / "state" / "enclave"
    keys = load_or_create(sealed, measure())  # what only node0's enclave process holds
    secrets = {
        "identity key": keys.identity_private,
        "block-signing key": keys.block_signing_seed,
        "sealing secret": (sealed / SECRET_FILE).read_bytes(),
    }
    for n, tx in enumerate(txs):
        secrets[f"tx{n} range proof"] = tx.signature.range_proof[:32]
        for j, c in enumerate(tx.signature.pseudo_output_commitments):
            secrets[f"tx{n} pseudo-output {j}"] = c
    host = cluster.node("node0").proc
    assert host is not None
    found = {
        name
        for region in _memory_of(host.pid)
        for name, secret in secrets.items()
        if secret in region
    }
    assert not found, f"node0's host process holds {sorted(found)}"
    # The search itself works: the host does hold its own consensus-message key, and the
    # enclave process its keys.
    from mcnode.node.keys import read_node_key

    message_key = read_node_key(d / "node0" / "node.key")
    assert any(message_key in region for region in _memory_of(host.pid))
    enclave_pid = status(cluster, "node0")["enclave"]["pid"]
    assert any(keys.block_signing_seed in region for region in _memory_of(enclave_pid))

    # The enclave does not outlive its host, however the host dies.
    os.kill(host.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{enclave_pid}").exists() and _state(enclave_pid) != "Z":
        assert time.monotonic() < deadline, "the enclave outlived its host"
        time.sleep(0.05)
    for n in cluster.nodes:
        n.stop()
    kept = [p for p in (d / "node0").rglob("*") if p.is_file() and sealed not in p.parents]
    assert any(p.name == "node.log" for p in kept) and any("ledger" in p.parts for p in kept)
    for p in kept:
        data = p.read_bytes()
        for name, secret in secrets.items():
            assert secret not in data and secret.hex().encode() not in data, (name, p)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"
