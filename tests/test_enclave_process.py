"""The enclave in its own process: a real child over a socketpair serving clients, peers
and blocks; garbage frames; what it does to keep its own user out (no ptrace, no
network); sealed keys across restarts and against changed code; a ledger it reads while
the host writes."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mcnode.enclave import (
    PeerAuthError,
    PeerEnclave,
    PeerSessionError,
    ProposeTxError,
    ProposeTxResult,
    SessionError,
    SessionId,
    StaleParent,
    UnknownTx,
)
from mcnode.enclave.css import NO_MRSIGNER
from mcnode.enclave.ipc import (
    MAX_FRAME,
    Method,
    decode_response,
    encode_request,
    frame_length,
    response_id,
)
from mcnode.enclave.measure import measure, package_root
from mcnode.enclave.process import EnclaveProcess, EnclaveProcessError, serve_command
from mcnode.enclave.sealing import KEYS_FILE, provision
from mcnode.ledger import LedgerDB, check_block_data
from mcnode.ledger.synthetic import ChainBuilder
from mcnode.transaction.validation import WellFormedTxContext
from test_enclave import (
    HOSTS,
    SIGNED_AT,
    SIGNING_PK,
    World,
    connect,
    make_world,
    peer_up,
    propose,
    vouch,
)

R = ProposeTxResult


@dataclass
class Child:
    world: World
    enclave: EnclaveProcess
    keys: Path
    identity: bytes
    signer: bytes
    log: Path


def _start(ledger: Path, keys: Path, log: Path, **kwargs: object) -> EnclaveProcess:
    with log.open("a") as stderr:  # the child keeps its own descriptor
        return EnclaveProcess.start(ledger, keys, stderr=stderr, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def child(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    d = tmp_path_factory.mktemp("child")
    keys = d / "keys"
    identity, signer = provision(keys)  # as `mcnode localnet init` would, ahead of time
    world = make_world(d / "ledger", 8, signers={SIGNING_PK, signer})
    enclave = _start(world.ledger.path, keys, d / "enclave.log")
    yield Child(world, enclave, keys, identity, signer, d / "enclave.log")
    assert enclave.close() == 0
    world.ledger.close()


def _log_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# -- serving -----------------------------------------------------------------------------


def test_the_child_says_who_it_is(child: Child) -> None:
    me = child.enclave.identity()
    assert (me.identity_public_key, me.block_signing_public_key) == (child.identity, child.signer)
    assert me.measurement == measure()
    assert (me.mrsigner, me.isv_prod_id, me.isv_svn) == (NO_MRSIGNER, 0, 0)  # no .css: unsigned
    assert me.pid == child.enclave.process.pid != os.getpid()
    assert [s.name for s in me.hardening] == [
        "inherited_fds_closed",
        "not_dumpable",
        "no_new_privs",
        "no_core_dumps",
        "dies_with_host",
        "no_network",
    ]
    applied = {s.name for s in me.hardening if s.applied}
    assert {
        "inherited_fds_closed",
        "not_dumpable",
        "no_new_privs",
        "no_core_dumps",
        "dies_with_host",
    } <= applied
    if os.geteuid() == 0:  # root may make namespaces (others: where user namespaces are on)
        assert "no_network" in applied
    status = Path(f"/proc/{me.pid}/status").read_text()
    ignored = int(next(x for x in status.splitlines() if x.startswith("SigIgn:")).split()[1], 16)
    assert ignored & (1 << (2 - 1))  # SIGINT: the host stops it, by closing the socket
    started = next(line for line in _log_lines(child.log) if "enclave started" in line)
    assert f"measurement={me.measurement.hex()}" in started and "hardened=" in started
    assert "mrsigner=unsigned" in started
    # The verifiers' one-time set-up ran before the first request, not inside it.
    warm = dict(f.split("=", 1) for f in started.split() if "=" in f)["warm_up_ms"]
    assert float(warm) > 0


def test_a_client_tx_goes_through_the_child_into_a_block(child: Child) -> None:
    w, enclave = child.world, child.enclave
    tx = w.pay(0)
    client = connect(enclave)
    ctx = enclave.client_tx_propose(client.session_id, client.session.encrypt_tx(tx.to_bytes()))
    assert ctx == WellFormedTxContext.from_tx(tx)
    assert tx.tx_hash() in enclave.cached_tx_hashes()
    parent = w.ledger.last_block()
    assert parent is not None
    formed = enclave.form_block([tx.tx_hash()], parent, SIGNED_AT)
    assert formed.included == (tx.tx_hash(),) and formed.block_data is not None
    assert formed.block_data.signature is not None
    assert formed.block_data.signature.signer == child.signer  # the enclave's own key
    check_block_data(formed.block_data, parent, {child.signer})
    w.ledger.append_block(formed.block_data)  # the host writes; the child reads it
    assert enclave.block_appended(w.ledger.num_blocks(), formed.included) == []
    assert tx.tx_hash() not in enclave.cached_tx_hashes()
    with pytest.raises(ProposeTxError) as err:  # the child sees the spent key image
        propose(enclave, w.pay(0))
    assert err.value.code is R.KEY_IMAGE_ALREADY_SPENT


def test_errors_cross_as_their_own_types(child: Child) -> None:
    w, enclave = child.world, child.enclave
    with pytest.raises(SessionError) as session_err:
        enclave.client_tx_propose(SessionId(bytes(16)), b"\0" * 40)
    assert session_err.value.code is R.BAD_SESSION
    with pytest.raises(ProposeTxError) as fee_err:
        propose(enclave, w.pay(1, fee=1))
    assert fee_err.value.code is R.FEE_TOO_LOW
    parent = w.ledger.last_block()
    assert parent is not None
    with pytest.raises(UnknownTx) as unknown:
        enclave.form_block([b"\x05" * 32], parent, SIGNED_AT)
    assert unknown.value.tx_hashes == (b"\x05" * 32,)
    with pytest.raises(StaleParent):  # the origin of another chain
        enclave.form_block([], ChainBuilder(bytes(32)).next().block, SIGNED_AT)
    with pytest.raises(PeerSessionError):
        enclave.peer_info("out:nobody")


def test_peer_sessions_with_the_child_are_authenticated(child: Child) -> None:
    w, enclave = child.world, child.enclave
    other = w.enclave(4)
    seen_by_other, seen_by_child = peer_up(other, enclave)
    assert seen_by_other == PeerEnclave(child.identity, child.signer)
    assert seen_by_child.block_signer == other.block_signing_public_key
    tx = w.pay(2)
    propose(other, tx)
    got = enclave.peer_tx_propose("a", other.txs_for_peer("b", [tx.tx_hash()]))
    assert [c.tx_hash for c in got] == [tx.tx_hash()]
    # An outsider signing with its own key, then the real message replayed: neither
    # disturbs the session in use.
    outsider = w.enclave(5)
    hs = outsider.peer_initiate("b")
    with pytest.raises(PeerAuthError):
        enclave.peer_accept("a", hs.message, vouch("x", hs), HOSTS["a"][1])
    assert other.peer_tx_propose("b", enclave.answer_fetch("a", other.seal_fetch("b", []))) == []
    # The child fetches from the in-process enclave over a session it initiated.
    peer_up(enclave, other, a_name="c", b_name="d")
    tx2 = w.pay(3)
    propose(other, tx2)
    answer = other.answer_fetch("c", enclave.seal_fetch("d", [tx2.tx_hash()]))
    assert [c.tx_hash for c in enclave.peer_tx_propose("d", answer)] == [tx2.tx_hash()]


def _raw(enclave: EnclaveProcess, frame: bytes, answered: bool = True) -> bytes | None:
    """Send a frame as it is; the body of the response, if one is expected."""
    enclave._sock.sendall(frame)
    if not answered:
        return None
    header = enclave._read_exactly(4)
    return enclave._read_exactly(frame_length(header))


def test_garbage_frames_are_answered_or_skipped_and_the_child_carries_on(child: Child) -> None:
    enclave = child.enclave

    def frame(body: bytes) -> bytes:
        return len(body).to_bytes(4, "little") + body

    with enclave._lock:
        assert _raw(enclave, frame(b"\x01\x02"), answered=False) is None  # no id: skipped
        assert _raw(enclave, frame(b""), answered=False) is None
        unknown = _raw(enclave, frame((77).to_bytes(4, "little") + bytes([250])))
        torn = encode_request(78, Method.PEER_ACCEPT, "in:n1", b"m", b"s", b"k")[4:-3]
        torn_answer = _raw(enclave, frame(torn))
        auth = _raw(enclave, encode_request(79, Method.PEER_ACCEPT, "in:n1", b"m", b"s", b"k"))
    assert unknown is not None and torn_answer is not None and auth is not None
    assert response_id(unknown) == 77
    with pytest.raises(Exception, match="unknown method 250") as err:
        decode_response(unknown, Method.IDENTITY)
    assert type(err.value).__name__ == "IpcError"
    assert response_id(torn_answer) == 78
    with pytest.raises(Exception, match="truncated"):
        decode_response(torn_answer, Method.PEER_ACCEPT)
    with pytest.raises(PeerAuthError):
        decode_response(auth, Method.PEER_ACCEPT)
    assert enclave.identity().pid == enclave.process.pid  # still serving, in step
    assert any("bad request" in line for line in _log_lines(child.log))


def test_proposals_sent_together_are_answered_in_order_from_one_batch(
    child: Child, tmp_path: Path
) -> None:
    # The host pipelines tx proposals (several in flight): clients' and peers' batches.
    # The child answers each in order; those queued together went through one call, the
    # range proofs of their new txs checked as one batch, as the counts of its "stopped"
    # line say.
    w = child.world
    log = tmp_path / "gather.log"
    enclave = _start(w.ledger.path, child.keys, log)
    try:
        other = w.enclave(5)
        peer_up(other, enclave)
        txs = [w.pay(6), w.pay(7), w.pay(8, fee=1), w.pay(9)]
        relayed = [w.pay(10), w.pay(11)]
        for tx in relayed:
            propose(other, tx)
        clients = [connect(enclave) for _ in txs]
        frames = [
            encode_request(
                100 + i, Method.CLIENT_TX_PROPOSE, c.session_id, c.session.encrypt_tx(t.to_bytes())
            )
            for i, (c, t) in enumerate(zip(clients, txs, strict=True))
        ]
        for i, tx in enumerate(relayed):  # between the clients', in the order sealed
            sealed = other.txs_for_peer("b", [tx.tx_hash()])
            frames.insert(1 + 2 * i, encode_request(200 + i, Method.PEER_TX_PROPOSE, "a", sealed))
        with enclave._lock:
            enclave._sock.sendall(b"".join(frames))
            bodies = [enclave._read_exactly(frame_length(enclave._read_exactly(4))) for _ in frames]
        assert [response_id(b) for b in bodies] == [100, 200, 101, 201, 102, 103]
        answers = dict(zip([100, 200, 101, 201, 102, 103], bodies, strict=True))
        for i in (0, 1, 3):
            got = decode_response(answers[100 + i], Method.CLIENT_TX_PROPOSE)[1]
            assert got == WellFormedTxContext.from_tx(txs[i])
        with pytest.raises(ProposeTxError) as err:
            decode_response(answers[102], Method.CLIENT_TX_PROPOSE)
        assert err.value.code is R.FEE_TOO_LOW
        for i, tx in enumerate(relayed):
            got = decode_response(answers[200 + i], Method.PEER_TX_PROPOSE)[1]
            assert got == [WellFormedTxContext.from_tx(tx)]
        assert enclave.identity().pid == enclave.process.pid  # still in step
    finally:
        assert enclave.close() == 0
    [stopped] = [x for x in _log_lines(log) if "event=stopped" in x]
    counts = dict(field.split("=", 1) for field in stopped.split())
    assert counts["batched"] == "6" and int(counts["batches"]) < 6


def test_no_frame_and_no_log_line_carries_plaintext(
    child: Child, monkeypatch: pytest.MonkeyPatch
) -> None:
    w, enclave = child.world, child.enclave
    frames: list[bytes] = []  # everything that crossed the socket, both ways
    exchange = enclave._exchange

    def recorded(frame: bytes) -> bytes:
        frames.append(frame)
        answer = exchange(frame)
        frames.append(answer)
        return answer

    monkeypatch.setattr(enclave, "_exchange", recorded)
    memo, paid = b"SECRET memo: rent for April", 123_456_789_013
    tx = w.pay(4, 5, value=paid, memo=memo)
    propose(enclave, tx)
    with pytest.raises(ProposeTxError):
        propose(enclave, replace(tx, prefix=replace(tx.prefix, fee=tx.prefix.fee + 1)))
    other = w.enclave(6)
    peer_up(enclave, other, a_name="c", b_name="d")
    assert other.peer_tx_propose("c", enclave.txs_for_peer("d", [tx.tx_hash()]))
    peer_up(other, enclave)
    enclave.peer_tx_propose("a", other.txs_for_peer("b", [tx.tx_hash()]))
    other.peer_tx_propose("b", enclave.answer_fetch("a", other.seal_fetch("b", [tx.tx_hash()])))
    parent = w.ledger.last_block()
    assert parent is not None
    formed = enclave.form_block([tx.tx_hash()], parent, SIGNED_AT)
    assert formed.included == (tx.tx_hash(),)
    enclave.forget([tx.tx_hash()])

    seen = b"".join(frames) + child.log.read_bytes()
    secrets = [memo, paid.to_bytes(8, "little"), tx.signature.range_proof[:32]]
    secrets += list(tx.signature.pseudo_output_commitments)
    for tx_in in tx.prefix.inputs:
        secrets += [m.public_key for m in tx_in.ring] + [m.target_key for m in tx_in.ring]
    assert all(secret in tx.to_bytes() for secret in secrets[2:])  # the net is cast right
    for secret in secrets:
        assert secret not in seen and secret.hex().encode() not in seen


# -- keeping the host out ------------------------------------------------------------------

_TRY_TO_READ = r"""
import ctypes, errno, json, sys
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_SEIZE = 0x4206  # attach without stopping it; detached again when we exit
seen = {}
for pid in sys.argv[1:]:
    for what in ("mem", "environ"):
        try:
            open(f"/proc/{pid}/{what}", "rb").close()
            seen[f"{pid}/{what}"] = "opened"
        except OSError as e:
            seen[f"{pid}/{what}"] = type(e).__name__
    args = (ctypes.c_long(PTRACE_SEIZE), ctypes.c_long(int(pid)), None, None)
    ok = libc.ptrace(*args) == 0
    seen[f"{pid}/ptrace"] = "attached" if ok else errno.errorcode[ctypes.get_errno()]
