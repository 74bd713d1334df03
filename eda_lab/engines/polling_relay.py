"""Polling relays on PostgreSQL: the same read-publish-mark loop as :mod:`eda_lab.outbox.relay`.

:class:`PgPollingRelay` asks for ``published_at IS NULL`` rows in ``seq`` order (through the
partial index ``outbox_unpublished``), publishes them, waits for the broker's acks, then sets
``published_at``. Dying between the ack and the mark publishes the batch again (a duplicate);
nothing is marked before it was acknowledged, so nothing is lost. It is the comparison for the
CDC relay: it costs a query per poll and a write per batch, and its lag is about half a poll
interval.

:class:`IdCursorRelay` remembers "the highest ``seq`` I published" and asks for ``seq > that``.
It is the relay that has the **polling gap**: a ``seq`` is taken at INSERT, a row becomes
visible at COMMIT, so a row whose transaction commits after a higher one was already read is
skipped for good (:mod:`.polling_gap` shows it happen).

Crash points: ``pg_poller.after_read``, ``pg_poller.after_publish``, ``pg_poller.after_mark``.
"""

from __future__ import annotations

import threading
import time

from .. import _validate as check
from ..faults import Crash, FaultPlan, crash_point
from .brokers import BrokerClient, outbox_record
from .errors import BrokerDown
from .pg_outbox import MAX_BATCH_SIZE, OUTBOX_TABLE, install_outbox, now_ms
from .postgres import connect

AFTER_READ = crash_point(
    "pg_poller.after_read",
    "the polling relay read a batch and died before publishing: the next poll reads it again")
AFTER_PUBLISH = crash_point(
    "pg_poller.after_publish",
    "the broker acknowledged the batch and the polling relay died before marking it: "
    "it is published again (duplicates)")
AFTER_MARK = crash_point(
    "pg_poller.after_mark",
    "the polling relay marked its batch and died: nothing lost, nothing repeated")

POLL_INTERVAL_S = 0.05
BATCH_SIZE = 500
_SELECT = ("SELECT seq, id, aggregatetype, aggregateid, type, payload::text, version, "
           f"created_at FROM {OUTBOX_TABLE} ")


class PgPollingRelay:
    """Polls the outbox for unpublished rows, publishes them, marks them ``published_at``."""

    kind = "polling"

    def __init__(self, dsn: str, broker: BrokerClient, *, topic: str = "orders",
                 batch_size: int = BATCH_SIZE, faults: FaultPlan | None = None,
                 name: str = "polling-relay"):
        if not callable(getattr(broker, "publish_batch", None)):
            raise TypeError(f"broker must be a KafkaBroker or a RedisStreamsBroker (anything "
                            f"with publish_batch), got {broker!r}")
        check.name("topic", topic)
        check.count("batch_size", batch_size, maximum=MAX_BATCH_SIZE)
        check.name("name", name)
        install_outbox(dsn)
        self.dsn = dsn
        self.broker = broker
        self.topic = topic
        self.batch_size = batch_size
        self.faults = faults if faults is not None else FaultPlan()
        self.name = name
        self.published = 0
        self.polls = 0
        self.lags_ms: list[float] = []
        self.last_batch: list[str] = []      # aggregate ids of the last published batch
        self.conn = connect(dsn)
        self._setup()

    def _setup(self) -> None:
        pass

    def _read(self, cur) -> list[tuple]:
        cur.execute(_SELECT + "WHERE published_at IS NULL ORDER BY seq LIMIT %s",
                    (self.batch_size,))
        return cur.fetchall()

    def _mark(self, cur, batch: list[tuple], now: float) -> None:
        cur.execute(f"UPDATE {OUTBOX_TABLE} SET published_at = %s WHERE seq = ANY(%s)",
                    (now, [row[0] for row in batch]))

    def poll_once(self) -> int:
        """One read-publish-mark round; returns how many events were published.

        :class:`~.errors.BrokerDown` propagates with nothing marked: the next poll reads and
        publishes the same rows again."""
        self.polls += 1
        try:
            with self.conn, self.conn.cursor() as cur:
                batch = self._read(cur)
            if not batch:
                return 0
            self.faults.check(AFTER_READ, actor=self.name)
            self.broker.publish_batch([outbox_record(self.topic, *row[1:]) for row in batch])
            acked = now_ms()
            self.lags_ms.extend(acked - row[7] for row in batch)
            self.faults.check(AFTER_PUBLISH, actor=self.name)
            with self.conn, self.conn.cursor() as cur:
                self._mark(cur, batch, acked)
            self.published += len(batch)
            self.last_batch = [row[3] for row in batch]
            self.faults.check(AFTER_MARK, actor=self.name)
            return len(batch)
        except Crash:
            self.close()
            raise

    def run(self, stop: threading.Event, *, poll_interval_s: float = POLL_INTERVAL_S,
            retry_s: float = 0.2) -> None:
        """Poll every ``poll_interval_s`` until ``stop`` is set (at once again while a poll
        fills whole batches: there is a backlog)."""
        check.number("poll_interval_s", poll_interval_s, above=0, unit="seconds")
        check.number("retry_s", retry_s, above=0, unit="seconds")
        while not stop.is_set():
            try:
                if self.poll_once() < self.batch_size:
                    stop.wait(poll_interval_s)
            except BrokerDown:
                time.sleep(retry_s)

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, published={self.published})"


class IdCursorRelay(PgPollingRelay):
    """The relay with the polling gap: ``WHERE seq > highest seq published``.

    The cursor lives in ``relay_offsets`` (so it survives a restart) and moves after the
    broker's ack. Its one flaw is the assumption that rows become visible in ``seq`` order.
    """

    kind = "id-cursor"

    def _setup(self) -> None:
        with self.conn, self.conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS relay_offsets "
                        "(relay text PRIMARY KEY, position bigint NOT NULL)")

    @property
    def cursor(self) -> int:
        with self.conn, self.conn.cursor() as cur:
            cur.execute("SELECT position FROM relay_offsets WHERE relay = %s", (self.name,))
            row = cur.fetchone()
        return row[0] if row else 0

    def _read(self, cur) -> list[tuple]:
        cur.execute("SELECT coalesce((SELECT position FROM relay_offsets WHERE relay = %s), 0)",
                    (self.name,))
        cur.execute(_SELECT + "WHERE seq > %s ORDER BY seq LIMIT %s",
                    (cur.fetchone()[0], self.batch_size))
        return cur.fetchall()

    def _mark(self, cur, batch: list[tuple], now: float) -> None:
        cur.execute("INSERT INTO relay_offsets (relay, position) VALUES (%s, %s) "
                    "ON CONFLICT (relay) DO UPDATE SET position = excluded.position",
                    (self.name, max(row[0] for row in batch)))
