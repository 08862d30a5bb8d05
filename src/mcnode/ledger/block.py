"""Blocks: the header, the redacted contents, the signature, and their canonical encoding.

    Block          id, version, parent id, index, cumulative TxOut count, Merkle root
                   element (the root of the tree over every TxOut up to this block),
                   contents hash
    BlockContents  key images and outputs only: no rings, signatures or plain amounts
    BlockSignature Ed25519 by a validator's message-signing key over
                   DST || block id || signed-at (seconds, u64), with the signer's key
    BlockData      block + contents + signature (None for the origin block)

    block id       = domain_hash("mcnode block id v1", header encoding without the id)
    contents hash  = domain_hash("mcnode block contents v1", contents encoding)

Encodings use `transaction.encoding` (`mcnode.binary`: fixed-width little-endian, bounded
counts, exact consumption); TxOuts use their own canonical encoding. The contents encoding
is also built in parts (`key_images_part`, `contents_hash_of`, `NO_OUTPUTS`) so that the
ledger's writer hashes and stores the same bytes without encoding anything twice. What a
block must satisfy is not here but in `rules` (given its parent) and the writer (given
the store). Pure: no files, no clock; the signed-at time comes from the caller.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from mcnode.crypto.signing import ed25519_public, ed25519_sign, ed25519_verify
from mcnode.transaction.encoding import Reader, Writer, domain_hash
from mcnode.transaction.errors import DecodeError
from mcnode.transaction.membership import MerkleRoot
from mcnode.transaction.txout import TxOut

BLOCK_VERSION = 1
#: Parent id of the origin block.
ORIGIN_PARENT_ID = bytes(32)
#: Limits on one block (the origin block of a large sample ledger is the biggest).
MAX_BLOCK_OUTPUTS = 1 << 20
MAX_BLOCK_KEY_IMAGES = 1 << 20

DST_BLOCK_ID = b"mcnode block id v1"
DST_CONTENTS = b"mcnode block contents v1"
DST_BLOCK_SIGNATURE = b"mcnode block signature v1"
BLOCK_DATA_FORMAT = 1
#: The output count 0 that ends the contents encoding of a block without outputs:
#: `key_images_part(images) + NO_OUTPUTS` is `BlockContents(images, ()).to_bytes()`, the
#: ledger's record of a block's key images (its outputs are stored one by one).
NO_OUTPUTS = bytes(8)


def key_images_part(key_images: Sequence[bytes]) -> bytes:
    """count || images: how the contents encoding starts (the ledger hashes and stores it
    for every block, so it is built without the `Writer`; same bytes, same errors)."""
    if len(key_images) > MAX_BLOCK_KEY_IMAGES:
        raise ValueError(f"{len(key_images)} key images exceed the limit of {MAX_BLOCK_KEY_IMAGES}")
    for image in key_images:
        if len(image) != 32:
            raise ValueError(f"field must be 32 bytes, got {len(image)}")
    return len(key_images).to_bytes(8, "little") + b"".join(key_images)


@dataclass(frozen=True, slots=True)
class BlockContents:
    """What a block changes: key images it spends and outputs it adds, in ledger order."""

    key_images: tuple[bytes, ...]
    outputs: tuple[TxOut, ...]

    def encode(self, w: Writer) -> None:
        w.count(len(self.key_images), MAX_BLOCK_KEY_IMAGES, width=8, what="key images")
        for image in self.key_images:
            w.fixed(image, 32)
        w.count(len(self.outputs), MAX_BLOCK_OUTPUTS, width=8, what="outputs")
        for tx_out in self.outputs:
            tx_out.encode(w)

    @classmethod
    def decode(cls, r: Reader) -> BlockContents:
        n_images = r.count(MAX_BLOCK_KEY_IMAGES, width=8, what="key images")
        images = tuple(r.fixed(32) for _ in range(n_images))
        n_outputs = r.count(MAX_BLOCK_OUTPUTS, width=8, what="outputs")
        outputs = tuple(TxOut.decode(r) for _ in range(n_outputs))
        return cls(images, outputs)

    def to_bytes(self) -> bytes:
        if not self.outputs:  # the ledger's record of a block's key images
            return key_images_part(self.key_images) + NO_OUTPUTS
        w = Writer()
        self.encode(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockContents:
        return Reader.whole(data, cls.decode)

    def hash(self) -> bytes:
        return contents_hash_of(
            key_images_part(self.key_images), [o.to_bytes() for o in self.outputs]
        )


def contents_hash_of(images_part: bytes, encoded_outputs: Sequence[bytes]) -> bytes:
    """`BlockContents.hash` from its parts: `key_images_part` and the outputs' canonical
    encodings (the ledger's writer has both in hand, and stores them too)."""
    if len(encoded_outputs) > MAX_BLOCK_OUTPUTS:
        raise ValueError(f"{len(encoded_outputs)} outputs exceed the limit of {MAX_BLOCK_OUTPUTS}")
    count = len(encoded_outputs).to_bytes(8, "little")
    return domain_hash(DST_CONTENTS, b"".join((images_part, count, *encoded_outputs)))  # one copy


@dataclass(frozen=True, slots=True)
class Block:
    id: bytes
    version: int
    parent_id: bytes
    index: int
    cumulative_txo_count: int
    root_element: MerkleRoot
    contents_hash: bytes

    @classmethod
    def new(
        cls,
        parent: Block | None,
        contents: BlockContents,
        root: MerkleRoot,
        version: int = BLOCK_VERSION,
    ) -> Block:
        """The block after `parent` (None: the origin) holding `contents`, whose outputs
        bring the TxOut tree to `root`."""
        index = 0 if parent is None else parent.index + 1
        count = (0 if parent is None else parent.cumulative_txo_count) + len(contents.outputs)
        parent_id = ORIGIN_PARENT_ID if parent is None else parent.id
        fields = (version, parent_id, index, count, root, contents.hash())
        return cls(compute_block_id(*fields), *fields)

    def header(self) -> bytes:
        """The encoded fields the id is the hash of (the block's encoding after its id)."""
        return _header(
            self.version,
            self.parent_id,
            self.index,
            self.cumulative_txo_count,
            self.root_element,
            self.contents_hash,
        )

    def expected_id(self) -> bytes:
        return domain_hash(DST_BLOCK_ID, self.header())

    def encode(self, w: Writer) -> None:
        w.fixed(self.id, 32)
        _encode_header(
            w,
            self.version,
            self.parent_id,
            self.index,
            self.cumulative_txo_count,
            self.root_element,
            self.contents_hash,
        )

    @classmethod
    def decode(cls, r: Reader) -> Block:
        block_id, version, parent = r.fixed(32), r.u16(), r.fixed(32)
        index, count = r.u64(), r.u64()
        root = MerkleRoot(r.u64(), r.fixed(32))
        return cls(block_id, version, parent, index, count, root, r.fixed(32))

    def to_bytes(self) -> bytes:
        if len(self.id) != 32:
            raise ValueError(f"field must be 32 bytes, got {len(self.id)}")
        return self.id + self.header()

    @classmethod
    def from_bytes(cls, data: bytes) -> Block:
        return Reader.whole(data, cls.decode)


def _encode_header(
    w: Writer,
    version: int,
    parent_id: bytes,
    index: int,
    count: int,
    root: MerkleRoot,
    contents_hash: bytes,
) -> None:
    w.u16(version)
    w.fixed(parent_id, 32)
    w.u64(index)
    w.u64(count)
    w.u64(root.size)
    w.fixed(root.hash, 32)
    w.fixed(contents_hash, 32)


_HEADER = struct.Struct("<H32sQQQ32s32s")


def _header(
    version: int,
    parent_id: bytes,
    index: int,
    count: int,
    root: MerkleRoot,
    contents_hash: bytes,
) -> bytes:
    """`_encode_header`'s bytes in one `struct` call (every append encodes two headers)."""
    if len(parent_id) == len(root.hash) == len(contents_hash) == 32:
        try:
            return _HEADER.pack(
                version, parent_id, index, count, root.size, root.hash, contents_hash
            )
        except struct.error:
            pass
    w = Writer()  # raises the precise error
    _encode_header(w, version, parent_id, index, count, root, contents_hash)
    return w.getvalue()


def compute_block_id(
    version: int,
    parent_id: bytes,
    index: int,
    cumulative_txo_count: int,
    root: MerkleRoot,
    contents_hash: bytes,
) -> bytes:
    header = _header(version, parent_id, index, cumulative_txo_count, root, contents_hash)
    return domain_hash(DST_BLOCK_ID, header)


@dataclass(frozen=True, slots=True)
class BlockSignature:
    signature: bytes
    signer: bytes
    signed_at: int

    def encode(self, w: Writer) -> None:
        w.fixed(self.signature, 64)
        w.fixed(self.signer, 32)
        w.u64(self.signed_at)

    @classmethod
    def decode(cls, r: Reader) -> BlockSignature:
        return cls(r.fixed(64), r.fixed(32), r.u64())

    def to_bytes(self) -> bytes:
        if len(self.signature) == 64 and len(self.signer) == 32 and 0 <= self.signed_at < 2**64:
            return self.signature + self.signer + self.signed_at.to_bytes(8, "little")
        w = Writer()  # raises the precise error
        self.encode(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockSignature:
        return Reader.whole(data, cls.decode)

    def verify(self, block_id: bytes) -> bool:
        return ed25519_verify(
            self.signer, _signing_message(block_id, self.signed_at), self.signature
        )


def _signing_message(block_id: bytes, signed_at: int) -> bytes:
    return DST_BLOCK_SIGNATURE + block_id + signed_at.to_bytes(8, "little")


def sign_block(block: Block, private_key: bytes, signed_at: int) -> BlockSignature:
    """Sign `block` with a node's Ed25519 message-signing key; `signed_at` is Unix seconds
    supplied by the caller (ledger code never reads the clock)."""
    return BlockSignature(
        ed25519_sign(private_key, _signing_message(block.id, signed_at)),
        ed25519_public(private_key),
        signed_at,
    )


@dataclass(frozen=True, slots=True)
class BlockData:
    """A block with everything needed to check and append it: the unit of archives."""

    block: Block
    contents: BlockContents
    signature: BlockSignature | None

    def to_bytes(self) -> bytes:
        w = Writer()
        w.u8(BLOCK_DATA_FORMAT)
        self.block.encode(w)
        self.contents.encode(w)
        w.u8(0 if self.signature is None else 1)
        if self.signature is not None:
            self.signature.encode(w)
        return w.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockData:
        r = Reader(data)
        fmt = r.u8()
        if fmt != BLOCK_DATA_FORMAT:
            raise DecodeError(f"unknown block data format {fmt}")
        block, contents = Block.decode(r), BlockContents.decode(r)
        flag = r.u8()
        if flag not in (0, 1):
            raise DecodeError("bad signature flag")
        signature = BlockSignature.decode(r) if flag else None
        r.finish()
        return cls(block, contents, signature)
