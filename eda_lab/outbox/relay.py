"""Relays: the processes that move outbox rows to the broker, after the fact, as often as it takes.

Both relays do the same three things in the same order, and both can die between any two:

1. **read** a batch of events that are not yet published, oldest first;
2. **publish** each one to the broker, keyed by its aggregate id (so one order's events land
   on one partition, in order);
3. **mark** the batch as done, in the service's database.

Their progress lives in the database, nowhere else that outlives them: what a relay holds in
memory dies with it, so a relay that crashed (or was killed with SIGKILL) simply starts again
from what the database says. The price of dying between 2 and 3 is a **duplicate**: the batch
is published again after the restart. Nothing is ever lost, because nothing is marked before it was published. That is why
the consumer needs an inbox (:mod:`eda_lab.inbox`).

* :class:`PollingRelay` asks the outbox table for ``published_at IS NULL`` rows and marks
  them by setting ``published_at`` (keeping them for a retention window) or deleting them.
* :class:`LogTailingRelay` follows the change log of committed inserts (the model of the
  WAL, see :func:`eda_lab.outbox.table.enable_change_log`) from an offset it stores in the same
  database, as Debezium stores its source offset (and, like Debezium, it holds the offset in
  memory while it runs, reading the stored one when it starts). It never queries the outbox
  table, and it
  does not wait for a timer: each commit reaches it ``stream_latency_ms`` later (the database
  streams its log, :func:`eda_lab.db.on_commit`), and it publishes what is waiting then.

Settings: ``batch_size`` (rows per read) and ``poll_interval_ms``: how often the polling relay
asks (one batch per interval is its capacity, unless ``read_on_full``: it reads again at once
while batches come back full, as production relays do), and how often the log-tailing relay
looks anyway, in case a commit it was not told of (another process's) is waiting. ``topic`` is one
topic, or a function of the row's ``aggregatetype`` that names the topic (Debezium's outbox
router sends ``order`` events to ``outbox.event.order``), for an outbox of several kinds.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils

from .. import _validate as check
from ..broker import Broker, BrokerUnavailable, shared_with
from ..clock import Clock
from ..db import on_commit, transaction
from ..faults import Crash, FaultPlan, crash_point
from ..trace import Trace
from .table import (
    MESSAGE_COLUMNS,
    OFFSETS_TABLE,
    OUTBOX_TABLE,
    create_offsets,
    create_outbox,
    enable_change_log,
    log_table,
    row_to_message,
)

AFTER_READ = crash_point(
    "relay.after_read",
    "the relay read a batch and died before publishing it: the next relay reads it again")
AFTER_PUBLISH = crash_point(
    "relay.after_publish",
    "the relay published an event and died before marking it: it is published again (a duplicate)")
AFTER_MARK = crash_point(
    "relay.after_mark",
    "the relay marked its batch as published and died: nothing lost, nothing repeated")

CLEANUPS = ("delete", "retain")
POLL_INTERVAL_MS = 500.0   # default time between two polls
BATCH_SIZE = 100           # default rows per poll
RETENTION_MS = 60_000.0    # default time a published row is kept with cleanup="retain"
MAX_BATCH_SIZE = 10_000
STREAM_LATENCY_MS = 5.0    # from a commit to the log-tailing relay reading it


class Relay:
    """What both relays share: settings, the read-publish-mark loop, crash handling, scheduling.

    ``broker`` is anything with ``publish(topic, message)`` (a :class:`~eda_lab.broker.Broker`,
    or in the multi-process test a file-backed log). ``clock``, ``trace`` and ``faults``
    default to the broker's.
    """

    kind = "relay"

    def __init__(self, db: sqlite_utils.Database, broker: Broker, *,
                 topic: str | Callable[[str], str] = "orders",
                 table: str = OUTBOX_TABLE, batch_size: int = BATCH_SIZE,
                 poll_interval_ms: float = POLL_INTERVAL_MS, cleanup: str = "retain",
                 retention_ms: float = RETENTION_MS, clock: Clock | None = None,
                 trace: Trace | None = None, faults: FaultPlan | None = None,
                 name: str = "relay", restart_after_ms: float = 1_000.0,
                 read_on_full: bool = False):
        if not isinstance(db, sqlite_utils.Database):
            raise TypeError(f"db must be a sqlite_utils.Database (eda_lab.open_db), got "
                            f"{type(db).__name__}")
        if not callable(getattr(broker, "publish", None)):
            raise TypeError(f"broker must have a publish(topic, message) method, got {broker!r}")
        if not callable(topic):
            check.name("topic", topic)
        check.count("batch_size", batch_size, maximum=MAX_BATCH_SIZE)
        check.ms("poll_interval_ms", poll_interval_ms)
        check.ms("retention_ms", retention_ms, positive=False)
        check.ms("restart_after_ms", restart_after_ms, positive=False)
        check.one_of("cleanup", cleanup, CLEANUPS)
        check.name("name", name)
        self.read_on_full = check.flag("read_on_full", read_on_full)
        self.db = db
        self.broker = broker
        self.route = topic if callable(topic) else (lambda _aggregatetype: topic)
        self.topic = "(by aggregate type)" if callable(topic) else topic
        self.table = check.identifier("table", table)
        self.batch_size = batch_size
        self.poll_interval_ms = float(poll_interval_ms)
        self.cleanup = cleanup
        self.retention_ms = float(retention_ms)
        self.clock, self.trace, self.faults = shared_with(broker, clock, trace, faults)
        self.name = name
        self.restart_after_ms = float(restart_after_ms)
        self.polls = 0
        self.published = 0
        self.crashes = 0
        self.down_ms = 0.0      # how long it has been down, in all (what its crashes cost)
        self.down_until = -1.0
        self.process = None
        self._unread = False    # rows may be waiting: a commit since the last read, or more
        self._polling = False   # inside poll_once (its own mark is no news)
        on_commit(db, self._committed)
        self._next_cleanup = 0.0
        create_outbox(db, table)

    # -- one poll: plain, synchronous, resumable ---------------------------------------------
    def poll_once(self) -> int:
        """Read one batch, publish it in order, mark what was published. Returns the count.

        A :class:`~eda_lab.faults.Crash` at a crash point propagates (the process died); what
        was marked stays marked, what was not will be read again. When the broker refuses a
        publish, the rest of the batch waits for the next poll (skipping ahead would break the
        order per aggregate).
        """
        self.polls += 1
        self._polling = True
        try:
            published, read = self._poll()
        finally:
            self._polling = False
        # more may be waiting after a full batch, and the refused rest of one is still there
        self._unread = read >= self.batch_size or published < read
        return published

    def _poll(self) -> tuple[int, int]:
        faults, trace, now = self.faults, self.trace, self.clock.now
        if self.cleanup == "retain" and now >= self._next_cleanup:
            self.purge(now)
        batch = self._read()
        if not batch:
            return 0, 0
        if trace.enabled:
            trace.add(now, "read", self.name, self.topic,
                      detail=f"{len(batch)} row(s) from {self._source()}")
        faults.check(AFTER_READ, trace=trace, now=now, actor=self.name)
        done = []
        try:
            for row in batch:
                message = row_to_message(row[1:])
                self.broker.publish(self.route(message.headers["aggregatetype"]), message)
                done.append(row[0])
                faults.check(AFTER_PUBLISH, trace=trace, now=now, actor=self.name)
        except BrokerUnavailable:
            pass  # the broker traced the refusal; the rest waits for the next poll
        if done:
            self._mark(done, now)
            self.published += len(done)
            if trace.enabled:
                trace.add(now, "mark", self.name, self.topic,
                          detail=f"{len(done)} published; {self._mark_detail(done)}")
            faults.check(AFTER_MARK, trace=trace, now=now, actor=self.name)
        return len(done), len(batch)

    def drain(self, max_polls: int = 10_000) -> int:
        """Poll until nothing is left (or the broker refuses everything); returns the count."""
        total = 0
        for _ in range(max_polls):
            n = self.poll_once()
            total += n
            if n == 0:
                break
        return total

    # -- scheduling on the simulated clock ---------------------------------------------------
    def start(self, until_ms: float | None = None):
        """Run ``poll_once`` every ``poll_interval_ms`` on the clock; after a crash the relay is
        down for ``restart_after_ms`` and then starts again from what the database says."""
        if self.process is None:
            self.process = self.clock.process(self._run(until_ms))
        return self.process

    def _run(self, until_ms: float | None):
        clock = self.clock
        while until_ms is None or clock.now <= until_ms:
            if clock.now < self.down_until:  # crashed: back when the supervisor restarts it
                yield clock.timeout(self.down_until - clock.now)
                continue
            try:
                published = self.poll_once()
            except Crash:
                self.crash()
                if not self.restart_after_ms:  # restarted at once: not in the same instant
                    yield clock.timeout(self.poll_interval_ms)
                continue
            yield self._next_read(published)

    def _next_read(self, published: int):
        """The clock event to wait for before reading again: the next poll (one batch per
        interval is a polling relay's capacity), or at once after a full batch with
        ``read_on_full`` (as production relays do: more is waiting)."""
        if self.read_on_full and published >= self.batch_size:
            return self.clock.timeout(0)
        return self.clock.timeout(self.poll_interval_ms)

    def crash(self, restart_after_ms: float | None = None) -> None:
        """The relay process died: it is down for ``restart_after_ms`` (default: the relay's
        setting; 0: a supervisor restarts it at once), then resumes from the database."""
        delay = self.restart_after_ms if restart_after_ms is None else restart_after_ms
        self.crashes += 1
        self.down_ms += delay
        self.down_until = self.clock.now + delay
        if self.trace.enabled:
            self.trace.add(self.clock.now, "down", self.name,
                           detail=f"relay down until t={self.down_until:g} ms, then restarts"
                           if delay else "relay restarted at once; resumes from the database")

    @property
    def up(self) -> bool:
        return self.clock.now >= self.down_until

    def _committed(self) -> None:
        if not self._polling:
            self._unread = True

    @property
    def busy(self) -> bool:
        """True while it has work it knows of: rows committed since its last read (or left by
        it), or it is down (and will be back to read)."""
        return self._unread or not self.up

    # -- what each relay reads and marks -----------------------------------------------------
    def _read(self) -> list[tuple]:
        raise NotImplementedError

    def _mark(self, done: list[int], now: float) -> None:
        raise NotImplementedError

    def purge(self, now: float | None = None) -> int:
        """Delete what was published longer than ``retention_ms`` ago (nothing, here)."""
        self._next_cleanup = (self.clock.now if now is None else now) + self.retention_ms / 10
        return 0

    def _source(self) -> str:
        return self.table

    def _mark_detail(self, done: list[int]) -> str:
        return ""

    def backlog(self) -> int:
        """How many events are committed to the outbox and not yet published by this relay."""
        raise NotImplementedError

    def unpublished(self) -> set[tuple[str, int]]:
        """The events committed and not yet published, as (aggregate id, version) pairs:
        what is still on its way, for the consistency checker."""
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "up" if self.up else "down"
        return (f"{type(self).__name__}({self.name!r}, {state}, published={self.published}, "
                f"backlog={self.backlog()}, crashes={self.crashes})")


# The log position every relay tailing a log has published: cleanup never goes past it.
_PUBLISHED_BY_ALL = f'(SELECT min(position) FROM "{OFFSETS_TABLE}")'


def _in_list(n: int) -> str:
    return ",".join("?" * n)


class PollingRelay(Relay):
    """Polls the outbox table for unpublished rows, publishes them, then marks them.

    ``cleanup="retain"`` sets ``published_at`` and deletes rows older than ``retention_ms``
    (a window to inspect or replay them); ``cleanup="delete"`` deletes published rows at once
    (the smallest table, and no history).
    """

    kind = "polling"

    def __init__(self, db: sqlite_utils.Database, broker: Broker, **settings):
        super().__init__(db, broker, **settings)
        table = self.table
        self._select = (f'SELECT seq, {MESSAGE_COLUMNS} FROM "{table}" WHERE published_at IS NULL '
                        "ORDER BY seq LIMIT ?")

    def _read(self) -> list[tuple]:
        return self.db.conn.execute(self._select, (self.batch_size,)).fetchall()

    def _mark(self, done: list[int], now: float) -> None:
        table = self.table
        with transaction(self.db) as conn:
            if self.cleanup == "delete":
                conn.execute(f'DELETE FROM "{table}" WHERE seq IN ({_in_list(len(done))})', done)
            else:
                conn.execute(f'UPDATE "{table}" SET published_at = ? '
                             f"WHERE seq IN ({_in_list(len(done))})", (now, *done))

    def purge(self, now: float | None = None) -> int:
        """Delete rows published more than ``retention_ms`` ago; returns how many.

        With ``cleanup="retain"`` a poll calls it every tenth of the retention window."""
        now = self.clock.now if now is None else now
        self._next_cleanup = now + self.retention_ms / 10
        with transaction(self.db) as conn:
            return conn.execute(f'DELETE FROM "{self.table}" WHERE published_at < ?',
                                (now - self.retention_ms,)).rowcount

    def _mark_detail(self, done: list[int]) -> str:
        verb = "deleted" if self.cleanup == "delete" else "set published_at on"
        return f"{verb} seq {done[0]}" + (f"..{done[-1]}" if len(done) > 1 else "")

    def backlog(self) -> int:
        return self.db.execute(
            f'SELECT count(*) FROM "{self.table}" WHERE published_at IS NULL').fetchone()[0]

    def unpublished(self) -> set[tuple[str, int]]:
        return set(self.db.execute(f'SELECT aggregateid, version FROM "{self.table}" '
                                   "WHERE published_at IS NULL").fetchall())


class LogTailingRelay(Relay):
    """Follows the change log of committed outbox inserts from its stored offset (CDC).

    The offset (the last log position published) lives in the ``relay_offsets`` table of the
    same database and is stored after publishing, so a crash in between publishes the batch
    again, like a Debezium connector restarting from its last committed source offset. While
    it runs, the relay also holds the offset it stored in memory (a read per poll saved); a
    crash forgets it, and the restarted relay reads the stored one.
    ``cleanup="delete"`` removes the outbox rows and log entries once published (Debezium's
    advice: the service may even delete outbox rows in the inserting transaction, the log
    keeps them); ``cleanup="retain"`` keeps both for ``retention_ms``. Several relays may
    tail one log (each with its own name and offset): cleanup removes only what every one of
    them has published.

    It streams: every commit on the database wakes it ``stream_latency_ms`` later, and it reads
    everything waiting from its offset (``stream_latency_ms=None``: it only polls, every
    ``poll_interval_ms``, like the polling relay). While streaming it also looks every
    ``poll_interval_ms``, for commits it was not told of (another process's); with
    ``poll_fallback=False`` only commits wake it (every writer of the database is in this
    process, as in a saga runner): an idle relay then sets no timer at all.
    """

    kind = "log-tailing"

    def __init__(self, db: sqlite_utils.Database, broker: Broker, *,
                 stream_latency_ms: float | None = STREAM_LATENCY_MS,
                 poll_fallback: bool = True, **settings):
        if stream_latency_ms is not None:
            check.ms("stream_latency_ms", stream_latency_ms, positive=False)
        self.poll_fallback = check.flag("poll_fallback", poll_fallback)
        super().__init__(db, broker, **settings)
        enable_change_log(db, self.table)
        create_offsets(db)
        self.log = log_table(self.table)
        self._select = (f'SELECT lsn, {MESSAGE_COLUMNS} FROM "{self.log}" WHERE lsn > ? '
                        "ORDER BY lsn LIMIT ?")
        with transaction(db) as conn:  # known to the others from the start: nothing unread goes
            conn.execute(f'INSERT OR IGNORE INTO "{OFFSETS_TABLE}" (relay, position) '
                         "VALUES (?, 0)", (self.name,))
        self.stream_latency_ms = stream_latency_ms
        self._offset: int | None = None   # the stored offset, as this process knows it
        self._woken = None        # the clock event a commit triggers (while waiting)
        self._wake_due = False    # a wake is scheduled already

    # -- streaming: the log reaches the relay a moment after each commit --------------------
    def _committed(self) -> None:
        super()._committed()
        if self._polling or self.process is None or self.stream_latency_ms is None:
            return
        if not self._wake_due:
            self._wake_due = True
            self.clock.call_later(self.stream_latency_ms, self._wake)

    def _wake(self) -> None:
        self._wake_due = False
        if self._woken is not None and not self._woken.triggered:
            self._woken.succeed()

    def _next_read(self, published: int):
        if self.stream_latency_ms is None:
            return super()._next_read(published)
        if published >= self.batch_size:  # a full batch: more is waiting, read on at once
            return self.clock.timeout(0)
        if self._unread:   # the broker refused part of the batch: try again after an interval
            return self.clock.timeout(self.poll_interval_ms)
        env = self.clock.env
        self._woken = env.event()
        if not self.poll_fallback:
            return self._woken
        return env.any_of([self._woken, self.clock.timeout(self.poll_interval_ms)])

    def _published_by_all(self) -> int:
        """The log position every relay tailing this log has published (cleanup stops there)."""
        return self.db.conn.execute(f"SELECT {_PUBLISHED_BY_ALL}").fetchone()[0]

    @property
    def offset(self) -> int:
        """The last change-log position this relay has published (0: none yet): the stored
        one, read once after each (re)start and then kept in step with each mark."""
        if self._offset is None:
            row = self.db.conn.execute(
                f'SELECT position FROM "{OFFSETS_TABLE}" WHERE relay = ?', (self.name,)).fetchone()
            self._offset = row[0] if row else 0
        return self._offset

    def crash(self, restart_after_ms: float | None = None) -> None:
        """The relay died: the offset it held in memory died with it (see :meth:`Relay.crash`)."""
        self._offset = None
        super().crash(restart_after_ms)

    def _read(self) -> list[tuple]:
        return self.db.conn.execute(self._select, (self.offset, self.batch_size)).fetchall()

    def _mark(self, done: list[int], now: float) -> None:
        last = done[-1]
        with transaction(self.db) as conn:
            conn.execute(f'INSERT INTO "{OFFSETS_TABLE}" (relay, position) VALUES (?, ?) '
                         "ON CONFLICT(relay) DO UPDATE SET position = excluded.position",
                         (self.name, last))
            if self.cleanup == "delete":  # what every relay of this log has published goes
                conn.execute(f'DELETE FROM "{self.table}" WHERE seq IN '
                             f'(SELECT seq FROM "{self.log}" WHERE lsn <= {_PUBLISHED_BY_ALL})')
                conn.execute(f'DELETE FROM "{self.log}" WHERE lsn <= {_PUBLISHED_BY_ALL}')
        self._offset = last   # stored: what this process knows now

    def purge(self, now: float | None = None) -> int:
        """Delete published log entries (and their outbox rows) older than ``retention_ms``."""
        now = self.clock.now if now is None else now
        self._next_cleanup = now + self.retention_ms / 10
        cutoff, upto = now - self.retention_ms, self._published_by_all()
        with transaction(self.db) as conn:
            conn.execute(f'DELETE FROM "{self.table}" WHERE created_at < ? AND seq IN '
                         f'(SELECT seq FROM "{self.log}" WHERE lsn <= ?)', (cutoff, upto))
            return conn.execute(f'DELETE FROM "{self.log}" WHERE lsn <= ? AND created_at < ?',
                                (upto, cutoff)).rowcount

    def _source(self) -> str:
        return f"{self.log} after position {self.offset}"

    def _mark_detail(self, done: list[int]) -> str:
        return f"offset stored: {done[-1]}"

    def backlog(self) -> int:
        return self.db.conn.execute(f'SELECT count(*) FROM "{self.log}" WHERE lsn > ?',
                                    (self.offset,)).fetchone()[0]

    def unpublished(self) -> set[tuple[str, int]]:
        return set(self.db.conn.execute(f'SELECT aggregateid, version FROM "{self.log}" '
                                        "WHERE lsn > ?", (self.offset,)).fetchall())


RELAYS = {"polling": PollingRelay, "log-tailing": LogTailingRelay}


def make_relay(kind: str, db: sqlite_utils.Database, broker: Broker, **settings) -> Relay:
    """A relay by name: ``"polling"`` or ``"log-tailing"``."""
    if kind not in RELAYS:
        raise ValueError(f"relay kind must be one of {tuple(RELAYS)}, got {kind!r}")
    return RELAYS[kind](db, broker, **settings)
