"""The trade-offs explorer: how long the services disagree, and what each saga style costs.

Controls: the relay's poll interval, how long one consumer is down, and the saga style
(orchestration or choreography). Views: the agreement-lag charts (PNG), its numbers (HTML),
who knows whom (an SVG coupling graph), and a payment refusal told both ways (HTML).

The model runs the real pieces (the outbox pipeline with three consumers; the saga runners)
and keeps each result, so moving back to a setting answers at once. Every view is drawn by a
pure function (``numbers_html``, ``coupling_html``, ``styles_html``, ``lag_figure``) that a
test can call without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..charts import style as chart_style
from ..saga.choreography import (
    STYLES,
    Dependency,
)
from ..shop.charts import agreement_histogram, agreement_timeline
from ..shop.lag import Agreement
from ..shop.tradeoffs import OUTAGES_MS, POLL_INTERVALS_MS, STALE_AFTER_MS, TradeoffsModel
from .common import html_table, html_view, image_widget, show_figure
from .diagram import Edge, Node, render_diagram

ROOT_CLASS = "eda-tradeoffs-explorer"
# Where each part of the shop sits in the coupling graph: the same places in both styles.
PLACES = {"orchestrator": (250, 125), "order": (65, 125), "inventory": (250, 35),
          "payment": (435, 125), "shipping": (250, 215)}


# -- pure drawing functions ---------------------------------------------------------------

def lag_figure(agreement: Agreement):
    """The agreement lag as a distribution and per order over time, side by side."""
    with chart_style():
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.1))
    agreement_histogram(agreement, ax=left)
    agreement_timeline(agreement, ax=right)
    fig.tight_layout()
    return fig


def numbers_html(agreement: Agreement, baseline: Agreement | None = None) -> str:
    """The lag's summary (beside a no-outage baseline), and how often a reader sees stale data."""
    rows = [{"run": "this setting", **agreement.summary()}]
    if baseline is not None and baseline is not agreement:
        rows.append({"run": "same poll interval, no outage", **baseline.summary()})
    summary = html_table(rows, ["run", "orders", "agreed", "p50_ms", "p95_ms", "max_ms",
                                "mean_ms"], caption="Agreement lag (ms)")
    shares = agreement.stale_share(STALE_AFTER_MS)
    stale = html_table(
        [{"a reader looks after (ms)": "share of orders not known everywhere yet",
          **{str(r["after_ms"]): r["stale_share"] for r in shares}}],
        caption="Reading your own write from the slowest copy", width=60)
    return (f'<div style="display:flex;gap:18px;flex-wrap:wrap;align-items:flex-start">'
            f"{summary}{stale}</div>")


LABEL_CHARS = 26   # an arrow's label names its messages up to this length, else counts them


def coupling_html(dependencies: Sequence[Dependency], title: str = "") -> str:
    """Who knows whom, as an SVG graph (an arrow from a part to each part it must know), and
    the messages behind each arrow as a table."""
    parts = sorted({d.knower for d in dependencies} | {d.known for d in dependencies},
                   key=list(PLACES).index)
    nodes = [Node(name, name, *PLACES[name], width=100, height=34,
                  color="#FFE08A" if name == "orchestrator" else "#F5F5F5") for name in parts]
    pairs = {(d.knower, d.known) for d in dependencies}
    edges = []
    for d in dependencies:
        label = " / ".join(d.messages)
        if len(label) > LABEL_CHARS:
            label = f"{len(d.messages)} messages"
        edges.append(Edge(d.knower, d.known, label,
                          bend=28 if (d.known, d.knower) in pairs else 0))
    table = html_table([{"who": d.knower, "must know": d.known, "messages": ", ".join(d.messages)}
                        for d in dependencies], caption=f"{len(dependencies)} arrows", width=60)
    svg = render_diagram(nodes, edges, width=500, height=240, title=title)
    return (f'<div style="display:flex;gap:12px;flex-wrap:wrap;align-items:center">{svg}'
            f"{table}</div>")


