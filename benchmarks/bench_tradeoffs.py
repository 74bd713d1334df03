"""Trade-offs: choreographed sagas per second against orchestrated ones, and the agreement run.

1. The same 1,000 Create Order sagas (same orders, same services, same in-memory databases,
   same batches, trace on as in the notebooks) run as a choreography and, as the baseline
   measured in the same run, as an orchestration. The choreography runs the same five local
   transactions per saga, but no saga log and half the messages; the ratio says what that
   saves in this model. Both must end with every saga completed, or nothing is reported.
2. One agreement measurement as notebook 06 and its explorer run it (300 orders through the
   outbox, a polling relay and three consumers, each with its own database and inbox),
   against the baseline of the same orders written by raw ``sqlite3`` into four in-memory
   databases with the same pragmas and the same schema (its DDL read from a write path's own
   databases: the same columns, keys and indexes): the order and its outbox row in one
   transaction, the relay's mark of each batch in one (a batch is what arrives in one poll
   interval: 100 ms / 20 ms = 5 rows), then one effect and one inbox row per consumer, in one
   transaction each, the same values in every column. Both sides make their databases inside
   the timed run (a measurement makes its shop); reads are ours alone.
"""

from __future__ import annotations

import gc
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import best_time, report  # noqa: E402

from eda_lab.db import apply_pragmas  # noqa: E402
from eda_lab.outbox.write_path import TIMINGS, WritePath  # noqa: E402
from eda_lab.saga import SagaRunner  # noqa: E402
from eda_lab.saga.choreography import ChoreographyRunner  # noqa: E402
from eda_lab.shop.lag import CONSUMERS, measure_agreement  # noqa: E402

N = 1_000
ORDERS = [{"order_id": f"order-{i}", "customer": "alice", "sku": "book", "quantity": 1,
           "amount": 1.0} for i in range(N)]
SHOP = {"stock": {"book": 10**9}, "accounts": {"alice": 1e12}, "max_batch": 100}
AGREEMENT_ORDERS = 300
AGREEMENT_POLL_MS = 100.0
REPEAT = 5


def run_sagas(runner_class) -> float:
    runner = runner_class(**SHOP)

    def go():
        for order in ORDERS:
            runner.start(order)
        runner.run()

    seconds = best_time(go, repeat=1)
    statuses = ([runner.status(f"saga-{n:04d}") for n in range(1, N + 1)]
                if runner_class is SagaRunner else list(runner.statuses().values()))
    assert statuses == ["completed"] * N, "every saga must complete"
    return seconds


def run_agreement() -> float:
    def go():
        result = measure_agreement(AGREEMENT_ORDERS, poll_interval_ms=AGREEMENT_POLL_MS)
        assert result.summary()["agreed"] == AGREEMENT_ORDERS

    return best_time(go, repeat=1)


def _schema(db) -> list[str]:
    """The DDL of one of a write path's databases, in the order it was made."""
    return [sql for (sql,) in db.execute(
        "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND name != 'sqlite_sequence' "
        "ORDER BY rowid")]


_TEMPLATE = WritePath("outbox-polling", consumers=CONSUMERS, trace=False)
SERVICE_SCHEMA = _schema(_TEMPLATE.service.db)
CONSUMER_SCHEMA = _schema(next(iter(_TEMPLATE.consumers.values())).db)
RELAY_BATCH = round(AGREEMENT_POLL_MS / TIMINGS.order_interval_ms)  # rows per poll, on average


