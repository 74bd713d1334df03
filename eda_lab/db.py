"""A service's own database: SQLite in WAL mode, opened the same way everywhere.

Each service owns its database and nobody else writes to it; a *local transaction* is a
SQLite transaction in that one file. There is no transaction across two services' databases:
that gap is what the dual-write problem, the outbox and sagas are about.

sqlite-utils gives the schema helpers and inspection (``db["orders"].rows``); the hot paths use
the connection directly, always with SQL parameters.
"""

from __future__ import annotations

import sqlite3
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlite_utils

# The pragmas every service database uses (the benchmarks' raw-sqlite3 baselines use them too).
PRAGMAS = {
    "journal_mode": "WAL",      # readers never block the writer; a relay can read while orders commit
    "synchronous": "NORMAL",    # durable at each WAL checkpoint; safe against process crashes
    "foreign_keys": "ON",
    "busy_timeout": "5000",     # ms to wait for another process's write lock before failing
}


def apply_pragmas(conn: sqlite3.Connection) -> None:
    """Set :data:`PRAGMAS` on a raw connection (an in-memory database stays in 'memory' mode)."""
    for name, value in PRAGMAS.items():
        conn.execute(f"PRAGMA {name}={value}")


def open_db(path: str | Path | None = None) -> sqlite_utils.Database:
    """Open (or create) a service database at ``path``; ``None`` or ':memory:' for in-memory.

    The connection runs in autocommit mode: nothing is written until a :func:`transaction`
    commits it, so the code says exactly where each local transaction begins and ends.
    """
    if path is None or str(path) == ":memory:":
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    else:
        path = Path(path)
        if path.exists() and path.is_dir():
            raise ValueError(f"path must be a database file, got the directory {str(path)!r}")
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=5.0,
                               check_same_thread=False)
    apply_pragmas(conn)
    return sqlite_utils.Database(conn)


# database -> what to call after each commit on it (see on_commit)
_COMMIT_LISTENERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def on_commit(db: sqlite_utils.Database, listener: Callable[[], Any]) -> None:
    """Call ``listener()`` after every :func:`transaction` that commits on ``db``.

    The model of a database's change stream: PostgreSQL's logical replication pushes each
    committed change to a reader (Debezium) as soon as it is in the log. A log-tailing relay
    listens here instead of asking again and again.
    """
    if not callable(listener):
        raise TypeError(f"listener must be a function of no arguments, got {listener!r}")
    _COMMIT_LISTENERS.setdefault(db, []).append(listener)


class transaction:  # noqa: N801 - used as a function: `with transaction(db) as conn:`
    """One local transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exit by
    exception (a :class:`~eda_lab.faults.Crash` included: a dead process commits nothing).

    IMMEDIATE takes the write lock at the start, so two writers queue up instead of failing
    halfway through with "database is locked". (A class rather than a generator function: it
    runs once per order and per delivery, and costs a third as much.)
    """

    __slots__ = ("conn", "db")

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self.conn = db.conn

    def __enter__(self) -> sqlite3.Connection:
        conn = self.conn
        if conn.in_transaction:
            raise RuntimeError("a transaction is already open on this connection; nest nothing")
        conn.execute("BEGIN IMMEDIATE")
        return conn

    def __exit__(self, kind, value, tb) -> bool:
        conn = self.conn
        if kind is None:
            conn.execute("COMMIT")
            for listener in _COMMIT_LISTENERS.get(self.db, ()):
                listener()
        elif conn.in_transaction:
            conn.execute("ROLLBACK")
        return False  # an exception goes on: the caller (or the crashed process) sees it


def rows(db: sqlite_utils.Database, table: str, order_by: str | None = None) -> list[dict]:
    """Every row of ``table`` as dicts (an empty list if the table does not exist yet)."""
    if not db[table].exists():
        return []
    return list(db[table].rows_where(order_by=order_by))


def count(db: sqlite_utils.Database, table: str) -> int:
    """The number of rows in ``table`` (0 if it does not exist yet)."""
    return db[table].count if db[table].exists() else 0
