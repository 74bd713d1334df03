"""The Transactional Outbox Visualizer: place orders, break things, move back and forth in time.

Choose how the order service announces orders (naive either way, or the outbox with a polling
or a log-tailing relay). Fault controls say how often they fire (off / once / every time):
the broker down, the service crashing before commit, after commit or after publishing, the
relay crashing after publishing, the consumer crashing before acknowledging. Three buttons
drop, duplicate or delay the next message in flight; two toggles stop and resume the relay
and the consumer. Place orders and step one action at a time, or run until things settle.

Every action goes on a **timeline** (:mod:`eda_lab.widgets.timeline`): the slider, back and
forward and Play move through it, and the state shown at position k is the state after the
first k actions. A **story** menu walks through the classic failures frame by frame.

Views: the diagram (the part that just acted in red, armed faults with a bolt), the checker's
counters and the relay backlog, the live rows of the orders, outbox and inbox tables, the
transaction log and stored offset of the log-tailing relay, and the event log. Each is drawn
by a pure function of the model (:func:`diagram_html`, :func:`counters_html`,
:func:`tables_html`, :func:`txlog_html`, :func:`event_log_html`), so a test can click and read
the HTML.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import replace

import ipywidgets as widgets

from ..db import rows
from ..outbox.checks import ConsistencyReport
from ..outbox.pipeline import PIPELINES, OrderPipeline, StepResult
from ..outbox.table import OFFSETS_TABLE, outbox_rows
from .common import html_table, html_view, styled_button
from .diagram import Edge, Node, render_diagram
from .outbox_model import (
    CRASH_LOOP,
    FAULTS,
    MESSAGE_FAULTS,
    RUN_STEPS,
    STOPPABLE,
    VisualizerPipeline,
    apply,
)
from .timeline import (
    OFF,
    ONCE,
    Action,
    Story,
    StoryFrame,
    StoryPlayer,
    Timeline,
    TimelineControls,
    TimelineFull,
    mode_toggle,
)

CSS = "eda-outbox-visualizer"
# Kept for notebook 03 and older cells: control name -> (label, fault point).
FAILURES = {name: (label, point) for name, (label, point, *_) in FAULTS.items()}
LOG_LINES = 12
TABLE_ROWS = 6
READY = "ready: place an order, then step or run"
DETAIL_WIDTH = 400   # the event log never cuts a detail (it holds positions and offsets)


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


def _armed_marks(armed: Mapping[str, str] | Iterable[str]) -> dict[str, list[str]]:
    """Box id -> the faults armed on it, each with its mode ("relay crash after publish (once)")."""
    modes = dict(armed) if isinstance(armed, Mapping) else dict.fromkeys(armed, "every time")
    marks: dict[str, list[str]] = {}
    for name, mode in modes.items():
        if mode == OFF or name not in FAULTS:
            continue
        label, _, box, _ = FAULTS[name]
        short = label.removeprefix("service ").removeprefix("relay ").removeprefix("consumer ")
        marks.setdefault(box, []).append(f"{short} ({mode})")
    return marks


def diagram_html(model: OrderPipeline, step: StepResult | None = None,
                 armed: Mapping[str, str] | Iterable[str] = ()) -> str:
    """The architecture of the model's variant with the parts of ``step`` highlighted.

    ``armed`` names the faults (keys of :data:`FAULTS`) toggled on, with their modes (a dict
    name -> mode; a plain list means every time): their boxes carry a bolt, the fault's name
    and how often it fires, so a learner sees the trap before stepping into it. A stopped part
    (``model.stopped``) is drawn dashed with "stopped".
    """
    nodes, edges = architecture(model.variant)
    marks = _armed_marks(armed)
    stopped = getattr(model, "stopped", set())
    drawn = []
    for node in nodes:
        if node.id in stopped:
            node = replace(node, detail="stopped (resume it)", muted=True)
        elif node.id in marks:
            node = replace(node, detail="⚡ " + "; ".join(marks[node.id]))
        drawn.append(node)
    active, crashed = active_parts(step)
    title = PIPELINES[model.variant] + (f"  |  {step.summary}" if step else "")
    return render_diagram(drawn, edges, active, crashed, width=720, height=180, title=title)


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
            row["published_at"] = "(see the log)"
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
                   empty="(no inbox)" if model.consumer.inbox is None else "(empty)",
                   width=DETAIL_WIDTH),
    ]
    return ('<div class="eda-outbox-tables" style="display:flex;gap:18px;align-items:flex-start">'
            + "".join(f"<div>{cell}</div>" for cell in cells) + "</div>")


def txlog_html(model: OrderPipeline, n: int = 8) -> str:
    """The log-tailing relay's transaction log (positions) and its stored offset.

    Each committed outbox insert has a position (``lsn``) in the change log; the relay stores
    the last position it published in ``relay_offsets``, in the same database. Rows up to the
    offset are published (green); the rest wait. Empty for the other variants.
    """
    relay = model.relay
    if relay is None or relay.kind != "log-tailing":
        return ""
    db = model.service.db
    offset = relay.offset
    entries = [{"position (lsn)": r[0], "aggregateid": r[1], "type": r[2], "version": r[3],
                "relay": "published" if r[0] <= offset else "waiting"}
               for r in db.execute(f'SELECT lsn, aggregateid, type, version FROM "{relay.log}" '
                                   "ORDER BY lsn").fetchall()]
    shown = entries[-n:]
    highlight = {i: "#DFF0D8" if e["relay"] == "published" else "#FCF3CF"
                 for i, e in enumerate(shown)}
    stored = [{"relay": r[0], "position": r[1]}
              for r in db.execute(f'SELECT relay, position FROM "{OFFSETS_TABLE}"').fetchall()]
    log = html_table(shown, ["position (lsn)", "aggregateid", "type", "version", "relay"],
                     caption=f"transaction log {relay.log} ({len(entries)} entries)",
                     highlight=highlight, empty="(no commits yet)", width=DETAIL_WIDTH)
    offsets = html_table(stored, ["relay", "position"], caption=f"{OFFSETS_TABLE}",
                         empty="(nothing stored yet: position 0)", width=DETAIL_WIDTH)
    note = (f'<div style="font-size:12px;margin-top:4px">stored offset: <b data-name="offset">'
            f"{offset}</b> · backlog: <b>{relay.backlog()}</b> entries after it</div>")
    return ('<div class="eda-outbox-txlog" style="display:flex;gap:18px;align-items:flex-start">'
            f"<div>{log}</div><div>{offsets}{note}</div></div>")


def event_log_html(model: OrderPipeline, n: int = LOG_LINES) -> str:
    """The last ``n`` trace records, details whole; crashes and refusals in red."""
    records = model.trace.tail(n)
    table = [{"t (ms)": f"{r.time:g}", "actor": r.actor, "what": r.kind, "key": r.key or "",
              "event": r.message_type or "", "detail": r.detail} for r in records]
    highlight = {i: "#F8D0D0" for i, r in enumerate(records)
                 if r.kind in ("crash", "unavailable", "duplicate", "down", "drop", "delay")}
    return html_table(table, ["t (ms)", "actor", "what", "key", "event", "detail"],
                      caption="event log (latest last)", highlight=highlight,
                      empty="(nothing yet: place an order, then step)", width=DETAIL_WIDTH)


COUNTERS = ("committed", "lost", "phantom", "duplicate_deliveries", "duplicate_effects",
            "order_violations", "in_flight")


def counters_html(report: ConsistencyReport, queued: int = 0, backlog: int | None = None,
                  lag: int | None = None, stopped: Iterable[str] = ()) -> str:
    """The checker's counts as a row of labelled numbers (bad ones in red), then the relay
    backlog and the consumer lag (with "stopped" beside a stopped part)."""
    bad = {"lost", "phantom", "duplicate_effects", "order_violations"}
    stopped = set(stopped)
    parts = []
    for name in COUNTERS:
        value = getattr(report, name)
        color = "#C44E52" if name in bad and value else "#333"
        parts.append(f'<span class="eda-counter" data-name="{name}" style="margin-right:14px">'
                     f'{html.escape(name.replace("_", " "))}: '
                     f'<b style="color:{color}">{value}</b></span>')
    parts.append(f'<span class="eda-counter" data-name="queued" style="margin-right:14px">'
                 f"orders waiting: <b>{queued}</b></span>")
    for name, label, value, part in (("backlog", "relay backlog", backlog, "relay"),
                                     ("lag", "consumer lag", lag, "consumer")):
        if value is None:
            continue
        down = " (stopped)" if part in stopped else ""
        parts.append(f'<span class="eda-counter" data-name="{name}" style="margin-right:14px">'
                     f"{label}{down}: <b>{value}</b></span>")
    return '<div class="eda-outbox-counters" style="font-size:13px">' + "".join(parts) + "</div>"


def controls_state(model: VisualizerPipeline) -> dict:
    """What the controls must show for this state (when the learner scrubs back to it)."""
    return {"modes": dict(model.modes), "stopped": sorted(model.stopped)}


def render(model: VisualizerPipeline, note: str) -> dict:
    """Every view of the widget for ``model``: the frame the timeline caches."""
    armed = {name: mode for name, mode in model.modes.items() if mode != OFF}
    backlog = model.relay_backlog() if model.relay is not None else None
    return {
        "status": html.escape(note),
        "diagram": diagram_html(model, model.last_step, armed),
        "counters": counters_html(model.report(), model.queued, backlog,
                                  model.consumer.lag(), model.stopped),
        "tables": tables_html(model),
        "txlog": txlog_html(model),
        "log": event_log_html(model),
        "controls": controls_state(model),
    }


# --- the guided stories ------------------------------------------------------------------------

def _f(caption: str, *actions: Action) -> StoryFrame:
    return StoryFrame(caption, tuple(actions))


STEP = ("step",)
STORIES = (
    Story("a zombie record (DB first, then the service crashes)",
          {"variant": "db_then_publish", "inbox": True}, (
              _f("The naive service commits the order, then publishes. We arm one crash right "
                 "after the commit and queue one order.",
                 ("fault", "crash_after_commit", ONCE), ("place",)),
              _f("The service commits order-1 ... and dies before publishing. The order is in "
                 "the orders table; no event will ever announce it: 'lost' is 1.", STEP),
              _f("Nothing is left to do: nobody knows the order exists. That is the zombie "
                 "record. Step shows 'nothing to do'.", STEP),
          )),
    Story("a ghost message (publish first, then the service crashes)",
          {"variant": "publish_then_db", "inbox": True}, (
              _f("The other naive order: publish, then commit. We arm one crash between the "
                 "two and queue one order.", ("fault", "crash_after_publish", ONCE), ("place",)),
              _f("The event is on the broker, and the service died before its commit: the order "
                 "was rolled back.", STEP),
              _f("The consumer receives OrderPlaced for an order that does not exist: "
                 "'phantom' is 1. That is the ghost message.", STEP),
          )),
    Story("the relay crashes after publishing; the inbox drops the duplicate",
          {"variant": "outbox-polling", "inbox": True}, (
              _f("The outbox: one transaction writes the order and its event. We arm one relay "
                 "crash after publishing and queue one order.",
                 ("fault", "relay_crash", ONCE), ("place",)),
              _f("The service commits the order and its outbox row together.", STEP),
              _f("The relay publishes the row ... and crashes before marking it. The row still "
                 "says published_at = -.", STEP),
              _f("The consumer applies the event and records its id in the inbox.", STEP),
              _f("The restarted relay reads the same row again and publishes it again: a "
                 "duplicate on the broker.", STEP),
              _f("The consumer gets it, finds the id in its inbox and drops it: 'duplicate "
                 "deliveries' is 1, 'duplicate effects' stays 0.", STEP),
          )),
    Story("the relay stops: the backlog grows, then drains",
          {"variant": "outbox-polling", "inbox": True}, (
              _f("We stop the relay and queue three orders.", ("stop", "relay"),
                 ("place",), ("place",), ("place",)),
              _f("The service keeps committing: each order and its event are safe in the "
                 "database, and the relay backlog grows to 3. Customers notice nothing.",
                 STEP, STEP, STEP),
              _f("We resume the relay. It starts from what the outbox table says.",
                 ("resume", "relay")),
              _f("It publishes one row per step and the consumer follows: the backlog drains "
                 "to 0 and nothing was lost.", *[STEP] * 6),
          )),
    Story("log tailing: the transaction log and the stored offset",
          {"variant": "outbox-log-tailing", "inbox": True}, (
              _f("The log-tailing relay never queries the outbox table: it follows the log of "
                 "committed inserts from an offset it stores. We queue two orders.",
                 ("place",), ("place",)),
              _f("The service commits order-1: its outbox insert is position 1 of the "
                 "transaction log. The stored offset is still 0, so the relay's backlog is 1.",
                 STEP),
              _f("The relay publishes position 1 and stores offset 1, in the same database.",
                 STEP),
              _f("The consumer applies order-1; the service commits order-2 at position 2. We "
                 "arm one relay crash after publishing.", STEP, STEP,
                 ("fault", "relay_crash", ONCE)),
              _f("The relay publishes position 2 ... and dies before storing the offset: it "
                 "still says 1.", STEP),
              _f("The consumer applies order-2. The restarted relay reads after its stored "
                 "offset, 1: position 2 is published a second time, and offset 2 is stored.",
                 STEP, STEP),
              _f("The consumer finds the duplicate's id in its inbox and drops it: a duplicate "
                 "delivery, no duplicate effect.", STEP),
          )),
)


class OutboxVisualizer:
    """The widget. ``.model`` is the :class:`VisualizerPipeline` it drives (the state at the
    timeline's position); ``.timeline`` the recorded actions.

    >>> viz = OutboxVisualizer()
    >>> viz.place.click(); viz.run_button.click()
    >>> viz.model.report().committed
    1
    >>> viz.timeline_controls.back_button.click()   # one action back: the same, one step less
    >>> viz.timeline.position == len(viz.timeline) - 1
    True
    """

    def __init__(self, variant: str = "outbox-polling", *, seed: int = 0, inbox: bool = True):
        if variant not in PIPELINES:
            raise ValueError(f"variant must be one of {tuple(PIPELINES)}, got {variant!r}")
        self.seed = seed
        self._syncing = False
        self.variant = widgets.Dropdown(options=[(label, key) for key, label in PIPELINES.items()],
                                        value=variant, description="variant",
                                        layout=widgets.Layout(width="360px"))
        self.inbox = widgets.Checkbox(value=inbox, description="consumer uses an inbox")
        self.toggles: dict[str, widgets.ToggleButtons] = {}
        for name, (label, point, _, why) in FAULTS.items():
            toggle = mode_toggle(label, CSS, name.replace("_", "-"), f"{point}: {why}")
            toggle.observe(self._fault_changed(name), "value")
            setattr(self, name, toggle)
            self.toggles[name] = toggle
        self.message_buttons: dict[str, widgets.Button] = {}
        for op, (label, point, what) in MESSAGE_FAULTS.items():
            button = styled_button(f"{label} (once)", f"{CSS}-{op}", f"{point}: {what}")
            button.icon = "bolt"
            button.layout = widgets.Layout(width="auto")
            button.on_click(self._message_clicked(op))
            self.message_buttons[op] = button
        self.stop_toggles: dict[str, widgets.ToggleButton] = {}
        for part in STOPPABLE:
            toggle = widgets.ToggleButton(value=False, description=f"stop the {part}",
                                          icon="pause", layout=widgets.Layout(width="auto"),
                                          tooltip=f"stop the {part} (its work waits); "
                                                  "press again to resume it")
            toggle.observe(self._stop_changed(part), "value")
            self.stop_toggles[part] = toggle
        self.place = styled_button("place order", f"{CSS}-place", "queue one order", "primary")
        self.step_button = styled_button("step", f"{CSS}-step", "one action of one part")
        self.run_button = styled_button("run", f"{CSS}-run",
                                        f"step until nothing is left (at most {RUN_STEPS})")
        self.reset_button = styled_button("reset", f"{CSS}-reset", "start over", "warning")
        controls = {"variant": self.variant, "inbox": self.inbox, "place": self.place,
                    "step": self.step_button, "run": self.run_button,
                    "reset": self.reset_button, **self.message_buttons,
                    **{f"stop-{part}": t for part, t in self.stop_toggles.items()}}
        for name, control in controls.items():
            control.add_class("eda-control")
            control.add_class(f"{CSS}-{name}")
        self.status = html_view(CSS, "status")
        self.diagram = html_view(CSS, "diagram")
        self.counters = html_view(CSS, "counters")
        self.tables = html_view(CSS, "tables")
        self.txlog = html_view(CSS, "txlog")
        self.log = html_view(CSS, "log")
        self.timeline_controls = TimelineControls(CSS, self._moved)
        self.stories = StoryPlayer(CSS, STORIES, self._begin_story, self._act)
        self.error: str | None = None
        self.notice = ""      # a click that changed nothing says so (numbered: repeats show)
        self.clicks = 0
        self.timeline: Timeline[VisualizerPipeline] = Timeline(self._new_model, apply, render,
                                                               seed=seed, start_note=READY)
        fault_rows = list(self.toggles.values())
        self.root = widgets.VBox([
            widgets.HTML("<b>Transactional Outbox Visualizer</b>: choose a variant, arm faults "
                         "(each says how often it fires), place orders, then step, run, or "
                         "move along the timeline."),
            widgets.HBox([self.variant, self.inbox]),
            self.stories.root,
            widgets.HBox([widgets.VBox(fault_rows[:3]), widgets.VBox(fault_rows[3:])],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([*self.message_buttons.values(), *self.stop_toggles.values()],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.place, self.step_button, self.run_button, self.reset_button]),
            self.timeline_controls.root, self.timeline_controls.readout,
            self.status, self.diagram, self.counters, self.tables, self.txlog, self.log,
        ])
        self.root.add_class(CSS)
        self.variant.observe(self._setting_changed, names="value")
        self.inbox.observe(self._setting_changed, names="value")
        self.place.on_click(lambda _: self.place_order())
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run())
        self.reset_button.on_click(lambda _: self.reset())
        self.redraw()

    # -- the model and the timeline ----------------------------------------------------------
    def _new_model(self) -> VisualizerPipeline:
        return VisualizerPipeline(self.variant.value, seed=self.seed, inbox=self.inbox.value)

    @property
    def model(self) -> VisualizerPipeline:
        """The pipeline in the state of the timeline's position."""
        return self.timeline.live()

    @property
    def last_step(self) -> StepResult | None:
        return self.model.last_step

    @property
    def actions(self) -> int:
        """How many actions lead to what is shown (the timeline's position)."""
        return self.timeline.position

    def _say(self, notice: str) -> None:
        """Show what a click that recorded nothing found (it is not on the timeline)."""
        self.clicks += 1
        self.notice = f"{notice} (click {self.clicks})"
        self.redraw()

    def _idle_reason(self) -> str | None:
        """Why no part can act now (None when one can)."""
        model = self.timeline.live()
        if any(model.has_work(a) for a in ("order", "relay", "consumer")):
            return None
        waiting = [a for a in STOPPABLE if OrderPipeline.has_work(model, a)]
        if waiting:
            return f"only the stopped {' and '.join(waiting)} has work: resume it"
        return "nothing to do (place an order first)"

    def _act(self, action: Action, *, render: bool = True) -> str | None:
        """Record ``action`` on the timeline; a refusal is shown, not raised into the page."""
        self.notice = ""
        try:
            note = self.timeline.record(action, render=render)
            self.error = None
            return note
        except (ValueError, TypeError) as error:  # TimelineFull is a ValueError
            self.error = str(error)
            return None
        finally:
            if render:
                self.redraw()

    # -- actions -------------------------------------------------------------------------------
    def failures(self) -> dict[str, str]:
        """The faults armed now: fault point -> its mode (once, every time)."""
        modes = self.model.modes
        return {point: modes[name] for name, (_, point, *_) in FAULTS.items()
                if modes[name] != OFF}

    def _fault_changed(self, name: str):
        def changed(change):
            if not self._syncing:
                self._act(("fault", name, change["new"]))
        return changed

    def _message_clicked(self, op: str):
        return lambda _: self._act(("message", op))

    def _stop_changed(self, part: str):
        def changed(change):
            if not self._syncing:
                self._act(("stop" if change["new"] else "resume", part))
        return changed

    def place_order(self) -> None:
        self._act(("place",))

    def step(self) -> StepResult | None:
        """One action of the next part with work (not recorded when nobody has any)."""
        idle = self._idle_reason()
        if idle is not None:
            self._say(f"step: {idle}")
            return None
        self._act(("step",))
        return self.model.last_step

    def run(self) -> int:
        """Step until nobody has work, a crash loop, or :data:`RUN_STEPS`; the steps taken."""
        taken, why = 0, ""
        idle = self._idle_reason()
        if idle is not None:
            self._say(f"run: {idle}")
            return 0
        try:
            while taken < RUN_STEPS:
                if self._idle_reason() is not None:
                    why = "then nothing left to do"
                    break
                self.timeline.record(("step",), render=False)
                taken += 1
                looping = self.timeline.live().crash_loop()
                if looping is not None:
                    why = (f"stopped: the {looping} crashed {CRASH_LOOP} times in a row, a "
                           "crash loop (its fault fires every time: set it to once or off)")
                    break
            else:
                why = "click run again to go on"
            self.error = None
        except TimelineFull as error:
            self.error = str(error)
        if taken:
            self.timeline.annotate(f"run: {taken} step(s), {why} · the last: "
                                   f"{self.timeline.note}")
        self.redraw()
        return taken

    def reset(self) -> None:
        """A fresh service, relay, broker and consumer; the timeline starts again."""
        self.timeline.reset(self._new_model)
        if self.stories.story is not None:
            self.stories.stop()
        self._say("reset: a fresh service, relay, broker and consumer; faults off")

    def _setting_changed(self, _change) -> None:
        if not self._syncing:
            self.reset()

    def _begin_story(self, story: Story) -> None:
        self._syncing = True
        try:
            self.variant.value = story.setup.get("variant", self.variant.value)
            self.inbox.value = story.setup.get("inbox", self.inbox.value)
        finally:
            self._syncing = False
        self.timeline.reset(note=f"story: {story.title}")
        self.redraw()

    def _moved(self, position: int) -> None:
        self.notice = ""
        self.timeline.goto(position)
        self.redraw()

    # -- views ---------------------------------------------------------------------------------
    def redraw(self) -> None:
        """Show the frame of the timeline's position and put the controls in its state."""
        frame = self.timeline.frame
        timeline = self.timeline
        number = f"<b>{timeline.position}.</b> " if timeline.position else ""
        status = f"{number}{frame['status']}"
        if self.notice:
            status = f"<b>{html.escape(self.notice)}</b> · shown: {status}"
        if self.error:
            status = f'<span style="color:#C44E52"><b>refused:</b> {html.escape(self.error)}</span> · ' + status
        self.status.value = status
        for name in ("diagram", "counters", "tables", "txlog", "log"):
            getattr(self, name).value = frame[name]
        self.timeline_controls.show(timeline)
        self._syncing = True
        try:
            for name, mode in frame["controls"]["modes"].items():
                self.toggles[name].value = mode
            for part, toggle in self.stop_toggles.items():
                stopped = part in frame["controls"]["stopped"]
                toggle.value = stopped
                toggle.description = f"resume the {part}" if stopped else f"stop the {part}"
                toggle.icon = "play" if stopped else "pause"
        finally:
            self._syncing = False

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
