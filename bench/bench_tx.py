"""Transaction build and verify throughput (plain script; figures go to bench/RESULTS.md).

    python bench/bench_tx.py [--quick]

Pins itself to one CPU, builds a deterministic in-memory ledger, and times, per tx:
building (sign + prove) and full `validate_tx` for 1-input/2-output and 16-input/16-output
transactions, with decode, membership, MLSAG, balance and range-proof verification
reported separately, plus 100 range proofs verified one after another (ours, and the
`bulletproofs` crate's own verifier) and in batches of 4, 8, 16 and 100
(`verify_range_batch`), and 100 1-in/2-out txs decoded and verified as
one batch (`validate_txs`: what the enclave does with client proposals and peer batches
that come together; `batch100_verify_tx_per_s`, and per second of CPU time, the best of
several runs: `batch100_verify_tx_per_cpu_s`). Pinned to one CPU, and given no `beside`
(the enclave's worker thread), every rule runs on the calling thread: these are CPU
costs. The last line printed is one JSON object; its `curve_backend` says which of
curve25519-dalek 5's backends the verifiers ran on.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable

from mcnode import _native
from mcnode.crypto import SeededRandom, verify_range, verify_range_batch
from mcnode.transaction import (
    AccountKey,
    Scanner,
    TransactionBuilder,
    Tx,
    validate_tx,
    validate_txs,
)
from mcnode.transaction import validation as rules
from mcnode.transaction.fake_ledger import FakeLedger

CURRENT = 10
FEE = rules.DEFAULT_MINIMUM_FEE


def per_second(fn: Callable[[], object], min_runs: int, min_seconds: float) -> float:
    """Runs of `fn` per second, over at least `min_runs` runs and `min_seconds`."""
    fn()  # warm up (generators, caches)
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < min_seconds:
        fn()
        runs += 1
    return runs / (time.perf_counter() - start)


def main() -> None:
    quick = "--quick" in sys.argv
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    rng = SeededRandom(2024)
    alice, bob = AccountKey.random(rng), AccountKey.random(rng)
    ledger = FakeLedger()
    for i in range(256):
        owner = alice if i % 8 == 0 else AccountKey.random(rng)
        ledger.mint(owner.default_address, 10**12, rng)
    owned = Scanner(alice).scan(ledger.tx_outs)
    root = ledger.root()
    creds = [ledger.input_credentials(o, rng) for o in owned[:16]]

    def build(n_in: int, n_out: int) -> Tx:
        b = TransactionBuilder(alice, fee=FEE, tombstone_block=CURRENT + 100)
        for c in creds[:n_in]:
            b.add_input(c)
        for _ in range(n_out - 1):  # the last output is change
            b.add_output(bob.default_address, 1000)
        return b.build(rng)

    def verify(raw: bytes) -> None:
        validate_tx(Tx.from_bytes(raw), current_block=CURRENT, root=root)

    secs = 0.5 if quick else 3.0
    figures: dict[str, float | str] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, pinned to one",
        "curve_backend": _native.curve_backend(),
    }

    def measure(n_in: int, n_out: int, runs: int) -> None:
        tag = f"{n_in}in_{n_out}out"
        tx = build(n_in, n_out)
        raw = tx.to_bytes()
        assert len(tx.prefix.outputs) == n_out
        verify(raw)
        figures[f"{tag}_bytes"] = len(raw)
        figures[f"{tag}_build_tx_per_s"] = per_second(lambda: build(n_in, n_out), runs, secs)
        figures[f"{tag}_verify_tx_per_s"] = per_second(lambda: verify(raw), runs * 5, secs)
        parts: dict[str, Callable[[], object]] = {
            "decode": lambda: Tx.from_bytes(raw),
            "membership": lambda: rules.check_membership_proofs(tx, root),
            "mlsag": lambda: rules.check_ring_signatures(tx),
            "balance": lambda: rules.check_balance(tx),
            "range_proof": lambda: rules.check_range_proof(tx),
        }
        for name, fn in parts.items():
            figures[f"{tag}_{name}_ms"] = 1000 / per_second(fn, runs * 5, secs / 3)

    measure(1, 2, 20)
    measure(16, 16, 3)

    txs = [build(1, 2) for _ in range(100)]
    proofs = [
        (
            t.signature.range_proof,
            [*t.signature.pseudo_output_commitments] + [o.commitment for o in t.prefix.outputs],
        )
        for t in txs
    ]
    start = time.perf_counter()
    assert all(verify_range(p, c) for p, c in proofs)
    figures["range_proofs_100tx_sequential_ms"] = 1000 * (time.perf_counter() - start)
    start = time.perf_counter()  # the same, with the bulletproofs crate's own verifier
    assert all(_native.range_proof_verify(p, c) for p, c in proofs)
    figures["range_proofs_100tx_sequential_crate_ms"] = 1000 * (time.perf_counter() - start)
    for k in (4, 8, 16, 100):
        start = time.perf_counter()
        assert all(verify_range_batch(proofs[i : i + k]) for i in range(0, len(proofs), k))
        figures[f"range_proofs_100tx_in_batches_of_{k}_ms"] = 1000 * (time.perf_counter() - start)

    raws = [t.to_bytes() for t in txs]
    roots = [root] * len(raws)

    def verify_batch() -> None:
        errors = validate_txs([Tx.from_bytes(r) for r in raws], current_block=CURRENT, roots=roots)
        assert errors == [None] * len(raws)

    figures["batch100_verify_tx_per_s"] = len(raws) * per_second(verify_batch, 3, secs)
    # The same per second of this process's CPU time: on a shared machine the pinned core
    # is not ours alone, and wall time counts the other processes' turns too.
    verify_batch()
    cpu = []
    for _ in range(3 if quick else 10):
        start = time.process_time()
        verify_batch()
        cpu.append(time.process_time() - start)
    figures["batch100_verify_tx_per_cpu_s"] = len(raws) / min(cpu)

    figures["verify_tx_per_s"] = figures["1in_2out_verify_tx_per_s"]
    figures["build_tx_per_s"] = figures["1in_2out_build_tx_per_s"]
    for k, v in figures.items():
        print(f"{k:40} {v:.2f}" if isinstance(v, float) else f"{k:40} {v}")
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
