"""A client's trust comes from the network file: the policy and the simulated root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcnode.client.trust import NO_ATTESTATION, TrustError, read_network_trust
from mcnode.crypto import SeededRandom
from mcnode.localnet.init import init_network


def test_a_localnet_network_file_names_this_builds_enclave_and_its_simulated_root(
    tmp_path: Path,
) -> None:
    from mcnode.attest.sim_pki import SimPki
    from mcnode.enclave.measure import measure

    init_network(tmp_path, nodes=2, accounts=1, outputs_per_account=1, rng=SeededRandom(3))
    trust = read_network_trust(tmp_path / "network.json")
    assert trust.attested and trust.policy is not None
    assert trust.policy.mrenclaves == {measure()} and trust.policy.allow_simulation
    assert trust.root_ca_der == SimPki.load(tmp_path / "pki").root_ca_der
    init_network(tmp_path / "off", nodes=2, accounts=1, outputs_per_account=1, attestation=False)
    assert read_network_trust(tmp_path / "off" / "network.json") == NO_ATTESTATION


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        (None, "attestation: missing"),
        ({"mode": "on"}, "attestation.mode: expected off, sim or dcap"),
        ({"mode": "sim", "mrenclaves": ["zz"], "root_ca_pem": "x"}, "attestation:"),
        ({"mode": "sim", "mrenclaves": ["ab" * 32]}, "root_ca_pem: a simulated network"),
        ({"mode": "sim", "mrenclaves": ["ab" * 32], "root_ca_pem": "nope"}, "not a PEM"),
        ({"mode": "sim", "root_ca_pem": "x"}, "must name trusted MRENCLAVEs"),
    ],
)
def test_bad_attestation_entries_are_one_line(tmp_path: Path, entry: object, needle: str) -> None:
    doc = {"nodes": []} if entry is None else {"nodes": [], "attestation": entry}
    (tmp_path / "network.json").write_text(json.dumps(doc))
    with pytest.raises(TrustError) as e:
        read_network_trust(tmp_path / "network.json")
    assert needle in str(e.value) and "\n" not in str(e.value)
