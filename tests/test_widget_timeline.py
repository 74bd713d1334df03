"""The shared timeline: the state shown at position k is the state after the first k actions.

The property is checked over random action sequences for both seed widgets, with scrubbing,
stepping back and acting in the past mixed in: whatever the learner did, what position k shows
equals a fresh model that replayed the first k recorded actions.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.messages import new_id, seed_ids
from eda_lab.widgets.outbox_model import FAULTS, MESSAGE_FAULTS
from eda_lab.widgets.outbox_visualizer import OutboxVisualizer, render
from eda_lab.widgets.saga_stepper import SagaOrchestratorStepper
from eda_lab.widgets.saga_stepper import render as render_saga
from eda_lab.widgets.timeline import MODES, IdStream, Story, StoryFrame, Timeline, TimelineFull

VIEWS = ("diagram", "counters", "tables", "txlog", "log", "controls")
SAGA_VIEWS = ("status", "steps", "log", "data", "sequence", "controls")


def outbox_state(model) -> tuple:
    """What a learner can see of an outbox model, plus the checker's verdict."""
    frame = render(model, "")
    return (tuple(frame[v] for v in VIEWS), model.report(), len(model.trace))


outbox_actions = st.one_of(
    st.just(("place",)), st.just(("step",)), st.just(("step",)), st.just(("step",)),
    st.tuples(st.just("fault"), st.sampled_from(sorted(FAULTS)), st.sampled_from(MODES)),
    st.tuples(st.just("message"), st.sampled_from(sorted(MESSAGE_FAULTS))),
    st.tuples(st.sampled_from(["stop", "resume"]), st.sampled_from(["relay", "consumer"])),
)
# a learner's move: act, or move the slider somewhere (an int: a fraction of the length)
moves = st.lists(st.one_of(outbox_actions, st.integers(0, 100)), max_size=30)


@settings(max_examples=25, deadline=None)
@given(variant=st.sampled_from(["db_then_publish", "publish_then_db", "outbox-polling",
                                "outbox-log-tailing"]), moves=moves, at=st.integers(0, 100))
def test_scrubbing_to_k_equals_replaying_k_actions_in_the_outbox_visualizer(variant, moves, at):
    viz = OutboxVisualizer(variant)
    for move in moves:
        if isinstance(move, int):
            viz._moved(len(viz.timeline) * move // 100)
        else:
            viz._act(move)
    k = len(viz.timeline) * at // 100
    viz._moved(k)
    frame = viz.timeline.frame
    replayed = viz.timeline.replay(k)
    assert tuple(frame[v] for v in VIEWS) == outbox_state(replayed)[0]
    assert outbox_state(viz.model) == outbox_state(replayed)


saga_actions = st.one_of(
    st.just(("step",)), st.just(("step",)), st.just(("step",)), st.just(("step",)),
    st.tuples(st.just("outcome"), st.sampled_from(["create_order", "reserve_inventory",
                                                   "authorize_payment", "schedule_shipping"]),
              st.sampled_from(["succeed", "fail once", "fail every time", "time out once"])),
    st.tuples(st.just("compensation"), st.sampled_from(["create_order", "reserve_inventory"]),
              st.sampled_from(["succeed", "fail once", "fail every time"])),
    st.tuples(st.just("crash"), st.sampled_from(["no crash", "before record", "after record",
                                                 "after send"])),
    st.tuples(st.just("participant_crash"), st.sampled_from(["nobody", "order", "payment"]),
              st.sampled_from(["before commit", "after commit"])),
    st.tuples(st.sampled_from(["stop", "resume"]), st.sampled_from(["inventory", "payment"])),
    st.tuples(st.just("message"), st.sampled_from(["drop", "duplicate", "delay"])),
    st.just(("second",)),
)


@settings(max_examples=15, deadline=None)
@given(moves=st.lists(st.one_of(saga_actions, st.integers(0, 100)), max_size=25),
       at=st.integers(0, 100))
def test_scrubbing_to_k_equals_replaying_k_actions_in_the_saga_stepper(moves, at):
    stepper = SagaOrchestratorStepper()
    for move in moves:
        if isinstance(move, int):
            stepper._moved(len(stepper.timeline) * move // 100)
        else:
            stepper._act(move)    # a refused one (resume what runs) is shown, not recorded
    k = len(stepper.timeline) * at // 100
    stepper._moved(k)
    frame = stepper.timeline.frame
    replayed = render_saga(stepper.timeline.replay(k), "")
    assert {v: frame[v] for v in SAGA_VIEWS} == {v: replayed[v] for v in SAGA_VIEWS}
    assert render_saga(stepper.model, "")["steps"] == replayed["steps"]


# --- the mechanism on its own --------------------------------------------------------------------

def counter_timeline(**options) -> Timeline:
    def apply(model, action):
        if action[0] == "boom":
            raise ValueError("boom refused")
        model.append(action[1])
        return f"added {action[1]}"
    return Timeline(list, apply, lambda model, note: {"sum": sum(model), "note": note},
                    **options)


def test_acting_in_the_past_drops_the_later_actions():
    timeline = counter_timeline()
    for n in (1, 2, 3):
        timeline.record(("add", n))
    timeline.goto(1)
    assert timeline.frame["sum"] == 1 and not timeline.at_end
    timeline.record(("add", 10))
    assert timeline.actions == [("add", 1), ("add", 10)] and timeline.live() == [1, 10]
    assert timeline.back()["sum"] == 1 and timeline.forward()["sum"] == 11


def test_a_refused_action_changes_nothing_and_bad_positions_are_refused():
    timeline = counter_timeline()
    timeline.record(("add", 1))
    with pytest.raises(ValueError, match="boom refused"):
        timeline.record(("boom",))
    assert timeline.actions == [("add", 1)]
    with pytest.raises(ValueError, match="position must be an int from 0 to 1"):
        timeline.goto(2)
    with pytest.raises(TypeError, match="non-empty tuple"):
        timeline.record("add")
    with pytest.raises(ValueError, match="max_actions"):
        counter_timeline(max_actions=0)


def test_the_timeline_is_bounded_and_says_so():
    timeline = counter_timeline(max_actions=2)
    timeline.record(("add", 1))
    timeline.record(("add", 1))
    with pytest.raises(TimelineFull, match="at most 2 actions: press reset"):
        timeline.record(("add", 1))


def test_unseen_frames_are_drawn_when_looked_at():
    drawn = []
    timeline = Timeline(list, lambda m, a: m.append(a[1]) or "ok",
                        lambda m, note: drawn.append(len(m)) or {"n": len(m)})
    for n in range(5):
        timeline.record(("add", n), render=False)
    assert drawn == [0]                      # only the start was drawn
    assert timeline.goto(2)["n"] == 2 and drawn == [0, 2]


def test_the_id_stream_repeats_ids_and_leaves_the_global_sequence_alone():
    seed_ids(7)
    expected_next = new_id()
    seed_ids(7)
    with IdStream(3):
        first = new_id()
    with IdStream(3):
        again = new_id()
    assert first == again
    assert new_id() == expected_next


def test_a_story_needs_frames():
    with pytest.raises(ValueError, match="at least one frame"):
        Story("empty")
    assert Story("one", frames=(StoryFrame("hello"),)).frames[0].actions == ()
