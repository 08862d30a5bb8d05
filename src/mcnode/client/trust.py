"""What a client trusts before it sends a payment: the attestation policy of the network
it pays into, from that network's `network.json` (its `attestation` entry).

    "attestation": {"mode": "sim", "network": "...", "mrenclaves": [hex, ...],
                    "mrsigner": hex, "isv_prod_id": n, "min_isv_svn": n,   (optional)
                    "allowed_statuses": [...], "allowed_advisories": [...],  (optional)
                    "root_ca_pem": "-----BEGIN CERTIFICATE-----...",        (sim)
                    "allow_simulation": true}
    "attestation": {"mode": "off"}          a network without attestation (said loudly)

Rules of this file: no I/O beyond reading the one file; every problem is one line
(`TrustError`) naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcnode.attest.policy import Policy


class TrustError(ValueError):
    """A network file whose attestation entry cannot be used; one line."""


@dataclass(frozen=True)
class ClientTrust:
    """The policy an enclave's evidence must meet, and the root its chain must end in
    (None: Intel's SGX root). `policy` None: the network runs without attestation."""

    policy: Policy | None
    root_ca_der: bytes | None = None

    @property
    def attested(self) -> bool:
        return self.policy is not None


NO_ATTESTATION = ClientTrust(None)


def trust_from_entry(entry: Mapping[str, Any] | None, where: str = "attestation") -> ClientTrust:
    if entry is None:
        raise TrustError(f"{where}: missing (the network file names no attestation policy)")
    if not isinstance(entry, Mapping):
        raise TrustError(f"{where}: expected an object")
    mode = entry.get("mode")
    if mode == "off":
        return NO_ATTESTATION
    if mode not in ("sim", "dcap"):
        raise TrustError(f"{where}.mode: expected off, sim or dcap, got {mode!r}")
    try:
        policy = Policy(
            mrenclaves=frozenset(bytes.fromhex(m) for m in entry.get("mrenclaves", [])),
            mrsigner=bytes.fromhex(entry["mrsigner"]) if entry.get("mrsigner") else None,
            isv_prod_id=entry.get("isv_prod_id"),
            min_isv_svn=entry.get("min_isv_svn"),
            allowed_statuses=frozenset(entry.get("allowed_statuses", [])),
            allowed_advisories=frozenset(entry.get("allowed_advisories", [])),
            allow_simulation=bool(entry.get("allow_simulation", False)),
        )
    except (ValueError, TypeError) as e:
        raise TrustError(f"{where}: {e}") from None
    root = None
    pem = entry.get("root_ca_pem")
    if pem is not None:
        from mcnode.attest.policy import AttestationError
        from mcnode.attest.verify import root_ca_der_from_pem

        if not isinstance(pem, str):
            raise TrustError(f"{where}.root_ca_pem: expected PEM text")
        try:
            root = root_ca_der_from_pem(pem.encode())
        except AttestationError as e:
            raise TrustError(f"{where}.root_ca_pem: {e}") from None
    elif mode == "sim":
        raise TrustError(f"{where}.root_ca_pem: a simulated network must name its root")
    return ClientTrust(policy, root)


def read_network_trust(path: str | Path) -> ClientTrust:
    """The trust entry of a network file (`network.json`)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise TrustError(f"{p}: cannot read a network file: {e}") from None
    if not isinstance(doc, Mapping):
        raise TrustError(f"{p}: not a network file")
    return trust_from_entry(doc.get("attestation"), f"{p}: attestation")
