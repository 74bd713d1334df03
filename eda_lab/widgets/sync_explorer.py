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
from collections.abc import Mapping, Sequence

import ipywidgets as widgets

from ..event_twin import EventDrivenTwin, TwinRun
from ..faults import Outage
from ..sync_chain import ServiceProfile, SyncChain, SyncRun, check_names, load_services
from ..sync_charts import comparison_figure, figure_png
from .common import html_table, image_widget

CSS = "eda-sync-explorer"
EXPLORER_CHAIN = ("order", "payment", "inventory", "shipping")
MAX_LATENCY_MS = 500
MAX_FAILURE_PROB = 0.3
SLOWDOWN = 20.0  # a "slow" outage makes the service this many times slower
# The outage covers this share of the run, so there is a before, a during and an after.
OUTAGE_SHARE = (0.35, 0.7)


class ExplorerModel:
    """What the explorer shows: the services, the load, the outage, and the last two runs.

    The outage is on or off; when on, ``outage_target`` is down or slow (``outage_mode``)
    for the middle of the run. Every setter checks its value; :meth:`run` simulates both
    wirings with the same seed, so only what was changed changes.
    """

    def __init__(self, services: Mapping[str, ServiceProfile] | None = None,
                 chain: Sequence[str] = EXPLORER_CHAIN, *, rate_per_s: float = 20.0,
                 duration_ms: float = 20_000.0, seed: int = 1, outage_on: bool = False,
                 outage_target: str = "inventory", outage_mode: str = "slow"):
        self.services = dict(services if services is not None else load_services())
        self.chain = check_names("chain", chain, self.services)
        if len(self.chain) < 2:
            raise ValueError("chain must name the entry service and at least one more")
        SyncChain(self.services, self.chain)  # checks the names and profiles
        self.rate_per_s = rate_per_s
        self.duration_ms = duration_ms
        self.seed = seed
        # Each service's spread as a share of its mean, kept when a slider moves the mean.
        self._spread = {name: (p.sd_ms / p.mean_ms if p.mean_ms else 0.0)
                        for name, p in self.services.items()}
        self.outage_on = outage_on
        self.set_outage(outage_target, outage_mode)
        self.sync_run: SyncRun | None = None
        self.twin_run: TwinRun | None = None

    def set_latency(self, name: str, mean_ms: float) -> None:
        """Set a service's mean latency; its spread keeps the same share of the mean."""
        profile = self.services[check_names("name", name, self.services)[0]]
        self.services[name] = profile.changed(mean_ms=mean_ms,
                                              sd_ms=mean_ms * self._spread[name])

    def set_failure(self, name: str, failure_prob: float) -> None:
        """Set the chance that a call to ``name`` answers with an error."""
        profile = self.services[check_names("name", name, self.services)[0]]
        self.services[name] = profile.changed(failure_prob=failure_prob)

    def set_outage(self, target: str, mode: str) -> None:
        """Choose which service the outage hits and how ('down' or 'slow')."""
        check_names("outage_target", target, self.chain)
        if mode not in ("down", "slow"):
            raise ValueError(f"outage_mode must be 'down' or 'slow', got {mode!r}")
        self.outage_target, self.outage_mode = target, mode

    @property
    def outages(self) -> tuple[Outage, ...]:
        """The outage in force, as the simulations take it (none while the toggle is off)."""
        if not self.outage_on:
            return ()
        start, end = (share * self.duration_ms for share in OUTAGE_SHARE)
        return (Outage(self.outage_target, start, end, self.outage_mode,
                       SLOWDOWN if self.outage_mode == "slow" else 1.0),)

    @property
    def sync_chain(self) -> SyncChain:
        return SyncChain(self.services, self.chain)

    @property
    def twin(self) -> EventDrivenTwin:
        return EventDrivenTwin(self.services, self.chain[0], self.chain[1:])

    def run(self) -> tuple[SyncRun, TwinRun]:
        """Run the same load and outage through both wirings; keep and return the results."""
        load = {"rate_per_s": self.rate_per_s, "duration_ms": self.duration_ms,
                "outages": self.outages, "seed": self.seed}
        self.sync_run = self.sync_chain.run(**load)
        self.twin_run = self.twin.run(**load, trace=False)
        return self.sync_run, self.twin_run

    def rows(self) -> list[dict]:
        """The comparison table: each wiring's measured numbers beside its closed form."""
        if self.sync_run is None or self.twin_run is None:
            return []
        rows = []
        for wiring, run, expected in (("sync", self.sync_run, self.sync_chain),
                                      ("event-driven", self.twin_run, self.twin)):
            s = run.summary()
            rows.append({
                "wiring": wiring,
                "succeeded": f"{s['success_rate']:.2%}",
                "expected (no outage)": f"{expected.expected_availability():.2%}",
                "mean ms": f"{s['mean_ms']:.0f}",
                "expected ms": f"{expected.expected_latency_ms():.0f}",
                "p95 ms": f"{s['p95_ms']:.0f}",
                "all orders processed at": "when answered" if wiring == "sync" else
                _seconds(run.consistency()["all_processed_at_s"]),
            })
        return rows


def _seconds(value: float) -> str:
    return "not yet" if value != value else f"{value:.1f} s"


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
                description="fails", readout_format=".1%", continuous_update=False),
                f"failure-{name}")
            rows.append(widgets.HBox([widgets.HTML(f"<b>{html.escape(name)}</b>",
                                                   layout=widgets.Layout(width="80px")),
                                      self.latency[name], self.failure[name]]))
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
