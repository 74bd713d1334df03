"""The idempotent consumer: an inbox table that makes a redelivered message harmless.

A broker delivers at least once, so every consumer sees duplicates sooner or later (a relay
that crashed after publishing, a consumer that crashed before committing). The fix is on the
consumer side: record the id of every processed message in the consumer's own database, in
the *same local transaction* as the state change it caused. A redelivery finds its id already
there and changes nothing. Recording the id in a separate transaction would reopen the gap:
crash between the two and the effect is applied twice, or never.

This is the tracking-record pattern of the eventsourcing library and the "inbox" of the
microservices literature. ``INSERT`` into a table whose primary key is the message id is the
check and the claim in one statement.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import sqlite_utils

from . import _validate as check
from .db import transaction
from .messages import Message

INBOX_TABLE = "inbox"

Apply = Callable[[sqlite3.Connection, Message], Any]


def create_inbox(db: sqlite_utils.Database, table: str = INBOX_TABLE) -> None:
    """Create the inbox table (message id, who processed it, when) if it is missing."""
    check.identifier("table", table)
    db.execute(f'CREATE TABLE IF NOT EXISTS "{table}" (message_id TEXT, consumer TEXT, '
               "message_type TEXT, processed_at REAL, PRIMARY KEY (consumer, message_id))")


class Inbox:
    """Processes each message at most once per consumer, in one transaction with its effect.

    >>> from eda_lab.db import open_db
    >>> from eda_lab.messages import event
    >>> db = open_db()
    >>> inbox = Inbox(db, "shipping")
    >>> m = event("OrderPlaced", "order-1", {"total": 30})
    >>> inbox.process(m, lambda conn, msg: None)
    True
    >>> inbox.process(m, lambda conn, msg: None)   # a redelivery: no second effect
    False
    """

    def __init__(self, db: sqlite_utils.Database, consumer: str, table: str = INBOX_TABLE):
        check.name("consumer", consumer)
        check.identifier("table", table)  # it goes into the SQL text of every claim
        self.db = db
        self.consumer = consumer
        self.table = table
        create_inbox(db, table)
        self._insert = (f'INSERT OR IGNORE INTO "{table}" '
                        "(consumer, message_id, message_type, processed_at) VALUES (?, ?, ?, ?)")
        self.duplicates = 0

    def process(self, message: Message, apply: Apply, now: float | None = None) -> bool:
        """Apply ``message`` unless it was processed before. True if applied now.

        ``apply(conn, message)`` writes the effect with ``conn`` inside the transaction; if it
        raises (or the process crashes), neither the effect nor the inbox row is kept, so the
        redelivery will try again.
        """
        if not isinstance(message, Message):
            raise TypeError(f"process() takes a Message, got {type(message).__name__}")
        with transaction(self.db) as conn:
            claimed = conn.execute(
                self._insert,
                (self.consumer, message.id, message.type,
                 message.timestamp if now is None else now),
            ).rowcount
            if not claimed:
                self.duplicates += 1
                return False
            apply(conn, message)
        return True

    def purge(self, now: float, retention_ms: float) -> int:
        """Forget the messages processed more than ``retention_ms`` before ``now``; the count.

        An inbox cannot grow for ever, so real ones keep a window (MassTransit 30 minutes,
        NServiceBus 7 days). The window is a promise with a horizon: a message redelivered
        after its row was purged is processed a second time.
        """
        check.ms("now", now, positive=False)
        check.ms("retention_ms", retention_ms, positive=False)
        with transaction(self.db) as conn:
            return conn.execute(f'DELETE FROM "{self.table}" WHERE consumer = ? AND '
                                "processed_at < ?", (self.consumer, now - retention_ms)).rowcount

    def seen(self, message_id: str) -> bool:
        """True if this consumer has processed the message with ``message_id``."""
        row = self.db.execute(
            f'SELECT 1 FROM "{self.table}" WHERE consumer = ? AND message_id = ?',
            (self.consumer, message_id),
        ).fetchone()
        return row is not None

    def __len__(self) -> int:
        return self.db.execute(
            f'SELECT count(*) FROM "{self.table}" WHERE consumer = ?', (self.consumer,)
        ).fetchone()[0]
