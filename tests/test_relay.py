"""Both relays: in order, keyed by aggregate, resumable, duplicates on a crash, never a loss."""

from __future__ import annotations

import pytest

from eda_lab import Broker, Clock, Crash, FaultPlan, Trace, transaction
from eda_lab.outbox import LogTailingRelay, OrderService, PollingRelay, make_relay, write_event
from eda_lab.outbox.table import outbox_rows, pending

KINDS = ["polling", "log-tailing"]


def setup(kind: str, faults: dict | None = None, orders: int = 5, **settings):
    broker = Broker(Clock(), Trace(), FaultPlan(faults or {}))
    broker.create_topic("orders", 3)
    service = OrderService(broker)
    relay = make_relay(kind, service.db, broker, **settings)
    for _ in range(orders):
        service.place_order()
    return broker, service, relay


def published_ids(broker: Broker) -> list[str]:
    """Message ids in the order they were published (from the trace)."""
    return [r.message_id for r in broker.trace.of_kind("publish")]


@pytest.mark.parametrize("kind", KINDS)
def test_relay_publishes_every_row_once_keyed_by_aggregate(kind):
    broker, service, relay = setup(kind, batch_size=2)
    assert relay.backlog() == 5
    assert [relay.poll_once() for _ in range(4)] == [2, 2, 1, 0]
    messages = broker.messages("orders")
    assert sorted(m.id for m in messages) == sorted(r["id"] for r in outbox_rows(service.db))
    for m in messages:
        assert broker.partition_for("orders", m.key) == broker.partition_for("orders", m.key)
        assert m.headers == {"aggregatetype": "order", "version": "1"}
    assert relay.backlog() == 0


@pytest.mark.parametrize("kind", KINDS)
def test_relay_keeps_the_order_of_each_aggregate(kind):
    broker, service, relay = setup(kind, orders=0, batch_size=3)
    for n in range(1, 4):
        service.place_order(f"order-{n}")
    for step in ("OrderPaid", "OrderShipped"):
        for n in (3, 1, 2):
            service.record_event(f"order-{n}", step)
    relay.drain()
    for n in range(1, 4):
        versions = [int(m.headers["version"]) for m in broker.messages("orders")
                    if m.key == f"order-{n}"]
        assert versions == [1, 2, 3]


@pytest.mark.parametrize("kind", KINDS)
def test_relay_crash_after_publish_duplicates_but_loses_nothing(kind):
    broker, service, relay = setup(kind, {"relay.after_publish": 2}, batch_size=5)
    with pytest.raises(Crash):
        relay.poll_once()
    assert len(broker.messages("orders")) == 2 and relay.backlog() == 5
    restarted = make_relay(kind, service.db, broker, batch_size=5)  # a new process
    assert restarted.poll_once() == 5
    ids = published_ids(broker)
    assert len(ids) == 7 and len(set(ids)) == 5 and restarted.backlog() == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("point", ["relay.after_read", "relay.after_mark"])
def test_relay_crash_before_publishing_or_after_marking_repeats_nothing(kind, point):
    broker, service, relay = setup(kind, {point: 1}, batch_size=5)
    with pytest.raises(Crash):
        relay.poll_once()
    relay.drain()
    assert published_ids(broker) == [r["id"] for r in outbox_rows(service.db)]


@pytest.mark.parametrize("kind", KINDS)
def test_broker_refusal_stops_the_batch_and_keeps_the_rest_in_order(kind):
    broker, service, relay = setup(kind, {"broker.unavailable": 3}, batch_size=5)
    assert relay.poll_once() == 2
    assert relay.backlog() == 3
    assert relay.poll_once() == 3
    assert published_ids(broker) == [r["id"] for r in outbox_rows(service.db)]


