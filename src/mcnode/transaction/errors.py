"""Every way a transaction can be refused, as a type.

`DecodeError` (a ValueError) is raised where bytes enter: wrong size, over a limit,
trailing data. `TxValidationError` subclasses name the consensus rule that failed, one per
rule, in the order `validation.validate_tx` checks them.
"""

from __future__ import annotations

from mcnode import binary


class DecodeError(binary.DecodeError):
    """Bytes that are not the canonical encoding of the expected value (a ValueError)."""


class TxValidationError(Exception):
    """A well-formed transaction that breaks a consensus rule."""


class InvalidInputCount(TxValidationError):
    """Not 1..16 inputs."""


class InvalidOutputCount(TxValidationError):
    """Not 1..16 outputs."""


class InvalidRingSize(TxValidationError):
    """A ring that does not have exactly 11 members."""


class UnsortedRing(TxValidationError):
    """Ring members not strictly increasing by public key (so unsorted or repeated)."""


class UnsortedInputs(TxValidationError):
    """Inputs not in order of the public key of their first ring member."""


class InvalidMembershipProof(TxValidationError):
    """A ring member whose Merkle proof does not lead to the given root."""


class InvalidRingSignature(TxValidationError):
    """An MLSAG that does not verify, or signatures that do not match the inputs."""


class UnbalancedTx(TxValidationError):
    """Pseudo-output commitments do not equal output commitments plus fee * H."""


class InvalidRangeProof(TxValidationError):
    """The aggregated range proof does not cover the commitments."""


class FeeTooLow(TxValidationError):
    """Fee below the configured minimum."""


class DuplicateKeyImage(TxValidationError):
    """Two inputs of one transaction spend the same output."""


class DuplicateOutputPublicKey(TxValidationError):
    """Two outputs of one transaction share a public key."""


class InvalidTombstone(TxValidationError):
    """Tombstone block not in (current, current + 20160]."""


class KeyImageAlreadySpent(TxValidationError):
    """A key image already in the ledger: a double spend across transactions."""


class OutputPublicKeyExists(TxValidationError):
    """An output public key already in the ledger."""
