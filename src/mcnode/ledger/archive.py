"""Ledger archives: every block's data as one file, for other nodes to catch up from.

Layout (keys are '/'-separated paths under the destination, as in MobileCoin's ledger
archives, with our own canonical `BlockData` encoding instead of protobuf):

    00/00/00/00/00/00/00/0000000000000001.mcblock         block 1 (16 hex digits; the
                                                          first 14 split into directories)
    merged-100/00/00/00/00/00/00/01/0000000000000100.mcblocks   blocks 100..199
    merged-1000/00/00/00/00/00/00/00/0000000000000000.mcblocks  blocks 0..999
    HEAD                                                  {"num_blocks", "last_block_id"}

A bundle is a u64 count, then per block a u64 length and the `BlockData` bytes
(`mcnode.binary`: little-endian, both bounded).
HEAD is written last, so an interrupted export is simply resumed: `export_archive` starts
at HEAD's count after checking that HEAD's last block is the ledger's (an archive of
another chain is refused). `import_archive` reads bundles where it can, single files
otherwise, and appends through `LedgerDB.append_blocks`, which checks every rule (hash
chain, contents hash, signature by the expected signers, Merkle root).

Every object sits at a path computed from a block index, and HEAD says how many blocks
there are, so a plain static web server serves an archive directory as it is (no
directory listing, no index to regenerate). What a reader needs besides bytes is shared
here, for every transport: `chunk_plan` (which objects hold blocks start..end),
`decode_chunk` (an object's blocks, checked to be the ones asked for), `parse_head`,
`check_same_ledger` and `append_checked` (through the ledger's own checks, keeping every
good block before a bad one). `node/archives.py` reads archives over HTTP with them.

Destinations sit behind `ArchiveDestination` (put/get/list of keys). `LocalDirectory` is
the one implementation today; an S3 bucket is the same three calls (PutObject, GetObject,
ListObjectsV2 with a prefix) and needs no change here.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mcnode.files import write_atomic
from mcnode.ledger.block import Block, BlockData
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import ArchiveError, InvalidBlock
from mcnode.transaction.encoding import Reader, Writer

BLOCK_EXT = ".mcblock"
BUNDLE_EXT = ".mcblocks"
BUNDLE_SIZES = (1000, 100)
HEAD_KEY = "HEAD"
HEAD_FORMAT = "mcnode-archive"
#: Largest block file or bundle we will read.
MAX_OBJECT_BYTES = 1 << 31
MAX_BUNDLE_BLOCKS = max(BUNDLE_SIZES)


class ArchiveDestination(ABC):
    """Where archive objects live: a key -> bytes store with prefix listing."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing it; readers never see a partial object."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """The object under `key`, or None when there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys that start with `prefix`, in no particular order."""

    def describe(self) -> str:
        return type(self).__name__


class LocalDirectory(ArchiveDestination):
    """An archive in a local directory; each put is atomic (write, fsync, rename)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root)
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts):
            raise ArchiveError(f"bad archive key {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # 0o666 under the umask, as open() makes files: archives are served as they are.
            # With fsync, the rename (the directory entry) is synced too, not only the bytes.
            write_atomic(path, data, mode=0o666, fsync=self.fsync)
        except OSError as e:
            raise ArchiveError(f"{path}: cannot write: {e.strerror or e}") from e

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_OBJECT_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ArchiveError(f"{path}: cannot read: {e.strerror}") from e
        if len(data) > MAX_OBJECT_BYTES:
            raise ArchiveError(f"{path}: larger than any archive object")
        return data

    def list(self, prefix: str = "") -> Iterator[str]:
        for dirpath, _, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            for name in files:
                key = (rel / name).as_posix() if rel.parts else name
                if key.startswith(prefix) and not name.startswith("."):
                    yield key

    def describe(self) -> str:
        return str(self.root)


def _nested(index: int, ext: str) -> str:
    digits = f"{index:016x}"
    return "/".join(digits[i : i + 2] for i in range(0, 14, 2)) + f"/{digits}{ext}"


def block_key(index: int) -> str:
    return _nested(index, BLOCK_EXT)


def bundle_key(size: int, first: int) -> str:
    return f"merged-{size}/" + _nested(first, BUNDLE_EXT)


def encode_bundle(blocks: list[BlockData]) -> bytes:
    w = Writer()
    w.count(len(blocks), MAX_BUNDLE_BLOCKS, width=8, what="blocks")
    for data in blocks:
        w.var(data.to_bytes(), MAX_OBJECT_BYTES, width=8, what="block")
    return w.getvalue()


def decode_bundle(data: bytes) -> list[BlockData]:
    r = Reader(data)
    count = r.count(MAX_BUNDLE_BLOCKS, width=8, what="blocks")
    blocks = [
        BlockData.from_bytes(r.var(MAX_OBJECT_BYTES, width=8, what="block")) for _ in range(count)
    ]
    r.finish()
    return blocks


@dataclass(frozen=True, slots=True)
class ArchiveHead:
    num_blocks: int
    last_block_id: bytes


#: Largest HEAD we will read (it is a few dozen bytes).
MAX_HEAD_BYTES = 64 * 1024


def parse_head(where: str, raw: bytes) -> ArchiveHead:
    """HEAD's content, or ArchiveError naming `where` (the archive)."""
    try:
        if len(raw) > MAX_HEAD_BYTES:
            raise ValueError(f"larger than {MAX_HEAD_BYTES} bytes")
        doc = json.loads(raw)
        if doc["format"] != HEAD_FORMAT or doc["version"] != 1:
            raise ValueError("not an mcnode archive HEAD")
        head = ArchiveHead(int(doc["num_blocks"]), bytes.fromhex(doc["last_block_id"]))
        if not 0 <= head.num_blocks < 1 << 63 or len(head.last_block_id) != 32:
            raise ValueError("num_blocks or last_block_id out of range")
        return head
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:
        raise ArchiveError(f"{where}: bad {HEAD_KEY}: {e}") from e


