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

Destinations sit behind `ArchiveDestination` (put/get/list of keys). `LocalDirectory` is
the one implementation today; an S3 bucket is the same three calls (PutObject, GetObject,
ListObjectsV2 with a prefix) and needs no change here.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mcnode.files import write_atomic
from mcnode.ledger.block import BlockData
from mcnode.ledger.db import LedgerDB
from mcnode.ledger.errors import ArchiveError, InvalidBlock
from mcnode.transaction.encoding import Reader, Writer
from mcnode.transaction.errors import DecodeError

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


def read_head(dest: ArchiveDestination) -> ArchiveHead | None:
    raw = dest.get(HEAD_KEY)
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
        if doc["format"] != HEAD_FORMAT or doc["version"] != 1:
            raise ValueError("not an mcnode archive HEAD")
        return ArchiveHead(int(doc["num_blocks"]), bytes.fromhex(doc["last_block_id"]))
    except (ValueError, KeyError, TypeError) as e:
        raise ArchiveError(f"{dest.describe()}: bad {HEAD_KEY}: {e}") from e


def _write_head(dest: ArchiveDestination, head: ArchiveHead) -> None:
    doc = {
        "format": HEAD_FORMAT,
        "version": 1,
        "num_blocks": head.num_blocks,
        "last_block_id": head.last_block_id.hex(),
    }
    dest.put(HEAD_KEY, (json.dumps(doc) + "\n").encode())


def read_block(dest: ArchiveDestination, index: int) -> BlockData | None:
    raw = dest.get(block_key(index))
    if raw is None:
        return None
    try:
        data = BlockData.from_bytes(raw)
    except DecodeError as e:
        raise ArchiveError(f"{dest.describe()}/{block_key(index)}: not a block file: {e}") from e
    if data.block.index != index:
        raise ArchiveError(f"{dest.describe()}/{block_key(index)} holds block {data.block.index}")
    return data


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


def _archive_length(src: ArchiveDestination, start: int) -> int:
    head = read_head(src)
    if head is not None:
        return head.num_blocks
    end = start  # no HEAD (a partial copy?): take the consecutive block files there are
    while src.get(block_key(end)) is not None:
        end += 1
    return end


def _next_chunk(src: ArchiveDestination, index: int, end: int) -> list[BlockData]:
    for size in BUNDLE_SIZES:
        if index % size == 0 and index + size <= end:
            raw = src.get(bundle_key(size, index))
            if raw is not None:
                try:
                    blocks = decode_bundle(raw)
                except DecodeError as e:
                    raise ArchiveError(
                        f"{src.describe()}/{bundle_key(size, index)}: bad bundle: {e}"
                    ) from e
                if [b.block.index for b in blocks] != list(range(index, index + size)):
                    raise ArchiveError(
                        f"{src.describe()}/{bundle_key(size, index)} holds the wrong blocks"
                    )
                return blocks
    data = read_block(src, index)
    if data is None:
        raise ArchiveError(f"{src.describe()}: block {index} ({block_key(index)}) is missing")
    return [data]


def import_archive(
    src: ArchiveDestination,
    db: LedgerDB,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append the archive's blocks that `db` lacks; return how many. Every block is
    checked by `append_blocks`; the first bad one raises its `InvalidBlock` with the
    ledger holding every good block before it."""
    index = db.num_blocks()
    end = _archive_length(src, index)
    common = min(index, end) - 1  # the last block both should hold: the same one
    if common >= 0:
        theirs = read_block(src, common)
        if theirs is None or theirs.block.id != db.get_block(common).id:
            raise ArchiveError(f"{src.describe()} is an archive of another ledger")
    start = index
    while index < end:
        chunk = _next_chunk(src, index, end)
        try:
            db.append_blocks(chunk)
        except InvalidBlock:
            for data in chunk:  # one by one: keep every good block before the bad one
                db.append_block(data)
            raise
        index += len(chunk)
        if progress is not None:
            progress(index)
    return index - start
