"""The order service: its own SQLite database, and ``place_order`` written three ways.

``variant`` picks how the service tells the world about a new order:

* ``"db_then_publish"``: commit the order, then publish ``OrderPlaced`` (naive);
* ``"publish_then_db"``: publish, then commit (naive, the other way round);
* ``"outbox"``: insert the order *and* an outbox row in one local transaction; a relay
  (:mod:`eda_lab.outbox.relay`) publishes later. The service never talks to the broker.

The crash points are the moments between the steps (``order.before_commit``,
``order.after_commit``, ``order.after_publish``); a :class:`~eda_lab.faults.FaultPlan` fires
them, and a fired one raises :class:`~eda_lab.faults.Crash` out of ``place_order`` as a dying
process would.

**Event ids** must stay unique when the service restarts (a consumer's inbox drops an id it has
seen), and repeat exactly when a notebook runs again. So they are derived from durable state,
not from a process-local counter: ``<origin>-<order id>-v<version>``, where ``origin`` is drawn
once when the database is created (from the seeded id sequence) and kept in it, and ``version``
is the order's version after the event, kept in the orders table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from .. import _validate as check
from ..broker import Broker, shared_with
from ..clock import Clock
from ..db import open_db
from ..faults import FaultPlan, crash_point
from ..messages import is_past_tense, new_id
from ..orders import ORDERS_TABLE, PLACED, create_orders_table
from ..trace import Trace
from .dual_write import Context, DualWritePoints, db_then_publish, publish_then_db
from .table import OUTBOX_TABLE, OutboxEvent, commit_with_outbox, create_outbox, encode_payload

BEFORE_COMMIT = crash_point(
    "order.before_commit",
    "the order (and its outbox row) is written but not committed: the crash rolls it back")
AFTER_COMMIT = crash_point(
    "order.after_commit",
    "the order is committed and the service dies before publishing (a naive service loses the event)")
AFTER_PUBLISH = crash_point(
    "order.after_publish",
    "the event is published and the service dies before committing (publish-then-DB: a ghost)")
POINTS = DualWritePoints(BEFORE_COMMIT, AFTER_COMMIT, AFTER_PUBLISH)

VARIANTS = ("db_then_publish", "publish_then_db", "outbox")
AGGREGATE_TYPE = "order"


def _open(db: sqlite_utils.Database | str | Path | None) -> sqlite_utils.Database:
    if db is None or isinstance(db, (str, Path)):
        return open_db(db)
    if isinstance(db, sqlite_utils.Database):
        return db
    raise TypeError(f"db must be a path, a sqlite_utils.Database or None (in memory), got "
                    f"{type(db).__name__}")


class OrderService:
    """The service that takes orders, with its own database.

    ``broker`` is needed by the naive variants only (the outbox variant leaves publishing to
    the relay); ``clock``, ``trace`` and ``faults`` default to the broker's, so one fault plan
    and one trace cover the whole run.

    >>> service = OrderService(variant="outbox")
    >>> service.place_order(customer="ada", amount=30.0)
    'order-1'
    >>> [row["type"] for row in service.db["outbox"].rows]
    ['OrderPlaced']
    """

    def __init__(self, broker: Broker | None = None,
                 db: sqlite_utils.Database | str | Path | None = None, *,
                 variant: str = "outbox", topic: str = "orders", clock: Clock | None = None,
                 trace: Trace | None = None, faults: FaultPlan | None = None,
                 name: str = "order", retries: int = 0, outbox_table: str = OUTBOX_TABLE):
        self.variant = check.one_of("variant", variant, VARIANTS)
        if broker is not None and not callable(getattr(broker, "publish", None)):
            raise TypeError(f"broker must be a Broker (or None for the outbox variant), got {broker!r}")
        check.count("retries", retries, minimum=0)
        check.name("topic", topic)
        check.name("name", name)
        check.identifier("outbox_table", outbox_table)
        if variant != "outbox" and hasattr(broker, "topic"):
            broker.topic(topic)  # a naive service publishes there: refuse it before any commit
        self.broker = broker
        self.db = _open(db)
        self.topic = topic
        self.clock, self.trace, self.faults = shared_with(broker, clock, trace, faults)
        self.name = name
        self.retries = retries
        self.outbox_table = outbox_table
        self._create_schema()
        self.origin = self._origin()
        self._next_number = self._highest_number() + 1
        self._insert_order = (f"INSERT INTO {ORDERS_TABLE} (order_id, customer, sku, quantity, "
                              "amount, state, version, created_at, updated_at) "
                              f"VALUES (?, ?, ?, ?, ?, '{PLACED}', 1, ?, ?)")

    # -- schema ------------------------------------------------------------------------------
    def _create_schema(self) -> None:
        db = self.db
        create_orders_table(db)
        create_outbox(db, self.outbox_table)
        db.execute("CREATE TABLE IF NOT EXISTS service_meta (key TEXT PRIMARY KEY, value TEXT)")

    def _origin(self) -> str:
        row = self.db.execute("SELECT value FROM service_meta WHERE key = 'origin'").fetchone()
        if row:
            return row[0]
        origin = new_id()[:8]
        self.db.execute("INSERT OR IGNORE INTO service_meta (key, value) VALUES ('origin', ?)",
                        (origin,))
        return self.db.execute("SELECT value FROM service_meta WHERE key = 'origin'").fetchone()[0]

    def _highest_number(self) -> int:
        row = self.db.execute(
            f"SELECT max(CAST(substr(order_id, 7) AS INTEGER)) FROM {ORDERS_TABLE} "
            "WHERE order_id GLOB 'order-[0-9]*'").fetchone()
        return row[0] or 0

    def event_id(self, order_id: str, version: int) -> str:
        """The id of the event that brings ``order_id`` to ``version`` (stable, unique)."""
        return f"{self.origin}-{order_id}-v{version}"

    def next_order_id(self) -> str:
        """A new order id, ``order-<n>``, after the highest one in the database."""
        order_id = f"order-{self._next_number}"
        self._next_number += 1
        return order_id

    # -- commands ----------------------------------------------------------------------------
    def place_order(self, order_id: str | None = None, *, customer: str = "ada",
                    amount: float = 25.0, variant: str | None = None,
                    details: Mapping[str, Any] | None = None) -> str:
        """Take an order and announce ``OrderPlaced``; returns the order id.

        ``details`` (e.g. ``{"sku": "book", "quantity": 2}``) travel in the event's payload
        for the services downstream (the saga needs the sku); the orders table keeps the rest.

        The naive variants raise :class:`~eda_lab.broker.BrokerUnavailable` when the publish
        fails (after the commit, for db_then_publish); any variant raises
        :class:`~eda_lab.faults.Crash` at a crash point the fault plan fires.
        """
        variant = self.variant if variant is None else check.one_of("variant", variant, VARIANTS)
        if order_id is not None:
            check.name("order_id", order_id)
        check.name("customer", customer)
        check.number("amount", amount, above=0)
        extra = dict(check.mapping("details", details, "{'sku': 'book'}") if details else {})
        taken = sorted({"order_id", "customer", "amount"} & set(extra))
        if taken:
            raise ValueError(f"details must not repeat {taken}: pass them as arguments")
        if "sku" in extra:
            check.name("details['sku']", extra["sku"])
        if "quantity" in extra:
            check.count("details['quantity']", extra["quantity"])
        if order_id is None:  # numbered only once the order is known to be good
            order_id = self.next_order_id()
        now = self.clock.now
        event_id = self.event_id(order_id, 1)
        payload = encode_payload({"order_id": order_id, "customer": customer, "amount": amount,
                                  **extra}, "details")
        order_row = (order_id, customer, extra.get("sku"), extra.get("quantity"), amount, now, now)
        event = OutboxEvent(event_id, AGGREGATE_TYPE, order_id, "OrderPlaced", payload, 1, now)
        self._commit(variant, self._order_writer(order_row), event, now)
        return order_id

    def _order_writer(self, order_row: tuple):
        """The business write of a new order; a taken order id is a clear error (rolled back)."""
        def write(conn) -> None:
            try:
                conn.execute(self._insert_order, order_row)
            except sqlite3.IntegrityError:
                raise ValueError(f"order_id {order_row[0]!r} is already in the orders table; "
                                 "pass a new id or None") from None
        return write

    def record_event(self, order_id: str, type: str, payload: Mapping[str, Any] | None = None,
                     *, state: str | None = None, variant: str | None = None) -> str:
        """Change an existing order and announce it (``OrderConfirmed``, ``OrderCancelled``);
        returns the event id. The order's version goes up by one, in the same transaction."""
        variant = self.variant if variant is None else check.one_of("variant", variant, VARIANTS)
        if not isinstance(type, str) or not is_past_tense(type):
            raise ValueError(f"type must be an event name in the past tense such as "
                             f"'OrderConfirmed', got {type!r}")
        if state is not None and (not isinstance(state, str) or not state):
            raise ValueError(f"state must be a non-empty string or None, got {state!r}")
        row = self.db.execute(f"SELECT version FROM {ORDERS_TABLE} WHERE order_id = ?",
                              (order_id,)).fetchone()
        if row is None:
            raise ValueError(f"order_id {order_id!r} is not in the orders table")
        extra = dict(check.mapping("payload", payload, "{'reason': 'late'}") if payload else {})
        if "order_id" in extra:
            raise ValueError("payload must not set 'order_id': the service sets it (the event is "
                             f"about {order_id!r}), got payload={extra!r}")
        text = encode_payload({"order_id": order_id, **extra})
        version = row[0] + 1
        now = self.clock.now
        event = OutboxEvent(self.event_id(order_id, version), AGGREGATE_TYPE, order_id, type, text,
                            version, now)

        def write(conn) -> None:
            changed = conn.execute(
                f"UPDATE {ORDERS_TABLE} SET version = ?, state = coalesce(?, state), "
                "updated_at = ? WHERE order_id = ? AND version = ?",
                (version, state, now, order_id, version - 1)).rowcount
            if not changed:  # someone else changed the order meanwhile: optimistic lock
                raise RuntimeError(f"order {order_id!r} changed concurrently; try again")

        self._commit(variant, write, event, now)
        return event.id

    def _commit(self, variant: str, write, event: OutboxEvent, now: float) -> None:
        """Commit the change ``write`` makes and announce ``event``, the ``variant`` way."""
        context = Context(self.faults, self.trace, now, self.name)
        if variant == "outbox":
            commit_with_outbox(self.db, write, event, POINTS, context, table=self.outbox_table)
            return
        if self.broker is None:
            raise ValueError(f"variant {variant!r} publishes directly: pass a broker to "
                             "OrderService(broker, ...)")
        run = db_then_publish if variant == "db_then_publish" else publish_then_db
        run(self.db, write, self.broker, self.topic, event.to_message(), POINTS, context,
            retries=self.retries)

    # -- inspection --------------------------------------------------------------------------
    def orders(self) -> list[dict]:
        """Every committed order, as dicts."""
        return list(self.db[ORDERS_TABLE].rows_where(order_by="created_at, order_id"))

    def truth(self) -> dict[str, int]:
        """The source of truth for the checks: order id -> version (events it committed)."""
        return dict(self.db.execute(f"SELECT order_id, version FROM {ORDERS_TABLE}").fetchall())

    def __repr__(self) -> str:
        return (f"OrderService({self.name!r}, variant={self.variant!r}, "
                f"orders={self.db[ORDERS_TABLE].count})")