def read_head(dest: ArchiveDestination) -> ArchiveHead | None:
    raw = dest.get(HEAD_KEY)
    return None if raw is None else parse_head(dest.describe(), raw)


def _write_head(dest: ArchiveDestination, head: ArchiveHead) -> None:
    doc = {
        "format": HEAD_FORMAT,
        "version": 1,
        "num_blocks": head.num_blocks,
        "last_block_id": head.last_block_id.hex(),
    }
    dest.put(HEAD_KEY, (json.dumps(doc) + "\n").encode())


@dataclass(frozen=True, slots=True)
class Chunk:
    """Blocks `first`..`first + count - 1` as one archive object: a bundle (count 100 or
    1000) or a block file (count 1)."""

    first: int
    count: int

    @property
    def key(self) -> str:
        return block_key(self.first) if self.count == 1 else bundle_key(self.count, self.first)

    def parts(self) -> list[Chunk]:
        """Smaller objects holding the same blocks, for when this bundle is not there."""
        smaller = tuple(s for s in BUNDLE_SIZES if s < self.count)
        return list(chunk_plan(self.first, self.first + self.count, smaller))


def chunk_plan(start: int, end: int, sizes: Sequence[int] = BUNDLE_SIZES) -> Iterator[Chunk]:
    """The objects to read for blocks start..end-1, in order: the largest bundle that
    starts at each index and fits, else the block's own file."""
    index = start
    while index < end:
        size = next((s for s in sizes if index % s == 0 and index + s <= end), 1)
        yield Chunk(index, size)
        index += size


def decode_chunk(where: str, chunk: Chunk, raw: bytes) -> list[BlockData]:
    """The blocks in the object `raw`, checked to be exactly `chunk`'s; ArchiveError (one
    line naming `where`/key) for anything else. Whether they are valid blocks is the
    ledger's to say (`append_checked`)."""
    path = f"{where.rstrip('/')}/{chunk.key}"
    try:
        blocks = decode_bundle(raw) if chunk.count > 1 else [BlockData.from_bytes(raw)]
    except ValueError as e:  # DecodeError, or a value out of its range
        what = "bad bundle" if chunk.count > 1 else "not a block file"
        raise ArchiveError(f"{path}: {what}: {e}") from e
    indices = [b.block.index for b in blocks]
    if indices != list(range(chunk.first, chunk.first + chunk.count)):
        if chunk.count == 1:
            raise ArchiveError(f"{path} holds block {indices[0]}")
        raise ArchiveError(f"{path} holds the wrong blocks")
    return blocks


def read_block(dest: ArchiveDestination, index: int) -> BlockData | None:
    raw = dest.get(block_key(index))
    return None if raw is None else decode_chunk(dest.describe(), Chunk(index, 1), raw)[0]


@dataclass(frozen=True, slots=True)
class ExportReport:
    first: int
    num_blocks: int
    bundles: int


