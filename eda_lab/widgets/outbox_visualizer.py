"""The Transactional Outbox Visualizer: place orders, break things, step through what happens.

Choose how the order service announces orders (naive either way, or the outbox with a polling
or a log-tailing relay), toggle failures (broker down, service crash after commit, relay crash
after publish, consumer crash before acknowledging), place orders and step one action at a
time, or run until everything settles. The diagram highlights the part that just acted; the
tables show the live rows of the orders, outbox and inbox tables; the counters are the
consistency checker's verdict (:func:`eda_lab.outbox.checks.check_consistency`) at that moment.

The drawing is done by pure functions of the model (:func:`diagram_html`,
:func:`tables_html`, :func:`event_log_html`, :func:`counters_html`), so a test can build the
widget, click, and read the HTML it produced.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import replace

import ipywidgets as widgets

from ..db import rows
from ..outbox.checks import ConsistencyReport
from ..outbox.pipeline import PIPELINES, OrderPipeline, StepResult
from ..outbox.table import outbox_rows
from .common import html_table, styled_button
from .diagram import Edge, Node, render_diagram

CSS = "eda-outbox-visualizer"
# toggle attribute -> (label, the fault point it fires every time it is reached)
FAILURES = {
    "broker_down": ("broker down", "broker.unavailable"),
    "crash_after_commit": ("crash after commit", "order.after_commit"),
    "relay_crash": ("relay crash after publish", "relay.after_publish"),
    "consumer_crash": ("consumer crash before ack", "consumer.before_commit"),
}
# Which box an armed failure belongs to, so the diagram shows it before it fires.
ARMED_AT = {"broker_down": ("broker", "down"), "crash_after_commit": ("service", "crash after commit"),
            "relay_crash": ("relay", "crash after publish"),
            "consumer_crash": ("consumer", "crash before ack")}
RUN_STEPS = 60        # the most steps one click of "run" takes (a click stays fast)
LOG_LINES = 12
TABLE_ROWS = 6


def architecture(variant: str) -> tuple[list[Node], list[Edge]]:
    """The boxes and arrows of ``variant``: parts it does not use are drawn muted."""
    outbox = variant.startswith("outbox")
    log = variant == "outbox-log-tailing"
    nodes = [
        Node("service", "Order service", 120, 40, 150, color="#DCE6F2",
             detail="one local transaction" if outbox else "two separate writes"),
        Node("orders", "orders", 45, 150, 90, 40, color="#FFF6D5", detail="table"),
        Node("outbox", "outbox", 200, 150, 100, 40, color="#FFF6D5",
             detail="table + log" if log else "table", muted=not outbox),
        Node("relay", "Relay", 375, 150, 110, 44, color="#F6DDEE",
             detail="log-tailing" if log else ("polling" if outbox else "not used"),
             muted=not outbox),
        Node("broker", "Broker", 450, 40, 110, color="#DDEFF6", detail="topic orders"),
        Node("consumer", "Consumer", 650, 40, 120, color="#E2F2E2", detail="shipping"),
        Node("inbox", "inbox + effects", 650, 150, 130, 40, color="#FFF6D5", detail="tables"),
    ]
    edges = [
        Edge("service", "orders", "order row"),
        Edge("service", "outbox", "outbox row", muted=not outbox),
        Edge("outbox", "relay", "tail log" if log else "read", muted=not outbox),
        Edge("relay", "outbox", "store offset" if log else "mark", bend=-18, muted=not outbox),
        Edge("relay", "broker", "publish", muted=not outbox),
        Edge("service", "broker", "publish", muted=outbox),
        Edge("broker", "consumer", "deliver"),
        Edge("consumer", "broker", "ack", bend=-24),
        Edge("consumer", "inbox", "apply"),
    ]
    return nodes, edges


def active_parts(step: StepResult | None) -> tuple[set[str], set[str]]:
    """Which nodes and edges ``step`` used, and which parts crashed or refused in it."""
    active: set[str] = set()
    crashed: set[str] = set()
    if step is None:
        return active, crashed
    actor = {"order": "service", "relay": "relay", "consumer": "consumer"}[step.actor]
    active.add(actor)
    for record in step.records:
        kind = record.kind
        if kind == "db_commit":
            active |= {"orders", "service->orders"}
            if "outbox" in record.detail:
                active |= {"outbox", "service->outbox"}
        elif kind == "publish":
            active |= {"broker", f"{actor}->broker"}
        elif kind == "unavailable":
            active.add(f"{actor}->broker")
            crashed.add("broker")
        elif kind == "read":
            active |= {"outbox", "outbox->relay"}
        elif kind == "mark":
            active |= {"outbox", "relay->outbox"}
        elif kind in ("deliver", "duplicate"):
            active |= {"broker", "broker->consumer", "inbox", "consumer->inbox"}
        elif kind == "commit":
            active.add("consumer->broker")
        elif kind == "crash":
            crashed.add(actor)
    return active, crashed


def diagram_html(model: OrderPipeline, step: StepResult | None = None,
                 armed: Iterable[str] = ()) -> str:
    """The architecture of the model's variant with the parts of ``step`` highlighted.

    ``armed`` names the failures (keys of :data:`FAILURES`) toggled on: their boxes carry a
    bolt and the failure's name, so a learner sees the trap before stepping into it.
    """
    nodes, edges = architecture(model.variant)
    marks = dict(ARMED_AT[name] for name in armed)
    nodes = [replace(n, detail=f"⚡ {marks[n.id]}") if n.id in marks else n for n in nodes]
    active, crashed = active_parts(step)
    title = PIPELINES[model.variant] + (f"  |  {step.summary}" if step else "")
    return render_diagram(nodes, edges, active, crashed, width=720, height=180, title=title)


def _last(items: list[dict], n: int = TABLE_ROWS) -> list[dict]:
    return items[-n:]


def tables_html(model: OrderPipeline) -> str:
    """The live rows of the orders, outbox and inbox tables (the last few of each)."""
    service_db, consumer_db = model.service.db, model.consumer.db
    orders = [{"order_id": o["order_id"], "state": o["state"], "version": o["version"]}
              for o in model.service.orders()]
    outbox = [{"seq": r["seq"], "aggregateid": r["aggregateid"], "type": r["type"],
               "published_at": "-" if r["published_at"] is None else f"{r['published_at']:g}"}
              for r in outbox_rows(service_db)]
    if model.relay is not None and model.relay.kind == "log-tailing":
        for row in outbox:
            row["published_at"] = "(log relay)"
    inbox = [{"message_id": r["message_id"], "processed_at": f"{r['processed_at']:g}"}
             for r in rows(consumer_db, "inbox")]
    effects = len(rows(consumer_db, "effects"))
    cells = [
        html_table(_last(orders), ["order_id", "state", "version"],
                   caption=f"orders ({len(orders)} rows)"),
        html_table(_last(outbox), ["seq", "aggregateid", "type", "published_at"],
                   caption=f"outbox ({len(outbox)} rows)"),
        html_table(_last(inbox), ["message_id", "processed_at"],
                   caption=f"inbox ({len(inbox)} rows), effects: {effects}",
                   empty="(no inbox)" if model.consumer.inbox is None else "(empty)"),
    ]
    return ('<div class="eda-outbox-tables" style="display:flex;gap:18px;align-items:flex-start">'
            + "".join(f"<div>{cell}</div>" for cell in cells) + "</div>")


def event_log_html(model: OrderPipeline, n: int = LOG_LINES) -> str:
    """The last ``n`` trace records; crashes and refusals in red."""
    records = model.trace.tail(n)
    table = [{"t (ms)": f"{r.time:g}", "actor": r.actor, "what": r.kind, "key": r.key or "",
              "event": r.message_type or "", "detail": r.detail} for r in records]
    highlight = {i: "#F8D0D0" for i, r in enumerate(records)
                 if r.kind in ("crash", "unavailable", "duplicate", "down")}
    return html_table(table, ["t (ms)", "actor", "what", "key", "event", "detail"],
                      caption="event log (latest last)", highlight=highlight,
                      empty="(nothing yet: place an order, then step)")


COUNTERS = ("committed", "lost", "phantom", "duplicate_deliveries", "duplicate_effects",
            "order_violations", "in_flight")


def counters_html(report: ConsistencyReport, queued: int = 0) -> str:
    """The checker's counts as a row of labelled numbers (bad ones in red)."""
    bad = {"lost", "phantom", "duplicate_effects", "order_violations"}
    parts = []
    for name in COUNTERS:
        value = getattr(report, name)
        color = "#C44E52" if name in bad and value else "#333"
        parts.append(f'<span class="eda-counter" data-name="{name}" style="margin-right:14px">'
                     f'{html.escape(name.replace("_", " "))}: '
                     f'<b style="color:{color}">{value}</b></span>')
    parts.append(f'<span class="eda-counter" data-name="queued">orders waiting: <b>{queued}</b>'
                 "</span>")
    return '<div class="eda-outbox-counters" style="font-size:13px">' + "".join(parts) + "</div>"


