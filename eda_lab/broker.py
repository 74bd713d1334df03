"""The in-memory broker: topics, partitions, consumer groups and committed offsets.

It behaves like the log-based brokers the course names (Kafka, and RabbitMQ streams):

* a **topic** is split into **partitions**; a message's key picks its partition with a stable
  hash, and each partition is an append-only log, so order is kept per key;
* every **consumer group** reads every message (fan-out); the consumers *inside* one group
  share the partitions, which move when a consumer joins or leaves (a **rebalance**);
* a group remembers a **committed offset** per partition. A message that was polled but not
  committed is delivered again after its consumer crashes or leaves: delivery is
  **at least once**, and the delivery count says how many times it was sent;
* faults come from a :class:`~eda_lab.faults.FaultPlan`: the broker unavailable (publish
  raises :class:`BrokerUnavailable`), a delivery dropped, duplicated or delayed.

Retries, backoff and dead letters belong to the consumer side, see :mod:`eda_lab.consumer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from . import _validate as check
from .clock import Clock
from .faults import FaultPlan, as_fault_plan, crash_point
from .messages import Message
from .partitioning import partition_for
from .trace import Trace

UNAVAILABLE = crash_point("broker.unavailable", "the broker refuses a publish (network or broker down)")
DROP = crash_point("broker.drop", "a delivery is lost on its way to the consumer; redelivered later")
DUPLICATE = crash_point("broker.duplicate", "a delivery is made twice")
DELAY = crash_point("broker.delay", "a published message becomes visible only after delay_ms")

EARLIEST = "earliest"
LATEST = "latest"


class BrokerError(Exception):
    """Misuse of the broker (the message says what was wrong and what is allowed)."""


class UnknownTopic(BrokerError, LookupError):  # noqa: N818 - reads as a fact, like KeyError
    """A topic that was never created."""


class BrokerUnavailable(BrokerError):  # noqa: N818
    """The broker could not take the publish; the caller must decide what to do."""


class CommitFailed(BrokerError):  # noqa: N818
    """A commit the group cannot accept (an offset never delivered, a partition moved away)."""


class Delivery(NamedTuple):
    """One delivery of a message to a consumer. ``attempt`` counts deliveries, from 1."""

    message: Message
    topic: str
    partition: int
    offset: int
    attempt: int

    @property
    def redelivered(self) -> bool:
        return self.attempt > 1


class Topic:
    """A named log split into partitions. Messages are never removed (no retention here)."""

    def __init__(self, name: str, partitions: int):
        self.name = name
        self.partitions: list[list[Message]] = [[] for _ in range(partitions)]
        # offset -> simulated time it becomes visible, for messages held back by a delay fault
        self.held: list[dict[int, float]] = [{} for _ in range(partitions)]
        # key -> partition, remembered: a key's partition never changes for this topic
        self.partition_of: dict[str, int] = {}

    @property
    def partition_count(self) -> int:
        return len(self.partitions)

    def held_back(self, partition: int, offset: int, now: float) -> bool:
        """True while a delay fault still holds this message back (released once visible)."""
        held = self.held[partition]
        if offset not in held:
            return False
        if held[offset] > now:
            return True
        del held[offset]
        return False

    def end_offsets(self) -> list[int]:
        """The next offset to be written, per partition (= messages in each partition)."""
        return [len(p) for p in self.partitions]

    def __len__(self) -> int:
        return sum(len(p) for p in self.partitions)

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, partitions={self.partition_count}, messages={len(self)})"


class Consumer:
    """One member of a consumer group: polls its assigned partitions and commits offsets.

    Made by :meth:`Broker.consumer`. ``poll()`` moves the consumer's in-memory position;
    only ``commit()`` makes progress durable for the group.
    """

    def __init__(self, broker: Broker, group: ConsumerGroup, name: str):
        self.broker = broker
        self.group = group
        self.name = name
        self.active = True
        # (topic, partition) -> next offset to fetch; only the partitions assigned to us
        self.positions: dict[tuple[str, int], int] = {}
        self._rotation = 0

    @property
    def assignment(self) -> list[tuple[str, int]]:
        """The (topic, partition) pairs this consumer reads, sorted."""
        return sorted(self.positions)

    def _check_active(self, action: str) -> None:
        if not self.active:
            raise BrokerError(
                f"consumer {self.name!r} of group {self.group.name!r} has left the group; "
                f"it cannot {action} (join again with broker.consumer(...))"
            )

    def poll(self, max_messages: int = 100) -> list[Delivery]:
        """Fetch up to ``max_messages`` from the assigned partitions, in order per partition.

        Returns an empty list while the broker is down. Partitions are visited round-robin,
        so one busy partition cannot starve the others.
        """
        self._check_active("poll")
        check.count("max_messages", max_messages)
        now = self.broker.clock.now
        if self.broker.is_down(now):
            return []
        partitions = list(self.positions)
        if not partitions:
            return []
        start = self._rotation % len(partitions)
        self._rotation += 1
        out: list[Delivery] = []
        for tp in partitions[start:] + partitions[:start]:
            if len(out) >= max_messages:
                break
            self._fetch(tp, max_messages - len(out), now, out)
        return out

    def _fetch(self, tp: tuple[str, int], room: int, now: float, out: list[Delivery]) -> None:
        """Deliver from one partition, from this consumer's position, message by message.

        A message below the group's delivery high-water mark was sent before: it goes out
        again with a higher attempt count (at least once). A message held back by a delay
        stops the partition there, so the ones behind it wait (order per key). A dropped
        delivery never reaches the consumer: its position stays, and the next poll sends it
        again.
        """
        broker, group = self.broker, self.group
        faults, trace = broker.faults, broker.trace
        topic = broker.topics[tp[0]]
        log = topic.partitions[tp[1]]
        offset = self.positions[tp]
        end = min(len(log), offset + room)
        while offset < end:
            if topic.held_back(tp[1], offset, now):
                break
            message = log[offset]
            attempt = group.next_attempt(tp, offset)
            detail = f"group={group.name} attempt={attempt}"
            if faults.reach(DROP):
                trace.add(now, "drop", self.name, tp[0], tp[1], offset, message.key, message.id,
                          message.type, detail)
                break
            out.append(Delivery(message, tp[0], tp[1], offset, attempt))
            trace.add(now, "deliver", self.name, tp[0], tp[1], offset, message.key, message.id,
                      message.type, detail)
            if faults.reach(DUPLICATE):
                attempt = group.next_attempt(tp, offset)
                out.append(Delivery(message, tp[0], tp[1], offset, attempt))
                trace.add(now, "duplicate", self.name, tp[0], tp[1], offset, message.key,
                          message.id, message.type, f"group={group.name} attempt={attempt}")
            offset += 1
        self.positions[tp] = offset

    def commit(self, delivery: Delivery | None = None) -> None:
        """Commit progress to the group.

        With a delivery: everything up to and including it, in its partition. Without: all
        that this consumer has polled so far. A commit of an offset this consumer was never
        given, or of a partition that moved to another consumer, raises :class:`CommitFailed`.
        """
        self._check_active("commit")
        broker = self.broker
        if broker.is_down(broker.clock.now):
            raise BrokerUnavailable(
                f"broker unavailable at t={broker.clock.now:g} ms: commit of group "
                f"{self.group.name!r} not stored"
            )
        if delivery is None:
            for tp, position in self.positions.items():
                self.group.store_commit(self, tp, position)
            return
        if not isinstance(delivery, Delivery):
            raise TypeError(f"commit() takes a Delivery from poll() or nothing, got {delivery!r}")
        tp = (delivery.topic, delivery.partition)
        if tp not in self.positions:
            raise CommitFailed(
                f"partition {delivery.topic}[{delivery.partition}] is not assigned to consumer "
                f"{self.name!r} (it moved in a rebalance); its uncommitted messages will be "
                "redelivered to the new owner"
            )
        if delivery.offset >= self.positions[tp]:
            raise CommitFailed(
                f"offset {delivery.offset} of {delivery.topic}[{delivery.partition}] was never "
                f"delivered to consumer {self.name!r} (next to deliver: {self.positions[tp]})"
            )
        self.group.store_commit(self, tp, delivery.offset + 1)

    def seek_to_committed(self) -> None:
        """Forget what was polled and not committed: the next poll starts at the committed offset."""
        self._check_active("seek")
        for tp in self.positions:
            self.positions[tp] = self.group.committed.get(tp, 0)

    def close(self) -> None:
        """Leave the group cleanly. Uncommitted messages go to whoever takes the partitions."""
        if self.active:
            self.group.remove(self, "leave")

    def crash(self) -> None:
        """Die without committing: everything polled since the last commit is redelivered."""
        if self.active:
            self.group.remove(self, "crash")

    @property
    def lag(self) -> int:
        """Messages in this consumer's partitions not yet committed by its group."""
        return sum(self.group.lag_of(tp) for tp in self.positions)

    def __repr__(self) -> str:
        state = "active" if self.active else "left"
        return f"Consumer({self.name!r}, group={self.group.name!r}, {state}, assignment={self.assignment})"


