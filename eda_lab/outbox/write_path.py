"""The write path, wired once: order service -> (outbox + relay | a naive dual write) -> broker
-> consumers, each with its own database (and an inbox).

Every experiment that sends orders downstream runs this one wiring: the outbox pipeline of
notebooks 03-04 (:class:`~eda_lab.outbox.pipeline.OrderPipeline`), the agreement-lag experiment
of notebook 06 and the whole shop of notebook 07. They differ in how they drive it (a step at
a time, or orders arriving on the clock) and in the timings they choose, all of which are
below in :data:`TIMINGS` and :data:`SHOP_TIMINGS`.

A :class:`WritePath` also answers the questions every experiment asks of it: is anything
still on its way (:meth:`~WritePath.idle`, :meth:`~WritePath.in_flight`), and what does the
consistency checker say about each consumer (:meth:`~WritePath.report`)?
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .. import _validate as check
from ..broker import BrokerError
from ..clock import Clock
from ..fast_broker import FastBroker
from ..faults import Crash, FaultPlan, as_fault_plan, check_outages
from ..trace import Trace
from .checks import ConsistencyReport, EventKey, check_consistency
from .order_consumer import OrderConsumer
from .order_service import OrderService
from .relay import BATCH_SIZE, RETENTION_MS, Relay, make_relay

VARIANTS = {
    "db_then_publish": "naive: commit to the DB, then publish",
    "publish_then_db": "naive: publish, then commit to the DB",
    "outbox-polling": "outbox + polling relay",
    "outbox-log-tailing": "outbox + log-tailing relay (CDC)",
}
OUTBOX_VARIANTS = ("outbox-polling", "outbox-log-tailing")
TOPIC = "orders"
PARTITIONS = 3


class Timings(NamedTuple):
    """How often the parts of a run act, in simulated ms."""

    poll_interval_ms: float = 500.0     # the relay polls the outbox
    consumer_poll_ms: float = 50.0      # each consumer polls the broker
    restart_after_ms: float = 1_000.0   # a crashed relay is back (a consumer: at its next poll)
    order_interval_ms: float = 20.0     # a new order arrives (on average)


# The outbox pipeline (03-04) and the agreement-lag experiment (06).
TIMINGS = Timings()
# The whole shop (07) is busier, 100 orders per simulated second, so its relay polls more
# often and a supervisor restarts any crashed process within 100 ms.
SHOP_TIMINGS = Timings(poll_interval_ms=100.0, restart_after_ms=100.0, order_interval_ms=10.0)


class WritePath:
    """Clock, trace, broker, order service, relay (for the outbox variants) and consumers.

    ``variant`` is one of :data:`VARIANTS`; ``faults`` a dict such as
    ``{"relay.after_publish": 1}`` or a :class:`FaultPlan`, shared by every part; ``seed``
    fixes the fault plan's random choices. ``consumers`` names the downstream consumer
    groups, each with its own database (and inbox, with ``inbox=True``).
    """

    def __init__(self, variant: str = "outbox-polling",
                 faults: FaultPlan | Mapping[str, Any] | None = None, *, seed: int = 0,
                 consumers: Iterable[str] = ("shipping",), inbox: bool = True,
                 partitions: int = PARTITIONS, batch_size: int = BATCH_SIZE,
                 poll_interval_ms: float = TIMINGS.poll_interval_ms,
                 consumer_poll_ms: float = TIMINGS.consumer_poll_ms,
                 restart_after_ms: float = TIMINGS.restart_after_ms, consumer_batch: int = 100,
                 cleanup: str = "retain", retention_ms: float = RETENTION_MS, retries: int = 0,
                 delay_ms: float = 1_000.0, trace: bool = True):
        self.variant = check.one_of("variant", variant, VARIANTS)
        consumers = check.names("consumers", consumers)
        check.flag("inbox", inbox)
        check.flag("trace", trace)
        self.seed = check.seed("seed", seed)
        self.faults = as_fault_plan(faults, seed=seed)
        check_outages(self.faults.outages, self.part_names(consumers))
        self.clock = Clock()
        self.trace = Trace(enabled=trace)
        # Runs of the write path send thousands of messages: the broker is the fast one, which
        # does exactly what eda_lab.broker.Broker does (see eda_lab.fast_broker).
        self.broker = FastBroker(self.clock, self.trace, self.faults, delay_ms=delay_ms)
        self.broker.create_topic(TOPIC, partitions)
        outbox = variant in OUTBOX_VARIANTS
        self.service = OrderService(self.broker, variant="outbox" if outbox else variant,
                                    topic=TOPIC, retries=retries)
        self.relay: Relay | None = None
        if outbox:
            self.relay = make_relay(variant.removeprefix("outbox-"), self.service.db,
                                    self.broker, topic=TOPIC, batch_size=batch_size,
                                    poll_interval_ms=poll_interval_ms, cleanup=cleanup,
                                    retention_ms=retention_ms, restart_after_ms=restart_after_ms)
        self.consumers = {name: OrderConsumer(self.broker, group=name, topic=TOPIC, inbox=inbox,
                                              max_batch=consumer_batch,
                                              poll_interval_ms=consumer_poll_ms)
                          for name in consumers}
        self.failed_orders: list[tuple[str, str]] = []   # (order id, what the caller saw)
        self._started = False

    def part_names(self, consumers: Iterable[str]) -> tuple[str, ...]:
        """The parts an :class:`~eda_lab.faults.Outage` may name: the broker, the order
        service, the relay (outbox variants) and each consumer."""
        relay = ("relay",) if self.variant in OUTBOX_VARIANTS else ()
        return ("broker", "order", *relay, *consumers)

    def set_faults(self, faults: FaultPlan | Mapping[str, Any] | None) -> FaultPlan:
        """Give every part a new fault plan (the visualizer's toggles, a storm's end)."""
        plan = as_fault_plan(faults, seed=self.seed)
        check_outages(plan.outages, self.part_names(self.consumers))
        self.faults = self.broker.faults = self.service.faults = plan
        if self.relay is not None:
            self.relay.faults = plan
        return plan

    # -- running -----------------------------------------------------------------------------
    def place_order(self, order_id: str | None = None, **order: Any) -> str | None:
        """Place one order as a customer would: a crash or a refused publish is recorded
        in ``failed_orders`` (the customer saw an error), not raised. Returns the order id,
        or None when the call failed."""
        if order_id is None:
            order_id = self.service.next_order_id()
        try:
            return self.service.place_order(order_id, **order)
        except Crash as crash:
            self.failed_orders.append((order_id, f"crash at {crash.point}"))
        except BrokerError as error:
            self.failed_orders.append((order_id, type(error).__name__))
        return None

    def start(self) -> None:
        """Run the relay and every consumer as processes on the clock (once)."""
        if not self._started:
            self._started = True
            if self.relay is not None:
                self.relay.start()
            for consumer in self.consumers.values():
                consumer.start()

    # -- judging -----------------------------------------------------------------------------
    def idle(self) -> bool:
        """Nothing left in the outbox backlog and nothing unacknowledged by any consumer."""
        return ((self.relay is None or self.relay.backlog() == 0)
                and all(consumer.lag() == 0 for consumer in self.consumers.values()))

    def in_flight(self, group: str) -> set[EventKey]:
        """Committed events still on their way to ``group``: unpublished, or uncommitted."""
        moving = set() if self.relay is None else self.relay.unpublished()
        moving.update((m.key, int(m.headers.get("version", 1)))
                      for m in self.broker.uncommitted(group))
        return moving

    def report(self, group: str) -> ConsistencyReport:
        """The consistency checker's verdict for consumer ``group``, now."""
        consumer = self.consumers[group]
        return check_consistency(self.service.truth(), consumer.received, consumer.effects(),
                                 self.in_flight(group))

    def reports(self) -> dict[str, ConsistencyReport]:
        """The checker's verdict for every consumer."""
        return {name: self.report(name) for name in self.consumers}

    def __repr__(self) -> str:
        return (f"WritePath({self.variant!r}, consumers={list(self.consumers)}, "
                f"now={self.clock.now:g} ms)")