class OutboxVisualizer:
    """The widget. ``.model`` is the :class:`~eda_lab.outbox.pipeline.OrderPipeline` it drives.

    >>> viz = OutboxVisualizer()
    >>> viz.place.click(); viz.run_button.click()
    >>> viz.model.report().committed
    1
    """

    def __init__(self, variant: str = "outbox-polling", *, seed: int = 0, inbox: bool = True):
        if variant not in PIPELINES:
            raise ValueError(f"variant must be one of {tuple(PIPELINES)}, got {variant!r}")
        self.seed = seed
        self.last_step: StepResult | None = None
        self.variant = widgets.Dropdown(options=[(label, key) for key, label in PIPELINES.items()],
                                        value=variant, description="variant")
        self.inbox = widgets.Checkbox(value=inbox, description="consumer uses an inbox")
        self.toggles = {}
        for attribute, (label, _) in FAILURES.items():
            toggle = widgets.ToggleButton(value=False, description=label, icon="bolt",
                                          layout=widgets.Layout(width="auto"))
            setattr(self, attribute, toggle)
            self.toggles[attribute] = toggle
        self.place = styled_button("place order", f"{CSS}-place", "queue one order", "primary")
        self.step_button = styled_button("step", f"{CSS}-step", "one action of one part")
        self.run_button = styled_button("run", f"{CSS}-run",
                                        f"step until nothing is left (at most {RUN_STEPS})")
        self.reset_button = styled_button("reset", f"{CSS}-reset", "start over", "warning")
        controls = {"variant": self.variant, "inbox": self.inbox, "place": self.place,
                    "step": self.step_button, "run": self.run_button,
                    "reset": self.reset_button,
                    **{name.replace("_", "-"): t for name, t in self.toggles.items()}}
        for name, control in controls.items():
            control.add_class("eda-control")
            control.add_class(f"{CSS}-{name}")
        self.status = widgets.HTML()
        self.diagram = widgets.HTML()
        self.counters = widgets.HTML()
        self.tables = widgets.HTML()
        self.log = widgets.HTML()
        for name, view in (("status", self.status), ("diagram", self.diagram),
                           ("counters", self.counters),
                           ("tables", self.tables), ("log", self.log)):
            view.add_class("eda-view")
            view.add_class(f"{CSS}-{name}")
        self.root = widgets.VBox([
            widgets.HBox([self.variant, self.inbox]),
            widgets.HBox(list(self.toggles.values())),
            widgets.HBox([self.place, self.step_button, self.run_button, self.reset_button]),
            self.status, self.diagram, self.counters, self.tables, self.log,
        ])
        self.root.add_class(CSS)
        self.model = self._new_model()
        self.actions = 0
        self.variant.observe(lambda _: self.reset(), names="value")
        self.inbox.observe(lambda _: self.reset(), names="value")
        for toggle in self.toggles.values():
            toggle.observe(lambda _: self._apply_failures(), names="value")
        self.place.on_click(lambda _: self.place_order())
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run())
        self.reset_button.on_click(lambda _: self.reset())
        self.status.value = "ready: place an order, then step or run"
        self.redraw()

    # -- actions -------------------------------------------------------------------------------
    def failures(self) -> dict[str, bool]:
        """The fault plan the toggles describe: each toggled point fires every time."""
        return {FAILURES[name][1]: True for name, t in self.toggles.items() if t.value}

    def _new_model(self) -> OrderPipeline:
        return OrderPipeline(self.variant.value, self.failures(), seed=self.seed,
                             inbox=self.inbox.value, batch_size=1, consumer_batch=1,
                             cleanup="retain")

    def _apply_failures(self) -> None:
        self.model.set_faults(self.failures())
        armed = [FAILURES[name][0] for name, t in self.toggles.items() if t.value]
        self._say("failures armed: " + (", ".join(armed) if armed else "none"))

    def place_order(self) -> None:
        self.model.request_order()
        self._say(f"an order is queued ({self.model.queued} waiting for the service)")

    def step(self) -> StepResult | None:
        step = self.model.step()
        if step is not None:
            self.last_step = step
        self._say(f"step: {step.summary}" if step else
                  "step: nothing to do (place an order first)")
        return step

    def run(self) -> int:
        """Step until nobody has work (or :data:`RUN_STEPS`); returns the steps taken."""
        taken = 0
        while taken < RUN_STEPS:
            step = self.model.step()
            if step is None:
                break
            self.last_step = step
            taken += 1
        self._say(f"run: {taken} steps, then nothing left to do" if taken < RUN_STEPS else
                  f"run: {taken} steps (click run again to go on)")
        return taken

    def reset(self) -> None:
        self.model = self._new_model()
        self.last_step = None
        self._say("reset: a fresh service, relay, broker and consumer")

    def _say(self, what: str) -> None:
        """Report the last action (numbered, so a repeated action still shows) and redraw."""
        self.actions += 1
        self.status.value = f"<b>{self.actions}.</b> {html.escape(what)}"
        self.redraw()

    # -- views ---------------------------------------------------------------------------------
    def redraw(self) -> None:
        model = self.model
        armed = [name for name, toggle in self.toggles.items() if toggle.value]
        self.diagram.value = diagram_html(model, self.last_step, armed)
        self.counters.value = counters_html(model.report(), model.queued)
        self.tables.value = tables_html(model)
        self.log.value = event_log_html(model)

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
