"""The order service: its own SQLite database, and ``place_order`` written three ways.

``variant`` picks how the service tells the world about a new order:

* ``"db_then_publish"``: commit the order, then publish ``OrderPlaced`` (naive);
* ``"publish_then_db"``: publish, then commit (naive, the other way round);
* ``"outbox"``: insert the order *and* an outbox row in one local transaction; a relay
  (:mod:`eda_lab.relay`) publishes later. The service never talks to the broker.

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

import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from .broker import Broker
from .clock import Clock
from .db import open_db, transaction
from .dual_write import Context, DualWritePoints, db_then_publish, publish_then_db
from .faults import FaultPlan, crash_point
from .messages import is_past_tense, new_id
from .outbox import OUTBOX_TABLE, create_outbox, encode_payload, insert_sql, row_to_message
from .trace import Trace

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
ORDERS_TABLE = "orders"
AGGREGATE_TYPE = "order"


def _open(db: sqlite_utils.Database | str | Path | None) -> sqlite_utils.Database:
    if db is None or isinstance(db, (str, Path)):
        return open_db(db)
    if isinstance(db, sqlite_utils.Database):
        return db
    raise TypeError(f"db must be a path, a sqlite_utils.Database or None (in memory), got "
                    f"{type(db).__name__}")


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return variant


def _from_broker(broker, attribute: str, make):
    """The broker's clock/trace/faults when it has one (so a run shares them), else a new one."""
    value = getattr(broker, attribute, None)
    return value if value is not None else make()


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
        self.variant = _check_variant(variant)
        if broker is not None and not callable(getattr(broker, "publish", None)):
            raise TypeError(f"broker must be a Broker (or None for the outbox variant), got {broker!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        self.broker = broker
        self.db = _open(db)
        self.topic = topic
        self.clock = clock if clock is not None else _from_broker(broker, "clock", Clock)
        self.trace = trace if trace is not None else _from_broker(broker, "trace", Trace)
        self.faults = faults if faults is not None else _from_broker(broker, "faults", FaultPlan)
        self.name = name
        self.retries = retries
        self.outbox_table = outbox_table
        self._create_schema()
        self.origin = self._origin()
        self._next_number = self._highest_number() + 1
        self._insert_order = (f"INSERT INTO {ORDERS_TABLE} (order_id, customer, amount, status, "
                              "version, created_at, updated_at) VALUES (?, ?, ?, 'placed', 1, ?, ?)")
        self._insert_event = insert_sql(outbox_table)

    # -- schema ------------------------------------------------------------------------------
    def _create_schema(self) -> None:
        db = self.db
        if not db[ORDERS_TABLE].exists():
            db[ORDERS_TABLE].create(
                {"order_id": str, "customer": str, "amount": float, "status": str,
                 "version": int, "created_at": float, "updated_at": float},
                pk="order_id", not_null={"customer", "amount", "status", "version"})
        create_outbox(db, self.outbox_table)
        if not db["service_meta"].exists():
            db["service_meta"].create({"key": str, "value": str}, pk="key")

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
        variant = self.variant if variant is None else _check_variant(variant)
        if order_id is None:
            order_id = self.next_order_id()
        elif not isinstance(order_id, str) or not order_id:
            raise ValueError(f"order_id must be a non-empty string or None, got {order_id!r}")
        if not isinstance(customer, str) or not customer:
            raise ValueError(f"customer must be a non-empty string, got {customer!r}")
        if (isinstance(amount, bool) or not isinstance(amount, (int, float))
                or not math.isfinite(amount) or amount <= 0):
            raise ValueError(f"amount must be a finite number > 0, got {amount!r}")
        if details is not None and not isinstance(details, Mapping):
            raise TypeError(f"details must be a dict such as {{'sku': 'book'}}, got "
                            f"{type(details).__name__}")
        extra = dict(details or {})
        taken = sorted({"order_id", "customer", "amount"} & set(extra))
        if taken:
            raise ValueError(f"details must not repeat {taken}: pass them as arguments")
        now = self.clock.now
        event_id = self.event_id(order_id, 1)
        payload = encode_payload({"order_id": order_id, "customer": customer, "amount": amount,
                                  **extra}, "details")
        order_row = (order_id, customer, amount, now, now)
        event_row = (event_id, AGGREGATE_TYPE, order_id, "OrderPlaced", payload, 1, now)
        write = self._order_writer(order_row)
        if variant == "outbox":
            self._commit_with_outbox(write, event_row, now)
        else:
            self._dual_write(variant, write, event_row, now)
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
                     *, status: str | None = None, variant: str | None = None) -> str:
        """Change an existing order and announce it (``OrderConfirmed``, ``OrderCancelled``);
        returns the event id. The order's version goes up by one, in the same transaction."""
        variant = self.variant if variant is None else _check_variant(variant)
        if not isinstance(type, str) or not is_past_tense(type):
            raise ValueError(f"type must be an event name in the past tense such as "
                             f"'OrderConfirmed', got {type!r}")
        if status is not None and (not isinstance(status, str) or not status):
            raise ValueError(f"status must be a non-empty string or None, got {status!r}")
        row = self.db.execute(f"SELECT version FROM {ORDERS_TABLE} WHERE order_id = ?",
                              (order_id,)).fetchone()
        if row is None:
            raise ValueError(f"order_id {order_id!r} is not in the orders table")
        text = encode_payload({"order_id": order_id, **(payload or {})})
        version = row[0] + 1
        now = self.clock.now
        event_row = (self.event_id(order_id, version), AGGREGATE_TYPE, order_id, type, text,
                     version, now)

        def write(conn) -> None:
            changed = conn.execute(
                f"UPDATE {ORDERS_TABLE} SET version = ?, status = coalesce(?, status), "
                "updated_at = ? WHERE order_id = ? AND version = ?",
                (version, status, now, order_id, version - 1)).rowcount
            if not changed:  # someone else changed the order meanwhile: optimistic lock
                raise RuntimeError(f"order {order_id!r} changed concurrently; try again")

        if variant == "outbox":
            self._commit_with_outbox(write, event_row, now)
        else:
            self._dual_write(variant, write, event_row, now)
        return event_row[0]

    def _commit_with_outbox(self, write, event_row: tuple, now: float) -> None:
        """The outbox: the change and its event in ONE local transaction."""
        faults, trace = self.faults, self.trace
        with transaction(self.db) as conn:
            write(conn)
            conn.execute(self._insert_event, event_row)
            if faults.plans(BEFORE_COMMIT):
                faults.check(BEFORE_COMMIT, trace=trace, now=now, actor=self.name)
        if trace.enabled:
            trace.add(now, "db_commit", self.name, key=event_row[2], message_id=event_row[0],
                      message_type=event_row[3], detail="orders + outbox in one transaction")
        if faults.plans(AFTER_COMMIT):
            faults.check(AFTER_COMMIT, trace=trace, now=now, actor=self.name)

    def _dual_write(self, variant: str, write, event_row: tuple, now: float) -> None:
        if self.broker is None:
            raise ValueError(f"variant {variant!r} publishes directly: pass a broker to "
                             "OrderService(broker, ...)")
        message = row_to_message(event_row)
        run = db_then_publish if variant == "db_then_publish" else publish_then_db
        run(self.db, write, self.broker, self.topic, message, POINTS,
            Context(self.faults, self.trace, now, self.name), retries=self.retries)

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
