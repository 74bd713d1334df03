"""The transactional outbox on PostgreSQL: the same table and the same order service.

The columns are those of :mod:`eda_lab.outbox.table` (``seq``, ``id``, ``aggregatetype``,
``aggregateid``, ``type``, ``payload``, ``version``, ``created_at``, ``published_at``), in
PostgreSQL's types: ``seq`` is a ``bigserial`` (a sequence, taken at INSERT, which is what
opens the polling gap, see :mod:`.polling_gap`), ``payload`` is ``jsonb``, the times are
wall-clock milliseconds (``created_at`` is taken just before the commit, so the relays measure
their lag from it).

:func:`install_outbox` creates the tables, a **publication** of the outbox table (inserts
only: what the CDC relay streams) and, if asked, the relay's **replication slot**, in this
order, so the slot exists before the first event is written and the relay cannot miss one
(Debezium takes an initial snapshot for the rows written before its slot existed; we avoid
needing one).

:class:`PgOrderService` has the interface of :class:`eda_lab.outbox.OrderService`:
``place_order(order_id=None, *, customer, amount, details=None) -> order id`` writes the order
and its ``OrderPlaced`` outbox row in one local transaction; ``record_event`` changes an order
and writes the next event; ``truth()`` is what the consistency checks compare against. Event
ids are ``<origin>-<order id>-v<version>``, derived from durable state, as in SQLite.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import psycopg2
import psycopg2.errors

from .. import _validate as check
from ..messages import is_past_tense, new_id
from .postgres import check_identifier, connect
from .slots import ensure_slot

OUTBOX_TABLE = "outbox"
ORDERS_TABLE = "orders"
PUBLICATION = "eda_lab_outbox"
AGGREGATE_TYPE = "order"
MAX_BATCH_SIZE = 10_000   # the most outbox rows a relay reads and publishes at once
# The same as eda_lab.outbox.table.COLUMNS (tests/test_engines_outbox.py compares the table
# PostgreSQL made with those). Not imported from there: the relay process would then load the
# whole eda_lab.outbox package (see relay_process).
COLUMNS = ("seq", "id", "aggregatetype", "aggregateid", "type", "payload", "version",
           "created_at", "published_at")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {ORDERS_TABLE} (
    order_id text PRIMARY KEY,
    customer text NOT NULL,
    amount double precision NOT NULL CHECK (amount > 0),
    status text NOT NULL,
    version integer NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    aggregatetype text NOT NULL,
    aggregateid text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL,
    version integer NOT NULL DEFAULT 1,
    created_at double precision NOT NULL,
    published_at double precision,
    headers jsonb
);
CREATE INDEX IF NOT EXISTS {OUTBOX_TABLE}_unpublished ON {OUTBOX_TABLE} (seq)
    WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS service_meta (key text PRIMARY KEY, value text NOT NULL);
"""


def now_ms() -> float:
    """Wall-clock milliseconds: comparable across the writer, relay and consumer processes."""
    return time.time() * 1000.0


def install_outbox(dsn: str, *, slot: str | None = None,
                   publication: str = PUBLICATION) -> None:
    """Create the schema and the publication (idempotent); then ``slot`` if given and missing.

    Run it once per database, before the first order: a slot created later does not see the
    rows written before it.
    """
    check_identifier(publication, "publication")
    conn = connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(8008)")   # two installers at once: one waits
            cur.execute(SCHEMA)
            cur.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,))
            if cur.fetchone() is None:
                cur.execute(f"CREATE PUBLICATION {publication} FOR TABLE {OUTBOX_TABLE} "
                            "WITH (publish = 'insert')")
    finally:
        conn.close()
    if slot is not None:
        ensure_slot(dsn, slot)


