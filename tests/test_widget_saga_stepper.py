"""The Saga Orchestrator Stepper, headless: set toggles, click, and compare with the database."""

from __future__ import annotations

import re

import pytest
from saga_helpers import DEFINITION, STEPS

from eda_lab.saga import step_states
from eda_lab.saga.orchestrator import RETRY_BUDGET_MS
from eda_lab.saga.stepper import CRASH_CHOICES, SagaStepperModel, describe
from eda_lab.widgets.saga_stepper import (
    STORIES,
    SagaOrchestratorStepper,
    boxes_html,
    data_html,
    log_html,
    sequence_html,
)


def box_states(widget) -> dict[str, str]:
    """The step states as the boxes of the first saga show them (read from the rendered HTML)."""
    row = widget.boxes_view.value.split(f'data-saga="{widget.model.saga_id}"')[1]
    row = row.split("data-saga=")[0]
    return dict(re.findall(r'data-step="(\w+)" data-state="(\w+)"', row))


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
    assert widget.sequence_view.value.startswith("<svg")
    assert widget.model.status in widget.status_view.value


@pytest.fixture
def stepper():
    return SagaOrchestratorStepper()


def test_the_widget_has_the_css_hooks_of_the_browser_test(stepper):
    assert "eda-saga-stepper" in stepper.root._dom_classes
    tl = stepper.timeline_controls
    controls = [*stepper.outcome_toggles.values(), *stepper.compensation_toggles.values(),
                stepper.crash_toggle, stepper.participant_crash, stepper.crash_moment,
                *stepper.stop_toggles.values(), *stepper.message_buttons.values(),
                stepper.second_button, stepper.step_button,
                stepper.run_button, stepper.reset_button, tl.back_button, tl.forward_button,
                tl.slider, tl.play, tl.speed, stepper.stories.menu, stepper.stories.next_button]
    assert all("eda-control" in c._dom_classes for c in controls)
    assert [c for c in controls if not any(k.startswith("eda-saga-stepper-") for k in c._dom_classes)] == []
    views = [stepper.status_view, stepper.boxes_view, stepper.log_view, stepper.data_view,
             stepper.sequence_view, tl.readout, stepper.stories.caption]
    assert all("eda-view" in v._dom_classes for v in views)
    assert len(stepper.outcome_toggles) == len(STEPS)
    assert list(stepper.crash_toggle.options) == list(CRASH_CHOICES)
    assert set(stepper.compensation_toggles) == {"create_order", "reserve_inventory"}
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
    stepper.outcome_toggles[failing].value = "fail once"
    assert "will: fail once" in stepper.boxes_view.value
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
    assert "will: fail once" not in stepper.boxes_view.value   # the box ran: it says what did
    assert "did: step failed" in stepper.boxes_view.value or k > DEFINITION.pivot_index


def test_a_time_out_is_asked_again_and_the_saga_completes(stepper):
    stepper.outcome_toggles["reserve_inventory"].value = "time out once"
    stepper.run_button.click()
    assert set(box_states(stepper).values()) == {"done"}
    assert "step_timed_out" in stepper.log_view.value
    assert "retry_scheduled" in stepper.log_view.value


def test_the_toggles_apply_to_steps_not_yet_run(stepper):
    for _ in range(4):  # create_order and reserve_inventory have been answered
        stepper.step_button.click()
    stepper.outcome_toggles["create_order"].value = "fail once"  # too late for this run
    stepper.outcome_toggles["authorize_payment"].value = "fail once"
    stepper.run_button.click()
    assert stepper.model.status == "compensated"
    assert box_states(stepper)["create_order"] == "compensated"
    stepper.timeline_controls.slider.value = 0   # the start: the toggles as they were
    assert stepper.outcome_toggles["create_order"].value == "succeed"
    stepper.outcome_toggles["create_order"].value = "fail once"   # a new future from there
    stepper.run_button.click()
    assert box_states(stepper)["create_order"] == "failed"


def test_the_crash_toggle_crashes_the_orchestrator_and_it_recovers_from_the_log(stepper):
    stepper.crash_toggle.value = "after record"
    assert "orchestrator crash armed (once): after record" in stepper.status_view.value
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
    finished = stepper.sequence_view.value
    stepper.reset_button.click()
    assert stepper.model.status == "running" and len(stepper.timeline) == 0
    assert box_states(stepper)["approve_order"] == "pending"
    assert stepper.sequence_view.value != finished
    assert "book" in stepper.data_view.value and "APPROVED" not in stepper.data_view.value


