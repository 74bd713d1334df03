"""The dual write: two separate writes (database, then broker, or the other way round), kept to
show what goes wrong.

Nothing makes the two writes one. Whichever goes first, the process can die, or the second
system can refuse, between them:

* **database, then broker**: the order is committed and the publish never happens (the broker
  was down, the process crashed after the commit). The row is a **zombie record**: saved,
  never announced; inventory, payment and shipping never hear of it.
* **broker, then database**: the event is out and the commit never happens (a constraint
  failed, the process crashed before committing). The event is a **ghost message**: the rest of
  the shop ships an order that does not exist.

``try``/``except`` does not close the gap: a crashed process runs no ``except`` block (here a
:class:`~eda_lab.faults.Crash` is a ``BaseException``), and once a message is published there
is no "unpublish". Retrying the publish helps only while the process lives and the broker
comes back before the retries run out. :mod:`eda_lab.outbox.table` is the fix.

The functions are generic: ``write(conn)`` does the business change inside the local
transaction, and ``points`` names the service's crash points.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

import sqlite_utils

from .. import _validate as check
from ..broker import Broker, BrokerUnavailable
from ..clock import Clock
from ..db import open_db, transaction
from ..faults import Crash, FaultPlan, as_fault_plan, check_outages
from ..messages import Message, event
from ..trace import Trace

Write = Callable[[sqlite3.Connection], object]


class DualWritePoints(NamedTuple):
    """The crash points of one service's write path, by moment."""

    before_commit: str   # the change is written but not committed: a crash rolls it back
    after_commit: str    # committed, the event not yet published
    after_publish: str   # published, the change maybe not yet committed


class Context(NamedTuple):
    """Where a write path reports to: its fault plan, trace, the time, its name."""

    faults: FaultPlan
    trace: Trace
    now: float
    actor: str


def commit_locally(db: sqlite_utils.Database, write: Write, points: DualWritePoints,
                   ctx: Context, message: Message, detail: str) -> None:
    """Run ``write`` in one local transaction, with the before/after-commit crash points."""
    faults, trace = ctx.faults, ctx.trace
    with transaction(db) as conn:
        write(conn)
        faults.check(points.before_commit, trace=trace, now=ctx.now, actor=ctx.actor)
    if trace.enabled:
        trace.add(ctx.now, "db_commit", ctx.actor, key=message.key, message_id=message.id,
                  message_type=message.type, detail=detail)
    faults.check(points.after_commit, trace=trace, now=ctx.now, actor=ctx.actor)


def publish_with_retries(broker: Broker, topic: str, message: Message, retries: int) -> None:
    """Publish, trying again up to ``retries`` times at once while the broker refuses.

    Immediate retries ride out a refusal that lasts one attempt; an outage that lasts longer
    than the retries (or a crash meanwhile) still loses the event.
    """
    for attempt in range(retries + 1):
        try:
            broker.publish(topic, message)
            return
        except BrokerUnavailable:
            if attempt == retries:
                raise


def db_then_publish(db: sqlite_utils.Database, write: Write, broker: Broker, topic: str,
                    message: Message, points: DualWritePoints, ctx: Context, *,
                    retries: int = 0) -> None:
    """Commit the change, then publish. Raises :class:`BrokerUnavailable` *after* the commit
    when the publish fails: the caller learns of a zombie record it can no longer undo."""
    commit_locally(db, write, points, ctx, message, "orders committed; event not yet published")
    publish_with_retries(broker, topic, message, retries)
    ctx.faults.check(points.after_publish, trace=ctx.trace, now=ctx.now, actor=ctx.actor)


def publish_then_db(db: sqlite_utils.Database, write: Write, broker: Broker, topic: str,
                    message: Message, points: DualWritePoints, ctx: Context, *,
                    retries: int = 0) -> None:
    """Publish, then commit the change. A failure to commit leaves a ghost message that
    consumers have already acted on."""
    publish_with_retries(broker, topic, message, retries)
    ctx.faults.check(points.after_publish, trace=ctx.trace, now=ctx.now, actor=ctx.actor)
    commit_locally(db, write, points, ctx, message, "orders committed after the publish")


