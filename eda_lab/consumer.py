"""A consumer that runs on its own schedule: poll, handle, commit, on the simulated clock.

This is the loop every Kafka or RabbitMQ consumer runs. What it adds to :class:`~eda_lab.
broker.Consumer`:

* **retries with backoff**: a handler that raises is called again after ``backoff_ms``,
  doubling each time, while the rest of the partition waits (order per key is kept);
* **dead letters**: after ``max_attempts`` the message is published to ``<topic>.DLT`` with the
  reason in its headers, committed, and the partition carries on. One poison message must not
  stop every order behind it;
* **offline and crashes**: ``go_offline()`` leaves the group cleanly; ``crash()`` dies without
  committing, so what was handled but not committed is delivered again (at least once).

The handler is plain code, ``handler(delivery)``; it knows nothing about time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from . import _validate as check
from .broker import Broker, BrokerError, BrokerUnavailable, Delivery
from .faults import Crash, crash_point

BEFORE_COMMIT = crash_point(
    "consumer.before_commit",
    "the consumer handled a message and crashed before committing its offset",
)

DEAD_LETTER_SUFFIX = ".DLT"

Handler = Callable[[Delivery], Any]


def dead_letter_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return topic + DEAD_LETTER_SUFFIX


class ConsumerWorker:
    """One consumer process of a group: ``poll_once()`` is the loop, the clock only runs it.

    ``processing_ms`` is how long the handler takes per message in simulated time, so a slow
    consumer builds a backlog; ``poll_interval_ms`` is how long it sleeps when there is nothing
    to do. ``commit_every`` > 1 commits in batches: faster, and more redelivery after a crash.
    A crashed worker rejoins its group ``restart_after_ms`` later (never, with None), as a
    supervisor would restart it. While an :class:`~eda_lab.faults.Outage` names the worker,
    it does not run at all. ``start=False`` leaves the scheduling to the caller (call
    :meth:`start`, or :meth:`poll_once` by hand). ``retry_on`` says which handler errors are
    the message's or a dependency's trouble, retried and dead-lettered; any other error is a
    bug and propagates. ``before_commit_point`` is the crash point between handling and
    committing (None where the handler marks that moment with crash points of its own).
    """

    def __init__(self, broker: Broker, group: str, topics: str | list[str], handler: Handler, *,
                 name: str | None = None, poll_interval_ms: float = 100.0, max_batch: int = 10,
                 processing_ms: float = 0.0, max_attempts: int = 3, backoff_ms: float = 100.0,
                 backoff_factor: float = 2.0, commit_every: int = 1,
                 restart_after_ms: float | None = None, online: bool = True,
                 start: bool = True,
                 retry_on: tuple[type[Exception], ...] = (Exception,),
                 before_commit_point: str | None = BEFORE_COMMIT):
        check.function("handler", handler, "handler(delivery)")
        check.ms("poll_interval_ms", poll_interval_ms)  # a worker that never sleeps lets no time pass
        check.ms("processing_ms", processing_ms, positive=False)
        check.ms("backoff_ms", backoff_ms, positive=False)
        for arg, value in (("max_batch", max_batch), ("max_attempts", max_attempts),
                           ("commit_every", commit_every)):
            check.count(arg, value)
        check.number("backoff_factor", backoff_factor, minimum=1)
        if restart_after_ms is not None:
            check.ms("restart_after_ms", restart_after_ms, positive=False)
        check.flag("online", online)
        check.flag("start", start)
        self.broker = broker
        self.clock = broker.clock
        self.group = group
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.handler = handler
        self.name = name or f"{group}-worker"
        self.poll_interval_ms = poll_interval_ms
        self.max_batch = max_batch
        self.processing_ms = processing_ms
        self.max_attempts = max_attempts
        self.backoff_ms = backoff_ms
        self.backoff_factor = backoff_factor
        self.commit_every = commit_every
        self.restart_after_ms = restart_after_ms
        self.retry_on = retry_on
        self.before_commit_point = before_commit_point
        self.handled = 0
        self.dead_letters: list[Delivery] = []
        self.crashes = 0
        self.consumer = None
        self.process = None
        self._fetched: deque[Delivery] = deque()  # polled, not yet finished with, in order
        self._attempt = 1              # the handler's attempt at the first fetched delivery
        self._dead_letter_reason = None  # set while its dead letter waits for the broker
        self._working = False          # processing_ms of the first fetched delivery has begun
        self._not_before = -1.0        # backing off or busy until then (simulated ms)
        self._uncommitted = 0
        self._restart_at: float | None = None
        self._progress = False         # the last turn finished something
        self._full = False             # the last poll filled a whole batch: more may wait
        broker.subscribe(group, self.topics)
        for topic in self.topics:
            broker.create_topic(dead_letter_topic(topic), broker.topic(topic).partition_count)
        if online:
            self.go_online()
        if start:
            self.start()

    # -- membership ---------------------------------------------------------------------------
    @property
    def online(self) -> bool:
        return self.consumer is not None and self.consumer.active

    def go_online(self) -> None:
        """Join the group (again); the partitions are shared out, and reading resumes."""
        self._restart_at = None
        if not self.online:
            self.consumer = self.broker.consumer(self.group, name=self.name)

    def go_offline(self) -> None:
        """Leave the group cleanly. Its backlog keeps growing until someone reads it."""
        self._restart_at = None
        if self.online:
            self.consumer.close()
        self._forget()

    def crash(self) -> None:
        """Die without committing; with ``restart_after_ms`` set, come back after that long."""
        if self.online:
            self.consumer.crash()
            self.crashes += 1
            if self.restart_after_ms is not None:
                self._restart_at = self.clock.now + self.restart_after_ms
        self._forget()

    def _forget(self) -> None:
        """What a process holds in memory dies with it: the fetched, unfinished deliveries."""
        self._fetched.clear()
        self._attempt, self._dead_letter_reason, self._working = 1, None, False
        self._not_before, self._uncommitted, self._progress = -1.0, 0, False

    @property
    def down(self) -> bool:
        """True while an outage covers this worker: it does not run at all."""
        return self.broker.faults.is_down(self.name, self.clock.now)

    @property
    def waiting(self) -> bool:
        """True while a fetched delivery waits for its next attempt (after a backoff)."""
        return bool(self._fetched) and self._not_before > self.clock.now

    # -- the loop, one turn: plain, synchronous ----------------------------------------------
    def poll_once(self) -> int:
        """One turn of the consumer loop; returns how many deliveries it finished.

        Poll a batch when nothing is left from the last one; then, for each delivery in
        order: run the handler (after ``processing_ms``, which ends this turn and resumes the
        next); on an exception, try again after a backoff (the rest of the batch waits: order
        per key), and after ``max_attempts`` publish it to ``<topic>.DLT`` and go on; commit.
        A :class:`~eda_lab.faults.Crash` (the handler's, or at ``consumer.before_commit``)
        leaves the group without committing and propagates, as the process died.
        """
        now = self.clock.now
        self._progress = False
        if self.consumer is None or not self.consumer.active:
            if self._restart_at is None or now < self._restart_at:
                return 0
            self.go_online()  # the supervisor restarted it
        down_until = self.broker.faults.down_until(self.name, now)
        if down_until is not None:
            self.broker.trace.add(now, "unavailable", self.name,
                                  detail=f"down until {down_until:g} ms: its messages wait in "
                                  "the broker")
            return 0
        if now < self._not_before:
            return 0  # backing off, or busy with the message it is processing
        if not self._fetched:
            self._fetched.extend(self.consumer.poll(self.max_batch))
            self._full = len(self._fetched) >= self.max_batch
        done = 0
        try:
            while self._fetched:
                delivery = self._fetched[0]
                if self.processing_ms and not self._working:
                    self._working = True
                    self._not_before = now + self.processing_ms
                    break
                self._working = False
                if not self._finish(delivery, now):
                    break  # to be tried again after a backoff
                self._fetched.popleft()
                done += 1
                if self.before_commit_point is not None:
                    self.broker.faults.check(self.before_commit_point, trace=self.broker.trace,
                                             now=now, actor=self.consumer.name)
                self._uncommitted += 1
                if self._uncommitted >= self.commit_every or not self._fetched:
                    self._uncommitted = 0
                    if not self._commit(delivery):
                        break
        except Crash:
            self.crash()
            raise
        self._progress = done > 0
        return done

    def _finish(self, delivery: Delivery, now: float) -> bool:
        """Handle ``delivery`` (or dead-letter it after its last attempt); False when it must
        be tried again later (``_not_before`` says when)."""
        if self._dead_letter_reason is None:
            try:
                self.handler(delivery)
                self.handled += 1
                self._attempt = 1
                return True
            except self.retry_on as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if self._attempt < self.max_attempts:
                wait = self.backoff_ms * self.backoff_factor ** (self._attempt - 1)
                message = delivery.message
                self.broker.trace.add(
                    now, "retry", self.consumer.name, delivery.topic, delivery.partition,
                    delivery.offset, message.key, message.id, message.type,
                    f"group={self.group} attempt={self._attempt} wait_ms={wait:g} {reason}")
                self._attempt += 1
                self._not_before = now + wait
                return False
            self._dead_letter_reason = reason
        if not self._dead_letter(delivery, self._dead_letter_reason, self._attempt, now):
            self._not_before = now + self.backoff_ms  # the broker refused: try again
            return False
        self._attempt, self._dead_letter_reason = 1, None
        return True

    def _dead_letter(self, delivery: Delivery, reason: str, attempts: int, now: float) -> bool:
        """Publish ``delivery`` to its dead-letter topic with the reason; False if refused."""
        message = delivery.message.with_headers(**{
            "dlt.reason": reason, "dlt.group": self.group, "dlt.topic": delivery.topic,
            "dlt.partition": str(delivery.partition), "dlt.offset": str(delivery.offset),
            "dlt.attempts": str(attempts),
        })
        try:
            self.broker.publish(dead_letter_topic(delivery.topic), message)
        except BrokerUnavailable:
            return False
        self.dead_letters.append(delivery)
        self.broker.trace.add(now, "dead_letter", self.consumer.name, delivery.topic,
                              delivery.partition, delivery.offset, message.key, message.id,
                              message.type, f"group={self.group} attempts={attempts} {reason}")
        return True

    def _commit(self, delivery: Delivery) -> bool:
        try:
            self.consumer.commit(delivery)
            return True
        except BrokerUnavailable:
            return True  # not stored; the next commit covers it (or it is redelivered)
        except BrokerError:
            # The partitions moved away in a rebalance: what was not committed goes to the
            # new owner, and this consumer reads on from its committed offsets.
            self.consumer.seek_to_committed()
            self._forget()
            return False

    # -- scheduling on the simulated clock -----------------------------------------------------
    def start(self):
        """Run :meth:`poll_once` on the clock, as often as :meth:`wait_ms` says."""
        if self.process is None:
            self.process = self.clock.process(self._run())
        return self.process

    def wait_ms(self) -> float:
        """How long to sleep before the next turn: until a backoff or a
        message's processing ends, an outage or a restart, none when more may be waiting, else
        ``poll_interval_ms``."""
        now = self.clock.now
        if self._not_before > now:
            return self._not_before - now
        down_until = self.broker.faults.down_until(self.name, now)
        if down_until is not None:
            return down_until - now
        if self._restart_at is not None and not self.online:
            return max(0.0, min(self.poll_interval_ms, self._restart_at - now))
        if self._fetched and not self.processing_ms:
            return 0.0
        # After a batch, poll again at once when more may be waiting: the batch was full, or
        # time passed while it was handled. Otherwise sleep, as a consumer with nothing to do.
        if self._progress and (self._full or self.processing_ms):
            return 0.0
        return self.poll_interval_ms

    def _run(self):
        while True:
            try:
                self.poll_once()
            except Crash:
                pass  # poll_once left the group; the restart comes with restart_after_ms
            yield self.clock.timeout(self.wait_ms())

    def __repr__(self) -> str:
        state = "online" if self.online else "offline"
        return f"ConsumerWorker({self.name!r}, group={self.group!r}, {state}, handled={self.handled})"
