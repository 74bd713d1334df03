"""The CDC relay: it streams committed outbox inserts from a logical replication slot.

This is what Debezium's PostgreSQL connector does for the outbox: a **replication slot** is a
cursor into the WAL that the server keeps for one reader. The relay connects with psycopg2's
``LogicalReplicationConnection`` (psycopg 3 has no replication API), asks for the slot's
changes through the ``pgoutput`` plugin and the outbox **publication**, and publishes each
inserted row keyed by its aggregate id.

**At least once, and why.** The slot remembers the position its reader *confirmed*
(``confirmed_flush_lsn``); after a restart it sends everything after it again. The relay
confirms a transaction's end LSN only after the broker acknowledged every event of it:

* die after the broker's ack and before the confirmation, and the next relay publishes
  those events again: a **duplicate**, which the consumer's inbox drops;
* confirm *before* the ack instead, and a death in between loses the events for good: the
  slot will not send them again and nothing else remembers them.

A duplicate is repairable, a loss is not, so the confirmation comes last. psycopg2 would send
it on its own only every ``status_interval`` (10 s); the relay calls
``send_feedback(flush_lsn=..., force=True)`` right after each acknowledged batch, otherwise a
crash would republish up to 10 s of events. Even so, a confirmation is a message on its way:
a relay that dies while the server is busy streaming to it resets the connection, the server
drops what it had not read yet, and the last confirmed batch comes again. At least once means
exactly that: the inbox downstream is not optional.

**The slot holds WAL.** While the relay is down, the server keeps every WAL segment from the
slot's ``restart_lsn`` on, so a relay that never comes back fills the disk:
:func:`~.slots.slot_status` shows the retained bytes; :func:`~.slots.drop_slot` frees them, and the events in
them are then never published by this slot.

Crash points (for a :class:`~eda_lab.faults.FaultPlan`): ``pg_relay.after_read``,
``pg_relay.after_publish``, ``pg_relay.after_confirm``. A fired one closes the replication
connection, as a dead process's would be, and raises :class:`~eda_lab.faults.Crash`.
"""

from __future__ import annotations

import select
import threading
import time

import psycopg2
import psycopg2.errors
import psycopg2.extras

from .. import _validate as check
from ..faults import Crash, FaultPlan, crash_point
from .brokers import BrokerClient, outbox_record
from .errors import BrokerDown, SlotInUse
from .pg_outbox import MAX_BATCH_SIZE, OUTBOX_TABLE, PUBLICATION, now_ms
from .pgoutput import Commit, Insert, PgOutputDecoder, lsn_text
from .postgres import check_identifier, connect
from .slots import SLOT, ensure_slot

AFTER_READ = crash_point(
    "pg_relay.after_read",
    "the CDC relay read committed events from the slot and died before publishing them: "
    "the slot sends them again")
AFTER_PUBLISH = crash_point(
    "pg_relay.after_publish",
    "the broker acknowledged the batch and the CDC relay died before confirming the slot "
    "position: the next relay publishes it again (duplicates)")
AFTER_CONFIRM = crash_point(
    "pg_relay.after_confirm",
    "the CDC relay confirmed the slot position and died: nothing lost; repeated only if the "
    "confirmation was still unread by the server when the connection died")

BATCH_SIZE = 500
LINGER_S = 0.002   # how long a batch waits, after its first event, for more of a burst


# --- the relay ----------------------------------------------------------------------------

