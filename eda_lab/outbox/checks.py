"""The consistency checker: what the source of truth committed against what consumers saw.

It needs three things and nothing else, so it judges any pipeline the same way:

* the **source of truth**: each aggregate's committed version (``{"order-1": 1, ...}``); an
  order at version 2 committed two events, versions 1 and 2;
* what a consumer **received** (every delivery, redeliveries included, in arrival order);
* what it **applied** (every effect it wrote, in order).

From them it counts:

=====================  ===================================================================
lost                   committed events never applied (and no longer on their way)
phantom                events received or applied that the source of truth never committed
duplicate deliveries   deliveries beyond the first of each message id (normal: at least once)
duplicate effects      effects beyond the first of each message id (a bug: a double shipment)
order violations       per aggregate, an event applied after a newer one of the same aggregate
in flight              committed events still on their way (in the outbox, or the broker)
=====================  ===================================================================

An event is identified by ``(aggregate id, version)``; a message carries them as its key and
its ``version`` header.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlite_utils

from ..messages import Message

EventKey = tuple[str, int]   # (aggregate id, version)


def event_ref(item: Any) -> tuple[str, str, int]:
    """(message id, aggregate id, version) of a Message, a dict or a 3-tuple."""
    if isinstance(item, Message):
        return item.id, item.key, int(item.headers.get("version", 1))
    if isinstance(item, Mapping):
        aggregate = item.get("order_id", item.get("aggregateid", item.get("key")))
        return item["message_id"] if "message_id" in item else item["id"], aggregate, int(
            item.get("version", 1))
    if isinstance(item, tuple) and len(item) == 3:
        return str(item[0]), str(item[1]), int(item[2])
    raise TypeError(f"expected a Message, a dict with message_id/order_id/version or a "
                    f"(message_id, aggregate_id, version) tuple, got {item!r}")


def _event_key(item: Any) -> EventKey:
    if isinstance(item, tuple) and len(item) == 2:
        return str(item[0]), int(item[1])
    _, aggregate, version = event_ref(item)
    return aggregate, version


@dataclass(frozen=True)
class ConsistencyReport:
    """The counts of one check (and the events behind the first two)."""

    committed: int
    received: int
    applied: int
    lost: int
    phantom: int
    duplicate_deliveries: int
    duplicate_effects: int
    order_violations: int
    in_flight: int
    lost_events: tuple[EventKey, ...] = field(default=(), repr=False)
    phantom_events: tuple[EventKey, ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing phantom, no double effect, nothing out of order."""
        return not (self.lost or self.phantom or self.duplicate_effects
                    or self.order_violations)

    def counts(self) -> dict[str, int]:
        """The counts as a dict (for a table row)."""
        data = asdict(self)
        del data["lost_events"], data["phantom_events"]
        return data


def check_consistency(truth: Mapping[str, int], received: Iterable[Any],
                      applied: Iterable[Any], in_flight: Iterable[Any] = ()) -> ConsistencyReport:
    """Compare the source of truth with what a consumer received and applied.

    ``truth`` maps aggregate id -> committed version. ``received`` and ``applied`` hold
    Messages, dicts (an effects row) or ``(message_id, aggregate_id, version)`` tuples.
    ``in_flight`` holds events still on their way (``(aggregate id, version)`` pairs or the
    same forms): they are not lost yet.
    """
    if not isinstance(truth, Mapping):
        raise TypeError(f"truth must map aggregate id -> version, got {type(truth).__name__}")
    expected = {(aggregate, v) for aggregate, version in truth.items()
                for v in range(1, int(version) + 1)}
    received_refs = [event_ref(item) for item in received]
    applied_refs = [event_ref(item) for item in applied]
    moving = {_event_key(item) for item in in_flight}

    applied_keys = {(a, v) for _, a, v in applied_refs}
    seen_keys = applied_keys | {(a, v) for _, a, v in received_refs}
    lost = sorted(expected - applied_keys - moving)
    phantom = sorted(seen_keys - expected)

    violations = 0
    newest: dict[str, int] = {}
    first_seen: set[str] = set()
    for message_id, aggregate, version in applied_refs:
        if message_id in first_seen:
            continue
        first_seen.add(message_id)
        if version < newest.get(aggregate, 0):
            violations += 1
        newest[aggregate] = max(version, newest.get(aggregate, 0))

    return ConsistencyReport(
        committed=len(expected), received=len(received_refs), applied=len(applied_refs),
        lost=len(lost), phantom=len(phantom),
        duplicate_deliveries=len(received_refs) - len({r[0] for r in received_refs}),
        duplicate_effects=len(applied_refs) - len(first_seen),
        order_violations=violations, in_flight=len(moving & (expected - applied_keys)),
        lost_events=tuple(lost), phantom_events=tuple(phantom))


def truth_from_db(db: sqlite_utils.Database, table: str = "orders",
                  key: str = "order_id") -> dict[str, int]:
    """The source of truth from a service database: aggregate id -> version."""
    if not db[table].exists():
        return {}
    return {row[key]: row.get("version", 1) for row in db[table].rows}
