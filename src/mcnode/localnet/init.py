"""`mcnode localnet init`: a directory with everything a local network needs.

    D/network.json            the node names, ports, keys and quorum sets (for tools)
    D/accounts/account-NNNN.json   sample accounts paid by the origin block (mode 0600)
    D/<node>/node.toml        one validator's config
    D/<node>/node.key         its message-signing key (mode 0600)
    D/<node>/ledger/          its copy of the origin ledger
    D/<node>/state/enclave/   its enclave's sealed keys (made here, so the network file can
                              name each node's block signer)
    D/pki/                    the network's SIMULATED SGX PKI (root CA, PCK chain, TCB
                              signer; not Intel's): every enclave's quotes are signed under it
    D/enclave-signer.pem      the network's enclave signer key (RSA-3072, e=3; mode 0600)
    D/enclave.css             this install's enclave measurement, signed by that key

With attestation on (the default) each node.toml has `[attestation] mode = "sim"`,
trusting exactly this install's MRENCLAVE under the network's simulated root, and
network.json carries the same policy and the root for clients.

All validators start from the same origin block. Ports are free loopback ports picked at
init time (peers must know them before anyone starts)."""

from __future__ import annotations

import json
import math
import re
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcnode.client.keys import write_account_key
from mcnode.crypto.rng import RandomSource, system_random
from mcnode.crypto.signing import ed25519_keypair
from mcnode.enclave.sealing import provision
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.origin import origin_block, sample_accounts
from mcnode.node.config import peer_uri
from mcnode.node.keys import write_node_key
from mcnode.node.tls import make_tls_identity, write_tls_identity
from mcnode.scp import QuorumSet
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE


class LocalnetError(ValueError):
    pass


