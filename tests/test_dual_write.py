"""The naive variants lose events (zombies) or invent them (ghosts); retries do not fix it."""

from __future__ import annotations

import pytest

from eda_lab import (
    Broker,
    BrokerUnavailable,
    Clock,
    Crash,
    FaultPlan,
    OrderPipeline,
    Outage,
    Trace,
    fault_points,
)
from eda_lab.outbox import OrderService
from eda_lab.outbox.dual_write import MAX_RETRIES, retry_on_clock, try_publish_inside_transaction
from eda_lab.outbox.pipeline import MAX_WALK_STEPS
from eda_lab.widgets.dual_write_lab import step_strip_html


def naive(variant: str, faults: dict | None = None, outages=(), retries: int = 0):
    broker = Broker(Clock(), Trace(), FaultPlan(faults or {}, outages=outages))
    broker.create_topic("orders")
    return broker, OrderService(broker, variant=variant, retries=retries)


def test_db_then_publish_with_the_broker_down_leaves_a_zombie_record():
    broker, service = naive("db_then_publish", {"broker.unavailable": 1})
    with pytest.raises(BrokerUnavailable):
        service.place_order()
    assert service.truth() == {"order-1": 1} and broker.messages("orders") == []


def test_db_then_publish_crash_after_commit_leaves_a_zombie_that_no_except_catches():
    broker, service = naive("db_then_publish", {"order.after_commit": 1})
    caught = False
    with pytest.raises(Crash):
        try:
            service.place_order()
        except Exception:  # noqa: BLE001 - the point: a dying process runs no handler
            caught = True
    assert not caught and len(service.orders()) == 1 and broker.messages("orders") == []


@pytest.mark.parametrize("point", ["order.after_publish", "order.before_commit"])
def test_publish_then_db_failure_to_commit_leaves_a_ghost_message(point):
    broker, service = naive("publish_then_db", {point: 1})
    with pytest.raises(Crash):
        service.place_order()
    assert service.orders() == [] and [m.key for m in broker.messages("orders")] == ["order-1"]


def test_publish_then_db_with_the_broker_down_is_consistent_but_the_order_fails():
    broker, service = naive("publish_then_db", {"broker.unavailable": 1})
    with pytest.raises(BrokerUnavailable):
        service.place_order()
    assert service.orders() == [] and broker.messages("orders") == []


def test_retries_ride_out_a_short_refusal_but_not_an_outage_or_a_crash():
    _, service = naive("db_then_publish", {"broker.unavailable": [1, 2]}, retries=2)
    service.place_order()
    broker, service = naive("db_then_publish", outages=[Outage("broker", 0, 1_000)], retries=5)
    with pytest.raises(BrokerUnavailable):
        service.place_order()
    assert len(service.orders()) == 1 and broker.messages("orders") == []
    broker, service = naive("db_then_publish", {"order.after_commit": 1}, retries=5)
    with pytest.raises(Crash):
        service.place_order()
    assert broker.messages("orders") == []


@pytest.mark.parametrize("variant, lost, phantom", [
    ("db_then_publish", True, False), ("publish_then_db", False, True),
    ("outbox-polling", False, False), ("outbox-log-tailing", False, False),
])
def test_over_many_orders_only_the_outbox_is_consistent(variant, lost, phantom):
    faults = {"broker.unavailable": 0.1, "order.after_commit": 0.1, "order.before_commit": 0.1}
    report = OrderPipeline(variant, faults, seed=3).run(200)
    assert (report.lost > 0) == lost and (report.phantom > 0) == phantom
    assert report.committed > 100 and report.duplicate_effects == 0


def test_a_pipeline_repeats_exactly_with_the_same_seed():
    faults = {"broker.unavailable": 0.2, "order.after_commit": 0.1}
    first = OrderPipeline("db_then_publish", faults, seed=5).run(100)
    assert OrderPipeline("db_then_publish", faults, seed=5).run(100) == first
    assert OrderPipeline("db_then_publish", faults, seed=6).run(100) != first


def test_pipeline_rejects_bad_input():
    with pytest.raises(ValueError, match="variant"):
        OrderPipeline("two-phase-commit")
    with pytest.raises(ValueError, match="unknown fault point"):
        OrderPipeline("outbox-polling", {"relay.after_lunch": 1})
    with pytest.raises(TypeError, match="faults"):
        OrderPipeline("outbox-polling", ["relay.after_publish"])
    with pytest.raises(ValueError, match="n_orders"):
        OrderPipeline().run(-1)
    with pytest.raises(ValueError, match="retries"):
        OrderService(variant="outbox", retries=-1)


# -- a walk always ends, and says why -----------------------------------------------------------
WALK_POINTS = fault_points("order.") + fault_points("broker.") + fault_points("consumer.")