def export_archive(
    db: LedgerDB,
    dest: ArchiveDestination,
    progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write every block the archive lacks, the bundles they complete, then HEAD."""
    head = read_head(dest)
    total = db.num_blocks()
    start = 0 if head is None else head.num_blocks
    if start > total:
        raise ArchiveError(
            f"{dest.describe()} holds {start} blocks, more than the ledger's {total}"
        )
    if head is not None and start > 0 and db.get_block(start - 1).id != head.last_block_id:
        raise ArchiveError(f"{dest.describe()} is an archive of another ledger")
    for data in db.iter_block_data(start):
        dest.put(block_key(data.block.index), data.to_bytes())
        if progress is not None:
            progress(data.block.index)
    bundles = 0
    for size in BUNDLE_SIZES:
        for first in range(start // size * size, total - size + 1, size):
            dest.put(
                bundle_key(size, first),
                encode_bundle(list(db.iter_block_data(first, first + size))),
            )
            bundles += 1
    if total > start:
        _write_head(dest, ArchiveHead(total, db.get_block(total - 1).id))
    return ExportReport(start, total, bundles)


class ArchiveTarget(Protocol):
    """What an import needs of a ledger (`LedgerDB`; the node's `LedgerPort`)."""

    def num_blocks(self) -> int: ...

    def get_block(self, index: int) -> Block: ...

    def append_block(self, data: BlockData) -> None: ...

    def append_blocks(self, blocks: Sequence[BlockData]) -> None: ...


def check_same_ledger(where: str, ours: Block, theirs: BlockData | None) -> None:
    """Refuse an archive whose block at our block's index is not ours: another chain."""
    if theirs is None or theirs.block.id != ours.id:
        raise ArchiveError(f"{where} is an archive of another ledger")


def check_origin(where: str, first: BlockData | None, origin_id: bytes) -> None:
    """Refuse an archive whose origin block (when it has one) is not the one we pin."""
    if first is not None and first.block.id != origin_id:
        raise ArchiveError(f"{where}: origin block {first.block.id.hex()} is not the expected one")


def append_checked(db: ArchiveTarget, blocks: Sequence[BlockData]) -> None:
    """Append through every check of the ledger (hash chain, contents hash, signature by
    the expected signers, Merkle root). On a refusal the ledger keeps every good block
    before the bad one, and the bad one's `InvalidBlock` is raised."""
    try:
        db.append_blocks(blocks)
    except InvalidBlock:
        for data in blocks:  # one by one: keep every good block before the bad one
            db.append_block(data)
        raise


def _archive_length(src: ArchiveDestination, start: int) -> int:
    head = read_head(src)
    if head is not None:
        return head.num_blocks
    end = start  # no HEAD (a partial copy?): take the consecutive block files there are
    while src.get(block_key(end)) is not None:
        end += 1
    return end


def _read_chunks(src: ArchiveDestination, chunks: Iterable[Chunk]) -> Iterator[list[BlockData]]:
    for chunk in chunks:
        raw = src.get(chunk.key)
        if raw is not None:
            yield decode_chunk(src.describe(), chunk, raw)
        elif chunk.count > 1:
            yield from _read_chunks(src, chunk.parts())
        else:
            raise ArchiveError(f"{src.describe()}: block {chunk.first} ({chunk.key}) is missing")


#: Blocks appended per write transaction when they come one file at a time (a bundle is
#: appended whole): a transaction, and its fsync, per block would cost more than the checks.
APPEND_BATCH = 100


def batched(
    chunks: Iterable[list[BlockData]], size: int = APPEND_BATCH
) -> Iterator[list[BlockData]]:
    """Consecutive chunks joined until they hold at least `size` blocks. When reading
    fails, the blocks read before the failure come out first, then the error is raised."""
    pending: list[BlockData] = []
    try:
        for blocks in chunks:
            pending += blocks
            if len(pending) >= size:
                yield pending
                pending = []
    except ArchiveError:
        if pending:
            yield pending
        raise
    if pending:
        yield pending


def import_archive(
    src: ArchiveDestination,
    db: ArchiveTarget,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append the archive's blocks that `db` lacks; return how many. Every block is
    checked by `append_blocks`; the first bad one raises its `InvalidBlock` with the
    ledger holding every good block before it."""
    index = db.num_blocks()
    end = _archive_length(src, index)
    common = min(index, end) - 1  # the last block both should hold: the same one
    if common >= 0:
        check_same_ledger(src.describe(), db.get_block(common), read_block(src, common))
    start = index
    for blocks in batched(_read_chunks(src, chunk_plan(index, end))):
        append_checked(db, blocks)
        index += len(blocks)
        if progress is not None:
            progress(index)
    return index - start
