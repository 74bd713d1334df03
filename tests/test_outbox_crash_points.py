"""The outbox's claim, proved over every named crash point and over random fault plans:
with an inbox, nothing is lost, nothing is phantom, nothing takes effect twice."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab import Crash, OrderPipeline, fault_points
from eda_lab.outbox.pipeline import OUTBOX_PIPELINES, default_crash_points

WRITE_PATH_POINTS = fault_points("order.") + fault_points("relay.") + fault_points("consumer.")


def test_the_write_path_has_the_crash_points_the_course_names():
    assert {"order.before_commit", "order.after_commit", "order.after_publish",
            "relay.after_read", "relay.after_publish", "relay.after_mark",
            "consumer.before_commit"} <= set(WRITE_PATH_POINTS)


@pytest.mark.parametrize("variant", OUTBOX_PIPELINES)
@pytest.mark.parametrize("point", WRITE_PATH_POINTS)
@pytest.mark.parametrize("hit", [1, 2, 3, 5])
def test_outbox_loses_nothing_at_any_crash_point(variant, point, hit):
    pipeline = OrderPipeline(variant, {point: hit}, batch_size=2, trace=False)
    report = pipeline.run(6, poll_every=2)
    assert report.lost == 0 and report.phantom == 0, report
    assert report.duplicate_effects == 0 and report.order_violations == 0
    assert report.in_flight == 0 and report.committed == len(pipeline.service.orders())
    assert report.committed == 6 - (point == "order.before_commit")


@pytest.mark.parametrize("variant", OUTBOX_PIPELINES)
def test_without_an_inbox_a_relay_crash_becomes_a_double_effect(variant):
    report = OrderPipeline(variant, {"relay.after_publish": 1}, inbox=False,
                           batch_size=2).run(4)
    assert report.lost == report.phantom == 0 and report.duplicate_effects == 1


@pytest.mark.parametrize("point, variant, lost, phantom", [
    ("order.after_commit", "db_then_publish", 2, 0),
    ("broker.unavailable", "db_then_publish", 2, 0),
    ("order.before_commit", "publish_then_db", 0, 2),
    ("order.after_publish", "publish_then_db", 0, 2),
])
def test_naive_variants_lose_or_invent_exactly_the_crashed_orders(point, variant, lost, phantom):
    report = OrderPipeline(variant, {point: [1, 3]}).run(6, poll_every=2)
    assert (report.lost, report.phantom) == (lost, phantom)


def test_the_crash_point_table_is_all_zero_for_the_outbox():
    from eda_lab.outbox import try_every_crash_point

    rows = try_every_crash_point()
    assert {r["point"] for r in rows} == set(default_crash_points())
    for row in rows:
        if row["variant"] in OUTBOX_PIPELINES:
            assert row["lost"] == row["phantom"] == row["duplicate_effects"] == 0, row
    naive_losses = sum(r["lost"] + r["phantom"] for r in rows
                       if r["variant"] not in OUTBOX_PIPELINES)
    assert naive_losses > 0


POINTS = WRITE_PATH_POINTS + ["broker.unavailable", "broker.drop", "broker.duplicate"]
plans = st.dictionaries(st.sampled_from(POINTS),
                        st.lists(st.integers(1, 12), min_size=1, max_size=4), max_size=5)


@settings(max_examples=200, deadline=None)
@given(plan=plans, variant=st.sampled_from(OUTBOX_PIPELINES), orders=st.integers(1, 15),
       batch=st.integers(1, 5), poll_every=st.integers(1, 4), updates=st.integers(0, 6),
       seed=st.integers(0, 1000))
def test_outbox_with_inbox_survives_random_fault_plans(plan, variant, orders, batch,
                                                       poll_every, updates, seed):
    pipeline = OrderPipeline(variant, plan, seed=seed, batch_size=batch, trace=False)
    pipeline.run(orders, poll_every=poll_every, settle=False)
    placed = sorted(pipeline.service.truth())
    for i in range(updates):  # later events of the same orders: their order must hold too
        if placed:
            try:
                pipeline.service.record_event(placed[i % len(placed)], "OrderConfirmed")
            except Crash:
                pass
        pipeline.relay_poll()
        pipeline.consumer_poll()
    pipeline.settle()
    report = pipeline.report()
    assert report.lost == 0 and report.phantom == 0, (report, report.lost_events)
    assert report.duplicate_effects == 0 and report.order_violations == 0
    assert report.in_flight == 0 and pipeline.idle()
