"""Transaction outputs: one-time keys, hidden amounts, encrypted memos, and view-key scanning.

Paying public address (C, D) with a fresh secret scalar r (the tx private key):

    public key      R = r * D
    shared secret   S = r * C          (= a * R for the recipient with view key a)
    target key      P = Hs("onetime", S) * G + D
    blinding        k = Hs("blinding", S)
    commitment      value * H + k * G
    masked value    value XOR first 8 bytes of SHA-512("value mask", S)
    memo            ChaCha20-Poly1305 under HKDF(S), 64 bytes padded, so 80 on the wire

The recipient recomputes S from R with the view key, checks P - Hs(S) * G against its
subaddress spend keys, and unmasks the value; only it (and the payer) can. The one-time
private key of P is x = Hs(S) + b_i. Nothing here touches a file or a clock.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mcnode.crypto import (
    RandomSource,
    RistrettoPoint,
    Scalar,
    basepoint_mul,
    commit,
    hash_to_scalar,
    point_sub,
)
from mcnode.crypto.signing import aead_open, aead_seal, hkdf_sha512
from mcnode.transaction.account import (
    CHANGE_SUBADDRESS_INDEX,
    DEFAULT_SUBADDRESS_INDEX,
    AccountKey,
    PublicAddress,
)
from mcnode.transaction.encoding import Reader, Writer

DST_ONETIME = b"mcnode onetime key v1"
DST_BLINDING = b"mcnode amount blinding v1"
DST_VALUE_MASK = b"mcnode amount value mask v1"
MEMO_INFO = b"mcnode memo v1"
MEMO_SIZE = 64
E_MEMO_SIZE = MEMO_SIZE + 16
_TXOUT = struct.Struct(f"<32sQ32s32s{E_MEMO_SIZE}s")
TX_OUT_SIZE = 32 + 8 + 32 + 32 + E_MEMO_SIZE


@dataclass(frozen=True, slots=True)
class TxOut:
    """An output as the ledger stores it. Points are encodings, checked where used."""

    commitment: bytes
    masked_value: int
    target_key: bytes
    public_key: bytes
    e_memo: bytes
    # The canonical encoding, kept once made or decoded: every output is encoded for its
    # leaf hash, the block's contents hash and the ledger's record, often by different
    # owners (block former, archive reader, ledger). A cache only, not part of equality;
    # kept only when every byte field is immutable `bytes`, so it cannot go stale.
    _encoding: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self, w: Writer) -> None:
        w.fixed(self.commitment, 32)
        w.u64(self.masked_value)
        w.fixed(self.target_key, 32)
        w.fixed(self.public_key, 32)
        w.fixed(self.e_memo, E_MEMO_SIZE)

    @classmethod
    def decode(cls, r: Reader) -> TxOut:
        # Fixed width: one read, one unpack; the bytes read are the canonical encoding.
        raw = r.fixed(TX_OUT_SIZE)
        out = cls(*_TXOUT.unpack(raw))
        object.__setattr__(out, "_encoding", raw)
        return out

    def to_bytes(self) -> bytes:
        encoding = self._encoding
        if encoding is not None:
            return encoding
        # Same bytes as `encode`, in one struct call: the ledger encodes every output.
        # struct pads or cuts byte strings silently, so the sizes are checked first.
        c, t, p, m = self.commitment, self.target_key, self.public_key, self.e_memo
        if len(c) != 32 or len(t) != 32 or len(p) != 32 or len(m) != E_MEMO_SIZE:
            w = Writer()
            self.encode(w)  # raises the precise size error
        encoding = _TXOUT.pack(c, self.masked_value, t, p, m)
        if type(c) is type(t) is type(p) is type(m) is bytes:  # bytearray could change
            object.__setattr__(self, "_encoding", encoding)
        return encoding

    @classmethod
    def from_bytes(cls, data: bytes) -> TxOut:
        return Reader.whole(data, cls.decode)


@dataclass(frozen=True, slots=True)
class OutputSecret:
    """What the payer knows of an output it made: the opening of its commitment."""

    tx_out: TxOut
    value: int
    blinding: Scalar


@dataclass(frozen=True, slots=True)
class OwnedOutput:
    """An output found by scanning, with everything needed to spend it."""

    tx_out: TxOut
    subaddress_index: int
    value: int
    blinding: Scalar
    onetime_private: Scalar
    memo: bytes


def _value_mask(shared: bytes) -> int:
    digest = hashlib.sha512(bytes([len(DST_VALUE_MASK)]) + DST_VALUE_MASK + shared).digest()
    return int.from_bytes(digest[:8], "little")


def _memo_key(shared: bytes) -> bytes:
    return hkdf_sha512(shared, MEMO_INFO)


def create_output(
    recipient: PublicAddress, value: int, rng: RandomSource, memo: bytes = b""
) -> OutputSecret:
    """A new output paying `value` to `recipient`, with `memo` (at most 64 bytes)."""
    if len(memo) > MEMO_SIZE:
        raise ValueError(f"memo longer than {MEMO_SIZE} bytes")
    r = Scalar.random(rng)
    public_key = r * RistrettoPoint(recipient.spend_public)
    shared = (r * RistrettoPoint(recipient.view_public)).encoding
    target = basepoint_mul(hash_to_scalar(DST_ONETIME, shared)) + RistrettoPoint(
        recipient.spend_public
    )
    blinding = hash_to_scalar(DST_BLINDING, shared)
    e_memo = aead_seal(
        _memo_key(shared),
        bytes(12),
        memo.ljust(MEMO_SIZE, b"\0"),
        target.encoding + public_key.encoding,
    )
    tx_out = TxOut(
        commitment=commit(value, blinding).encoding,
        masked_value=value ^ _value_mask(shared),
        target_key=target.encoding,
        public_key=public_key.encoding,
        e_memo=e_memo,
    )
    return OutputSecret(tx_out, value, blinding)


class Scanner:
    """Finds an account's outputs with its view key (and derives their spend keys)."""

    def __init__(
        self,
        account: AccountKey,
        subaddress_indices: Iterable[int] = (DEFAULT_SUBADDRESS_INDEX, CHANGE_SUBADDRESS_INDEX),
    ) -> None:
        self._account = account
        self._by_spend_public = {account.subaddress(i).spend_public: i for i in subaddress_indices}

    def scan(self, tx_outs: Sequence[TxOut]) -> list[OwnedOutput]:
        """The outputs among `tx_outs` that belong to this account, in order."""
        found = []
        for tx_out in tx_outs:
            owned = self.try_open(tx_out)
            if owned is not None:
                found.append(owned)
        return found

    def try_open(self, tx_out: TxOut) -> OwnedOutput | None:
        try:
            shared = (self._account.view_private * RistrettoPoint(tx_out.public_key)).encoding
            h = hash_to_scalar(DST_ONETIME, shared)
            spend_public = point_sub(tx_out.target_key, basepoint_mul(h).encoding)
        except ValueError:
            return None  # not even valid points: certainly not ours
        index = self._by_spend_public.get(spend_public)
        if index is None:
            return None
        value = tx_out.masked_value ^ _value_mask(shared)
        blinding = hash_to_scalar(DST_BLINDING, shared)
        if commit(value, blinding).encoding != tx_out.commitment:
            return None  # addressed to us but the amount does not open: unspendable
        memo = aead_open(
            _memo_key(shared), bytes(12), tx_out.e_memo, tx_out.target_key + tx_out.public_key
        )
        return OwnedOutput(
            tx_out=tx_out,
            subaddress_index=index,
            value=value,
            blinding=blinding,
            onetime_private=h + self._account.subaddress_spend_private(index),
            memo=(memo or b"").rstrip(b"\0"),
        )
