"""The Transactional Outbox Visualizer, headless: click, then read the model and the HTML."""

from __future__ import annotations

import re

import pytest

from eda_lab.outbox import check_consistency
from eda_lab.widgets.diagram import Edge, Node, render_diagram
from eda_lab.widgets.outbox_visualizer import FAILURES, RUN_STEPS, OutboxVisualizer


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
    controls = [viz.variant, viz.inbox, viz.place, viz.step_button, viz.run_button,
                viz.reset_button, *viz.toggles.values()]
    assert all("eda-control" in c._dom_classes for c in controls)
    assert all("eda-view" in v._dom_classes for v in (viz.diagram, viz.counters, viz.tables,
                                                       viz.log))
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
    viz.broker_down.value = True
    place_and_run(viz, 2)
    assert counter(viz, "lost") == 2 == independent_check(viz).lost
    assert re.search(r'data-id="broker" data-active="\w+" data-crashed="true"', viz.diagram.value)


def test_naive_publish_then_db_with_a_crash_shows_no_loss_but_the_outbox_shows_none_either():
    viz = OutboxVisualizer("db_then_publish")
    viz.crash_after_commit.value = True
    place_and_run(viz, 2)
    assert counter(viz, "lost") == 2
    viz.variant.value = "outbox-log-tailing"   # changing the variant starts over
    assert counter(viz, "committed") == 0
    viz.crash_after_commit.value = True
    place_and_run(viz, 2)
    assert counter(viz, "lost") == 0 and counter(viz, "committed") == 2


def test_relay_crash_gives_duplicates_that_the_inbox_absorbs():
    viz = OutboxVisualizer("outbox-polling")
    viz.relay_crash.value = True
    place_and_run(viz, 1)
    assert counter(viz, "duplicate_deliveries") > 0 and counter(viz, "duplicate_effects") == 0
    viz.relay_crash.value = False
    viz.run_button.click()
    report = independent_check(viz)
    assert counter(viz, "in_flight") == report.in_flight == 0 and report.ok


def test_without_the_inbox_a_consumer_crash_becomes_a_double_effect():
    viz = OutboxVisualizer("outbox-polling", inbox=False)
    viz.consumer_crash.value = True
    place_and_run(viz, 1)
    viz.consumer_crash.value = False
    viz.run_button.click()
    assert counter(viz, "duplicate_effects") >= 1 == (independent_check(viz).duplicate_effects >= 1)
    viz.inbox.value = True   # with the inbox the same failure is harmless
    viz.consumer_crash.value = True
    place_and_run(viz, 1)
    viz.consumer_crash.value = False
    viz.run_button.click()
    assert counter(viz, "duplicate_effects") == 0 and counter(viz, "duplicate_deliveries") >= 1


@pytest.mark.parametrize("variant", ["db_then_publish", "publish_then_db", "outbox-polling",
                                     "outbox-log-tailing"])
@pytest.mark.parametrize("failure", list(FAILURES))
def test_counters_agree_with_the_checker_for_every_variant_and_failure(variant, failure):
    viz = OutboxVisualizer(variant)
    getattr(viz, failure).value = True
    place_and_run(viz, 3)
    getattr(viz, failure).value = False
    viz.place.click()
    viz.run_button.click()
    report = independent_check(viz)
    for name in ("committed", "lost", "phantom", "duplicate_deliveries", "duplicate_effects",
                 "in_flight"):
        assert counter(viz, name) == getattr(report, name), name


def test_run_is_bounded_and_reset_starts_over():
    viz = OutboxVisualizer("outbox-polling")
    viz.relay_crash.value = True   # the relay never gets past its first event
    viz.place.click()
    assert viz.run() == RUN_STEPS
    viz.reset_button.click()
    assert counter(viz, "committed") == 0 and viz.model.queued == 0
    assert viz.relay_crash.value and viz.model.faults.points == {"relay.after_publish": "always"}


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
    """A toggle changes the view at once: the diagram marks the box the failure will hit."""
    viz = OutboxVisualizer()
    before = viz.diagram.value
    viz.relay_crash.value = True
    assert viz.diagram.value != before
    assert "⚡ crash after publish" in viz.diagram.value
    viz.broker_down.value = True
    assert "⚡ down" in viz.diagram.value
    viz.relay_crash.value = False
    assert "crash after publish" not in viz.diagram.value


def test_every_action_reports_in_the_status_line_even_when_there_is_nothing_to_do():
    viz = OutboxVisualizer()
    viz.run_button.click()
    first = viz.status.value
    assert "nothing left to do" in first
    viz.run_button.click()
    assert viz.status.value != first  # numbered: a repeated action still shows
    viz.place.click()
    assert "queued" in viz.status.value
    viz.run_button.click()
    assert "steps, then nothing left to do" in viz.status.value and viz.model.report().applied == 1
