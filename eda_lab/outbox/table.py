"""The transactional outbox: the event is written in the same local transaction as the change.

A service that must both change its database and tell the world cannot do the two atomically
(there is no transaction across its database and the broker). The outbox moves the second
write *into* the first: the business row and an outbox row describing the event are inserted
in one SQLite transaction, so both exist or neither does. A relay (:mod:`eda_lab.outbox.relay`)
publishes the outbox rows later, as often as it takes.

The columns are the ones Debezium's outbox event router expects, so the table reads like the
real thing (what the router does with each, then what the relays here do):

=============  ==============================================================================
``id``         the event id: Debezium sends it as a header named ``id``; here it is the
               message id. Consumers deduplicate on it.
aggregatetype  the kind of thing that changed (``order``): Debezium routes on it, to the topic
               ``outbox.event.order``; a relay here does so only when its ``topic`` is a
               function of it, otherwise every event goes to the relay's one topic (notebook
               04: ``orders``), and the value travels as a header.
aggregateid    which one (``order-17``): the message key in both, so one aggregate stays on
               one partition, in order
``type``       the event type, in the past tense (``OrderPlaced``): here the message type;
               Debezium emits it only when configured to (``table.fields.additional.placement``)
``payload``    the event body, JSON text: the message value in both
=============  ==============================================================================

plus what the relay needs: ``seq`` (insertion order; AUTOINCREMENT never reuses a number,
even after cleanup deletes rows), ``version`` (the aggregate's version after this event, sent
as a header so consumers can check order), ``created_at`` (simulated ms) and ``published_at``
(NULL until a polling relay has published the row).

The relay asks "the oldest unpublished rows, in order" on every poll. The partial index
``<table>_unpublished`` holds only unpublished rows, so that query costs the same whether the
table keeps ten rows or ten million published ones.

A log-tailing relay does not query the table at all: it follows a change log of committed
inserts. SQLite has no logical decoding of its WAL, so :func:`enable_change_log` models it with
a trigger that appends every inserted outbox row to ``<table>_log`` inside the inserting
transaction: an entry exists only if that transaction committed, and entries are numbered in
commit order (SQLite runs one writer at a time), which is what Debezium reads from Postgres's
WAL or MySQL's binlog.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Mapping
from typing import Any, NamedTuple

import sqlite_utils

from .. import _validate as check
from ..messages import COMMAND, EVENT, Message, is_past_tense
from .dual_write import Context, DualWritePoints, Write, commit_locally

OUTBOX_TABLE = "outbox"
COLUMNS = ("seq", "id", "aggregatetype", "aggregateid", "type", "payload", "version",
           "created_at", "published_at", "headers")
OFFSETS_TABLE = "relay_offsets"


def log_table(table: str = OUTBOX_TABLE) -> str:
    """The change-log table that follows ``table`` (see :func:`enable_change_log`)."""
    return f"{table}_log"


def create_outbox(db: sqlite_utils.Database, table: str = OUTBOX_TABLE, *,
                  change_log: bool = False) -> None:
    """Create the outbox table and its relay index, if missing (and the change log if asked)."""
    check.identifier("table", table)
    db.execute(f"""
        CREATE TABLE IF NOT EXISTS "{table}" (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            aggregatetype TEXT NOT NULL,
            aggregateid TEXT NOT NULL,
            type TEXT NOT NULL,
            payload TEXT NOT NULL,
            version INTEGER NOT NULL DEFAULT 1,
            created_at REAL NOT NULL,
            published_at REAL,
            headers TEXT
        )""")
    db.execute(f'CREATE INDEX IF NOT EXISTS "{table}_unpublished" ON "{table}" (seq) '
               "WHERE published_at IS NULL")
    if change_log:
        enable_change_log(db, table)


def enable_change_log(db: sqlite_utils.Database, table: str = OUTBOX_TABLE) -> None:
    """Start logging committed outbox inserts to ``<table>_log`` (the model of the WAL).

    Like setting up logical replication, this is done once per database. Rows already in the
    outbox and not yet published are copied into the log first, in ``seq`` order (Debezium's
    initial snapshot), so nothing written before the log existed is missed.
    """
    check.identifier("table", table)
    log = log_table(table)
    if db[log].exists():
        return
    with _immediate(db):
        db.execute(f"""
            CREATE TABLE "{log}" (
                lsn INTEGER PRIMARY KEY AUTOINCREMENT,
                seq INTEGER NOT NULL,
                id TEXT NOT NULL,
                aggregatetype TEXT NOT NULL,
                aggregateid TEXT NOT NULL,
                type TEXT NOT NULL,
                payload TEXT NOT NULL,
                version INTEGER NOT NULL,
                created_at REAL NOT NULL,
                headers TEXT
            )""")
        db.execute(f"""
            INSERT INTO "{log}" (seq, id, aggregatetype, aggregateid, type, payload, version,
                                 created_at, headers)
            SELECT seq, id, aggregatetype, aggregateid, type, payload, version, created_at,
                   headers
            FROM "{table}" WHERE published_at IS NULL ORDER BY seq""")
        db.execute(f"""
            CREATE TRIGGER "{table}_to_log" AFTER INSERT ON "{table}" BEGIN
                INSERT INTO "{log}" (seq, id, aggregatetype, aggregateid, type, payload,
                                     version, created_at, headers)
                VALUES (NEW.seq, NEW.id, NEW.aggregatetype, NEW.aggregateid, NEW.type,
                        NEW.payload, NEW.version, NEW.created_at, NEW.headers);
            END""")


class _immediate:
    """A write transaction for schema changes (the service's ``transaction`` may be in use)."""

    def __init__(self, db: sqlite_utils.Database):
        self.conn = db.conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind, value, tb):
        self.conn.execute("COMMIT" if kind is None else "ROLLBACK")
        return False


