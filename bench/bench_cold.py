"""What a validator's per-message crypto costs warm, and cold as it runs in a local network.

    python bench/bench_cold.py [--evict-mb 8] [--calls 60]

In `mcnode localnet` nine processes share two cores, so each block every one of them runs
again on caches the others have emptied: a call costs 2-3x there what it costs repeated in
a loop. Here each call is timed twice: repeated ("warm", median of 5x `--calls`), and
right after writing one byte in every cache line of `--evict-mb` MB ("cold", median of
`--calls`), which empties the caches of this process's code and data as the other
processes would. What is timed, one 300-byte consensus message:
  - Ed25519 sign: ed25519-dalek (`crypto.signing.ed25519_sign`, what validators use) and
    OpenSSL through `cryptography` with the key parsed once (what they used before);
  - Ed25519 check (`ed25519_verify`, dalek);
  - `dedup_key`'s hash over the four signed parts: BLAKE2b (what validators use) and
    SHA-256 from OpenSSL (what it used before).
Prints microseconds per call; last line JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mcnode.crypto import SeededRandom
from mcnode.crypto.signing import ed25519_keypair, ed25519_sign, ed25519_verify
from mcnode.node.messages import dedup_key
from mcnode.wire import consensus_pb2 as pb


def _hash_parts(new: Callable[[], hashlib._Hash], parts: tuple[bytes, ...]) -> bytes:
    """`messages.dedup_key`'s construction with the hash as a parameter, so that both hashes
    are timed on the same bytes without the protobuf field reads (`main` checks that with
    BLAKE2b it is `dedup_key`)."""
    h = new()
    for p in parts:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)
    return h.digest()


def timed(fn: Callable[[], object], calls: int, evict: bytearray | None) -> float:
    """Median microseconds of one call: repeated, or each after `evict` is written."""
    out = []
    for _ in range(calls):
        if evict is not None:
            for i in range(0, len(evict), 64):
                evict[i] = (evict[i] + 1) & 0xFF
        start = time.perf_counter_ns()
        fn()
        out.append(time.perf_counter_ns() - start)
    return statistics.median(out) / 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evict-mb", type=int, default=8)
    ap.add_argument("--calls", type=int, default=60)
    a = ap.parse_args()
    seed, public = ed25519_keypair(SeededRandom(1))
    msg = SeededRandom(2)(300)
    sig = ed25519_sign(seed, msg)
    parts = (msg, SeededRandom(3)(32), public, sig)
    wire = pb.ConsensusMsg(scp_msg=parts[0], prev_block_id=parts[1], signer=public, signature=sig)
    blake2b = lambda: hashlib.blake2b(digest_size=32)  # noqa: E731
    assert _hash_parts(blake2b, parts) == dedup_key(wire)
    openssl_key = Ed25519PrivateKey.from_private_bytes(seed)
    assert openssl_key.sign(msg) == sig
    cases: dict[str, Callable[[], object]] = {
        "sign_dalek": lambda: ed25519_sign(seed, msg),
        "sign_openssl": lambda: openssl_key.sign(msg),
        "verify_dalek": lambda: ed25519_verify(public, msg, sig),
        "dedup_blake2b": lambda: _hash_parts(blake2b, parts),
        "dedup_sha256_openssl": lambda: _hash_parts(hashlib.sha256, parts),
    }
    evict = bytearray(a.evict_mb * 1024 * 1024)
    result: dict[str, object] = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "evict_mb": a.evict_mb,
    }
    print(f"{'call':24s} {'warm us':>8s} {'cold us':>8s}")
    for name, fn in cases.items():
        for _ in range(20):  # keys parsed, code loaded
            fn()
        warm = timed(fn, 5 * a.calls, None)
        cold = timed(fn, a.calls, evict)
        result[f"{name}_warm_us"] = round(warm, 1)
        result[f"{name}_cold_us"] = round(cold, 1)
        print(f"{name:24s} {warm:8.1f} {cold:8.1f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