class ConsumerGroup:
    """A named set of consumers sharing the partitions of its topics, with committed offsets."""

    def __init__(self, broker: Broker, name: str, topics: tuple[str, ...], start: str):
        self.broker = broker
        self.name = name
        self.topics = topics
        self.consumers: dict[str, Consumer] = {}
        self.committed: dict[tuple[str, int], int] = {}
        # High-water mark of deliveries per partition: offsets below it were sent before.
        self.delivered_upto: dict[tuple[str, int], int] = {}
        self.redeliveries: dict[tuple[str, int], dict[int, int]] = {}
        self.generation = 0
        for tp in self.partitions():
            topic = broker.topics[tp[0]]
            self.committed[tp] = len(topic.partitions[tp[1]]) if start == LATEST else 0

    def partitions(self) -> list[tuple[str, int]]:
        """Every (topic, partition) the group reads, in a fixed order."""
        return [(t, p) for t in self.topics for p in range(self.broker.topics[t].partition_count)]

    def next_attempt(self, tp: tuple[str, int], offset: int) -> int:
        """Count one more delivery of ``offset``; returns its number (1 for the first time)."""
        if offset >= self.delivered_upto.get(tp, 0):
            self.delivered_upto[tp] = offset + 1
            return 1
        counts = self.redeliveries.setdefault(tp, {})
        attempt = counts[offset] = counts.get(offset, 1) + 1
        return attempt

    def store_commit(self, consumer: Consumer, tp: tuple[str, int], offset: int) -> None:
        if offset > self.committed.get(tp, 0):
            self.committed[tp] = offset
            redeliveries = self.redeliveries.get(tp)
            if redeliveries:
                for old in [o for o in redeliveries if o < offset]:
                    del redeliveries[old]
            broker = self.broker
            if broker.trace.enabled:
                broker.trace.add(broker.clock.now, "commit", consumer.name, tp[0], tp[1],
                                 offset, detail=f"group={self.name}")

    def lag_of(self, tp: tuple[str, int]) -> int:
        topic = self.broker.topics[tp[0]]
        return len(topic.partitions[tp[1]]) - self.committed.get(tp, 0)

    def lag(self) -> int:
        """Messages published to the group's topics and not yet committed by it (its backlog)."""
        return sum(self.lag_of(tp) for tp in self.partitions())

    def add(self, consumer: Consumer) -> None:
        self.consumers[consumer.name] = consumer
        self._trace("join", consumer.name)
        self.rebalance()

    def remove(self, consumer: Consumer, how: str) -> None:
        consumer.active = False
        consumer.positions.clear()
        del self.consumers[consumer.name]
        self._trace("leave", consumer.name, how)
        self.rebalance()

    def rebalance(self) -> None:
        """Share the partitions round-robin among the consumers, sorted by name.

        A partition that stays with its consumer keeps that consumer's position; one that
        moves starts from the committed offset, so the new owner redelivers what the old
        owner had polled but not committed.
        """
        self.generation += 1
        members = sorted(self.consumers)
        wanted: dict[str, list[tuple[str, int]]] = {name: [] for name in members}
        for i, tp in enumerate(self.partitions()):
            if members:
                wanted[members[i % len(members)]].append(tp)
        moved = 0
        for name in members:
            consumer = self.consumers[name]
            old = consumer.positions
            new = {}
            for tp in wanted[name]:
                if tp in old:
                    new[tp] = old[tp]
                else:
                    new[tp] = self.committed.get(tp, 0)
                    moved += 1
            consumer.positions = new
        self._trace("rebalance", self.name,
                    f"generation={self.generation} consumers={len(members)} moved={moved}")

    def _trace(self, kind: str, actor: str, detail: str = "") -> None:
        broker = self.broker
        if broker.trace.enabled:
            broker.trace.add(broker.clock.now, kind, actor,
                             detail=f"group={self.name}" + (f" {detail}" if detail else ""))

    def __repr__(self) -> str:
        return (f"ConsumerGroup({self.name!r}, topics={list(self.topics)}, "
                f"consumers={sorted(self.consumers)}, lag={self.lag()})")