def create_offsets(db: sqlite_utils.Database) -> None:
    """The table where log-tailing relays store how far they have published."""
    db.execute(f'CREATE TABLE IF NOT EXISTS "{OFFSETS_TABLE}" '
               "(relay TEXT PRIMARY KEY, position INTEGER NOT NULL)")


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)  # made once: cheaper per call


def encode_payload(payload: Mapping[str, Any], argument: str = "payload") -> str:
    """The payload as compact JSON text; a clear error names ``argument`` when it is not JSON."""
    if not isinstance(payload, Mapping):
        raise TypeError(f"{argument} must be a dict (a JSON object), got {type(payload).__name__}")
    try:
        return _ENCODER.encode(payload)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{argument} must be JSON (dict, list, str, int, float, bool, None): "
                        f"{exc}") from None


@functools.lru_cache(maxsize=64)
def insert_sql(table: str = OUTBOX_TABLE, ignore_duplicate: bool = False) -> str:
    """The outbox INSERT, with parameters (id, aggregatetype, aggregateid, type, payload,
    version, created_at, headers); ``ignore_duplicate``: an id already there is skipped."""
    check.identifier("table", table)
    verb = "INSERT OR IGNORE" if ignore_duplicate else "INSERT"
    return (f'{verb} INTO "{table}" (id, aggregatetype, aggregateid, type, payload, version, '
            "created_at, headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")


def write_event(conn: sqlite3.Connection, *, id: str, aggregatetype: str, aggregateid: str,
                type: str, payload: Mapping[str, Any] | str, version: int = 1,
                created_at: float = 0.0, headers: Mapping[str, str] | str | None = None,
                table: str = OUTBOX_TABLE, ignore_duplicate: bool = False) -> None:
    """Insert one outbox row with ``conn``, inside the caller's open transaction.

    This is the whole pattern: call it between the business row's INSERT/UPDATE and the
    COMMIT, on the same connection. ``payload`` is a dict (encoded here) or JSON text;
    ``headers`` (optional) are more message headers, a dict of strings or its JSON text (a saga
    command's saga id and attempt, placed as headers as Debezium's router can place columns).
    ``ignore_duplicate``: an event whose id is in the table already is not written again (a
    redelivered command answered twice says the same thing once).
    """
    if not conn.in_transaction:
        raise RuntimeError(
            "write_event must run inside the transaction that changes the business row "
            "(use it within `with transaction(db) as conn:`); outside it, it is a dual write"
        )
    text = payload if isinstance(payload, str) else encode_payload(payload)
    extra = headers if headers is None or isinstance(headers, str) else encode_payload(
        headers, "headers")
    conn.execute(insert_sql(table, ignore_duplicate),
                 (id, aggregatetype, aggregateid, type, text, version, created_at, extra))


