"""Helpers for multi-process network tests: a localnet directory, wallets, tx streams."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc

from mcnode.client.keys import read_account_key
from mcnode.client.node_client import NodeClient, ProposeResult
from mcnode.client.rings import input_credentials
from mcnode.client.trust import read_network_trust
from mcnode.client.wallet import Wallet
from mcnode.crypto import SeededRandom
from mcnode.ledger.db import LedgerDB
from mcnode.localnet.init import init_network
from mcnode.localnet.procs import Cluster
from mcnode.node.tls import PEER_TLS_NAME
from mcnode.transaction.builder import TransactionBuilder
from mcnode.transaction.tx import Tx
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE


def make_net(tmp: Path, nodes: int = 4, seed: int = 1, accounts: int = 8, **kw: object) -> Cluster:
    init_network(
        tmp, nodes=nodes, accounts=accounts, outputs_per_account=4, rng=SeededRandom(seed), **kw
    )  # type: ignore[arg-type]
    return Cluster(tmp)


def wallets(tmp: Path, n: int) -> list[Wallet]:
    return [Wallet(read_account_key(tmp / "accounts" / f"account-{i:04d}.json")) for i in range(n)]


def build_txs(tmp: Path, count: int, seed: int = 7, ledger_node: str = "node0") -> list[Tx]:
    """`count` independent payments (no two spend the same output), built against a node's
    ledger opened read-only: each account spends each of its outputs in its own tx."""
    accounts = len(list((tmp / "accounts").glob("account-*.json")))
    ws = wallets(tmp, accounts)
    rng = SeededRandom(seed)
    txs: list[Tx] = []
    with LedgerDB(tmp / ledger_node / "ledger", readonly=True) as led:
        for i, w in enumerate(ws):
            to = ws[(i + 1) % len(ws)].account.default_address
            for coin in w.unspent(led):
                if len(txs) >= count:
                    return txs
                tomb = led.num_blocks() + 2000
                b = TransactionBuilder(w.account, fee=DEFAULT_MINIMUM_FEE, tombstone_block=tomb)
                b.add_input(input_credentials(led, coin, rng))
                b.add_output(to, 1000 + len(txs))
                txs.append(b.build(rng))
    if len(txs) < count:
        raise ValueError(f"only {len(txs)} independent payments possible, {count} asked")
    return txs


def submit(cluster: Cluster, node: str, tx: Tx, patience: float = 10.0) -> ProposeResult:
    """Pay through `node`, as a wallet holding the network's attestation policy does. A
    node catching up (a validator that has just started may find its peers a slot or two
    ahead) answers NOT_SERVING for a moment: like a wallet, try again for `patience` s."""
    trust = read_network_trust(cluster.dir / "network.json")
    deadline = time.monotonic() + patience
    with NodeClient(
        cluster.node(node).client, policy=trust.policy, root_ca_der=trust.root_ca_der
    ) as c:
        while True:
            r = c.propose_tx(tx.to_bytes())
            if r.result != "NOT_SERVING" or time.monotonic() > deadline:
                return r
            time.sleep(0.1)


def block_ids(tmp: Path, node: str) -> list[bytes]:
    with LedgerDB(tmp / node / "ledger", readonly=True) as led:
        return [led.get_block(i).id for i in range(led.num_blocks())]


def key_images_in(tmp: Path, node: str, images: list[bytes]) -> list[bool]:
    with LedgerDB(tmp / node / "ledger", readonly=True) as led:
        return [led.contains_key_image(k) for k in images]


def peer_channel(d: Path, as_node: str, to_node: str) -> grpc.Channel:
    """A blocking channel to `to_node`'s peer port carrying `as_node`'s TLS identity (what
    a configured peer, honest or not, can open; an outsider cannot)."""
    node = d / as_node
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / to_node / "tls.pem").read_bytes(),
        private_key=(node / "tls.key").read_bytes(),
        certificate_chain=(node / "tls.pem").read_bytes(),
    )
    network = json.loads((d / "network.json").read_text())
    address = next(n["peer"] for n in network["nodes"] if n["id"] == to_node)
    return grpc.secure_channel(
        address, creds, options=[("grpc.ssl_target_name_override", PEER_TLS_NAME)]
    )
