"""Benchmarks for `mcnode.fbas`: prints figures, asserts nothing.

    python bench/bench_fbas.py [--repeat N]

In-process figures time the analysis alone on an already-parsed network (min and median of
N runs); the CLI figures time a whole `mcnode fbas ...` process (interpreter start, imports,
JSON parse, analysis), once each after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mcnode.fbas import Fbas, Node, QSet, check_intersection, from_json, minimal_blocking_sets
from mcnode.fbas.splitting import minimal_splitting_set
from mcnode.fbas.toptier import top_tier

DATA = Path(__file__).resolve().parents[1] / "examples" / "networks"
PUBNET = DATA / "stellar_pubnet_2025-07-20.json"


def symmetric(orgs: int, per: int, t_top: int, t_in: int) -> Fbas:
    """Every node: t_top of the `orgs` organizations, each t_in of its `per` nodes."""
    inner = tuple(QSet(t_in, tuple(f"o{o}n{i}" for i in range(per))) for o in range(orgs))
    q = QSet(t_top, (), inner)
    nodes = tuple(Node(f"o{o}n{i}", q, org=f"o{o}") for o in range(orgs) for i in range(per))
    return Fbas(nodes)


def timed(label: str, fn: Callable[[], object], repeat: int) -> None:
    runs = []
    result: object = None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t)
    print(
        f"{label:<52} min {min(runs):7.3f} s  median {statistics.median(runs):7.3f} s  "
        f"-> {summary(result)}"
    )


def summary(result: object) -> str:
    for attr in ("intersection", "size"):
        if hasattr(result, attr):
            return f"{attr}={getattr(result, attr)}"
    if hasattr(result, "nodes"):
        return f"top tier {len(result.nodes)}"  # type: ignore[attr-defined]
    return ""


def cli(label: str, args: list[str]) -> None:
    cmd = [shutil.which("mcnode") or "mcnode", "fbas", *args]
    subprocess.run(cmd, capture_output=True, check=False)  # warm the page cache
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, check=False)
    print(f"{label:<52} wall {time.perf_counter() - t:7.3f} s  (exit {r.returncode})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    n = ap.parse_args().repeat
    t = time.perf_counter()
    pubnet = from_json(json.loads(PUBNET.read_text()))
    print(f"{'pubnet 2025 (637 nodes): read + parse':<52} once {time.perf_counter() - t:7.3f} s")
    timed("pubnet 2025: intersection", lambda: check_intersection(pubnet), n)
    timed("pubnet 2025: minimal blocking set", lambda: minimal_blocking_sets(pubnet), n)
    timed(
        "pubnet 2025: minimal blocking set (ihs method)",
        lambda: minimal_blocking_sets(pubnet, method="ihs"),
        n,
    )
    timed("pubnet 2025: minimal splitting set", lambda: minimal_splitting_set(pubnet), n)
    timed("pubnet 2025: top tier", lambda: top_tier(pubnet), n)
    cli("CLI: mcnode fbas check pubnet", ["check", str(PUBNET)])
    cli("CLI: mcnode fbas blocking pubnet", ["blocking", str(PUBNET)])
    sym = symmetric(20, 3, 14, 2)
    timed(
        "symmetric 20 orgs x 3 (14 of 20, 2 of 3): intersection", lambda: check_intersection(sym), n
    )
    tight = symmetric(20, 3, 11, 2)
    timed(
        "symmetric 20 orgs x 3 (11 of 20, 2 of 3): intersection",
        lambda: check_intersection(tight),
        n,
    )
    split = symmetric(20, 3, 10, 2)
    timed("symmetric 20 orgs x 3 (10 of 20): intersection", lambda: check_intersection(split), n)
    sym10 = symmetric(10, 3, 7, 2)
    timed(
        "symmetric 10 orgs x 3 (7 of 10): minimal blocking set",
        lambda: minimal_blocking_sets(sym10),
        n,
    )


if __name__ == "__main__":
    main()