class OutboxEvent(NamedTuple):
    """One event a service is about to write to its outbox: a row, in column order.

    ``payload`` is JSON text (:func:`encode_payload`). The message key will be the aggregate
    id, as Debezium's outbox router makes it: one aggregate's events stay in one partition.
    """

    id: str
    aggregatetype: str
    aggregateid: str
    type: str
    payload: str
    version: int = 1
    created_at: float = 0.0
    headers: str | None = None   # JSON text of more message headers, if any

    @property
    def key(self) -> str:
        """The message key: the aggregate id."""
        return self.aggregateid

    def to_message(self) -> Message:
        """The broker message a relay will publish for this row."""
        return row_to_message(self)


def commit_with_outbox(db: sqlite_utils.Database, write: Write, event: OutboxEvent,
                       points: DualWritePoints, ctx: Context, *,
                       table: str = OUTBOX_TABLE) -> None:
    """The transactional outbox: the change and its event in ONE local transaction.

    ``write(conn)`` makes the business change; the event becomes an outbox row on the same
    connection before the COMMIT, so both are kept or neither is. Nothing is published here:
    a relay does that later, as often as it takes. Compare ``db_then_publish`` in
    :mod:`eda_lab.outbox.dual_write`: the same arguments, and one write instead of two.
    """
    def change_and_event(conn: sqlite3.Connection) -> None:
        write(conn)
        write_event(conn, id=event.id, aggregatetype=event.aggregatetype,
                    aggregateid=event.aggregateid, type=event.type, payload=event.payload,
                    version=event.version, created_at=event.created_at,
                    headers=event.headers, table=table)

    commit_locally(db, change_and_event, points, ctx, event, "orders + outbox in one transaction")


# The columns of a row that make its message, in the order row_to_message reads them.
MESSAGE_COLUMNS = "id, aggregatetype, aggregateid, type, payload, version, created_at, headers"


def row_to_message(row: tuple | sqlite3.Row) -> Message:
    """The broker message of an outbox (or change-log) row.

    ``row`` holds (id, aggregatetype, aggregateid, type, payload, version, created_at,
    headers): the key is the aggregate id, as Debezium's router does, and the aggregate type,
    the version and the row's own headers travel as headers (its
    ``table.fields.additional.placement``). A type in the past tense is an event, any other a
    command (a saga's ``ReserveInventory``): the course names them so.
    """
    id_, aggregatetype, aggregateid, type_, payload, version, created_at, headers = row
    extra = json.loads(headers) if headers else {}
    return Message(type_, aggregateid, json.loads(payload),
                   {"aggregatetype": aggregatetype, "version": str(version), **extra},
                   created_at, id_, EVENT if is_past_tense(type_) else COMMAND)


def pending(db: sqlite_utils.Database, table: str = OUTBOX_TABLE) -> int:
    """How many outbox rows a polling relay has not published yet (its backlog)."""
    check.identifier("table", table)
    if not db[table].exists():
        return 0
    return db.execute(
        f'SELECT count(*) FROM "{table}" WHERE published_at IS NULL').fetchone()[0]


def outbox_rows(db: sqlite_utils.Database, table: str = OUTBOX_TABLE) -> list[dict]:
    """Every outbox row, oldest first, as dicts (for tables in notebooks and widgets)."""
    check.identifier("table", table)
    if not db[table].exists():
        return []
    return list(db[table].rows_where(order_by="seq"))


def relay_query_plan(db: sqlite_utils.Database, table: str = OUTBOX_TABLE) -> str:
    """How SQLite runs the polling relay's query: it should name the partial index."""
    check.identifier("table", table)
    rows = db.execute(
        f'EXPLAIN QUERY PLAN SELECT seq FROM "{table}" WHERE published_at IS NULL '
        "ORDER BY seq LIMIT 100").fetchall()
    return "; ".join(row[-1] for row in rows)
