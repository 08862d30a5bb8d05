"""The two halves of attestation meet: evidence the simulated quoting enclave makes goes
through `verify_evidence` (dcap-qvl plus our policy and byte checks) and `mcnode attest
verify`, under the simulated root only, and only when simulation is allowed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcnode.attest.cli import attest
from mcnode.attest.policy import (
    EvidenceInvalid,
    Policy,
    PolicyRefused,
    check_report_data,
    expected_report_data,
)
from mcnode.attest.sim_pki import SimPki
from mcnode.attest.sim_quote import SimQuotingEnclave
from mcnode.attest.verify import verify_evidence
from mcnode.crypto import SeededRandom

NOW = 1_800_000_000
MRENCLAVE, MRSIGNER = bytes([7]) * 32, bytes([9]) * 32
IDENTITY, SIGNER = bytes([1]) * 32, bytes([2]) * 32


@pytest.fixture(scope="module")
def evidence() -> tuple[SimPki, bytes, bytes]:
    pki = SimPki.generate(NOW - 100, SeededRandom(5))
    qe = SimQuotingEnclave(pki, SeededRandom(6))
    data = expected_report_data(b"handshake nonce", IDENTITY, SIGNER)
    quote = qe.quote(MRENCLAVE, MRSIGNER, 3, 7, data)
    return pki, quote, qe.collateral(NOW - 50)


def policy(**kw: object) -> Policy:
    return Policy(**{"mrenclaves": frozenset({MRENCLAVE}), "allow_simulation": True, **kw})  # type: ignore[arg-type]


def test_simulated_evidence_verifies_under_its_root_with_simulation_allowed(
    evidence: tuple[SimPki, bytes, bytes],
) -> None:
    pki, quote, collateral = evidence
    v = verify_evidence(quote, collateral, policy(), NOW, pki.root_ca_der)
    assert (v.mrenclave, v.mrsigner, v.isv_prod_id, v.isv_svn) == (MRENCLAVE, MRSIGNER, 3, 7)
    assert v.simulated and not v.debug and v.tcb_status == "UpToDate"
    check_report_data(v, expected_report_data(b"handshake nonce", IDENTITY, SIGNER))
    with pytest.raises(PolicyRefused) as e:  # the binding is to these keys and this nonce
        check_report_data(v, expected_report_data(b"another nonce", IDENTITY, SIGNER))
    assert e.value.reason == "report_data"
    mrsigner_policy = Policy(mrsigner=MRSIGNER, isv_prod_id=3, min_isv_svn=7, allow_simulation=True)
    assert verify_evidence(quote, collateral, mrsigner_policy, NOW, pki.root_ca_der).isv_svn == 7


def test_simulated_evidence_is_refused_without_simulation_or_under_another_root(
    evidence: tuple[SimPki, bytes, bytes],
) -> None:
    pki, quote, collateral = evidence
    with pytest.raises(PolicyRefused) as e:
        verify_evidence(quote, collateral, policy(allow_simulation=False), NOW, pki.root_ca_der)
    assert e.value.reason == "simulation_not_allowed"
    with pytest.raises(EvidenceInvalid):  # Intel's root
        verify_evidence(quote, collateral, policy(), NOW)
    other = SimPki.generate(NOW - 100, SeededRandom(99))
    with pytest.raises(EvidenceInvalid):  # another network's simulated PKI
        verify_evidence(quote, collateral, policy(), NOW, other.root_ca_der)
    with pytest.raises(PolicyRefused) as e:
        verify_evidence(quote, collateral, policy(mrenclaves={bytes(32)}), NOW, pki.root_ca_der)
    assert e.value.reason == "mrenclave"
    with pytest.raises(EvidenceInvalid) as e2:  # after the collateral's window (30 days)
        verify_evidence(quote, collateral, policy(), NOW + 31 * 86400, pki.root_ca_der)
    assert e2.value.reason == "collateral_expired"


def test_the_cli_verifies_simulated_evidence_made_by_sim_pki(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(attest, ["sim-pki", "init", "--out", str(tmp_path / "pki"), "--seed", "3"])
    assert r.exit_code == 0, r.output
    pki = SimPki.load(tmp_path / "pki")
    quote = SimQuotingEnclave(pki).quote(MRENCLAVE, MRSIGNER, 0, 0, bytes(64))
    (tmp_path / "quote").write_bytes(quote)
    now = str(NOW)
    r = runner.invoke(
        attest,
        ["sim-pki", "collateral", "--pki", str(tmp_path / "pki"), "--out",
         str(tmp_path / "collateral.json"), "--now", now],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    args = ["verify", "--quote", str(tmp_path / "quote"), "--collateral",
            str(tmp_path / "collateral.json"), "--now", str(NOW + 60), "--json"]  # fmt: skip
    r = runner.invoke(attest, [*args, "--root-ca", str(tmp_path / "pki" / "root-ca.pem"),
                               "--mrenclave", MRENCLAVE.hex()])  # fmt: skip
    out = json.loads(r.output.splitlines()[0])
    assert r.exit_code == 0 and out["verified"] and out["mrenclave"] == MRENCLAVE.hex(), r.output
    r = runner.invoke(attest, [*args, "--mrenclave", MRENCLAVE.hex()])  # Intel's root
    assert r.exit_code == 1 and json.loads(r.output.splitlines()[0])["reason"]
