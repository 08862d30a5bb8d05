"""The enclave's worker thread: a lone tx's ring signatures are checked on it while the
calling thread checks the range proof; for txs validated together, their batch of range
proofs runs on it while the calling thread checks each tx's ring signatures.

`transaction/` never touches threads (house rule); running two rules side by side is the
enclave's choice, handed to `validate_tx` / `validate_txs` as their `beside`. Both rules
are native code that releases the GIL, so with a free core a single tx is checked in
~3.1 ms of wall time instead of ~4.5 (README, "Validation runs on the event loop"). One
thread per process is enough: every enclave call holds the enclave's lock, so one call
validates at a time.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mcnode.transaction.validation import RunBeside


@functools.cache
def _pool() -> ThreadPoolExecutor | None:
    """The one worker; None when the process may use one CPU only (the thread would only
    add hand-offs there: pinned verify 208 -> 216 tx/s without it)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cpus or 1) < 2:
        return None
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="enclave-check")


def run_beside() -> RunBeside | None:
    """What the enclave passes to `validate_tx` as `beside`: the worker, or None (check
    everything on the calling thread) when the process has one CPU."""
    pool = _pool()
    if pool is None:
        return None

    def beside(check: Callable[[], None]) -> Callable[[], object]:
        return pool.submit(check).result

    return beside
