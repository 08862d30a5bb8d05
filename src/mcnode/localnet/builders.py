"""Payment builders: worker processes that prove and sign the load generator's payments.

Proving a 1-in/2-out payment is ~28 ms of one core; the load generator's own process
(which submits, syncs blocks and times commits) cannot do that 50 times a second. So the
generator picks each payment's input and ring itself (it alone knows which outputs are
spendable and not already promised to another payment), and a worker process turns that
into a signed `Tx`. Workers hold the sample accounts' keys (read from the key files, in
the worker) and nothing else: no ledger, no sockets, no choice of what to spend.

A worker also opens the outputs of the payment it built with the owners' view keys, so
that the generator knows its own change and payments as soon as they land in a block,
without scanning every new output with every account; and it scans chunks of the ledger
at start-up, in parallel, for the same reason.

Rules of this file: workers are `spawn`ed (never forked from a process with threads and
gRPC channels), ignore SIGINT (the parent decides when to stop) and die with the parent
(PR_SET_PDEATHSIG). A job says how nice its worker should be: building ahead before the
timed run uses whole cores; topping up during it yields to the validators."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mcnode.client.keys import read_account_key
from mcnode.crypto.rng import system_random
from mcnode.localnet.procs import die_with_parent
from mcnode.transaction.account import AccountKey
from mcnode.transaction.builder import InputCredentials, TransactionBuilder
from mcnode.transaction.mlsag import key_image
from mcnode.transaction.txout import OwnedOutput, Scanner, TxOut

#: Niceness of a worker while the timed run goes on: it builds with what the validators
#: leave (CFS gives a nice-10 process ~1/10 of a contended core's share).
NICE_DURING_RUN = 10
SCAN_CHUNK = 400


@dataclass(frozen=True, slots=True)
class Coin:
    """An output one of the sample accounts owns: who, what, and its key image."""

    account: int
    owned: OwnedOutput
    key_image: bytes

    @property
    def public_key(self) -> bytes:
        return self.owned.tx_out.public_key

    @property
    def value(self) -> int:
        return self.owned.value


@dataclass(frozen=True, slots=True)
class BuildJob:
    """Pay `amount` from account `sender` to account `recipient`, spending exactly
    `credentials` (the input and its ring, chosen by the generator)."""

    sender: int
    recipient: int
    amount: int
    fee: int
    tombstone: int
    ring_blocks: int  # the ledger's height when the ring (and its proofs) was drawn
    credentials: InputCredentials
    nice: int = 0


@dataclass(frozen=True, slots=True)
class Payment:
    """A signed payment ready to submit, and the outputs it will give us once committed."""

    tx_bytes: bytes
    key_images: tuple[bytes, ...]
    tombstone: int
    ring_blocks: int  # a validator needs this many blocks to check its proofs
    creates: tuple[Coin, ...]
    cpu_s: float  # what building it cost its worker


# -- the worker side ---------------------------------------------------------------------
_ACCOUNTS: list[AccountKey] = []
_SCANNERS: list[Scanner] = []


def _worker_init(account_files: Sequence[str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    if os.getppid() == 1:  # the parent died before we could ask to follow it
        os._exit(0)
    _ACCOUNTS[:] = [read_account_key(p) for p in account_files]
    _SCANNERS[:] = [Scanner(a) for a in _ACCOUNTS]


def _nice_at_least(level: int) -> None:
    if level > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, level)


def _open(tx_out: TxOut, first: Sequence[int]) -> Coin | None:
    """The coin `tx_out` is, if one of our accounts owns it: tries `first`, then the rest."""
    order = list(dict.fromkeys([*first, *range(len(_SCANNERS))]))
    for i in order:
        owned = _SCANNERS[i].try_open(tx_out)
        if owned is not None:
            return Coin(i, owned, key_image(owned.onetime_private))
    return None


def build_payment(job: BuildJob) -> Payment:
    """In a worker: prove and sign `job`'s payment; open its outputs for the generator."""
    _nice_at_least(job.nice)
    cpu0 = time.process_time()
    b = TransactionBuilder(_ACCOUNTS[job.sender], fee=job.fee, tombstone_block=job.tombstone)
    b.add_input(job.credentials)
    b.add_output(_ACCOUNTS[job.recipient].default_address, job.amount)
    tx = b.build(system_random)
    creates = []
    for tx_out in tx.prefix.outputs:
        coin = _open(tx_out, (job.recipient, job.sender))
        if coin is not None:
            creates.append(coin)
    return Payment(
        tx_bytes=tx.to_bytes(),
        key_images=tx.key_images,
        tombstone=job.tombstone,
        ring_blocks=job.ring_blocks,
        creates=tuple(creates),
        cpu_s=time.process_time() - cpu0,
    )


def scan_chunk(tx_outs: Sequence[TxOut]) -> tuple[list[Coin], float]:
    """In a worker: the coins among `tx_outs`, and the CPU seconds it took. Outputs are
    tried first with the account that owned the previous find (runs of one owner are
    common in a ledger this generator wrote), then with each other account."""
    cpu0 = time.process_time()
    found: list[Coin] = []
    last: tuple[int, ...] = ()
    for tx_out in tx_outs:
        coin = _open(tx_out, last)
        if coin is not None:
            found.append(coin)
            last = (coin.account,)
    return found, time.process_time() - cpu0


# -- the parent side ---------------------------------------------------------------------
class BuilderPool:
    """`workers` builder processes, started on first use."""

    def __init__(self, account_files: Sequence[Path], workers: int) -> None:
        if workers < 1:
            raise ValueError(f"need at least one builder process, got {workers}")
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=([str(p) for p in account_files],),
        )

    def warm(self) -> None:
        """Start every worker now (each takes ~1 s to import what it needs)."""
        for _ in range(self.workers):
            self._executor.submit(os.getpid)

    def build(self, job: BuildJob) -> Future[Payment]:
        return self._executor.submit(build_payment, job)

    def scan(self, tx_outs: Sequence[TxOut]) -> tuple[list[Coin], float]:
        """Every coin among `tx_outs` (in ledger order), scanned in chunks by the workers;
        and the workers' CPU seconds."""
        chunks = [tx_outs[i : i + SCAN_CHUNK] for i in range(0, len(tx_outs), SCAN_CHUNK)]
        coins: list[Coin] = []
        cpu = 0.0
        for found, spent in self._executor.map(scan_chunk, chunks):
            coins += found
            cpu += spent
        return coins, cpu

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
