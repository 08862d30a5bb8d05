"""How an enclave attests, and whom it trusts: `AttestationConfig`, read from the JSON
document the node writes into its state directory and passes to the enclave process
(`--attestation FILE`):

    {"format": "mcnode-attestation", "version": 1,
     "mode": "sim",                       # "sim", "off" (or "dcap": not on this machine)
     "network": "localnet",               # bound into every peer handshake's prologue
     "sim_pki": "sim-pki",                # the network's simulated PKI (mode "sim")
     "root_ca": "sim-pki/root-ca.pem",    # trust anchor for peers' evidence; null: Intel
     "valid_days": 30,                    # window of the collateral the enclave makes
     "policy": {"mrenclaves": [hex...], "mrsigner": hex | null, "isv_prod_id": n | null,
                "min_isv_svn": n | null, "allowed_statuses": [...],
                "allowed_advisories": [...], "allow_simulation": bool}}

Relative paths are relative to the file. Keys other than these are refused, so a typo is
not silently ignored; `sim_pki`, `root_ca`, `valid_days` and `policy` may be left out in
mode "off" (the enclave then neither offers nor checks evidence). Every error is one
line, an `AttestationConfigError` naming the field.

Modes:
- "off": the enclave offers no evidence and requires none (in-process tests and tools);
- "sim": the enclave is its own simulated quoting enclave under the network's `SimPki`,
  and holds peers' evidence to `policy`, chained to `root_ca`;
- "dcap": parses (so a hardware network's file is readable here), but
  `load_quoting_enclave` refuses it: there is no SGX on this machine.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcnode.attest.policy import Policy
from mcnode.attest.sim_pki import DAY, DEFAULT_COLLATERAL_SECONDS, SimPki, SimPkiError
from mcnode.attest.sim_quote import SimQuotingEnclave
from mcnode.attest.verify import EvidenceUnreadable, root_ca_der_from_pem
from mcnode.crypto.rng import RandomSource, system_random

ATTESTATION_FORMAT = "mcnode-attestation"
ATTESTATION_VERSION = 1
MODES = ("off", "sim", "dcap")
MAX_NETWORK_NAME = 64
_KEYS = frozenset(
    {"format", "version", "mode", "network", "sim_pki", "root_ca", "valid_days", "policy"}
)
_POLICY_KEYS = frozenset(
    {
        "mrenclaves",
        "mrsigner",
        "isv_prod_id",
        "min_isv_svn",
        "allowed_statuses",
        "allowed_advisories",
        "allow_simulation",
    }
)


class AttestationConfigError(ValueError):
    """An attestation file or document that cannot be used; one line naming the field."""


@dataclass(frozen=True)
class AttestationConfig:
    """How this enclave attests (`mode`, `sim_pki_dir`, `valid_seconds`) and which peers'
    evidence it trusts (`policy`, chained to `root_ca_der`; None: Intel's root)."""

    mode: str
    network: str
    sim_pki_dir: Path | None
    root_ca_der: bytes | None
    policy: Policy
    valid_seconds: int = DEFAULT_COLLATERAL_SECONDS

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise AttestationConfigError(f"mode: {self.mode!r} is not one of {', '.join(MODES)}")
        _check_network(self.network)
        if self.mode == "sim" and self.sim_pki_dir is None:
            raise AttestationConfigError("sim_pki: mode sim needs the network's simulated PKI")
        if isinstance(self.valid_seconds, bool) or not (
            isinstance(self.valid_seconds, int) and self.valid_seconds > 0
        ):
            raise AttestationConfigError("valid_days: must be a positive number of days")

    @property
    def attests(self) -> bool:
        """True when the enclave offers evidence and requires it of peers."""
        return self.mode != "off"

    def load_quoting_enclave(self, rng: RandomSource = system_random) -> SimQuotingEnclave | None:
        """The quoting enclave that makes this enclave's evidence (None in mode "off"):
        the simulated one of the PKI in `sim_pki_dir`. `AttestationConfigError` (one line)
        when the PKI does not load, or in mode "dcap"."""
        if self.mode == "off":
            return None
        if self.mode == "dcap":
            raise AttestationConfigError(
                "mode: dcap (hardware attestation) is not available on this machine"
            )
        assert self.sim_pki_dir is not None  # __post_init__
        try:
            pki = SimPki.load(self.sim_pki_dir)
        except SimPkiError as e:
            raise AttestationConfigError(f"sim_pki: {e}") from None
        return SimQuotingEnclave(pki, rng)

    @classmethod
    def off(cls, network: str = "") -> AttestationConfig:
        """Mode "off": no evidence offered or required (the policy is never consulted)."""
        return cls("off", network, None, None, Policy(any_identity=True))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], base_dir: Path) -> AttestationConfig:
        """The configuration a JSON document says; relative paths from `base_dir`."""
        if not isinstance(doc, Mapping):
            raise AttestationConfigError("the attestation document must be a JSON object")
        unknown = sorted(set(doc) - _KEYS)
        if unknown:
            raise AttestationConfigError(f"{unknown[0]}: unknown field")
        if doc.get("format") != ATTESTATION_FORMAT:
            raise AttestationConfigError(f"format: must be {ATTESTATION_FORMAT!r}")
        if doc.get("version") != ATTESTATION_VERSION or isinstance(doc.get("version"), bool):
            raise AttestationConfigError(f"version: must be {ATTESTATION_VERSION}")
        mode = doc.get("mode")
        if mode not in MODES:
            raise AttestationConfigError(f"mode: must be one of {', '.join(MODES)}")
        network = doc.get("network")
        if not isinstance(network, str):
            raise AttestationConfigError("network: must be a string (the network's name)")
        _check_network(network)
        if mode == "off" and "policy" not in doc:
            off = cls.off(network)
            return off if "valid_days" not in doc else _with_days(off, doc["valid_days"])
        sim_pki = _path(doc.get("sim_pki"), base_dir, "sim_pki")
        if mode == "sim" and sim_pki is None:
            raise AttestationConfigError("sim_pki: mode sim needs the network's simulated PKI")
        root_path = _path(doc.get("root_ca"), base_dir, "root_ca")
        root_ca_der = None if root_path is None else _root_ca(root_path)
        if "policy" not in doc:
            raise AttestationConfigError("policy: missing (which peers' evidence to trust)")
        policy = _policy(doc["policy"])
        config = cls(mode, network, sim_pki, root_ca_der, policy)
        return config if "valid_days" not in doc else _with_days(config, doc["valid_days"])


