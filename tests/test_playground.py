"""The broker playground (notebook 02): its model, its widget, and the environment check."""

from __future__ import annotations

import pytest

from eda_lab import seed_ids
from eda_lab.environment import check_environment, environment_ok
from eda_lab.playground import BrokerPlayground
from eda_lab.widgets.broker_playground import BrokerPlaygroundWidget, groups_html
from eda_lab.widgets.widget_check import WidgetCheck

PNG = b"\x89PNG"


def test_offline_group_builds_a_backlog_and_catches_up_when_back():
    model = BrokerPlayground()
    model.set_online("shipping", False)
    model.publish_orders(5)
    assert model.groups().set_index("group").loc["shipping", "backlog"] == 5
    model.set_online("shipping", True)
    model.step()
    row = model.groups().set_index("group").loc["shipping"]
    assert row["backlog"] == 0 and row["handled"] == 5


def test_a_group_added_later_reads_the_whole_history():
    model = BrokerPlayground()
    model.publish_orders(5)
    model.add_group("analytics")
    assert sorted(model.handled["analytics"]) == [f"order-{n}" for n in range(1, 6)]


def test_backlog_samples_follow_the_groups_over_time():
    model = BrokerPlayground()
    model.set_online("shipping", False)
    model.publish_orders(3)
    samples = model.backlog_samples()
    assert set(samples["group"]) == {"shipping"}
    assert samples["backlog"].max() == 3 and samples["time"].is_monotonic_increasing


def test_playground_refuses_bad_input():
    model = BrokerPlayground()
    with pytest.raises(ValueError, match="n must be"):
        model.publish_orders(0)
    with pytest.raises(ValueError, match="exists already"):
        model.add_group("shipping")
    with pytest.raises(ValueError, match="group must be one of"):
        model.set_online("billing", False)
    with pytest.raises(ValueError, match="publish_every_ms"):
        BrokerPlayground(publish_every_ms=0)


def test_playground_is_deterministic():
    def run():
        seed_ids(0)
        model = BrokerPlayground()
        model.publish_orders(5)
        model.add_group("analytics")
        return model.trace.frame().to_dict("records")

    assert run() == run()


def test_widget_buttons_drive_the_model_and_redraw_the_views():
    w = BrokerPlaygroundWidget()
    chart_before, groups_before = w.chart.value, w.groups.value
    assert bytes(chart_before).startswith(PNG)
    w.publish.click()
    assert w.model.orders_placed == 5
    assert w.chart.value != chart_before and w.groups.value != groups_before
    assert "orders placed: 5" in w.groups.value


def test_widget_offline_toggle_marks_the_group_and_grows_its_backlog():
    w = BrokerPlaygroundWidget()
    w.shipping_online.value = False
    assert not w.model.is_online("shipping")
    assert "OFFLINE" in w.groups.value and w.shipping_online.description == "shipping OFFLINE"
    w.publish.click()
    assert w.model.broker.lag("shipping") == 5
    w.shipping_online.value = True
    w.advance.click()
    assert w.model.broker.lag("shipping") == 0


def test_widget_add_group_then_reset_starts_over():
    w = BrokerPlaygroundWidget()
    w.publish.click()
    w.add_analytics.click()
    assert "analytics" in w.groups.value and w.add_analytics.disabled
    w.shipping_online.value = False
    w.reset.click()
    assert w.model.orders_placed == 0 and list(w.model.workers) == ["shipping"]
    assert w.shipping_online.value is True and w.model.is_online("shipping")
    assert not w.add_analytics.disabled
    w.shipping_online.value = False  # the toggle still drives the new model
    assert not w.model.is_online("shipping")


def test_widget_has_the_css_hooks_the_browser_test_uses():
    w = BrokerPlaygroundWidget()
    assert "eda-broker-playground" in w.root._dom_classes
    controls = [w.publish, w.shipping_online, w.add_analytics, w.advance, w.reset]
    assert all("eda-control" in c._dom_classes for c in controls)
    assert "eda-view" in w.chart._dom_classes


def test_groups_table_escapes_and_lists_every_group():
    model = BrokerPlayground()
    model.add_group("analytics", step=False)
    html = groups_html(model)
    assert html.count("<tr") == 3 and "analytics" in html and "shipping" in html


def test_widget_check_changes_its_view_on_click():
    check = WidgetCheck()
    before = check.view.value
    check.button.click()
    assert check.view.value != before and "order-1" in check.view.value
    assert check.orders[0].type == "OrderPlaced"


def test_environment_check_lists_every_requirement():
    table = check_environment()
    assert {"python", "ipywidgets", "sqlite-utils", "simpy"} <= set(table["component"])
    assert environment_ok()


def test_reset_while_shipping_is_offline_starts_over_at_t_zero():
    from eda_lab.widgets.broker_playground import BrokerPlaygroundWidget

    widget = BrokerPlaygroundWidget()
    widget.publish.click()
    widget.shipping_online.value = False
    widget.reset.click()
    assert widget.model.clock.now == 0 and widget.model.orders_placed == 0
    assert widget.shipping_online.value and widget.model.is_online("shipping")
    widget.shipping_online.value = False  # the toggle still works after a reset
    assert not widget.model.is_online("shipping")


def test_offline_spans_are_what_the_chart_shades():
    model = BrokerPlayground()
    model.set_online("shipping", False)
    model.set_online("shipping", True)
    assert model.offline_spans() == [(0, 1_000)]  # offline at 0, back after one step


def test_the_partition_picture_marks_the_committed_offset_and_redeliveries():
    from eda_lab import Broker, Clock, ConsumerWorker, FaultPlan, event
    from eda_lab.playground import offsets_html

    clock = Clock()
    broker = Broker(clock, faults=FaultPlan({"consumer.before_commit": 1}))
    broker.create_topic("orders")
    for n in range(3):
        broker.publish("orders", event("OrderPlaced", f"order-{n}", {}))
    ConsumerWorker(broker, "shipping", "orders", lambda d: None, restart_after_ms=100_000)
    clock.run(until_ms=50)
    crashed = offsets_html(broker, "shipping")
    assert "committed = 0" in crashed and crashed.count("#FFE08A") == 3  # delivered, uncommitted
    clock.run(until_ms=200_000)
    done = offsets_html(broker, "shipping")
    assert "committed = 3" in done and "#FFE08A" not in done


def test_a_crash_before_the_commit_redelivers_and_the_timeline_can_show_it():
    model = BrokerPlayground()
    model.publish_orders(5)
    model.crash_next("shipping", step=False)
    assert "shipping crashes after its next message" in groups_html(model)
    model.publish_orders(5)
    model.step()
    worker = model.workers["shipping"]
    assert worker.crashes == 1 and not model.crash_armed
    keys = model.handled["shipping"]
    assert len(keys) > len(set(keys)) == 10  # one message handled twice, none lost
    frame = model.trace.frame()
    assert (frame["kind"] == "crash").sum() == 1
    delivered = frame[frame["kind"] == "deliver"]
    assert delivered["detail"].str.contains("attempt=2").any()  # the "redelivered" marks
    assert model.broker.lag("shipping") == 0
    with pytest.raises(ValueError, match="group must be one of"):
        model.crash_next("fraud")


def test_the_widget_crash_button_crashes_shipping():
    w = BrokerPlaygroundWidget()
    w.publish.click()
    w.crash_shipping.click()
    w.publish.click()
    w.advance.click()
    assert w.model.workers["shipping"].crashes == 1
    assert "eda-broker-playground-crash" in w.crash_shipping._dom_classes
