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

from collections.abc import Callable
from typing import Any

from .broker import Broker, BrokerError, BrokerUnavailable, CommitFailed, Delivery
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
    """One consumer process of a group, scheduled on the broker's clock.

    ``processing_ms`` is how long the handler takes per message in simulated time, so a slow
    consumer builds a backlog; ``poll_interval_ms`` is how long it sleeps when there is nothing
    to do. ``commit_every`` > 1 commits in batches: faster, and more redelivery after a crash.
    """

    def __init__(self, broker: Broker, group: str, topics: str | list[str], handler: Handler, *,
                 name: str | None = None, poll_interval_ms: float = 100.0, max_batch: int = 10,
                 processing_ms: float = 0.0, max_attempts: int = 3, backoff_ms: float = 100.0,
                 backoff_factor: float = 2.0, commit_every: int = 1,
                 restart_after_ms: float | None = None, online: bool = True):
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        for arg, value, low in (("poll_interval_ms", poll_interval_ms, 0.0),
                                ("processing_ms", processing_ms, 0.0),
                                ("backoff_ms", backoff_ms, 0.0)):
            if value < low:
                raise ValueError(f"{arg} must be >= {low:g}, got {value}")
        if poll_interval_ms == 0:
            raise ValueError("poll_interval_ms must be > 0 (a worker that never sleeps never lets time pass)")
        for arg, value in (("max_batch", max_batch), ("max_attempts", max_attempts),
                           ("commit_every", commit_every)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{arg} must be an integer >= 1, got {value!r}")
        if backoff_factor < 1:
            raise ValueError(f"backoff_factor must be >= 1, got {backoff_factor}")
        self.broker = broker
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
        self.handled = 0
        self.dead_letters: list[Delivery] = []
        self.crashes = 0
        self.consumer = None
        broker.subscribe(group, self.topics)
        for topic in self.topics:
            broker.create_topic(dead_letter_topic(topic), broker.topic(topic).partition_count)
        if online:
            self.go_online()
        self.process = broker.clock.process(self._run())

    @property
    def online(self) -> bool:
        return self.consumer is not None and self.consumer.active

    def go_online(self) -> None:
        """Join the group (again); the partitions are shared out, and reading resumes."""
        if not self.online:
            self.consumer = self.broker.consumer(self.group, name=self.name)

    def go_offline(self) -> None:
        """Leave the group cleanly. Its backlog keeps growing until someone reads it."""
        if self.online:
            self.consumer.close()

    def crash(self) -> None:
        """Die without committing; with ``restart_after_ms`` set, come back after that long."""
        if self.online:
            self.consumer.crash()
            self.crashes += 1
            if self.restart_after_ms is not None:
                self.broker.clock.call_at(self.broker.clock.now + self.restart_after_ms,
                                          self.go_online)

    def _run(self):
        clock = self.broker.clock
        while True:
            consumer = self.consumer
            if consumer is None or not consumer.active:
                yield clock.timeout(self.poll_interval_ms)
                continue
            deliveries = consumer.poll(self.max_batch)
            if not deliveries:
                yield clock.timeout(self.poll_interval_ms)
                continue
            uncommitted = 0
            for delivery in deliveries:
                if self.processing_ms:
                    yield clock.timeout(self.processing_ms)
                if self.consumer is not consumer or not consumer.active:
                    break  # went offline or crashed mid-batch: the rest is redelivered
                try:
                    ok = yield from self._handle(consumer, delivery)
                    if not ok:
                        break
                    self.broker.faults.check(BEFORE_COMMIT, trace=self.broker.trace,
                                             now=clock.now, actor=consumer.name)
                except Crash:
                    self.crash()
                    break
                uncommitted += 1
                if uncommitted >= self.commit_every or delivery is deliveries[-1]:
                    if not self._commit(consumer, delivery):
                        break
                    uncommitted = 0

    def _handle(self, consumer, delivery: Delivery):
        """Run the handler with retries and backoff; dead-letter after the last attempt.

        Returns True when the delivery is done with (handled or dead-lettered), False when the
        worker lost its partitions meanwhile (the delivery will come again).
        """
        clock = self.broker.clock
        trace = self.broker.trace
        message = delivery.message
        attempt = 1
        while True:
            try:
                self.handler(delivery)
                self.handled += 1
                return True
            except Crash:
                raise
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried
                reason = f"{type(exc).__name__}: {exc}"
                if attempt >= self.max_attempts:
                    yield from self._dead_letter(consumer, delivery, reason, attempt)
                    return True
                wait = self.backoff_ms * self.backoff_factor ** (attempt - 1)
                trace.add(clock.now, "retry", consumer.name, delivery.topic, delivery.partition,
                          delivery.offset, message.key, message.id, message.type,
                          f"group={self.group} attempt={attempt} wait_ms={wait:g} {reason}")
                yield clock.timeout(wait)
                attempt += 1
                if self.consumer is not consumer or not consumer.active:
                    return False

    def _dead_letter(self, consumer, delivery: Delivery, reason: str, attempts: int):
        clock = self.broker.clock
        message = delivery.message.with_headers(**{
            "dlt.reason": reason, "dlt.group": self.group, "dlt.topic": delivery.topic,
            "dlt.partition": str(delivery.partition), "dlt.offset": str(delivery.offset),
            "dlt.attempts": str(attempts),
        })
        while True:
            try:
                self.broker.publish(dead_letter_topic(delivery.topic), message)
                break
            except BrokerUnavailable:
                yield clock.timeout(self.backoff_ms)
        self.dead_letters.append(delivery)
        self.broker.trace.add(clock.now, "dead_letter", consumer.name, delivery.topic,
                              delivery.partition, delivery.offset, message.key, message.id,
                              message.type, f"group={self.group} attempts={attempts} {reason}")

    def _commit(self, consumer, delivery: Delivery) -> bool:
        try:
            consumer.commit(delivery)
            return True
        except BrokerUnavailable:
            return True  # not stored; the next commit covers it (or it is redelivered)
        except (CommitFailed, BrokerError):
            return False  # partitions moved away: the new owner redelivers

    def __repr__(self) -> str:
        state = "online" if self.online else "offline"
        return f"ConsumerWorker({self.name!r}, group={self.group!r}, {state}, handled={self.handled})"
