"""The host's pool of pending transactions: what the node may nominate.

It holds only `WellFormedTxContext`s (hash, fee, tombstone, key images, output keys): the
plaintext stays in the enclave. First come, first served; deduplicated by hash; bounded
(over the limit the client hears OVER_CAPACITY); pruned after each block (included,
expired at their tombstone, or no longer well formed).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from mcnode.transaction.validation import WellFormedTxContext


class PoolFull(Exception):
    """The pending pool is at its limit."""


class PendingPool:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._txs: OrderedDict[bytes, WellFormedTxContext] = OrderedDict()

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: object) -> bool:
        return tx_hash in self._txs

    def get(self, tx_hash: bytes) -> WellFormedTxContext | None:
        return self._txs.get(tx_hash)

    def add(self, ctx: WellFormedTxContext) -> bool:
        """Add a tx; False if already pending. Raises PoolFull at the limit."""
        if ctx.tx_hash in self._txs:
            return False
        if len(self._txs) >= self.limit:
            raise PoolFull(f"{len(self._txs)} txs pending (limit {self.limit})")
        self._txs[ctx.tx_hash] = ctx
        return True

    def oldest(self, n: int) -> list[bytes]:
        """The first `n` pending tx hashes in arrival order: what we nominate."""
        out = []
        for h in self._txs:
            if len(out) >= n:
                break
            out.append(h)
        return out

    def remove(self, hashes: Iterable[bytes]) -> None:
        for h in hashes:
            self._txs.pop(h, None)

    def prune(
        self, next_block_index: int, still_valid: Callable[[WellFormedTxContext], bool]
    ) -> list[bytes]:
        """Drop txs that expired (tombstone <= next block) or are no longer valid."""
        dropped = [
            h
            for h, c in self._txs.items()
            if c.tombstone_block <= next_block_index or not still_valid(c)
        ]
        self.remove(dropped)
        return dropped


def combine_txs(
    values: Sequence[bytes],
    lookup: Callable[[bytes], WellFormedTxContext | None],
    max_txs: int,
) -> list[bytes]:
    """SCP's combine function for tx hashes: highest fee first (ties by hash), skipping any
    tx whose key image or output key clashes with one already taken, at most `max_txs`.
    Deterministic: every node turns the same candidates into the same block."""
    ctxs = [c for c in (lookup(v) for v in values) if c is not None]
    ctxs.sort(key=lambda c: (-c.fee, c.tx_hash))
    images: set[bytes] = set()
    outputs: set[bytes] = set()
    out: list[bytes] = []
    for c in ctxs:
        if len(out) >= max_txs:
            break
        if images.intersection(c.key_images) or outputs.intersection(c.output_public_keys):
            continue
        images.update(c.key_images)
        outputs.update(c.output_public_keys)
        out.append(c.tx_hash)
    return out
