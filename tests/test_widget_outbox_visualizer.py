"""The Transactional Outbox Visualizer, headless: click, then read the model and the HTML."""

from __future__ import annotations

import re

import pytest

from eda_lab.outbox import check_consistency
from eda_lab.widgets.diagram import Edge, Node, render_diagram
from eda_lab.widgets.outbox_model import CRASH_LOOP, FAULTS, MESSAGE_FAULTS
from eda_lab.widgets.outbox_visualizer import STORIES, OutboxVisualizer, txlog_html


def counter(viz: OutboxVisualizer, name: str) -> int:
    match = re.search(rf'data-name="{name}"[^>]*>[^<]*<b[^>]*>(\d+)</b>', viz.counters.value)
    assert match, f"no counter {name}"
    return int(match.group(1))


def place_and_run(viz: OutboxVisualizer, orders: int = 3) -> None:
    for _ in range(orders):
        viz.place.click()
    viz.run_button.click()


def independent_check(viz: OutboxVisualizer):
    model = viz.model
    return check_consistency(model.service.truth(), model.consumer.received,
                             model.consumer.effects(), model.in_flight())


def test_every_control_and_view_carries_its_css_hooks():
    viz = OutboxVisualizer()
    assert "eda-outbox-visualizer" in viz.root._dom_classes
    tl = viz.timeline_controls
    controls = [viz.variant, viz.inbox, viz.place, viz.step_button, viz.run_button,
                viz.reset_button, *viz.toggles.values(), *viz.message_buttons.values(),
                *viz.stop_toggles.values(), tl.back_button, tl.forward_button, tl.slider,
                tl.play, tl.speed, viz.stories.menu, viz.stories.next_button]
    assert all("eda-control" in c._dom_classes for c in controls)
    assert [c for c in controls if not any(k.startswith("eda-outbox-visualizer-")
                                           for k in c._dom_classes)] == []
    assert all("eda-view" in v._dom_classes for v in (viz.diagram, viz.counters, viz.tables,
                                                       viz.log, viz.txlog, viz.status,
                                                       tl.readout, viz.stories.caption))
    # every control is labelled: a description (or a button text) says what it does
    assert all(getattr(c, "description", "") for c in controls)
    assert viz._repr_mimebundle_()


def test_stepping_moves_one_order_through_service_relay_and_consumer():
    viz = OutboxVisualizer("outbox-polling")
    viz.place.click()
    assert counter(viz, "queued") == 1
    actors = [viz.step().actor for _ in range(3)]
    assert actors == ["order", "relay", "consumer"] and viz.step() is None
    assert counter(viz, "committed") == 1 and counter(viz, "in_flight") == 0
    assert "order-1" in viz.tables.value and "OrderPlaced" in viz.log.value


def test_the_active_part_is_highlighted_in_the_diagram():
    viz = OutboxVisualizer("outbox-polling")
    viz.place.click()
    viz.step_button.click()
    assert 'data-id="service->outbox" data-active="true"' in viz.diagram.value
    viz.step_button.click()
    assert 'data-id="relay->broker" data-active="true"' in viz.diagram.value
    assert 'data-id="service->outbox" data-active="false"' in viz.diagram.value


def test_naive_db_then_publish_with_the_broker_down_shows_a_lost_event():
    viz = OutboxVisualizer("db_then_publish")
    viz.broker_down.value = "every time"
    place_and_run(viz, 2)
    assert counter(viz, "lost") == 2 == independent_check(viz).lost
    assert re.search(r'data-id="broker" data-active="\w+" data-crashed="true"', viz.diagram.value)


def test_naive_publish_then_db_with_a_crash_shows_no_loss_but_the_outbox_shows_none_either():
    viz = OutboxVisualizer("db_then_publish")
    viz.crash_after_commit.value = "every time"
    place_and_run(viz, 2)
    assert counter(viz, "lost") == 2
    viz.variant.value = "outbox-log-tailing"   # changing the variant starts over
    assert counter(viz, "committed") == 0 and viz.crash_after_commit.value == "off"
    viz.crash_after_commit.value = "every time"
    place_and_run(viz, 2)
    assert counter(viz, "lost") == 0 and counter(viz, "committed") == 2