def publish_inside_transaction(db: sqlite_utils.Database, write: Write, broker: Broker,
                               topic: str, message: Message, points: DualWritePoints,
                               ctx: Context, *, retries: int = 0) -> None:
    """The most common naive form: ``with transaction(db): write(conn); broker.publish(...)``.

    It reads as one unit, but it is not: the broker is not in the transaction, and the COMMIT
    comes *after* the publish. A commit that fails then (a constraint, a full disk, a crash at
    ``before_commit``) rolls the order back with the event already out: publish-then-DB in
    disguise, and its damage is the ghost message.
    """
    faults, trace = ctx.faults, ctx.trace
    with transaction(db) as conn:
        write(conn)
        publish_with_retries(broker, topic, message, retries)
        faults.check(points.before_commit, trace=trace, now=ctx.now, actor=ctx.actor)
    if trace.enabled:
        trace.add(ctx.now, "db_commit", ctx.actor, key=message.key, message_id=message.id,
                  message_type=message.type, detail="orders committed after the publish")
    faults.check(points.after_commit, trace=trace, now=ctx.now, actor=ctx.actor)


def try_publish_inside_transaction(n_orders: int = 2, faults=None) -> dict[str, list[str]]:
    """Place ``n_orders`` with :func:`publish_inside_transaction` under ``faults`` (the order
    service's points, such as ``{"order.before_commit": 1}``); what the database and the
    broker hold afterwards, and which orders the customers saw fail."""
    check.count("n_orders", n_orders, maximum=MAX_RETRY_ORDERS)
    plan = as_fault_plan(faults)
    clock = Clock()
    broker = Broker(clock, Trace(enabled=False), plan)
    broker.create_topic("orders")
    db = open_db()
    db.execute("CREATE TABLE orders (order_id TEXT PRIMARY KEY)")
    points = DualWritePoints("order.before_commit", "order.after_commit", "order.after_publish")
    failed = []
    for number in range(1, n_orders + 1):
        order_id = f"order-{number}"
        message = event("OrderPlaced", order_id, {"order_id": order_id}, id=f"{order_id}-placed")
        try:
            publish_inside_transaction(
                db, lambda conn, o=order_id: conn.execute("INSERT INTO orders VALUES (?)", (o,)),
                broker, "orders", message, points, Context(plan, Trace(enabled=False), 0.0,
                                                           "order"))
        except (Crash, BrokerUnavailable):
            failed.append(order_id)
    saved = [row[0] for row in db.execute("SELECT order_id FROM orders ORDER BY rowid")]
    return {"in the database": saved,
            "on the broker": [m.key for m in broker.messages("orders")], "failed": failed}


# -- retries with backoff, on the simulated clock ---------------------------------------------
MAX_RETRY_ORDERS = 5_000     # orders in one retry experiment: more only make a cell slow
MAX_RETRIES = 20


class RetryRun(NamedTuple):
    """What :func:`retry_on_clock` counted: the committed orders, and what became of each."""

    orders: int          # orders the customers tried to place
    committed: int       # in the order service's database
    published: int       # of those, announced on the broker
    lost_budget: int     # committed, and the retries ran out while the broker was still down
    lost_crash: int      # committed, and the service died while its retries waited
    refused: int         # never committed: the service itself was down (the customer saw it)
    p95_answer_ms: float  # how long a customer waited for the answer (the retries included)

    @property
    def lost(self) -> int:
        return self.lost_budget + self.lost_crash

    def sentence(self) -> str:
        """What happened, in one sentence."""
        if not self.committed:
            return f"No order was committed ({self.refused} refused): nothing to lose."
        why = []
        if self.lost_budget:
            why.append(f"{self.lost_budget} because the retries ran out before the broker came back")
        if self.lost_crash:
            why.append(f"{self.lost_crash} because the service died while its retries waited")
        if not why:
            return (f"All {self.committed} committed orders were published; 95% of the customers "
                    f"had their answer within {_duration(self.p95_answer_ms)}.")
        return f"{self.lost} of {self.committed} committed orders were never published: " \
               f"{' and '.join(why)}."


