"""Trade-offs: choreographed sagas per second against orchestrated ones, and the agreement run.

1. The same 1,000 Create Order sagas (same orders, same services, same in-memory databases,
   same batches, trace on as in the notebooks) run as a choreography and, as the baseline
   measured in the same run, as an orchestration. The choreography runs the same five local
   transactions per saga, but no saga log and half the messages; the ratio says what that
   saves in this model. Both must end with every saga completed, or nothing is reported.
2. One agreement measurement as notebook 06 and its explorer run it (300 orders through the
   outbox, a polling relay and three consumers, each with its own database and inbox),
   against the baseline of the same orders written by raw ``sqlite3`` into four in-memory
   databases with the same pragmas: the order and its outbox row in one transaction, then
   one effect and one inbox row per consumer, in one transaction each. Both sides make their
   databases inside the timed run (a measurement makes its shop).
"""

from __future__ import annotations

import gc
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import best_time, report  # noqa: E402

from eda_lab.db import apply_pragmas  # noqa: E402
from eda_lab.saga import SagaRunner  # noqa: E402
from eda_lab.saga.choreography import ChoreographyRunner  # noqa: E402
from eda_lab.shop.lag import CONSUMERS, measure_agreement  # noqa: E402

N = 1_000
ORDERS = [{"order_id": f"order-{i}", "customer": "alice", "sku": "book", "quantity": 1,
           "amount": 1.0} for i in range(N)]
SHOP = {"stock": {"book": 10**9}, "accounts": {"alice": 1e12}, "max_batch": 100}
AGREEMENT_ORDERS = 300
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
        result = measure_agreement(AGREEMENT_ORDERS, poll_interval_ms=100)
        assert result.summary()["agreed"] == AGREEMENT_ORDERS

    return best_time(go, repeat=1)


def run_raw_agreement() -> float:
    def go():
        # its four databases are made inside the timed run, as measure_agreement makes its own
        service = sqlite3.connect(":memory:", isolation_level=None)
        readers = [sqlite3.connect(":memory:", isolation_level=None) for _ in CONSUMERS]
        for conn in [service, *readers]:
            apply_pragmas(conn)
        service.execute("CREATE TABLE orders (order_id TEXT PRIMARY KEY, created_at REAL)")
        service.execute("CREATE TABLE outbox (seq INTEGER PRIMARY KEY, id TEXT, payload TEXT, "
                        "published_at REAL)")
        for conn in readers:
            conn.execute("CREATE TABLE effects (n INTEGER PRIMARY KEY, order_id TEXT, "
                         "applied_at REAL)")
            conn.execute("CREATE TABLE inbox (message_id TEXT PRIMARY KEY)")
        for i in range(AGREEMENT_ORDERS):
            order_id = f"order-{i}"
            service.execute("BEGIN IMMEDIATE")
            service.execute("INSERT INTO orders VALUES (?, ?)", (order_id, float(i)))
            service.execute("INSERT INTO outbox (id, payload) VALUES (?, ?)", (order_id, "{}"))
            service.execute("COMMIT")
        service.execute("UPDATE outbox SET published_at = 1")
        for conn in readers:
            for i in range(AGREEMENT_ORDERS):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO inbox VALUES (?)", (f"order-{i}",))
                conn.execute("INSERT INTO effects (order_id, applied_at) VALUES (?, ?)",
                             (f"order-{i}", float(i)))
                conn.execute("COMMIT")

    return best_time(go, repeat=1)


if __name__ == "__main__":
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
