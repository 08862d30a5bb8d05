"""The sample accounts' unspent outputs, and which of them are promised to a payment.

Rules of this file:
- A coin is spendable only once the block that created it is in the generator's ledger
  copy: change and payments of a payment still in flight are *expected*, never picked.
- A coin picked for a payment is *reserved* until the payment is committed (its key image
  lands in a block: the coin is gone) or can no longer commit (refused, expired, never
  sent: `release` makes it free again). So two payments never spend one output.
- Outputs arrive in ledger order (`add_outputs` with their first index); each is looked at
  once. Outputs of our own payments are known from the builder (`expect`); any other is
  scanned here with every account's view key.
- No I/O, no clock, no threads: the load generator calls it from its one loop."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Protocol

from mcnode.localnet.builders import Coin, Payment
from mcnode.transaction.account import AccountKey
from mcnode.transaction.mlsag import key_image
from mcnode.transaction.txout import Scanner, TxOut


class KeyImageSet(Protocol):
    def contains_key_image(self, key_image: bytes) -> bool: ...


class Purse:
    def __init__(self, accounts: Sequence[AccountKey], rng: random.Random, min_value: int) -> None:
        """`min_value`: the least a coin must hold to be worth spending (fee + change)."""
        self._scanners = [Scanner(a) for a in accounts]
        self._rng = rng
        self._min_value = min_value
        self._owned: dict[bytes, Coin] = {}  # key image -> coin, every unspent one we own
        self._free: list[dict[bytes, Coin]] = [{} for _ in accounts]  # pickable, by account
        self._reserved: dict[bytes, Coin] = {}
        self._expected: dict[bytes, Coin] = {}  # output public key -> coin it will be
        self.next_index = 0  # the first TxOut of the ledger not looked at yet

    # -- what the ledger shows -------------------------------------------------------
    def add_coins(self, coins: Iterable[Coin], up_to: int, spent: KeyImageSet) -> None:
        """Coins found by a scan of TxOuts [next_index, up_to) (`BuilderPool.scan`);
        those whose key image `spent` holds are gone already."""
        for c in coins:
            if not spent.contains_key_image(c.key_image):
                self._add(c)
        self.next_index = max(self.next_index, up_to)

    def add_outputs(self, first_index: int, tx_outs: Sequence[TxOut]) -> int:
        """A block's outputs, the first at ledger index `first_index`; returns how many
        had to be scanned (not expected)."""
        scanned = 0
        for i, tx_out in enumerate(tx_outs, start=first_index):
            if i < self.next_index:
                continue
            coin = self._expected.pop(tx_out.public_key, None)
            if coin is None or coin.owned.tx_out != tx_out:
                scanned += 1
                coin = self._scan(tx_out)
            if coin is not None:
                self._add(coin)
            self.next_index = i + 1
        return scanned

    def spent(self, key_images: Iterable[bytes]) -> None:
        """Key images of a block: those coins are gone, reserved or not."""
        for ki in key_images:
            coin = self._owned.pop(ki, None)
            if coin is not None:
                self._reserved.pop(ki, None)
                self._free[coin.account].pop(ki, None)

    # -- what the generator does with coins -------------------------------------------
    def pick(self) -> Coin | None:
        """Reserve a random free coin of a random account that has one; None if none."""
        order = [i for i, free in enumerate(self._free) if free]
        if not order:
            return None
        free = self._free[self._rng.choice(order)]
        ki = self._rng.choice(list(free))
        coin = free.pop(ki)
        self._reserved[ki] = coin
        return coin

    def recipient_for(self, sender: int) -> int:
        j = self._rng.randrange(len(self._scanners) - 1)
        return j + (j >= sender)

    def expect(self, payment: Payment) -> None:
        for c in payment.creates:
            self._expected[c.public_key] = c

    def release(self, key_images: Iterable[bytes], payment: Payment | None = None) -> None:
        """The payment spending these will not commit: its coins are free again, and
        the outputs it would have made will never come."""
        for ki in key_images:
            coin = self._reserved.pop(ki, None)
            if coin is not None and ki in self._owned:
                self._free[coin.account][ki] = coin
        if payment is not None:
            for c in payment.creates:
                self._expected.pop(c.public_key, None)

    def is_owned(self, key_image: bytes) -> bool:
        return key_image in self._owned

    # -- figures ------------------------------------------------------------------------
    @property
    def free(self) -> int:
        return sum(len(f) for f in self._free)

    @property
    def reserved(self) -> int:
        return len(self._reserved)

    def balance(self, spent: KeyImageSet) -> int:
        """What the accounts hold: every coin found whose key image is not in `spent`."""
        return sum(c.value for ki, c in self._owned.items() if not spent.contains_key_image(ki))

    # -- inside -------------------------------------------------------------------------
    def _add(self, coin: Coin) -> None:
        self._owned[coin.key_image] = coin
        if coin.value >= self._min_value and coin.key_image not in self._reserved:
            self._free[coin.account][coin.key_image] = coin

    def _scan(self, tx_out: TxOut) -> Coin | None:
        for i, scanner in enumerate(self._scanners):
            owned = scanner.try_open(tx_out)
            if owned is not None:
                return Coin(i, owned, key_image(owned.onetime_private))
        return None
