"""BlockMaker when catch-up appends the slot's block while the enclave forms ours."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from mcnode.node.blocks import BlockMaker
from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics


class Ledger:
    def __init__(self) -> None:
        self.height = 5
        self.appended: list[Any] = []

    def num_blocks(self) -> int:
        return self.height

    def last_block(self) -> object:
        return SimpleNamespace(index=self.height - 1)

    def append_block(self, data: Any) -> None:  # catch-up got there first: it would refuse
        raise AssertionError("appended a block the ledger already holds")


class Enclave:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def form_block(self, values: list[bytes], parent: object, signed_at: int) -> Any:
        await asyncio.sleep(0)
        self.ledger.height += 1  # catch-up appended block 5 while the enclave worked
        return SimpleNamespace(block_data=object(), included=(), dropped=())


def test_a_block_that_catch_up_appended_meanwhile_is_no_error() -> None:
    ledger = Ledger()
    metrics = NodeMetrics()
    maker = BlockMaker(ledger, Enclave(ledger), None, metrics, NodeLog("t"), lambda: 0.0)  # type: ignore[arg-type]
    made = asyncio.run(maker.make(5, [b"x" * 32], 0.01))
    assert not made.made
    assert ledger.height == 6
