"""The Saga Orchestrator Stepper, headless: set toggles, click, and compare with the database."""

from __future__ import annotations

import re

import pytest
from saga_helpers import DEFINITION, STEPS

from eda_lab.saga import step_states
from eda_lab.saga.stepper import CRASH_CHOICES, SagaStepperModel, describe
from eda_lab.widgets.saga_stepper import (
    SagaOrchestratorStepper,
    boxes_html,
    data_html,
    log_html,
)

PNG = b"\x89PNG"


def box_states(widget) -> dict[str, str]:
    """The step states as the boxes show them (read from the rendered HTML)."""
    return dict(re.findall(r'data-step="(\w+)" data-state="(\w+)"', widget.boxes_view.value))


def db_states(widget) -> dict[str, str]:
    """The step states folded from the saga log rows read straight from the database."""
    model = widget.model
    cursor = model.runner.log.db.execute(
        "SELECT transition, step FROM saga_log WHERE saga_id=? ORDER BY seq", (model.saga_id,))
    return step_states(STEPS, [{"transition": t, "step": s} for t, s in cursor])


def logged_transitions(widget) -> int:
    return widget.model.runner.log.db.execute(
        "SELECT count(*) FROM saga_log WHERE saga_id=?", (widget.model.saga_id,)).fetchone()[0]


def assert_views_agree_with_the_database(widget):
    assert box_states(widget) == db_states(widget)
    n = logged_transitions(widget)
    assert f"saga log ({n} transitions" in widget.log_view.value
    assert bytes(widget.timeline_view.value).startswith(PNG)
    assert widget.model.status in widget.status_view.value


@pytest.fixture
def stepper():
    return SagaOrchestratorStepper()


def test_the_widget_has_the_css_hooks_of_the_browser_test(stepper):
    assert "eda-saga-stepper" in stepper.root._dom_classes
    controls = [*stepper.outcome_toggles.values(), stepper.crash_toggle, stepper.step_button,
                stepper.run_button, stepper.reset_button]
    assert all("eda-control" in c._dom_classes for c in controls)
    assert [c for c in controls if not any(k.startswith("eda-saga-stepper-") for k in c._dom_classes)] == []
    views = [stepper.status_view, stepper.boxes_view, stepper.log_view, stepper.data_view,
             stepper.timeline_view]
    assert all("eda-view" in v._dom_classes for v in views)
    assert len(stepper.outcome_toggles) == len(STEPS)
    assert list(stepper.crash_toggle.options) == list(CRASH_CHOICES)
    assert "application/vnd.jupyter.widget-view+json" in stepper._repr_mimebundle_()


def test_stepping_the_happy_path_keeps_boxes_and_log_equal_to_the_database(stepper):
    assert box_states(stepper)["create_order"] == "running"
    seen = {"running", "done"}
    while not stepper.model.finished:
        stepper.step_button.click()
        assert_views_agree_with_the_database(stepper)
        seen |= set(box_states(stepper).values())
    assert stepper.model.status == "completed"
    assert set(box_states(stepper).values()) == {"done"}
    assert stepper.model.steps_taken == 10
    assert "APPROVED" in stepper.data_view.value


@pytest.mark.parametrize("failing", STEPS)
def test_each_failure_path_shown_by_the_boxes(stepper, failing):
    stepper.outcome_toggles[failing].value = "fail"
    assert "on its turn: fail" in stepper.boxes_view.value
    stepper.run_button.click()
    assert_views_agree_with_the_database(stepper)
    boxes = box_states(stepper)
    k = STEPS.index(failing)
    if k <= DEFINITION.pivot_index:
        assert stepper.model.status == "compensated"
        assert boxes[failing] == "failed"
        assert all(boxes[s] == "compensated" for s in STEPS[:k])
        assert all(boxes[s] == "pending" for s in STEPS[k + 1:])
    else:
        assert stepper.model.status == "completed" and set(boxes.values()) == {"done"}


