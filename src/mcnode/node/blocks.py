"""Block making: a decided slot becomes block k in the ledger, and the pool moves on.

Rules of this file: called by the host after an SCP call returned (never inside one), with
the slot SCP decided and its tx hashes. The enclave forms and signs the block from the txs
it holds; the ledger appends it in one write transaction; the archive gets a copy. A
storage failure that makes our own ledger unusable is `LedgerUnusable` (the node stops);
any other failure to form or append is reported (`made` is False) and the host catches
up from peers instead. Slot k of SCP decides block k (the origin block is block 0).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mcnode.enclave import EnclaveError
from mcnode.ledger.archive import LocalDirectory, export_archive
from mcnode.ledger.block import Block, BlockData
from mcnode.ledger.errors import LedgerCorruptError, LedgerError
from mcnode.node.enclave_port import EnclavePort
from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics
from mcnode.node.pending import PendingPool


class LedgerUnusable(RuntimeError):
    """Our own ledger cannot be written: the node stops with this message."""


class LedgerPort(Protocol):
    """The ledger as the host uses it (`ledger.LedgerDB`; a fake in tests)."""

    def num_blocks(self) -> int: ...

    def last_block(self) -> Block | None: ...

    def get_block(self, index: int) -> Block: ...

    def contains_key_image(self, key_image: bytes) -> bool: ...

    def append_block(self, data: BlockData) -> None: ...

    def append_blocks(self, blocks: Sequence[BlockData]) -> None: ...

    def iter_block_data(self, start: int = 0, stop: int | None = None) -> Iterator[BlockData]: ...


@dataclass(frozen=True)
class Made:
    """What became of a decided slot: whether its block is in the ledger, and the txs
    the block settled (included, or dropped by the enclave's block checks)."""

    made: bool
    done: tuple[bytes, ...] = ()
    txs: int = 0  # txs the block holds


class BlockMaker:
    def __init__(
        self,
        ledger: LedgerPort,
        enclave: EnclavePort,
        pool: PendingPool,
        metrics: NodeMetrics,
        log: NodeLog,
        wall: Callable[[], float],
        archive_export: Path | None = None,
    ) -> None:
        self.ledger = ledger
        self.enclave = enclave
        self.pool = pool
        self.metrics = metrics
        self.log = log
        self.wall = wall
        self.archive = None if archive_export is None else LocalDirectory(archive_export)

    async def make(self, slot: int, values: Sequence[bytes], elapsed: float) -> Made:
        """Form, append and publish block `slot` from `values` (tx hashes, in order)."""
        if self.ledger.num_blocks() != slot:
            self.log.warning(
                "externalized out of step with the ledger",
                slot=slot,
                blocks=self.ledger.num_blocks(),
            )
            return Made(False)
        parent = self.ledger.last_block()
        try:
            if parent is None:
                raise LedgerError("the ledger has no origin block")
            formed = await self.enclave.form_block(list(values), parent, int(self.wall()))
            if self.ledger.num_blocks() != slot:  # catch-up appended it meanwhile: done
                self.log.warning(
                    "block came by catch-up while we formed it",
                    block=slot,
                    blocks=self.ledger.num_blocks(),
                )
                return Made(False)
            data = formed.block_data
            if data is None:
                raise EnclaveError("no transaction of the slot survived the block checks")
            self.ledger.append_block(data)
        except LedgerCorruptError as e:
            raise LedgerUnusable(f"ledger unusable: {e}") from e
        except (EnclaveError, LedgerError) as e:
            self.metrics.errors.labels("form_block").inc()
            self.log.error(
                "could not form block; will catch up from peers", slot=slot, error=str(e)
            )
            return Made(False)
        dropped = [h for h, _ in formed.dropped]
        self.metrics.txs_committed.inc(len(formed.included))
        self.log.info(
            "block appended",
            block=slot,
            txs=len(formed.included),
            dropped=len(dropped),
            id=data.block.id,
            ms=round(elapsed * 1000, 1),
        )
        return Made(True, (*formed.included, *dropped), len(formed.included))

    async def after_blocks(self, done: Sequence[bytes] = ()) -> None:
        """The ledger grew (a block made, or blocks caught up): the pool and the enclave
        drop what the new blocks settled (`done`) and every pending tx that can no longer
        go in a block (spent, expired, clashing); the new blocks go to the archive."""
        n = self.ledger.num_blocks()
        self.metrics.block_height.set(n)
        self.pool.remove(done)
        try:
            stale = set(await self.enclave.block_appended(n, done))
        except EnclaveError as e:  # the enclave restarts; the pool is emptied then
            self.log.warning("pending txs not re-checked", blocks=n, error=str(e))
            stale = set()
        dropped = self.pool.prune(n, lambda ctx: ctx.tx_hash not in stale)
        if dropped:
            self.metrics.txs_rejected.labels("STALE_AFTER_BLOCK").inc(len(dropped))
        self.metrics.pending.set(len(self.pool))
        self._export()

    def _export(self) -> None:
        if self.archive is None:
            return
        try:
            export_archive(self.ledger, self.archive)  # type: ignore[arg-type]
        except Exception as e:  # an archive problem must not stop consensus
            self.metrics.errors.labels("archive_export").inc()
            self.log.error("archive export failed", error=str(e))