class CdcRelay:
    """Reads committed outbox inserts from ``slot``, publishes them, then confirms the slot.

    ``poll_once()`` is one read-publish-confirm round and returns how many events it
    published; ``run()`` repeats it until stopped. ``slot_wait_s`` is how long to wait for a
    slot still held by a reader that just died (the server notices within moments); a slot
    held longer is :class:`SlotInUse`: one slot has one reader. ``linger_s`` is how long a
    batch that is not full yet waits, once the stream paused, for more (default
    ``LINGER_S``: a burst, not a pause; longer gives fuller batches and later publishes).
    """

    def __init__(self, dsn: str, broker: BrokerClient, *, topic: str = "orders",
                 slot: str = SLOT, publication: str = PUBLICATION,
                 batch_size: int = BATCH_SIZE, faults: FaultPlan | None = None,
                 name: str = "cdc-relay", slot_wait_s: float = 0.0,
                 linger_s: float = LINGER_S):
        if not callable(getattr(broker, "publish_batch", None)):
            raise TypeError(f"broker must be a KafkaBroker or a RedisStreamsBroker (anything "
                            f"with publish_batch), got {broker!r}")
        check.name("topic", topic)
        check.count("batch_size", batch_size, maximum=MAX_BATCH_SIZE)
        check.name("name", name)
        check.number("slot_wait_s", slot_wait_s, minimum=0, unit="seconds")
        check.number("linger_s", linger_s, minimum=0, unit="seconds")
        check_identifier(slot, "slot")
        check_identifier(publication, "publication")
        self.dsn = dsn
        self.broker = broker
        self.topic = topic
        self.slot = slot
        self.publication = publication
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.faults = faults if faults is not None else FaultPlan()
        self.name = name
        self.published = 0
        self.confirmed_lsn: int | None = None
        self.lags_ms: list[float] = []       # broker ack time - created_at, per event
        self.last_batch: list[str] = []      # aggregate ids of the last published batch
        self._decoder = PgOutputDecoder()
        self._txn: list = []                 # inserts of the transaction being read
        self._ready: list = []               # read, committed, not yet acknowledged
        self._ready_lsn: int | None = None   # end LSN of the last transaction in _ready
        ensure_slot(dsn, slot)
        self._conn = connect(dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
        self._cur = self._conn.cursor()
        self._start(slot_wait_s)

    def _start(self, wait_s: float) -> None:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._cur.start_replication(
                    slot_name=self.slot, decode=False,
                    options={"proto_version": "1", "publication_names": self.publication})
                return
            except psycopg2.errors.ObjectInUse as error:
                if time.monotonic() >= deadline:
                    self._conn.close()
                    raise SlotInUse(
                        f"slot={self.slot!r} is already streaming to another relay "
                        f"({str(error).strip()}); one slot has one reader: stop the other "
                        f"relay first, or pass another slot=... (a new slot starts from now)"
                    ) from None
                time.sleep(0.05)

    # -- one round: read, publish, confirm --------------------------------------------------
    def poll_once(self, timeout_s: float = 0.1) -> int:
        """Read up to ``batch_size`` committed events (waiting at most ``timeout_s`` for the
        first), publish them, confirm the slot position; returns how many were published.

        :class:`~.errors.BrokerDown` propagates and keeps the batch: the next call publishes
        it again before reading more (nothing was confirmed, nothing is skipped).
        """
        try:
            if not self._ready:
                self._read(timeout_s)
            if not self._ready:
                return 0
            self.faults.check(AFTER_READ, actor=self.name)
            batch = self._ready
            acks = self.broker.publish_batch(
                [outbox_record(self.topic, row["id"], row["aggregatetype"], row["aggregateid"],
                               row["type"], row["payload"], int(row["version"]),
                               float(row["created_at"])) for row in batch])
            acked_at = now_ms()
            self.lags_ms.extend(acked_at - float(row["created_at"]) for row in batch)
            self.faults.check(AFTER_PUBLISH, actor=self.name)
            self._cur.send_feedback(flush_lsn=self._ready_lsn, force=True)
            self.confirmed_lsn = self._ready_lsn
            self.published += len(acks)
            self.last_batch = [row["aggregateid"] for row in batch]
            self._ready = []
            self.faults.check(AFTER_CONFIRM, actor=self.name)
            return len(acks)
        except Crash:
            self.close()         # a dead process's connection closes; the slot is free again
            raise

    def _read(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        linger_until = None   # a batch waits at most linger_s after the stream paused
        cur = self._cur
        while len(self._ready) < self.batch_size:
            message = cur.read_message()
            if message is None:
                if self._ready:
                    if linger_until is None:
                        linger_until = time.monotonic() + self.linger_s
                    left = linger_until - time.monotonic()
                    if left <= 0 or not select.select([self._conn], [], [], left)[0]:
                        return
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                select.select([self._conn], [], [], left)
                continue
            item = self._decoder.decode(message.payload)
            if isinstance(item, Insert):
                if item.table.endswith(f".{OUTBOX_TABLE}"):
                    self._txn.append(item.row)
            elif isinstance(item, Commit):
                self._ready.extend(self._txn)
                self._txn = []
                self._ready_lsn = item.end_lsn

    def run(self, stop: threading.Event, *, idle_s: float = 0.05,
            retry_s: float = 0.2) -> None:
        """``poll_once`` until ``stop`` is set; a broker that is down is retried."""
        check.number("idle_s", idle_s, above=0, unit="seconds")
        check.number("retry_s", retry_s, above=0, unit="seconds")
        while not stop.is_set():
            try:
                self.poll_once(idle_s)
            except BrokerDown:
                time.sleep(retry_s)

    @property
    def confirmed(self) -> str | None:
        """The last confirmed position, as PostgreSQL prints LSNs."""
        return lsn_text(self.confirmed_lsn) if self.confirmed_lsn is not None else None

    def close(self) -> None:
        """Close the replication connection: the slot is free for the next relay, which
        starts after the last confirmed position."""
        if not self._conn.closed:
            self._conn.close()

    def __repr__(self) -> str:
        return (f"CdcRelay({self.name!r}, slot={self.slot!r}, published={self.published}, "
                f"confirmed={self.confirmed})")