def test_relay_crash_gives_duplicates_that_the_inbox_absorbs():
    viz = OutboxVisualizer("outbox-polling")
    viz.relay_crash.value = "every time"
    place_and_run(viz, 1)
    assert counter(viz, "duplicate_deliveries") > 0 and counter(viz, "duplicate_effects") == 0
    viz.relay_crash.value = "off"
    viz.run_button.click()
    report = independent_check(viz)
    assert counter(viz, "in_flight") == report.in_flight == 0 and report.ok


def test_without_the_inbox_a_consumer_crash_becomes_a_double_effect():
    viz = OutboxVisualizer("outbox-polling", inbox=False)
    viz.consumer_crash.value = "once"
    place_and_run(viz, 1)
    assert viz.consumer_crash.value == "off"   # fired once, then off
    assert counter(viz, "duplicate_effects") == 1 == independent_check(viz).duplicate_effects
    viz.inbox.value = True   # with the inbox the same failure is harmless
    viz.consumer_crash.value = "once"
    place_and_run(viz, 1)
    viz.run_button.click()
    assert counter(viz, "duplicate_effects") == 0 and counter(viz, "duplicate_deliveries") >= 1


@pytest.mark.parametrize("variant", ["db_then_publish", "publish_then_db", "outbox-polling",
                                     "outbox-log-tailing"])
@pytest.mark.parametrize("failure", list(FAULTS))
@pytest.mark.parametrize("mode", ["once", "every time"])
def test_counters_agree_with_the_checker_for_every_variant_failure_and_mode(variant, failure,
                                                                           mode):
    viz = OutboxVisualizer(variant)
    getattr(viz, failure).value = mode
    place_and_run(viz, 3)
    getattr(viz, failure).value = "off"
    viz.place.click()
    viz.run_button.click()
    report = independent_check(viz)
    for name in ("committed", "lost", "phantom", "duplicate_deliveries", "duplicate_effects",
                 "in_flight"):
        assert counter(viz, name) == getattr(report, name), name


def test_run_stops_at_a_crash_loop_and_says_why_and_reset_starts_over():
    """A relay crash set to every time would livelock on one row: run stops and says so."""
    viz = OutboxVisualizer("outbox-polling")
    viz.relay_crash.value = "every time"
    viz.place.click()
    taken = viz.run()
    assert taken < 3 * CRASH_LOOP + 3 and "crash loop" in viz.status.value
    assert counter(viz, "duplicate_deliveries") < CRASH_LOOP
    viz.reset_button.click()
    assert counter(viz, "committed") == 0 and viz.model.queued == 0
    assert viz.relay_crash.value == "off" and viz.model.faults.planned == frozenset()


def test_once_fires_at_the_next_visit_only_and_says_so():
    viz = OutboxVisualizer("outbox-polling")
    viz.relay_crash.value = "once"
    assert "(once)" in viz.diagram.value and "next time" in viz.status.value
    place_and_run(viz, 3)
    assert viz.model.faults.fired == [("relay.after_publish", 1)]
    assert viz.relay_crash.value == "off" and counter(viz, "duplicate_deliveries") == 1


@pytest.mark.parametrize(("variant", "fault", "bad"), [
    ("db_then_publish", "crash_after_commit", "lost"),       # the zombie record
    ("publish_then_db", "crash_after_publish", "phantom"),   # the ghost message
    ("publish_then_db", "crash_before_commit", "phantom"),
])
def test_the_naive_variants_produce_both_the_zombie_and_the_ghost(variant, fault, bad):
    viz = OutboxVisualizer(variant)
    getattr(viz, fault).value = "once"
    place_and_run(viz, 2)
    assert counter(viz, bad) == 1 == getattr(independent_check(viz), bad)


def test_the_outbox_with_a_crash_before_commit_loses_nothing_and_invents_nothing():
    viz = OutboxVisualizer("outbox-polling")
    viz.crash_before_commit.value = "once"
    place_and_run(viz, 2)
    report = independent_check(viz)
    assert report.lost == report.phantom == 0 and counter(viz, "committed") == 1


