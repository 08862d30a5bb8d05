"""Result codes and the errors the enclave raises to the host.

Every refusal the host can see carries a `ProposeTxResult`: a stable name and number that
the wire layer maps 1:1 onto the client API. One code per transaction validation rule
(`transaction.errors`), plus the enclave's own (bad session, undecodable message, cache
full) and two the host adds itself (`OVER_CAPACITY` for its own queues, `NOT_SERVING`
while catching up).

What an error may say: its code and a fixed sentence for that code, never the validator's
own message, which can name a ring member's ledger index or other plaintext. Errors are
raised outside the handler of what caused them, so no plaintext-bearing exception rides
along as their cause or context.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum

from mcnode import binary
from mcnode.transaction import errors as tx_errors


class ProposeTxResult(Enum):
    """Stable result codes of proposing a transaction. Never renumber; only add."""

    OK = 0
    DECODE_ERROR = 1
    BAD_SESSION = 2
    OVER_CAPACITY = 3
    NOT_SERVING = 4
    INVALID_INPUT_COUNT = 10
    INVALID_OUTPUT_COUNT = 11
    INVALID_RING_SIZE = 12
    UNSORTED_RING = 13
    UNSORTED_INPUTS = 14
    INVALID_MEMBERSHIP_PROOF = 15
    INVALID_RING_SIGNATURE = 16
    UNBALANCED_TX = 17
    INVALID_RANGE_PROOF = 18
    FEE_TOO_LOW = 19
    DUPLICATE_KEY_IMAGE = 20
    DUPLICATE_OUTPUT_PUBLIC_KEY = 21
    INVALID_TOMBSTONE = 22
    KEY_IMAGE_ALREADY_SPENT = 23
    OUTPUT_PUBLIC_KEY_EXISTS = 24


#: The code of each validation rule's error type (a test checks none is missing).
VALIDATION_CODES: dict[type[tx_errors.TxValidationError], ProposeTxResult] = {
    tx_errors.InvalidInputCount: ProposeTxResult.INVALID_INPUT_COUNT,
    tx_errors.InvalidOutputCount: ProposeTxResult.INVALID_OUTPUT_COUNT,
    tx_errors.InvalidRingSize: ProposeTxResult.INVALID_RING_SIZE,
    tx_errors.UnsortedRing: ProposeTxResult.UNSORTED_RING,
    tx_errors.UnsortedInputs: ProposeTxResult.UNSORTED_INPUTS,
    tx_errors.InvalidMembershipProof: ProposeTxResult.INVALID_MEMBERSHIP_PROOF,
    tx_errors.InvalidRingSignature: ProposeTxResult.INVALID_RING_SIGNATURE,
    tx_errors.UnbalancedTx: ProposeTxResult.UNBALANCED_TX,
    tx_errors.InvalidRangeProof: ProposeTxResult.INVALID_RANGE_PROOF,
    tx_errors.FeeTooLow: ProposeTxResult.FEE_TOO_LOW,
    tx_errors.DuplicateKeyImage: ProposeTxResult.DUPLICATE_KEY_IMAGE,
    tx_errors.DuplicateOutputPublicKey: ProposeTxResult.DUPLICATE_OUTPUT_PUBLIC_KEY,
    tx_errors.InvalidTombstone: ProposeTxResult.INVALID_TOMBSTONE,
    tx_errors.KeyImageAlreadySpent: ProposeTxResult.KEY_IMAGE_ALREADY_SPENT,
    tx_errors.OutputPublicKeyExists: ProposeTxResult.OUTPUT_PUBLIC_KEY_EXISTS,
}

_VALIDATION_SENTENCES = {
    code: (cls.__doc__ or code.name).strip() for cls, code in VALIDATION_CODES.items()
}


def code_for(error: tx_errors.TxValidationError) -> ProposeTxResult:
    for cls in type(error).__mro__:
        code = VALIDATION_CODES.get(cls)  # type: ignore[call-overload]
        if code is not None:
            return code
    raise TypeError(f"no result code for {type(error).__name__}")


class EnclaveError(Exception):
    """Base of everything the enclave raises to the host."""


class ProposeTxError(EnclaveError):
    """A refused proposal, with its stable result code."""

    code: ProposeTxResult = ProposeTxResult.DECODE_ERROR

    def __init__(self, message: str, code: ProposeTxResult | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(f"{self.code.name}: {message}")


class SessionError(ProposeTxError):
    """Unknown or evicted session, failed handshake, or a message that does not decrypt
    under the session (the client should handshake again)."""

    code = ProposeTxResult.BAD_SESSION


class MessageDecodeError(ProposeTxError):
    """Decrypted, but not the encoding of a transaction (or a batch of them)."""

    code = ProposeTxResult.DECODE_ERROR


class CapacityError(ProposeTxError):
    """The enclave's bounded tables are full (cached txs, peer sessions)."""

    code = ProposeTxResult.OVER_CAPACITY


