"""The dual write: two separate writes (database, then broker, or the other way round), kept to
show what goes wrong.

Nothing makes the two writes one. Whichever goes first, the process can die, or the second
system can refuse, between them:

* **database, then broker**: the order is committed and the publish never happens (the broker
  was down, the process crashed after the commit). The row is a **zombie record**: saved,
  never announced; inventory, payment and shipping never hear of it.
* **broker, then database**: the event is out and the commit never happens (a constraint
  failed, the process crashed before committing). The event is a **ghost message**: the rest of
  the shop ships an order that does not exist.

``try``/``except`` does not close the gap: a crashed process runs no ``except`` block (here a
:class:`~eda_lab.faults.Crash` is a ``BaseException``), and once a message is published there
is no "unpublish". Retrying the publish helps only while the process lives and the broker
comes back before the retries run out. :mod:`eda_lab.outbox.table` is the fix.

The functions are generic: ``write(conn)`` does the business change inside the local
transaction, and ``points`` names the service's crash points.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import NamedTuple

import sqlite_utils

from ..broker import Broker, BrokerUnavailable
from ..db import transaction
from ..faults import FaultPlan
from ..messages import Message
from ..trace import Trace

Write = Callable[[sqlite3.Connection], object]


class DualWritePoints(NamedTuple):
    """The crash points of one service's write path, by moment."""

    before_commit: str   # the change is written but not committed: a crash rolls it back
    after_commit: str    # committed, the event not yet published
    after_publish: str   # published, the change maybe not yet committed


class Context(NamedTuple):
    """Where a write path reports to: its fault plan, trace, the time, its name."""

    faults: FaultPlan
    trace: Trace
    now: float
    actor: str


def commit_locally(db: sqlite_utils.Database, write: Write, points: DualWritePoints,
                   ctx: Context, message: Message, detail: str) -> None:
    """Run ``write`` in one local transaction, with the before/after-commit crash points."""
    faults, trace = ctx.faults, ctx.trace
    with transaction(db) as conn:
        write(conn)
        faults.check(points.before_commit, trace=trace, now=ctx.now, actor=ctx.actor)
    if trace.enabled:
        trace.add(ctx.now, "db_commit", ctx.actor, key=message.key, message_id=message.id,
                  message_type=message.type, detail=detail)
    faults.check(points.after_commit, trace=trace, now=ctx.now, actor=ctx.actor)


def publish_with_retries(broker: Broker, topic: str, message: Message, retries: int) -> None:
    """Publish, trying again up to ``retries`` times at once while the broker refuses.

    Immediate retries ride out a refusal that lasts one attempt; an outage that lasts longer
    than the retries (or a crash meanwhile) still loses the event.
    """
    for attempt in range(retries + 1):
        try:
            broker.publish(topic, message)
            return
        except BrokerUnavailable:
            if attempt == retries:
                raise


def db_then_publish(db: sqlite_utils.Database, write: Write, broker: Broker, topic: str,
                    message: Message, points: DualWritePoints, ctx: Context, *,
                    retries: int = 0) -> None:
    """Commit the change, then publish. Raises :class:`BrokerUnavailable` *after* the commit
    when the publish fails: the caller learns of a zombie record it can no longer undo."""
    commit_locally(db, write, points, ctx, message, "orders committed; event not yet published")
    publish_with_retries(broker, topic, message, retries)
    ctx.faults.check(points.after_publish, trace=ctx.trace, now=ctx.now, actor=ctx.actor)


def publish_then_db(db: sqlite_utils.Database, write: Write, broker: Broker, topic: str,
                    message: Message, points: DualWritePoints, ctx: Context, *,
                    retries: int = 0) -> None:
    """Publish, then commit the change. A failure to commit leaves a ghost message that
    consumers have already acted on."""
    publish_with_retries(broker, topic, message, retries)
    ctx.faults.check(points.after_publish, trace=ctx.trace, now=ctx.now, actor=ctx.actor)
    commit_locally(db, write, points, ctx, message, "orders committed after the publish")
