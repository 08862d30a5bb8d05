"""Admin HTTP (aiohttp), on 127.0.0.1 unless configured otherwise.

GET /status (stable JSON: node_id, block_height, last_block_id, slot_index, peers, ...),
GET /metrics (Prometheus text), and in the manner of stellar-core's admin commands
GET /info (state, ledger age, peers, enclave, quorum in one line), GET /quorum
[?transitive=true] (each quorum-set member: agree / missing / delayed / disagree, and
fail_at), GET /peers, GET /scp[?limit=N] (the last slots decided, with phase timings),
GET /scp/<slot> (a kept slot's SCP snapshot and trace); for the status page GET /history
(blocks and txs per 10 s over the last hour) and GET /warnings (the last warnings
logged); POST /loglevel (body: a level name); GET / (the status page, one static file:
`static/status.html`, nothing loaded from elsewhere).

It is given the few things it serves (`Views`: functions returning JSON-able values, each
cheap: no I/O beyond a ledger read), the metrics and the log, not the node. Bad input is
a 400 with one sentence saying what is wrong; an unknown slot a 404.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from mcnode.node.history import SLOT_LOG_SIZE
from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics

_SLOT = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() would take "٣", "1_000", " 5"
_LIMIT = re.compile(r"[0-9]{1,4}")
SCP_LIMIT_DEFAULT = 10

Json = dict[str, Any]


@dataclass(frozen=True)
class Views:
    """What the admin server serves, as functions of the node."""

    status: Callable[[], Json]
    info: Callable[[], Json]
    quorum: Callable[[bool], Json]  # transitive?
    peers: Callable[[], Json]
    scp_recent: Callable[[int], Json]  # limit
    scp_slot: Callable[[int], Json | None]
    history: Callable[[], Json]
    warnings: Callable[[], Json]


NAME_MARK = "__NODE_NAME__"  # where the page names its node before its script runs


def status_page(name: str = NAME_MARK) -> bytes:
    """The status page (HTML, its script and styles inline), from the package's data, with
    the node's name in its title and heading."""
    page = resources.files("mcnode.node").joinpath("static/status.html").read_text("utf-8")
    return page.replace(NAME_MARK, html.escape(name)).encode("utf-8")


class BadQuery(web.HTTPBadRequest):
    def __init__(self, sentence: str) -> None:
        super().__init__(text=sentence.rstrip("\n") + "\n")


def query(req: web.Request, allowed: Mapping[str, str]) -> dict[str, str]:
    """The request's query parameters, each given at most once and each one of `allowed`
    (name -> what it takes, for the error sentence); else a 400 saying which is wrong."""
    out: dict[str, str] = {}
    for key, value in req.query.items():
        if key not in allowed:
            takes = ", ".join(f"{k} ({v})" for k, v in allowed.items()) or "no parameters"
            raise BadQuery(f"unknown query parameter {key!r}: {req.path} takes {takes}")
        if key in out:
            raise BadQuery(f"query parameter {key!r} is given more than once")
        out[key] = value
    return out


def _json(value: Any) -> web.Response:
    return web.json_response(value, dumps=lambda o: json.dumps(o, default=str))


def make_app(name: str, views: Views, metrics: NodeMetrics, log: NodeLog) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    page = status_page(name)  # read once: the page does not change while the node runs

    def plain(get: Callable[[], Json], check_query: bool = True) -> Any:
        """A view that takes no parameters (/status, older than this rule, takes any)."""

        async def handler(req: web.Request) -> web.Response:
            if check_query:
                query(req, {})
            return _json(get())

        return handler

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_quorum(req: web.Request) -> web.Response:
        q = query(req, {"transitive": "true or false"})
        text = q.get("transitive", "false")
        if text not in ("true", "false"):
            raise BadQuery(f"transitive must be true or false, not {text!r}")
        return _json(views.quorum(text == "true"))

    async def get_scp(req: web.Request) -> web.Response:
        q = query(req, {"limit": f"1 to {SLOT_LOG_SIZE}"})
        text = q.get("limit", str(SCP_LIMIT_DEFAULT))
        if not _LIMIT.fullmatch(text) or not 1 <= int(text) <= SLOT_LOG_SIZE:
            raise BadQuery(f"limit must be a whole number from 1 to {SLOT_LOG_SIZE}, not {text!r}")
        return _json(views.scp_recent(int(text)))

    async def scp_slot(req: web.Request) -> web.Response:
        text = req.match_info["slot"]
        if not _SLOT.fullmatch(text):
            raise web.HTTPBadRequest(text="slot must be a decimal number\n")
        snap = views.scp_slot(int(text))
        if snap is None:
            raise web.HTTPNotFound(text=f"slot {text} is not kept in memory\n")
        return web.json_response(snap)

    async def loglevel(req: web.Request) -> web.Response:
        body = await req.read()
        level = body.decode("ascii", "replace").strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise web.HTTPBadRequest(text="level must be debug, info, warning or error\n")
        logging.getLogger("mcnode").setLevel(level)
        log.info("log level changed", level=level.lower())
        return web.Response(text=f"{level.lower()}\n")

    async def get_page(req: web.Request) -> web.Response:
        query(req, {})
        return web.Response(
            body=page,
            content_type="text/html",
            charset="utf-8",
            # The page loads nothing from elsewhere; say so to the browser too.
            headers={
                "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
                "style-src 'unsafe-inline'; img-src 'self' data:",
                "Cache-Control": "no-cache",
            },
        )

    app.router.add_get("/status", plain(views.status, check_query=False))
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/info", plain(views.info))
    app.router.add_get("/quorum", get_quorum)
    app.router.add_get("/peers", plain(views.peers))
    app.router.add_get("/scp", get_scp)
    app.router.add_get("/scp/{slot}", scp_slot)
    app.router.add_get("/history", plain(views.history))
    app.router.add_get("/warnings", plain(views.warnings))
    app.router.add_post("/loglevel", loglevel)
    app.router.add_get("/", get_page)
    return app