def test_a_click_at_the_end_says_so_and_an_error_is_shown_not_lost(stepper, monkeypatch):
    stepper.run_button.click()
    stepper.step_button.click()
    assert "the sagas are finished (click" in stepper.status_view.value
    stepper._act(("stop", "nobody"))
    assert "refused" in stepper.status_view.value and "participant must be one of" in \
        stepper.status_view.value


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
    html = boxes_html([{"step": "a", "participant": "order", "kind": "pivot", "state": "pending",
                        "outcome": "fail once"},
                       {"step": "b", "participant": "order", "kind": "pivot", "state": "failed",
                        "outcome": "fail once", "happened": "step failed: declined"}])
    assert 'data-state="failed"' in html and "#F4A3A3" in html and "will: fail once" in html
    assert html.count("will: fail once") == 1 and "did: step failed: declined" in html
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


def test_a_compensation_that_fails_every_time_ends_in_needs_attention(stepper):
    stepper.outcome_toggles["authorize_payment"].value = "fail once"
    stepper.compensation_toggles["reserve_inventory"].value = "fail every time"
    assert "undo will: fail every time" in stepper.boxes_view.value
    stepper.run_button.click()
    assert stepper.model.status == "needs_attention"
    assert box_states(stepper)["reserve_inventory"] == "needs_attention"
    assert 'data-agree="false"' in stepper.status_view.value   # the services disagree
    assert_views_agree_with_the_database(stepper)


def test_a_compensation_that_fails_once_is_retried_and_the_saga_compensates(stepper):
    stepper.outcome_toggles["authorize_payment"].value = "fail once"
    stepper.compensation_toggles["create_order"].value = "fail once"
    stepper.run_button.click()
    assert stepper.model.status == "compensated"
    assert "compensation_failed" in stepper.log_view.value
    assert 'data-agree="true"' in stepper.status_view.value


def test_a_step_that_fails_every_time_after_the_pivot_needs_attention(stepper):
    stepper.outcome_toggles["schedule_shipping"].value = "fail every time"
    stepper.run_button.click()
    assert stepper.model.status == "needs_attention"


@pytest.mark.parametrize("moment", ["before commit", "after commit"])
def test_a_participant_crash_fires_once_for_that_participant_and_the_saga_completes(stepper,
                                                                                   moment):
    stepper.crash_moment.value = moment
    stepper.participant_crash.value = "payment"
    assert f"payment crash armed (once): {moment}" in stepper.status_view.value
    stepper.run_button.click()
    model = stepper.model
    crashes = [r for r in model.runner.trace if r.kind == "crash"]
    assert [r.actor for r in crashes] == ["payment"]
    assert model.status == "completed" and stepper.participant_crash.value == "nobody"
    assert "✖ crash" in stepper.sequence_view.value


def test_a_stopped_participant_lets_its_commands_wait_and_takes_them_after_resume(stepper):
    """The orchestrator's deadlines run on while inventory is down: it asks again with backoff
    until its retry budget is spent (needs attention). Resumed, inventory takes what waited."""
    stepper.stop_toggles["inventory"].value = True
    assert stepper.stop_toggles["inventory"].description == "resume inventory"
    stepper.run_button.click()
    model = stepper.model
    assert not model.finished and model.waiting_for_resume
    assert "nothing happens until you resume inventory" in stepper.status_view.value
    stepper.step_button.click()
    assert "until you resume" in stepper.status_view.value
    waited = model.runner.broker.lag("saga-inventory")
    assert waited >= 1                        # its commands wait in the broker
    stepper.stop_toggles["inventory"].value = False
    stepper.run_button.click()
    assert stepper.model.finished and stepper.model.status == "needs_attention"
    assert stepper.model.runner.broker.lag("saga-inventory") == 0
    assert stepper.model.runner.clock.now < RETRY_BUDGET_MS + 10_000   # not the stop's horizon


def test_a_second_saga_for_the_same_order_is_refused_by_the_semantic_lock(stepper):
    stepper.step_button.click()
    stepper.step_button.click()
    stepper.second_button.click()
    assert 'data-saga="saga-0002"' in stepper.boxes_view.value
    stepper.run_button.click()
    model = stepper.model
    assert model.runner.status("saga-0001") == "completed"
    assert model.runner.status("saga-0002") == "compensated"
    assert "semantic lock" in " ".join(r["detail"] or "" for r in model.log_rows("saga-0002"))


