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


class Trace:
    """An append-only list of trace records, shared by every component of one run.

    Records are stored as plain tuples in :data:`COLUMNS` order (cheaper to append than a
    named tuple, and a run writes one per delivery) and read as :class:`TraceRecord`.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._records: list[tuple] = []

    def add(self, time: float, kind: str, actor: str, topic: str | None = None,
            partition: int | None = None, offset: int | None = None, key: str | None = None,
            message_id: str | None = None, message_type: str | None = None,
            detail: str = "") -> None:
        """Append one record (nothing, when the trace is disabled)."""
        if self.enabled:
            self._records.append((time, kind, actor, topic, partition, offset, key,
                                  message_id, message_type, detail))

    def extend(self, records: list[tuple]) -> None:
        """Append many records at once, each a tuple in :data:`COLUMNS` order."""
        if self.enabled:
            self._records.extend(records)

    @property
    def records(self) -> list[TraceRecord]:
        return [TraceRecord._make(r) for r in self._records]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[TraceRecord]:
        return map(TraceRecord._make, self._records)

    def tail(self, n: int) -> list[TraceRecord]:
        """The last ``n`` records."""
        if n <= 0:
            return []
        return [TraceRecord._make(r) for r in self._records[-n:]]

    def of_kind(self, *kinds: str) -> list[TraceRecord]:
        """The records whose kind is one of ``kinds``."""
        wanted = set(kinds)
        return [TraceRecord._make(r) for r in self._records if r[1] in wanted]

    def count(self, kind: str) -> int:
        """How many records of ``kind`` there are."""
        return sum(1 for r in self._records if r[1] == kind)

    def clear(self) -> None:
        self._records.clear()

    def frame(self, last: int | None = None):
        """The trace as a pandas DataFrame, one row per record (the last ``last`` if given)."""
        import pandas as pd

        records = self._records if last is None else self._records[-last:] if last > 0 else []
        frame = pd.DataFrame.from_records(records, columns=COLUMNS)
        for column in ("partition", "offset"):
            frame[column] = frame[column].astype("Int64")
        return frame