def styles_html(rows: Sequence[Mapping], story_rows: Sequence[Mapping], style: str) -> str:
    """Messages per order for both styles (the chosen one highlighted), and the story of a
    payment refusal in the chosen style."""
    chosen = {i: "#FFF3C4" for i, r in enumerate(rows) if r["style"] == style}
    traffic_table = html_table(rows, ["style", "scenario", "status", "published", "delivered",
                                      "local transactions", "done at (ms)"],
                               caption="One order's saga, both styles", highlight=chosen)
    told = html_table(story_rows, ["t (ms)", "who", "does", "what"],
                      caption=f"Payment refused, {style}: who decides what", width=80)
    return f"<div>{traffic_table}<div style='height:8px'></div>{told}</div>"


class TradeoffsExplorer:
    """The widget: ``TradeoffsExplorer()`` in a cell shows it; ``.model`` holds the runs."""

    def __init__(self, model: TradeoffsModel | None = None, **model_options):
        self.model = model if model is not None else TradeoffsModel(**model_options)
        self.poll_slider = widgets.SelectionSlider(
            options=list(POLL_INTERVALS_MS), value=self.model.poll_interval_ms,
            description="relay poll (ms)", style={"description_width": "110px"},
            layout=widgets.Layout(width="360px"))
        self.outage_slider = widgets.SelectionSlider(
            options=list(OUTAGES_MS), value=self.model.outage_ms,
            description="outage (ms)", style={"description_width": "110px"},
            layout=widgets.Layout(width="360px"))
        self.style_toggle = widgets.ToggleButtons(
            options=list(STYLES), value=self.model.style, style={"button_width": "130px"},
            tooltips=["one orchestrator sends every command and finds the compensations",
                      "each service reacts to the others' events; nobody drives"])
        for control, name, handler in (
                (self.poll_slider, "poll-interval", self.model.set_poll_interval),
                (self.outage_slider, "outage", self.model.set_outage),
                (self.style_toggle, "style", self.model.set_style)):
            control.add_class("eda-control")
            control.add_class(f"{ROOT_CLASS}-{name}")
            control.observe(self._changed(handler, name), "value")
        self.status_view = html_view(ROOT_CLASS, "status")
        self.lag_view = image_widget("eda-view")
        self.lag_view.add_class(f"{ROOT_CLASS}-lag")
        self.numbers_view = html_view(ROOT_CLASS, "numbers")
        self.coupling_view = html_view(ROOT_CLASS, "coupling")
        self.styles_view = html_view(ROOT_CLASS, "styles")
        self.root = widgets.VBox([
            widgets.HTML("<b>Trade-offs explorer</b>: move the relay's poll interval and a "
                         "consumer outage to see how long the services disagree; switch the "
                         "saga style to see who must know whom and who reacts to a refusal."),
            widgets.HBox([self.poll_slider, self.outage_slider]),
            self.style_toggle,
            self.status_view, self.lag_view, self.numbers_view,
            widgets.HBox([self.coupling_view, self.styles_view],
                         layout=widgets.Layout(flex_flow="row wrap")),
        ])
        self.root.add_class(ROOT_CLASS)
        self.error: str | None = None
        self.redraw()

    def _changed(self, handler, control: str):
        def changed(change):
            try:
                handler(change["new"])
                self.error = None
            except Exception as error:  # noqa: BLE001 - a learner's click must show what went wrong
                self.error = f"{type(error).__name__}: {error}"
            self.redraw(lag=control != "style", styles=control == "style")
        return changed

    def redraw(self, lag: bool = True, styles: bool = True) -> None:
        """Redraw the views from the model: the lag views, the saga-style views, or both."""
        model = self.model
        status = f"<div><b>{html.escape(model.status())}</b></div>"
        if self.error:
            status = (f'<div style="color:#C44E52"><b>error:</b> {html.escape(self.error)}</div>'
                      + status)
        self.status_view.value = status
        if lag:
            agreement = model.agreement()
            show_figure(self.lag_view, lag_figure(agreement))
            self.numbers_view.value = numbers_html(agreement, model.agreement(outage_ms=0))
        if styles:
            self.coupling_view.value = coupling_html(model.dependencies(),
                                                     title=f"Who knows whom: {model.style}")
            self.styles_view.value = styles_html(model.traffic_rows(), model.story(),
                                                 model.style)

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