@pytest.mark.parametrize("op", list(MESSAGE_FAULTS))
def test_message_controls_drop_duplicate_or_delay_the_next_message_once(op):
    viz = OutboxVisualizer("outbox-polling")
    viz.message_buttons[op].click()
    assert "armed once" in viz.status.value
    place_and_run(viz, 2)
    viz.run_button.click()
    kinds = [r.kind for r in viz.model.trace]
    assert kinds.count({"drop": "drop", "duplicate": "duplicate", "delay": "delay"}[op]) == 1
    report = independent_check(viz)
    assert report.ok and report.in_flight == 0 and report.applied == 2
    assert viz.model.armed_messages == set()


@pytest.mark.parametrize("part", ["relay", "consumer"])
def test_a_stopped_part_lets_its_backlog_grow_and_drains_it_after_resume(part):
    viz = OutboxVisualizer("outbox-polling")
    viz.stop_toggles[part].value = True
    assert "stopped" in viz.diagram.value and viz.stop_toggles[part].description.startswith("resume")
    place_and_run(viz, 3)
    name = "backlog" if part == "relay" else "lag"
    assert counter(viz, name) == 3 and f"{'relay backlog' if part == 'relay' else 'consumer lag'} (stopped)" in viz.counters.value
    viz.run_button.click()
    assert "resume it" in viz.status.value
    viz.stop_toggles[part].value = False
    viz.run_button.click()
    assert counter(viz, name) == 0 and independent_check(viz).ok
    assert counter(viz, "in_flight") == 0 and counter(viz, "committed") == 3


def test_stopping_the_relay_of_a_naive_variant_is_refused_clearly():
    viz = OutboxVisualizer("db_then_publish")
    viz.stop_toggles["relay"].value = True
    assert "has no relay" in viz.status.value and viz.stop_toggles["relay"].value is False


def test_the_log_tailing_relay_shows_its_log_positions_and_stored_offset_uncut():
    viz = OutboxVisualizer("outbox-log-tailing")
    assert "transaction log" in viz.txlog.value
    place_and_run(viz, 2)
    assert re.search(r'data-name="offset">2<', viz.txlog.value)
    assert "offset stored: 2" in viz.log.value           # the detail is not cut
    assert "published" in viz.txlog.value and "relay_offsets" in viz.txlog.value
    assert txlog_html(OutboxVisualizer("outbox-polling").model) == ""


def test_scrubbing_back_shows_the_earlier_state_and_acting_there_starts_a_new_future():
    viz = OutboxVisualizer("outbox-polling")
    place_and_run(viz, 2)
    end = viz.timeline.position
    final = viz.counters.value
    viz.timeline_controls.slider.value = 1     # after the first "place order"
    assert counter(viz, "committed") == 0 and counter(viz, "queued") == 1
    assert viz.timeline_controls.forward_button.disabled is False
    viz.timeline_controls.forward_button.click()
    assert viz.timeline.position == 2 and counter(viz, "queued") == 2
    viz.timeline_controls.slider.value = end
    assert viz.counters.value == final
    viz.timeline_controls.back_button.click()
    assert viz.timeline.position == end - 1
    viz.timeline_controls.slider.value = 1
    viz.step_button.click()                    # a new future from position 1
    assert len(viz.timeline) == 2 and counter(viz, "committed") == 1


def test_controls_follow_the_state_when_scrubbing():
    viz = OutboxVisualizer()
    viz.relay_crash.value = "every time"
    viz.stop_toggles["consumer"].value = True
    viz.timeline_controls.slider.value = 0
    assert viz.relay_crash.value == "off" and viz.stop_toggles["consumer"].value is False
    viz.timeline_controls.slider.value = 2
    assert viz.relay_crash.value == "every time" and viz.stop_toggles["consumer"].value is True
    assert len(viz.timeline) == 2   # syncing the controls recorded nothing


