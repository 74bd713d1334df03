"""The sync-chain explorer of notebook 01: change a service, see both wirings answer.

Per service, a latency slider and a failure slider; an outage toggle with its target and
mode; a load slider. Every change runs the same load through the synchronous chain and its
event-driven twin (tens of milliseconds: the load is kept small for that) and redraws the
charts (success rate, latency, backlog) and a table that puts each result beside its closed
form.

:class:`ExplorerModel` holds the state and runs the simulations; :class:`SyncExplorer` is
the controls and views around it. Tests drive the controls and read ``.model``, the PNG in
``.chart`` and the HTML in ``.table``.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from ..sync.charts import comparison_figure, figure_png
from ..sync.explorer import MAX_FAILURE_PROB, MAX_LATENCY_MS, SLOWDOWN, ExplorerModel
from .common import html_table, image_widget

CSS = "eda-sync-explorer"
class SyncExplorer:
    """Sliders per service, an outage toggle, the charts and the table; see the module doc."""

    def __init__(self, model: ExplorerModel | None = None, **model_options):
        self.model = model if model is not None else ExplorerModel(**model_options)
        m = self.model
        self.latency: dict[str, widgets.IntSlider] = {}
        self.failure: dict[str, widgets.FloatSlider] = {}
        rows = []
        for name in m.chain:
            profile = m.services[name]
            self.latency[name] = _control(widgets.IntSlider(
                value=round(profile.mean_ms), min=0, max=MAX_LATENCY_MS, step=5,
                description="mean ms", continuous_update=False), f"latency-{name}")
            self.failure[name] = _control(widgets.FloatSlider(
                value=profile.failure_prob, min=0.0, max=MAX_FAILURE_PROB, step=0.005,
                description="fails", readout_format=".3f", continuous_update=False),
                f"failure-{name}")
            rows.append(widgets.HBox([widgets.HTML(f"<b>{html.escape(name)}</b>",
                                                   layout=widgets.Layout(width="80px")),
                                      self.latency[name], self.failure[name]]))
        if not (5 <= m.rate_per_s <= 60 and m.rate_per_s % 5 == 0):
            raise ValueError(f"rate_per_s must be a multiple of 5 from 5 to 60 (the slider's "
                             f"steps), got {m.rate_per_s!r}")
        self.rate = _control(widgets.IntSlider(
            value=round(m.rate_per_s), min=5, max=60, step=5, description="requests/s",
            continuous_update=False), "rate")
        self.outage = _control(widgets.ToggleButton(
            value=m.outage_on, description="outage", icon="bolt",
            tooltip="take a service down, or make it slow, in the middle of the run"), "outage")
        self.outage_target = _control(widgets.Dropdown(
            options=list(m.chain), value=m.outage_target, description="service"),
            "outage-target")
        self.outage_mode = _control(widgets.Dropdown(
            options=[(f"{SLOWDOWN:g}x slower", "slow"), ("down", "down")],
            value=m.outage_mode, description="mode"), "outage-mode")
        self.chart = image_widget("eda-view")
        self.chart.add_class(f"{CSS}-chart")
        self.table = widgets.HTML()
        self.table.add_class("eda-view")
        self.table.add_class(f"{CSS}-table")
        self.status = widgets.HTML()
        self.status.add_class(f"{CSS}-status")
        self.root = widgets.VBox([
            *rows,
            widgets.HBox([self.rate, self.outage, self.outage_target, self.outage_mode]),
            self.status, self.table, self.chart])
        self.root.add_class(CSS)
        for control in [*self.latency.values(), *self.failure.values(), self.rate, self.outage,
                        self.outage_target, self.outage_mode]:
            control.observe(self._on_change, names="value")
        self.redraw()

    def _on_change(self, change) -> None:
        m = self.model
        # Choosing what the outage hits changes nothing while the outage is off.
        quiet = change["owner"] in (self.outage_target, self.outage_mode) and not m.outage_on
        try:
            for name in m.chain:
                m.set_latency(name, self.latency[name].value)
                m.set_failure(name, self.failure[name].value)
            m.rate_per_s = self.rate.value
            m.outage_on = self.outage.value
            m.set_outage(self.outage_target.value, self.outage_mode.value)
        except (TypeError, ValueError) as error:  # shown, not raised into the frontend
            self.status.value = f'<span style="color:#C44E52">{html.escape(str(error))}</span>'
            return
        if not quiet:
            self.redraw()

    def redraw(self) -> None:
        """Run both wirings on the model's state and redraw the table and the charts."""
        self.status.value = ""
        sync_run, twin_run = self.model.run()
        self.table.value = html_table(self.model.rows(), caption=(
            f"{self.model.rate_per_s:g} requests/s for {self.model.duration_ms / 1000:g} s"
            + (f"; {self.model.outage_target} {self.model.outage_mode} in the shaded window"
               if self.model.outage_on else "; no outage")))
        self.chart.value = figure_png(comparison_figure(sync_run, twin_run, figsize=(8, 6.5)))

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)


def _control(widget, name: str):
    widget.add_class("eda-control")
    widget.add_class(f"{CSS}-{name}")
    return widget
