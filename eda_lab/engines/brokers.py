"""One small broker interface, two real implementations (Kafka protocol, Redis Streams).

The relays and the consumer of notebook 08 talk to a broker through four verbs only, so the
same relay runs on Kafka (:mod:`.kafka`) and on Redis Streams (:mod:`.redis_streams`):

* ``publish_batch([(topic, key, value, headers), ...]) -> [Ack, ...]`` sends every record and
  returns only when the broker acknowledged each one (``publish`` is the one-record form).
  A relay may mark or confirm an event only after this returns: that is the at-least-once
  contract. A broker that does not answer raises :class:`~.errors.BrokerDown`.
* ``consumer(group, topic)`` joins a consumer group; the consumer's ``poll(max_records,
  timeout_s)`` returns :class:`Record`\\ s and ``commit(records)`` records, in the broker, that
  the group is done with them (Kafka: the committed offset; Redis: XACK).

A record carries the event the way Debezium's outbox event router writes it: the **key** is the
aggregate id (so one order stays on one partition, in order), the **value** is the payload, and
the event id, type, aggregate type and version travel as **headers**.
:func:`outbox_record` and :func:`record_to_message` convert between outbox rows and records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .. import _validate as check
from ..messages import Message

HEADER_NAMES = ("id", "type", "aggregatetype", "version", "created_at")
MAX_PARTITIONS = 64


@dataclass(frozen=True)
class Ack:
    """The broker's acknowledgement of one record: where it was stored."""

    topic: str
    partition: int
    offset: int | str   # Kafka: an integer offset; Redis: the stream entry id ("1700-0")
    key: str


@dataclass(frozen=True)
class Record:
    """One record read from the broker (a delivery: the same record may come again)."""

    topic: str
    partition: int
    offset: int | str
    key: str
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def message(self) -> Message:
        """The event this record carries (see :func:`record_to_message`)."""
        return record_to_message(self)


OutgoingRecord = tuple[str, str, bytes, Mapping[str, str]]   # (topic, key, value, headers)


class BrokerConsumer(Protocol):
    group: str
    name: str

    def poll(self, max_records: int = 100, timeout_s: float = 0.5) -> list[Record]: ...

    def commit(self, records: Sequence[Record]) -> None: ...

    def close(self) -> None: ...


class BrokerClient(Protocol):
    kind: str

    def create_topic(self, topic: str, partitions: int = 3) -> None: ...

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, str] | None = None) -> Ack: ...

    def publish_batch(self, records: Sequence[OutgoingRecord]) -> list[Ack]: ...

    def consumer(self, group: str, topic: str, name: str | None = None) -> BrokerConsumer: ...

    def close(self) -> None: ...


def check_publish_args(topic, key, value, headers) -> None:
    """The one check both brokers make before sending anything."""
    check.name("topic", topic)
    check.name("key", key)   # the aggregate id
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"value must be bytes (encode JSON text first), got "
                        f"{type(value).__name__}")
    for name, item in (headers or {}).items():
        if not isinstance(name, str) or not isinstance(item, str):
            raise TypeError(f"headers must map str to str; header {name!r} is {item!r}")


def check_partitions(partitions) -> int:
    return check.count("partitions", partitions, maximum=MAX_PARTITIONS)


def outbox_record(topic: str, id: str, aggregatetype: str, aggregateid: str, type: str,
                  payload: str | Mapping, version: int, created_at: float) -> OutgoingRecord:
    """The record of one outbox row: key = aggregate id, value = payload, the rest headers."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    headers = {"id": id, "type": type, "aggregatetype": aggregatetype,
               "version": str(version), "created_at": repr(float(created_at))}
    return topic, aggregateid, text.encode(), headers


def record_to_message(record: Record) -> Message:
    """The :class:`~eda_lab.messages.Message` of a record written by :func:`outbox_record`.

    ``timestamp`` is the outbox row's ``created_at`` (wall-clock ms), so a consumer can
    measure the end-to-end lag."""
    headers = dict(record.headers)
    missing = [name for name in ("id", "type") if name not in headers]
    if missing:
        raise ValueError(f"record {record.topic}/{record.partition}/{record.offset} has no "
                         f"{missing} header(s): it was not written by an eda_lab relay")
    created = float(headers.get("created_at", 0.0))
    extra = {name: headers[name] for name in ("aggregatetype", "version") if name in headers}
    return Message(headers["type"], record.key, json.loads(record.value), extra, created,
                   headers["id"])
