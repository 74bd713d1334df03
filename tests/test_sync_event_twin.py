"""The event-driven twin: the same load and outages, answered at once, processed later."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab import Outage, SyncChain, fault_points
from eda_lab.sync import EventDrivenTwin, load_services
from eda_lab.sync.chain import DOWN
from eda_lab.sync.twin import ORDERS_TOPIC

CONSUMERS = ("payment", "inventory", "shipping")
SLOW_INVENTORY = Outage("inventory", 10_000, 20_000, "slow", 20)
LOAD = {"rate_per_s": 30, "duration_ms": 30_000, "seed": 1}


@pytest.fixture(scope="module")
def services():
    return load_services()


@pytest.fixture(scope="module")
def twin(services):
    return EventDrivenTwin(services, "order", CONSUMERS)


@pytest.fixture(scope="module")
def calm(twin):
    return twin.run(**LOAD)


@pytest.fixture(scope="module")
def slow(twin):
    return twin.run(**LOAD, outages=[SLOW_INVENTORY])


def assert_every_order_fully_processed(run):
    consistency = run.consistency()
    assert consistency["orders_placed"] == run.summary()["succeeded"] > 0
    assert consistency["fully_processed"] == consistency["orders_placed"]
    assert run.orders["fully_processed_ms"].notna().all()


# -- what the client sees -------------------------------------------------------------------------
def test_the_client_waits_only_for_the_order_service(services, twin):
    run = twin.run(rate_per_s=5, duration_ms=2_000_000, seed=3)
    assert twin.expected_latency_ms() == services["order"].mean_ms == 20
    assert run.summary()["mean_ms"] == pytest.approx(twin.expected_latency_ms(), rel=0.02)
    successes = run.summary()["success_rate"]
    standard_error = math.sqrt(0.999 * 0.001 / run.summary()["requests"])
    assert successes == pytest.approx(twin.expected_availability(), abs=4 * standard_error)


def test_a_downstream_outage_changes_nothing_the_client_sees(calm, slow, twin):
    assert slow.requests.equals(calm.requests)
    down = twin.run(**LOAD, outages=[Outage("inventory", 10_000, 20_000)])
    assert down.requests.equals(calm.requests)


def test_the_sync_chain_fails_where_the_twin_rides_through(services, slow):
    sync = SyncChain(services, ("order", *CONSUMERS)).run(**LOAD, outages=[SLOW_INVENTORY])
    window = slice(10, 20)
    sync_during = sync.windows().iloc[window]["success_rate"].mean()
    twin_during = slow.windows().iloc[window]["success_rate"].mean()
    assert sync_during < 0.7 and twin_during > 0.99


# -- backlog and consistency lag ----------------------------------------------------------------
def test_a_slow_consumer_builds_a_backlog_and_works_it_off(slow):
    backlog = slow.backlog
    inventory = backlog[backlog["group"] == "inventory"]
    during = inventory[(inventory["time"] >= 10_000) & (inventory["time"] < 20_000)]
    assert during["backlog"].max() > 150
    assert during["backlog"].is_monotonic_increasing or during["backlog"].iloc[-1] > 150
    assert inventory["backlog"].iloc[-1] == 0
    others = backlog[backlog["group"] != "inventory"]
    assert others["backlog"].max() < 20, "the other groups keep up meanwhile"


def test_every_order_is_fully_processed_after_the_outage_and_the_lag_shows_it(calm, slow):
    assert_every_order_fully_processed(calm)
    assert_every_order_fully_processed(slow)
    assert calm.consistency()["lag_max_ms"] < 1_000
    assert slow.consistency()["lag_max_ms"] > 5_000
    assert slow.consistency()["all_processed_at_s"] > 20
    windows = slow.windows()
    assert windows.loc[11, "lag_p95_ms"] > 10 * windows.loc[5, "lag_p95_ms"]


def test_the_order_service_commits_each_placed_order_in_its_own_database(slow):
    rows = list(slow.order_db["orders"].rows)
    assert len(rows) == slow.consistency()["orders_placed"]
    placed = slow.orders.set_index("order")["placed_ms"]
    assert all(placed[row["id"]] == row["placed_at"] for row in rows)
    assert len(slow.broker.topic(ORDERS_TOPIC)) == len(rows)


def test_a_down_consumer_group_catches_up_when_it_returns(twin):
    run = twin.run(**LOAD, outages=[Outage("shipping", 5_000, 15_000)])
    assert_every_order_fully_processed(run)
    shipped = run.orders["shipping_ms"]
    placed = run.orders["placed_ms"]
    during = (placed >= 5_000) & (placed < 14_000)
    assert (shipped[during] >= 15_000).all(), "nothing is shipped while shipping is down"


def test_a_group_too_slow_for_the_load_never_drains_within_the_limit(services):
    twin = EventDrivenTwin({**services, "payment": services["payment"].changed(mean_ms=1_000)},
                           "order", ["payment"])
    run = twin.run(rate_per_s=20, duration_ms=10_000, drain_limit_ms=5_000)
    consistency = run.consistency()
    assert consistency["fully_processed"] < consistency["orders_placed"]
    assert math.isnan(consistency["all_processed_at_s"])
    assert run.ended_ms == 15_000


# -- outages at the front door --------------------------------------------------------------------
def test_an_order_service_outage_fails_requests_in_both_wirings(twin):
    run = twin.run(**LOAD, outages=[Outage("order", 5_000, 10_000)])
    failed = run.requests[~run.requests["ok"]]
    down = failed[failed["reason"] == DOWN]
    # the broker refuses 0.1% of the publishes on its own; everything else is the outage
    assert (down["failed_at"] == "order").sum() > 100
    assert set(down["failed_at"]) <= {"order", "broker"}
    assert_every_order_fully_processed(run)


def test_a_broker_outage_fails_the_request_and_rolls_the_order_back(twin):
    run = twin.run(**LOAD, outages=[Outage("broker", 5_000, 8_000)])
    failed = run.requests[~run.requests["ok"]]
    assert set(failed["failed_at"]) >= {"broker"}
    assert run.order_db["orders"].count == run.summary()["succeeded"]
    assert_every_order_fully_processed(run)


# -- crash points and faults --------------------------------------------------------------------
CRASH_POINTS = fault_points("broker.") + fault_points("consumer.")


@pytest.mark.parametrize("spec", [0.05, [3, 10, 11, 50]], ids=["5%", "hits"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_no_placed_order_is_lost_at_any_crash_point(twin, point, spec):
    run = twin.run(rate_per_s=20, duration_ms=10_000, seed=2, faults={point: spec})
    assert run.broker.faults.fired, f"{point} never fired: the test would prove nothing"
    assert_every_order_fully_processed(run)
    assert run.order_db["orders"].count == run.summary()["succeeded"]
    if point == "broker.unavailable":
        assert set(run.requests.loc[~run.requests["ok"], "failed_at"]) >= {"broker"}


@settings(max_examples=25, deadline=None)
@given(outages=st.lists(st.builds(
    lambda target, start, length, mode: Outage(target, start, start + length, mode,
                                               10 if mode == "slow" else 1),
    target=st.sampled_from(CONSUMERS), start=st.integers(0, 4_000),
    length=st.integers(1, 4_000), mode=st.sampled_from(["down", "slow"])), max_size=3),
    failure_prob=st.sampled_from([0.0, 0.1, 0.5]), seed=st.integers(0, 100))
def test_downstream_outages_and_failures_never_lose_an_order(services, outages, failure_prob,
                                                             seed):
    flaky = {n: p.changed(failure_prob=failure_prob) if n in CONSUMERS else p
             for n, p in services.items()}
    twin = EventDrivenTwin(flaky, "order", CONSUMERS)
    run = twin.run(rate_per_s=20, duration_ms=5_000, outages=outages, seed=seed)
    orders = run.orders
    for group in CONSUMERS:
        dead = run.dead_lettered[group]
        handled = set(orders.loc[orders[f"{group}_ms"].notna(), "order"])
        assert handled | dead == set(orders["order"]), f"{group} lost an order"
        assert not handled & dead
    assert run.requests.equals(EventDrivenTwin(flaky, "order", CONSUMERS).run(
        rate_per_s=20, duration_ms=5_000, seed=seed).requests)


# -- coupling -------------------------------------------------------------------------------------
def test_adding_a_consumer_group_leaves_the_order_service_alone(twin, calm):
    wider = twin.with_consumer("notifier").with_consumer("analytics")
    assert wider.source_of("order") == twin.source_of("order")
    assert wider.wiring() == {ORDERS_TOPIC: [*CONSUMERS, "notifier", "analytics"]}
    assert wider.expected_latency_ms() == twin.expected_latency_ms()
    run = wider.run(**LOAD)
    assert run.requests.equals(calm.requests)
    assert_every_order_fully_processed(run)
    assert run.orders["notifier_ms"].notna().all()


# -- bad input and determinism ------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"consumers": ["billing"]}, "unknown service 'billing'"),
    ({"consumers": ["order"]}, "'order' is the entry service"),
    ({"entry": "nobody"}, "unknown service 'nobody'"),
    ({"partitions": 0}, "partitions must be an integer >= 1"),
    ({"poll_interval_ms": 0}, "poll_interval_ms must be a number of ms > 0"),
    ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
])
def test_bad_wiring_is_refused(services, kwargs, message):
    with pytest.raises(ValueError, match=message):
        EventDrivenTwin(services, **kwargs)


@pytest.mark.parametrize(("run_kwargs", "message"), [
    ({"outages": [Outage("analytics", 0, 10)]}, "outage target 'analytics' is not a service"),
    ({"faults": {"relay.nonsense": 1}}, "unknown fault point 'relay.nonsense'"),
    ({"rate_per_s": 0}, "rate_per_s must be a number > 0"),
    ({"drain_limit_ms": -1}, "drain_limit_ms must be a number of ms >= 0"),
])
def test_bad_runs_are_refused(twin, run_kwargs, message):
    with pytest.raises(ValueError, match=message):
        twin.run(**run_kwargs)


def test_the_same_seed_gives_the_same_twin_run(twin, slow):
    again = twin.run(**LOAD, outages=[SLOW_INVENTORY])
    assert again.requests.equals(slow.requests)
    assert again.backlog.equals(slow.backlog)
    assert again.orders.equals(slow.orders)
    assert len(again.trace) == len(slow.trace) > 0


def test_the_broker_is_on_the_clients_path_and_in_the_closed_form(services):
    twin = EventDrivenTwin(services, "order", CONSUMERS)
    assert twin.expected_availability() == pytest.approx(0.999 * 0.999)
    run = twin.run(**LOAD, outages=[Outage("broker", 5_000, 7_000)])
    # the publish comes after the order service's own work (about 20 ms), so a request that
    # starts in the last few ms of the outage may publish after the broker is back
    hit = run.requests.query("5_000 <= start_ms < 6_900")
    assert len(hit) > 20 and not hit["ok"].any()
    assert set(hit["failed_at"]) == {"broker"}
    assert "a dual write" in twin.source_of("order")
