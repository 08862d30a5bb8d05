"""The node's `[attestation]` settings, handed to its enclave process.

Rules of this file: the host decides nothing about evidence; it only writes what the
operator configured into the document the enclave reads (`--attestation FILE`, format
`mcnode-attestation` v1, see `mcnode.attest.config`) and reads no key or quote. Mode "off"
writes nothing: the enclave then offers no evidence and requires none, and the node says
so at start and in `/status`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mcnode.files import write_atomic
from mcnode.node.config import AttestationSettings

FILE = "attestation.json"


def enclave_document(a: AttestationSettings) -> dict[str, Any]:
    """The `mcnode-attestation` document for `a` (paths absolute)."""
    return {
        "format": "mcnode-attestation",
        "version": 1,
        "mode": a.mode,
        "network": a.network,
        "sim_pki": None if a.sim_pki is None else str(a.sim_pki.resolve()),
        "root_ca": None if a.root_ca is None else str(a.root_ca.resolve()),
        "valid_days": a.valid_days,
        "policy": {
            "mrenclaves": [m.hex() for m in a.trusted_mrenclaves],
            "mrsigner": None if a.trusted_mrsigner is None else a.trusted_mrsigner.hex(),
            "isv_prod_id": a.isv_prod_id,
            "min_isv_svn": a.min_isv_svn,
            "allowed_statuses": list(a.allowed_statuses),
            "allowed_advisories": list(a.allowed_advisories),
            "allow_simulation": a.mode == "sim",
        },
    }


def write_enclave_document(a: AttestationSettings, state_dir: Path) -> Path | None:
    """Write the document for the enclave process; None in mode "off"."""
    if not a.on:
        return None
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / FILE
    text = json.dumps(enclave_document(a), indent=2) + "\n"
    write_atomic(path, text.encode(), mode=0o644)
    return path
