"""The event-driven twin of the synchronous chain: publish the fact and answer.

The same shop under the same load and the same outages, wired the other way. The order service
does its own work, saves the order in its own database, publishes ``OrderPlaced`` to the
``orders`` topic of a real :class:`~eda_lab.broker.Broker` and answers the client at once. The
other services are **consumer groups** of that topic: each runs
:class:`~eda_lab.consumer.ConsumerWorker` processes that take the service's mean latency per
message, at their own pace.

What changes, and what this module measures:

* the client waits only for the order service, so user-facing latency and success are the
  order service's own, whatever happens downstream;
* a slow or down downstream service builds a **backlog** (messages its group has not yet
  committed) instead of failing requests, and works it off when it recovers;
* the price is **consistency lag**: an order is *fully processed* only when every group has
  handled it, some time after the client was told "OK".

The order service publishes right after its local commit, inside the transaction: the naive
dual write of notebook 03 (publish, then COMMIT: a commit that fails after the publish leaves a
ghost message). It is safe here only because this model's commit cannot fail after the publish;
notebook 04's transactional outbox removes that assumption.

The broker is a dependency on the client's path too: a publish it refuses fails the request
(the order is rolled back and the customer told so), so the twin's closed form is the order
service's availability times the broker's (``broker_failure_prob``, 0.1% like every service).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property

from .. import _validate as check
from ..broker import Broker, BrokerUnavailable, Delivery
from ..clock import Clock
from ..consumer import ConsumerWorker
from ..db import open_db, transaction
from ..faults import FaultPlan, Outage
from ..messages import event
from ..trace import Trace
from .chain import (
    DOWN,
    SAMPLE_MS,
    WINDOW_MS,
    CallSimulation,
    RunResult,
    ServiceProfile,
    as_catalog,
    check_load,
    check_names,
    check_sync_outages,
    rounded_percentile,
)

ORDERS_TOPIC = "orders"
PARTITIONS = 4
POLL_INTERVAL_MS = 50.0  # how long an idle consumer sleeps before polling again
DRAIN_LIMIT_MS = 600_000.0  # stop waiting for the backlogs this long after the last arrival
DEFAULT_CONSUMERS = ("payment", "inventory", "shipping")
BROKER = "broker"

PUBLISH_SOURCE = '''def handle_{entry}(request):
    do_own_work(request)  # {does} (~{mean_ms:g} ms)
    with transaction(order_db):
        save_order(request)
        # a dual write: notebook 03 shows why this is unsafe, 04 fixes it
        broker.publish("{topic}", OrderPlaced(request))
    return "OK"  # accepted: payment, inventory and shipping happen later
'''


class ServiceFailed(Exception):
    """A downstream service failed to handle a message (its consumer will retry it)."""


class TwinRun(RunResult):
    """The result of :meth:`EventDrivenTwin.run`: user-facing requests, plus backlog and lag."""

    def __init__(self, sim: CallSimulation, duration_ms: float, outages: tuple[Outage, ...],
                 rate_per_s: float, *, groups: Sequence[str], placed: Mapping[int, float],
                 processed: Mapping[str, Mapping[int, float]],
                 dead_lettered: Mapping[str, set[int]], backlog: list[tuple], broker: Broker,
                 order_db, ended_ms: float):
        super().__init__("event-driven", sim, duration_ms, outages, rate_per_s)
        self.groups = tuple(groups)
        self.broker = broker
        self.trace = broker.trace
        self.order_db = order_db
        self.ended_ms = ended_ms
        self._placed = dict(placed)
        self._processed = {g: dict(done) for g, done in processed.items()}
        # Per group, the orders whose message went to the dead-letter topic.
        self.dead_lettered = {g: set(orders) for g, orders in dead_lettered.items()}
        self._backlog = backlog

    @cached_property
    def backlog(self):
        """Messages not yet committed, per consumer group over time (time, group, backlog)."""
        import pandas as pd

        return pd.DataFrame.from_records(self._backlog, columns=("time", "group", "backlog"))

    @cached_property
    def orders(self):
        """One row per placed order: when it was placed, when each group handled it, the lag.

        ``fully_processed_ms`` is when the last group handled it (empty if a group never did:
        its message went to the dead-letter topic, or the run stopped first).
        """
        import pandas as pd

        frame = pd.DataFrame({"order": list(self._placed), "placed_ms": list(self._placed.values())})
        for group in self.groups:
            frame[f"{group}_ms"] = frame["order"].map(self._processed[group]).astype(float)
        done = frame[[f"{g}_ms" for g in self.groups]]
        frame["fully_processed_ms"] = done.max(axis=1).where(done.notna().all(axis=1))
        frame["lag_ms"] = frame["fully_processed_ms"] - frame["placed_ms"]
        return frame

    def consistency(self) -> dict:
        """How long the shop disagreed with itself: the lag until each order was fully processed."""
        frame = self.orders
        lag = frame["lag_ms"].dropna().to_numpy()
        last = float(frame["fully_processed_ms"].max()) if len(lag) else math.nan
        return {
            "orders_placed": len(frame), "fully_processed": len(lag),
            "dead_lettered": sum(len(orders) for orders in self.dead_lettered.values()),
            "lag_mean_ms": round(float(lag.mean()), 1) if len(lag) else math.nan,
            "lag_p95_ms": rounded_percentile(lag, 95),
            "lag_max_ms": round(float(lag.max()), 1) if len(lag) else math.nan,
            "all_processed_at_s": round(last / 1000, 2) if len(lag) == len(frame) else math.nan,
        }

    def windows(self, window_ms: float = WINDOW_MS):
        """Per-window user-facing metrics, plus the 95th percentile lag of the orders placed then."""
        out = super().windows(window_ms)
        orders = self.orders
        window = (orders["placed_ms"] // window_ms).astype(int)
        lag = orders["lag_ms"].groupby(window).agg(lambda v: rounded_percentile(v.dropna(), 95))
        out["lag_p95_ms"] = lag.reindex(range(len(out))).to_numpy().round(3)
        return out


def _set_pace(workers: list[ConsumerWorker], profile: ServiceProfile, plan: FaultPlan,
              clock: Clock) -> None:
    """Apply the outages in force now to one group: offline while down, slower while slow."""
    now = clock.now
    for worker in workers:
        worker.processing_ms = profile.mean_ms * plan.slowdown(profile.name, now)
        if plan.is_down(profile.name, now):
            worker.go_offline()
        else:
            worker.go_online()


class EventDrivenTwin:
    """The shop wired with events: ``entry`` answers, ``consumers`` follow the orders topic.

    >>> from eda_lab.sync.chain import load_services
    >>> twin = EventDrivenTwin(load_services(), consumers=["payment", "inventory"])
    >>> twin.expected_latency_ms(), round(twin.expected_availability(), 4)  # order x broker
    (20.0, 0.998)
    """

    def __init__(self, services: Mapping[str, ServiceProfile] | Iterable[ServiceProfile],
                 entry: str = "order", consumers: Sequence[str] = DEFAULT_CONSUMERS, *,
                 partitions: int = PARTITIONS, poll_interval_ms: float = POLL_INTERVAL_MS,
                 max_attempts: int = 5, backoff_ms: float = 100.0,
                 restart_after_ms: float = 500.0, broker_failure_prob: float = 0.001):
        self.catalog = as_catalog(services)
        self.entry = check_names("entry", entry, self.catalog)[0]
        self.consumers = check_names("consumers", consumers, self.catalog)
        if self.entry in self.consumers:
            raise ValueError(f"consumers: {self.entry!r} is the entry service, not a consumer")
        check.count("twin: partitions", partitions, minimum=1)
        check.ms("twin: poll_interval_ms", poll_interval_ms)
        check.count("twin: max_attempts", max_attempts, minimum=1)
        check.ms("twin: backoff_ms", backoff_ms, positive=False)
        check.ms("twin: restart_after_ms", restart_after_ms, positive=False)
        self.partitions = partitions
        self.broker_failure_prob = check.probability("twin: broker_failure_prob",
                                                     broker_failure_prob)
        self.worker_options = {"poll_interval_ms": poll_interval_ms, "max_attempts": max_attempts,
                               "backoff_ms": backoff_ms, "restart_after_ms": restart_after_ms}

    def _options(self) -> dict:
        return {"entry": self.entry, "consumers": self.consumers, "partitions": self.partitions,
                "broker_failure_prob": self.broker_failure_prob, **self.worker_options}

    @property
    def services(self) -> list[ServiceProfile]:
        """The entry's profile, then the consumers'."""
        return [self.catalog[name] for name in (self.entry, *self.consumers)]

    def expected_latency_ms(self) -> float:
        """What the client waits for: the entry service's own mean latency, nothing else."""
        return float(self.catalog[self.entry].mean_ms)

    def expected_availability(self) -> float:
        """What the client's success depends on: the entry service and the broker it
        publishes to (both must work), nothing downstream."""
        return self.catalog[self.entry].availability * (1.0 - self.broker_failure_prob)

    def with_service(self, name: str, **changes) -> EventDrivenTwin:
        """The same wiring with one service's profile changed."""
        check_names("name", name, self.catalog)
        catalog = {**self.catalog, name: self.catalog[name].changed(**changes)}
        return EventDrivenTwin(catalog, **self._options())

    def with_consumer(self, name: str) -> EventDrivenTwin:
        """The shop after one more consumer group subscribes; the order service is unchanged."""
        check_names("name", name, self.catalog)
        if name == self.entry or name in self.consumers:
            raise ValueError(f"name: {name!r} already takes part")
        return EventDrivenTwin(self.catalog, **{**self._options(),
                                                "consumers": (*self.consumers, name)})

    def source_of(self, name: str) -> str:
        """The entry's request handler, or a consumer's subscription (for reading and diffs)."""
        check_names("name", name, (self.entry, *self.consumers))
        profile = self.catalog[name]
        if name == self.entry:
            return PUBLISH_SOURCE.format(entry=name, does=profile.does or name,
                                         mean_ms=profile.mean_ms, topic=ORDERS_TOPIC)
        return (f'@consumer(group="{name}", topic="{ORDERS_TOPIC}")\n'
                f"def on_order_placed(event):\n"
                f"    do_own_work(event)  # {profile.does or name} (~{profile.mean_ms:g} ms)\n")

    def wiring(self) -> dict[str, list[str]]:
        """Who follows whom, as data: the consumer groups of each topic."""
        return {ORDERS_TOPIC: list(self.consumers)}

    def run(self, rate_per_s: float = 20.0, duration_ms: float = 30_000.0,
            outages: Iterable[Outage] = (), seed: int = 0, *,
            faults: Mapping[str, object] | None = None, sample_ms: float = SAMPLE_MS,
            drain_limit_ms: float = DRAIN_LIMIT_MS, trace: bool = True) -> TwinRun:
        """The same load as :meth:`SyncChain.run`; then wait until every order is processed.

        ``faults`` are broker and consumer crash points (``{"broker.drop": 0.05}``). The run
        goes on after the last arrival until every group has handled (or dead-lettered) every
        placed order, or ``drain_limit_ms`` has passed.
        """
        check_load(rate_per_s, duration_ms, sample_ms)
        check.ms("drain_limit_ms", drain_limit_ms, positive=False)
        outages = check_sync_outages(outages, (self.entry, *self.consumers, BROKER))
        plan = FaultPlan(faults, seed=seed, outages=outages)
        # The broker's own 0.1% comes from a stream of its own, so what consumers do (their
        # dead-letter publishes also reach broker.unavailable) cannot change which orders fail.
        broker_rng = random.Random(f"{seed}:broker")
        broker_failure_prob = self.broker_failure_prob
        clock = Clock()
        broker = Broker(clock, Trace(enabled=trace), plan)
        broker.create_topic(ORDERS_TOPIC, self.partitions)
        order_db = open_db()
        order_db["orders"].create({"id": int, "placed_at": float}, pk="id")
        placed: dict[int, float] = {}

        def place_order(request: int):
            """The order service's last step: commit locally, publish, answer."""
            message = event("OrderPlaced", f"order-{request}", {"order": request}, clock=clock,
                            id=f"order-{request}-placed")
            try:
                with transaction(order_db) as conn:
                    conn.execute("INSERT INTO orders (id, placed_at) VALUES (?, ?)",
                                 (request, clock.now))
                    if broker_failure_prob and broker_rng.random() < broker_failure_prob:
                        raise BrokerUnavailable("the broker refused the publish")
                    broker.publish(ORDERS_TOPIC, message)
            except BrokerUnavailable:
                return (BROKER, DOWN)  # rolled back: no order, and the client is told so
            placed[request] = clock.now
            return None

        processed: dict[str, dict[int, float]] = {}
        workers: dict[str, list[ConsumerWorker]] = {}
        for group in self.consumers:
            profile = self.catalog[group]
            processed[group] = {}
            handler = _handler(profile, random.Random(f"{seed}:{group}"), processed[group], clock)
            workers[group] = [
                ConsumerWorker(broker, group, ORDERS_TOPIC, handler, name=f"{group}-{k}",
                               processing_ms=profile.mean_ms, **self.worker_options)
                for k in range(min(profile.workers, self.partitions))]
        for outage in plan.outages:
            if outage.target in workers:
                group_workers, profile = workers[outage.target], self.catalog[outage.target]
                for at in (outage.start_ms, outage.end_ms):
                    clock.call_at(at, lambda w=group_workers, p=profile:
                                  _set_pace(w, p, plan, clock))

        sim = CallSimulation(clock, {self.entry: self.catalog[self.entry]}, {}, plan, seed,
                             local_work={self.entry: place_order})
        sim.start(self.entry, rate_per_s, duration_ms, sample_ms)
        backlog: list[tuple] = []

        def sample_backlog():
            now = clock.now
            backlog.extend((now, group, broker.groups[group].lag()) for group in self.consumers)

        clock.every(sample_ms, sample_backlog)

        def dead_lettered() -> dict[str, set[int]]:
            return {g: {d.message.payload["order"] for w in ws for d in w.dead_letters}
                    for g, ws in workers.items()}

        def settled() -> bool:
            """Every group has handled (or dead-lettered) every order, and committed it."""
            dead = dead_lettered()
            return all(broker.groups[g].lag() == 0
                       and not placed.keys() - processed[g].keys() - dead[g]
                       for g in self.consumers)

        clock.run(duration_ms)
        while clock.now < duration_ms + drain_limit_ms and not (
                len(sim.records) == sim.started and settled()):
            clock.advance(min(sample_ms, duration_ms + drain_limit_ms - clock.now))
        sample_backlog()  # the state it ended in
        return TwinRun(sim, duration_ms, outages, rate_per_s, groups=self.consumers,
                       placed=placed, processed=processed, dead_lettered=dead_lettered(),
                       backlog=backlog, broker=broker, order_db=order_db, ended_ms=clock.now)

    def __repr__(self) -> str:
        return f"EventDrivenTwin({self.entry} -> {ORDERS_TOPIC} -> {', '.join(self.consumers)})"


def _handler(profile: ServiceProfile, rng: random.Random, done: dict[int, float], clock: Clock):
    """A consumer group's handler: fail with the profile's probability, else record the order.

    Recording is idempotent (the first time wins), so a redelivered message changes nothing.
    """
    failure_prob = profile.failure_prob

    def handle(delivery: Delivery) -> None:
        if rng.random() < failure_prob:
            raise ServiceFailed(f"{profile.name} failed on {delivery.message.key}")
        done.setdefault(delivery.message.payload["order"], clock.now)

    return handle
