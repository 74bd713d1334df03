"""Consumers on their own schedule: retries with backoff, dead letters, offline, crashes."""

from __future__ import annotations

import pytest

from eda_lab import ConsumerWorker, FaultPlan, event
from eda_lab.consumer import dead_letter_topic


def order(i, key=None):
    return event("OrderPlaced", key or f"order-{i}", {"n": i})


def test_a_worker_processes_every_message_on_the_clock(broker):
    broker.create_topic("orders", 2)
    seen = []
    ConsumerWorker(broker, "shipping", "orders", lambda d: seen.append(d.message.payload["n"]),
                   processing_ms=10)
    for i in range(6):
        broker.publish("orders", order(i))
    broker.clock.run(1_000)
    assert sorted(seen) == list(range(6)) and broker.lag("shipping") == 0


def test_a_slow_consumer_builds_a_backlog_it_works_off_later(broker):
    broker.create_topic("orders")
    ConsumerWorker(broker, "analytics", "orders", lambda d: None, processing_ms=100)
    for i in range(10):
        broker.publish("orders", order(i))
    broker.clock.run(500)
    assert 4 <= broker.lag("analytics") <= 6
    broker.clock.run(2_000)
    assert broker.lag("analytics") == 0


def test_a_failing_handler_is_retried_with_backoff_then_dead_lettered(broker):
    broker.create_topic("orders")
    attempts = []

    def handler(d):
        if d.message.payload["n"] == 1:
            attempts.append(broker.clock.now)
            raise ValueError("card declined")

    worker = ConsumerWorker(broker, "payment", "orders", handler, max_attempts=3,
                            backoff_ms=100, backoff_factor=2)
    for i in range(3):
        broker.publish("orders", order(i, key="order-x"))
    broker.clock.run(2_000)
    assert attempts == [0, 100, 300]  # waits 100 ms, then 200 ms
    dlt = broker.messages(dead_letter_topic("orders"))
    assert [m.payload["n"] for m in dlt] == [1]
    assert dlt[0].headers["dlt.reason"] == "ValueError: card declined"
    assert dlt[0].headers["dlt.attempts"] == "3"
    assert worker.handled == 2  # the rest of the partition carried on
    assert broker.lag("payment") == 0
    assert broker.trace.count("retry") == 2 and broker.trace.count("dead_letter") == 1


def test_an_offline_consumer_catches_up_when_it_comes_back(broker):
    broker.create_topic("orders")
    seen = []
    worker = ConsumerWorker(broker, "shipping", "orders", lambda d: seen.append(d.offset))
    worker.go_offline()
    for i in range(5):
        broker.publish("orders", order(i))
    broker.clock.run(1_000)
    assert seen == [] and broker.lag("shipping") == 5
    worker.go_online()
    broker.clock.run(2_000)
    assert seen == [0, 1, 2, 3, 4] and broker.lag("shipping") == 0


def test_a_crash_before_commit_redelivers_the_handled_message(broker_with):
    broker = broker_with(FaultPlan({"consumer.before_commit": 1}))
    effects = []
    worker = ConsumerWorker(broker, "shipping", "orders", lambda d: effects.append(d.message.id),
                            restart_after_ms=50)
    broker.publish("orders", order(0))
    broker.clock.run(1_000)
    assert worker.crashes == 1
    assert len(effects) == 2 and effects[0] == effects[1]  # at least once: a duplicate effect
    assert broker.lag("shipping") == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(max_attempts=0), "max_attempts"), (dict(poll_interval_ms=0), "poll_interval_ms"),
    (dict(processing_ms=-1), "processing_ms"), (dict(commit_every=0), "commit_every"),
    (dict(backoff_factor=0.5), "backoff_factor"),
])
def test_bad_worker_settings_are_refused(broker, kwargs, match):
    broker.create_topic("orders")
    with pytest.raises(ValueError, match=match):
        ConsumerWorker(broker, "g", "orders", lambda d: None, **kwargs)


def test_handler_must_be_callable(broker):
    broker.create_topic("orders")
    with pytest.raises(TypeError, match="handler"):
        ConsumerWorker(broker, "g", "orders", "not a function")
