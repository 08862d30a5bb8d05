"""The transaction layer's binary encoding: `mcnode.binary`'s Writer, a Reader whose
every failure is this layer's `DecodeError`, and `domain_hash`.

Transactions, outputs, proofs and ledger blocks are written with these (fixed-width
little-endian integers, bounded counts and lengths, input consumed exactly: see
`mcnode.binary`). This module knows no type built on it.
"""

from __future__ import annotations

import hashlib

from mcnode import binary
from mcnode.binary import Writer
from mcnode.transaction.errors import DecodeError

__all__ = ["Reader", "Writer", "domain_hash"]


class Reader(binary.Reader):
    """`binary.Reader` raising `transaction.errors.DecodeError`."""

    __slots__ = ()

    error = DecodeError


def domain_hash(dst: bytes, *parts: bytes) -> bytes:
    """SHA-512/256 of a length-prefixed domain tag and length-prefixed parts: the one
    construction for identities of encoded values (tx hash, block id, contents hash).
    The tag's length is one byte, each part's a little-endian u32, as in `mcnode.binary`."""
    tagged = _TAGGED.get(dst)
    if tagged is None:
        tagged = hashlib.new("sha512_256")
        tagged.update(bytes([len(dst)]) + dst)
        if len(_TAGGED) < 64:  # the tags are a handful of constants
            _TAGGED[dst] = tagged
    h = tagged.copy()
    for p in parts:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)  # not concatenated: parts can be a block's whole contents
    return h.digest()


_TAGGED: dict[bytes, hashlib._Hash] = {}