def test_polling_relay_retains_published_rows_for_the_window_then_deletes_them():
    broker, service, relay = setup("polling", cleanup="retain", retention_ms=1_000)
    relay.poll_once()
    assert pending(service.db) == 0 and len(outbox_rows(service.db)) == 5
    broker.clock.advance(2_000)
    assert relay.purge() == 5 and outbox_rows(service.db) == []


def test_polling_relay_with_cleanup_delete_keeps_only_the_backlog():
    broker, service, relay = setup("polling", cleanup="delete", batch_size=3)
    relay.poll_once()
    assert [r["published_at"] for r in outbox_rows(service.db)] == [None, None]


def test_log_tailing_relay_never_sees_a_rolled_back_insert():
    broker, service, relay = setup("log-tailing", {"order.before_commit": 1}, orders=0)
    with pytest.raises(Crash):
        service.place_order()
    service.place_order()
    assert relay.backlog() == 1 and relay.poll_once() == 1
    assert [m.key for m in broker.messages("orders")] == ["order-2"]


def test_log_tailing_relay_resumes_from_its_stored_offset_and_cleans_up():
    broker, service, relay = setup("log-tailing", batch_size=2, cleanup="delete")
    relay.poll_once()
    assert relay.offset == 2
    again = LogTailingRelay(service.db, broker, batch_size=10, cleanup="delete")
    assert again.offset == 2 and again.poll_once() == 3
    assert outbox_rows(service.db) == [] and len(set(published_ids(broker))) == 5


def test_change_log_snapshots_rows_written_before_it_existed():
    broker, service, _ = setup("polling", orders=3)
    relay = LogTailingRelay(service.db, broker)
    assert relay.backlog() == 3


def test_relay_on_the_clock_restarts_after_a_crash():
    broker, service, relay = setup("polling", {"relay.after_publish": 1}, poll_interval_ms=100,
                                   restart_after_ms=500)
    relay.start()
    broker.clock.run(1_000)
    assert relay.crashes == 1 and relay.backlog() == 0 and len(set(published_ids(broker))) == 5


@pytest.mark.parametrize("settings, match", [
    ({"batch_size": 0}, "batch_size"), ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": 10**6}, "batch_size"), ({"poll_interval_ms": 0}, "poll_interval_ms"),
    ({"cleanup": "vacuum"}, "cleanup"), ({"retention_ms": -1}, "retention_ms"),
    ({"topic": ""}, "topic"), ({"table": "a b"}, "table"),
])
def test_bad_relay_settings_name_the_argument(settings, match):
    broker, service, _ = setup("polling", orders=1)
    with pytest.raises(ValueError, match=match):
        PollingRelay(service.db, broker, **settings)
    assert pending(service.db) == 1


def test_bad_relay_kind_and_broker_are_refused():
    broker, service, _ = setup("polling", orders=0)
    with pytest.raises(ValueError, match="relay kind"):
        make_relay("cdc", service.db, broker)
    with pytest.raises(TypeError, match="publish"):
        PollingRelay(service.db, object())
    with pytest.raises(TypeError, match="db"):
        PollingRelay("orders.db", broker)


def test_service_relay_and_broker_write_one_trace():
    broker, service, relay = setup("polling", orders=2)
    relay.poll_once()
    kinds = [r.kind for r in broker.trace]
    assert kinds == ["db_commit", "db_commit", "read", "publish", "publish", "mark"]
    assert service.trace is broker.trace is relay.trace and relay.faults is broker.faults


@pytest.mark.parametrize("kind", KINDS)
def test_retention_cleanup_runs_even_when_no_new_rows_arrive(kind):
    broker, service, relay = setup(kind, cleanup="retain", retention_ms=1_000)
    relay.poll_once()
    broker.clock.advance(500)
    relay.poll_once()
    assert len(outbox_rows(service.db)) == 5
    broker.clock.advance(1_000)
    relay.poll_once()   # an idle poll still cleans up
    assert outbox_rows(service.db) == []