print(json.dumps(seen))
"""
PR_CAPBSET_DROP = 24
CAP_SYS_PTRACE = 19


def _as_the_host_user() -> None:
    """In a child before exec: drop CAP_SYS_PTRACE for good (from the bounding set), so
    that this root process is what a same-user host is: no ptrace privilege. As a normal
    user there is nothing to drop, and the call fails harmlessly."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0)


def test_its_own_user_cannot_read_the_child(child: Child, tmp_path: Path) -> None:
    host_end, child_end = socket.socketpair()
    log = tmp_path / "enclave.log"
    try:
        with log.open("w") as stderr:
            process = subprocess.Popen(
                serve_command(child_end.fileno(), child.world.ledger.path, child.keys),
                pass_fds=(child_end.fileno(),),
                stderr=stderr,
                preexec_fn=_as_the_host_user,
            )
    finally:
        child_end.close()
    # The control: an ordinary process of the same user with the same privileges.
    control = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        preexec_fn=_as_the_host_user,
    )
    with EnclaveProcess(process, host_end) as enclave, control:
        assert control.stdin is not None
        pid = enclave.process.pid
        out = subprocess.run(
            [sys.executable, "-c", _TRY_TO_READ, str(pid), str(control.pid)],
            capture_output=True,
            text=True,
            check=True,
            preexec_fn=_as_the_host_user,
        )
        seen = json.loads(out.stdout)
        assert seen[f"{control.pid}/mem"] == seen[f"{control.pid}/environ"] == "opened"
        assert seen[f"{control.pid}/ptrace"] == "attached"
        assert seen[f"{pid}/mem"] == "PermissionError"
        assert seen[f"{pid}/ptrace"] == "EPERM"
        if os.geteuid() != 0:  # root owns a non-dumpable process's files, so root opens
            assert seen[f"{pid}/environ"] == "PermissionError"  # environ; others do not
        status = Path(f"/proc/{pid}/status").read_text()
        assert "NoNewPrivs:\t1" in status
        limits = Path(f"/proc/{pid}/limits").read_text()
        core = next(line for line in limits.splitlines() if line.startswith("Max core file"))
        assert core.split()[4:6] == ["0", "0"]
        control.stdin.close()


