"""The Chaos Lab: set the fault rates and the safeguards, run the whole shop, read the verdict.

Controls: one slider per fault family (the rate at which each of its crash points fires
while orders arrive), the relay kind, how the order service publishes (the outbox, or a naive
dual write), whether the downstream consumers use an inbox, which consumers run, how many
orders, the seed, and **Run**. A run longer than two seconds shows a progress bar.

Views: a numbered status line, the dashboard of invariants (green when they hold, red when
broken), throughput and lag charts (PNG in an ``Image``), and the checker's counts per
consumer. Every view is drawn by a pure function of the :class:`~eda_lab.shop.chaos.ChaosReport`
(:func:`dashboard_html`, :func:`details_html`, :func:`~eda_lab.shop.charts.chaos_figure`),
so a test reads exactly what a learner sees.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping

import ipywidgets as widgets

from ..shop.chaos import DEFAULT_RATES, FAMILIES, FAMILY_NAMES, ChaosReport, check_rates, run_chaos
from ..shop.charts import chaos_figure
from ..shop.shop import CONSUMERS
from .common import html_table, html_view, image_widget, show_figure, styled_button

CSS = "eda-chaos-lab"
GREEN, RED = "#8FD19E", "#F4A3A3"
MAX_RATE = 0.05          # the sliders' top: 5% of every visit to a crash point
ORDER_CHOICES = (100, 300, 1_000, 3_000, 10_000)
DEFAULT_ORDERS = 300     # a click answers in well under a second
PROGRESS_AFTER_S = 2.0   # a run that takes longer shows a progress bar
PUBLISHING = (("outbox + relay", "outbox"),
              ("naive: DB, then publish", "db_then_publish"),
              ("naive: publish, then DB", "publish_then_db"))
CONSUMER_CHOICES = (("shipping notifier + analytics", CONSUMERS),
                    ("shipping notifier only", ("shipping-notifier",)),
                    ("analytics only", ("analytics",)))


def dashboard_html(report: ChaosReport, wall_clock: bool = True) -> str:
    """The invariants as cards (green: holds, red: broken), then throughput, lag, sagas.

    ``wall_clock=False`` leaves out the orders per real second, which differ on every run
    (a notebook's stored output must not)."""
    cards = []
    for line in report.invariants():
        color = GREEN if line.holds else RED
        cards.append(
            f'<div class="eda-chaos-invariant" data-name="{html.escape(line.name)}" '
            f'data-holds="{str(line.holds).lower()}" title="{html.escape(line.meaning)}" '
            f'style="background:{color};border-radius:6px;padding:6px 10px;min-width:118px">'
            f'<div style="font-size:11px">{html.escape(line.name)}</div>'
            f'<div style="font-size:22px;font-weight:bold">{line.value}</div>'
            f'<div style="font-size:10px">{"holds" if line.holds else "BROKEN"}</div></div>')
    lags = report.lag_percentiles(0.5, 0.99)
    lag_text = ("-" if lags["p50"] is None else
                f'{lags["p50"] / 1000:.2f} s (p50), {lags["p99"] / 1000:.2f} s (p99)')
    outcomes = ", ".join(f"{n} {status}" for status, n in report.saga_outcomes.items()) or "none"
    settled = "" if report.settled else (
        ' <b style="color:#C44E52">(not settled: still moving when the run stopped)</b>')
    facts = [
        f"<b>{report.placed}</b> orders placed, <b>{report.committed}</b> committed; "
        f"sagas: {html.escape(outcomes)}{settled}",
        f"throughput: <b>{report.orders_per_simulated_s:.1f}</b> orders per simulated second"
        + (f", <b>{report.orders_per_wall_s:,.0f}</b> per wall-clock second on this machine"
           if wall_clock else ""),
        f"consistency lag (commit until every service agrees): <b>{lag_text}</b>",
        f"faults fired: <b>{sum(report.faults_fired.values())}</b> "
        + html.escape(", ".join(f"{f} {n}" for f, n in report.faults_by_family().items()))
        + f"; duplicate deliveries (normal: at least once): {report.duplicate_deliveries}",
    ]
    return (f'<div class="{CSS}-cards" style="display:flex;gap:8px;flex-wrap:wrap">'
            + "".join(cards) + "</div>"
            + '<div style="font-size:12px;margin-top:6px">'
            + "".join(f"<div>{fact}</div>" for fact in facts) + "</div>")


def details_html(report: ChaosReport) -> str:
    """The consistency checker's counts per downstream consumer, and the settings used."""
    rows = [{"consumer": name, **r.counts()} for name, r in report.consistency.items()]
    columns = ["consumer", "committed", "received", "applied", "lost", "phantom",
               "duplicate_deliveries", "duplicate_effects", "order_violations"]
    settings = report.settings
    rates = ", ".join(f"{f} {r:.1%}" for f, r in settings.get("rates", {}).items())
    used = (f"seed {settings.get('seed')}, relay {settings.get('relay')}, "
            f"{'outbox' if settings.get('outbox') else 'naive ' + str(settings.get('dual_write'))}"
            f", inbox {'on' if settings.get('inbox') else 'off'}; rates: {rates}")
    return (html_table(rows, columns, caption="per downstream consumer")
            + f'<div style="font-size:11px;color:#555">{html.escape(used)}</div>')


class ChaosLab:
    """The widget: ``ChaosLab()`` in a cell shows it; ``.report`` is the last run's verdict.

    >>> lab = ChaosLab(n_orders=100, run=False)
    >>> lab.inbox.value = False
    >>> lab.run_button.click()
    >>> lab.report.placed
    100
    """

    def __init__(self, n_orders: int = DEFAULT_ORDERS, rates: Mapping[str, float] | None = None,
                 *, seed: int = 0, run: bool = True):
        if n_orders not in ORDER_CHOICES:
            raise ValueError(f"n_orders must be one of {ORDER_CHOICES}, got {n_orders!r}")
        rates = check_rates(DEFAULT_RATES if rates is None else rates)
        for family, rate in rates.items():
            if rate > MAX_RATE:
                raise ValueError(f"rates[{family!r}] must be at most {MAX_RATE} in the lab, "
                                 f"got {rate}")
        self.report: ChaosReport | None = None
        self.runs = 0
        self.actions = 0
        self.progress_after_s = PROGRESS_AFTER_S
        self.rates = {}
        for family in FAMILIES:
            slider = widgets.FloatSlider(value=rates[family], min=0.0, max=MAX_RATE, step=0.001,
                                         readout_format=".1%", description=family,
                                         continuous_update=False,
                                         tooltip=FAMILY_NAMES[family])
            self.rates[family] = slider
        self.relay = widgets.ToggleButtons(options=["polling", "log-tailing"],
                                           description="relay", style={"button_width": "90px"})
        self.publishing = widgets.Dropdown(options=list(PUBLISHING), value="outbox",
                                           description="publishing")
        self.inbox = widgets.Checkbox(value=True, description="consumers use an inbox")
        self.consumers = widgets.Dropdown(options=list(CONSUMER_CHOICES), value=CONSUMERS,
                                          description="consumers")
        self.orders = widgets.Dropdown(options=list(ORDER_CHOICES), value=n_orders,
                                       description="orders")
        self.seed = widgets.BoundedIntText(value=seed, min=0, max=9_999, description="seed")
        self.run_button = styled_button("Run", f"{CSS}-run", "run the shop with these settings",
                                        "primary")
        controls = {**{f"rate-{f}": s for f, s in self.rates.items()}, "relay": self.relay,
                    "publishing": self.publishing, "inbox": self.inbox,
                    "consumers": self.consumers, "orders": self.orders, "seed": self.seed,
                    "run": self.run_button}
        for name, control in controls.items():
            control.add_class("eda-control")
            control.add_class(f"{CSS}-{name}")
            if control is not self.run_button:
                control.observe(self._changed(name), names="value")
        self.run_button.on_click(lambda _: self.run())
        self.progress = widgets.IntProgress(value=0, min=0, max=n_orders,
                                            description="running",
                                            layout=widgets.Layout(display="none"))
        self.progress.add_class(f"{CSS}-progress")
        self.status = html_view(CSS, "status")
        self.dashboard = html_view(CSS, "dashboard")
        self.charts = image_widget("eda-view")
        self.charts.add_class(f"{CSS}-charts")
        self.details = html_view(CSS, "details")
        self.root = widgets.VBox([
            widgets.HTML("<b>Chaos Lab</b>: set the fault rates and the safeguards, then "
                         "<b>Run</b> the shop. Faults fire while the orders arrive; then the "
                         "shop recovers and the checkers judge what is left."),
            widgets.HBox(list(self.rates.values()), layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.relay, self.publishing, self.inbox],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.consumers, self.orders, self.seed, self.run_button],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.progress, self.status, self.dashboard, self.charts, self.details,
        ])
        self.root.add_class(CSS)
        if run:
            self.run()
        else:
            self._say("ready: press Run")

    # -- settings and actions ------------------------------------------------------------------
    def settings(self) -> dict:
        """The keyword arguments of :func:`~eda_lab.shop.chaos.run_chaos` the controls describe."""
        publishing = self.publishing.value
        return {"n_orders": self.orders.value,
                "rates": {family: round(s.value, 4) for family, s in self.rates.items()},
                "seed": self.seed.value, "relay": self.relay.value,
                "outbox": publishing == "outbox",
                "dual_write": "db_then_publish" if publishing == "outbox" else publishing,
                "inbox": self.inbox.value, "consumers": self.consumers.value}

    def _changed(self, name: str):
        def changed(change) -> None:
            value = change["new"]
            shown = f"{value:.1%}" if name.startswith("rate-") else value
            if isinstance(shown, tuple):
                shown = " + ".join(shown)
            self._say(f"{name.replace('rate-', 'rate of ')} set to {shown}: press Run")
        return changed

    def run(self) -> ChaosReport | None:
        """Run the shop with the controls' settings; redraw every view from the report."""
        started = time.perf_counter()
        progress = self.progress

        def report_progress(done: int, total: int) -> None:
            if time.perf_counter() - started < self.progress_after_s:
                return
            progress.max, progress.value = total, done
            progress.layout.display = None

        try:
            self.report = run_chaos(progress=report_progress, **self.settings())
        except Exception as error:  # noqa: BLE001 - a learner's click must show what went wrong
            self._say(f"error: {type(error).__name__}: {error}")
            return None
        finally:
            progress.layout.display = "none"
        self.runs += 1
        report = self.report
        verdict = "every invariant holds" if report.ok else "BROKEN: " + ", ".join(
            line.name for line in report.invariants() if not line.holds)
        self._say(f"run {self.runs}: {report.placed} orders in {report.wall_s:.2f} s: {verdict}")
        self.redraw()
        return report

    def _say(self, what: str) -> None:
        """The status line, numbered so that a repeated action still shows."""
        self.actions += 1
        self.status.value = f"<b>{self.actions}.</b> {html.escape(what)}"

    def redraw(self) -> None:
        """Draw the dashboard, the charts and the details from the last report."""
        if self.report is None:
            return
        self.dashboard.value = dashboard_html(self.report)
        show_figure(self.charts, chaos_figure(self.report))
        self.details.value = details_html(self.report)

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
