"""Archive sources: where catch-up and `mcnode ledger import` read blocks from.

A source is a directory, or the http:// or https:// URL of one served by any static web
server: the layout (`ledger/archive.py`) is a `HEAD` file and objects at paths computed
from block indices, so nothing needs a directory listing.

Rules of this file:
- It decides nothing about validity. Every block read goes through `append_checked`, the
  ledger's own checks (hash chain, contents hash, signature by the expected signers,
  Merkle root), exactly as a block from a directory or a peer does.
- A hostile or broken server costs bounded memory and time: a response larger than
  `FetchPolicy.max_object_bytes` (HEAD: `MAX_HEAD_BYTES`) is cut off and refused, bodies
  are never decompressed (no decompression bomb), every request has connect, read and
  total timeouts, `parallel` requests are in flight and at most `READ_AHEAD * parallel`
  objects are held ahead of the one appended.
- Transient failures (cannot connect, timeout, 5xx, 429, a body cut short) are retried
  with exponential backoff, `attempts` in all; anything else fails the source at once.
  A failure is one `ArchiveError` naming the source, the object, the block and what was
  wrong; the caller moves on to its next source (or its peers).
- It owns the HTTP client (asyncio, like every socket of the code base); the ledger
  package stays synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp

import mcnode
from mcnode.ledger.archive import (
    APPEND_BATCH,
    HEAD_KEY,
    MAX_HEAD_BYTES,
    ArchiveHead,
    ArchiveTarget,
    Chunk,
    LocalDirectory,
    append_checked,
    check_origin,
    check_same_ledger,
    chunk_plan,
    decode_chunk,
    import_archive,
    parse_head,
    read_block,
)
from mcnode.ledger.block import BlockData
from mcnode.ledger.errors import ArchiveError

HTTP_SCHEMES = ("http", "https")
#: Objects fetched ahead of the one being appended, per request allowed in flight: with
#: one, a slow object at the head of the line would idle the other connections. What a
#: server can make us hold is READ_AHEAD * parallel * max_object_bytes (256 MiB at the
#: defaults; a block file at the default block limits is under 5 MB).
READ_AHEAD = 2
#: Statuses worth asking again: the server or something before it is briefly unwell.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class BadArchiveSource(ValueError):
    """An `[archive] sources` entry (or `--archive`) that is neither a directory nor a
    usable http(s) URL; the message is one line."""


@dataclass(frozen=True)
class ArchiveUrl:
    """An HTTP(S) archive: the URL of its directory, always ending in '/'."""

    url: str

    def __str__(self) -> str:
        return self.url


ArchiveSource = Path | ArchiveUrl
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")


def parse_archive_source(text: str, base: Path | None = None) -> ArchiveSource:
    """A directory (relative to `base`, if given) or an http(s) URL; BadArchiveSource for
    an empty entry, another scheme, or a malformed URL."""
    if not text.strip():
        raise BadArchiveSource("empty: give a directory or an http(s):// URL")
    m = _SCHEME.match(text)
    if m is None or (m.group(2) is None and m.group(1).lower() not in HTTP_SCHEMES):
        path = Path(text)
        return path if base is None else base / path
    return ArchiveUrl(_normal_url(text, m.group(1)))


def _normal_url(text: str, scheme: str) -> str:
    if scheme.lower() not in HTTP_SCHEMES:
        raise BadArchiveSource(
            f"{text!r}: unsupported scheme {scheme!r}: a source is a directory or an "
            "http:// or https:// URL"
        )
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise BadArchiveSource(f"{text!r}: spaces or control characters in the URL")
    try:
        u = urlsplit(text)
    except ValueError as e:  # a bracketed host that is not an IPv6 address
        raise BadArchiveSource(f"{text!r}: {e}") from None
    if not text[len(scheme) :].startswith("://") or not u.hostname:
        raise BadArchiveSource(f"{text!r}: expected {scheme.lower()}://HOST[:PORT]/PATH/")
    if u.username is not None or u.password is not None:
        raise BadArchiveSource(f"{u.hostname}: credentials in the URL are not supported")
    try:
        u.port  # noqa: B018 (it raises on a bad port)
    except ValueError as e:
        raise BadArchiveSource(f"{text!r}: {e}") from None
    if u.query or u.fragment or text.endswith(("?", "#")):
        raise BadArchiveSource(f"{text!r}: an archive URL has no query or fragment")
    path = u.path if u.path.endswith("/") else u.path + "/"
    return urlunsplit((u.scheme.lower(), u.netloc, path, "", ""))


@dataclass(frozen=True)
class FetchPolicy:
    """How hard we try, and how much a server may make us hold."""

    parallel: int = 8  # requests in flight (and connections) per source
    attempts: int = 4  # per object, the first included
    backoff: float = 0.25  # seconds before the first retry; doubles each time
    backoff_max: float = 4.0
    max_object_bytes: int = 16 << 20  # a bundle over this is read as its parts instead
    connect_timeout: float = 5.0
    read_timeout: float = 20.0  # between two reads of one response
    total_timeout: float = 120.0  # one request, start to last byte


class ArchiveSourceFailed(ArchiveError):
    """An HTTP archive that could not be read: unreachable, refusing, or serving what no
    archive holds. The message names the object's URL, its block, and what was wrong."""

    def __init__(self, source: ArchiveUrl, key: str, block: int | None, reason: str) -> None:
        self.source, self.key, self.block, self.reason = source, key, block, reason
        at = "" if block is None else f" (block {block})"
        super().__init__(f"{source.url}{key}{at}: {reason}")


