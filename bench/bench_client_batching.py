"""Client proposals through one enclave process, one at a time or several in flight
(plain script; prints figures, asserts nothing).

    python bench/bench_client_batching.py [--txs 96] [--in-flight 1,4,16] [--rounds 2]

Builds a small ledger in a temporary directory, starts the enclave process the way a
validator does (the host's asyncio `node.enclave_process.EnclaveProcess`, which keeps
several calls in flight on the one socket), opens one client session per slot in flight,
and proposes `--txs` new 1-input/2-output txs with at most N in flight, for each N of
`--in-flight` in turn, `--rounds` times (a new enclave process each round, so every tx
is new to it). Per N: txs per second of wall time, and the enclave process's CPU per tx
(from /proc: its user + system time over the run). With the enclave gathering client
proposals queued together into one call, several in flight share their range proofs'
batch check. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_enclave_ipc import make_ledger, make_txs
from mcnode.crypto import SeededRandom
from mcnode.enclave import ClientSession, SessionId
from mcnode.node.enclave_process import EnclaveProcess
from mcnode.node.logs import NodeLog
from mcnode.transaction import Tx
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(
    ledger_dir: Path, keys: Path, txs: list[Tx], in_flight: int
) -> tuple[float, float]:
    """(txs per second, enclave CPU ms per tx) proposing `txs` with `in_flight` at most."""
    enclave = EnclaveProcess(ledger_dir, keys, DEFAULT_MINIMUM_FEE, NodeLog("bench"))
    info = await enclave.start()
    try:
        sessions: list[tuple[SessionId, ClientSession]] = []
        for _ in range(in_flight):
            session = ClientSession.connect(None, None, expected_identity=info.identity_public_key)
            session_id, reply = await enclave.client_handshake(session.first_message)
            session.finish(reply)
            sessions.append((session_id, session))
        queue: asyncio.Queue[Tx] = asyncio.Queue()
        for tx in txs:
            queue.put_nowait(tx)

        async def client(session_id: SessionId, session: ClientSession) -> None:
            while not queue.empty():
                tx = queue.get_nowait()
                await enclave.client_tx_propose(session_id, session.encrypt_tx(tx.to_bytes()))

        cpu0, start = cpu_seconds(info.pid), time.perf_counter()
        await asyncio.gather(*(client(s, c) for s, c in sessions))
        wall, cpu = time.perf_counter() - start, cpu_seconds(info.pid) - cpu0
        return len(txs) / wall, 1000 * cpu / len(txs)
    finally:
        await enclave.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--txs", type=int, default=96)
    parser.add_argument("--in-flight", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    levels = [int(n) for n in args.in_flight.split(",")]
    runs: dict[int, list[tuple[float, float]]] = {n: [] for n in levels}
    with tempfile.TemporaryDirectory() as tmp:
        ledger, alice, bob = make_ledger(Path(tmp) / "ledger", SeededRandom(3))
        t0 = time.monotonic()
        txs = make_txs(ledger, alice, bob, args.txs)
        print(f"built {len(txs)} txs in {time.monotonic() - t0:.1f} s")
        try:
            for r in range(args.rounds):
                for n in levels:
                    keys = Path(tmp) / f"keys-{r}-{n}"
                    runs[n].append(asyncio.run(one_round(ledger.path, keys, txs, n)))
        finally:
            ledger.close()
    results = {
        f"{n} in flight": {
            "tx_per_s": round(statistics.median(r[0] for r in runs[n]), 1),
            "enclave_cpu_ms_per_tx": round(statistics.median(r[1] for r in runs[n]), 2),
        }
        for n in levels
    }
    for name, figures in results.items():
        print(name, " ".join(f"{k}={v}" for k, v in figures.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