class PgOrderService:
    """The order service on PostgreSQL: orders and outbox in one database, one transaction."""

    def __init__(self, dsn: str, *, name: str = "order", slot: str | None = None):
        self.name = check.name("name", name)
        install_outbox(dsn, slot=slot)
        self.dsn = dsn
        self.conn = connect(dsn)
        self.origin = self._origin()
        self._next_number = self._highest_number() + 1

    def _origin(self) -> str:
        with self.conn, self.conn.cursor() as cur:
            cur.execute("INSERT INTO service_meta (key, value) VALUES ('origin', %s) "
                        "ON CONFLICT (key) DO NOTHING", (new_id()[:8],))
            cur.execute("SELECT value FROM service_meta WHERE key = 'origin'")
            return cur.fetchone()[0]

    def _highest_number(self) -> int:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(f"SELECT max(substr(order_id, 7)::bigint) FROM {ORDERS_TABLE} "
                        "WHERE order_id ~ '^order-[0-9]+$'")
            return cur.fetchone()[0] or 0

    def event_id(self, order_id: str, version: int) -> str:
        """The id of the event that brings ``order_id`` to ``version`` (stable, unique)."""
        return f"{self.origin}-{order_id}-v{version}"

    def next_order_id(self) -> str:
        order_id = f"order-{self._next_number}"
        self._next_number += 1
        return order_id

    def place_order(self, order_id: str | None = None, *, customer: str = "ada",
                    amount: float = 25.0, details: Mapping[str, Any] | None = None) -> str:
        """Write the order and its ``OrderPlaced`` outbox row in one transaction; its id."""
        if order_id is not None:
            check.name("order_id", order_id)
        check.name("customer", customer)
        check.number("amount", amount, above=0)
        extra = dict(check.mapping("details", details, "{'sku': 'book'}") if details else {})
        taken = sorted({"order_id", "customer", "amount"} & set(extra))
        if taken:
            raise ValueError(f"details must not repeat {taken}: pass them as arguments")
        try:
            json.dumps(extra, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise TypeError(f"details must be JSON (dict, list, str, int, float, bool, None): "
                            f"{error}") from None
        if order_id is None:   # numbered only once the order is known to be good
            order_id = self.next_order_id()
        payload = json.dumps({"order_id": order_id, "customer": customer, "amount": amount,
                              **extra}, separators=(",", ":"))
        now = now_ms()
        try:
            with self.conn, self.conn.cursor() as cur:
                cur.execute(f"INSERT INTO {ORDERS_TABLE} (order_id, customer, amount, status, "
                            "version, created_at, updated_at) VALUES (%s, %s, %s, 'placed', 1, "
                            "%s, %s)", (order_id, customer, amount, now, now))
                self._write_event(cur, order_id, "OrderPlaced", payload, 1, now)
        except psycopg2.errors.UniqueViolation:
            raise ValueError(f"order_id {order_id!r} is already in the orders table; pass a "
                             "new id or None") from None
        return order_id

    def record_event(self, order_id: str, type: str, payload: Mapping[str, Any] | None = None,
                     *, status: str | None = None) -> str:
        """Change an existing order (version + 1) and write its event, in one transaction."""
        check.name("order_id", order_id)
        if not isinstance(type, str) or not is_past_tense(type):
            raise ValueError(f"type must be an event name in the past tense such as "
                             f"'OrderConfirmed', got {type!r}")
        if status is not None:
            check.name("status", status)
        if payload is not None:
            check.mapping("payload", payload, "{'reason': 'late'}")
        now = now_ms()
        with self.conn, self.conn.cursor() as cur:
            cur.execute(f"UPDATE {ORDERS_TABLE} SET version = version + 1, "
                        "status = coalesce(%s, status), updated_at = %s WHERE order_id = %s "
                        "RETURNING version", (status, now, order_id))
            row = cur.fetchone()
            if row is None:
                raise ValueError(f"order_id {order_id!r} is not in the orders table")
            text = json.dumps({"order_id": order_id, **(payload or {})}, separators=(",", ":"))
            return self._write_event(cur, order_id, type, text, row[0], now)

    def _write_event(self, cur, order_id: str, type_: str, payload: str, version: int,
                     now: float) -> str:
        event_id = self.event_id(order_id, version)
        cur.execute(f"INSERT INTO {OUTBOX_TABLE} (id, aggregatetype, aggregateid, type, "
                    "payload, version, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (event_id, AGGREGATE_TYPE, order_id, type_, payload, version, now))
        return event_id

    def truth(self) -> dict[str, int]:
        """The source of truth for the checks: order id -> version (events it committed)."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(f"SELECT order_id, version FROM {ORDERS_TABLE}")
            return dict(cur.fetchall())

    def orders(self) -> list[dict]:
        with self.conn, self.conn.cursor() as cur:
            cur.execute(f"SELECT order_id, customer, amount, status, version FROM {ORDERS_TABLE} "
                        "ORDER BY created_at, order_id")
            names = [c.name for c in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def pending(self) -> int:
        """Outbox rows a polling relay has not marked yet."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE published_at IS NULL")
            return cur.fetchone()[0]

    def close(self) -> None:
        self.conn.close()

    def __repr__(self) -> str:
        return f"PgOrderService({self.name!r}, origin={self.origin!r})"