_IN_ITS_NETWORK = r"""
import ctypes, errno, fcntl, json, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(f"/proc/{sys.argv[1]}/ns/net", os.O_RDONLY)
assert libc.setns(fd, 0x40000000) == 0, ctypes.get_errno()  # CLONE_NEWNET
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
flags = struct.unpack("H", fcntl.ioctl(probe, 0x8913, struct.pack("256s", b"lo"))[16:18])[0]
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[2]))).close()
    reached = "connected"
except OSError as e:
    reached = errno.errorcode.get(e.errno, str(e.errno))
names = [name for _, name in socket.if_nameindex()]
print(json.dumps({"interfaces": names, "lo_up": bool(flags & 1), "reached": reached}))
"""


def test_the_child_has_no_network(child: Child) -> None:
    step = {s.name: s for s in child.enclave.identity().hardening}["no_network"]
    if not step.applied:
        pytest.skip(f"unshare(CLONE_NEWNET) was refused here: {step.detail}")
    pid = child.enclave.process.pid
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    if os.geteuid() != 0:
        pytest.skip("entering the child's network namespace needs root")
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = str(server.getsockname()[1])

        def look(target: int) -> dict[str, object]:
            cmd = [sys.executable, "-c", _IN_ITS_NETWORK, str(target), port]
            result: dict[str, object] = json.loads(
                subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            )
            return result

        mine = look(os.getpid())  # the control: our own namespace reaches the server
        assert mine["lo_up"] is True and mine["reached"] == "connected"
        assert look(pid) == {"interfaces": ["lo"], "lo_up": False, "reached": "ENETUNREACH"}


