"""A small SVG diagram renderer: boxes, arrows, labels, and a highlighted active part.

Any widget can draw its architecture with it: describe the boxes (:class:`Node`, with a centre
position and a colour) and the arrows (:class:`Edge`), say which ones are active, and put the
returned HTML string into a ``widgets.HTML``. It is a pure function of its input, so a test can
assert on the text (``'data-id="relay"'``, ``'data-active="true"'``) without a browser.

>>> from eda_lab.widgets.diagram import Edge, Node, render_diagram
>>> svg = render_diagram([Node("a", "Service", 70, 40), Node("b", "Broker", 250, 40)],
...                      [Edge("a", "b", "publish")], active={"a->b"})
>>> 'data-id="a->b" data-active="true"' in svg
True
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

ACTIVE = "#D62728"      # the part that is acting now
CRASHED = "#F4A3A3"     # fill of a part that just crashed or refused
MUTED = "#BBBBBB"       # a part this variant does not use
INK = "#333333"


@dataclass(frozen=True)
class Node:
    """A box centred at (x, y), with a label, an optional second line and a fill colour."""

    id: str
    label: str
    x: float
    y: float
    width: float = 120.0
    height: float = 44.0
    color: str = "#F5F5F5"
    detail: str = ""
    muted: bool = False

    def border_point(self, toward_x: float, toward_y: float) -> tuple[float, float]:
        """Where the line from the centre toward (toward_x, toward_y) leaves the box."""
        dx, dy = toward_x - self.x, toward_y - self.y
        if dx == 0 and dy == 0:
            return self.x, self.y
        scale = min(self.width / 2 / abs(dx) if dx else float("inf"),
                    self.height / 2 / abs(dy) if dy else float("inf"))
        return self.x + dx * scale, self.y + dy * scale


@dataclass(frozen=True)
class Edge:
    """An arrow from ``source`` to ``target`` (node ids); ``bend`` curves it sideways (px)."""

    source: str
    target: str
    label: str = ""
    dashed: bool = False
    muted: bool = False
    bend: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.source}->{self.target}"


def _attr(value: str) -> str:
    """An attribute value: quotes, ampersands and tags escaped; '->' kept readable."""
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _text(x: float, y: float, text: str, size: int = 12, weight: str = "normal",
          color: str = INK) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-weight="{weight}" '
            f'fill="{color}" text-anchor="middle" font-family="sans-serif">'
            f"{html.escape(text)}</text>")


def _node_svg(node: Node, active: bool, crashed: bool) -> str:
    stroke = ACTIVE if active else (MUTED if node.muted else INK)
    fill = CRASHED if crashed else ("#FAFAFA" if node.muted else node.color)
    dash = ' stroke-dasharray="4 3"' if node.muted else ""
    left, top = node.x - node.width / 2, node.y - node.height / 2
    parts = [
        f'<g class="eda-diagram-node" data-id="{_attr(node.id)}" '
        f'data-active="{str(active).lower()}" data-crashed="{str(crashed).lower()}">',
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{node.width:.1f}" height="{node.height:.1f}" '
        f'rx="6" fill="{fill}" stroke="{stroke}" stroke-width="{3 if active else 1.2}"{dash}/>',
    ]
    color = MUTED if node.muted else INK
    if node.detail:
        parts.append(_text(node.x, node.y - 3, node.label, 12, "bold", color))
        parts.append(_text(node.x, node.y + 13, node.detail, 10, "normal", color))
    else:
        parts.append(_text(node.x, node.y + 4, node.label, 12, "bold", color))
    parts.append("</g>")
    return "".join(parts)


def _edge_svg(edge: Edge, nodes: dict[str, Node], active: bool) -> str:
    source, target = nodes[edge.source], nodes[edge.target]
    # Control point: the midpoint, pushed sideways by ``bend`` (perpendicular to the line).
    mx, my = (source.x + target.x) / 2, (source.y + target.y) / 2
    dx, dy = target.x - source.x, target.y - source.y
    length = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    cx, cy = mx - dy / length * edge.bend, my + dx / length * edge.bend
    x1, y1 = source.border_point(cx, cy)
    x2, y2 = target.border_point(cx, cy)
    color = ACTIVE if active else (MUTED if edge.muted else INK)
    marker = "eda-arrow-active" if active else ("eda-arrow-muted" if edge.muted else "eda-arrow")
    dash = ' stroke-dasharray="5 4"' if edge.dashed or edge.muted else ""
    path = (f"M {x1:.1f} {y1:.1f} Q {cx:.1f} {cy:.1f} {x2:.1f} {y2:.1f}" if edge.bend
            else f"M {x1:.1f} {y1:.1f} L {x2:.1f} {y2:.1f}")
    parts = [f'<g class="eda-diagram-edge" data-id="{_attr(edge.id)}" '
             f'data-active="{str(active).lower()}">',
             f'<path d="{path}" fill="none" stroke="{color}" stroke-width="{3 if active else 1.3}"'
             f'{dash} marker-end="url(#{marker})"/>']
    if edge.label:
        lx, ly = (x1 + 2 * cx + x2) / 4, (y1 + 2 * cy + y2) / 4 - 5
        parts.append(_text(lx, ly, edge.label, 10, "bold" if active else "normal", color))
    parts.append("</g>")
    return "".join(parts)


def render_diagram(nodes: Sequence[Node], edges: Iterable[Edge] = (),
                   active: Iterable[str] = (), crashed: Iterable[str] = (), *,
                   width: float | None = None, height: float | None = None,
                   title: str = "") -> str:
    """The diagram as an HTML string holding one ``<svg>``.

    ``active`` holds node ids and edge ids (``"source->target"``) to highlight; ``crashed``
    holds node ids to fill in red. The size defaults to the nodes' extent plus a margin.
    """
    by_id: dict[str, Node] = {}
    for node in nodes:
        if not isinstance(node, Node):
            raise TypeError(f"nodes must be Node objects, got {node!r}")
        if node.id in by_id:
            raise ValueError(f"two nodes have the id {node.id!r}")
        by_id[node.id] = node
    edges = list(edges)
    for edge in edges:
        if not isinstance(edge, Edge):
            raise TypeError(f"edges must be Edge objects, got {edge!r}")
        for end in (edge.source, edge.target):
            if end not in by_id:
                raise ValueError(f"edge {edge.id!r} names the unknown node {end!r}; "
                                 f"nodes: {sorted(by_id)}")
    active, crashed = set(active), set(crashed)
    width = width or max((n.x + n.width / 2 for n in nodes), default=0) + 20
    height = height or max((n.y + n.height / 2 for n in nodes), default=0) + 20
    top = 22 if title else 0
    markers = "".join(
        f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        f'fill="{color}"/></marker>'
        for name, color in (("eda-arrow", INK), ("eda-arrow-active", ACTIVE),
                            ("eda-arrow-muted", MUTED)))
    parts = [f'<svg class="eda-diagram" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width:.0f}" height="{height + top:.0f}" '
             f'viewBox="0 {-top} {width:.0f} {height + top:.0f}"><defs>{markers}</defs>']
    if title:
        parts.append(_text(width / 2, -6, title, 13, "bold"))
    parts += [_edge_svg(e, by_id, e.id in active) for e in edges]
    parts += [_node_svg(n, n.id in active, n.id in crashed) for n in nodes]
    parts.append("</svg>")
    return "".join(parts)
