"""What the enclave process costs per call: the same calls in-process and through the
child over its socketpair (plain script; prints figures, asserts nothing).

    python bench/bench_enclave_ipc.py [--calls N] [--txs N]

Builds a small ledger (an origin block of real outputs) in a temporary directory, starts
one in-process `Enclave` and one `EnclaveProcess` on it, and times, alternating between
the two, per call (median and p90 of wall time):
- a small call (`cached_tx_hashes` on an empty cache: the round trip alone),
- a client's 1-input/2-output tx (`client_tx_propose`: decrypt, decode, every rule),
- the same 7 kB ciphertext under an unknown session (refused at once: the round trip
  with a tx's payload and an error coming back),
- sealing a batch of 100 txs for a peer and opening it (`txs_for_peer` +
  `peer_tx_propose`, ~0.7 MB each way),
- last, once a block has spent alice's outputs, a client's tx that spends one of them
  again (new to the enclave, refused as spent: what a committed tx sent again costs).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mcnode.client.rings import input_credentials
from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair, ed25519_sign
from mcnode.enclave import (
    ClientSession,
    Enclave,
    EnclaveApi,
    EnclaveConfig,
    ProposeTxError,
    ProposeTxResult,
    SessionError,
    SessionId,
    peer_auth_message,
)
from mcnode.enclave.process import EnclaveProcess
from mcnode.ledger import Block, BlockContents, BlockData, LedgerDB
from mcnode.transaction import AccountKey, Scanner, TransactionBuilder, Tx
from mcnode.transaction.membership import leaf_hash, tree_root
from mcnode.transaction.txout import create_output
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE

VALUE = 10**12


def make_ledger(path: Path, rng: SeededRandom) -> tuple[LedgerDB, AccountKey, AccountKey]:
    alice, bob = AccountKey.random(rng), AccountKey.random(rng)
    owners = [alice] * 8 + [AccountKey.random(rng) for _ in range(24)]
    outs = sorted(
        (create_output(a.default_address, VALUE, rng).tx_out for a in owners),
        key=lambda o: o.public_key,
    )
    contents = BlockContents((), tuple(outs))
    origin = Block.new(None, contents, tree_root([leaf_hash(o) for o in outs]))
    ledger = LedgerDB(path, create=True)
    ledger.append_block(BlockData(origin, contents, None))
    return ledger, alice, bob


def make_txs(
    ledger: LedgerDB, alice: AccountKey, bob: AccountKey, n: int, seed: int = 7
) -> list[Tx]:
    rng = SeededRandom(seed)
    blocks = [ledger.get_block_data(i) for i in range(ledger.num_blocks())]
    owned = Scanner(alice).scan([o for b in blocks for o in b.contents.outputs])
    txs = []
    for i in range(n):  # same inputs again and again: each tx is new, and valid alone
        b = TransactionBuilder(alice, fee=DEFAULT_MINIMUM_FEE, tombstone_block=50)
        b.add_input(input_credentials(ledger, owned[i % len(owned)], rng))
        b.add_output(bob.default_address, VALUE // 3, b"bench")
        txs.append(b.build(rng))  # 1 input, 2 outputs (payment and change)
    return txs


def timed(calls: list[Callable[[], object]]) -> tuple[float, float]:
    """(median, p90) in milliseconds of each call, run in order."""
    times = []
    for call in calls:
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def connect(enclave: EnclaveApi) -> tuple[SessionId, ClientSession]:
    session = ClientSession.connect(None, None, expected_identity=enclave.identity_public_key)
    session_id, reply = enclave.client_handshake(session.first_message)
    session.finish(reply)
    return session_id, session


def _refused(enclave: EnclaveApi, ciphertext: bytes) -> None:
    try:
        enclave.client_tx_propose(SessionId(bytes(16)), ciphertext)
    except SessionError:
        return
    raise AssertionError("an unknown session was accepted")


def _spent(enclave: EnclaveApi, session_id: SessionId, ciphertext: bytes) -> None:
    try:
        enclave.client_tx_propose(session_id, ciphertext)
    except ProposeTxError as e:
        if e.code is ProposeTxResult.KEY_IMAGE_ALREADY_SPENT:
            return
        raise
    raise AssertionError("a tx spending a spent output was accepted")


def peer_up(a: EnclaveApi, b: EnclaveApi) -> None:
    ka, kb = ed25519_keypair(SeededRandom(1)), ed25519_keypair(SeededRandom(2))
    hs1 = a.peer_initiate("b")
    sig1 = ed25519_sign(ka[0], peer_auth_message(hs1.transcript))
    hs2, _ = b.peer_accept("a", hs1.message, sig1, ka[1])
    a.peer_complete("b", hs2.message, ed25519_sign(kb[0], peer_auth_message(hs2.transcript)), kb[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--txs", type=int, default=100)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ledger, alice, bob = make_ledger(Path(tmp) / "ledger", SeededRandom(3))
        txs = make_txs(ledger, alice, bob, args.txs)
        seed = ed25519_keypair(SeededRandom(4))[0]
        inproc = Enclave(EnclaveConfig(seed), ledger)
        start = time.perf_counter()
        child = EnclaveProcess.start(ledger.path, Path(tmp) / "keys")
        results["child start (s)"] = {"once": time.perf_counter() - start}
        sides: dict[str, EnclaveApi] = {"in-process": inproc, "child": child}
        try:
            for name, enclave in sides.items():
                small = timed([enclave.cached_tx_hashes] * args.calls)
                session_id, session = connect(enclave)
                sealed = [session.encrypt_tx(tx.to_bytes()) for tx in txs]
                propose = timed(
                    [lambda c=c, e=enclave, s=session_id: e.client_tx_propose(s, c) for c in sealed]
                )
                refused = timed([lambda e=enclave, c=sealed[0]: _refused(e, c)] * (args.calls // 4))
                results[name] = {
                    "small call median ms": small[0],
                    "small call p90 ms": small[1],
                    "client tx median ms": propose[0],
                    "client tx p90 ms": propose[1],
                    "7 kB refused median ms": refused[0],
                }
            # A batch of 100 txs each way: the in-process enclave seals, the other opens.
            batch = [t.tx_hash() for t in txs[:100]]
            for sender, receiver in (("in-process", "child"), ("child", "in-process")):
                a, b = sides[sender], sides[receiver]
                peer_up(a, b)
                blobs = [a.txs_for_peer("b", batch) for _ in range(5)]
                seal = timed([lambda a=a: a.txs_for_peer("b", batch)] * 5)
                opened = timed([lambda b=b, x=x: b.peer_tx_propose("a", x) for x in blobs])
                results[f"{sender} seals {len(batch)} txs"] = {"median ms": seal[0]}
                results[f"{receiver} opens {len(batch)} known txs"] = {"median ms": opened[0]}
            # A block spends each of alice's outputs (txs 0..7 spend outputs 0..7); then
            # txs new to both enclaves spend them again.
            spend = [t.tx_hash() for t in txs[:8]]
            formed = inproc.form_block(spend, ledger.last_block(), int(time.time()))
            assert formed.block_data is not None
            ledger.append_block(formed.block_data)
            again = [  # alice now owns her change outputs too: keep the spending ones
                t
                for t in make_txs(ledger, alice, bob, 2 * args.txs, seed=8)
                if ledger.contains_key_image(t.key_images[0])
            ]
            for name, enclave in sides.items():
                enclave.block_appended(ledger.num_blocks(), spend)
                session_id, session = connect(enclave)
                sealed = [session.encrypt_tx(tx.to_bytes()) for tx in again]
                spent = timed(
                    [lambda c=c, e=enclave, s=session_id: _spent(e, s, c) for c in sealed]
                )
                results[name]["spent tx median ms"] = spent[0]
        finally:
            child.close()
            ledger.close()
    for name, figures in results.items():
        print(name, " ".join(f"{k}={v:.3f}" for k, v in figures.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
