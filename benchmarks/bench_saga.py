"""Saga throughput: persisted Create Order sagas per second against raw sqlite3 doing the writes.

Our side runs N happy-path sagas through the real thing: the orchestrator recording each
transition in its saga log before acting, commands and replies through the broker, each
participant running one local transaction per command in its own database file, all on the
simulated clock, trace on (as the notebooks use it). The databases are files (WAL,
synchronous=NORMAL), so every saga is persisted.

The baseline, measured in the same run on the same machine, is raw ``sqlite3`` doing the same
transactions (counted from our run of the same N sagas, not assumed) with the same pragmas, in
the same five files with the same schema and triggers, writing the same rows: each
orchestrator transition with its command in the saga log's outbox, each participant's effect
with its reply in its own outbox, and the relays' marks (stored offset, published rows
deleted), one per batch: the least any implementation that persists these sagas, and sends
nothing it has not committed, has to pay. Everything else on our side (reads, the broker, messages,
the clock, the trace) is the price of the model, and the ratio shows it.
"""

from __future__ import annotations

import gc
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import best_time, report  # noqa: E402

from eda_lab.db import apply_pragmas  # noqa: E402
from eda_lab.saga import SagaRunner  # noqa: E402

N = 1_000
STOCK = {"book": 10**9}
ACCOUNTS = {"alice": 1e12}
ORDERS = [{"order_id": f"order-{i}", "customer": "alice", "sku": "book", "quantity": 1,
           "amount": 1.0} for i in range(N)]
SERVICES = ("order", "inventory", "payment", "shipping", "saga_log")


MAX_BATCH = 100  # a service takes up to 100 waiting messages per wake, as consumers poll
REPEAT = 5


def new_shop(directory: Path) -> SagaRunner:
    return SagaRunner(directory=directory, stock=STOCK, accounts=ACCOUNTS, max_batch=MAX_BATCH)


def count_commits(conns: dict[str, sqlite3.Connection]) -> dict[str, int]:
    """Start counting the commits on each connection; the dict fills in as they happen."""
    commits = dict.fromkeys(conns, 0)
    for name, conn in conns.items():
        conn.set_trace_callback(
            lambda sql, name=name: commits.__setitem__(name, commits[name] + (sql == "COMMIT")))
    return commits


def count_transactions() -> dict[str, int]:
    """Commits in each database, counted on a real run of the N sagas (relays batch)."""
    with tempfile.TemporaryDirectory() as directory:
        runner = new_shop(Path(directory))
        commits = count_commits({**{n: p.db.conn for n, p in runner.participants.items()},
                                 "saga_log": runner.log.db.conn})
        _run(runner)
        assert runner.status(f"saga-{N:04d}") == "completed"
        return commits


def run_sagas() -> float:
    """Seconds for N sagas, started at once and run to completion (set-up not timed)."""
    with tempfile.TemporaryDirectory() as directory:
        runner = new_shop(Path(directory))
        seconds = best_time(lambda: _run(runner), repeat=1)
        assert runner.log.unfinished() == [] and runner.log.count() == N
        assert runner.status(f"saga-{N:04d}") == "completed"
    return seconds


def _run(runner: SagaRunner) -> None:
    for order in ORDERS:
        runner.start(order)
    runner.run()


def run_raw_sqlite(ours: dict[str, int], *, check: bool = False) -> float:
    """Seconds for raw sqlite3 to write what N sagas write, in as many transactions.

    ``check`` counts its commits and asserts they are ours (a trace callback on every
    statement: not for a timed run)."""
    with tempfile.TemporaryDirectory() as directory:
        new_shop(Path(directory))  # the same files and schema, created (not timed)
        conns = {}
        for name in SERVICES:
            conn = sqlite3.connect(Path(directory) / f"{name}.db", isolation_level=None)
            apply_pragmas(conn)
            conns[name] = conn
        commits = count_commits(conns) if check else None
        seconds = best_time(lambda: _raw(conns, ours), repeat=1)
        count = conns["saga_log"].execute("SELECT count(*) FROM sagas").fetchone()[0]
        assert count == N
        assert not check or commits == ours, f"raw sqlite3 committed {commits}, ours {ours}"
        for conn in conns.values():
            conn.close()
    return seconds