def test_the_agreement_readout_counts_how_long_the_services_disagreed(stepper):
    assert 'data-agree="true"' in stepper.status_view.value
    stepper.step_button.click()
    stepper.step_button.click()
    assert 'data-agree="false"' in stepper.status_view.value
    stepper.run_button.click()
    agreement = stepper.model.agreement()
    assert agreement["agree"] and agreement["disagreed_ms"] > 0
    assert f"they disagreed for {agreement['disagreed_ms']:g} ms" in stepper.status_view.value


def test_scrubbing_shows_earlier_states_and_the_controls_follow(stepper):
    stepper.outcome_toggles["authorize_payment"].value = "fail once"
    stepper.run_button.click()
    end = stepper.timeline.position
    final = stepper.boxes_view.value
    stepper.timeline_controls.slider.value = 0
    assert set(box_states(stepper).values()) <= {"running", "pending"}
    assert stepper.outcome_toggles["authorize_payment"].value == "succeed"
    stepper.timeline_controls.slider.value = end
    assert stepper.boxes_view.value == final
    assert stepper.outcome_toggles["authorize_payment"].value == "fail once"
    assert len(stepper.timeline) == end   # syncing the controls recorded nothing


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.title[:30])
def test_every_story_runs_frame_by_frame(story):
    stepper = SagaOrchestratorStepper()
    stepper.stories.menu.value = story.title
    for n in range(2, len(story.frames) + 1):
        stepper.stories.next_button.click()
        assert f"frame {n} of {len(story.frames)}" in stepper.stories.caption.value
        assert "(not reached)" not in stepper.status_view.value
    assert stepper.stories.next_button.disabled
    assert_views_agree_with_the_database(stepper)


def test_the_stories_end_where_their_captions_say():
    def ending(index):
        stepper = SagaOrchestratorStepper()
        stepper.stories.play(STORIES[index].title)
        while not stepper.stories.next_button.disabled:
            stepper.stories.next()
        return stepper.model
    assert ending(0).status == "compensated"
    assert ending(1).status == "completed" and ending(1).runner.restarts == 1
    assert ending(2).status == "needs_attention"
    lock = ending(3)
    assert [lock.runner.status(s) for s in lock.saga_ids] == ["completed", "compensated"]
    assert ending(4).status == "completed"


def test_the_model_refuses_bad_compensations_participants_and_moments():
    model = SagaStepperModel()
    with pytest.raises(ValueError, match="compensation step must be one of"):
        model.set_compensation("authorize_payment", "fail once")
    with pytest.raises(ValueError, match="compensation outcome must be one of"):
        model.set_compensation("create_order", "time out once")
    with pytest.raises(ValueError, match="participant must be one of"):
        model.stop("warehouse")
    with pytest.raises(ValueError, match="moment must be one of"):
        model.crash_participant("payment", "during lunch")
    with pytest.raises(ValueError, match="is not stopped"):
        model.resume("payment")


def test_the_sequence_diagram_is_a_pure_function_of_the_trace(stepper):
    stepper.run_button.click()
    svg = sequence_html(stepper.model.runner.trace.tail(400), ["order", "inventory"])
    assert svg.startswith("<svg") and "CreatePendingOrder" in svg
    assert "AuthorizePayment" not in svg   # payment has no lane here
    assert "(no messages yet" in sequence_html([], ["order"])


@pytest.mark.parametrize(("fault", "kind"), [("drop", "drop"), ("duplicate", "duplicate"),
                                             ("delay", "delay")])
def test_a_message_fault_fires_once_on_the_next_message_and_says_so(stepper, fault, kind):
    stepper.step_button.click()
    before = stepper.status_view.value
    stepper.message_buttons[fault].click()
    assert "(once)" in stepper.message_buttons[fault].description
    assert "armed (once)" in stepper.status_view.value and stepper.status_view.value != before
    stepper.run_button.click()
    model = stepper.model
    assert model.finished and model.armed_messages == {}      # fired, then off again
    assert [r.kind for r in model.runner.trace].count(kind) == 1
    assert "armed (once)" not in stepper.status_view.value
    assert model.agreement()["agree"]                            # all or nothing, in the end
    marks = {"drop": "dropped", "duplicate": "duplicated", "delay": "delayed"}
    assert marks[fault] in stepper.sequence_view.value


def test_a_dropped_command_is_delivered_again_and_the_saga_completes(stepper):
    stepper.message_buttons["drop"].click()
    stepper.run_button.click()
    assert stepper.model.status == "completed"


def test_the_model_refuses_an_unknown_message_fault(stepper):
    with pytest.raises(ValueError, match="message fault must be one of"):
        stepper.model.arm_message("corrupt")
    stepper._act(("message", "corrupt"))
    assert "refused" in stepper.status_view.value
