"""The whole shop: one order's path through outbox, relay, saga and consumers, under every
named crash point, and with each safeguard turned off."""

from __future__ import annotations

import pytest

from eda_lab.faults import fault_points
from eda_lab.outbox import OrderService
from eda_lab.shop.chaos import FAMILIES
from eda_lab.shop.shop import CONSUMERS, STARTER_GROUP, Shop

SHOP_POINTS = [p for family in FAMILIES for p in fault_points(f"{family}.")]
# Reached only by a service that publishes before committing (the naive publish_then_db).
NAIVE_ONLY = {"order.after_publish"}


def verdict(shop: Shop) -> dict[str, int]:
    """Every invariant's count, summed over the downstream consumers."""
    reports = shop.consistency().values()
    return {"lost": sum(r.lost for r in reports), "phantom": sum(r.phantom for r in reports),
            "duplicate_effects": sum(r.duplicate_effects for r in reports),
            "order_violations": sum(r.order_violations for r in reports),
            "unfinished": len(shop.unfinished_orders()), "problems": len(shop.saga_problems())}


CLEAN = dict.fromkeys(("lost", "phantom", "duplicate_effects", "order_violations",
                       "unfinished", "problems"), 0)


def test_every_order_ends_in_a_finished_saga_and_every_consumer_agrees():
    shop = Shop(seed=2)
    assert shop.run(30)
    assert verdict(shop) == CLEAN
    outcomes = shop.saga_outcomes()
    assert set(outcomes) == {"completed", "compensated"}
    assert sum(outcomes.values()) == 30
    assert set(shop.consumers) == set(CONSUMERS)
    for report in shop.consistency().values():
        assert report.committed == 60 and report.applied == 60  # OrderPlaced + the outcome


def test_the_saga_outcome_is_announced_through_the_outbox_as_version_2():
    shop = Shop(seed=3)
    shop.run(20)
    status = {row["order_id"]: row["state"] for row in shop.service.orders()}
    assert set(shop.truth().values()) == {2}
    published = {(m.key, m.type) for m in shop.broker.messages("orders")}
    for order_id, state in status.items():
        expected = "OrderApproved" if state == "APPROVED" else "OrderRejected"
        assert (order_id, expected) in published and (order_id, "OrderPlaced") in published
    assert set(status.values()) <= {"APPROVED", "REJECTED"}
    finished = dict(shop.sagas.log.db.execute("SELECT order_id, status FROM sagas").fetchall())
    assert {o: ("APPROVED" if s == "completed" else "REJECTED") for o, s in finished.items()} \
        == status


def test_a_redelivered_order_placed_starts_no_second_saga():
    shop = Shop(seed=1, faults={"broker.duplicate": [1, 2, 3, 4, 5]})
    shop.run(10)
    assert shop.sagas.log.count() == 10
    ignored = [r for r in shop.trace.of_kind("ignore") if r.actor == "saga-starter"]
    assert ignored, "the duplicates reached the saga starter"
    assert verdict(shop) == CLEAN


@pytest.mark.parametrize("relay", ["polling", "log-tailing"])
@pytest.mark.parametrize("point", SHOP_POINTS)
def test_every_crash_point_loses_nothing_and_every_saga_finishes(point, relay):
    # the orchestrator publishes a command itself (saga.after_send) only in resend-all
    recovery = "resend-all" if point == "saga.after_send" else "deadlines"
    shop = Shop(seed=4, faults={point: [1, 3, 8]}, relay=relay, recovery=recovery)
    assert shop.run(12), "the shop settled"
    if point not in NAIVE_ONLY:
        assert shop.faults.fired, f"{point} was reached and fired"
    assert verdict(shop) == CLEAN


def test_without_the_outbox_a_crash_after_the_commit_leaves_zombies():
    shop = Shop(seed=5, outbox=False, faults={"order.after_commit": [2, 5]})
    assert shop.relay is None
    shop.run(10)
    zombies = [order_id for order_id, why in shop.failed_orders
               if why == "crash at order.after_commit"]
    assert len(zombies) == 2
    assert sorted(shop.unfinished_orders()) == sorted(zombies)   # no saga ever started
    for report in shop.consistency().values():
        assert sorted(report.lost_events) == sorted((z, 1) for z in zombies)


def test_publishing_before_the_commit_leaves_a_ghost_that_the_saga_refuses():
    shop = Shop(seed=6, outbox=False, dual_write="publish_then_db",
                faults={"order.before_commit": [3]})
    shop.run(8)
    ghost = shop.failed_orders[0][0]
    assert ghost not in shop.truth()
    assert verdict(shop)["phantom"] == len(CONSUMERS)          # each consumer applied it
    state = shop.sagas.log.get(f"saga-{ghost}")
    assert state.status == "compensated" and "ghost" in state.reason


def test_without_the_inbox_every_duplicate_delivery_is_a_duplicate_effect():
    shop = Shop(seed=7, inbox=False, faults={"relay.after_publish": [2, 9]})
    shop.run(10)
    for report in shop.consistency().values():
        assert report.duplicate_effects == report.duplicate_deliveries > 0


