"""One trace: every publish, delivery, commit, retry, crash and compensation, in order.

Charts, widgets and checks read the trace (and the databases), never a component's internals,
so what a learner sees is exactly what happened. A record is a small named tuple; the pandas
view (``trace.frame()``) is what notebooks show.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

# The kinds the library writes; other kinds are allowed (a notebook may add its own).
KINDS = {
    "publish": "a message was appended to a topic partition",
    "deliver": "a consumer received a message (delivery count in detail)",
    "commit": "a consumer group committed an offset",
    "retry": "a failed handler will run again after a backoff",
    "dead_letter": "a message was moved to the dead-letter topic after its last attempt",
    "drop": "a delivery was lost on its way to the consumer (it will be redelivered)",
    "duplicate": "a delivery was made twice",
    "delay": "a message was held back before it became visible",
    "unavailable": "the broker refused a publish",
    "crash": "a named crash point fired",
    "join": "a consumer joined its group",
    "leave": "a consumer left its group (or crashed)",
    "rebalance": "a group's partitions moved between its consumers",
}

COLUMNS = ("time", "kind", "actor", "topic", "partition", "offset", "key",
           "message_id", "message_type", "detail")


class TraceRecord(NamedTuple):
    """One thing that happened, at simulated time ``time`` (ms)."""

    time: float
    kind: str
    actor: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    message_id: str | None = None
    message_type: str | None = None
    detail: str = ""


class DeliveryRun:
    """Consecutive deliveries from one partition in one poll, stored as one entry.

    A poll of 100 messages appends one run instead of 100 tuples; reading the trace expands it
    into one record per delivery, so the trace stays complete and the hot path stays cheap.
    """

    __slots__ = ("time", "kind", "actor", "topic", "partition", "first_offset", "messages",
                 "detail")

    def __init__(self, time, kind, actor, topic, partition, first_offset, messages, detail):
        self.time = time
        self.kind = kind
        self.actor = actor
        self.topic = topic
        self.partition = partition
        self.first_offset = first_offset
        self.messages = messages
        self.detail = detail

    def __len__(self) -> int:
        return len(self.messages)

    def expand(self) -> list[tuple]:
        return [(self.time, self.kind, self.actor, self.topic, self.partition, offset, m.key,
                 m.id, m.type, self.detail)
                for offset, m in enumerate(self.messages, self.first_offset)]


def _expand(raw: list) -> list[tuple]:
    out: list[tuple] = []
    for entry in raw:
        if type(entry) is DeliveryRun:
            out.extend(entry.expand())
        else:
            out.append(entry)
    return out


class Trace:
    """An append-only list of trace records, shared by every component of one run.

    Records are stored as plain tuples in :data:`COLUMNS` order (a hot path appends them
    directly to ``raw``, several times cheaper than building a named tuple), or as a
    :class:`DeliveryRun` for a batch of deliveries; they are read as :class:`TraceRecord`.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.raw: list = []
        self._extra = 0  # records stored inside runs beyond one per run

    def add(self, time: float, kind: str, actor: str, topic: str | None = None,
            partition: int | None = None, offset: int | None = None, key: str | None = None,
            message_id: str | None = None, message_type: str | None = None,
            detail: str = "") -> None:
        """Append one record (nothing, when the trace is disabled)."""
        if self.enabled:
            self.raw.append((time, kind, actor, topic, partition, offset, key,
                             message_id, message_type, detail))

    def add_run(self, run: DeliveryRun) -> None:
        """Append a run of deliveries (one record each when read)."""
        if self.enabled and run.messages:
            self.raw.append(run)
            self._extra += len(run.messages) - 1

    @property
    def records(self) -> list[TraceRecord]:
        return [TraceRecord._make(r) for r in _expand(self.raw)]

    def __len__(self) -> int:
        return len(self.raw) + self._extra

    def __iter__(self) -> Iterator[TraceRecord]:
        return map(TraceRecord._make, _expand(self.raw))

    def tail(self, n: int) -> list[TraceRecord]:
        """The last ``n`` records, cheaply (reads only the end of the trace)."""
        if n <= 0:
            return []
        picked: list = []
        seen = 0
        for entry in reversed(self.raw):
            picked.append(entry)
            seen += len(entry.messages) if type(entry) is DeliveryRun else 1
            if seen >= n:
                break
        picked.reverse()
        return [TraceRecord._make(r) for r in _expand(picked)[-n:]]

    def of_kind(self, *kinds: str) -> list[TraceRecord]:
        """The records whose kind is one of ``kinds``."""
        wanted = set(kinds)
        return [TraceRecord._make(r) for r in _expand(
            [e for e in self.raw if (e.kind if type(e) is DeliveryRun else e[1]) in wanted])]

    def count(self, kind: str) -> int:
        """How many records of ``kind`` there are."""
        total = 0
        for entry in self.raw:
            if type(entry) is DeliveryRun:
                if entry.kind == kind:
                    total += len(entry.messages)
            elif entry[1] == kind:
                total += 1
        return total

    def clear(self) -> None:
        self.raw.clear()
        self._extra = 0

    def frame(self, last: int | None = None):
        """The trace as a pandas DataFrame, one row per record (the last ``last`` if given)."""
        import pandas as pd

        records = _expand(self.raw) if last is None else self.tail(last)
        frame = pd.DataFrame.from_records(records, columns=COLUMNS)
        for column in ("partition", "offset"):
            frame[column] = frame[column].astype("Int64")
        return frame
