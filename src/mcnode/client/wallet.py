"""A minimal wallet over a ledger view: find an account's unspent outputs, pay someone.

The ledger view is anything with the `LedgerDB` read API (a node's ledger opened read-only,
or a wallet's own copy synced from a node's blocks)."""

from __future__ import annotations

from collections.abc import Sequence

from mcnode.client.rings import input_credentials
from mcnode.crypto.rng import RandomSource
from mcnode.ledger.db import LedgerDB
from mcnode.transaction.account import AccountKey, PublicAddress
from mcnode.transaction.builder import InsufficientFunds, TransactionBuilder
from mcnode.transaction.mlsag import key_image
from mcnode.transaction.tx import Tx
from mcnode.transaction.txout import OwnedOutput, Scanner
from mcnode.transaction.validation import DEFAULT_MINIMUM_FEE

DEFAULT_FEE = DEFAULT_MINIMUM_FEE  # what every validator accepts unless configured higher
TOMBSTONE_WINDOW = 100


class Wallet:
    def __init__(self, account: AccountKey) -> None:
        self.account = account
        self.scanner = Scanner(account)
        self._scanned = 0
        self._owned: list[OwnedOutput] = []
        self._images: dict[bytes, bytes] = {}  # output public key -> its key image

    def sync(self, ledger: LedgerDB) -> None:
        """Scan TxOuts added since the last sync."""
        n = ledger.num_tx_outs()
        if n > self._scanned:
            for o in self.scanner.scan(ledger.get_tx_outs(self._scanned, n)):
                self._owned.append(o)
                self._images[o.tx_out.public_key] = key_image(o.onetime_private)
            self._scanned = n

    def key_image_of(self, owned: OwnedOutput) -> bytes:
        return self._images[owned.tx_out.public_key]

    def unspent(self, ledger: LedgerDB, exclude: set[bytes] | None = None) -> list[OwnedOutput]:
        self.sync(ledger)
        skip = exclude or set()
        return [
            o
            for o in self._owned
            if self.key_image_of(o) not in skip
            and not ledger.contains_key_image(self.key_image_of(o))
        ]

    def balance(self, ledger: LedgerDB) -> int:
        return sum(o.value for o in self.unspent(ledger))

    def build_payment(
        self,
        ledger: LedgerDB,
        to: PublicAddress,
        amount: int,
        rng: RandomSource,
        *,
        fee: int = DEFAULT_FEE,
        exclude_key_images: set[bytes] | None = None,
        max_inputs: int = 16,
        tombstone_window: int = TOMBSTONE_WINDOW,
    ) -> tuple[Tx, list[OwnedOutput]]:
        """A tx paying `amount` to `to` (change back to us); the outputs it spends. It can
        go into any of the next `tombstone_window` blocks: block `ledger.num_blocks() +
        tombstone_window` is its tombstone."""
        chosen: list[OwnedOutput] = []
        total = 0
        for o in sorted(self.unspent(ledger, exclude_key_images), key=lambda o: -o.value):
            if total >= amount + fee or len(chosen) >= max_inputs:
                break
            chosen.append(o)
            total += o.value
        if total < amount + fee:
            raise InsufficientFunds(f"have {total} spendable, need {amount + fee}")
        b = TransactionBuilder(
            self.account, fee=fee, tombstone_block=ledger.num_blocks() + tombstone_window
        )
        for o in chosen:
            b.add_input(input_credentials(ledger, o, rng))
        b.add_output(to, amount)
        return b.build(rng), chosen


def total_balance(wallets: Sequence[Wallet], ledger: LedgerDB) -> int:
    return sum(w.balance(ledger) for w in wallets)