def _duration(ms: float) -> str:
    return f"{ms:g} ms" if ms < 1_000 else f"{ms / 1000:.3g} s"


def retry_on_clock(n_orders: int = 100, *, order_interval_ms: float = 50.0, retries: int = 3,
                   backoff_ms: float = 100.0, backoff_factor: float = 2.0,
                   outages=(), seed: int = 0) -> RetryRun:
    """Database-then-broker with retries that *wait*: orders arrive every ``order_interval_ms``
    on the simulated clock; each one commits, then publishes, and on a refusal waits
    ``backoff_ms`` (times ``backoff_factor`` for each further try) up to ``retries`` times.

    ``outages`` take the ``"broker"`` down (publishes are refused) or the ``"order"`` service
    down (a deploy, a crash: it refuses new orders, and the retries waiting in its memory die
    with it). Backoff rides out a broker outage shorter than the retry budget, at the price of
    the customer's wait; a longer outage, or a crash while retries wait, still loses the event.
    """
    check.count("n_orders", n_orders, maximum=MAX_RETRY_ORDERS)
    check.ms("order_interval_ms", order_interval_ms)
    check.count("retries", retries, minimum=0, maximum=MAX_RETRIES)
    check.ms("backoff_ms", backoff_ms, positive=False, maximum=60_000)
    check.number("backoff_factor", backoff_factor, minimum=1, maximum=10)
    outages = check_outages(outages, ("broker", "order"))
    clock = Clock()
    plan = FaultPlan(seed=check.seed("seed", seed), outages=outages)
    broker = Broker(clock, Trace(enabled=False), plan)
    broker.create_topic("orders")
    db = open_db()
    db.execute("CREATE TABLE orders (order_id TEXT PRIMARY KEY, placed_at REAL)")
    counts = {"lost_budget": 0, "lost_crash": 0, "refused": 0}
    answered: list[float] = []

    def died_between(start: float, end: float) -> bool:
        return any(o.target == "order" and start < o.start_ms <= end for o in outages)

    def place(number: int):
        start = clock.now
        if plan.is_down("order", start):
            counts["refused"] += 1
            return
        order_id = f"order-{number}"
        with transaction(db) as conn:
            conn.execute("INSERT INTO orders VALUES (?, ?)", (order_id, start))
        message = event("OrderPlaced", order_id, {"order_id": order_id}, clock=clock,
                        id=f"{order_id}-placed")
        wait = backoff_ms
        for attempt in range(retries + 1):
            try:
                broker.publish("orders", message)
                answered.append(clock.now - start)
                return
            except BrokerUnavailable:
                if attempt == retries:
                    counts["lost_budget"] += 1
                    answered.append(clock.now - start)
                    return
            slept_from = clock.now
            yield clock.timeout(wait)
            wait *= backoff_factor
            if died_between(slept_from, clock.now):
                counts["lost_crash"] += 1  # the retry lived in the memory of a dead process
                return

    def arrivals():
        for number in range(1, n_orders + 1):
            clock.process(place(number))
            yield clock.timeout(order_interval_ms)

    clock.process(arrivals())
    clock.run()
    committed = db.execute("SELECT count(*) FROM orders").fetchone()[0]
    answered.sort()
    p95 = answered[max(0, -(-95 * len(answered) // 100) - 1)] if answered else 0.0
    return RetryRun(n_orders, committed, len(broker.messages("orders")), counts["lost_budget"],
                    counts["lost_crash"], counts["refused"], round(p95, 1))

