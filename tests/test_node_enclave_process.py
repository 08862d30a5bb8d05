"""The host's side of the enclave process (node/enclave_process.py), against a real
child: its identity and evidence expiry, refreshed; a dead child fails calls at once."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from mcnode.crypto import SeededRandom
from mcnode.localnet.init import init_network
from mcnode.node.attestation import write_enclave_document
from mcnode.node.config import load_config
from mcnode.node.enclave_port import EnclaveUnavailable
from mcnode.node.enclave_process import EnclaveProcess
from mcnode.node.logs import NodeLog


def _process(tmp: Path) -> EnclaveProcess:
    init_network(tmp, nodes=2, accounts=1, outputs_per_account=1, rng=SeededRandom(2))
    cfg = load_config(tmp / "node0" / "node.toml")
    return EnclaveProcess(
        cfg.ledger_dir,
        cfg.state_dir / "enclave",
        cfg.min_fee,
        NodeLog("node0"),
        css=cfg.attestation.css,
        attestation=write_enclave_document(cfg.attestation, cfg.state_dir),
    )


def test_identity_says_simulated_evidence_and_is_refreshed(tmp_path: Path) -> None:
    async def go() -> None:
        enclave = _process(tmp_path)
        info = await enclave.start()
        try:
            assert info.attestation_mode == "sim"
            assert info.evidence_expires > time.time() + 86400  # the collateral's window
            refresher = asyncio.create_task(enclave.refresh_identity(0.05))
            deadline = time.monotonic() + 5
            while enclave.info is info:
                assert time.monotonic() < deadline, "the identity was not asked again"
                await asyncio.sleep(0.02)
            assert enclave.info is not None and enclave.info.pid == info.pid
            refresher.cancel()
        finally:
            await enclave.stop()

    asyncio.run(go())


def test_a_call_to_a_dead_enclave_fails_at_once(tmp_path: Path) -> None:
    async def go() -> float:
        enclave = _process(tmp_path)
        info = await enclave.start()
        try:
            os.kill(info.pid, signal.SIGKILL)
            t = time.monotonic()
            with pytest.raises(EnclaveUnavailable):
                for _ in range(100):  # the first calls may still be written before EOF
                    await enclave.forget([bytes(32)])
                    await asyncio.sleep(0.01)
            return time.monotonic() - t
        finally:
            await enclave.stop()

    assert asyncio.run(go()) < 2.0