@dataclass(frozen=True)
class NodeSpec:
    name: str
    peer_port: int
    client_port: int
    admin_port: int
    signing_public: bytes
    quorum_set: QuorumSet
    consensus_port: int | None = None  # its consensus port (node/frames.py), if it has one

    @property
    def dir_name(self) -> str:
        return self.name


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def bft_threshold(n_peers: int) -> int:
    """Of n peers, how many a node needs so that (with itself) it tolerates f faults where
    n + 1 = 3f + 1 at best: ceil(2 (n + 1) / 3) - 1 peers, and at least a majority."""
    total = n_peers + 1
    need = -(-2 * total // 3)  # ceil(2/3 of everyone, counting ourselves)
    return max(need - 1, n_peers // 2 + 1) if n_peers else 1


def topology(names: list[str], kind: str) -> dict[str, QuorumSet]:
    """mesh: everyone trusts everyone else (BFT threshold); ring: each node trusts its two
    neighbours (2 of 2); tiered: the first 3 (or 4) nodes are a mesh top tier and the rest
    trust the top tier."""
    n = len(names)
    if n == 1:
        return {names[0]: QuorumSet(1, [names[0]])}
    if kind == "mesh":
        return {a: QuorumSet(bft_threshold(n - 1), [b for b in names if b != a]) for a in names}
    if kind == "ring":
        if n < 3:
            raise LocalnetError("a ring needs at least 3 nodes")
        return {names[i]: QuorumSet(2, [names[(i - 1) % n], names[(i + 1) % n]]) for i in range(n)}
    if kind == "tiered":
        top = names[: 4 if n >= 6 else 3]
        if n <= len(top):
            raise LocalnetError("a tiered network needs more nodes than its top tier (>= 4)")
        out = {a: QuorumSet(bft_threshold(len(top) - 1), [b for b in top if b != a]) for a in top}
        for a in names[len(top) :]:
            out[a] = QuorumSet(bft_threshold(len(top) - 1) + 1, list(top))
        return out
    raise LocalnetError(f"unknown topology {kind!r} (mesh, ring, tiered or a JSON file)")


def topology_from_file(path: Path) -> dict[str, QuorumSet]:
    """`{"nodes": [{"id": "a", "quorum_set": {"threshold", "members"}}]}`."""
    from mcnode.sim.topology import TopologyError, from_json

    try:
        return from_json(json.loads(path.read_text()))
    except (OSError, ValueError, TopologyError) as e:
        raise LocalnetError(f"{path}: {e}") from None


def node_toml(
    spec: NodeSpec,
    peers: list[NodeSpec],
    *,
    min_block_interval: float,
    extra: dict[str, Any] | None = None,
) -> str:
    def qset_toml(q: QuorumSet) -> str:
        members = ", ".join(
            qset_toml(m) if isinstance(m, QuorumSet) else json.dumps(m) for m in q.members
        )
        return f"{{ threshold = {q.threshold}, members = [{members}] }}"

    lines = [
        f'name = "{spec.name}"',
        'key_file = "node.key"',
        'ledger_dir = "ledger"',
        'state_dir = "state"',
        f"quorum_set = {qset_toml(spec.quorum_set)}",
        "",
        "[listen]",
        f'peer = "127.0.0.1:{spec.peer_port}"',
        f'client = "127.0.0.1:{spec.client_port}"',
        f'admin = "127.0.0.1:{spec.admin_port}"',
        *([f'consensus = "127.0.0.1:{spec.consensus_port}"'] if spec.consensus_port else []),
        "",
        "[block]",
        f"min_interval = {min_block_interval}",
        f"min_fee = {DEFAULT_MINIMUM_FEE}",
        "",
        "[scp]",
        "nomination_timeout = 0.25",
        "nomination_timeout_increment = 0.25",
        "ballot_timeout = 0.5",
        "ballot_timeout_increment = 0.5",
    ]
    for p in peers:
        if p.name == spec.name:
            continue
        lines += [
            "",
            "[[peers]]",
            f'name = "{p.name}"',
            f'uri = "{peer_uri("127.0.0.1", p.peer_port, p.signing_public, p.consensus_port)}"',
            f'tls_cert = "peers/{p.name}.pem"',
        ]
    for section, values in (extra or {}).items():
        lines += ["", f"[{section}]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


#: Accounts the origin block pays (their keys in D/accounts/): the load generator's.
SAMPLE_ACCOUNTS = 20


def outputs_for_load(tx_rate: float, duration: float | None) -> int:
    """Origin outputs per sample account for a new network made to carry this load: its
    first minute (what the load generator builds ahead at most) with a quarter to spare,
    and at least 10. More outputs cost only time here (~1 s per 1,000 on 2 cores)."""
    seconds = min(duration if duration is not None else 60.0, 60.0)
    return max(10, math.ceil(tx_rate * seconds * 1.25 / SAMPLE_ACCOUNTS))


def init_network(
    directory: Path,
    *,
    nodes: int = 4,
    topology_kind: str = "mesh",
    topology_file: Path | None = None,
    accounts: int = SAMPLE_ACCOUNTS,
    outputs_per_account: int = 10,
    amount: int = 10**12,  # 1 MOB in picoMOB: 2,500 minimum fees per output
    min_block_interval: float = 0.0,
    rng: RandomSource = system_random,
    force: bool = False,
    attestation: bool = True,
) -> list[NodeSpec]:
    directory = Path(directory)
    if (directory / "network.json").exists() and not force:
        raise LocalnetError(f"{directory} already holds a network (pass --force to replace)")
    if topology_file is not None:
        qsets = topology_from_file(topology_file)
        names = list(qsets)
    else:
        if nodes < 1:
            raise LocalnetError("need at least one node")
        names = [f"node{i}" for i in range(nodes)]
        qsets = topology(names, topology_kind)
    directory.mkdir(parents=True, exist_ok=True)
    ports = free_ports(4 * len(names))
    keys = [ed25519_keypair(rng) for _ in names]
    tls = [make_tls_identity(n, k[0], rng) for n, k in zip(names, keys, strict=True)]
    specs = [
        NodeSpec(n, *ports[4 * i : 4 * i + 3], keys[i][1], qsets[n], ports[4 * i + 3])
        for i, n in enumerate(names)
    ]
    # One origin ledger, copied to every node.
    accts = sample_accounts(accounts, rng)
    origin = origin_block(accts, outputs_per_account, amount, rng)
    acct_dir = directory / "accounts"
    if acct_dir.exists():
        shutil.rmtree(acct_dir)
    acct_dir.mkdir()
    for i, a in enumerate(accts):
        write_account_key(acct_dir / f"account-{i:04d}.json", a)
    template = directory / ".origin-ledger"
    if template.exists():
        shutil.rmtree(template)
    with LedgerDB(template, create=True) as led:
        led.append_block(origin)
    trust = _attestation(directory, rng) if attestation else None
    block_signers: list[bytes] = []
    for i, spec in enumerate(specs):
        nd = directory / spec.dir_name
        if nd.exists():
            shutil.rmtree(nd)
        nd.mkdir()
        write_node_key(nd / "node.key", keys[i][0])
        write_tls_identity(nd / "tls.key", nd / "tls.pem", tls[i])
        (nd / "peers").mkdir()
        for j, other in enumerate(specs):
            if j != i:
                (nd / "peers" / f"{other.name}.pem").write_bytes(tls[j].cert_pem)
        shutil.copytree(
            template, nd / "ledger", ignore=shutil.ignore_patterns("lock.mdb", "writer.lock")
        )
        extra = None if trust is None else {"attestation": trust.node_section()}
        toml = node_toml(spec, specs, min_block_interval=min_block_interval, extra=extra)
        (nd / "node.toml").write_text(toml)
        # Its enclave's keys, made and sealed now, so that the network file can name
        # every node's block signer (what wallets and tools check blocks against).
        block_signers.append(provision(nd / "state" / "enclave")[1])
    shutil.rmtree(template)
    (directory / "network.json").write_text(
        json.dumps(
            {
                "nodes": [
                    {
                        "id": s.name,
                        "quorum_set": s.quorum_set.to_dict(),
                        "peer": f"127.0.0.1:{s.peer_port}",
                        "client": f"127.0.0.1:{s.client_port}",
                        "admin": f"127.0.0.1:{s.admin_port}",
                        "consensus": f"127.0.0.1:{s.consensus_port}",
                        "signing_key": s.signing_public.hex(),
                        "block_signer": signer.hex(),
                    }
                    for s, signer in zip(specs, block_signers, strict=True)
                ],
                "attestation": {"mode": "off"} if trust is None else trust.network_entry(),
                "accounts": accounts,
                "outputs_per_account": outputs_per_account,
                "amount": amount,
                "total_supply": accounts * outputs_per_account * amount,
            },
            indent=2,
        )
        + "\n"
    )
    return specs


@dataclass(frozen=True)
class _Trust:
    network: str
    mrenclave: bytes
    root_ca_pem: str

    def node_section(self) -> dict[str, Any]:
        """`[attestation]` of every node.toml (paths relative to the node's directory)."""
        return {
            "mode": "sim",
            "network": self.network,
            "sim_pki": "../pki",
            "css": "../enclave.css",
            "trusted_mrenclaves": [self.mrenclave.hex()],
        }

    def network_entry(self) -> dict[str, Any]:
        """network.json's `attestation`: the policy clients apply, and the root."""
        return {
            "mode": "sim",
            "network": self.network,
            "mrenclaves": [self.mrenclave.hex()],
            "root_ca_pem": self.root_ca_pem,
            "allow_simulation": True,
        }


def _attestation(directory: Path, rng: RandomSource) -> _Trust:
    """The network's simulated PKI, its enclave signer and this build's signed .css."""
    from mcnode.attest.sim_pki import SimPki
    from mcnode.enclave.measure import measure
    from mcnode.enclave.signer import new_signer_key, sign_css

    for old in ("pki", "enclave-signer.pem", "enclave.css"):
        path = directory / old
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    pki = SimPki.generate(int(time.time()) - 60, rng)
    pki.save(directory / "pki")
    mrenclave = measure()
    key = new_signer_key(directory / "enclave-signer.pem")
    (directory / "enclave.css").write_bytes(sign_css(key, mrenclave))
    return _Trust(f"localnet-{pki.root_fingerprint()[:12]}", mrenclave, pki.root_ca_pem.decode())


_ADDR = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})\b")


def rehost(directory: Path, hosts: dict[str, str]) -> None:
    """Move each node to its host address (`{name: "10.77.0.10"}`; `localnet --netns`)
    keeping its ports: rewrites every `address:port` of that node's ports in each
    node.toml (listen addresses, peer URIs) and in network.json. Idempotent; TLS names
    are pinned, not addresses, so nothing else changes."""
    net = json.loads((directory / "network.json").read_text())
    by_port: dict[str, str] = {}
    for n in net["nodes"]:
        for key in ("peer", "client", "admin", "consensus"):
            if key in n:  # consensus: not in a network made before the consensus port
                by_port[n[key].rsplit(":", 1)[1]] = hosts.get(n["id"], "127.0.0.1")

    def sub(text: str) -> str:
        return _ADDR.sub(lambda m: f"{by_port.get(m.group(2), m.group(1))}:{m.group(2)}", text)

    files = [directory / "network.json"] + [directory / n["id"] / "node.toml" for n in net["nodes"]]
    for f in files:
        old = f.read_text()
        new = sub(old)
        if new != old:
            f.write_text(new)


def set_scp_timeouts(directory: Path, values: dict[str, float | bool]) -> None:
    """Set `[scp]` keys in every node.toml of a localnet (what `localnet --netns` does for
    a network whose round trips need longer timeouts)."""
    net = json.loads((directory / "network.json").read_text())
    for n in net["nodes"]:
        f = directory / n["id"] / "node.toml"
        text = f.read_text()
        for key, v in values.items():
            toml = ("true" if v else "false") if isinstance(v, bool) else repr(v)
            text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {toml}", text)
            if count != 1:
                raise LocalnetError(f"{f}: no single `{key}` line to set")
        f.write_text(text)


def scp_timeouts_of(directory: Path, node: str) -> dict[str, float | bool]:
    import tomllib

    return dict(tomllib.loads((directory / node / "node.toml").read_text()).get("scp", {}))
