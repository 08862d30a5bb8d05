"""Structured logs: one line per event, key=value, with slot and block where they apply.

Secrets never reach here: callers pass ids, hashes (hex, shortened) and counts only."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, MutableMapping
from typing import Any

from mcnode.node.history import LoggedWarning, WarningLog

LOG = logging.getLogger("mcnode")


def _fmt(v: Any) -> str:
    if isinstance(v, bytes):
        v = v.hex()[:16]
    s = str(v)
    if not s or any(c.isspace() or c in '"=' for c in s):
        s = '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return s


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"ts={ts}.{int(record.msecs):03d}Z", f"level={record.levelname.lower()}"]
        node = getattr(record, "node", None)
        if node:
            parts.append(f"node={_fmt(node)}")
        parts.append(f"event={_fmt(record.getMessage())}")
        for k, v in getattr(record, "kv", {}).items():
            parts.append(f"{k}={_fmt(v)}")
        if record.exc_info:
            parts.append(f"error={_fmt(repr(record.exc_info[1]))}")
        if record.name != LOG.name:
            parts.append(f"logger={_fmt(record.name)}")
        return " ".join(parts)


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    LOG.handlers[:] = [handler]
    LOG.setLevel(level.upper())
    LOG.propagate = False
    # Libraries' own warnings (aiohttp, grpc) come out in the same one-line format.
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


def _plain(v: Any) -> str:
    """A field as the log line shows it, unquoted (bytes: a short hex prefix)."""
    return v.hex()[:16] if isinstance(v, bytes) else str(v)


class NodeLog:
    """`log.info("block appended", block=5, txs=3)` -> one key=value line. Warnings and
    errors are also kept, the last few (`warnings`), for the status page; whatever the
    log level, as an operator who turned logging down still wants to see them."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.warnings = WarningLog()

    # Positional-only parameters: any keyword (even "level" or "event") is a field.
    def _log(self, lvl: int, event: str, exc: bool, /, **kv: Any) -> None:
        if lvl >= logging.WARNING:
            fields = {k: _plain(v) for k, v in kv.items()}
            self.warnings.add(
                LoggedWarning(time.time(), logging.getLevelName(lvl).lower(), event, fields)
            )
        if LOG.isEnabledFor(lvl):
            LOG.log(lvl, event, extra={"node": self.node, "kv": kv}, exc_info=exc)

    def debug(self, event: str, /, **kv: Any) -> None:
        self._log(logging.DEBUG, event, False, **kv)

    def info(self, event: str, /, **kv: Any) -> None:
        self._log(logging.INFO, event, False, **kv)

    def warning(self, event: str, /, **kv: Any) -> None:
        self._log(logging.WARNING, event, False, **kv)

    def error(self, event: str, /, exc: bool = False, **kv: Any) -> None:
        self._log(logging.ERROR, event, exc, **kv)


class Throttle:
    """At most one `allow(key)` per `interval` seconds per key: for lines a stranger can
    provoke (refused calls). Remembers at most `max_keys` keys, oldest forgotten first,
    so that many callers cannot make it grow; with `overall`, at most that many lines per
    interval for all keys together (so that many callers cannot make the log grow
    either). `check` also says how many were held back for the key since its last line."""

    def __init__(
        self,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
        overall: int | None = None,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        self.overall = overall
        # key -> (time of its last line, or None before its first; lines held back since)
        self._last: OrderedDict[Hashable, tuple[float | None, int]] = OrderedDict()
        self._window = (float("-inf"), 0)  # (start of the overall window, lines in it)

    def allow(self, key: Hashable) -> bool:
        return self.check(key) is not None

    def check(self, key: Hashable) -> int | None:
        """None if no line for `key` now (counted as held back); otherwise the number held
        back since its last line."""
        now = self.clock()
        last, held = self._last.get(key, (None, 0))
        ok = last is None or now - last >= self.interval
        if ok and self.overall is not None:
            start, lines = self._window
            if now - start >= self.interval:
                start, lines = now, 0
            ok = lines < self.overall
            self._window = (start, lines + ok)
        self._last[key] = (now, 0) if ok else (last, held + 1)
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return held if ok else None


def quiet_grpc_core(environ: MutableMapping[str, str] = os.environ) -> None:
    """gRPC core writes its own lines to stderr, one per failed TLS handshake at INFO (for
    example `ssl_transport_security.cc:2563] Handshake failed ...`), which anyone can
    provoke: ERROR only, unless the operator set GRPC_VERBOSITY. Core reads the variable
    when grpc is first imported, so this must run before that."""
    environ.setdefault("GRPC_VERBOSITY", "ERROR")