def test_inherited_descriptors_are_closed_and_an_oversized_frame_ends_it(
    child: Child, tmp_path: Path
) -> None:
    host_end, child_end = socket.socketpair()
    leaked = os.open(os.devnull, os.O_RDONLY)
    stray = os.dup2(leaked, 200, inheritable=True)  # something the host left open
    log = tmp_path / "enclave.log"
    try:
        with log.open("w") as stderr:
            cmd = serve_command(child_end.fileno(), child.world.ledger.path, child.keys)
            process = subprocess.Popen(cmd, pass_fds=(child_end.fileno(), stray), stderr=stderr)
    finally:
        child_end.close()
        os.close(stray)
        os.close(leaked)
    enclave = EnclaveProcess(process, host_end)
    closed = {s.name: s for s in enclave.identity().hardening}["inherited_fds_closed"]
    assert closed.applied and closed.detail == "closed 1"
    assert not Path(f"/proc/{process.pid}/fd/200").exists()
    with enclave._lock:
        _raw(enclave, (MAX_FRAME + 1).to_bytes(4, "little"), answered=False)
    assert process.wait() == 2
    with pytest.raises(EnclaveProcessError, match="exited with code 2"):
        enclave.identity()
    host_end.close()
    [line] = [x for x in _log_lines(log) if "level=error" in x]
    assert "frame over the limit" in line and f"bytes={MAX_FRAME + 1}" in line


