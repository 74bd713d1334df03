"""Agreement lag: per order, how long until every consumer agrees with the order service."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab.shop.charts import (
    agreement_histogram,
    agreement_timeline,
    sweep_chart,
    traffic_chart,
)
from eda_lab.shop.lag import (
    Agreement,
    agreement_rows,
    agreement_sweep,
    applied_times,
    arrival_times,
    broken_promises,
    committed_times,
    measure_agreement,
)
from eda_lab.stats import percentile


def test_agreement_is_set_by_the_last_consumer_and_waits_for_every_one():
    rows = agreement_rows({"order-2": 10.0, "order-1": 0.0, "order-3": 20.0},
                          {"shipping": {"order-1": 50.0, "order-2": 60.0, "order-3": 25.0},
                           "billing": {"order-1": 80.0, "order-2": 30.0}})
    assert [r.order_id for r in rows] == ["order-1", "order-2", "order-3"]  # commit order
    assert [(r.lag_ms, r.last) for r in rows] == [(80.0, "billing"), (50.0, "shipping"),
                                                 (None, None)]
    assert rows[2].applied_ms == {"shipping": 25.0, "billing": None}


def test_agreement_rows_refuses_bad_input():
    with pytest.raises(ValueError, match="at least one consumer"):
        agreement_rows({"order-1": 0.0}, {})
    with pytest.raises(TypeError, match="committed must map"):
        agreement_rows([("order-1", 0.0)], {"shipping": {}})


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([5, 1, 3, 2, 4], 50, 3), ([5, 1, 3, 2, 4], 100, 5), ([5, 1, 3, 2, 4], 0, 1),
    (list(range(1, 101)), 95, 95), ([], 50, None)])
def test_percentile_is_the_nearest_rank(values, q, expected):
    assert percentile(values, q) == expected


def test_percentile_refuses_a_share_outside_0_to_100():
    with pytest.raises(ValueError, match="q must be a percentage"):
        percentile([1.0], 101)


def test_every_order_reaches_every_consumer_and_the_lag_is_read_from_their_databases():
    result = measure_agreement(60, poll_interval_ms=200, seed=3)
    assert result.summary()["orders"] == result.summary()["agreed"] == 60
    # The relay polls every 200 ms, the consumers every 50 ms: no order waits longer than one
    # relay interval plus one consumer interval, and none is applied before it was committed.
    assert 0 < min(result.lags()) and max(result.lags()) <= 250
    frame = result.frame()
    assert list(frame.columns) == ["order_id", "committed_ms", "shipping_ms", "billing_ms",
                                   "analytics_ms", "lag_ms", "last"]
    slowest = frame[["shipping_ms", "billing_ms", "analytics_ms"]].max(axis=1)
    assert ((slowest - frame["committed_ms"]).round(6) == frame["lag_ms"].round(6)).all()


def test_a_log_tailing_relay_is_measured_the_same_way():
    result = measure_agreement(60, relay="log-tailing", poll_interval_ms=200, seed=3)
    assert result.summary()["agreed"] == 60 and max(result.lags()) <= 250


def test_a_longer_poll_interval_raises_the_everyday_lag():
    p50 = [measure_agreement(200, poll_interval_ms=p).summary()["p50_ms"] for p in (50, 500)]
    assert p50[0] < p50[1]


def test_an_outage_holds_back_exactly_the_orders_committed_during_it():
    result = measure_agreement(200, poll_interval_ms=100, outage_ms=2_000,
                               outage_start_ms=1_000, order_interval_ms=20)
    end = 3_000
    during = [r for r in result.rows if 1_000 <= r.committed_ms < end - 200]
    after = [r for r in result.rows if r.committed_ms >= end]
    assert during and after
    assert all(r.last == "analytics" and r.committed_ms + r.lag_ms >= end for r in during)
    assert max(r.lag_ms for r in after) <= 200
    assert result.summary()["max_ms"] > 1_500


def test_the_same_seed_gives_the_same_rows_and_another_seed_other_arrivals():
    first, second = measure_agreement(50, seed=5), measure_agreement(50, seed=5)
    assert first.rows == second.rows
    assert arrival_times(20, 20.0, seed=5) != arrival_times(20, 20.0, seed=6)


def test_crashes_delay_agreement_but_lose_no_order():
    result = measure_agreement(80, faults={"relay.after_publish": 0.05,
                                           "consumer.before_commit": 0.05}, seed=1)
    assert result.summary()["agreed"] == 80


def test_readers_of_the_databases_give_commit_and_first_apply_times():
    from eda_lab import Broker
    from eda_lab.outbox import OrderConsumer, OrderService, PollingRelay

    broker = Broker()
    broker.create_topic("orders")
    service = OrderService(broker)
    consumer = OrderConsumer(broker, inbox=False)
    service.place_order("order-1")
    relay = PollingRelay(service.db, broker)
    relay.poll_once()
    broker.clock.advance(40)
    consumer.poll_once()
    broker.clock.advance(30)
    consumer.handle(broker.messages("orders")[0])   # applied again later, without an inbox
    assert len(consumer.effects()) == 2
    assert committed_times(service.db) == {"order-1": 0.0}
    assert applied_times(consumer.db) == {"order-1": 40.0}


def test_stale_share_counts_orders_not_yet_known_everywhere():
    result = Agreement({"consumers": ("a",)}, tuple(agreement_rows(
        {"o1": 0.0, "o2": 0.0, "o3": 0.0, "o4": 0.0},
        {"a": {"o1": 50.0, "o2": 150.0, "o3": 400.0}})))
    assert result.stale_share([0, 100, 500]) == [
        {"after_ms": 0, "stale_share": 1.0}, {"after_ms": 100, "stale_share": 0.75},
        {"after_ms": 500, "stale_share": 0.25}]


def test_sweep_has_one_row_per_setting():
    rows = agreement_sweep([100, 500], [0, 1_000], n_orders=40)
    assert [(r["poll_interval_ms"], r["outage_ms"]) for r in rows] == [
        (100, 0), (500, 0), (100, 1_000), (500, 1_000)]
    assert all(r["agreed"] == 40 for r in rows)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_orders": 0}, "n_orders must be an integer >= 1"),
    ({"poll_interval_ms": 0}, "poll_interval_ms must be a number of ms > 0"),
    ({"outage_ms": -1}, "outage_ms must be a number of ms >= 0"),
    ({"order_interval_ms": float("nan")}, "order_interval_ms"),
    ({"consumers": ("a", "a")}, "consumers must be distinct"),
    ({"outage_ms": 500, "outage_consumer": "billing", "consumers": ("shipping",)},
     "outage_consumer must be one of"),
    ({"faults": ["relay.after_publish"]}, "faults must be a dict"),
    ({"faults": {"relay.nowhere": 1}}, "unknown fault point"),
    ({"relay": "carrier pigeon"}, "relay kind must be one of"),
])
def test_bad_settings_are_refused_naming_the_argument(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        measure_agreement(**{"n_orders": 5, **kwargs})


@pytest.mark.parametrize(("call", "message"), [
    (lambda: measure_agreement(outage_ms=1e9), "outage_ms must be .* <= 600000"),
    (lambda: measure_agreement(10_001), "n_orders must be an integer >= 1 and <= 10000"),
    (lambda: measure_agreement(300, order_interval_ms=600_000),
     r"n_orders x order_interval_ms must be at most 600,000 ms"),
    (lambda: agreement_sweep(range(1, 42), [0], n_orders=10), "at most 40 runs"),
    (lambda: agreement_sweep([100, 1e9], [0], n_orders=10), "each of poll_intervals_ms"),
    (lambda: agreement_sweep([100], 3_000, n_orders=10), "outages_ms must be a list"),
])
def test_sizes_that_would_run_for_minutes_are_refused_naming_the_limit(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_a_consumer_that_crashes_on_every_visit_ends_the_run():
    # it used to rejoin at once and crash again with the clock standing still (a hang)
    result = measure_agreement(20, faults={"consumer.before_commit": True})
    assert result.summary()["agreed"] < 20


def test_a_stale_copy_breaks_promises_a_consistent_check_keeps():
    arrivals = [0, 10, 20, 30, 40, 50, 300, 310]
    assert broken_promises(3, arrivals, 0) == {"buyers": 8, "accepted": 3, "sold": 3,
                                               "broken_promises": 0, "told_sold_out": 5}
    stale = broken_promises(3, arrivals, 100)
    assert stale["sold"] == 3 and stale["broken_promises"] == 3   # 10..50 all saw stock left
    with pytest.raises(ValueError, match="stock must be an integer"):
        broken_promises(-1, arrivals, 0)
    with pytest.raises(ValueError, match="lag_ms"):
        broken_promises(3, arrivals, -5)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 5), st.lists(st.floats(0, 2_000), max_size=30), st.floats(0, 1_000))
def test_never_more_sold_than_stock_and_every_buyer_answered(stock, arrivals, lag):
    result = broken_promises(stock, arrivals, lag)
    assert result["sold"] <= stock
    assert result["accepted"] + result["told_sold_out"] == len(arrivals)
    assert result["broken_promises"] == result["accepted"] - result["sold"]


def test_the_charts_draw_the_runs():
    result = measure_agreement(40, outage_ms=500, outage_start_ms=100)
    ax = agreement_histogram(result)
    assert "p95" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert all(float(t).is_integer() for t in ax.get_yticks())     # counts: whole ticks
    ax = agreement_timeline(result)
    assert any("analytics down" in t.get_text() for t in ax.get_legend().get_texts())
    assert ax.get_title().endswith("analytics down from 0.1 s to 0.6 s")   # from the settings
    late = measure_agreement(20, poll_interval_ms=600_000)     # nothing published in time
    assert "20 of 20 orders not agreed on" in agreement_histogram(late).get_title()
    ax = sweep_chart([{"poll_interval_ms": 100, "outage_ms": 0, "p95_ms": None},
                      {"poll_interval_ms": 500, "outage_ms": 0, "p95_ms": 520.0}])
    assert list(ax.lines[0].get_ydata()) == [520.0]     # a run with no lag is left out
    ax = sweep_chart([{"poll_interval_ms": 100, "outage_ms": 0, "p95_ms": 150.0},
                      {"poll_interval_ms": 500, "outage_ms": 0, "p95_ms": 520.0}])
    assert list(ax.lines[0].get_ydata()) == [150.0, 520.0]
    ax = traffic_chart([{"style": "orchestration", "scenario": "happy", "published": 10,
                         "delivered": 10}])
    assert [p.get_height() for p in ax.patches] == [10, 10]
    plt.close("all")