def run_raw_agreement(*, check: bool = False) -> float:
    """Seconds for raw sqlite3 to write what the agreement run writes (``check``: then count
    the rows it left, not for a timed run). Ids have the length of ours, times are numbers."""
    conns = []

    def go():
        # its four databases are made inside the timed run, as measure_agreement makes its own
        service = sqlite3.connect(":memory:", isolation_level=None)
        readers = [sqlite3.connect(":memory:", isolation_level=None) for _ in CONSUMERS]
        conns[:] = [service, *readers]
        for conn in conns:
            apply_pragmas(conn)
        for sql in SERVICE_SCHEMA:
            service.execute(sql)
        for conn in readers:
            for sql in CONSUMER_SCHEMA:
                conn.execute(sql)
        batch = []
        for i in range(AGREEMENT_ORDERS):
            order_id, now = f"order-{i}", float(i)
            payload = f'{{"order_id":"{order_id}","customer":"ada","amount":25.0}}'
            service.execute("BEGIN IMMEDIATE")
            service.execute("INSERT INTO orders (order_id, customer, sku, quantity, amount, "
                            "state, version, created_at, updated_at) "
                            "VALUES (?, 'ada', NULL, NULL, 25.0, 'PLACED', 1, ?, ?)",
                            (order_id, now, now))
            seq = service.execute(
                'INSERT INTO "outbox" (id, aggregatetype, aggregateid, type, payload, version, '
                "created_at, headers) VALUES (?, 'order', ?, 'OrderPlaced', ?, 1, ?, NULL)",
                (f"e3e70682-{order_id}-v1", order_id, payload, now)).lastrowid
            service.execute("COMMIT")
            batch.append(seq)
            if len(batch) == RELAY_BATCH or i == AGREEMENT_ORDERS - 1:
                service.execute("BEGIN IMMEDIATE")
                service.execute(f'UPDATE "outbox" SET published_at = ? WHERE seq IN '
                                f'({",".join("?" * len(batch))})', (now, *batch))
                service.execute("COMMIT")
                batch = []
        for name, conn in zip(CONSUMERS, readers, strict=True):
            for i in range(AGREEMENT_ORDERS):
                order_id, now = f"order-{i}", float(i)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute('INSERT OR IGNORE INTO "inbox" (consumer, message_id, message_type, '
                             "processed_at) VALUES (?, ?, 'OrderPlaced', ?)",
                             (name, f"e3e70682-{order_id}-v1", now))
                conn.execute("INSERT INTO effects (message_id, order_id, type, version, "
                             "applied_at) VALUES (?, ?, 'OrderPlaced', 1, ?)",
                             (f"e3e70682-{order_id}-v1", order_id, now))
                conn.execute("COMMIT")

    seconds = best_time(go, repeat=1)
    if check:
        service, *readers = conns
        n = AGREEMENT_ORDERS
        assert service.execute("SELECT count(*) FROM orders").fetchone()[0] == n
        assert service.execute('SELECT count(*) FROM "outbox" WHERE published_at IS NOT NULL'
                               ).fetchone()[0] == n
        for conn in readers:
            assert conn.execute('SELECT count(*) FROM "inbox"').fetchone()[0] == n
            assert conn.execute("SELECT count(DISTINCT message_id) FROM effects").fetchone()[0] == n
    return seconds


if __name__ == "__main__":
    run_raw_agreement(check=True)
    gc.collect()
    gc.freeze()
    chor, orch, agreement, raw = [], [], [], []
    for _ in range(REPEAT):  # interleaved, so both sides see the same machine
        chor.append(run_sagas(ChoreographyRunner))
        orch.append(run_sagas(SagaRunner))
        agreement.append(run_agreement())
        raw.append(run_raw_agreement())
    report("choreographed sagas", N / min(chor), "sagas/s",
           "the same sagas orchestrated (SagaRunner), same services, databases and batches",
           N / min(orch), 1.0, sagas=N, max_batch=SHOP["max_batch"])
    report("agreement run", AGREEMENT_ORDERS / min(agreement), "orders/s",
           "raw sqlite3: the same orders, outbox rows, effects and inbox rows, one "
           "transaction each", AGREEMENT_ORDERS / min(raw), 0.2, orders=AGREEMENT_ORDERS,
           consumers=len(CONSUMERS), seconds=round(min(agreement), 3))
