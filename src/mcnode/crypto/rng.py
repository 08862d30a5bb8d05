"""Where randomness enters crypto/ and transaction/: one injectable source of bytes.

Every function that needs randomness takes an `rng: RandomSource` argument. Production
callers pass `system_random` (the one place that reads `os.urandom`); tests, simulations and
benchmarks pass a `SeededRandom`, which makes every key, blinding and proof reproducible.
This module never reads a clock or a file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

#: A source of random bytes: `rng(n)` returns n fresh bytes.
RandomSource = Callable[[int], bytes]


def system_random(n: int) -> bytes:
    """n bytes from the operating system's CSPRNG."""
    return os.urandom(n)


class SeededRandom:
    """Deterministic byte stream: SHAKE-256(seed || counter) blocks. For tests only.

    Not a wallet RNG: anyone who knows the seed knows every secret drawn from it.
    """

    def __init__(self, seed: int | bytes) -> None:
        self._seed = seed if isinstance(seed, bytes) else seed.to_bytes(16, "little", signed=True)
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        self._counter += 1
        block = self._seed + self._counter.to_bytes(8, "little")
        return hashlib.shake_256(block).digest(n)