def test_play_is_linked_to_the_slider_in_the_browser_and_speed_sets_its_interval():
    viz = OutboxVisualizer()
    tl = viz.timeline_controls
    assert tl.link.source == (tl.play, "value") and tl.link.target == (tl.slider, "value")
    place_and_run(viz, 1)
    assert tl.play.max == tl.slider.max == len(viz.timeline)
    tl.speed.value = 250
    assert tl.play.interval == 250 and "250 ms" in tl.readout.value


@pytest.mark.parametrize("story", STORIES, ids=lambda s: s.title[:30])
def test_every_story_runs_frame_by_frame_and_waits_for_next(story):
    viz = OutboxVisualizer()
    viz.stories.menu.value = story.title
    assert viz.variant.value == story.setup["variant"]
    assert "frame 1 of" in viz.stories.caption.value
    for n in range(2, len(story.frames) + 1):
        assert not viz.stories.next_button.disabled
        viz.stories.next_button.click()
        assert f"frame {n} of {len(story.frames)}" in viz.stories.caption.value
    assert viz.stories.next_button.disabled and "the end" in viz.stories.caption.value
    report = independent_check(viz)
    assert counter(viz, "lost") == report.lost and counter(viz, "phantom") == report.phantom


def test_the_stories_show_what_their_captions_promise():
    def ending(title):
        viz = OutboxVisualizer()
        viz.stories.play(title)
        while not viz.stories.next_button.disabled:
            viz.stories.next()
        return independent_check(viz), viz
    zombie, _ = ending(STORIES[0].title)
    ghost, _ = ending(STORIES[1].title)
    duplicate, _ = ending(STORIES[2].title)
    drained, viz = ending(STORIES[3].title)
    assert zombie.lost == 1 and ghost.phantom == 1
    assert duplicate.duplicate_deliveries == 1 and duplicate.duplicate_effects == 0
    assert drained.ok and counter(viz, "backlog") == 0 and drained.applied == 3


def test_a_refused_action_is_shown_not_raised():
    viz = OutboxVisualizer()
    viz._act(("fault", "no_such_fault", "once"))
    assert "refused" in viz.status.value and "fault must be one of" in viz.status.value
    assert len(viz.timeline) == 0


def test_bad_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        OutboxVisualizer("kafka-transactions")


def test_diagram_renderer_is_general_and_checks_its_input():
    svg = render_diagram([Node("a", "A <svc>", 60, 30), Node("b", "B", 200, 30, muted=True)],
                         [Edge("a", "b", "call", dashed=True)], active={"a"}, crashed={"b"},
                         title="t")
    assert svg.startswith("<svg") and "A &lt;svc&gt;" in svg
    assert 'data-id="a" data-active="true"' in svg and 'data-id="b" data-active="false" ' \
        'data-crashed="true"' in svg
    with pytest.raises(ValueError, match="unknown node"):
        render_diagram([Node("a", "A", 0, 0)], [Edge("a", "z")])
    with pytest.raises(ValueError, match="two nodes"):
        render_diagram([Node("a", "A", 0, 0), Node("a", "B", 1, 1)])
    with pytest.raises(TypeError, match="Node"):
        render_diagram(["a"])


def test_an_armed_failure_shows_on_its_box_before_it_fires():
    """A toggle changes the view at once: the diagram marks the box, with the mode."""
    viz = OutboxVisualizer()
    before = viz.diagram.value
    viz.relay_crash.value = "once"
    assert viz.diagram.value != before
    assert "⚡ crash after publish (once)" in viz.diagram.value
    viz.broker_down.value = "every time"
    assert "⚡ broker down (every time)" in viz.diagram.value
    viz.relay_crash.value = "off"
    assert "crash after publish" not in viz.diagram.value


def test_every_click_reports_in_the_status_line_even_when_there_is_nothing_to_do():
    viz = OutboxVisualizer()
    viz.run_button.click()
    first = viz.status.value
    assert "nothing to do" in first
    viz.run_button.click()
    assert viz.status.value != first  # numbered: a repeated click still shows
    viz.place.click()
    assert "queued" in viz.status.value
    viz.run_button.click()
    assert "then nothing left to do" in viz.status.value and viz.model.report().applied == 1
