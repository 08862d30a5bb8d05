"""Admin HTTP (aiohttp), on 127.0.0.1 unless configured otherwise.

GET /status (stable JSON: node_id, block_height, last_block_id, slot_index, peers, ...),
GET /metrics (Prometheus text), GET /scp/<slot> (the slot's snapshot and trace),
POST /loglevel (body: a level name), GET / (a status page for a browser).

It is given the few things it serves (a status function, SCP's slot view, the metrics,
the log), not the node."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from mcnode.node.logs import NodeLog
from mcnode.node.metrics import NodeMetrics

_SLOT = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() would take "٣", "1_000", " 5"

PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>mcnode {name}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em;color:#222}}
table{{border-collapse:collapse}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd;
text-align:left}}code{{font-size:12px}}.ok{{color:#080}}.bad{{color:#b00}}
.warn{{background:#fd3;color:#000;font-weight:bold;padding:6px 10px;display:inline-block}}
</style></head>
<body><h1>mcnode <code>{name}</code></h1><div id="s">loading…</div>
<script>
async function tick(){{
 const s = await (await fetch('/status')).json();
 const peers = s.peers.map(p => `<tr><td>${{p.name}}</td><td class="${{p.connected?'ok':'bad'}}">
   ${{p.connected?'up':'down'}}</td><td>${{p.slot}}</td><td>${{p.last_heard_ago_s ?? '-'}}</td>
   <td>${{p.queued}}</td><td class="${{p.attested?'ok':'bad'}}">${{p.attested?'attested '
   + p.mrenclave.slice(0,16)+'…':(p.enclave_refused ?? 'no session')}}</td></tr>`).join('');
 const e = s.enclave;
 const notice = e.notice ? `<p class="warn">${{e.notice}}</p>` : '';
 document.getElementById('s').innerHTML = notice + `<table>
  <tr><th>enclave</th><td>${{e.mode}} · MRENCLAVE <code>${{e.mrenclave}}</code></td></tr>
  <tr><th>height</th><td>${{s.block_height}}</td></tr>
  <tr><th>last block</th><td><code>${{s.last_block_id}}</code></td></tr>
  <tr><th>slot / phase</th><td>${{s.slot_index}} / ${{s.phase}}</td></tr>
  <tr><th>sync</th><td>${{s.sync_state}}</td></tr>
  <tr><th>pending txs</th><td>${{s.pending_txs}}</td></tr>
  <tr><th>v-blocking size</th><td>${{s.v_blocking_size}} of ${{s.peers.length}} peers</td></tr>
  <tr><th>quorum intersection</th><td>${{s.quorum_intersection}}</td></tr></table>
  <h2>peers</h2><table><tr><th>peer</th><th>link</th><th>slot</th><th>heard (s ago)</th>
  <th>queued</th><th>enclave</th></tr>${{peers}}</table>`;
}}
tick(); setInterval(tick, 1000);
</script></body></html>"""


def make_app(
    name: str,
    status: Callable[[], dict[str, Any]],
    slot_state: Callable[[int], dict[str, Any] | None],
    metrics: NodeMetrics,
    log: NodeLog,
) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)

    async def get_status(_: web.Request) -> web.Response:
        return web.json_response(status(), dumps=lambda o: json.dumps(o, default=str))

    async def get_metrics(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def scp_slot(req: web.Request) -> web.Response:
        text = req.match_info["slot"]
        if not _SLOT.fullmatch(text):
            raise web.HTTPBadRequest(text="slot must be a decimal number\n")
        snap = slot_state(int(text))
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

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE.format(name=name), content_type="text/html")

    app.router.add_get("/status", get_status)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/scp/{slot}", scp_slot)
    app.router.add_post("/loglevel", loglevel)
    app.router.add_get("/", page)
    return app
