"""Self-checks of notebook 02's exercises."""

from __future__ import annotations

from collections.abc import Callable

from ..broker import Broker
from ..clock import Clock
from ..consumer import ConsumerWorker
from ..faults import FaultPlan
from ..messages import event
from ._common import verdict

FRAUD_LIMIT = 50
STEPS = ("OrderPlaced", "OrderPaid", "OrderShipped")
ORDERS = tuple(f"order-{n}" for n in range(1, 7))


def dead_letters(broker) -> list[str]:
    """The messages the consumers gave up on, with the reason each handler raised."""
    if not isinstance(broker, Broker) or "orders.DLT" not in broker.topics:
        return []
    return [f"{m.key}: {dict(m.headers).get('dlt.reason')}" for m in broker.messages("orders.DLT")]


def check_exercise_1(flagged, broker=None, totals=None) -> None:
    """The fraud group flagged exactly the orders over 50; shows what its handler swallowed."""
    totals = totals or {"order-1": 24.0, "order-2": 90.0, "order-3": 35.5, "order-4": 120.0}
    if not isinstance(flagged, list):
        return verdict(False, f"flagged must be a list of order keys, got {flagged!r}")
    expected = {key for key, total in totals.items() if total > FRAUD_LIMIT}
    got = set(flagged)
    swallowed = dead_letters(broker)
    if got == expected and len(flagged) == len(expected):
        return verdict(True, f"{len(expected)} orders over {FRAUD_LIMIT} flagged, and the order "
                             "service did not change")
    parts = []
    if not flagged:
        parts.append("nothing was flagged: did the consumer group run (clock.run) and append "
                     "the key?")
    if got - expected:
        parts.append(f"{sorted(got - expected)} are not over {FRAUD_LIMIT}")
    if len(flagged) != len(got):
        parts.append("some keys were flagged twice")
    missing = len(expected - got)
    if missing and flagged:
        parts.append(f"{missing} order(s) over {FRAUD_LIMIT} are missing")
    if swallowed:
        parts.append("your handler raised, and the consumer dead-lettered: "
                     + "; ".join(swallowed))
    return verdict(False, "; ".join(parts))


def batch_commit_run(crash_after: int = 3, commit_every: int = 5, messages: int = 10) -> int:
    """How many messages a consumer handles that commits every ``commit_every`` and crashes
    once after handling the ``crash_after``-th."""
    clock = Clock()
    broker = Broker(clock, faults=FaultPlan({"consumer.before_commit": crash_after}))
    broker.create_topic("orders")
    handled = []
    ConsumerWorker(broker, "shipping", "orders", lambda d: handled.append(d.offset),
                   commit_every=commit_every, max_batch=10, restart_after_ms=100)
    for n in range(messages):
        broker.publish("orders", event("OrderPlaced", f"order-{n}", {}, clock=clock))
    clock.run(until_ms=5_000)
    return len(handled)


def check_exercise_2(prediction) -> None:
    """Predicted: how many messages the batch-committing consumer handles in total."""
    if isinstance(prediction, bool) or not isinstance(prediction, int):
        return verdict(False, f"prediction must be a whole number, got {prediction!r}")
    actual = batch_commit_run()
    if prediction == actual:
        return verdict(True, f"the simulation handled {actual}")
    return verdict(False, f"the simulation handled {'more' if actual > prediction else 'fewer'} "
                          f"than {prediction}: which handled messages had not been committed "
                          "when it crashed?")


def tracking_run(key_for: Callable[[str, str], str]) -> dict[str, list[str]]:
    """Publish Placed, Paid, Shipped for six orders keyed by ``key_for(order, step)``; two
    consumers of one group, one slower than the other, process them; each order's steps in
    the order they were processed."""
    clock = Clock()
    broker = Broker(clock)
    broker.create_topic("orders", partitions=3)
    for step in STEPS:
        for order in ORDERS:
            key = key_for(order, step)
            if not isinstance(key, str) or not key:
                raise ValueError(f"key_for({order!r}, {step!r}) must return a non-empty "
                                 f"string, got {key!r}")
            broker.publish("orders", event(step, key, {"order": order}, clock=clock))
    seen: dict[str, list[str]] = {order: [] for order in ORDERS}

    def track(delivery):
        seen[delivery.message.payload["order"]].append(delivery.message.type)

    ConsumerWorker(broker, "tracking", "orders", track, name="tracking-a", processing_ms=10)
    ConsumerWorker(broker, "tracking", "orders", track, name="tracking-b", processing_ms=35)
    clock.run(until_ms=5_000)
    return seen


def out_of_order(seen: dict[str, list[str]]) -> list[str]:
    """The orders whose steps were not processed Placed, Paid, Shipped."""
    return [order for order, steps in seen.items() if steps != list(STEPS)]


def check_exercise_3(key_for, answer) -> None:
    """A key that breaks per-order ordering, and an order it broke."""
    if not callable(key_for):
        return verdict(False, "key_for must be a function key_for(order, step) -> str")
    try:
        seen = tracking_run(key_for)
    except Exception as error:  # the learner's function: say what it did
        return verdict(False, f"key_for raised {type(error).__name__}: {error}")
    broken = out_of_order(seen)
    if not broken:
        return verdict(False, "with this key every order's events were processed in order: "
                              "all of one order's events still share a partition")
    if answer not in seen:
        return verdict(False, f"answer must be one of {list(ORDERS)}, got {answer!r} "
                              f"({len(broken)} order(s) were processed out of order)")
    if answer not in broken:
        return verdict(False, f"{answer} was processed in order ({' -> '.join(seen[answer])}); "
                              "look at the table the cell printed")
    return verdict(True, f"{answer} was processed {' -> '.join(seen[answer])}: its events sat "
                         "in different partitions, read by different consumers")
