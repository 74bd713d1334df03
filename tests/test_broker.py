"""The in-memory broker: partitions, fan-out, consumer groups, offsets, at-least-once, faults."""

from __future__ import annotations

import pytest

from eda_lab import Broker, BrokerError, BrokerUnavailable, Clock, FaultPlan, Outage, Trace, event
from eda_lab.broker import CommitFailed, UnknownTopic
from eda_lab.partitioning import murmur2, partition_for


def order(i: int, key: str | None = None):
    return event("OrderPlaced", key or f"order-{i}", {"n": i})


# -- partitions and keys ------------------------------------------------------------------

@pytest.mark.parametrize("data, expected", [
    (b"21", -973932308), (b"foobar", -790332482), (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971), (b"abc", 479470107),
])
def test_murmur2_matches_kafkas_test_vectors(data, expected):
    assert murmur2(data) == expected


def test_a_keys_partition_is_stable_and_spreads_keys():
    assert partition_for("order-42", 6) == partition_for("order-42", 6)
    used = {partition_for(f"order-{i}", 6) for i in range(100)}
    assert used == set(range(6))


def test_order_is_kept_per_key(broker):
    broker.create_topic("orders", 4)
    for i in range(40):
        broker.publish("orders", order(i, key=f"order-{i % 5}"))
    consumer = broker.consumer("shipping", "orders")
    seen: dict[str, list[int]] = {}
    for d in consumer.poll(1000):
        seen.setdefault(d.message.key, []).append(d.message.payload["n"])
    assert all(ns == sorted(ns) and len(ns) == 8 for ns in seen.values())


def test_publish_returns_partition_and_offset(broker):
    broker.create_topic("orders", 3)
    p = broker.partition_for("orders", "order-1")
    assert broker.publish("orders", order(1, "order-1")) == (p, 0)
    assert broker.publish("orders", order(2, "order-1")) == (p, 1)


# -- groups: fan-out and sharing -----------------------------------------------------------

def test_every_group_gets_every_message(broker):
    broker.create_topic("orders", 2)
    shipping = broker.consumer("shipping", "orders")
    analytics = broker.consumer("analytics", "orders")
    for i in range(10):
        broker.publish("orders", order(i))
    assert len(shipping.poll(100)) == 10
    assert len(analytics.poll(100)) == 10


def test_consumers_of_one_group_share_the_partitions(broker):
    broker.create_topic("orders", 4)
    a = broker.consumer("shipping", "orders", name="a")
    b = broker.consumer("shipping", "orders", name="b")
    assert set(a.assignment).isdisjoint(b.assignment)
    assert len(a.assignment) == len(b.assignment) == 2
    for i in range(20):
        broker.publish("orders", order(i))
    got = [d.message.payload["n"] for d in a.poll(100) + b.poll(100)]
    assert sorted(got) == list(range(20))


def test_partitions_move_when_a_consumer_leaves(broker):
    broker.create_topic("orders", 4)
    a = broker.consumer("shipping", "orders", name="a")
    b = broker.consumer("shipping", "orders", name="b")
    b.close()
    assert len(a.assignment) == 4 and b.assignment == []
    assert broker.trace.count("rebalance") == 3


def test_a_group_created_before_publishing_keeps_messages_while_no_consumer_runs(broker):
    broker.create_topic("orders")
    broker.subscribe("shipping", "orders")
    for i in range(5):
        broker.publish("orders", order(i))
    assert broker.lag("shipping") == 5
    late = broker.consumer("shipping")
    assert [d.message.payload["n"] for d in late.poll(10)] == [0, 1, 2, 3, 4]


def test_a_new_group_can_start_at_the_end(broker):
    broker.create_topic("orders")
    broker.publish("orders", order(0))
    c = broker.consumer("audit", "orders", start="latest")
    broker.publish("orders", order(1))
    assert [d.message.payload["n"] for d in c.poll(10)] == [1]


# -- offsets and at-least-once --------------------------------------------------------------

def test_polled_but_uncommitted_messages_are_redelivered_after_a_crash(broker):
    broker.create_topic("orders")
    for i in range(3):
        broker.publish("orders", order(i))
    first = broker.consumer("shipping", "orders", name="first")
    deliveries = first.poll(10)
    first.commit(deliveries[0])
    first.crash()
    second = broker.consumer("shipping", name="second")
    again = second.poll(10)
    assert [(d.offset, d.attempt) for d in again] == [(1, 2), (2, 2)]
    assert all(d.redelivered for d in again)


def test_committed_messages_are_not_redelivered(broker):
    broker.create_topic("orders")
    for i in range(3):
        broker.publish("orders", order(i))
    c = broker.consumer("shipping", "orders", name="c")
    c.poll(10)
    c.commit()
    c.crash()
    assert broker.consumer("shipping").poll(10) == []
    assert broker.lag("shipping") == 0


def test_a_consumer_that_keeps_its_partition_keeps_its_position(broker):
    broker.create_topic("orders", 2)
    a = broker.consumer("shipping", "orders", name="a")
    for i in range(10):
        broker.publish("orders", order(i))
    a.poll(100)
    broker.consumer("shipping", name="b")  # takes one partition from a
    assert a.poll(100) == []  # a's remaining partition was already read


def test_seek_to_committed_replays_the_uncommitted(broker):
    broker.create_topic("orders")
    broker.publish("orders", order(0))
    c = broker.consumer("g", "orders")
    c.poll(10)
    c.seek_to_committed()
    assert [d.attempt for d in c.poll(10)] == [2]


# -- misuse -----------------------------------------------------------------------------------

def test_unknown_topic_names_the_known_ones(broker):
    broker.create_topic("orders")
    with pytest.raises(UnknownTopic, match="'payments'.*'orders'"):
        broker.publish("payments", order(1))
    with pytest.raises(UnknownTopic):
        broker.consumer("g", "payments")


