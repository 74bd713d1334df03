"""The whole shop, wired from the course's pieces on one clock, one trace and one fault plan.

Every order takes the path the notebooks built one piece at a time:

1. the **order service** commits the order and its ``OrderPlaced`` event in one local
   transaction (the outbox of notebook 04), and a **relay** (polling or log-tailing) publishes
   it to the ``orders`` topic;
2. the **saga starter** reads ``OrderPlaced`` and starts one Create Order **saga** per order
   (notebook 05). The saga id is made from the order id, so a redelivered ``OrderPlaced``
   finds its saga in the saga log and starts nothing: the saga log is the starter's inbox;
3. the orchestrator drives the participants through the broker: the order service itself
   (the order becomes ``pending``, then ``approved`` or ``rejected``), inventory, payment,
   shipping. Approving or rejecting the order writes ``OrderApproved`` / ``OrderRejected``
   through the same outbox, in the participant's local transaction;
4. **downstream consumers** (a shipping notifier, analytics) read every order event and
   apply it to their own databases, each through an **inbox**.

The safeguards are settings, so a learner can turn one off and watch what it was protecting:
``outbox=False`` makes the order service write naively (``dual_write`` says in which order:
the database then the broker, or the other way round), and ``inbox=False`` makes the
downstream consumers apply every delivery, duplicates included.

The seed fixes the order stream (who buys what) and the fault plan, so the same settings give
the same run (message ids repeat too after :func:`~eda_lab.messages.seed_ids`). Databases
live in memory: each service still has its own, and a chaos run of thousands of orders stays
fast.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .. import _validate as check
from ..consumer import ConsumerWorker
from ..faults import FaultPlan
from ..orders import ORDERS_TABLE
from ..outbox.checks import ConsistencyReport
from ..outbox.order_service import AGGREGATE_TYPE
from ..outbox.relay import RELAYS
from ..outbox.table import OutboxEvent, encode_payload, write_event
from ..outbox.write_path import SHOP_TIMINGS, TOPIC, WritePath
from ..saga import (
    InventoryParticipant,
    OrchestratorDown,
    OrderParticipant,
    PaymentParticipant,
    SagaRunner,
    ShippingParticipant,
    create_order_saga,
    saga_problems,
    shop_problems,
)
from ..saga.log import COMPENSATED, COMPLETED

CONSUMERS = ("shipping-notifier", "analytics")   # the downstream consumer groups
DUAL_WRITES = ("db_then_publish", "publish_then_db")
STARTER_GROUP = "order-sagas"

MAX_ORDERS = 10_000           # a bigger storm would run for over a minute (10,000: ~45 s): refused
SETTLE_STEP_MS = 500.0        # how far the clock moves between two looks while orders arrive
# ... and between two "are we done?" checks while it settles: a run ends within 100 ms of its
# last message, instead of polling on through up to half a second of nothing
SETTLE_CHECK_MS = 100.0
MAX_SETTLE_MS = 120_000.0     # give up settling after two simulated minutes
SAGA_MAX_ATTEMPTS = 8         # retries before a saga stops in needs_attention
DELAY_MS = 200.0              # how long the broker's delay fault holds a message back
REPLY_TIMEOUT_MS = 3_000.0    # a saga reply deadline that a few held-back messages fit in
# The orchestrator being down is no reason to give up on an order: the saga starter tries
# again every 100 ms for as long as it takes (a dead letter is for a message that is wrong).
STARTER_BACKOFF_MS = 100.0
STARTER_MAX_ATTEMPTS = 1_000_000

# The order stream: who buys what (weights), and what the shop has. Bob's card has little
# credit and there are few lamps, so some sagas are refused for a business reason.
CUSTOMERS = {"alice": 6, "carol": 3, "bob": 1}
PRODUCTS = {"book": (15.0, 9), "lamp": (40.0, 1)}     # sku -> (price, weight)
STOCK = {"book": 1_000_000, "lamp": 25}
ACCOUNTS = {"alice": 1e9, "carol": 1e9, "bob": 60.0}


Tick = Callable[[], Any]


class Shop(WritePath):
    """The write path (order service, relay, broker, downstream consumers) plus the saga
    starter and the Create Order saga, on one clock.

    >>> shop = Shop(seed=2)
    >>> shop.run(20)   # place 20 orders, then run until everything has settled
    True
    >>> shop.saga_outcomes()
    {'compensated': 3, 'completed': 17}

    ``faults`` is a dict such as ``{"relay.after_publish": 0.05}`` or a :class:`FaultPlan`;
    ``relay`` is ``"polling"`` or ``"log-tailing"`` (the order service's relay); ``saga_relay``
    the same choice for the relays that send the saga's commands and replies from each
    service's outbox (default log tailing, as Eventuate Tram's CDC service tails a saga's
    outbox); ``recovery`` is the
    orchestrator's (``"deadlines"`` or ``"resend-all"``, see
    :mod:`eda_lab.saga.orchestrator`); ``consumers`` names the downstream consumer groups (a
    subset of :data:`CONSUMERS`). Timings default to
    :data:`~eda_lab.outbox.write_path.SHOP_TIMINGS`.
    """

    def __init__(self, *, seed: int = 0, faults: FaultPlan | Mapping[str, Any] | None = None,
                 relay: str = "polling", outbox: bool = True,
                 dual_write: str = "db_then_publish", inbox: bool = True,
                 consumers: Sequence[str] = CONSUMERS, partitions: int = 3,
                 order_interval_ms: float = SHOP_TIMINGS.order_interval_ms,
                 poll_interval_ms: float = SHOP_TIMINGS.poll_interval_ms,
                 consumer_poll_ms: float = SHOP_TIMINGS.consumer_poll_ms, trace: bool = True,
                 stock: Mapping[str, int] | None = None,
                 accounts: Mapping[str, float] | None = None, recovery: str = "deadlines",
                 saga_relay: str = "log-tailing"):
        check.seed("seed", seed)
        check.one_of("relay", relay, RELAYS)
        check.one_of("saga_relay", saga_relay, RELAYS)
        check.flag("outbox", outbox)
        check.one_of("dual_write", dual_write, DUAL_WRITES)
        check.flag("inbox", inbox)
        if isinstance(consumers, str) or not isinstance(consumers, Sequence):
            raise TypeError(f"consumers must be a list of consumer groups from {CONSUMERS}, "
                            f"got {consumers!r}")
        consumers = check.names("consumers", consumers, CONSUMERS)
        self.order_interval_ms = check.ms("order_interval_ms", order_interval_ms)
        poll_interval_ms = check.ms("poll_interval_ms", poll_interval_ms)
        consumer_poll_ms = check.ms("consumer_poll_ms", consumer_poll_ms)
        super().__init__(f"outbox-{relay}" if outbox else dual_write, faults, seed=seed,
                         consumers=consumers, inbox=inbox, partitions=partitions,
                         poll_interval_ms=poll_interval_ms, consumer_poll_ms=consumer_poll_ms,
                         restart_after_ms=SHOP_TIMINGS.restart_after_ms, delay_ms=DELAY_MS,
                         trace=trace)
        # A crashed downstream consumer is back within the supervisor's 100 ms, as every other
        # process of the shop (rejoining at once would let a consumer that crashes on every
        # visit loop for ever without the clock moving).
        for consumer in self.consumers.values():
            consumer.worker.restart_after_ms = SHOP_TIMINGS.restart_after_ms
        self.settings = {"relay": relay, "outbox": outbox, "dual_write": dual_write,
                         "inbox": inbox, "consumers": tuple(consumers), "recovery": recovery,
                         "saga_relay": saga_relay}
        self.outbox = outbox
        self.dual_write = dual_write
        # The order service's own database holds the orders the saga works on.
        self.order_participant = OrderParticipant(self.broker, self.service.db,
                                                  announce=self._announce, creates_orders=False)
        participants = {
            "order": self.order_participant,
            "inventory": InventoryParticipant(self.broker, stock=dict(stock or STOCK)),
            "payment": PaymentParticipant(self.broker, accounts=dict(accounts or ACCOUNTS)),
            "shipping": ShippingParticipant(self.broker),
        }
        self.sagas = SagaRunner(create_order_saga(), broker=self.broker,
                                participants=participants, max_batch=100,
                                max_attempts=SAGA_MAX_ATTEMPTS,
                                reply_timeout_ms=REPLY_TIMEOUT_MS,
                                restart_after_ms=SHOP_TIMINGS.restart_after_ms,
                                recovery=recovery, relay=saga_relay,
                                relay_poll_ms=poll_interval_ms)
        self.starter = ConsumerWorker(self.broker, STARTER_GROUP, TOPIC, self._start_saga,
                                      name="saga-starter", poll_interval_ms=consumer_poll_ms,
                                      max_batch=100, max_attempts=STARTER_MAX_ATTEMPTS,
                                      backoff_ms=STARTER_BACKOFF_MS, backoff_factor=1.0,
                                      restart_after_ms=SHOP_TIMINGS.restart_after_ms,
                                      start=False)
        self._orders = random.Random(f"{seed}:orders")
        self.placed = 0                           # orders the customers tried to place
        self.settled_at_ms: float | None = None   # when settle() last found nothing to do

    def part_names(self, consumers: Iterable[str]) -> tuple[str, ...]:
        """The write path's parts and the saga's: what an outage may name."""
        return (*super().part_names(consumers), "saga-starter", "orchestrator",
                *(p.name for p in (OrderParticipant, InventoryParticipant, PaymentParticipant,
                                   ShippingParticipant)))

    def _announce(self, conn: sqlite3.Connection, order_id: str, version: int,
                  event_type: str, payload: dict) -> None:
        """How the order participant tells the world it approved or rejected an order.

        With the outbox: an outbox row in the participant's own local transaction. Without
        it, the dual write of notebook 03: publish now, inside the transaction (a ghost if it
        rolls back), or after the commit (a zombie if the process dies first).
        """
        event = OutboxEvent(self.service.event_id(order_id, version), AGGREGATE_TYPE,
                            order_id, event_type, encode_payload(payload), version,
                            self.clock.now)
        if self.outbox:
            write_event(conn, **event._asdict(), table=self.service.outbox_table)
        elif self.dual_write == "publish_then_db":
            self.broker.publish(TOPIC, event.to_message())
        else:
            self.order_participant.after_commit(
                lambda: self.broker.publish(TOPIC, event.to_message()))

    # -- the order stream ----------------------------------------------------------------------
    def next_order(self) -> dict[str, Any]:
        """The next order of the seeded stream: a customer, a sku, a quantity, an amount."""
        rng = self._orders
        customer = rng.choices(list(CUSTOMERS), weights=list(CUSTOMERS.values()))[0]
        sku = rng.choices(list(PRODUCTS), weights=[w for _, w in PRODUCTS.values()])[0]
        quantity = rng.randint(1, 3)
        return {"customer": customer, "sku": sku, "quantity": quantity,
                "amount": PRODUCTS[sku][0] * quantity}

    def place_next_order(self) -> str | None:
        """A customer places the next order of the stream now; a crash or a refused publish
        is recorded (the customer saw an error), not raised. Returns the order id, or None."""
        order = self.next_order()
        self.placed += 1
        return self.place_order(customer=order.pop("customer"), amount=order.pop("amount"),
                                details=order)

    def _start_saga(self, delivery) -> None:
        """The saga starter's handler: one Create Order saga per ``OrderPlaced``."""
        message = delivery.message
        if message.type != "OrderPlaced":
            return
        saga_id = f"saga-{message.key}"
        if self.sagas.log.get(saga_id) is not None:
            self.trace.add(self.clock.now, "ignore", "saga-starter", key=message.key,
                           message_id=message.id, message_type=message.type,
                           detail=f"{saga_id} exists: a redelivered OrderPlaced starts nothing")
            return
        if self.sagas.orchestrator is None:
            raise OrchestratorDown("the orchestrator is restarting; the starter tries again")
        self.sagas.start(dict(message.payload), saga_id)

    # -- running on the clock ------------------------------------------------------------------
    def start(self) -> None:
        """Run the saga starter, the relay and the consumers on the clock (once)."""
        self.starter.start()
        super().start()

    def run(self, n_orders: int, *, tick: Tick | None = None,
            max_settle_ms: float = MAX_SETTLE_MS) -> bool:
        """Place ``n_orders`` orders, one every ``order_interval_ms``, then run the clock until
        everything is settled (or ``max_settle_ms`` more). True when it settled.

        ``tick()`` is called every :data:`SETTLE_STEP_MS` of simulated time while the orders
        arrive, and every :data:`SETTLE_CHECK_MS` while the shop settles (a progress bar).
        """
        max_settle_ms = check.ms("max_settle_ms", max_settle_ms)
        self.place_orders(n_orders, tick=tick)
        return self.settle(max_settle_ms, tick=tick)

    def place_orders(self, n_orders: int, *, tick: Tick | None = None) -> None:
        """Customers place ``n_orders`` orders, one every ``order_interval_ms``, while every
        part of the shop runs on the clock; returns when the last order is placed."""
        check.count("n_orders", n_orders, minimum=0, maximum=MAX_ORDERS)
        if tick is not None:
            check.function("tick", tick, "of no arguments")
        self.start()
        clock = self.clock

        def customers():
            for i in range(n_orders):
                self.place_next_order()
                if i < n_orders - 1:
                    yield clock.timeout(self.order_interval_ms)

        done = clock.process(customers())
        while not done.triggered:
            clock.run(clock.now + SETTLE_STEP_MS)
            if tick is not None:
                tick()

    def set_faults(self, faults: FaultPlan | Mapping[str, Any] | None) -> FaultPlan:
        """Give every part a new fault plan, the saga's relays included (each relay keeps the
        plan it was given; the other saga parts read the broker's)."""
        plan = super().set_faults(faults)
        for relay in self.sagas.relays:
            relay.faults = plan
        return plan

    def calm(self) -> FaultPlan:
        """The storm is over: from now on no fault fires. Returns the plan that was in force
        (its ``fired`` list says what happened). Every part reads the new, empty plan."""
        storm = self.faults
        self.set_faults(None)
        return storm

    def settle(self, max_ms: float = MAX_SETTLE_MS, *, tick: Tick | None = None) -> bool:
        """Run the clock until nothing is left on its way (or ``max_ms``); True if settled."""
        max_ms = check.ms("max_ms", max_ms)
        if tick is not None:
            check.function("tick", tick, "of no arguments")
        self.start()
        clock = self.clock
        deadline = clock.now + max_ms
        while not self.idle():
            if clock.now >= deadline or self.sagas.crash_loop is not None:
                return False
            clock.run(min(deadline, clock.now + SETTLE_CHECK_MS))
            if tick is not None:
                tick()
        self.settled_at_ms = clock.now
        return True

    def idle(self) -> bool:
        """Nothing in the outbox backlog, nothing unacknowledged, no saga unfinished."""
        return super().idle() and not self.broker.lag(STARTER_GROUP) and not self.sagas.busy

    # -- judging -------------------------------------------------------------------------------
    def truth(self) -> dict[str, int]:
        """The source of truth: order id -> version (the events the order service committed)."""
        return self.service.truth()

    def consistency(self) -> dict[str, ConsistencyReport]:
        """The consistency checker's verdict for each downstream consumer."""
        return self.reports()

    def saga_outcomes(self) -> dict[str, int]:
        """How many sagas ended in each status (running ones included)."""
        rows = self.sagas.log.db.execute(
            "SELECT status, count(*) FROM sagas GROUP BY status ORDER BY status")
        return dict(rows.fetchall())

    def finished_sagas(self) -> int:
        """How many sagas are completed or compensated (a progress measure)."""
        return self.sagas.log.db.execute("SELECT count(*) FROM sagas WHERE status IN (?, ?)",
                                         (COMPLETED, COMPENSATED)).fetchone()[0]

    def unfinished_orders(self) -> list[str]:
        """Committed orders whose saga is neither completed nor compensated (or never began)."""
        finished = {row[0] for row in self.sagas.log.db.execute(
            "SELECT order_id FROM sagas WHERE status IN (?, ?)", (COMPLETED, COMPENSATED))}
        return sorted(set(self.truth()) - finished)

    def saga_end_times(self) -> list[float]:
        """When each finished saga finished (simulated ms), in order: the shop's output."""
        rows = self.sagas.log.db.execute(
            "SELECT updated_ms FROM sagas WHERE status IN (?, ?) ORDER BY updated_ms",
            (COMPLETED, COMPENSATED))
        return [row[0] for row in rows]

    def consistency_lags(self) -> dict[str, float]:
        """Per committed order: ms from its commit until every service agrees about it.

        That is when its saga has finished *and* every downstream consumer has applied the
        order's latest event (read from each database). Orders not agreed on yet are left out.
        """
        ends = dict(self.sagas.log.db.execute(
            "SELECT order_id, updated_ms FROM sagas WHERE status IN (?, ?)",
            (COMPLETED, COMPENSATED)).fetchall())
        applied = [{order_id: (version, at) for order_id, version, at in consumer.db.execute(
            "SELECT order_id, max(version), max(applied_at) FROM effects GROUP BY order_id")}
            for consumer in self.consumers.values()]
        lags = {}
        for order_id, version, created in self.service.db.execute(
                f"SELECT order_id, version, created_at FROM {ORDERS_TABLE}"):
            end = ends.get(order_id)
            if end is None:
                continue
            for seen in applied:
                got = seen.get(order_id)
                if got is None or got[0] < version:
                    break
                end = max(end, got[1])
            else:
                lags[order_id] = end - created
        return lags

    def saga_problems(self) -> list[str]:
        """Finished sagas whose participants' data disagree with their ending, and broken
        bookkeeping (stock, credit) in any participant's database."""
        runner = self.sagas
        problems = []
        for (saga_id,) in runner.log.db.execute(
                "SELECT saga_id FROM sagas WHERE status IN (?, ?) ORDER BY rowid",
                (COMPLETED, COMPENSATED)).fetchall():
            problems += saga_problems(runner.definition, runner.log, runner.participants,
                                      saga_id)
        return problems + shop_problems(runner.participants)

    def __repr__(self) -> str:
        on = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"Shop({on}, placed={self.placed}, now={self.clock.now:g} ms)"