def test_lag_grows_with_the_poll_interval_and_a_small_batch_falls_behind():
    from eda_lab.outbox.pipeline import lag_sweep

    rows = {(r["batch_size"], r["poll_interval_ms"]): r
            for r in lag_sweep([50, 500], [5, 50], n_orders=100, order_interval_ms=20)}
    assert rows[(50, 50)]["mean_lag_ms"] < rows[(50, 500)]["mean_lag_ms"] <= 500
    assert rows[(50, 500)]["published"] == 100
    assert rows[(5, 500)]["mean_lag_ms"] > rows[(50, 500)]["mean_lag_ms"]


@pytest.mark.parametrize("variant", ["outbox-polling", "outbox-log-tailing"])
def test_on_the_clock_crashing_relay_and_consumer_still_deliver_everything(variant):
    from eda_lab import OrderPipeline

    faults = {"relay.after_publish": [2, 9], "consumer.before_commit": [3], "relay.after_read": 5}
    pipeline = OrderPipeline(variant, faults, batch_size=4, poll_interval_ms=100)
    report = pipeline.simulate(40, order_interval_ms=25)
    assert report.ok and report.committed == 40 and report.in_flight == 0
    assert pipeline.relay.crashes == 3 and report.duplicate_deliveries > 0


def test_the_log_tailing_relay_streams_each_commit_a_moment_later_while_the_poller_waits():
    lags = {}
    for kind in KINDS:
        broker, service, relay = setup(kind, orders=0, poll_interval_ms=500.0)
        relay.start()
        clock = broker.clock
        for n in range(20):
            clock.call_at(n * 37.0, service.place_order)
        clock.run(20 * 37.0 + 2_000)
        commits = {r.message_id: r.time for r in broker.trace.of_kind("db_commit")}
        lags[kind] = [r.time - commits[r.message_id] for r in broker.trace.of_kind("publish")]
        assert len(lags[kind]) == 20
    assert max(lags["log-tailing"]) == 5.0   # STREAM_LATENCY_MS
    assert sum(lags["polling"]) / 20 > 20 * sum(lags["log-tailing"]) / 20


def test_a_log_tailing_relay_that_only_polls_has_the_polling_relays_lag():
    broker, service, relay = setup("log-tailing", orders=0, poll_interval_ms=500.0,
                                   stream_latency_ms=None)
    relay.start()
    broker.clock.call_at(10.0, service.place_order)
    broker.clock.run(1_000)
    (publish,) = broker.trace.of_kind("publish")
    assert publish.time == 500.0


def test_two_named_log_tailing_relays_each_publish_everything_and_cleanup_waits_for_both():
    broker = Broker(Clock(), Trace())
    broker.create_topic("orders", 3)
    broker.create_topic("audit", 1)
    service = OrderService(broker)
    first = LogTailingRelay(service.db, broker, name="to-orders", cleanup="delete")
    second = LogTailingRelay(service.db, broker, name="to-audit", topic="audit",
                             cleanup="delete")
    for _ in range(4):
        service.place_order()
    assert first.drain() == 4
    assert second.backlog() == 4 and second.drain() == 4   # the first did not delete them
    assert len(broker.messages("orders")) == len(broker.messages("audit")) == 4
    assert service.db[first.log].count == 0                 # both published: gone


def test_a_relay_routes_each_row_by_its_aggregate_type():
    broker = Broker(Clock(), Trace())
    for topic in ("orders", "payment.commands"):
        broker.create_topic(topic)
    service = OrderService(broker)
    relay = PollingRelay(service.db, broker,
                         topic=lambda kind: "orders" if kind == "order" else f"{kind}.commands")
    service.place_order("order-1")
    with transaction(service.db) as conn:
        write_event(conn, id="c1", aggregatetype="payment", aggregateid="saga-1",
                    type="AuthorizePayment", payload={})
    relay.drain()
    assert [m.type for m in broker.messages("orders")] == ["OrderPlaced"]
    assert [m.kind for m in broker.messages("payment.commands")] == ["command"]
