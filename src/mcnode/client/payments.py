"""A payment's fate: committed in block N, not yet committed (it may still commit until
its tombstone), or never (its tombstone passed without it, or its input was spent by
another payment).

A wallet that is told "not committed" for a payment that later commits pays twice if it
sends again. So a payment, once it has left the wallet, is described by a *receipt* (what
identifies it in blocks) and judged only from blocks:

- **Identity.** Blocks carry no tx hashes: they hold the key images a payment spends and
  the outputs it creates (redacted). A payment is committed when its output public keys
  are in a block (one-time keys: no other payment can create them, the ledger refuses a
  key twice). It can never commit once one of its key images is in a block without its
  outputs (another payment spent that input), or once the ledger holds block
  `tombstone - 1` without it: validation admits a tx into block `b` only while
  `b < tombstone` (`transaction.validation.check_tombstone`).
- **Where to look.** The payment was built on a ledger of `first_block` blocks, so it can
  only be in blocks `first_block` to `tombstone - 1`. The receipt keeps the id of block
  `first_block - 1`, the last block the wallet had verified: a status check fetches the
  blocks from there and checks each against its parent and the node's block signers, so a
  node cannot show it a block that is not a successor of the ledger it paid into.

Words: "block N" is a block's index (the origin is block 0); the ledger's *height* is how
many blocks it holds (`/status` `block_height`), so a ledger of height H ends with block
H - 1.

Rules of this file: no network and no clock. It reads and writes the receipt file
(`mcnode.files`: atomic, mode 0600: it names the recipient and the amount) and judges
blocks it is given.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcnode.files import PrivateFileError, read_private_document, write_private_document
from mcnode.ledger.block import BlockData

FORMAT = "mcnode-payment-receipt"
VERSION = 1

#: Exit codes of `mcnode client send` and `mcnode client status` (README, "Payments").
EXIT_COMMITTED = 0
EXIT_ERROR = 1  # send: nothing was sent; status: could not check
EXIT_USAGE = 2  # click's own
EXIT_PENDING = 3  # sent, not committed yet, may still commit: do not send it again
EXIT_FAILED = 4  # will never commit: nothing was paid, safe to send again


class ReceiptError(ValueError):
    """A receipt file that cannot be used; one line naming the file."""


@dataclass(frozen=True)
class Receipt:
    """What identifies a sent payment in blocks, and what it was."""

    tx_hash: bytes
    key_images: tuple[bytes, ...]
    output_public_keys: tuple[bytes, ...]
    tombstone_block: int
    #: the ledger's height when the payment was built: the first block that could hold it
    first_block: int
    #: the id of block `first_block - 1`, as the wallet verified it
    parent_block_id: bytes
    node: str
    to: str
    amount: int
    fee: int

    def __post_init__(self) -> None:
        if not self.key_images or not self.output_public_keys:
            raise ReceiptError("a payment spends at least one input and makes an output")
        if self.first_block < 1 or self.tombstone_block < 1:
            raise ReceiptError("first_block and tombstone_block must be positive")
        for value in (self.tx_hash, self.parent_block_id, *self.key_images):
            if len(value) != 32:
                raise ReceiptError("hashes and key images are 32 bytes")

    @property
    def last_possible_block(self) -> int:
        """The last block that could hold it: `tombstone_block - 1`."""
        return self.tombstone_block - 1

    def fields(self) -> dict[str, Any]:
        return {
            "tx_hash": self.tx_hash.hex(),
            "key_images": [k.hex() for k in self.key_images],
            "output_public_keys": [k.hex() for k in self.output_public_keys],
            "tombstone_block": self.tombstone_block,
            "first_block": self.first_block,
            "parent_block_id": self.parent_block_id.hex(),
            "node": self.node,
            "to": self.to,
            "amount": self.amount,
            "fee": self.fee,
        }

    @classmethod
    def from_fields(cls, doc: dict[str, Any], where: str) -> Receipt:
        try:
            return cls(
                tx_hash=bytes.fromhex(doc["tx_hash"]),
                key_images=tuple(bytes.fromhex(k) for k in doc["key_images"]),
                output_public_keys=tuple(bytes.fromhex(k) for k in doc["output_public_keys"]),
                tombstone_block=_int(doc["tombstone_block"]),
                first_block=_int(doc["first_block"]),
                parent_block_id=bytes.fromhex(doc["parent_block_id"]),
                node=str(doc["node"]),
                to=str(doc["to"]),
                amount=_int(doc["amount"]),
                fee=_int(doc["fee"]),
            )
        except KeyError as e:
            raise ReceiptError(f"{where}: missing {e.args[0]}") from None
        except (ValueError, TypeError) as e:
            raise ReceiptError(f"{where}: malformed receipt: {e}") from None


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def write_receipt(path: str | os.PathLike[str], receipt: Receipt) -> None:
    """Write the receipt atomically, mode 0600 (its directory made, mode 0700)."""
    p = Path(path)
    p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private_document(p, FORMAT, VERSION, receipt.fields())


def read_receipt(path: str | os.PathLike[str]) -> Receipt:
    try:
        doc = read_private_document(path, FORMAT, VERSION)
    except PrivateFileError as e:
        raise ReceiptError(str(e)) from None
    return Receipt.from_fields(doc, str(path))


class Fate(enum.Enum):
    COMMITTED = "committed"
    PENDING = "pending"  # not in a block yet; it may still commit
    FAILED = "failed"  # it can no longer commit

    @property
    def exit_code(self) -> int:
        return {
            Fate.COMMITTED: EXIT_COMMITTED,
            Fate.PENDING: EXIT_PENDING,
            Fate.FAILED: EXIT_FAILED,
        }[self]


@dataclass(frozen=True)
class PaymentStatus:
    fate: Fate
    height: int  # the height of the ledger this was judged on
    block: int | None = None  # COMMITTED: its block; FAILED by a conflict: the spending block
    conflict: bytes | None = None  # FAILED by a conflict: the key image spent elsewhere

    def describe(self, receipt: Receipt) -> str:
        """One line for a person: what happened and what to do."""
        held = f"the ledger holds {self.height} blocks, 0 to {self.height - 1}"
        if self.fate is Fate.COMMITTED:
            return f"committed in block {self.block} ({held})"
        if self.fate is Fate.FAILED and self.conflict is not None:
            return (
                f"can no longer commit: block {self.block} spends its input (key image "
                f"{self.conflict.hex()[:16]}...) in another payment; this payment paid "
                f"nothing"
            )
        if self.fate is Fate.FAILED:
            return (
                f"can no longer commit: its last possible block, {receipt.last_possible_block}"
                f" (tombstone block {receipt.tombstone_block}), is in the ledger without it "
                f"({held}); it paid nothing and can be sent again"
            )
        return (
            f"not committed yet ({held}): it may still commit in any block up to "
            f"{receipt.last_possible_block} (its tombstone block is "
            f"{receipt.tombstone_block}); sending it again now could pay twice"
        )


class PaymentWatch:
    """Judges a receipt from the blocks after the one it was built on, fed in order."""

    def __init__(self, receipt: Receipt) -> None:
        self.receipt = receipt
        self._outputs = frozenset(receipt.output_public_keys)
        self._images = frozenset(receipt.key_images)
        self.next_block = receipt.first_block
        self._settled: PaymentStatus | None = None

    @property
    def settled(self) -> bool:
        return self._settled is not None

    @property
    def wanted(self) -> int:
        """How many blocks matter: after `tombstone - 1`, none can hold it."""
        return self.receipt.tombstone_block

    def see(self, blocks: Iterable[BlockData]) -> None:
        """Blocks `next_block`, `next_block + 1`, ... (earlier ones are skipped)."""
        for data in blocks:
            index = data.block.index
            if index < self.next_block or self._settled is not None:
                continue
            if index != self.next_block:
                raise ValueError(f"block {index} seen, block {self.next_block} expected")
            self.next_block = index + 1
            if index >= self.receipt.tombstone_block:
                continue
            outputs = {o.public_key for o in data.contents.outputs}
            if self._outputs & outputs:
                self._settled = PaymentStatus(Fate.COMMITTED, 0, index)
                continue
            spent = self._images.intersection(data.contents.key_images)
            if spent:
                self._settled = PaymentStatus(Fate.FAILED, 0, index, min(spent))

    def status(self, height: int) -> PaymentStatus:
        """The fate, judged on a ledger of `height` blocks whose blocks up to `height - 1`
        (or up to `tombstone - 1`, or the deciding one) were seen."""
        if self._settled is not None:
            return PaymentStatus(
                self._settled.fate, height, self._settled.block, self._settled.conflict
            )
        if self.next_block < min(height, self.receipt.tombstone_block):
            raise ValueError(f"blocks from {self.next_block} not seen yet")
        if height >= self.receipt.tombstone_block:
            return PaymentStatus(Fate.FAILED, height)
        return PaymentStatus(Fate.PENDING, height)