def test_calm_stops_every_fault_and_keeps_what_fired():
    shop = Shop(seed=8, faults={"broker.drop": 1.0})
    shop.place_orders(3)
    storm = shop.calm()
    assert storm.fired and not shop.faults.fired
    assert shop.broker.faults is shop.service.faults is shop.relay.faults is shop.faults
    assert shop.settle()
    assert not shop.faults.fired and verdict(shop) == CLEAN


def test_the_same_seed_gives_the_same_run_and_another_seed_another_stream():
    def run(seed):
        shop = Shop(seed=seed, faults={p: 0.02 for p in SHOP_POINTS}, trace=False)
        assert shop.run(40)
        return shop.saga_outcomes(), shop.consistency_lags(), shop.faults.fired

    assert run(9) == run(9)
    assert run(9) != run(10)


def test_consistency_lag_is_measured_for_every_finished_order():
    shop = Shop(seed=2)
    shop.run(25)
    lags = shop.consistency_lags()
    assert set(lags) == set(shop.truth())
    # ten saga hops, each waiting for a relay that polls every 100 ms, and the consumers
    assert all(0 < lag < 2_000 for lag in lags.values())
    assert len(shop.saga_end_times()) == shop.finished_sagas() == 25


def test_tick_is_called_while_orders_arrive_and_while_settling():
    shop = Shop(seed=1)
    ticks = []
    shop.run(120, tick=lambda: ticks.append(shop.clock.now))
    assert len(ticks) >= 3 and ticks == sorted(ticks)


def test_orders_ride_through_an_idle_broker_group_until_the_orchestrator_is_back():
    shop = Shop(seed=3, faults={"saga.after_record": [1, 2, 3, 4, 5, 6]})
    shop.run(15)
    assert shop.sagas.restarts >= 6
    assert not shop.starter.dead_letters          # the starter waited, it gave up on none
    assert shop.broker.lag(STARTER_GROUP) == 0
    assert verdict(shop) == CLEAN


@pytest.mark.parametrize(("settings", "message"), [
    ({"relay": "kafka"}, "relay must be one of"),
    ({"dual_write": "both"}, "dual_write must be one of"),
    ({"consumers": ["billing"]}, "each of consumers must be one of"),
    ({"consumers": ["analytics", "analytics"]}, "must not repeat"),
    ({"order_interval_ms": 0}, "order_interval_ms must be a number of ms > 0"),
    ({"faults": {"relay.explode": 1}}, "unknown fault point"),
])
def test_bad_settings_are_refused_naming_the_argument(settings, message):
    with pytest.raises(ValueError, match=message):
        Shop(**settings)


def test_bad_arguments_to_run_are_refused_before_anything_happens():
    shop = Shop()
    with pytest.raises(TypeError, match="seed must be an integer"):
        Shop(seed="1")
    with pytest.raises(TypeError, match="outbox must be True or False"):
        Shop(outbox="yes")
    with pytest.raises(TypeError, match="inbox must be True or False"):
        Shop(inbox=1)
    with pytest.raises(TypeError, match="consumers must be a list"):
        Shop(consumers="analytics")
    with pytest.raises(ValueError, match="n_orders must be an integer >= 0"):
        shop.run(-1)
    with pytest.raises(TypeError, match="tick must be a function"):
        shop.place_orders(3, tick=5)
    with pytest.raises(ValueError, match="max_ms must be a number of ms > 0"):
        shop.settle(0)
    assert shop.placed == 0 and shop.clock.now == 0


def test_order_service_details_travel_in_the_event_and_are_checked():
    service = OrderService(variant="outbox")
    service.place_order(customer="ada", amount=30.0, details={"sku": "book", "quantity": 2})
    assert '"sku":"book","quantity":2' in list(service.db["outbox"].rows)[0]["payload"]
    with pytest.raises(ValueError, match=r"details must not repeat \['amount'\]"):
        service.place_order(details={"amount": 1})
    with pytest.raises(TypeError, match="details must be a dict"):
        service.place_order(details=["sku"])
    assert len(service.orders()) == 1


def test_a_participant_reads_one_sagas_replies_by_its_id():
    shop = Shop(seed=2)
    shop.run(12)
    inventory = shop.sagas.participants["inventory"]
    everything = inventory.replies()
    one = inventory.replies("saga-order-1")
    assert one and all(r["command_id"].startswith("saga-order-1:") for r in one)
    assert [r for r in everything if r["command_id"].startswith("saga-order-1:")] == one
    ten = inventory.replies("saga-order-10")   # order-1's range does not hold order-10's
    assert ten and not {r["command_id"] for r in ten} & {r["command_id"] for r in one}


def test_compensations_in_the_same_millisecond_are_in_order_but_a_later_earlier_step_is_not():
    from eda_lab.saga.checks import undone_in_order

    expected = ["reserve_inventory", "create_order"]
    assert undone_in_order([(5.0, "create_order"), (5.0, "reserve_inventory")], expected)
    assert undone_in_order([(4.0, "reserve_inventory"), (5.0, "create_order")], expected)
    assert not undone_in_order([(4.0, "create_order"), (5.0, "reserve_inventory")], expected)
    assert not undone_in_order([(4.0, "reserve_inventory")], expected)
    assert not undone_in_order([(4.0, "reserve_inventory"), (4.0, "reserve_inventory")], expected)