class _TooLarge(Exception):
    pass


class _Transient(Exception):
    pass


def _what_went_wrong(e: BaseException) -> str:
    if isinstance(e, aiohttp.ClientSSLError):
        return f"TLS: {e}"
    if isinstance(e, aiohttp.ClientConnectorError):
        err = e.os_error  # asyncio words a refusal "Connect call failed (...)": use errno
        plain = err.errno and err.errno > 0 and not isinstance(err, socket.gaierror)
        return f"unreachable: {os.strerror(err.errno) if plain else err.strerror or err}"
    if isinstance(e, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return "timed out"
    if isinstance(e, aiohttp.ClientPayloadError):
        return f"response cut short: {e}"
    if isinstance(e, _Transient):
        return str(e)
    return f"{type(e).__name__}: {e}"


@dataclass
class _Fetch:
    chunk: Chunk
    task: asyncio.Task[list[BlockData] | None] | None = field(default=None)


class HttpArchive:
    """One HTTP archive, read through `session`."""

    def __init__(
        self,
        url: ArchiveUrl,
        session: aiohttp.ClientSession,
        policy: FetchPolicy = FetchPolicy(),
    ) -> None:
        self.url = url
        self.session = session
        self.policy = policy

    # -- one object -----------------------------------------------------------------------
    async def get(self, key: str, limit: int, block: int | None) -> bytes | None:
        """The object at `key`, or None when the server has none (404, 410). Raises
        `_TooLarge` past `limit` bytes, `ArchiveSourceFailed` for anything else wrong
        (transient problems only after `attempts` tries)."""
        delay = self.policy.backoff
        for attempt in range(1, self.policy.attempts + 1):
            try:
                return await self._get_once(key, limit, block)
            except aiohttp.ClientSSLError as e:  # a certificate will not improve by waiting
                raise ArchiveSourceFailed(self.url, key, block, _what_went_wrong(e)) from e
            except (aiohttp.ClientError, TimeoutError, _Transient) as e:
                if attempt == self.policy.attempts:
                    tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                    reason = f"{_what_went_wrong(e)} ({tries})"
                    raise ArchiveSourceFailed(self.url, key, block, reason) from e
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.policy.backoff_max)
        raise AssertionError("unreachable")  # the loop returns or raises

    async def _get_once(self, key: str, limit: int, block: int | None) -> bytes | None:
        async with self.session.get(self.url.url + key) as resp:
            if resp.status in (404, 410):
                return None
            if resp.status in TRANSIENT_STATUSES:
                raise _Transient(f"HTTP {resp.status} {resp.reason or ''}".rstrip())
            if resp.status != 200:
                reason = f"HTTP {resp.status} {resp.reason or ''}".rstrip()
                raise ArchiveSourceFailed(self.url, key, block, reason)
            encoding = resp.headers.get("Content-Encoding", "identity").lower()
            if encoding != "identity":
                raise ArchiveSourceFailed(
                    self.url, key, block, f"served {encoding}-encoded; serve archives as they are"
                )
            if resp.content_length is not None and resp.content_length > limit:
                raise _TooLarge
            body = bytearray()
            async for piece in resp.content.iter_chunked(1 << 16):
                body += piece
                if len(body) > limit:
                    raise _TooLarge
            return bytes(body)

    async def head(self) -> ArchiveHead:
        try:
            raw = await self.get(HEAD_KEY, MAX_HEAD_BYTES, None)
        except _TooLarge:
            raise ArchiveSourceFailed(
                self.url, HEAD_KEY, None, f"larger than {MAX_HEAD_BYTES} bytes"
            ) from None
        if raw is None:
            raise ArchiveSourceFailed(
                self.url, HEAD_KEY, None, "not found (HTTP 404): no mcnode archive served here"
            )
        return parse_head(self.url.url, raw)

    async def _read(self, chunk: Chunk) -> list[BlockData] | None:
        """The chunk's blocks, checked to be its own; None when the server has no such
        object, or it is a bundle too large to hold (its parts are read instead)."""
        limit = self.policy.max_object_bytes
        try:
            raw = await self.get(chunk.key, limit, chunk.first)
        except _TooLarge:
            if chunk.count > 1:
                return None
            raise ArchiveSourceFailed(
                self.url, chunk.key, chunk.first, f"larger than {limit} bytes"
            ) from None
        return None if raw is None else decode_chunk(self.url.url, chunk, raw)

    async def chunk(self, chunk: Chunk) -> list[BlockData] | None:
        """As `_read`, but a missing block file fails the source: it has no parts."""
        blocks = await self._read(chunk)
        if blocks is None and chunk.count == 1:
            raise ArchiveSourceFailed(self.url, chunk.key, chunk.first, "not found (HTTP 404)")
        return blocks

    async def block(self, index: int) -> BlockData | None:
        blocks = await self._read(Chunk(index, 1))
        return None if blocks is None else blocks[0]

    # -- many, in order --------------------------------------------------------------------
    def _fill(self, queue: deque[_Fetch], plan: Iterator[Chunk]) -> None:
        """Start fetches, in order, until `READ_AHEAD * parallel` are started and not yet
        consumed (the connector lets `parallel` of them talk at once)."""
        ahead = READ_AHEAD * self.policy.parallel
        started = sum(f.task is not None for f in queue)
        for f in queue:
            if started >= ahead:
                return
            if f.task is None:
                f.task = asyncio.ensure_future(self.chunk(f.chunk))
                started += 1
        while started < ahead:
            chunk = next(plan, None)
            if chunk is None:
                return
            queue.append(_Fetch(chunk, asyncio.ensure_future(self.chunk(chunk))))
            started += 1

    async def blocks(self, start: int, end: int) -> AsyncIterator[list[BlockData]]:
        """Blocks start..end-1, in order, one object's worth at a time. A bundle the
        server lacks is replaced in place by its parts."""
        plan = chunk_plan(start, end)
        queue: deque[_Fetch] = deque()
        try:
            while True:
                self._fill(queue, plan)
                if not queue:
                    return
                head = queue[0]  # stays queued until done: cancelled with the rest
                if head.task is None:  # parts of a missing bundle, not started yet
                    head.task = asyncio.ensure_future(self.chunk(head.chunk))
                blocks = await head.task
                queue.popleft()
                if blocks is None:
                    queue.extendleft(_Fetch(p) for p in reversed(head.chunk.parts()))
                else:
                    yield blocks
        finally:
            tasks = [f.task for f in queue if f.task is not None]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def import_into(
        self,
        db: ArchiveTarget,
        origin_id: bytes | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """As `ledger.archive.import_archive`, over HTTP: append the blocks `db` lacks,
        every one through the ledger's checks; return how many."""
        head = await self.head()
        index, end = db.num_blocks(), head.num_blocks
        if index == 0 and origin_id is not None and end > 0:
            check_origin(self.url.url, await self.block(0), origin_id)
        common = min(index, end) - 1
        if common >= 0:
            check_same_ledger(self.url.url, db.get_block(common), await self.block(common))
        start = index
        pending: list[BlockData] = []  # read, in order, not yet appended

        async def append(at_least: int) -> None:
            nonlocal index
            while pending and len(pending) >= at_least:
                piece = pending[:APPEND_BATCH]
                del pending[:APPEND_BATCH]
                append_checked(db, piece)
                index += len(piece)
                if progress is not None:
                    progress(index)
                await asyncio.sleep(0)  # the fetches and the node's other tasks run

        async with contextlib.aclosing(self.blocks(index, end)) as chunks:
            try:
                async for blocks in chunks:
                    pending += blocks
                    await append(APPEND_BATCH)
            except ArchiveError:
                await append(1)  # keep every good block read before the failure
                raise
        await append(1)
        return index - start


def http_session(policy: FetchPolicy) -> aiohttp.ClientSession:
    """A client for archives: bounded connections and time, bodies as sent (never
    decompressed), no proxy or credentials from the environment."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=policy.parallel),
        timeout=aiohttp.ClientTimeout(
            total=policy.total_timeout,
            sock_connect=policy.connect_timeout,
            sock_read=policy.read_timeout,
        ),
        auto_decompress=False,
        headers={"Accept-Encoding": "identity", "User-Agent": f"mcnode/{mcnode.__version__}"},
        trust_env=False,
    )


async def import_source(
    source: ArchiveSource,
    db: ArchiveTarget,
    policy: FetchPolicy = FetchPolicy(),
    origin_id: bytes | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append what `source` holds beyond `db`'s blocks; return how many. Raises
    ArchiveError (the source is unusable: we kept every good block read before) or the
    ledger's InvalidBlock (the source served a block that broke a rule)."""
    if isinstance(source, ArchiveUrl):
        async with http_session(policy) as session:
            return await HttpArchive(source, session, policy).import_into(db, origin_id, progress)
    if not source.is_dir():
        raise ArchiveError(f"{source}: no such archive directory")
    src = LocalDirectory(source)
    if db.num_blocks() == 0 and origin_id is not None:
        first = read_block(src, 0)
        if first is not None:
            check_origin(str(source), first, origin_id)
    return import_archive(src, db, progress)
