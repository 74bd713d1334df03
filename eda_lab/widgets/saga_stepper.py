"""The Saga Orchestrator Stepper: toggle what each step does, then step through the saga.

Controls: one toggle per step (succeed / fail / time out), a toggle that arms a crash of the
orchestrator, and Step, Run and Reset buttons. Views: the steps as boxes coloured by state,
the saga log as a table, each service's data, and the messages as a sequence diagram.

Every view is drawn by a pure function of what the model reads from the databases and the
trace (``boxes_html``, ``log_html``, ``data_html``, ``timeline_figure``), so a test can check
that the boxes agree with the saga log without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets

from ..charts import STATE_COLORS
from ..saga.charts import saga_timeline
from ..saga.participants import OUTCOMES
from ..saga.stepper import CRASH_CHOICES, NO_CRASH, SagaStepperModel
from .common import html_table, html_view, image_widget, show_figure, styled_button

ROOT_CLASS = "eda-saga-stepper"
_LOG_COLUMNS = ("seq", "time_ms", "transition", "step", "attempt", "detail")
_STATUS_COLORS = {status: STATE_COLORS[status] for status in (
    "running", "compensating", "completed", "compensated", "needs_attention")}


def boxes_html(boxes: Sequence[Mapping[str, str]]) -> str:
    """The steps as coloured boxes, left to right (``model.boxes()``)."""
    parts = ['<div class="eda-saga-boxes" style="display:flex;gap:6px;flex-wrap:wrap">']
    for box in boxes:
        state = box["state"]
        toggle = "" if box["outcome"] == "succeed" else (
            '<div style="font-size:11px;color:#A33">on its turn: '
            f'{html.escape(box["outcome"])}</div>')
        parts.append(
            f'<div class="eda-saga-box" data-step="{html.escape(box["step"])}" '
            f'data-state="{html.escape(state)}" '
            f'style="background:{STATE_COLORS.get(state, "#fff")};'
            'border:1px solid #777;border-radius:6px;padding:6px 8px;min-width:120px">'
            f'<div style="font-weight:bold">{html.escape(box["step"])}</div>'
            f'<div style="font-size:11px">{html.escape(box["participant"])} · '
            f'{html.escape(box["kind"])}</div>'
            f'<div style="font-size:12px;margin-top:3px">{html.escape(state.replace("_", " "))}'
            f"</div>{toggle}</div>")
    parts.append("</div>")
    return "".join(parts)


def log_html(rows: Sequence[Mapping], last: int = 14) -> str:
    """The saga log of the saga (read from the database), the latest rows last."""
    shown = list(rows)[-last:]
    caption = f"saga log ({len(rows)} transitions" + (f", last {last})" if len(rows) > last
                                                       else ")")
    return html_table(shown, _LOG_COLUMNS, caption=caption, empty="(nothing recorded yet)")


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


def status_html(model: SagaStepperModel) -> str:
    """The saga's status, the clock, the armed crash, and what the last step did."""
    status = model.status or "not started"
    color = _STATUS_COLORS.get(status, "#EEE")
    crash = ("" if model.crash == NO_CRASH else
             f' · <b style="color:#C44E52">crash armed: {html.escape(model.crash)}</b>')
    runner = model.runner
    down = "" if runner.orchestrator is not None else (
        ' · <b style="color:#C44E52">orchestrator down (restarting)</b>')
    head = (f'<div><span style="background:{color};padding:2px 8px;border-radius:4px">'
            f"{html.escape(model.saga_id)}: <b>{html.escape(status)}</b></span> "
            f"· t = {runner.clock.now:g} ms{crash}{down}</div>")
    lines = model.lines() or (["(finished: press Reset to replay)"] if model.finished
                              else ["(nothing yet: press Step)"])
    body = "".join(f"<div>{html.escape(line)}</div>" for line in lines[-12:])
    return f'{head}<div style="font-family:monospace;font-size:12px;margin-top:4px">{body}</div>'


def timeline_figure(model: SagaStepperModel):
    """The messages so far as a sequence diagram (a matplotlib Figure)."""
    return saga_timeline(model.runner.trace.frame()).figure


