"""Flooding with memory: which peers have which consensus message, so each is relayed once
and only where it is needed.

Rules of this file: pure bookkeeping, no I/O and no clock. A message is known by its
`dedup_key` (computed before any signature check, so copies are dropped cheaply). Its
holders are the peers known to have it: its signer and whoever handed us a copy, plus,
when we relay it, the peers we sent it to. Only configured peers are ever recorded as
holders: the unsigned `relayed_by` field of a copy names a holder only if it names a peer,
so a stranger cannot make us store text of its choosing.

Relay rule: the signer sent its message to every peer it knows, and its quorum set names
only peers it knows (a config rule), so those need no relay; the rest get it from us,
once. In a full mesh nothing is relayed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

RELAY_MEMORY = 4096  # messages remembered; older ones are forgotten first


class Flooding:
    def __init__(self, peers: Iterable[str], memory: int = RELAY_MEMORY) -> None:
        self.peers = frozenset(peers)
        self.memory = memory
        self._holders: OrderedDict[bytes, set[str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._holders)

    def is_known(self, key: bytes) -> bool:
        return key in self._holders

    def holders(self, key: bytes) -> frozenset[str]:
        return frozenset(self._holders.get(key, ()))

    def note_copy(self, key: bytes, holder: str) -> None:
        """A copy of a known message came from `holder` (ignored unless it is a peer)."""
        holders = self._holders.get(key)
        if holders is not None and holder in self.peers:
            holders.add(holder)

    def first_sight(self, key: bytes, holder: str) -> bool:
        """Note that `holder` has message `key`; True if the message was new to us."""
        if key in self._holders:
            self.note_copy(key, holder)
            return False
        self._remember(key, {holder} & self.peers)
        return True

    def sent_by_us(self, key: bytes) -> None:
        """Our own message, sent to every peer: nobody needs it relayed."""
        self._remember(key, set(self.peers))

    def relay_targets(self, key: bytes, signer_knows: frozenset[str]) -> list[str]:
        """The peers to relay a new message to (none that has it or that its signer sent
        it to), recorded as holders now. `signer_knows`: the nodes of its quorum set."""
        holders = self._holders.get(key)
        if holders is None:
            return []
        targets = sorted(self.peers - holders - signer_knows)
        holders.update(targets)
        return targets

    def _remember(self, key: bytes, holders: set[str]) -> None:
        self._holders[key] = holders
        while len(self._holders) > self.memory:
            self._holders.popitem(last=False)
