"""What every widget shares: PNG charts in ``widgets.Image``, HTML tables, error capture.

Charts are shown as PNG bytes in an ``Image`` widget rather than drawn into an ``Output``
widget: the bytes are kernel-side state, so a headless test can assert on them, and nbval does
not see stray figures. Tables are HTML strings in an ``HTML`` widget, for the same reason.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

import ipywidgets as widgets

from ..charts import to_png


def image_widget(css_class: str) -> widgets.Image:
    """An empty PNG view with a stable CSS class (a hook for browser tests)."""
    view = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
    view.add_class(css_class)
    return view


def html_view(root_class: str, name: str) -> widgets.HTML:
    """An empty HTML view with the classes the browser test looks for: ``eda-view`` and
    ``<root_class>-<name>``."""
    view = widgets.HTML()
    view.add_class("eda-view")
    view.add_class(f"{root_class}-{name}")
    return view


def show_figure(view: widgets.Image, fig) -> None:
    """Render ``fig`` into ``view`` and close it."""
    view.value = to_png(fig)


def html_table(rows: Sequence[Mapping], columns: Iterable[str] | None = None,
               caption: str = "", highlight: Mapping[int, str] | None = None,
               empty: str = "(empty)", width: int = 40) -> str:
    """A small, escaped HTML table of ``rows`` (dicts), optionally with coloured rows.

    A cell longer than ``width`` characters is cut with an ellipsis."""
    rows = list(rows)
    cols = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    parts = ['<table class="eda-table" style="border-collapse:collapse;font-size:12px">']
    if caption:
        parts.append(f'<caption style="text-align:left;font-weight:bold">{html.escape(caption)}</caption>')
    parts.append("<tr>" + "".join(
        f'<th style="border-bottom:1px solid #999;padding:2px 6px;text-align:left">{html.escape(str(c))}</th>'
        for c in cols) + "</tr>")
    if not rows:
        parts.append(f'<tr><td colspan="{max(1, len(cols))}" style="color:#888;padding:2px 6px">'
                     f"{html.escape(empty)}</td></tr>")
    for i, row in enumerate(rows):
        color = (highlight or {}).get(i)
        style = f' style="background:{color}"' if color else ""
        parts.append(f"<tr{style}>" + "".join(
            f'<td style="padding:2px 6px">{html.escape(_short(row.get(c), width))}</td>' for c in cols)
            + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def _short(value, width: int = 40) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def styled_button(description: str, css_class: str, tooltip: str = "",
                  style: str = "") -> widgets.Button:
    """A button with a stable CSS class."""
    button = widgets.Button(description=description, tooltip=tooltip or description,
                            button_style=style)
    button.add_class(css_class)
    return button
