"""SCP and simulator benchmarks (plain script; prints figures, last line JSON).

    python bench/bench_scp.py            # all
    python bench/bench_scp.py --quick    # smaller runs

Figures:
  sim_mesh9_5_cpu_s      CPU seconds to simulate mesh 9/5 with 1000 values (<= 100 per slot)
  sim_tiered35_cpu_per_slot_ms   CPU per externalized slot, tiered 7 orgs x 3 + 14 watchers
  handle_msg_per_s       Node.handle_message calls per second on one node of a 9-node mesh,
                         replaying the exact message stream that node saw in a simulation
  encode_msg_per_s       Msg.to_bytes() per second over that stream (fresh Msg objects, so
                         the cached encoding is not what is timed)
  decode_msg_per_s       Msg.from_bytes() per second over the encodings of that stream
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from mcnode.scp import Msg, Node
from mcnode.sim.network import SimConfig, Simulator, simulate
from mcnode.sim.topology import mesh, tiered


def sim_mesh(values: int) -> float:
    r = simulate(mesh(9, 5), SimConfig(seed=1, values=values, max_values_per_slot=100))
    assert r.agreement and r.live
    return r.cpu_s


def sim_tiered(values: int) -> tuple[float, int]:
    r = simulate(tiered(7, 3, 14), SimConfig(seed=1, values=values, max_values_per_slot=100))
    assert r.agreement and r.live
    return r.cpu_s, r.slots


def record_stream(values: int) -> list[tuple[float, Msg]]:
    """Run mesh 9/5 and record every message delivered to n0, with its arrival time."""
    sim = Simulator(mesh(9, 5), SimConfig(seed=2, values=values, max_values_per_slot=100))
    seen: list[tuple[float, Msg]] = []
    orig = sim._ev_deliver

    def tap(dst: str, msg: Msg) -> None:
        if dst == "n0":
            seen.append((sim.now, msg))
        orig(dst, msg)

    sim._ev_deliver = tap  # type: ignore[method-assign]
    sim.run()
    return seen


def handle_rate(stream: list[tuple[float, Msg]], qset: object) -> tuple[float, int]:
    best = 0.0
    for _ in range(3):
        t = [0.0]
        node = Node(
            "n0",
            qset,
            lambda v: True,
            lambda vs: sorted(vs)[:100],  # type: ignore[arg-type]
            clock=lambda t=t: t[0],
        )
        start = time.perf_counter()
        for at, msg in stream:
            t[0] = at
            node.handle_message(msg)
            if node.next_timeout() is not None and node.next_timeout() <= at:  # type: ignore[operator]
                node.process_timeouts()
        dt = time.perf_counter() - start
        best = max(best, len(stream) / dt)
    return best, node.current_slot_index - 1


def codec_rates(stream: list[tuple[float, Msg]]) -> tuple[float, float]:
    """Best of 5 passes: (encodes per second, decodes per second) over the stream."""
    msgs = [msg for _, msg in stream]
    fresh = [(m.sender_id, m.slot_index, m.quorum_set, m.topic) for m in msgs]
    encoded = [m.to_bytes() for m in msgs]
    enc = dec = 0.0
    for _ in range(5):
        start = time.perf_counter()
        for fields in fresh:
            Msg(*fields).to_bytes()
        enc = max(enc, len(fresh) / (time.perf_counter() - start))
        start = time.perf_counter()
        for data in encoded:
            Msg.from_bytes(data)
        dec = max(dec, len(encoded) / (time.perf_counter() - start))
    return enc, dec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    n = 200 if a.quick else 1000
    print(
        f"machine: {platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    mesh_cpu = min(sim_mesh(n) for _ in range(3))
    print(f"sim mesh 9/5, {n} values:            {mesh_cpu:.2f} s CPU")
    tcpu, tslots = sim_tiered(n)
    print(
        f"sim tiered 35 nodes, {n} values:     {tcpu:.2f} s CPU over {tslots} slots "
        f"= {1000 * tcpu / max(tslots, 1):.0f} ms CPU per slot"
    )
    stream = record_stream(n)
    rate, slots = handle_rate(stream, mesh(9, 5)["n0"])
    print(
        f"handle_message, n0 of mesh 9/5:      {rate:,.0f} msgs/s "
        f"({len(stream)} msgs, {slots} slots)"
    )
    enc, dec = codec_rates(stream)
    print(f"Msg.to_bytes / from_bytes, that stream: {enc:,.0f} / {dec:,.0f} msgs/s")
    print(
        json.dumps(
            {
                "sim_mesh9_5_cpu_s": round(mesh_cpu, 3),
                "sim_tiered35_cpu_per_slot_ms": round(1000 * tcpu / max(tslots, 1), 1),
                "handle_msg_per_s": round(rate),
                "encode_msg_per_s": round(enc),
                "decode_msg_per_s": round(dec),
                "values": n,
            }
        )
    )


if __name__ == "__main__":
    main()
