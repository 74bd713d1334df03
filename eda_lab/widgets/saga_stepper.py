"""The Saga Orchestrator Stepper: say what each step and compensation does, break things, and
move back and forth through the saga.

Controls, each saying how often it fires: per step succeed / fail once / fail every time /
time out once; per compensation succeed / fail once / fail every time (every time exhausts the
retries: ``needs_attention``); a crash of the orchestrator (once, at a chosen moment); a crash
of one participant in its next local transaction (once); stop and resume each participant; a
second saga for the same order (the semantic lock refuses it); drop, duplicate or delay the
next message in flight (once). Step, Run and Reset; a
timeline (:mod:`eda_lab.widgets.timeline`) to scrub, step back and play; stories.

Views: the status with the "do the services agree?" readout and how long they disagreed in
simulated ms; the steps as boxes per saga, each saying what will happen and what happened;
the saga log; each service's data; the messages as a sequence diagram. Every view is drawn by
a pure function of what the model reads from the databases and the trace (``boxes_html``,
``log_html``, ``data_html``, ``status_html``, ``sequence_html``), so a test can check that the
boxes agree with the saga log without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets

from ..charts import STATE_COLORS
from ..saga.charts import saga_timeline
from ..saga.participants import SUCCEED
from ..saga.stepper import (
    COMPENSATION_OUTCOMES,
    CRASH_CHOICES,
    MESSAGE_FAULTS,
    NO_CRASH,
    PARTICIPANT_CRASHES,
    STEP_OUTCOMES,
    SagaStepperModel,
)
from ..trace import TraceRecord
from .common import html_table, html_view, styled_button
from .timeline import Action, Story, StoryFrame, StoryPlayer, Timeline, TimelineControls

ROOT_CLASS = "eda-saga-stepper"
_LOG_COLUMNS = ("seq", "time_ms", "transition", "step", "attempt", "detail")
_STATUS_COLORS = {status: STATE_COLORS[status] for status in (
    "running", "compensating", "completed", "compensated", "needs_attention")}
NOBODY = "nobody"
READY = "ready: press Step, Run, or choose a story"
RUN_STEPS = 120      # one click of Run: the saga and its retries, still a fast click
SEQUENCE_ROWS = 22   # messages shown in the sequence diagram (the latest)
_RAN = {"done", "failed", "compensated", "compensating", "needs_attention"}
# The in-flight message buttons: what each says it does (once).
MESSAGE_LABELS = {"drop": "drop the next delivery", "duplicate": "duplicate the next delivery",
                  "delay": "delay the next message sent"}


def _box(box: Mapping[str, str]) -> str:
    state = box["state"]
    lines = []
    if state == "pending" or state == "running":
        if box["outcome"] != SUCCEED:
            lines.append(f'<div style="font-size:11px;color:#A33">will: {html.escape(box["outcome"])}'
                         "</div>")
    if box.get("has_compensation") and box.get("compensation", SUCCEED) != SUCCEED \
            and state != "compensated":
        lines.append(f'<div style="font-size:11px;color:#A33">undo will: '
                     f'{html.escape(box["compensation"])}</div>')
    if box.get("happened"):
        lines.append(f'<div class="eda-saga-happened" style="font-size:11px;color:#333">did: '
                     f'{html.escape(box["happened"])}</div>')
    return (f'<div class="eda-saga-box" data-step="{html.escape(box["step"])}" '
            f'data-state="{html.escape(state)}" '
            f'style="background:{STATE_COLORS.get(state, "#fff")};'
            'border:1px solid #777;border-radius:6px;padding:6px 8px;width:150px">'
            f'<div style="font-weight:bold">{html.escape(box["step"])}</div>'
            f'<div style="font-size:11px">{html.escape(box["participant"])} · '
            f'{html.escape(box["kind"])}</div>'
            f'<div style="font-size:12px;margin-top:3px">{html.escape(state.replace("_", " "))}'
            f'</div>{"".join(lines)}</div>')


def boxes_html(boxes: Sequence[Mapping[str, str]] | Mapping[str, Sequence[Mapping[str, str]]]
               ) -> str:
    """The steps as coloured boxes, left to right (``model.boxes()``); given a dict saga id ->
    boxes, one row per saga. A box says what its toggles will do (until it ran) and what its
    last logged transition was."""
    sagas = boxes if isinstance(boxes, Mapping) else {"": boxes}
    parts = ['<div class="eda-saga-boxes">']
    for saga_id, row in sagas.items():
        parts.append('<div style="display:flex;gap:6px;flex-wrap:wrap;align-items:stretch;'
                     f'margin-bottom:4px" data-saga="{html.escape(saga_id)}">')
        if saga_id:
            parts.append(f'<div style="width:70px;font-size:12px;font-weight:bold">'
                         f"{html.escape(saga_id)}</div>")
        parts.extend(_box(box) for box in row)
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def log_html(rows: Sequence[Mapping], last: int = 14) -> str:
    """The saga log of the saga (read from the database), the latest rows last."""
    shown = list(rows)[-last:]
    caption = f"saga log ({len(rows)} transitions" + (f", last {last})" if len(rows) > last
                                                       else ")")
    return html_table(shown, _LOG_COLUMNS, caption=caption, empty="(nothing recorded yet)",
                      width=90)


def data_html(data: Mapping[str, Mapping[str, Sequence[Mapping]]]) -> str:
    """Each service's tables, read from that service's own database."""
    parts = ['<div style="display:flex;gap:14px;flex-wrap:wrap;align-items:flex-start">']
    for service, tables in data.items():
        parts.append(f'<div class="eda-saga-service" data-service="{html.escape(service)}">')
        for name, rows in tables.items():
            parts.append(html_table(rows, caption=f"{service}: {name}", empty="(no rows)"))
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


def agreement_html(agreement: Mapping[str, object], saga_id: str) -> str:
    """The "do the services agree yet?" readout of one saga."""
    agree, ms = agreement["agree"], float(agreement["disagreed_ms"])
    if agree:
        text = ("yes" if ms == 0 else f"yes · they disagreed for {ms:g} ms of simulated time")
        color = "#DFF0D8"
    else:
        text = f"not yet · disagreeing for {ms:g} ms so far"
        color = "#FCF3CF"
    return (f'<span class="eda-saga-agreement" data-saga="{html.escape(saga_id)}" '
            f'data-agree="{str(agree).lower()}" style="background:{color};padding:2px 8px;'
            f'border-radius:4px;margin-left:6px">{html.escape(saga_id)}: all services agree? '
            f"<b>{html.escape(text)}</b></span>")


def status_html(model: SagaStepperModel) -> str:
    """Each saga's status, the clock, what is armed or stopped, whether the services agree,
    and what the last step did."""
    runner = model.runner
    heads = []
    for saga_id in model.saga_ids:
        status = runner.status(saga_id) or "not started"
        color = _STATUS_COLORS.get(status, "#EEE")
        heads.append(f'<span style="background:{color};padding:2px 8px;border-radius:4px">'
                     f"{html.escape(saga_id)}: <b>{html.escape(status)}</b></span>")
    armed = []
    if model.crash != NO_CRASH:
        armed.append(f"orchestrator crash armed (once): {model.crash}")
    if model.participant_crash is not None:
        who, moment = model.participant_crash
        armed.append(f"{who} crash armed (once): {moment}")
    if runner.orchestrator is None:
        armed.append("orchestrator down (restarting)")
    for fault in model.armed_messages:
        armed.append(f"armed (once): {MESSAGE_LABELS[fault]}")
    if model.stopped:
        armed.append("stopped: " + ", ".join(sorted(model.stopped)))
    warn = "".join(f' · <b style="color:#C44E52">{html.escape(a)}</b>' for a in armed)
    head = f"<div>{' '.join(heads)} · t = {runner.clock.now:g} ms{warn}</div>"
    agree = "".join(agreement_html(model.agreement(s), s) for s in model.saga_ids)
    if model.waiting_for_resume:
        lines = ["(nothing happens until you resume " + ", ".join(sorted(model.stopped)) + ")"]
    else:
        lines = model.lines() or (["(finished: reset, or scrub the timeline back)"]
                                  if model.finished else ["(nothing yet: press Step)"])
    body = "".join(f"<div>{html.escape(line)}</div>" for line in lines[-12:])
    return (f'{head}<div style="margin-top:4px">{agree}</div>'
            f'<div style="font-family:monospace;font-size:12px;margin-top:4px">{body}</div>')


def _lanes(records: Sequence[TraceRecord], lanes: Sequence[str]) -> list[tuple]:
    """(sender, receiver, label, time, colour) for each message and crash, in order."""
    out = []
    for record in records:
        if record.kind == "publish" and record.topic:
            service, _, channel = record.topic.partition(".")
            if service not in lanes:
                continue
            sender, receiver = (("orchestrator", service) if channel == "commands"
                                else (service, "orchestrator"))
            failed = "Failed" in (record.message_type or "")
            out.append((sender, receiver, record.message_type or "", record.time,
                        "#C44E52" if failed else "#333"))
        elif record.kind in ("drop", "duplicate", "delay") and record.topic:
            service, _, channel = record.topic.partition(".")
            if service not in lanes:
                continue
            sender, receiver = (("orchestrator", service) if channel == "commands"
                                else (service, "orchestrator"))
            mark = {"drop": "✖ dropped", "duplicate": "⧉ duplicated", "delay": "⏳ delayed"}
            out.append((sender, receiver, f"{mark[record.kind]}: {record.message_type or ''}",
                        record.time, "#DD8452"))
        elif record.kind in ("crash", "restart", "down", "lost") and record.actor in lanes:
            label = {"crash": "✖ crash", "restart": "↻ back", "down": "stopped",
                     "lost": "reply lost"}[record.kind]
            out.append((record.actor, record.actor, label, record.time, "#C44E52"))
    return out


def sequence_html(records: Sequence[TraceRecord], participants: Sequence[str],
                  rows: int = SEQUENCE_ROWS) -> str:
    """The messages as a sequence diagram (SVG): one lane per service, one arrow per message,
    time going down; the latest ``rows`` messages. A pure function of the trace."""
    lanes = ["orchestrator", *participants]
    items = _lanes(records, lanes)
    skipped = max(0, len(items) - rows)
    items = items[skipped:]
    lane_x = {name: 130 + i * 130 for i, name in enumerate(lanes)}
    width = 130 * len(lanes) + 80
    height = 40 + 20 * max(1, len(items))
    parts = [f'<svg class="eda-saga-sequence" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}"><defs><marker id="eda-seq-arrow" '
             'viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" '
             'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/>'
             "</marker></defs>"]
    for name, x in lane_x.items():
        parts.append(f'<text x="{x}" y="14" font-size="12" font-weight="bold" '
                     f'text-anchor="middle" font-family="sans-serif">{html.escape(name)}</text>'
                     f'<line x1="{x}" y1="20" x2="{x}" y2="{height}" stroke="#BBB" '
                     'stroke-dasharray="3 3"/>')
    if skipped:
        parts.append(f'<text x="8" y="30" font-size="10" fill="#888" font-family="sans-serif">'
                     f"({skipped} earlier)</text>")
    for i, (sender, receiver, label, time, color) in enumerate(items):
        y = 34 + 20 * i
        parts.append(f'<text x="8" y="{y + 4}" font-size="10" fill="#666" '
                     f'font-family="sans-serif">{time:g} ms</text>')
        if sender == receiver:
            x = lane_x[sender]
            parts.append(f'<text x="{x}" y="{y + 4}" font-size="11" fill="{color}" '
                         'text-anchor="middle" font-family="sans-serif" font-weight="bold">'
                         f"{html.escape(label)}</text>")
            continue
        x1, x2 = lane_x[sender], lane_x[receiver]
        shrink = 4 if x2 > x1 else -4
        parts.append(f'<line x1="{x1}" y1="{y}" x2="{x2 - shrink}" y2="{y}" stroke="{color}" '
                     'stroke-width="1.3" marker-end="url(#eda-seq-arrow)"/>'
                     f'<text x="{(x1 + x2) / 2}" y="{y - 3}" font-size="10" fill="{color}" '
                     f'text-anchor="middle" font-family="sans-serif">{html.escape(label)}</text>')
    if not items:
        parts.append('<text x="12" y="40" font-size="11" fill="#888" '
                     'font-family="sans-serif">(no messages yet: press Step)</text>')
    parts.append("</svg>")
    return "".join(parts)


def timeline_figure(model: SagaStepperModel):
    """The messages so far as a matplotlib sequence diagram (the notebook's static fallback)."""
    return saga_timeline(model.runner.trace.frame()).figure


# --- recorded actions ----------------------------------------------------------------------------

def apply(model: SagaStepperModel, action: Action) -> str:
    """Perform one recorded action on ``model``; what happened, in one sentence.

    A malformed or refused action raises ``ValueError`` before anything changes."""
    kind, *args = action
    if kind == "step":
        records = model.step()
        if not records:
            return ("step: nothing happens until you resume " + ", ".join(sorted(model.stopped))
                    if model.waiting_for_resume else "step: nothing left to happen")
        lines = model.lines()
        return "step: " + (lines[-1] if lines else f"{len(records)} record(s)")
    if kind == "until":
        (goal,) = args
        taken = 0
        while taken < RUN_STEPS and not reached(model, goal):
            if model.finished or model.waiting_for_resume or not model.step():
                break
            taken += 1
        return f"{taken} step(s) until {goal}" + ("" if reached(model, goal) else " (not reached)")
    if kind == "outcome":
        step, outcome = args
        model.set_outcome(step, outcome)
        return f"{step} will {outcome} when its command arrives"
    if kind == "compensation":
        step, outcome = args
        model.set_compensation(step, outcome)
        return f"the compensation of {step} will {outcome}"
    if kind == "crash":
        (choice,) = args
        model.set_crash(choice)
        return ("orchestrator crash disarmed" if choice == NO_CRASH else
                f"the orchestrator crashes once, {choice}, at its next reaction")
    if kind == "participant_crash":
        participant, moment = args
        if participant == NOBODY:
            for point in PARTICIPANT_CRASHES.values():
                model.faults.arm_actor(point, None)
            model.participant_crash = None
            return "no participant crash armed"
        model.crash_participant(participant, moment)
        return f"{participant} crashes once, {moment}, in its next local transaction"
    if kind == "stop":
        (participant,) = args
        model.stop(participant)
        return f"{participant} stopped: its commands wait in the broker"
    if kind == "resume":
        (participant,) = args
        model.resume(participant)
        return f"{participant} resumed: it takes the commands that waited"
    if kind == "message":
        if len(args) != 1 or args[0] not in MESSAGE_FAULTS:
            raise ValueError(f"message action must be one of {list(MESSAGE_FAULTS)}, got {args!r}")
        model.arm_message(args[0])
        return f"armed once: {MESSAGE_FAULTS[args[0]][1]}"
    if kind == "second":
        saga_id = model.start_second_saga()
        return f"a second saga for the same order: {saga_id}"
    raise ValueError(f"action must start with one of 'step', 'outcome', 'compensation', "
                     f"'crash', 'participant_crash', 'stop', 'resume', 'message', 'second'; "
                     f"got {action!r}")


def reached(model: SagaStepperModel, goal: str) -> bool:
    """Has ``goal`` happened: a saga's status, a transition in a saga log, or a trace record's
    kind or message type (``"compensated"``, ``"step_failed"``, ``"crash"``, ``"OrderCreated"``)?
    What a story's ``("until", goal)`` frame steps to."""
    runner = model.runner
    if any(runner.status(s) == goal for s in model.saga_ids):
        return True
    if any(row["transition"] == goal for s in model.saga_ids for row in model.log_rows(s)):
        return True
    return any(r.kind == goal or r.message_type == goal for r in runner.trace)


def render(model: SagaStepperModel, note: str) -> dict:
    """Every view for ``model``: the frame the timeline caches."""
    trace = model.runner.trace
    return {
        "note": note,
        "status": status_html(model),
        "steps": boxes_html({s: model.boxes(s) for s in model.saga_ids}),
        "log": log_html(model.log_rows()),
        "data": data_html(model.data()),
        "sequence": sequence_html(trace.tail(min(len(trace), 400)),
                                  list(model.runner.participants)),
        "controls": {"outcomes": dict(model.outcomes),
                     "compensations": dict(model.compensations),
                     "crash": model.crash,
                     "participant_crash": model.participant_crash,
                     "stopped": sorted(model.stopped),
                     "messages": sorted(model.armed_messages)},
    }


def _f(caption: str, *actions: Action) -> StoryFrame:
    return StoryFrame(caption, tuple(actions))


STEP = ("step",)
STORIES = (
    Story("payment declined: the compensations run in reverse", {}, (
        _f("The pivot, authorize_payment, will fail once: the card is declined.",
           ("outcome", "authorize_payment", "fail once")),
        _f("The orchestrator sends CreatePendingOrder; the order service creates the order as "
           "PENDING (the semantic lock) and replies. The services disagree from now on: an "
           "order waits for stock and payment.", ("until", "OrderCreated")),
        _f("Inventory reserves the books and replies.", ("until", "InventoryReserved")),
        _f("Payment refuses. A failed pivot turns the saga back: the log says which steps it "
           "will undo, last first.", ("until", "step_failed")),
        _f("The first compensation is ReleaseInventory, the last step done ...",
           ("until", "compensation_succeeded")),
        _f("... then RejectOrder, and the saga is compensated: every service agrees again. The "
           "readout says for how long they disagreed.", ("until", "compensated")),
    )),
    Story("the orchestrator crashes and recovers from its log", {}, (
        _f("We arm one crash of the orchestrator just after it records a transition, before "
           "it sends the command.", ("crash", "after record")),
        _f("The orchestrator takes the first reply, records the next step ... and dies. Its "
           "memory and its timers are gone; the saga log is safe in its database.",
           ("until", "crash")),
        _f("A new orchestrator starts, reads the log and sends again the command it had "
           "recorded but not sent.", ("until", "resumed")),
        _f("The saga carries on to the end: completed, as if nothing had happened.",
           ("until", "completed")),
    )),
    Story("a compensation that fails every time: needs attention", {}, (
        _f("Payment will fail once, and releasing the stock will fail every time.",
           ("outcome", "authorize_payment", "fail once"),
           ("compensation", "reserve_inventory", "fail every time")),
        _f("The saga runs forward to the pivot, which refuses.", ("until", "step_failed")),
        _f("ReleaseInventory fails; the orchestrator retries it after a backoff ...",
           ("until", "compensation_failed")),
        _f("... and after its last attempt gives up: needs_attention. A person must look: the "
           "services still disagree, and the readout keeps counting.",
           ("until", "needs_attention")),
    )),
    Story("a second saga for the same order meets the semantic lock", {}, (
        _f("The first saga creates the order as PENDING.", ("until", "OrderCreated")),
        _f("A second saga for the same order starts while the first holds it.", ("second",)),
        _f("The order service refuses the second CreatePendingOrder (the order is pending in "
           "saga-0001): the second saga had done nothing, so it is compensated at once.",
           ("until", "compensated")),
        _f("The first saga completes, untouched.", ("until", "completed")),
    )),
    Story("a participant stops: its commands wait, the deadline runs", {}, (
        _f("We stop shipping. The saga runs up to the pivot as usual, and ScheduleShipping "
           "waits in the broker.", ("stop", "shipping"), ("until", "ScheduleShipping")),
        _f("The orchestrator's reply timeout passes: a step after the pivot is sent again "
           "later, never compensated.", ("until", "step_timed_out")),
        _f("We resume shipping: it takes the commands that waited (the second is a duplicate, "
           "answered with the stored reply), and the saga completes.", ("resume", "shipping"),
           ("until", "completed")),
    )),
)


class SagaOrchestratorStepper:
    """The widget: ``SagaOrchestratorStepper()`` in a cell shows it; ``.model`` is the state at
    the timeline's position, ``.timeline`` the recorded actions.

    ``outcomes`` preset the step toggles (``{"authorize_payment": "fail once"}``),
    ``compensations`` the compensation toggles; other keyword arguments go to
    :class:`~eda_lab.saga.stepper.SagaStepperModel`.
    """

    def __init__(self, model: SagaStepperModel | None = None, **model_options):
        if model is not None and model_options:
            raise ValueError("pass a model or model options, not both")
        first = model if model is not None else SagaStepperModel(**model_options)
        self._base = {"definition": first.definition, "order": first.order,
                      "outcomes": dict(first.outcomes),
                      "compensations": dict(first.compensations), **first.runner_options}
        self._first: SagaStepperModel | None = first
        self.definition = first.definition
        self._syncing = False
        self.error: str | None = None
        self.notice = ""
        self.clicks = 0
        self.outcome_toggles: dict[str, widgets.ToggleButtons] = {}
        toggle_boxes = []
        for step in self.definition.steps:
            toggle = widgets.ToggleButtons(
                options=list(STEP_OUTCOMES), value=first.outcomes[step.name],
                tooltips=[f"{step.participant} {o} with {step.action}" for o in STEP_OUTCOMES],
                style={"button_width": "118px"})
            self._control(toggle, "outcome", f"outcome-{step.name.replace('_', '-')}")
            toggle.observe(self._changed(lambda v, s=step.name: ("outcome", s, v)), "value")
            self.outcome_toggles[step.name] = toggle
            label = widgets.HTML(f"<b>{html.escape(step.name)}</b> "
                                 f"<small>({html.escape(step.kind)}, {html.escape(step.action)})"
                                 "</small>", layout=widgets.Layout(width="330px"))
            toggle_boxes.append(widgets.HBox([label, toggle]))
        self.compensation_toggles: dict[str, widgets.ToggleButtons] = {}
        compensation_boxes = []
        for step in self.definition.steps:
            if not step.compensation:
                continue
            toggle = widgets.ToggleButtons(
                options=list(COMPENSATION_OUTCOMES), value=first.compensations[step.name],
                tooltips=[f"{step.compensation}: {o}" for o in COMPENSATION_OUTCOMES],
                style={"button_width": "118px"})
            self._control(toggle, "compensation",
                          f"compensation-{step.name.replace('_', '-')}")
            toggle.observe(self._changed(lambda v, s=step.name: ("compensation", s, v)),
                           "value")
            self.compensation_toggles[step.name] = toggle
            label = widgets.HTML(f"undo <b>{html.escape(step.name)}</b> "
                                 f"<small>({html.escape(step.compensation)})</small>",
                                 layout=widgets.Layout(width="330px"))
            compensation_boxes.append(widgets.HBox([label, toggle]))
        self.crash_toggle = widgets.ToggleButtons(
            options=list(CRASH_CHOICES), value=first.crash,
            description="orchestrator crash (once):", style={"button_width": "100px",
                                                            "description_width": "170px"},
            tooltips=["the orchestrator does not crash",
                      "crash on taking the next reply, before recording anything",
                      "crash after recording the next transition, before sending",
                      "crash after sending, before committing the reply"])
        self._control(self.crash_toggle, "crash")
        self.crash_toggle.observe(self._changed(lambda v: ("crash", v)), "value")
        participants = list(first.runner.participants)
        self.participant_crash = widgets.ToggleButtons(
            options=[NOBODY, *participants], value=NOBODY,
            description="participant crash (once):",
            style={"button_width": "80px", "description_width": "170px"},
            tooltips=["no participant crashes", *(f"{p} crashes in its next local transaction"
                                                  for p in participants)])
        self._control(self.participant_crash, "participant-crash")
        self.crash_moment = widgets.Dropdown(options=list(PARTICIPANT_CRASHES),
                                             value="before commit", description="when",
                                             layout=widgets.Layout(width="220px"))
        self._control(self.crash_moment, "crash-moment")
        self.participant_crash.observe(self._participant_crash_changed, "value")
        self.crash_moment.observe(self._participant_crash_changed, "value")
        self.stop_toggles: dict[str, widgets.ToggleButton] = {}
        for participant in participants:
            toggle = widgets.ToggleButton(value=False, description=f"stop {participant}",
                                          icon="pause", layout=widgets.Layout(width="auto"),
                                          tooltip=f"take {participant} down until you resume "
                                                  "it (its commands wait in the broker)")
            self._control(toggle, f"stop-{participant}")
            toggle.observe(self._stop_changed(participant), "value")
            self.stop_toggles[participant] = toggle
        self.message_buttons: dict[str, widgets.Button] = {}
        for fault, (point, what) in MESSAGE_FAULTS.items():
            button = styled_button(f"{MESSAGE_LABELS[fault]} (once)", f"{ROOT_CLASS}-{fault}",
                                   f"{point}: {what}")
            button.icon = "bolt"
            button.layout = widgets.Layout(width="auto")
            button.add_class("eda-control")
            button.on_click(lambda _b, f=fault: self._act(("message", f)))
            self.message_buttons[fault] = button
        self.second_button = styled_button("second saga, same order", f"{ROOT_CLASS}-second",
                                           "start another saga for this order now (the "
                                           "semantic lock)")
        self.second_button.layout = widgets.Layout(width="auto")
        self.step_button = styled_button("Step", f"{ROOT_CLASS}-step",
                                         "advance to the next message or transition", "primary")
        self.run_button = styled_button("Run", f"{ROOT_CLASS}-run",
                                        f"step until the sagas end (at most {RUN_STEPS} steps)")
        self.reset_button = styled_button("Reset", f"{ROOT_CLASS}-reset",
                                          "a fresh shop and a fresh saga, toggles as at the "
                                          "start", "warning")
        for button, action in ((self.second_button, lambda: self._act(("second",))),
                               (self.step_button, self.step), (self.run_button, self.run),
                               (self.reset_button, self.reset)):
            button.add_class("eda-control")
            button.on_click(lambda _b, a=action: a())
        self.status_view = html_view(ROOT_CLASS, "status")
        self.boxes_view = html_view(ROOT_CLASS, "steps")
        self.log_view = html_view(ROOT_CLASS, "log")
        self.data_view = html_view(ROOT_CLASS, "data")
        self.sequence_view = html_view(ROOT_CLASS, "sequence")
        self.timeline_controls = TimelineControls(ROOT_CLASS, self._moved)
        self.stories = StoryPlayer(ROOT_CLASS, STORIES, self._begin_story, self._act)
        self.timeline: Timeline[SagaStepperModel] = Timeline(self._new_model, apply, render,
                                                             start_note=READY)
        self.root = widgets.VBox([
            widgets.HTML("<b>Saga Orchestrator Stepper</b>: choose what each step and each "
                         "compensation does (the mode is on the button), arm a crash or stop a "
                         "service, then Step, Run, or move along the timeline."),
            self.stories.root,
            widgets.VBox(toggle_boxes), widgets.VBox(compensation_boxes),
            self.crash_toggle, widgets.HBox([self.participant_crash, self.crash_moment]),
            widgets.HBox([*self.stop_toggles.values(), self.second_button],
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox(list(self.message_buttons.values()),
                         layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.step_button, self.run_button, self.reset_button]),
            self.timeline_controls.root, self.timeline_controls.readout,
            self.status_view, self.boxes_view,
            widgets.HBox([self.log_view, self.data_view],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.sequence_view,
        ])
        self.root.add_class(ROOT_CLASS)
        self.redraw()

    def _control(self, control, *names: str) -> None:
        control.add_class("eda-control")
        for name in names:
            control.add_class(f"{ROOT_CLASS}-{name}")

    # -- the model and the timeline ----------------------------------------------------------
    def _new_model(self) -> SagaStepperModel:
        if self._first is not None:   # the model given (or made) at construction, once
            model, self._first = self._first, None
            return model
        return SagaStepperModel(**self._base)

    @property
    def model(self) -> SagaStepperModel:
        """The saga model in the state of the timeline's position."""
        return self.timeline.live()

    def _act(self, action: Action, *, render: bool = True) -> str | None:
        self.notice = ""
        try:
            note = self.timeline.record(action, render=render)
            self.error = None
            return note
        except (ValueError, TypeError) as error:
            self.error = f"{type(error).__name__}: {error}"
            return None
        finally:
            if render:
                self.redraw()

    def _say(self, notice: str) -> None:
        self.clicks += 1
        self.notice = f"{notice} (click {self.clicks})"
        self.redraw()

    def _changed(self, action_of):
        def changed(change):
            if not self._syncing:
                self._act(action_of(change["new"]))
        return changed

    def _participant_crash_changed(self, _change) -> None:
        if not self._syncing:
            self._act(("participant_crash", self.participant_crash.value,
                       self.crash_moment.value))

    def _stop_changed(self, participant: str):
        def changed(change):
            if not self._syncing:
                self._act(("stop" if change["new"] else "resume", participant))
        return changed

    def step(self) -> None:
        """Advance one thing (not recorded when nothing is left to happen)."""
        model = self.timeline.live()
        if model.finished or model.waiting_for_resume:
            self._say("step: " + ("nothing happens until you resume "
                                  + ", ".join(sorted(model.stopped))
                                  if model.waiting_for_resume else "the sagas are finished"))
            return
        self._act(("step",))

    def run(self) -> int:
        """Step until the sagas end, a stopped participant holds them up, or RUN_STEPS."""
        taken = 0
        try:
            while taken < RUN_STEPS:
                model = self.timeline.live()
                if model.finished or model.waiting_for_resume:
                    break
                self.timeline.record(("step",), render=False)
                taken += 1
            self.error = None
        except ValueError as error:
            self.error = str(error)
        if taken:
            model = self.timeline.live()
            why = ("finished" if model.finished else
                   "waiting for you to resume " + ", ".join(sorted(model.stopped))
                   if model.waiting_for_resume else "click Run again to go on")
            self.timeline.annotate(f"run: {taken} step(s), {why}")
            self.redraw()
        else:
            self._say("run: nothing left to happen")
        return taken

    def reset(self) -> None:
        """A fresh shop and saga, the toggles as they were at the start; a new timeline."""
        self.timeline.reset(self._new_model)
        if self.stories.story is not None:
            self.stories.stop()
        self._say("reset: a fresh shop and a fresh saga")

    def _begin_story(self, story: Story) -> None:
        self.timeline.reset(lambda: SagaStepperModel(**{**self._base, **story.setup}),
                            note=f"story: {story.title}")
        self.redraw()

    def _moved(self, position: int) -> None:
        self.notice = ""
        self.timeline.goto(position)
        self.redraw()

    # -- drawing --------------------------------------------------------------------------
    def redraw(self) -> None:
        """Show the frame of the timeline's position; put the controls in its state."""
        timeline = self.timeline
        frame = timeline.frame
        head = (f"<b>{timeline.position}.</b> " if timeline.position else "") + html.escape(
            frame["note"])
        if self.notice:
            head = f"<b>{html.escape(self.notice)}</b> · shown: {head}"
        if self.error:
            head = (f'<span style="color:#C44E52"><b>refused:</b> {html.escape(self.error)}'
                    f"</span> · {head}")
        self.status_view.value = f'<div style="margin-bottom:3px">{head}</div>{frame["status"]}'
        self.boxes_view.value = frame["steps"]
        self.log_view.value = frame["log"]
        self.data_view.value = frame["data"]
        self.sequence_view.value = frame["sequence"]
        self.timeline_controls.show(timeline)
        controls = frame["controls"]
        self._syncing = True
        try:
            for step, value in controls["outcomes"].items():
                self.outcome_toggles[step].value = value
            for step, value in controls["compensations"].items():
                self.compensation_toggles[step].value = value
            self.crash_toggle.value = controls["crash"]   # a fired crash disarms itself
            crash = controls["participant_crash"]
            self.participant_crash.value = NOBODY if crash is None else crash[0]
            for participant, toggle in self.stop_toggles.items():
                stopped = participant in controls["stopped"]
                toggle.value = stopped
                toggle.description = f"{'resume' if stopped else 'stop'} {participant}"
                toggle.icon = "play" if stopped else "pause"
        finally:
            self._syncing = False

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