@pytest.mark.parametrize("partitions", [0, -1, 1.5, "2", True])
def test_bad_partition_counts_are_refused(broker, partitions):
    with pytest.raises(ValueError, match="partitions must be an integer >= 1"):
        broker.create_topic("orders", partitions)


def test_a_topic_cannot_change_its_partition_count(broker):
    broker.create_topic("orders", 2)
    assert broker.create_topic("orders", 2) is broker.topic("orders")
    with pytest.raises(BrokerError, match="cannot change"):
        broker.create_topic("orders", 3)


def test_commit_of_an_offset_never_delivered_is_refused(broker):
    broker.create_topic("orders")
    broker.publish("orders", order(0))
    broker.publish("orders", order(1))
    c = broker.consumer("g", "orders")
    d = c.poll(1)[0]
    fake = d._replace(offset=1)
    with pytest.raises(CommitFailed, match="never delivered"):
        c.commit(fake)
    assert broker.group("g").committed[("orders", 0)] == 0


def test_commit_after_the_partition_moved_is_refused(broker):
    broker.create_topic("orders")
    broker.publish("orders", order(0))
    a = broker.consumer("g", "orders", name="a")
    d = a.poll(1)[0]
    a.close()
    b = broker.consumer("g", name="b")
    with pytest.raises(BrokerError, match="left the group"):
        a.commit(d)
    b.poll(10)
    broker.create_topic("other")
    stranger = broker.consumer("h", "other")
    with pytest.raises(CommitFailed, match="not assigned"):
        stranger.commit(d)
    b.commit(d)
    assert broker.group("g").committed[("orders", 0)] == 1


def test_other_misuse_gets_clear_errors(broker):
    broker.create_topic("orders")
    c = broker.consumer("g", "orders", name="c")
    with pytest.raises(ValueError, match="max_messages"):
        c.poll(0)
    with pytest.raises(TypeError, match="Message"):
        broker.publish("orders", {"type": "OrderPlaced"})
    with pytest.raises(BrokerError, match="already has an active consumer"):
        broker.consumer("g", name="c")
    with pytest.raises(BrokerError, match="already reads"):
        broker.create_topic("payments")
        broker.subscribe("g", "payments")
    with pytest.raises(BrokerError, match="does not exist yet"):
        broker.consumer("nobody")
    with pytest.raises(ValueError, match="start"):
        broker.subscribe("h", "orders", start="middle")
    with pytest.raises(TypeError, match="Delivery"):
        c.commit(3)


# -- faults --------------------------------------------------------------------------------

def test_broker_unavailable_raises_and_stores_nothing(broker_with):
    b = broker_with(FaultPlan({"broker.unavailable": 2}))
    b.publish("orders", order(0))
    with pytest.raises(BrokerUnavailable, match="order-1"):
        b.publish("orders", order(1))
    b.publish("orders", order(2))
    assert [m.payload["n"] for m in b.messages("orders")] == [0, 2]
    assert b.trace.count("unavailable") == 1


def test_broker_outage_window_refuses_publishes_and_returns_no_deliveries():
    b = Broker(Clock(), Trace(), FaultPlan(outages=[Outage("broker", 100, 200)]))
    b.create_topic("orders")
    c = b.consumer("g", "orders")
    b.publish("orders", order(0))
    b.clock.advance(150)
    with pytest.raises(BrokerUnavailable):
        b.publish("orders", order(1))
    assert c.poll(10) == []
    b.clock.advance(100)
    assert len(c.poll(10)) == 1


@pytest.mark.filterwarnings("ignore::eda_lab.faults.FaultValueWarning")  # the 1st is meant
def test_a_dropped_delivery_is_redelivered_not_lost(broker_with):
    b = broker_with(FaultPlan({"broker.drop": 1}))
    for i in range(3):
        b.publish("orders", order(i))
    c = b.consumer("g", "orders")
    assert c.poll(10) == []  # the first delivery was lost on the way
    again = c.poll(10)
    assert [(d.offset, d.attempt) for d in again] == [(0, 2), (1, 1), (2, 1)]
    assert b.trace.count("drop") == 1


@pytest.mark.filterwarnings("ignore::eda_lab.faults.FaultValueWarning")  # the 1st is meant
def test_a_duplicated_delivery_arrives_twice(broker_with):
    b = broker_with(FaultPlan({"broker.duplicate": 1}))
    b.publish("orders", order(0))
    got = b.consumer("g", "orders").poll(10)
    assert [(d.offset, d.attempt) for d in got] == [(0, 1), (0, 2)]


@pytest.mark.filterwarnings("ignore::eda_lab.faults.FaultValueWarning")  # the 1st is meant
def test_a_delayed_message_holds_back_its_partition_until_visible(broker_with):
    b = broker_with(FaultPlan({"broker.delay": 1}))
    b.delay_ms = 500
    b.publish("orders", order(0))
    b.publish("orders", order(1))
    c = b.consumer("g", "orders")
    assert c.poll(10) == []  # order 1 waits behind order 0: order per partition
    b.clock.advance(500)
    assert [d.message.payload["n"] for d in c.poll(10)] == [0, 1]


def test_trace_records_every_publish_delivery_and_commit(broker):
    broker.create_topic("orders")
    c = broker.consumer("g", "orders")
    for i in range(3):
        broker.publish("orders", order(i))
    c.poll(10)
    c.commit()
    kinds = [r.kind for r in broker.trace]
    assert kinds.count("publish") == 3 and kinds.count("deliver") == 3 and kinds.count("commit") == 1
    frame = broker.trace.frame()
    assert list(frame[frame.kind == "deliver"]["offset"]) == [0, 1, 2]
