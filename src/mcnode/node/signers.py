"""Whose block signatures our ledger accepts: our enclave's block signer and those of our
quorum members' enclaves.

Rules of this file: a peer's block signer is learned only from an authenticated enclave
session (the handshake payload of its enclave, vouched for by the peer's consensus key),
never from what a peer's host says elsewhere. Signers are kept in
`<state_dir>/block-signers.json` so that a restarted node checks its peers' blocks
(catch-up) before any session is up again. A peer whose enclave took a new identity keeps
its older signers too (at most `KEEP_PER_PEER`): blocks it signed before stay valid; so
does our own enclave. The file also lists the accepted set (`expected`), which is what
`mcnode ledger verify --signers-file` reads from it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from pathlib import Path

from mcnode.files import write_atomic
from mcnode.ledger.signers import FORMAT
from mcnode.node.logs import NodeLog

FILE = "block-signers.json"
KEEP_PER_PEER = 8


class BlockSigners:
    def __init__(
        self,
        state_dir: Path,
        quorum_members: Collection[str],
        apply: Callable[[frozenset[bytes]], None],
        log: NodeLog,
    ) -> None:
        self.path = state_dir / FILE
        self.quorum_members = frozenset(quorum_members)
        self.apply = apply  # hands the accepted set to the ledger
        self.log = log
        self.own: list[bytes] = []
        self.peers: dict[str, list[bytes]] = {}
        self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(self.path.read_text())
            if doc.get("format") != FORMAT or doc.get("version") != 1:
                raise ValueError("not a version 1 block-signers file")
            peers = {
                str(name): [bytes.fromhex(k) for k in keys][-KEEP_PER_PEER:]
                for name, keys in doc["signers"].items()
            }
            own = [bytes.fromhex(k) for k in doc.get("own", [])][-KEEP_PER_PEER:]
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.log.warning("block signers file unusable; relearning", error=str(e))
            return
        self.peers, self.own = peers, own

    def expected(self) -> frozenset[bytes]:
        keys = {k for name, ks in self.peers.items() if name in self.quorum_members for k in ks}
        return frozenset(keys | set(self.own))

    def set_own(self, key: bytes) -> None:
        """Our enclave signs blocks with `key` (from its identity at start)."""
        if _remember(self.own, key):
            self._save()
        self.apply(self.expected())

    def learn(self, peer: str, key: bytes) -> None:
        """`peer`'s enclave signs blocks with `key` (from an authenticated handshake)."""
        if not _remember(self.peers.setdefault(peer, []), key):
            return
        self.log.info("peer block signer", peer=peer, signer=key)
        self._save()
        self.apply(self.expected())

    def _save(self) -> None:
        doc = {
            "format": FORMAT,
            "version": 1,
            "own": [k.hex() for k in self.own],
            "signers": {n: [k.hex() for k in ks] for n, ks in sorted(self.peers.items())},
            "expected": sorted(k.hex() for k in self.expected()),
        }
        write_atomic(self.path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o644)

    def status(self) -> dict[str, str | None]:
        """Each peer's current block signer (hex), for /status."""
        return {n: (ks[-1].hex() if ks else None) for n, ks in self.peers.items()}


def _remember(keys: list[bytes], key: bytes) -> bool:
    """Make `key` the newest of `keys` (keeping at most `KEEP_PER_PEER`); False if it
    already was."""
    if keys and keys[-1] == key:
        return False
    if key in keys:
        keys.remove(key)
    keys.append(key)
    del keys[:-KEEP_PER_PEER]
    return True