def _txn(conn: sqlite3.Connection, *writes: tuple[str, tuple]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for sql, args in writes:
        conn.execute(sql, args)
    conn.execute("COMMIT")


LOG_ROW = ("INSERT INTO saga_log (saga_id, time_ms, transition, step, attempt, command_id, "
           "detail) VALUES (?, ?, ?, ?, ?, ?, ?)")
SAGA_INSERT = ("INSERT INTO sagas (saga_id, definition, order_id, payload, status, step, "
               "direction, attempt, tries, command_id, awaiting, deadline_ms, plan, reason, "
               "started_ms, updated_ms, since_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
SAGA_ROW = ("UPDATE sagas SET status=?, step=?, direction=?, attempt=?, tries=?, command_id=?, "
            "awaiting=?, deadline_ms=?, plan=?, reason=?, updated_ms=?, since_ms=? WHERE saga_id=?")
REPLY_ROW = ("INSERT INTO replies (command_id, saga_id, command_type, reply_type, outcome, "
             "detail, replied_ms) VALUES (?, ?, ?, ?, ?, ?, ?)")
STEPS = ("create_order", "reserve_inventory", "authorize_payment", "schedule_shipping",
         "approve_order")


OUTBOX_ROW = ('INSERT INTO "{table}" (id, aggregatetype, aggregateid, type, payload, version, '
              "created_at, headers) VALUES (?, ?, ?, ?, ?, 1, ?, ?)")
COMMAND_ROW = OUTBOX_ROW.format(table="outbox")
REPLY_OUTBOX_ROW = OUTBOX_ROW.format(table="saga_outbox").replace("INSERT", "INSERT OR IGNORE")
OUTBOXES = {"saga_log": ("outbox", "orchestrator-relay"), **{
    name: ("saga_outbox", f"{name}-relay") for name in ("order", "inventory", "payment",
                                                         "shipping")}}
COMMANDS = ("CreatePendingOrder", "ReserveInventory", "AuthorizePayment", "ScheduleShipping",
            "ApproveOrder")


def _command(s: str, step: str, cid: str, command: str, payload: str) -> tuple[str, tuple]:
    headers = json.dumps({"saga_id": s, "step": step, "direction": "forward", "attempt": "1",
                          "command_id": cid, "try": "1"}, separators=(",", ":"))
    return COMMAND_ROW, (f"{cid}/try-1", "order", s, command, payload, 0.0, headers)


def _answer(s: str, cid: str, command: str, reply: str, detail: str,
            participant: str) -> tuple[tuple[str, tuple], tuple[str, tuple]]:
    """A participant's answer to ``command``, written with its effect: the stored reply and
    the reply's outbox row."""
    headers = json.dumps({"saga_id": s, "command_id": cid, "outcome": "succeeded",
                          "participant": participant}, separators=(",", ":"))
    return ((REPLY_ROW, (cid, s, command, reply, "succeeded", detail, 0.0)),
            (REPLY_OUTBOX_ROW, (f"{cid}/try-1/reply", "order", s, reply,
                                json.dumps({"detail": detail}, separators=(",", ":")), 0.0,
                                headers)))


class _Relays:
    """The relays' marks, as ours make them: after every ``batch`` rows of a database's outbox,
    one transaction stores the relay's position and deletes what every relay has passed."""

    def __init__(self, conns: dict[str, sqlite3.Connection], rows: dict[str, int],
                 marks: dict[str, int]):
        self.conns, self.waiting = conns, dict.fromkeys(conns, 0.0)
        self.batch = {name: rows[name] / marks[name] for name in conns}

    def wrote(self, name: str) -> None:
        self.waiting[name] += 1
        if self.waiting[name] >= self.batch[name] - 1e-9:
            self.waiting[name] -= self.batch[name]
            table, relay = OUTBOXES[name]
            conn, passed = self.conns[name], '(SELECT min(position) FROM "relay_offsets")'
            position = conn.execute(f'SELECT max(lsn) FROM "{table}_log"').fetchone()[0]
            _txn(conn, ('INSERT INTO "relay_offsets" (relay, position) VALUES (?, ?) ON CONFLICT'
                        "(relay) DO UPDATE SET position = excluded.position", (relay, position)),
                 (f'DELETE FROM "{table}" WHERE seq IN (SELECT seq FROM "{table}_log" WHERE '
                  f"lsn <= {passed})", ()),
                 (f'DELETE FROM "{table}_log" WHERE lsn <= {passed}', ()))


# Per saga, by database: the local transactions (the order below), and how many of them write
# an outbox row (the saga log's last transition, `completed`, sends nothing).
EFFECTS = {"order": 2, "inventory": 1, "payment": 1, "shipping": 1, "saga_log": 6}
ROWS = {**EFFECTS, "saga_log": 5}


def _raw(c: dict[str, sqlite3.Connection], ours: dict[str, int]) -> None:
    relays = _Relays(c, {name: rows * N for name, rows in ROWS.items()},
                     {name: ours[name] - EFFECTS[name] * N for name in EFFECTS})

    def txn(name: str, *writes: tuple[str, tuple]) -> None:
        _txn(c[name], *writes)
        if any(sql in (COMMAND_ROW, REPLY_OUTBOX_ROW) for sql, _ in writes):
            relays.wrote(name)

    for n, order in enumerate(ORDERS, 1):
        s, order_id = f"saga-{n:04d}", order["order_id"]
        payload = json.dumps(order, separators=(",", ":"))
        cid = [f"{s}:{step}:do:1" for step in STEPS]
        txn("saga_log", (SAGA_INSERT, (s, "create_order", order_id, json.dumps(order), "running",
                                       0, "forward", 1, 1, cid[0], 1, 1000.0, "[]", "", 0.0,
                                       0.0, 0.0)),
            (LOG_ROW, (s, 0.0, "started", None, None, None, f"for {order_id}")),
            (LOG_ROW, (s, 0.0, "step_sent", STEPS[0], 1, cid[0], COMMANDS[0])),
            _command(s, STEPS[0], cid[0], COMMANDS[0], payload))
        # the participants: one local transaction per command, effect and reply together
        txn("order",
            ("INSERT INTO orders (order_id, customer, sku, quantity, amount, state, version, "
             "saga_id, created_at, updated_at) VALUES (?,?,?,?,?,?,1,?,?,?)",
             (order_id, "alice", "book", 1, 1.0, "PENDING", s, 0.0, 0.0)),
            *_answer(s, cid[0], "CreatePendingOrder", "OrderCreated", f"{order_id} is pending",
                     "order"))
        txn("inventory",
            ("UPDATE stock SET available = available - ? WHERE sku=?", (1, "book")),
            ("INSERT INTO reservations VALUES (?,?,?,?,?)",
             (s, order_id, "book", 1, "RESERVED")),
            *_answer(s, cid[1], "ReserveInventory", "InventoryReserved", "reserved 1 x book",
                     "inventory"))
        txn("payment",
            ("UPDATE accounts SET authorized = authorized + ? WHERE customer=?",
             (1.0, "alice")),
            ("INSERT INTO authorizations VALUES (?,?,?,?,?)",
             (s, order_id, "alice", 1.0, "AUTHORIZED")),
            *_answer(s, cid[2], "AuthorizePayment", "PaymentAuthorized",
                     "authorized 1.00 for alice", "payment"))
        txn("shipping",
            ("INSERT INTO shipments VALUES (?,?,?,?,?)",
             (s, order_id, "book", 1, "SCHEDULED")),
            *_answer(s, cid[3], "ScheduleShipping", "ShippingScheduled",
                     f"delivery of {order_id} booked", "shipping"))
        txn("order",
            ("UPDATE orders SET state=?, saga_id=?, version=?, updated_at=? WHERE order_id=?",
             ("APPROVED", s, 2, 0.0, order_id)),
            *_answer(s, cid[4], "ApproveOrder", "OrderApproved", f"{order_id} approved",
                     "order"))
        for i, step in enumerate(STEPS):  # the orchestrator's five reactions to the replies
            done = i == len(STEPS) - 1
            txn("saga_log",
                (SAGA_ROW, ("completed" if done else "running", i if done else i + 1,
                            "forward", 1, 1, None if done else cid[i + 1], int(not done),
                            None if done else 1000.0, "[]", "", 0.0, 0.0, s)),
                (LOG_ROW, (s, 0.0, "step_succeeded", step, 1, cid[i], "done")),
                (LOG_ROW, (s, 0.0, "completed" if done else "step_sent",
                           None if done else STEPS[i + 1], None if done else 1,
                           None if done else cid[i + 1], "")),
                *(() if done else (_command(s, STEPS[i + 1], cid[i + 1], COMMANDS[i + 1],
                                            payload),)))


if __name__ == "__main__":
    ours = count_transactions()
    run_raw_sqlite(ours, check=True)
    gc.collect()
    gc.freeze()
    saga_times, raw_times = [], []
    for _ in range(REPEAT):  # interleaved, so both sides see the same machine
        saga_times.append(run_sagas())
        raw_times.append(run_raw_sqlite(ours))
    saga_s, raw_s = min(saga_times), min(raw_times)
    report("saga persisted sagas", N / saga_s, "sagas/s",
           "raw sqlite3, same transactions and rows, same pragmas and files", N / raw_s, 0.5,
           sagas=N, transactions_per_saga=round(sum(ours.values()) / N, 2), steps=len(STEPS),
           max_batch=MAX_BATCH)