class SagaOrchestratorStepper:
    """The widget: ``SagaOrchestratorStepper()`` in a cell shows it; ``.model`` is the saga.

    ``outcomes`` preset the toggles (``{"authorize_payment": "fail"}``); other keyword
    arguments go to :class:`~eda_lab.saga.stepper.SagaStepperModel`.
    """

    def __init__(self, model: SagaStepperModel | None = None, **model_options):
        self.model = model if model is not None else SagaStepperModel(**model_options)
        self._syncing = False
        self.outcome_toggles: dict[str, widgets.ToggleButtons] = {}
        toggle_boxes = []
        for step in self.model.definition.steps:
            toggle = widgets.ToggleButtons(options=list(OUTCOMES),
                                           value=self.model.outcomes[step.name],
                                           tooltips=[f"{step.participant} {o}s {step.action}"
                                                     for o in OUTCOMES],
                                           style={"button_width": "76px"})
            toggle.add_class("eda-control")
            toggle.add_class(f"{ROOT_CLASS}-outcome")
            toggle.add_class(f"{ROOT_CLASS}-outcome-{step.name.replace('_', '-')}")
            toggle.observe(self._outcome_changed(step.name), "value")
            self.outcome_toggles[step.name] = toggle
            label = widgets.HTML(f"<b>{html.escape(step.name)}</b> "
                                 f"<small>({html.escape(step.kind)})</small>")
            toggle_boxes.append(widgets.VBox([label, toggle]))
        self.crash_toggle = widgets.ToggleButtons(
            options=list(CRASH_CHOICES), value=self.model.crash,
            description="orchestrator:", style={"button_width": "110px"},
            tooltips=["the orchestrator does not crash",
                      "crash on taking the next reply, before recording anything",
                      "crash after recording the next transition, before sending",
                      "crash after sending, before committing the reply"])
        self.crash_toggle.add_class("eda-control")
        self.crash_toggle.add_class(f"{ROOT_CLASS}-crash")
        self.crash_toggle.observe(self._crash_changed, "value")
        self.step_button = styled_button("Step", f"{ROOT_CLASS}-step",
                                         "advance to the next message or transition", "primary")
        self.run_button = styled_button("Run", f"{ROOT_CLASS}-run", "run the saga to its end")
        self.reset_button = styled_button("Reset", f"{ROOT_CLASS}-reset",
                                          "a fresh shop and a fresh saga, same toggles", "warning")
        for button, action in ((self.step_button, self.model.step),
                               (self.run_button, self.model.run),
                               (self.reset_button, self.model.reset)):
            button.add_class("eda-control")
            button.on_click(self._clicked(action))
        self.status_view = html_view(ROOT_CLASS, "status")
        self.boxes_view = html_view(ROOT_CLASS, "steps")
        self.log_view = html_view(ROOT_CLASS, "log")
        self.data_view = html_view(ROOT_CLASS, "data")
        self.timeline_view = image_widget("eda-view")
        self.timeline_view.add_class(f"{ROOT_CLASS}-timeline")
        self.root = widgets.VBox([
            widgets.HTML("<b>Saga Orchestrator Stepper</b>: choose what each step does, arm a "
                         "crash, then Step (one message or transition at a time) or Run."),
            widgets.HBox(toggle_boxes, layout=widgets.Layout(flex_flow="row wrap")),
            widgets.HBox([self.crash_toggle]),
            widgets.HBox([self.step_button, self.run_button, self.reset_button]),
            self.status_view, self.boxes_view,
            widgets.HBox([self.log_view, self.data_view],
                         layout=widgets.Layout(flex_flow="row wrap")),
            self.timeline_view,
        ])
        self.root.add_class(ROOT_CLASS)
        self.error: str | None = None
        self.redraw()

    # -- reacting to the controls ------------------------------------------------------------
    def _guarded(self, action) -> None:
        """Run ``action`` and redraw; an error is shown in the status view, not lost."""
        try:
            action()
            self.error = None
        except Exception as error:  # noqa: BLE001 - a learner's click must show what went wrong
            self.error = f"{type(error).__name__}: {error}"
        self.redraw()

    def _clicked(self, action):
        return lambda _button: self._guarded(action)

    def _outcome_changed(self, step: str):
        def changed(change):
            if not self._syncing:
                self._guarded(lambda: self.model.set_outcome(step, change["new"]))
        return changed

    def _crash_changed(self, change) -> None:
        if not self._syncing:
            self._guarded(lambda: self.model.set_crash(change["new"]))

    # -- drawing --------------------------------------------------------------------------
    def redraw(self) -> None:
        """Redraw every view from the model (the databases and the trace)."""
        model = self.model
        self._syncing = True
        try:
            self.crash_toggle.value = model.crash  # a fired crash disarms itself
        finally:
            self._syncing = False
        status = status_html(model)
        if self.error:
            status = (f'<div style="color:#C44E52"><b>error:</b> {html.escape(self.error)}</div>'
                      + status)
        self.status_view.value = status
        self.boxes_view.value = boxes_html(model.boxes())
        self.log_view.value = log_html(model.log_rows())
        self.data_view.value = data_html(model.data())
        show_figure(self.timeline_view, timeline_figure(model))

    def _repr_mimebundle_(self, **kwargs):
        return self.root._repr_mimebundle_(**kwargs)