# -- sealed keys ---------------------------------------------------------------------------


def test_a_restarted_child_keeps_its_identity_and_block_signer(
    child: Child, tmp_path: Path
) -> None:
    sealed = (child.keys / KEYS_FILE).read_bytes()
    again = _start(child.world.ledger.path, child.keys, tmp_path / "again.log")
    try:
        assert again.identity_public_key == child.identity
        assert again.block_signing_public_key == child.signer
    finally:
        assert again.close() == 0
    assert (child.keys / KEYS_FILE).read_bytes() == sealed
    fresh = _start(child.world.ledger.path, tmp_path / "new-keys", tmp_path / "fresh.log")
    try:  # a new key directory: a new enclave
        assert fresh.identity_public_key != child.identity
        assert fresh.block_signing_public_key != child.signer
    finally:
        fresh.close()


def test_changed_enclave_code_cannot_unseal_the_keys(child: Child, tmp_path: Path) -> None:
    copy = tmp_path / "src" / "mcnode"
    shutil.copytree(package_root(), copy, ignore=shutil.ignore_patterns("__pycache__"))
    checks = copy / "enclave" / "checks.py"
    checks.write_bytes(checks.read_bytes() + b"# one more line\n")
    assert measure(copy) != measure()
    env = {**os.environ, "PYTHONPATH": str(copy.parent)}
    log = tmp_path / "changed.log"
    with pytest.raises(EnclaveProcessError, match="exited with code 3"):
        _start(child.world.ledger.path, child.keys, log, env=env)
    [line] = _log_lines(log)
    assert "cannot start" in line and "does not unseal" in line and "remove" in line
    # The same copy, unchanged, is the same enclave: it unseals them.
    checks.write_bytes(checks.read_bytes().removesuffix(b"# one more line\n"))
    with _start(child.world.ledger.path, child.keys, tmp_path / "same.log", env=env) as same:
        assert same.block_signing_public_key == child.signer


