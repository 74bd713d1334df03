"""The broker playground widget (notebook 02): buttons for the shop, charts from the trace."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..charts import backlog_chart, delivery_timeline, style
from ..playground import BrokerPlayground
from .common import html_table, image_widget, show_figure, styled_button


def playground_figure(model: BrokerPlayground):
    """Backlog per group over time above the delivery timeline: what the widget shows.

    Before the first order there is nothing to plot: the charts say so instead of drawing an
    empty axis around t = 0."""
    with style():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.2), sharex=True,
                                          gridspec_kw={"height_ratios": [1, 1]})
    backlog_chart(model.backlog_samples(), ax=top)
    delivery_timeline(model.trace.frame(), ax=bottom)
    for start, end in model.offline_spans():
        for ax in (top, bottom):
            ax.axvspan(start / 1000, end / 1000, color="#F4A3A3", alpha=0.25, linewidth=0)
    if model.orders_placed == 0:
        for ax in (top, bottom):
            ax.set_xlim(0, max(1.0, model.clock.now / 1000))
            ax.text(0.5, 0.5, "publish an order to start", transform=ax.transAxes,
                    ha="center", va="center", fontsize=11, color="#888888")
    top.set_xlabel("")
    fig.tight_layout()
    return fig


def groups_html(model: BrokerPlayground) -> str:
    """The groups table: online, handled, backlog."""
    rows = model.groups().to_dict("records")
    for row in rows:
        row["online"] = "online" if row["online"] else "OFFLINE"
    highlight = {i: "#F4A3A3" for i, row in enumerate(rows) if row["online"] == "OFFLINE"}
    armed = "".join(f"; {group} crashes after its next message" for group in
                    sorted(model.crash_armed))
    return html_table(rows, ["group", "online", "handled", "backlog"],
                      caption=f"t = {model.clock.now / 1000:g} s, orders placed: "
                              f"{model.orders_placed}{armed}", highlight=highlight)


def recent_html(model: BrokerPlayground, n: int = 8) -> str:
    """The last ``n`` trace records, newest last."""
    rows = [{"t (ms)": f"{r.time:g}", "kind": r.kind, "actor": r.actor, "key": r.key,
             "partition": r.partition, "offset": r.offset, "detail": r.detail}
            for r in model.trace.tail(n)]
    return html_table(rows, ["t (ms)", "kind", "actor", "key", "partition", "offset", "detail"],
                      caption="Latest trace records")


class BrokerPlaygroundWidget:
    """Publish orders, take shipping offline and back, crash it before a commit, add the
    analytics group, let time pass.

    Each click acts, then lets one simulated second pass; the charts redraw from the trace.
    """

    def __init__(self, model: BrokerPlayground | None = None):
        self.model = model or BrokerPlayground()
        self.publish = styled_button("Publish 5 orders", "eda-broker-playground-publish",
                                     "The order service places 5 orders and moves on",
                                     "primary")
        self.shipping_online = widgets.ToggleButton(value=True, description="shipping online",
                                                    tooltip="Take shipping offline / online")
        self.shipping_online.add_class("eda-broker-playground-shipping-online")
        self.crash_shipping = styled_button(
            "Crash shipping", "eda-broker-playground-crash",
            "Shipping dies after handling its next message, before committing it; it restarts "
            "0.3 s later and reads again from its committed offset")
        self.add_analytics = styled_button("Add analytics group", "eda-broker-playground-add-group",
                                           "Subscribe a new consumer group: no change to the "
                                           "order service")
        self.advance = styled_button("Let 1 s pass", "eda-broker-playground-advance")
        self.reset = styled_button("Reset", "eda-broker-playground-reset", style="warning")
        for control in (self.publish, self.shipping_online, self.crash_shipping,
                        self.add_analytics, self.advance, self.reset):
            control.add_class("eda-control")
        self.chart = image_widget("eda-view")
        self.groups = widgets.HTML()
        self.groups.add_class("eda-view")
        self.recent = widgets.HTML()
        self.recent.add_class("eda-view")
        self.error = widgets.HTML()

        self.publish.on_click(lambda _: self._act(self.model.publish_orders, 5))
        self.crash_shipping.on_click(lambda _: self._act(self.model.crash_next, "shipping"))
        self.advance.on_click(lambda _: self._act(self.model.step))
        self.add_analytics.on_click(lambda _: self._act(self.model.add_group, "analytics"))
        self.reset.on_click(lambda _: self._act(self._reset))
        self.shipping_online.observe(self._on_toggle, "value")

        controls = widgets.HBox([self.publish, self.shipping_online, self.crash_shipping,
                                 self.add_analytics, self.advance, self.reset])
        tables = widgets.HBox([self.groups, self.recent],
                              layout=widgets.Layout(justify_content="space-between"))
        self.root = widgets.VBox([controls, self.error, self.chart, tables])
        self.root.add_class("eda-broker-playground")
        self.redraw()

    def _reset(self) -> None:
        # Set the toggle back *before* resetting, with its observer detached (not merely held:
        # a held notification fires after the hold and would step the fresh model to t = 1 s).
        self.shipping_online.unobserve(self._on_toggle, "value")
        self.shipping_online.value = True
        self.shipping_online.observe(self._on_toggle, "value")
        self.model.reset()

    def _on_toggle(self, change) -> None:
        self._act(self.model.set_online, "shipping", change["new"])

    def _act(self, action, *args) -> None:
        try:
            action(*args)
            self.error.value = ""
        except ValueError as exc:  # e.g. adding analytics twice: say so, keep going
            self.error.value = f'<span style="color:#C44E52">{exc}</span>'
        self.redraw()

    def redraw(self) -> None:
        self.add_analytics.disabled = "analytics" in self.model.workers
        self.shipping_online.description = ("shipping online" if self.shipping_online.value
                                            else "shipping OFFLINE")
        show_figure(self.chart, playground_figure(self.model))
        self.groups.value = groups_html(self.model)
        self.recent.value = recent_html(self.model)

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
