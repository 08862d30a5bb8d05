"""The client API's answer to a proposal while the validator is not serving: a moment's
catch-up is a wait, a longer one a NOT_SERVING refusal (`api.SERVING_WAIT`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from host_fakes import tx
from mcnode.node import api
from mcnode.node.api import ClientApi
from mcnode.node.metrics import NodeMetrics
from mcnode.transaction.validation import WellFormedTxContext
from mcnode.wire import consensus_pb2 as pb

X = tx(7)


class Enclave:
    def __init__(self) -> None:
        self.checked = 0

    async def client_tx_propose(self, session: bytes, ciphertext: bytes) -> WellFormedTxContext:
        self.checked += 1
        return X

    async def forget(self, tx_hashes: Sequence[bytes]) -> None:
        pass


class Txs:
    def __init__(self) -> None:
        self.added: list[bytes] = []

    def add_client_tx(self, ctx: WellFormedTxContext) -> bool:
        self.added.append(ctx.tx_hash)
        return True


def client_api(serving: Any, enclave: Enclave, txs: Txs) -> ClientApi:
    return ClientApi(
        enclave,  # type: ignore[arg-type]
        txs,
        serving=serving,
        pending=lambda: 0,
        pending_limit=10,
        num_blocks=lambda: 5,
        node_config=pb.NodeConfigResponse(),
        metrics=NodeMetrics(),
    )


def propose(a: ClientApi) -> pb.ProposeTxResponse:
    request = pb.ProposeTxRequest(session_id=b"s", ciphertext=b"c")
    return asyncio.run(a.ProposeTx(request, None))  # type: ignore[arg-type]


def test_a_proposal_during_a_short_catch_up_waits_and_is_accepted() -> None:
    loop_time: list[float] = []

    def serving() -> bool:  # not serving for the first ~50 ms of the call
        now = asyncio.get_running_loop().time()
        loop_time.append(now)
        return now - loop_time[0] > 0.05

    enclave, txs = Enclave(), Txs()
    r = propose(client_api(serving, enclave, txs))
    assert r.result == "OK" and r.tx_hash == X.tx_hash
    assert enclave.checked == 1 and txs.added == [X.tx_hash]
    assert loop_time[-1] - loop_time[0] < api.SERVING_WAIT


def test_a_proposal_during_a_long_catch_up_is_refused_unchecked() -> None:
    enclave, txs = Enclave(), Txs()
    a = client_api(lambda: False, enclave, txs)
    r = propose(a)
    assert r.result == "NOT_SERVING" and r.num_blocks == 5
    assert enclave.checked == 0 and txs.added == []
    assert a.metrics.txs_rejected.labels("NOT_SERVING")._value.get() == 1


def test_a_serving_validator_does_not_wait() -> None:
    calls: list[int] = []
    a = client_api(lambda: calls.append(1) or True, Enclave(), Txs())
    assert propose(a).result == "OK" and calls == [1]