def test_a_time_out_is_asked_again_and_the_saga_completes(stepper):
    stepper.outcome_toggles["reserve_inventory"].value = "time out"
    stepper.run_button.click()
    assert set(box_states(stepper).values()) == {"done"}
    assert "step_timed_out" in stepper.log_view.value
    assert "retry_scheduled" in stepper.log_view.value


def test_the_toggles_apply_to_steps_not_yet_run(stepper):
    for _ in range(4):  # create_order and reserve_inventory have been answered
        stepper.step_button.click()
    stepper.outcome_toggles["create_order"].value = "fail"  # too late for this run
    stepper.outcome_toggles["authorize_payment"].value = "fail"
    stepper.run_button.click()
    assert stepper.model.status == "compensated"
    assert box_states(stepper)["create_order"] == "compensated"
    stepper.reset_button.click()  # the same toggles, a fresh saga
    assert stepper.outcome_toggles["create_order"].value == "fail"
    stepper.run_button.click()
    assert box_states(stepper)["create_order"] == "failed"


def test_the_crash_toggle_crashes_the_orchestrator_and_it_recovers_from_the_log(stepper):
    stepper.crash_toggle.value = "after record"
    assert "crash armed: after record" in stepper.status_view.value
    while "CRASHED" not in stepper.status_view.value:
        stepper.step_button.click()
    assert "orchestrator down" in stepper.status_view.value
    assert stepper.crash_toggle.value == "no crash"  # it fired, so it disarmed itself
    stepper.run_button.click()
    assert stepper.model.status == "completed"
    assert "resumed" in stepper.log_view.value
    assert_views_agree_with_the_database(stepper)


def test_reset_starts_a_fresh_saga_and_the_views_follow(stepper):
    stepper.run_button.click()
    finished_png = stepper.timeline_view.value
    stepper.reset_button.click()
    assert stepper.model.status == "running"
    assert box_states(stepper)["approve_order"] == "pending"
    assert stepper.timeline_view.value != finished_png
    assert "book" in stepper.data_view.value and "APPROVED" not in stepper.data_view.value


def test_a_click_at_the_end_says_so_and_an_error_is_shown_not_lost(stepper, monkeypatch):
    stepper.run_button.click()
    stepper.step_button.click()
    assert "finished: press Reset" in stepper.status_view.value

    def broken():
        raise RuntimeError("disk full")

    monkeypatch.setattr(stepper.model, "step", broken)
    stepper._guarded(stepper.model.step)
    assert "RuntimeError: disk full" in stepper.status_view.value


def test_the_model_refuses_unknown_steps_outcomes_and_crashes():
    model = SagaStepperModel()
    with pytest.raises(ValueError, match="step must be one of"):
        model.set_outcome("refund", "fail")
    with pytest.raises(ValueError, match="outcome must be one of"):
        model.set_outcome("create_order", "explode")
    with pytest.raises(ValueError, match="crash must be one of"):
        model.set_crash("everywhere")
    with pytest.raises(ValueError, match="step must be one of"):
        SagaStepperModel(outcomes={"refund": "fail"})


def test_the_views_are_pure_functions_of_their_data():
    html = boxes_html([{"step": "a", "participant": "order", "kind": "pivot", "state": "failed",
                        "outcome": "fail"}])
    assert 'data-state="failed"' in html and "#F4A3A3" in html and "on its turn: fail" in html
    rows = [{"seq": i, "time_ms": 0.0, "transition": "step_sent", "step": "a", "attempt": 1,
             "detail": "<x>"} for i in range(20)]
    table = log_html(rows)
    assert "saga log (20 transitions, last 14)" in table and "&lt;x&gt;" in table
    assert table.count("<tr>") == 15
    assert "inventory: stock" in data_html({"inventory": {"stock": [{"sku": "book"}]}})


def test_describe_puts_the_trace_in_plain_words(stepper):
    lines = []
    for _ in range(2):   # the order service's transaction; then its relay sends the reply
        stepper.step_button.click()
        lines += [describe(r) for r in stepper.model.happened]
    assert "order ran CreatePendingOrder as one local transaction: succeeded: order-1 is pending" in lines
    assert "order → orchestrator: OrderCreated" in lines
