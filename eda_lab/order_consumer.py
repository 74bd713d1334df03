"""A downstream service that acts on order events, with or without an inbox.

It stands for shipping (or billing, or analytics): every ``OrderPlaced`` it applies becomes one
row of its ``effects`` table, in its own database. Deliveries are at least once, so the same
event can arrive twice (a relay that died before marking, a consumer that died before
acknowledging). With ``inbox=True`` the message id is claimed in the same local transaction
as the effect (:class:`~eda_lab.inbox.Inbox`) and a redelivery changes nothing; with
``inbox=False`` every delivery is applied, and a duplicate becomes a second shipment.

``poll_once()`` is the whole consumer loop, one batch: poll, apply, acknowledge (commit the
offset). The crash point ``consumer.before_commit`` sits between apply and acknowledge.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from .broker import Broker, BrokerError, BrokerUnavailable
from .consumer import BEFORE_COMMIT
from .db import open_db, transaction
from .faults import Crash
from .inbox import Inbox
from .messages import Message

EFFECTS_TABLE = "effects"


class OrderConsumer:
    """Consumer group ``group`` on ``topic``, applying each event to its own database."""

    def __init__(self, broker: Broker, db: sqlite_utils.Database | str | Path | None = None, *,
                 group: str = "shipping", topic: str = "orders", inbox: bool = True,
                 max_batch: int = 100, poll_interval_ms: float = 100.0, name: str | None = None):
        if not isinstance(broker, Broker):
            raise TypeError(f"broker must be an eda_lab Broker, got {type(broker).__name__}")
        if not isinstance(inbox, bool):
            raise TypeError(f"inbox must be True or False, got {inbox!r}")
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
            raise ValueError(f"max_batch must be an integer >= 1, got {max_batch!r}")
        if not isinstance(poll_interval_ms, (int, float)) or poll_interval_ms <= 0:
            raise ValueError(f"poll_interval_ms must be a number > 0, got {poll_interval_ms!r}")
        self.broker = broker
        self.db = db if isinstance(db, sqlite_utils.Database) else open_db(db)
        self.group = group
        self.topic = topic
        self.name = name or group
        self.max_batch = max_batch
        self.poll_interval_ms = float(poll_interval_ms)
        self.inbox = Inbox(self.db, self.name) if inbox else None
        if not self.db[EFFECTS_TABLE].exists():
            self.db[EFFECTS_TABLE].create(
                {"n": int, "message_id": str, "order_id": str, "type": str, "version": int,
                 "applied_at": float}, pk="n")
        self._insert = (f"INSERT INTO {EFFECTS_TABLE} (message_id, order_id, type, version, "
                        "applied_at) VALUES (?, ?, ?, ?, ?)")
        self.received: list[Message] = []   # every delivery, redeliveries included, in order
        self.crashes = 0
        self.process = None
        broker.subscribe(group, topic)
        self.consumer = broker.consumer(group, name=self.name)

    @property
    def online(self) -> bool:
        return self.consumer is not None

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

    def poll_once(self) -> int:
        """Poll a batch, apply each event, acknowledge each; returns how many were handled.

        A :class:`~eda_lab.faults.Crash` at ``consumer.before_commit`` leaves the group without
        committing and propagates; the next ``poll_once`` rejoins (a restart), and the group
        delivers again everything after the last committed offset.
        """
        if self.consumer is None:
            self.consumer = self.broker.consumer(self.group, name=self.name)
        consumer = self.consumer
        faults, trace, clock = self.broker.faults, self.broker.trace, self.broker.clock
        check_crash = faults.plans(BEFORE_COMMIT)
        handled = 0
        for delivery in consumer.poll(self.max_batch):
            self.received.append(delivery.message)
            self.handle(delivery.message)
            handled += 1
            try:
                if check_crash:
                    faults.check(BEFORE_COMMIT, trace=trace, now=clock.now, actor=self.name)
                consumer.commit(delivery)
            except Crash:
                self.crash()
                raise
            except BrokerUnavailable:
                break  # not acknowledged: delivered again after the next restart or rebalance
            except BrokerError:
                break
        return handled

    def crash(self) -> None:
        """Die without acknowledging; the next poll restarts the consumer."""
        if self.consumer is not None:
            self.consumer.crash()
            self.consumer = None
            self.crashes += 1

    def start(self, until_ms: float | None = None):
        """Poll every ``poll_interval_ms`` on the broker's clock (crashes restart at once)."""
        if self.process is None:
            self.process = self.broker.clock.process(self._run(until_ms))
        return self.process

    def _run(self, until_ms: float | None):
        clock = self.broker.clock
        while until_ms is None or clock.now <= until_ms:
            try:
                self.poll_once()
            except Crash:
                pass
            yield clock.timeout(self.poll_interval_ms)

    def effects(self) -> list[dict]:
        """Every applied effect, in the order applied."""
        return list(self.db[EFFECTS_TABLE].rows_where(order_by="n"))

    def lag(self) -> int:
        return self.broker.lag(self.group)

    def __repr__(self) -> str:
        return (f"OrderConsumer({self.name!r}, inbox={self.inbox is not None}, "
                f"received={len(self.received)}, effects={self.db[EFFECTS_TABLE].count})")
