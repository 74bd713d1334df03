"""The naive variants lose events (zombies) or invent them (ghosts); retries do not fix it."""

from __future__ import annotations

import pytest

from eda_lab import Broker, BrokerUnavailable, Clock, Crash, FaultPlan, OrderPipeline, Outage, Trace
from eda_lab.outbox import OrderService


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
