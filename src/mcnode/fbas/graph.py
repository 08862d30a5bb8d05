"""The trust graph as a picture: an SVG string or PNG bytes (the caller writes the file).

Layout, deterministic (same network, same bytes): organizations are clusters, each a small
ring of its nodes; clusters holding top-tier nodes sit on the inner ring, other
organizations on the next, nodes without an organization on the outer one (without any
organizations mapping every node is its own cluster). An edge v -> u is drawn when u is in
v's quorum set at any depth. Top-tier nodes are gold with a dark outline; when quorums do
not intersect, the two disjoint quorums of the certificate are red and blue. Nodes that
have no quorum set and that nobody names are left out (crawls list many such watchers);
the caption says how many. The PNG is drawn by a tiny rasterizer (shapes, no text), so
nothing beyond the standard library is needed.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from html import escape

from mcnode.fbas.core import Net, bits
from mcnode.fbas.intersection import check_intersection
from mcnode.fbas.model import Fbas, NodeId
from mcnode.fbas.toptier import top_tier

NODE_R = 6.0
Q1_COLOUR = "#d62728"
Q2_COLOUR = "#1f77b4"
TOP_COLOUR = "#f2b705"
PLAIN_COLOUR = "#c8c8c8"


@dataclass(frozen=True)
class Placed:
    id: NodeId
    x: float
    y: float
    fill: str
    top: bool


@dataclass(frozen=True)
class Cluster:
    label: str | None
    x: float
    y: float
    r: float


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    nodes: tuple[Placed, ...]
    clusters: tuple[Cluster, ...]
    edges: tuple[tuple[int, int], ...]  # indices into nodes
    omitted: int
    caption: str


def _ring(groups: list[list[NodeId]], inner: float) -> tuple[float, list[float]]:
    radii = [
        NODE_R * 2.5 if len(g) == 1 else NODE_R * 2.2 + len(g) * NODE_R * 3 / (2 * math.pi)
        for g in groups
    ]
    need = sum(2 * r + 24 for r in radii) / (2 * math.pi)
    biggest = max(radii, default=0.0)
    return max(inner + biggest, need), radii


def layout(fbas: Fbas) -> Layout:
    net = Net(fbas)
    shown_mask = net.with_qset
    for v in bits(net.with_qset):
        shown_mask |= net.succ[v]
    shown = net.to_ids(shown_mask)
    tier = set(top_tier(fbas).nodes)
    cert = check_intersection(fbas).disjoint_quorums
    q1, q2 = (set(cert[0]), set(cert[1])) if cert else (set(), set())

    groups: dict[str | None, list[NodeId]] = {}
    for v in shown:
        groups.setdefault(fbas.org_of(v), []).append(v)
    rings: list[list[list[NodeId]]] = [[], [], []]
    labels: list[list[str | None]] = [[], [], []]
    for org in sorted(groups, key=lambda o: (o is None, o or "")):
        members = groups[org]
        singles = [[v] for v in members] if org is None else [members]
        for g in singles:
            ring = 0 if any(v in tier for v in g) else (1 if org is not None else 2)
            rings[ring].append(g)
            labels[ring].append(org)

    placed: list[Placed] = []
    clusters: list[Cluster] = []
    radius = 0.0
    spans: list[tuple[float, list[float]]] = []
    for ring in rings:
        if not ring:
            spans.append((radius, []))
            continue
        r, radii = _ring(ring, radius + (60.0 if radius else 0.0))
        spans.append((r, radii))
        radius = r + max(radii)
    margin = 70.0
    size = int(2 * (radius + margin))
    cx = cy = size / 2
    for ring, ring_labels, (r, radii) in zip(rings, labels, spans, strict=True):
        total = sum(2 * g + 24 for g in radii)
        angle = -math.pi / 2
        for g, label, gr in zip(ring, ring_labels, radii, strict=True):
            angle += (gr + 12) / total * 2 * math.pi
            gx, gy = cx + r * math.cos(angle), cy + r * math.sin(angle)
            if len(ring) == 1 and r == 0:
                gx, gy = cx, cy
            clusters.append(Cluster(label if len(g) > 1 or label else None, gx, gy, gr))
            for i, v in enumerate(g):
                a = 2 * math.pi * i / len(g) - math.pi / 2
                nx = gx + (gr - NODE_R * 1.6) * math.cos(a) if len(g) > 1 else gx
                ny = gy + (gr - NODE_R * 1.6) * math.sin(a) if len(g) > 1 else gy
                fill = (
                    Q1_COLOUR
                    if v in q1
                    else Q2_COLOUR
                    if v in q2
                    else (TOP_COLOUR if v in tier else PLAIN_COLOUR)
                )
                placed.append(Placed(v, round(nx, 1), round(ny, 1), fill, v in tier))
            angle += (gr + 12) / total * 2 * math.pi
    at = {p.id: i for i, p in enumerate(placed)}
    edges = []
    for p in placed:
        for u in net.to_ids(net.succ[net.index[p.id]]):
            if u != p.id and u in at:
                edges.append((at[p.id], at[u]))
    omitted = len(fbas.nodes) - len(shown)
    verdict = "quorums intersect" if cert is None else "NO quorum intersection (red/blue)"
    caption = f"{len(shown)} nodes shown, {omitted} left out; top tier {len(tier)}; {verdict}"
    return Layout(size, size, tuple(placed), tuple(clusters), tuple(edges), omitted, caption)


def render_svg(fbas: Fbas) -> str:
    lay = layout(fbas)
    h = lay.height + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{h}" '
        f'viewBox="0 0 {lay.width} {h}" font-family="sans-serif">',
        '<defs><marker id="a" viewBox="0 0 6 6" refX="6" refY="3" markerWidth="5" '
        'markerHeight="5" orient="auto"><path d="M0,0L6,3L0,6z" fill="#999"/></marker></defs>',
        f'<rect width="{lay.width}" height="{h}" fill="white"/>',
    ]
    for c in lay.clusters:
        if c.label is not None:
            out.append(
                f'<circle cx="{c.x:.1f}" cy="{c.y:.1f}" r="{c.r:.1f}" fill="#f4f4f8" '
                'stroke="#bbb"/>'
            )
            out.append(
                f'<text x="{c.x:.1f}" y="{c.y - c.r - 4:.1f}" font-size="10" '
                f'text-anchor="middle">{escape(c.label)}</text>'
            )
    out.append('<g stroke="#999" stroke-opacity="0.35" stroke-width="0.6">')
    for a, b in lay.edges:
        pa, pb = lay.nodes[a], lay.nodes[b]
        dx, dy = pb.x - pa.x, pb.y - pa.y
        d = math.hypot(dx, dy) or 1.0
        ex, ey = pb.x - dx / d * NODE_R, pb.y - dy / d * NODE_R
        out.append(
            f'<line x1="{pa.x:.1f}" y1="{pa.y:.1f}" x2="{ex:.1f}" y2="{ey:.1f}" '
            'marker-end="url(#a)"/>'
        )
    out.append("</g>")
    for p in lay.nodes:
        stroke = ' stroke="#333" stroke-width="2"' if p.top else ' stroke="#777"'
        org = fbas.org_of(p.id)
        tip = escape(f"{fbas.label(p.id)} ({p.id})" + (f", {org}" if org else ""))
        out.append(
            f'<circle cx="{p.x:.1f}" cy="{p.y:.1f}" r="{NODE_R}" fill="{p.fill}"{stroke}>'
            f"<title>{tip}</title></circle>"
        )
        if p.top:
            out.append(
                f'<text x="{p.x:.1f}" y="{p.y + NODE_R + 9:.1f}" font-size="7" '
                f'text-anchor="middle">{escape(fbas.label(p.id)[:24])}</text>'
            )
    out.append(
        f'<text x="10" y="{lay.height + 25}" font-size="13">{escape(lay.caption)}</text></svg>'
    )
    return "\n".join(out) + "\n"


def _hex(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def render_png(fbas: Fbas) -> bytes:
    lay = layout(fbas)
    w, h = lay.width, lay.height
    px = bytearray(b"\xff" * (w * h * 3))

    def put(x: int, y: int, rgb: tuple[int, int, int]) -> None:
        if 0 <= x < w and 0 <= y < h:
            i = (y * w + x) * 3
            px[i : i + 3] = bytes(rgb)

    def disc(cx: float, cy: float, r: float, rgb: tuple[int, int, int]) -> None:
        for y in range(int(cy - r), int(cy + r) + 1):
            half = math.sqrt(max(0.0, r * r - (y - cy) ** 2))
            for x in range(int(cx - half), int(cx + half) + 1):
                put(x, y, rgb)

    for c in lay.clusters:
        if c.label is not None:
            disc(c.x, c.y, c.r, (0xF4, 0xF4, 0xF8))
    for a, b in lay.edges:
        pa, pb = lay.nodes[a], lay.nodes[b]
        steps = int(max(abs(pb.x - pa.x), abs(pb.y - pa.y))) + 1
        for s in range(steps + 1):
            t = s / steps
            x, y = int(pa.x + (pb.x - pa.x) * t), int(pa.y + (pb.y - pa.y) * t)
            if 0 <= x < w and 0 <= y < h:
                i = (y * w + x) * 3
                px[i : i + 3] = bytes(max(170, v - 25) for v in px[i : i + 3])
    for p in lay.nodes:
        disc(p.x, p.y, NODE_R + (1.5 if p.top else 0.8), (0x33, 0x33, 0x33))
        disc(p.x, p.y, NODE_R, _hex(p.fill))
    raw = b"".join(b"\x00" + bytes(px[y * w * 3 : (y + 1) * w * 3]) for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
