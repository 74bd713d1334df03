"""The broker of :mod:`eda_lab.broker`, made faster for long runs; read that one to learn.

The chaos lab and the benchmarks push tens of thousands of messages through the broker, and
the readable delivery path of ``broker.py`` does its bookkeeping message by message: two
fault-point visits, a delivery-count update and a trace record each. :class:`FastBroker` keeps
every promise of :class:`~eda_lab.broker.Broker` (the same deliveries with the same attempt
numbers, the same trace records, the same fault visits counted and fired) and only changes
how: a batch of first deliveries is counted, checked for faults and traced in one go, and a
publish that no fault can touch counts its visits without the general machinery. Anything
unusual (a redelivery, a message held back, a planned fault at publish) takes the readable
path of ``broker.py``. ``tests/test_fast_broker.py`` runs the same operations on both brokers
and compares everything they leave behind.

This is what speed costs in readability; a learner reading the course's broker never needs
this file.
"""

from __future__ import annotations

from . import _validate as check
from .broker import DELAY, DROP, DUPLICATE, UNAVAILABLE, Broker, Consumer, Delivery, Message

_new_delivery = tuple.__new__   # a NamedTuple without its constructor's argument handling


class FastConsumer(Consumer):
    """A consumer whose first deliveries of a batch are made in one go."""

    def poll(self, max_messages: int = 100) -> list[Delivery]:
        topics = self.broker.topics
        if (self.active and self.positions and not self.broker.faults.outages
                and all(position >= len(topics[t].partitions[p])
                        for (t, p), position in self.positions.items())):
            check.count("max_messages", max_messages)
            self._rotation += 1
            return []  # nothing new anywhere: what the readable poll would find, at once
        return super().poll(max_messages)

    def commit(self, delivery: Delivery | None = None) -> None:
        if delivery is not None and type(delivery) is Delivery and self.active \
                and not self.broker.faults.outages:
            tp = (delivery.topic, delivery.partition)
            if delivery.offset < self.positions.get(tp, -1):  # given to this consumer: store it
                self.group.store_commit(self, tp, delivery.offset + 1)
                return
        super().commit(delivery)  # anything else, with its checks and its errors

    def _fetch(self, tp: tuple[str, int], room: int, now: float, out: list[Delivery]) -> None:
        broker, group = self.broker, self.group
        topic_name, p = tp
        topic = broker.topics[topic_name]
        offset = self.positions[tp]
        if topic.held[p] or offset < group.delivered_upto.get(tp, 0):
            super()._fetch(tp, room, now, out)  # held back or redelivered: message by message
            return
        log = topic.partitions[p]
        end = min(len(log), offset + room)
        if end <= offset:
            return
        faults = broker.faults
        dropped = faults.first_firing(DROP, end - offset)
        last = end if dropped is None else offset + dropped     # delivered: offset..last-1
        if DUPLICATE in faults.planned:
            twice = {o for o in range(offset, last) if faults.reach(DUPLICATE)}
        else:
            faults.first_firing(DUPLICATE, last - offset)  # counts the visits: none can fire
            twice = set()
        group.delivered_upto[tp] = last if dropped is None else last + 1
        detail = f"group={group.name} attempt=1"
        name = self.name
        records = []
        for o in range(offset, last):
            m = log[o]
            out.append(_new_delivery(Delivery, (m, topic_name, p, o, 1)))
            records.append((now, "deliver", name, topic_name, p, o, m.key, m.id, m.type, detail))
            if o in twice:
                group.redeliveries.setdefault(tp, {})[o] = 2
                out.append(_new_delivery(Delivery, (m, topic_name, p, o, 2)))
                records.append((now, "duplicate", name, topic_name, p, o, m.key, m.id, m.type,
                                f"group={group.name} attempt=2"))
        if dropped is not None:
            m = log[last]
            records.append((now, "drop", name, topic_name, p, last, m.key, m.id, m.type, detail))
        broker.trace.extend(records)
        self.positions[tp] = last


class FastBroker(Broker):
    """:class:`~eda_lab.broker.Broker`, faster over many messages (see the module docstring)."""

    consumer_class = FastConsumer

    def publish(self, topic: str, message: Message) -> tuple[int, int]:
        faults = self.faults
        planned = faults.planned
        if (UNAVAILABLE in planned or DELAY in planned or faults.outages
                or type(message) is not Message or topic not in self.topics):
            return super().publish(topic, message)
        hits = faults.hits   # the visits reach() would count, without a fault to check
        hits[UNAVAILABLE] = hits.get(UNAVAILABLE, 0) + 1
        hits[DELAY] = hits.get(DELAY, 0) + 1
        log_topic = self.topics[topic]
        p = log_topic.partition_of.get(message.key)
        if p is None:
            p = log_topic.partition_of[message.key] = self.partition_for(topic, message.key)
        log = log_topic.partitions[p]
        offset = len(log)
        log.append(message)
        self.trace.add(self.clock.env.now, "publish", self.name, topic, p, offset, message.key,
                       message.id, message.type)
        for listener in self._listeners.get(topic, ()):
            listener()
        return p, offset