class TxRejected(ProposeTxError):
    """The transaction breaks a consensus rule; `code` names which."""

    @classmethod
    def for_code(cls, code: ProposeTxResult) -> TxRejected:
        return cls(_VALIDATION_SENTENCES[code], code)


def run_rules(check: Callable[[], None]) -> None:
    """Run validation rules; a failure comes out as `TxRejected` with its code and fixed
    sentence only, neither chained to nor raised in the context of the rule's error."""
    code = None
    try:
        check()
    except tx_errors.TxValidationError as e:
        code = code_for(e)
    if code is not None:
        raise TxRejected.for_code(code)


class UnknownTx(EnclaveError, LookupError):
    """Transactions asked for by hash that the enclave does not hold."""

    def __init__(self, tx_hashes: tuple[bytes, ...]) -> None:
        self.tx_hashes = tx_hashes
        shown = ", ".join(h.hex()[:16] for h in tx_hashes[:4])
        more = f" and {len(tx_hashes) - 4} more" if len(tx_hashes) > 4 else ""
        super().__init__(f"{len(tx_hashes)} transaction(s) not held by the enclave: {shown}{more}")


class PeerSessionError(SessionError):
    """A peer session that cannot be used: no session with that label, a handshake step
    out of order, or a sealed message that opens under none of the label's sessions."""


class PeerAuthError(PeerSessionError):
    """A peer handshake message that does not prove what it must: it does not decode, its
    payload is not one we know, its host's signature over the handshake transcript is not
    by the consensus-message key configured for that peer, or its attestation evidence is
    missing or refused. Nothing was changed.

    `reason` says which, in a short code: `handshake`, `signature`, `payload`, or
    `attestation:<the attestation refusal's reason>` (`attestation:no_evidence`,
    `attestation:mrenclave`, `attestation:report_data`, ...). The message ends with
    `(reason: <reason>)`, which is how the reason crosses the process boundary."""

    def __init__(self, message: str, reason: str = "auth") -> None:
        super().__init__(f"{message} (reason: {reason})")
        self.reason = reason

    @staticmethod
    def reason_in(message: str) -> str:
        """The reason a message made by `PeerAuthError` names ("auth" if none)."""
        match = _REASON.search(message)
        return "auth" if match is None else match.group(1)


_REASON = re.compile(r"\(reason: ([a-z_:]+)\)$")


class AttestationFailed(SessionError):
    """The enclave's attestation evidence was missing or refused in a client handshake:
    no transaction can be sealed on this session. `reason` is the refusal's code
    (`no_evidence`, or an `attest.AttestationError`'s: `mrenclave`, `report_data`,
    `collateral_expired`, `untrusted_root`, `simulation_not_allowed`, ...) and
    `sentence` its sentence."""

    def __init__(self, reason: str, sentence: str) -> None:
        super().__init__(f"attestation refused ({reason}): {sentence}")
        self.reason = reason
        self.sentence = sentence


class StaleParent(EnclaveError):
    """`form_block` was given a parent that is not the ledger's last block."""


class MessageTooLarge(EnclaveError):
    """A message the enclave would have to produce or accept is over its size limit."""


class SealError(EnclaveError):
    """Sealed data that does not open: sealed by another enclave build (another
    measurement), with another sealing secret, or damaged."""


class EnclaveInternalError(EnclaveError):
    """The enclave process failed on a request in a way it has no error type for (a bug).
    Carries only the failing exception's type name, never its message."""


class IpcError(EnclaveError, binary.DecodeError):
    """A frame of the host-enclave protocol (`ipc`) that does not decode: torn, over a
    limit, an unknown method or error kind, or trailing bytes. `request_id` is the
    request's id when it could be read (the server then answers with this error)."""

    def __init__(self, message: str, request_id: int | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id
