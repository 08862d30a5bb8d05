"""What a save costs when every validator of a local network saves at the same moment.

    python bench/bench_fsync.py [--dir D] [--procs 1,4,7] [--rounds 300]

Each validator makes its SCP restart state durable before each new ballot statement
leaves (`node/state.py`, `ScpState.save`: one pwrite of a fixed slot and one fdatasync).
In a ballot step every validator does that at about the same moment, and in `mcnode
localnet` all of them share this machine's one disk. Here N processes (one per
validator) each own an `ScpState` in D (default: the temp directory, where localnet
networks live), meet at a barrier, then each times one `save` of a 4-validator PREPARE
statement; repeated `--rounds` times. Prints p50 / p90 / p99 of one save, and of the
slowest save of each round (what a step waits for when it needs every validator's
message). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from mcnode.node.state import ScpState
from mcnode.scp import Ballot, Msg, Prepare, QuorumSet


def _statement(node: str, i: int) -> Msg:
    """A ballot statement of a 4-validator mesh, as a validator saves it (new each round,
    as each save is of a new statement)."""
    qset = QuorumSet(2, ["v1", "v2", "v3"])
    values = tuple(os.urandom(32) for _ in range(2))
    return Msg(node, 10 + i, qset, Prepare(Ballot(1, values), None, None, 0, 0))


def _worker(path: str, rounds: int, barrier: mp.synchronize.Barrier, out: mp.Queue) -> None:
    state = ScpState(Path(path))
    msgs = [_statement("v0", i) for i in range(rounds)]
    times = []
    try:
        for msg in msgs:
            barrier.wait()
            t0 = time.perf_counter()
            state.save(msg)
            times.append(time.perf_counter() - t0)
    finally:
        state.close()
    out.put(times)


def q(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(1000 * xs[min(len(xs) - 1, int(p * len(xs)))], 3)


def run(directory: Path, procs: int, rounds: int) -> dict[str, object]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(procs)
    out: mp.Queue = ctx.Queue()
    ps = [
        ctx.Process(target=_worker, args=(str(directory / f"v{k}"), rounds, barrier, out))
        for k in range(procs)
    ]
    for p in ps:
        p.start()
    per_proc = [out.get() for _ in ps]
    for p in ps:
        p.join()
    every = [t for ts in per_proc for t in ts]
    slowest = [max(ts[i] for ts in per_proc) for i in range(rounds)]
    return {
        "procs": procs,
        "save_ms": {"p50": q(every, 0.5), "p90": q(every, 0.9), "p99": q(every, 0.99)},
        "slowest_of_round_ms": {
            "p50": q(slowest, 0.5),
            "p90": q(slowest, 0.9),
            "mean": round(1000 * statistics.mean(slowest), 3),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--procs", default="1,4,7")
    ap.add_argument("--rounds", type=int, default=300)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        rows = [run(Path(d), int(n), a.rounds) for n in a.procs.split(",")]
    for r in rows:
        print(
            f"{r['procs']} processes: one save p50/p90/p99 {r['save_ms']} ms; "
            f"slowest of a round {r['slowest_of_round_ms']} ms"
        )
    print(json.dumps({"machine": f"{platform.machine()}, {os.cpu_count()} cores", "rows": rows}))


if __name__ == "__main__":
    main()
