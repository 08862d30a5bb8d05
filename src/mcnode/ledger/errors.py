"""Every way the ledger refuses a block or fails to read its store, as a type.

`InvalidBlock` subclasses name the rule a block broke (one per check of `append_block` and
`verify`); `LedgerCorruptError` means the store itself cannot be trusted (not an LMDB
file, truncated, undecodable records, a table disagreeing with the hash chain);
`LedgerLockedError` means another process holds the writer lock. Each message is one
line meant for an operator.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every ledger error."""


class LedgerLockedError(LedgerError):
    """Another process has this ledger open for writing."""


class LedgerCorruptError(LedgerError):
    """The store is damaged: unreadable, truncated, or inconsistent with itself."""


class LedgerNotFoundError(LedgerError):
    """No ledger at the given directory (and we were not asked to create one)."""


class NotInLedger(LedgerError, LookupError):
    """A block, TxOut or key asked for by index or key that the ledger does not hold."""


class InvalidBlock(LedgerError):
    """A block that must not follow the current ledger."""


class WrongBlockIndex(InvalidBlock):
    """Block index is not the number of blocks already in the ledger."""


class WrongParent(InvalidBlock):
    """Parent id is not the id of the last block (zeros for the origin block)."""


class UnknownBlockVersion(InvalidBlock):
    """A block version this code does not understand."""


class ContentsHashMismatch(InvalidBlock):
    """The block's contents hash is not the hash of the contents that came with it."""


class TxOutCountMismatch(InvalidBlock):
    """Cumulative TxOut count is not the previous count plus this block's outputs."""


class MerkleRootMismatch(InvalidBlock):
    """The block's root element is not the root of the tree after its outputs."""


class BlockIdMismatch(InvalidBlock):
    """The block id is not the hash of the block's fields."""


class KeyImageSpent(InvalidBlock):
    """A key image already in the ledger or twice in the block: a double spend."""


class DuplicateOutputKey(InvalidBlock):
    """An output public key already in the ledger or twice in the block."""


class EmptyBlock(InvalidBlock):
    """A block with neither outputs nor key images (only the origin may lack key images)."""


class InvalidBlockSignature(InvalidBlock):
    """Missing or bad signature, a signed origin block, or a signer not expected."""


class ArchiveError(LedgerError):
    """An archive that cannot be read or written: missing files, bad encoding, or an
    archive of another ledger."""