def read_attestation_file(path: str | os.PathLike[str]) -> AttestationConfig:
    """The configuration in the JSON file at `path` (relative paths from its directory)."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as e:
        raise AttestationConfigError(f"{p}: cannot read: {e.strerror}") from None
    try:
        doc = json.loads(text)
    except (ValueError, UnicodeDecodeError) as e:
        raise AttestationConfigError(f"{p}: not JSON: {e}") from None
    try:
        return AttestationConfig.from_json(doc, p.parent)
    except AttestationConfigError as e:
        raise AttestationConfigError(f"{p}: {e}") from None


def _check_network(network: object) -> None:
    if not isinstance(network, str):
        raise AttestationConfigError("network: must be a string (the network's name)")
    encoded = network.encode()
    if len(encoded) > MAX_NETWORK_NAME or not network.isprintable():
        raise AttestationConfigError(f"network: at most {MAX_NETWORK_NAME} bytes of printable text")


def _with_days(config: AttestationConfig, days: object) -> AttestationConfig:
    if isinstance(days, bool) or not isinstance(days, int) or days <= 0:
        raise AttestationConfigError("valid_days: must be a positive integer")
    return AttestationConfig(
        config.mode,
        config.network,
        config.sim_pki_dir,
        config.root_ca_der,
        config.policy,
        days * DAY,
    )


def _path(value: object, base_dir: Path, field: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise AttestationConfigError(f"{field}: must be a path (a string) or null")
    p = Path(value)
    return p if p.is_absolute() else Path(base_dir) / p


def _root_ca(path: Path) -> bytes:
    try:
        pem = path.read_bytes()
    except OSError as e:
        raise AttestationConfigError(f"root_ca: {path}: cannot read: {e.strerror}") from None
    try:
        return root_ca_der_from_pem(pem)
    except EvidenceUnreadable as e:
        raise AttestationConfigError(f"root_ca: {path}: {e}") from None


def _policy(doc: object) -> Policy:
    if not isinstance(doc, Mapping):
        raise AttestationConfigError("policy: must be a JSON object")
    unknown = sorted(set(doc) - _POLICY_KEYS)
    if unknown:
        raise AttestationConfigError(f"policy.{unknown[0]}: unknown field")
    mrenclaves = doc.get("mrenclaves", [])
    if not isinstance(mrenclaves, list):
        raise AttestationConfigError("policy.mrenclaves: must be a list of hex MRENCLAVEs")
    mrsigner = doc.get("mrsigner")
    allow_simulation = doc.get("allow_simulation", False)
    if not isinstance(allow_simulation, bool):
        raise AttestationConfigError("policy.allow_simulation: must be true or false")
    try:
        return Policy(
            mrenclaves=frozenset(_hex32(m, "policy.mrenclaves") for m in mrenclaves),
            mrsigner=None if mrsigner is None else _hex32(mrsigner, "policy.mrsigner"),
            isv_prod_id=_int_or_none(doc.get("isv_prod_id"), "policy.isv_prod_id"),
            min_isv_svn=_int_or_none(doc.get("min_isv_svn"), "policy.min_isv_svn"),
            allowed_statuses=frozenset(_strings(doc, "allowed_statuses")),
            allowed_advisories=frozenset(_strings(doc, "allowed_advisories")),
            allow_simulation=allow_simulation,
        )
    except ValueError as e:
        if isinstance(e, AttestationConfigError):
            raise
        raise AttestationConfigError(f"policy: {e}") from None


def _hex32(value: object, field: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise AttestationConfigError(f"{field}: {value!r} is not 32 bytes of hex")
    return raw


def _int_or_none(value: object, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise AttestationConfigError(f"{field}: must be an integer or null")
    return value


def _strings(doc: Mapping[str, Any], key: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AttestationConfigError(f"policy.{key}: must be a list of strings")
    return value
