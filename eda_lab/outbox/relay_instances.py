"""Several relay instances on one outbox: duplicates, reordering, and the leader lease.

A relay is a process, and one process is a single point of failure, so teams run two. What
happens then depends on how the two share the outbox (notebook 04 §9):

* ``competing``: both poll the same unpublished rows. Each reads a batch before the other has
  marked it, so both publish it: **duplicates** (the inbox absorbs them, at a cost).
* ``claiming``: each claims its rows first (``UPDATE ... SET claimed_by`` on rows nobody holds,
  what ``SELECT ... FOR UPDATE SKIP LOCKED`` does in PostgreSQL). No row goes out twice, but
  one order's events may be split across the two instances' batches, and the slower instance
  publishes its older events *after* the newer ones: **reordering**, which an inbox cannot undo.
* ``leader``: one instance holds a lease and publishes; the standby only watches the lease.
  When the leader dies, the lease runs out and the standby takes over from what the table says
  (Eventuate CDC's leader lock, a Kubernetes lease). Order per aggregate holds; a batch the
  leader published but had not marked goes out again (at-least-once, absorbed by the inbox).

The run is a plain loop of rounds, seeded: in each round every live instance reads (claims) a
batch, and the instances' publishes reach the broker in an order drawn from the seed (one of
them was slower: a pause, a slow network).
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import NamedTuple

from .. import _validate as check
from ..db import open_db, transaction
from .table import MESSAGE_COLUMNS, create_outbox, row_to_message, write_event

MODES = ("competing", "claiming", "leader")
MAX_EVENTS = 10_000
LEASE_ROUNDS = 3   # rounds a lease lasts without renewal: a dead leader's lease runs out


class InstancesReport(NamedTuple):
    mode: str
    events: int             # events committed to the outbox
    published: int          # messages that reached the broker
    duplicates: int         # messages published more than once
    order_violations: int   # an event that arrived after a newer one of the same order
    rounds: int


def run_relay_instances(mode: str, *, n_orders: int = 10, events_per_order: int = 3,
                        batch_size: int = 4, seed: int = 0,
                        leader_dies_at_round: int | None = 2) -> InstancesReport:
    """Two relay instances publish one outbox of ``n_orders`` x ``events_per_order`` events
    (the orders' commits interleaved, drawn from ``seed``); what reached the broker, counted.

    ``leader_dies_at_round``: in ``leader`` mode, the leader dies after publishing that round's
    batch and before marking it (None: it never dies).
    """
    check.one_of("mode", mode, MODES)
    check.count("n_orders", n_orders, maximum=MAX_EVENTS)
    check.count("events_per_order", events_per_order, maximum=MAX_EVENTS // n_orders)
    check.count("batch_size", batch_size, maximum=MAX_EVENTS)
    check.seed("seed", seed)
    if leader_dies_at_round is not None:
        check.count("leader_dies_at_round", leader_dies_at_round)
    db = open_db()
    create_outbox(db)
    db.execute('ALTER TABLE "outbox" ADD COLUMN claimed_by TEXT')
    rng = random.Random(f"{seed}:{mode}")
    commits = [n for n in range(1, n_orders + 1) for _ in range(events_per_order)]
    rng.shuffle(commits)   # orders are busy at once; each order's events commit in order
    versions = defaultdict(int)
    with transaction(db) as conn:
        for n in commits:
            versions[n] += 1
            write_event(conn, id=f"order-{n}/v{versions[n]}", aggregatetype="order",
                        aggregateid=f"order-{n}", type="OrderUpdated",
                        payload={"version": versions[n]}, version=versions[n])
    arrived: list[tuple[str, int]] = []
    instances, leader, lease_until, dead = ["relay-a", "relay-b"], "relay-a", LEASE_ROUNDS, set()
    rounds = 0
    while db.execute('SELECT count(*) FROM "outbox" WHERE published_at IS NULL').fetchone()[0]:
        rounds += 1
        if rounds > 10 * MAX_EVENTS:
            raise RuntimeError("relay instances made no progress")  # a bug, not a lesson
        if mode == "leader" and rounds > lease_until:   # the lease ran out: a new holder
            leader = next(i for i in instances if i not in dead)
            lease_until = rounds + LEASE_ROUNDS
        batches = {}
        for name in instances:
            if name in dead or (mode == "leader" and name != leader):
                continue
            batches[name] = _read(db, mode, name, batch_size)
            if mode == "leader":
                lease_until = rounds + LEASE_ROUNDS   # the holder renews as it works
        order = list(batches)
        rng.shuffle(order)   # whose publishes reach the broker first this round
        for name in order:
            arrived.extend((m.key, int(m.headers["version"])) for _, m in batches[name])
            if mode == "leader" and rounds == leader_dies_at_round and name == leader:
                dead.add(name)   # published, died before marking: the standby sends it again
                lease_until = rounds + LEASE_ROUNDS - 1
                continue
            _mark(db, [seq for seq, _ in batches[name]])
    return _count(mode, n_orders * events_per_order, arrived, rounds)


def _read(db, mode: str, name: str, batch_size: int) -> list[tuple[int, object]]:
    with transaction(db) as conn:
        if mode == "claiming":   # take rows nobody holds; others skip them
            conn.execute('UPDATE "outbox" SET claimed_by = ? WHERE seq IN (SELECT seq FROM '
                         '"outbox" WHERE published_at IS NULL AND claimed_by IS NULL '
                         'ORDER BY seq LIMIT ?)', (name, batch_size))
            rows = conn.execute(f'SELECT seq, {MESSAGE_COLUMNS} FROM "outbox" WHERE '
                                "claimed_by = ? AND published_at IS NULL ORDER BY seq",
                                (name,)).fetchall()
        else:
            rows = conn.execute(f'SELECT seq, {MESSAGE_COLUMNS} FROM "outbox" WHERE '
                                "published_at IS NULL ORDER BY seq LIMIT ?",
                                (batch_size,)).fetchall()
    return [(row[0], row_to_message(row[1:])) for row in rows]


def _mark(db, seqs: list[int]) -> None:
    with transaction(db) as conn:
        conn.executemany('UPDATE "outbox" SET published_at = 1 WHERE seq = ?',
                         [(s,) for s in seqs])


def _count(mode: str, events: int, arrived: list[tuple[str, int]],
           rounds: int) -> InstancesReport:
    seen, newest, violations = set(), defaultdict(int), 0
    for key, version in arrived:
        if (key, version) not in seen and version < newest[key]:
            violations += 1
        seen.add((key, version))
        newest[key] = max(newest[key], version)
    return InstancesReport(mode, events, len(arrived), len(arrived) - len(seen), violations,
                           rounds)