# -- the ledger, read-only -----------------------------------------------------------------


def test_the_child_reads_blocks_the_host_appends_as_the_map_grows(tmp_path: Path) -> None:
    builder = ChainBuilder(bytes(range(32)))
    start_size = 1 << 20
    ledger = LedgerDB(tmp_path / "ledger", create=True, map_size=start_size)
    try:
        ledger.append_block(builder.next(outputs=10))
        with _start(ledger.path, tmp_path / "keys", tmp_path / "enclave.log") as enclave:
            for _ in range(6):
                ledger.append_blocks(builder.chain(4, outputs=400, key_images=50))
                tip = ledger.last_block()
                assert tip is not None
                # No StaleParent: the child's read-only view has the block just appended.
                assert enclave.form_block([], tip, SIGNED_AT).block_data is None
                assert enclave.block_appended(ledger.num_blocks(), []) == []
            assert ledger.store._open().info()["map_size"] > 4 * start_size
            stale = ledger.get_block(ledger.num_blocks() - 2)
            with pytest.raises(StaleParent):
                enclave.form_block([], stale, SIGNED_AT)
    finally:
        ledger.close()


def test_a_child_without_a_ledger_says_so(tmp_path: Path) -> None:
    log = tmp_path / "enclave.log"
    with pytest.raises(EnclaveProcessError, match="exited with code 3"):
        _start(tmp_path / "nothing", tmp_path / "keys", log)
    [line] = _log_lines(log)
    assert "cannot start" in line and "no ledger here" in line
