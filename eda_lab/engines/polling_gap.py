"""The polling gap, for real: two concurrent PostgreSQL transactions commit out of seq order.

Notebook 04 modelled it in SQLite (one writer at a time, so the interleaving had to be
scripted). Here it happens by itself. Writer A inserts first and takes ``seq`` 1 from the
sequence; writer B inserts next, takes ``seq`` 2, and commits first. Between the two commits
three relays poll:

* the **id cursor** (:class:`~.polling_relay.IdCursorRelay`) sees row 2, moves its cursor to 2
  and never asks for row 1 again: committed, never published, and no error anywhere;
* the **published_at flag** (:class:`~.polling_relay.PgPollingRelay`) asks for unpublished
  rows each time and finds row 1 on its next poll;
* the **replication slot** (:class:`~.cdc_relay.CdcRelay`) receives whole transactions in
  *commit* order (B, then A) and so reads both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .. import _validate as check
from .brokers import BrokerClient
from .cdc_relay import CdcRelay
from .pg_outbox import AGGREGATE_TYPE, OUTBOX_TABLE, install_outbox, now_ms
from .polling_relay import IdCursorRelay, PgPollingRelay
from .postgres import PostgresCluster, connect

DATABASE = "eda_lab_gap"
SLOT = "eda_lab_gap"
READERS = ("id cursor", "published_at flag", "replication slot")


@dataclass
class PollingGapRun:
    """What each reader published at each step, and what it never published."""

    steps: list[dict] = field(default_factory=list)
    published: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)


def _insert(conn, aggregate: str) -> int:
    cur = conn.cursor()
    cur.execute(f"INSERT INTO {OUTBOX_TABLE} (id, aggregatetype, aggregateid, type, payload, "
                "version, created_at) VALUES (%s, %s, %s, 'OrderPlaced', %s, 1, %s) "
                "RETURNING seq", (f"gap-{aggregate}-v1", AGGREGATE_TYPE, aggregate,
                                  json.dumps({"order_id": aggregate}), now_ms()))
    return cur.fetchone()[0]


def run_polling_gap(postgres: PostgresCluster, broker: BrokerClient, *,
                    topic: str = "gap") -> PollingGapRun:
    """Play the interleaving on the emptied database ``eda_lab_gap`` (seq starts at 1); the three readers publish to
    ``<topic>-cursor``, ``<topic>-flag`` and ``<topic>-slot`` on ``broker``."""
    check.name("topic", topic)
    dsn = postgres.empty_database(DATABASE)
    install_outbox(dsn, slot=SLOT)
    for suffix in ("cursor", "flag", "slot"):
        broker.create_topic(f"{topic}-{suffix}", 1)
    readers = {
        "id cursor": IdCursorRelay(dsn, broker, topic=f"{topic}-cursor", name="cursor"),
        "published_at flag": PgPollingRelay(dsn, broker, topic=f"{topic}-flag", name="flag"),
        "replication slot": CdcRelay(dsn, broker, topic=f"{topic}-slot", slot=SLOT),
    }
    run = PollingGapRun(published={name: [] for name in READERS})
    writer_a, writer_b = connect(dsn), connect(dsn)
    seqs = {}

    def poll(step: str) -> None:
        row = {"step": step}
        for name, relay in readers.items():
            if isinstance(relay, CdcRelay):
                # the slot sends a transaction once it committed; wait for it, briefly
                published = relay.poll_once(timeout_s=5.0)
            else:
                published = relay.poll_once()
            keys = relay.last_batch if published else []
            run.published[name] += keys
            row[name] = ", ".join(keys) or "-"
        run.steps.append(row)

    try:
        seqs["order-A"] = _insert(writer_a, "order-A")
        run.steps.append({"step": f"A inserts order-A (takes seq {seqs['order-A']})"})
        seqs["order-B"] = _insert(writer_b, "order-B")
        run.steps.append({"step": f"B inserts order-B (takes seq {seqs['order-B']})"})
        writer_b.commit()
        run.steps.append({"step": "B commits"})
        poll("every relay polls")
        writer_a.commit()
        run.steps.append({"step": "A commits"})
        poll("every relay polls again")
    finally:
        writer_a.close()
        writer_b.close()
        for relay in readers.values():
            relay.close()
    for row in run.steps:
        for name in READERS:
            row.setdefault(name, "")
    run.skipped = {name: sorted(set(seqs) - set(keys)) for name, keys in run.published.items()}
    return run
