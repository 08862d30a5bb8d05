"""Talking to the validators for the load generator: a thread that watches their heights
(to time commits), and submitter threads that propose payments over attested sessions.

Neither decides anything: the watcher notes what it hears, a submitter proposes what it
is handed and puts the answer on a queue, and `load.LoadGenerator` (one thread) acts on
both. A submitter sets `InFlight.submitted_at` just before it proposes, so the time a
payment waited for a free submitter is not charged to the network."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from mcnode.client.node_client import ClientError, NodeClient
from mcnode.localnet.builders import Payment
from mcnode.localnet.ledgerwatch import HeightFollower

# The watcher asks each validator for its height every WATCH_EACH s (25 calls/s: half of
# what the gate allows one source by default, 50 blockchain calls/s per validator), the
# validators in turn, but never more often than WATCH_MIN in all.
WATCH_EACH = 0.04
WATCH_MIN = 0.01
SUBMITTERS_PER_NODE = 2


class HeightWatcher(HeightFollower):
    """A thread that polls the validators' heights in turn and notes when each block
    index was first reported, and each validator's last reported height. Its own
    channels: no enclave session."""

    thread_name = "height-watcher"

    def __init__(self, nodes: dict[str, str]) -> None:
        super().__init__()
        self.clients = [(name, NodeClient(addr, timeout=1.0)) for name, addr in nodes.items()]
        self.every = max(WATCH_MIN, WATCH_EACH / max(1, len(self.clients)))

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.every):
            name, client = self.clients[i % len(self.clients)]
            i += 1
            try:
                n = client.last_block_info().num_blocks
            except ClientError:
                continue
            self.heights[name] = n
            self._reached(n, time.monotonic())

    def _release(self) -> None:
        for _, c in self.clients:
            c.close()


@dataclass
class InFlight:
    """A payment handed to a submitter: where, since when, and what became of it."""

    payment: Payment
    node: str
    tried: set[str]
    submitted_at: float = 0.0  # set by the submitter just before it proposes
    answered: bool = False
    accepted: bool = False
    committed: bool = False


@dataclass(frozen=True)
class Answer:
    flight: InFlight
    node: str
    result: str | None  # None: the validator could not be reached


class Submitters:
    """`per_node` threads per validator, each with its own attested session, proposing
    what `send` hands them and putting each answer on `answers`."""

    def __init__(self, nodes: dict[str, str], make_client: Callable[[str], NodeClient]) -> None:
        self.answers: queue.SimpleQueue[Answer] = queue.SimpleQueue()
        self._jobs = {name: queue.SimpleQueue[InFlight | None]() for name in nodes}
        self.outstanding: Counter[str] = Counter()  # handed over, not answered yet
        self._threads: list[threading.Thread] = []
        for name, addr in nodes.items():
            for k in range(SUBMITTERS_PER_NODE):
                t = threading.Thread(
                    target=self._run,
                    args=(name, make_client(addr)),
                    name=f"submit-{name}-{k}",
                    daemon=True,
                )
                t.start()
                self._threads.append(t)

    @property
    def capacity(self) -> int:
        """Payments one validator may hold at once: one being proposed per thread, one
        waiting behind each."""
        return 2 * SUBMITTERS_PER_NODE

    def send(self, flight: InFlight) -> None:
        self.outstanding[flight.node] += 1
        self._jobs[flight.node].put(flight)

    def answered(self, node: str) -> None:
        self.outstanding[node] -= 1

    def _run(self, name: str, client: NodeClient) -> None:
        try:
            # Attest now, not on the first payment; a failure shows on the first proposal.
            with contextlib.suppress(Exception):
                client.connect()
            while True:
                flight = self._jobs[name].get()
                if flight is None:
                    return
                flight.submitted_at = time.monotonic()
                try:
                    r = client.propose_tx(flight.payment.tx_bytes).result
                except ClientError as e:
                    r = "OVER_BUDGET" if "RESOURCE_EXHAUSTED" in str(e) else None
                self.answers.put(Answer(flight, name, r))
        finally:
            client.close()

    def close(self) -> None:
        for jobs in self._jobs.values():
            for _ in range(SUBMITTERS_PER_NODE):
                jobs.put(None)
        deadline = time.monotonic() + 6.0  # a proposal in progress times out in 5 s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
