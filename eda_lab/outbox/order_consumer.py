"""A downstream service that acts on order events, with or without an inbox.

It stands for shipping (or billing, or analytics): every ``OrderPlaced`` it applies becomes one
row of its ``effects`` table, in its own database. Deliveries are at least once, so the same
event can arrive twice (a relay that died before marking, a consumer that died before
acknowledging). With ``inbox=True`` the message id is claimed in the same local transaction
as the effect (:class:`~eda_lab.inbox.Inbox`) and a redelivery changes nothing; with
``inbox=False`` every delivery is applied, and a duplicate becomes a second shipment.

The consumer loop itself (poll, apply, acknowledge by committing the offset) is the one every
consumer here runs, :class:`~eda_lab.consumer.ConsumerWorker`; its crash point
``consumer.before_commit`` sits between apply and acknowledge.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from .. import _validate as check
from ..broker import Broker, Delivery
from ..consumer import ConsumerWorker
from ..db import open_db, transaction
from ..inbox import Inbox
from ..messages import Message

EFFECTS_TABLE = "effects"


class OrderConsumer:
    """Consumer group ``group`` on ``topic``, applying each event to its own database.

    The service's part is :meth:`handle` (apply one event, through the inbox); the loop that
    polls, retries, dead-letters and commits is :class:`~eda_lab.consumer.ConsumerWorker`,
    which runs it. A crashed consumer rejoins ``restart_after_ms`` later (at its next poll,
    by default), as a supervisor would restart it.
    """

    def __init__(self, broker: Broker, db: sqlite_utils.Database | str | Path | None = None, *,
                 group: str = "shipping", topic: str = "orders", inbox: bool = True,
                 max_batch: int = 100, poll_interval_ms: float = 100.0, name: str | None = None,
                 restart_after_ms: float = 0.0):
        if not isinstance(broker, Broker):
            raise TypeError(f"broker must be an eda_lab Broker, got {type(broker).__name__}")
        check.flag("inbox", inbox)
        check.count("max_batch", max_batch)
        check.ms("poll_interval_ms", poll_interval_ms)
        check.name("group", group)
        check.name("topic", topic)
        if name is not None:
            check.name("name", name)
        self.broker = broker
        self.db = db if isinstance(db, sqlite_utils.Database) else open_db(db)
        self.group = group
        self.topic = topic
        self.name = name or group
        self.inbox = Inbox(self.db, self.name) if inbox else None
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE} (n INTEGER PRIMARY KEY, "
                        "message_id TEXT, order_id TEXT, type TEXT, version INTEGER, "
                        "applied_at REAL)")
        self._insert = (f"INSERT INTO {EFFECTS_TABLE} (message_id, order_id, type, version, "
                        "applied_at) VALUES (?, ?, ?, ?, ?)")
        self.received: list[Message] = []   # every delivery, redeliveries included, in order
        self.worker = ConsumerWorker(broker, group, topic, self._on_delivery, name=self.name,
                                     poll_interval_ms=float(poll_interval_ms),
                                     max_batch=max_batch, restart_after_ms=restart_after_ms,
                                     start=False)

    def _apply(self, conn: sqlite3.Connection, message: Message) -> None:
        conn.execute(self._insert, (message.id, message.key, message.type,
                                    int(message.headers.get("version", 1)),
                                    self.broker.clock.now))

    def handle(self, message: Message) -> bool:
        """Apply one event; True if it had an effect (False: the inbox knew it already)."""
        if self.inbox is not None:
            return self.inbox.process(message, self._apply, now=self.broker.clock.now)
        with transaction(self.db) as conn:
            self._apply(conn, message)
        return True

    def _on_delivery(self, delivery: Delivery) -> None:
        self.received.append(delivery.message)
        self.handle(delivery.message)

    # -- the loop is the worker's ------------------------------------------------------------
    def poll_once(self) -> int:
        """One turn of the consumer loop (see :meth:`ConsumerWorker.poll_once`): poll a batch,
        apply each event, acknowledge each; returns how many were handled. A
        :class:`~eda_lab.faults.Crash` at ``consumer.before_commit`` propagates; the worker
        rejoins at its restart, and the group delivers again what was not committed."""
        return self.worker.poll_once()

    def start(self):
        """Run the worker on the broker's clock."""
        return self.worker.start()

    def crash(self) -> None:
        """Die without acknowledging; the worker restarts after ``restart_after_ms``."""
        self.worker.crash()

    @property
    def online(self) -> bool:
        return self.worker.online

    @property
    def crashes(self) -> int:
        return self.worker.crashes

    def effects(self) -> list[dict]:
        """Every applied effect, in the order applied."""
        return list(self.db[EFFECTS_TABLE].rows_where(order_by="n"))

    def lag(self) -> int:
        return self.broker.lag(self.group)

    def __repr__(self) -> str:
        return (f"OrderConsumer({self.name!r}, inbox={self.inbox is not None}, "
                f"received={len(self.received)}, effects={self.db[EFFECTS_TABLE].count})")
