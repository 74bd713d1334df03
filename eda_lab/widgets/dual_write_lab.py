"""The dual-write lab: pick the order of the two writes, turn up the faults, count the damage.

Each run sends ``orders`` orders through every variant with the same seeded faults (the broker
refusing a publish, the service crashing after its commit, the commit failing) and counts, with
the consistency checker, the **lost** events (zombie records: committed, never published) and
the **phantom** ones (ghost messages: published, never committed). The chosen variant's counts
are the table; the chart puts all variants side by side, the outbox among them.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..charts import axes
from ..outbox.charts import variant_bars
from ..outbox.pipeline import PIPELINES, OrderPipeline
from .common import html_table, image_widget, show_figure, styled_button

CSS = "eda-dual-write-lab"
LAB_VARIANTS = ("db_then_publish", "publish_then_db", "outbox-polling")
# slider attribute -> (label, fault point)
FAULTS = {
    "broker_refuses": ("broker refuses", "broker.unavailable"),
    "crash_after_commit": ("crash after commit", "order.after_commit"),
    "commit_fails": ("commit fails", "order.before_commit"),
}
MAX_ORDERS = 1_000   # keeps a click well under a second


def lab_runs(faults: dict[str, float], orders: int, retries: int = 0, seed: int = 0,
             variants=LAB_VARIANTS) -> dict[str, OrderPipeline]:
    """Every variant run with the same faults and seed: variant -> its pipeline, settled."""
    runs = {}
    for variant in variants:
        runs[variant] = OrderPipeline(variant, faults, seed=seed, retries=retries, trace=False)
        runs[variant].run(orders)
    return runs


def lab_rows(runs: dict[str, OrderPipeline], orders: int) -> list[dict]:
    """One row of checker counts per variant."""
    return [{"variant": variant, "orders": orders,
             "calls that failed": len(pipeline.failed_orders), **pipeline.report().counts()}
            for variant, pipeline in runs.items()]


def counts_html(rows: list[dict], variant: str) -> str:
    """The chosen variant's counts as a small table."""
    row = next(r for r in rows if r["variant"] == variant)
    table = [{"what": label, "count": row[key]} for key, label in (
        ("orders", "orders placed"), ("calls that failed", "calls that raised or crashed"),
        ("committed", "orders in the database"), ("lost", "lost: zombie records"),
        ("phantom", "phantom: ghost messages"), ("duplicate_effects", "duplicate effects"))]
    bad = {i: "#F8D0D0" for i, r in enumerate(table) if r["what"].startswith(("lost", "phantom"))
           and r["count"]}
    return html_table(table, ["what", "count"], caption=PIPELINES[variant], highlight=bad)


class DualWriteLab:
    """The widget; ``.model`` is the pipeline of the chosen variant in the last run and
    ``.rows`` the counts of every variant."""

    def __init__(self, variant: str = "db_then_publish", *, orders: int = 300, seed: int = 0):
        if variant not in LAB_VARIANTS:
            raise ValueError(f"variant must be one of {LAB_VARIANTS}, got {variant!r}")
        if (isinstance(orders, bool) or not isinstance(orders, int) or not 50 <= orders <= MAX_ORDERS
                or orders % 50):
            raise ValueError(f"orders must be a multiple of 50 from 50 to {MAX_ORDERS} (the "
                             f"slider's steps), got {orders!r}")
        self.seed = seed
        self.variant = widgets.Dropdown(options=[(PIPELINES[v], v) for v in LAB_VARIANTS],
                                        value=variant, description="ordering",
                                        layout=widgets.Layout(width="360px"),
                                        style={"description_width": "initial"})
        self.sliders = {}
        for attribute, (label, _) in FAULTS.items():
            # A fraction, read back as it prints (a "%" readout parses "10%" as 10.0).
            slider = widgets.FloatSlider(value=0.1 if attribute == "broker_refuses" else 0.05,
                                         min=0.0, max=0.5, step=0.01, description=label,
                                         continuous_update=False, readout_format=".2f",
                                         style={"description_width": "initial"})
            setattr(self, attribute, slider)
            self.sliders[attribute] = slider
        self.retries = widgets.IntSlider(value=0, min=0, max=5, description="publish retries",
                                         continuous_update=False,
                                         style={"description_width": "initial"})
        self.orders = widgets.IntSlider(value=orders, min=50, max=MAX_ORDERS, step=50,
                                        description="orders", continuous_update=False)
        self.run_button = styled_button("run again", f"{CSS}-run",
                                        "run the orders again with the next seed: new random "
                                        "faults at the same rates", "primary")
        controls = {"variant": self.variant, "retries": self.retries, "orders": self.orders,
                    "run": self.run_button,
                    **{name.replace("_", "-"): s for name, s in self.sliders.items()}}
        for name, control in controls.items():
            control.add_class("eda-control")
            control.add_class(f"{CSS}-{name}")
        self.counts = widgets.HTML()
        self.counts.add_class("eda-view")
        self.counts.add_class(f"{CSS}-counts")
        self.chart = image_widget(f"{CSS}-chart")
        self.chart.add_class("eda-view")
        self.root = widgets.VBox([
            widgets.HBox([self.variant, self.orders, self.retries]),
            widgets.HBox(list(self.sliders.values())),
            self.run_button,
            widgets.HBox([self.counts, self.chart]),
        ])
        self.root.add_class(CSS)
        self.model: OrderPipeline | None = None
        self.rows: list[dict] = []
        for control in (self.variant, self.retries, self.orders, *self.sliders.values()):
            control.observe(lambda _: self.run(), names="value")
        self.run_button.on_click(lambda _: self.run_again())
        self.run()

    def run_again(self) -> list[dict]:
        """Draw a new sample: the same fault rates, the next seed."""
        self.seed += 1
        return self.run()

    def faults(self) -> dict[str, float]:
        """The fault plan the sliders describe: each point fires with its probability."""
        return {FAULTS[name][1]: float(s.value) for name, s in self.sliders.items() if s.value}

    def run(self) -> list[dict]:
        """Run every variant with the current settings and redraw."""
        runs = lab_runs(self.faults(), self.orders.value, self.retries.value, self.seed)
        self.rows = lab_rows(runs, self.orders.value)
        variant = self.variant.value
        self.model = runs[variant]
        self.counts.value = counts_html(self.rows, variant) + f"<p>seed {self.seed}</p>"
        ax = variant_bars(self.rows, axes(figsize=(5.5, 3.0)),
                          title=f"{self.orders.value} orders, same faults (seed {self.seed})")
        show_figure(self.chart, ax.figure)
        plt.close(ax.figure)
        return self.rows

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)