def shared_with(broker: Any, clock: Clock | None = None, trace: Trace | None = None,
                faults: FaultPlan | None = None) -> tuple[Clock, Trace, FaultPlan]:
    """The clock, trace and fault plan of a part of a run: the ones given, else the broker's.

    One run has one clock, one trace and one fault plan, and every part it wires reads them
    from the broker it talks to. ``broker`` may be anything with ``publish()`` (a file-backed
    log in the multi-process test has no clock): then the part gets fresh ones.
    """
    def pick(given, attribute: str, make):
        if given is not None:
            return given
        own = getattr(broker, attribute, None)
        return own if own is not None else make()

    plan = pick(None if faults is None else as_fault_plan(faults), "faults", FaultPlan)
    return pick(clock, "clock", Clock), pick(trace, "trace", Trace), plan


class Broker:
    """An in-memory, log-based broker on a simulated clock.

    >>> broker = Broker()
    >>> broker.create_topic("orders", partitions=3)
    Topic('orders', partitions=3, messages=0)
    """

    consumer_class = Consumer

    def __init__(self, clock: Clock | None = None, trace: Trace | None = None,
                 faults: FaultPlan | None = None, *, delay_ms: float = 1_000.0,
                 name: str = "broker"):
        check.ms("delay_ms", delay_ms, positive=False)
        self.clock = clock if clock is not None else Clock()
        self.trace = trace if trace is not None else Trace()
        self.faults = as_fault_plan(faults)
        self.delay_ms = delay_ms
        self.name = name
        self.topics: dict[str, Topic] = {}
        self.groups: dict[str, ConsumerGroup] = {}
        self._consumer_serial = 0
        self._listeners: dict[str, list[Callable[[], Any]]] = {}

    # -- topics -------------------------------------------------------------------------
    def create_topic(self, name: str, partitions: int = 1) -> Topic:
        """Create a topic (or return it, if it exists with the same partition count)."""
        check.name("topic name", name)
        check.count("partitions", partitions)
        existing = self.topics.get(name)
        if existing is not None:
            if existing.partition_count != partitions:
                raise BrokerError(
                    f"topic {name!r} exists with {existing.partition_count} partitions, not "
                    f"{partitions}; partition counts cannot change (keys would move)"
                )
            return existing
        topic = self.topics[name] = Topic(name, partitions)
        for group in self.groups.values():
            if name in group.topics:  # pragma: no cover - groups only name existing topics
                group.rebalance()
        return topic

    def topic(self, name: str) -> Topic:
        """The topic called ``name``; :class:`UnknownTopic` names the topics that exist."""
        try:
            return self.topics[name]
        except KeyError:
            known = ", ".join(repr(t) for t in sorted(self.topics)) or "none yet"
            raise UnknownTopic(
                f"unknown topic {name!r}; known topics: {known}. Create it first with "
                f"broker.create_topic({name!r}, partitions=N)"
            ) from None

    def partition_for(self, topic: str, key: str) -> int:
        """The partition ``key`` lands on in ``topic`` (stable across runs and machines)."""
        return partition_for(key, self.topic(topic).partition_count)

    # -- producing -----------------------------------------------------------------------
    def publish(self, topic: str, message: Message) -> tuple[int, int]:
        """Append ``message`` to its key's partition; returns (partition, offset).

        Raises :class:`BrokerUnavailable` when the fault plan says the broker is down: the
        message was not stored, and the caller has to decide what that means.
        """
        log_topic = self.topics.get(topic)
        if log_topic is None:  # (not `or`: that would count the topic's messages, its len())
            log_topic = self.topic(topic)
        if not isinstance(message, Message):
            raise TypeError(f"publish() takes a Message, got {type(message).__name__}")
        now = self.clock.now
        if self.faults.reach(UNAVAILABLE) or self.is_down(now):
            self.trace.add(now, "unavailable", self.name, topic, None, None, message.key,
                           message.id, message.type)
            raise BrokerUnavailable(
                f"broker unavailable at t={now:g} ms: {message.type} for key "
                f"{message.key!r} was not published to {topic!r}")
        p = log_topic.partition_of.get(message.key)
        if p is None:  # a key's partition never changes: remember it
            p = log_topic.partition_of[message.key] = partition_for(
                message.key, log_topic.partition_count)
        log = log_topic.partitions[p]
        offset = len(log)
        log.append(message)
        if self.faults.reach(DELAY):
            log_topic.held[p][offset] = now + self.delay_ms
            self.trace.add(now, "delay", self.name, topic, p, offset, message.key, message.id,
                           message.type, f"visible_at={now + self.delay_ms:g}")
        self.trace.add(now, "publish", self.name, topic, p, offset, message.key, message.id,
                       message.type)
        for listener in self._listeners.get(topic, ()):
            listener()
        return p, offset

    def on_publish(self, topic: str, listener: Callable[[], Any]) -> None:
        """Call ``listener()`` after every publish to ``topic``: a consumer's long poll.

        A Kafka consumer waits in its fetch request until data arrives (``fetch.max.wait.ms``)
        instead of asking again and again; a process that sleeps until woken uses this.
        """
        self.topic(topic)
        if not callable(listener):
            raise TypeError(f"listener must be a function of no arguments, got {listener!r}")
        self._listeners.setdefault(topic, []).append(listener)

    def is_down(self, now: float) -> bool:
        """True while an outage of the broker covers ``now``."""
        return self.faults.is_down(self.name, now)

    # -- consuming -----------------------------------------------------------------------
    def group(self, name: str) -> ConsumerGroup:
        """The consumer group called ``name``."""
        try:
            return self.groups[name]
        except KeyError:
            known = ", ".join(repr(g) for g in sorted(self.groups)) or "none yet"
            raise BrokerError(f"unknown consumer group {name!r}; known groups: {known}") from None

    def subscribe(self, group: str, topics: str | list[str] | tuple[str, ...],
                  start: str = EARLIEST) -> ConsumerGroup:
        """Create consumer group ``group`` reading ``topics`` (its offsets start now).

        From then on the group receives every message published to those topics, even while
        it has no consumer running: that is what lets a consumer that was offline catch up.
        ``start`` is 'earliest' (read the topics' history too) or 'latest'.
        """
        check.name("group", group)
        names = (topics,) if isinstance(topics, str) else tuple(topics)
        if not names:
            raise ValueError("topics must name at least one topic")
        for name in names:
            self.topic(name)
        if start not in (EARLIEST, LATEST):
            raise ValueError(f"start must be {EARLIEST!r} or {LATEST!r}, got {start!r}")
        existing = self.groups.get(group)
        if existing is not None:
            if set(existing.topics) != set(names):
                raise BrokerError(
                    f"group {group!r} already reads {list(existing.topics)}, not {list(names)}"
                )
            return existing
        self.groups[group] = ConsumerGroup(self, group, names, start)
        return self.groups[group]

    def consumer(self, group: str, topics: str | list[str] | tuple[str, ...] | None = None,
                 name: str | None = None, start: str = EARLIEST) -> Consumer:
        """Join ``group`` (creating it for ``topics`` if new) as a new consumer."""
        if group in self.groups and topics is None:
            g = self.groups[group]
        elif topics is None:
            raise BrokerError(f"group {group!r} does not exist yet: pass the topics it reads")
        else:
            g = self.subscribe(group, topics, start)
        if name is None:
            self._consumer_serial += 1
            name = f"{group}-{self._consumer_serial}"
        if name in g.consumers:
            raise BrokerError(f"group {group!r} already has an active consumer named {name!r}")
        consumer = self.consumer_class(self, g, name)
        g.add(consumer)
        return consumer

    def lag(self, group: str) -> int:
        """The backlog of ``group``: messages published and not yet committed by it."""
        return self.group(group).lag()

    def uncommitted(self, group: str) -> list[Message]:
        """The messages ``group`` has not committed yet, partition by partition: what is still
        on its way to that group (its lag is their count)."""
        g = self.group(group)
        return [m for t, p in g.partitions()
                for m in self.topics[t].partitions[p][g.committed.get((t, p), 0):]]

    def backlog(self) -> dict[str, int]:
        """The backlog of every group, by group name."""
        return {name: g.lag() for name, g in sorted(self.groups.items())}

    def messages(self, topic: str) -> list[Message]:
        """Every message of ``topic``, partition by partition (for inspection and checks)."""
        return [m for part in self.topic(topic).partitions for m in part]

    def __repr__(self) -> str:
        return (f"Broker(topics={sorted(self.topics)}, groups={sorted(self.groups)}, "
                f"now={self.clock.now:g} ms)")