@pytest.mark.parametrize("variant", ["db_then_publish", "publish_then_db"])
@pytest.mark.parametrize("point", WALK_POINTS)
@pytest.mark.parametrize("spec", [True, 1.0])
def test_a_walk_with_a_fault_that_always_fires_ends_and_says_why(variant, point, spec):
    pipeline = OrderPipeline(variant, {point: spec}, consumer_batch=1)
    walk = pipeline.walk(orders=2)
    assert len(walk.steps) <= MAX_WALK_STEPS
    assert walk.stopped.startswith("Stopped after") and walk.stopped.endswith(".")
    if len(walk.steps) == MAX_WALK_STEPS:
        assert "never got through" in walk.stopped


def test_a_crash_loop_and_a_dead_network_are_named():
    loop = OrderPipeline("db_then_publish", {"consumer.before_commit": True}).walk()
    dead = OrderPipeline("db_then_publish", {"broker.drop": 1.0}).walk()
    assert "crash loop" in loop.stopped
    assert "dropped all" in dead.stopped
    with pytest.raises(ValueError, match="max_steps"):
        OrderPipeline("db_then_publish").walk(max_steps=10 ** 6)


def test_the_step_strip_crosses_out_the_failed_write_and_badges_the_damage():
    zombie = OrderPipeline("db_then_publish", {"broker.unavailable": 1}, consumer_batch=1)
    html = step_strip_html(zombie, zombie.walk())
    assert "<s>publish OrderPlaced(order-1)</s>" in html and "ZOMBIE: order-1" in html
    ghost = OrderPipeline("publish_then_db", {"order.before_commit": 1}, consumer_batch=1)
    html = step_strip_html(ghost, ghost.walk())
    assert "<s>commit order-1 to the DB</s>" in html and "GHOST: order-1" in html
    assert "acted on ghost order-1" in html


# -- retries that wait on the clock --------------------------------------------------------------
def test_backoff_rides_out_an_outage_shorter_than_its_budget():
    short = [Outage("broker", 1_000, 1_300)]
    assert retry_on_clock(100, retries=0, outages=short).lost > 0
    patient = retry_on_clock(100, retries=3, backoff_ms=100, outages=short)
    assert patient.lost == 0 and patient.published == 100
    assert patient.p95_answer_ms > 0  # the price: customers wait for the retries


def test_a_longer_outage_or_a_crash_while_waiting_still_loses_events():
    longer = retry_on_clock(100, retries=3, backoff_ms=100, outages=[Outage("broker", 1_000, 4_000)])
    assert longer.lost_budget > 0 and longer.lost_crash == 0
    crash = retry_on_clock(100, retries=3, backoff_ms=100,
                           outages=[Outage("broker", 1_000, 1_300), Outage("order", 1_150, 1_250)])
    assert crash.lost_crash > 0 and "died while its retries waited" in crash.sentence()
    with pytest.raises(ValueError, match="retries"):
        retry_on_clock(10, retries=MAX_RETRIES + 1)


def test_publishing_inside_the_transaction_leaves_a_ghost_when_the_commit_fails():
    outcome = try_publish_inside_transaction(2, {"order.before_commit": 1})
    assert outcome == {"in the database": ["order-2"], "on the broker": ["order-1", "order-2"],
                       "failed": ["order-1"]}


def test_an_outbox_walk_held_up_by_its_relay_says_the_events_wait_in_the_outbox():
    stuck = OrderPipeline("outbox-polling", {"relay.after_publish": True}, batch_size=1).walk()
    assert "waiting in the outbox" in stuck.stopped and "crash loop" in stuck.stopped
    refused = OrderPipeline("outbox-polling", {"broker.unavailable": 1.0}).walk()
    assert "refused every publish" in refused.stopped and refused.stopped.endswith(".")


@pytest.mark.parametrize(("faults", "said"), [
    ({}, "Settled: 10 events committed, 0 lost"),
    ({"relay.after_publish": [1, 4]}, "Settled (relay.after_publish fired 2 times)"),
    ({"relay.after_publish": True}, "a crash loop: each restart publishes the same rows again"),
    ({"relay.after_read": True}, "crashed after every read"),
    ({"consumer.before_commit": 1.0}, "the consumer crashed before committing"),
    ({"broker.unavailable": True}, "the broker refused every publish"),
    ({"broker.drop": 1.0}, "the network dropped every delivery"),
    ({"order.before_commit": True}, "Nothing was committed (order.before_commit fired 10 times)"),
], ids=["none", "twice", "relay loop", "read loop", "consumer loop", "refused", "dropped",
        "nothing committed"])
def test_the_outcome_of_a_run_is_one_sentence_naming_what_held_it_up(faults, said):
    pipeline = OrderPipeline("outbox-polling", faults, batch_size=3, trace=False)
    pipeline.run(10)
    sentence = pipeline.outcome()
    assert said in sentence and sentence.endswith(".")
    assert sentence.startswith("Not settled") == (not pipeline.idle() and bool(faults)
                                                  and "order.before_commit" not in faults)