# -- the step strip: one small picture per step of a walk --------------------------------------
STRIP_MAX_STEPS = 10
_OK, _BAD, _MUTED = "#2E7D32", "#C44E52", "#888888"


def _write_line(label: str, happened: bool, failed_why: str = "") -> str:
    """One of the two writes: done (a tick), or drawn crossed out in red with the reason."""
    if happened:
        return f'<div style="color:{_OK}">&#10003; {html.escape(label)}</div>'
    why = f' <span style="font-size:10px">({html.escape(failed_why)})</span>' if failed_why else ""
    return (f'<div style="color:{_BAD}"><s>{html.escape(label)}</s> &#10007;{why}</div>')


def _badge(text: str, color: str) -> str:
    return (f'<div style="margin-top:4px;padding:1px 4px;border-radius:3px;background:{color};'
            f'color:white;font-size:10px;font-weight:bold">{html.escape(text)}</div>')


def step_cell(step, committed_keys: set[str], publish_first: bool = False) -> str:
    """The picture of one step: which writes happened, which did not, and the damage done."""
    kinds = [r.kind for r in step.records]
    keys = [r.key for r in step.records if r.key]
    key = keys[0] if keys else ""
    body = []
    if step.actor == "order":
        committed, published = "db_commit" in kinds, "publish" in kinds
        crash = next((r.detail for r in step.records if r.kind == "crash"), "")
        why_not = "crashed at " + crash if crash else ("broker refused" if "unavailable" in kinds
                                                       else "")
        writes = [_write_line(f"commit {key} to the DB", committed,
                              why_not if not committed else ""),
                  _write_line(f"publish OrderPlaced({key})", published,
                              why_not if not published else "")]
        body.extend(reversed(writes) if publish_first else writes)
        if committed and not published:
            body.append(_badge(f"ZOMBIE: {key} saved, never announced", _BAD))
        elif published and not committed:
            body.append(_badge(f"GHOST: {key} announced, never saved", "#DD8452"))
    else:
        got = [r.key for r in step.records if r.kind in ("deliver", "duplicate")]
        acked = "commit" in kinds
        crash = next((r.detail for r in step.records if r.kind == "crash"), "")
        body.append(f'<div>received {html.escape(", ".join(got) or "nothing")}</div>')
        body.append(_write_line("acknowledge", acked, "crashed at " + crash if crash else ""))
        for k in got:
            if k not in committed_keys:
                body.append(_badge(f"acted on ghost {k}", "#DD8452"))
    color = "#4C72B0" if step.actor == "order" else "#8172B3"
    return (f'<td style="vertical-align:top;border:1px solid #ccc;padding:4px 6px;'
            f'min-width:130px;font-size:11px"><div style="font-weight:bold;color:{color}">'
            f"{html.escape(step.actor)}</div>{''.join(body)}</td>")


def step_strip_html(pipeline: OrderPipeline, walk, max_steps: int = STRIP_MAX_STEPS) -> str:
    """The steps of ``walk`` (what ``pipeline.walk()`` returned) side by side, oldest first,
    each write in the order the variant makes them, the failed one crossed out, the zombie
    record or ghost message badged (judged against the orders in the database now); then why
    the walk stopped."""
    committed_keys = {row["order_id"] for row in pipeline.service.orders()}
    publish_first = pipeline.variant == "publish_then_db"
    shown = walk.steps[:max_steps]
    cells = "".join(step_cell(step, committed_keys, publish_first) for step in shown)
    more = len(walk.steps) - len(shown)
    if more:
        cells += (f'<td style="vertical-align:middle;color:{_MUTED};font-size:11px;padding:4px">'
                  f"&hellip; {more} more step(s)</td>")
    heads = "".join(f'<th style="font-size:10px;color:{_MUTED};font-weight:normal">step {i + 1}'
                    "</th>" for i in range(len(shown)))
    return (f'<div class="eda-step-strip"><table style="border-collapse:collapse"><tr>{heads}'
            f"</tr><tr>{cells}</tr></table>"
            f'<div style="font-size:11px;margin-top:4px">{html.escape(walk.stopped)}</div></div>')
