"""The outbox on real engines: PostgreSQL (durable, fsync on), Tansu and Redis, started here.

Two kinds of measurement, each beside a baseline measured in the same run on the same servers:

1. **end to end, orders/s**: ``run_end_to_end`` (the order service, the CDC relay on a
   replication slot, the broker, a consumer with an inbox in its own database, all eda_lab)
   against a raw loop with psycopg2 and confluent-kafka / redis and no eda_lab doing the same
   writes and publishes: one writer thread (order + outbox row in one transaction; about one
   order in three changed again, with its event), one relay thread (select the next rows by
   seq, publish them, wait for the acks), one consumer thread (inbox and effect rows in one
   transaction, then the offset commit / XACK). The clock runs from the first write until the
   consumer applied the last event. Target ratio: 0.7.
2. **commit-to-publish lag**, p50 and p99: the CDC relay against the polling relay (polling
   every 50 ms), orders arriving at 200 per second. Lower is better; the ratio is CDC / polling.

The servers are started once; every run gets empty databases and a fresh topic. The sides
alternate and the best of a few runs counts (a busy machine slows both alike).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import report  # noqa: E402

from eda_lab.engines import percentile, run_end_to_end, start_engines  # noqa: E402

ORDERS = 1_000
LAG_ORDERS = 600
LAG_RATE_PER_S = 200.0
REPEAT = 3
CUSTOMERS = ("ada", "grace", "alan", "edsger", "barbara")
_runs = iter(range(1, 10_000))

SCHEMA = """
CREATE TABLE orders (order_id text PRIMARY KEY, customer text NOT NULL,
    amount double precision NOT NULL, status text NOT NULL, version integer NOT NULL,
    created_at double precision NOT NULL, updated_at double precision NOT NULL);
CREATE TABLE outbox (seq bigserial PRIMARY KEY, id text NOT NULL UNIQUE,
    aggregatetype text NOT NULL, aggregateid text NOT NULL, type text NOT NULL,
    payload jsonb NOT NULL, version integer NOT NULL, created_at double precision NOT NULL,
    published_at double precision);
"""
INBOX = """
CREATE TABLE inbox (consumer text, message_id text, message_type text,
    processed_at double precision, PRIMARY KEY (consumer, message_id));
CREATE TABLE effects (seq bigserial PRIMARY KEY, consumer text, message_id text,
    order_id text, version integer, type text, applied_at double precision);
"""


def raw_end_to_end(engines, broker: str, n_orders: int) -> float:
    """Orders per second through a hand-written pipeline: psycopg2 + the broker's own client."""
    import psycopg2
    import redis as redis_client
    from confluent_kafka import Consumer, Producer, TopicPartition

    n = next(_runs)
    dsn = engines.postgres.create_database(f"raw_{broker}", fresh=True)
    inbox_dsn = engines.postgres.create_database(f"raw_{broker}_inbox", fresh=True)
    for target, ddl in ((dsn, SCHEMA), (inbox_dsn, INBOX)):
        conn = psycopg2.connect(target)
        with conn, conn.cursor() as cur:
            cur.execute(ddl)
        conn.close()
    topic = f"raw-{broker}-{n}"
    engines.broker(broker).create_topic(topic, 3)
    server = engines.servers[broker]
    done = threading.Event()
    written = [0, False]

    def write() -> None:
        rng = random.Random(0)
        conn = psycopg2.connect(dsn)
        for i in range(1, n_orders + 1):
            now = time.time() * 1000
            order_id = f"order-{i}"
            with conn, conn.cursor() as cur:
                cur.execute("INSERT INTO orders VALUES (%s, %s, %s, 'placed', 1, %s, %s)",
                            (order_id, rng.choice(CUSTOMERS), float(rng.randint(5, 120)), now,
                             now))
                cur.execute("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload, "
                            "version, created_at) VALUES (%s, 'order', %s, 'OrderPlaced', %s, 1, "
                            "%s)", (f"raw-{order_id}-v1", order_id,
                                    json.dumps({"order_id": order_id}), now))
            written[0] += 1
            if rng.random() < 1 / 3:
                target = f"order-{rng.randint(max(1, i - 5), i)}"
                with conn, conn.cursor() as cur:
                    cur.execute("UPDATE orders SET version = version + 1, status = 'confirmed' "
                                "WHERE order_id = %s RETURNING version", (target,))
                    version = cur.fetchone()[0]
                    cur.execute("INSERT INTO outbox (id, aggregatetype, aggregateid, type, "
                                "payload, version, created_at) VALUES (%s, 'order', %s, "
                                "'OrderConfirmed', %s, %s, %s)",
                                (f"raw-{target}-v{version}", target,
                                 json.dumps({"order_id": target}), version, now))
                written[0] += 1
        written[1] = True
        conn.close()

    def relay() -> None:
        conn = psycopg2.connect(dsn)
        producer = (Producer({"bootstrap.servers": server.bootstrap, "acks": "all",
                              "linger.ms": 1}) if broker == "kafka" else None)
        client = redis_client.Redis.from_url(server.url) if broker == "redis" else None
        last = 0
        while not done.is_set():
            with conn, conn.cursor() as cur:
                cur.execute("SELECT seq, id, aggregateid, type, payload::text, version FROM "
                            "outbox WHERE seq > %s ORDER BY seq LIMIT 500", (last,))
                rows = cur.fetchall()
            if not rows:
                time.sleep(0.001)
                continue
            if producer is not None:
                for _seq, id_, key, type_, payload, version in rows:
                    producer.produce(topic, payload.encode(), key.encode(),
                                     headers=[("id", id_), ("type", type_),
                                              ("version", str(version))])
                producer.flush(10)
            else:
                pipe = client.pipeline(transaction=False)
                for _seq, id_, key, type_, payload, version in rows:
                    pipe.xadd(f"{topic}:0", {"key": key, "value": payload, "h:id": id_,
                                             "h:type": type_, "h:version": str(version)})
                pipe.execute()
            last = rows[-1][0]
        conn.close()

    def consume() -> None:
        conn = psycopg2.connect(inbox_dsn)
        applied = 0
        if broker == "kafka":
            consumer = Consumer({"bootstrap.servers": server.bootstrap, "group.id": topic,
                                 "enable.auto.commit": False, "auto.offset.reset": "earliest",
                                 "fetch.wait.max.ms": 10})
            consumer.assign([TopicPartition(topic, p) for p in range(3)])
        else:
            client = redis_client.Redis.from_url(server.url)
            client.xgroup_create(f"{topic}:0", "g", id="0", mkstream=True)
        while not (written[1] and applied >= written[0]):
            if broker == "kafka":
                batch = [m for m in consumer.consume(500, 0.05) if m.error() is None]
                items = [(dict((k, v.decode()) for k, v in m.headers()), m.key().decode())
                         for m in batch]
            else:
                reply = client.xreadgroup("g", "c", {f"{topic}:0": ">"}, count=500, block=50)
                batch = [entry for _, entries in reply or [] for entry in entries]
                items = [({k.decode()[2:]: v.decode() for k, v in fields.items()
                           if k.startswith(b"h:")}, fields[b"key"].decode())
                         for _, fields in batch]
            if not batch:
                continue
            now = time.time() * 1000
            with conn, conn.cursor() as cur:
                for headers, key in items:
                    cur.execute("INSERT INTO inbox VALUES ('c', %s, %s, %s) ON CONFLICT DO "
                                "NOTHING", (headers["id"], headers["type"], now))
                    if cur.rowcount:
                        cur.execute("INSERT INTO effects (consumer, message_id, order_id, "
                                    "version, type, applied_at) VALUES ('c', %s, %s, %s, %s, "
                                    "%s)", (headers["id"], key, int(headers["version"]),
                                            headers["type"], now))
                        applied += 1
            if broker == "kafka":
                consumer.commit(asynchronous=False)
            else:
                client.xack(f"{topic}:0", "g", *[entry_id for entry_id, _ in batch])
        conn.close()
        if broker == "kafka":
            consumer.close()

    threads = [threading.Thread(target=f) for f in (relay, consume)]
    writer = threading.Thread(target=write)
    start = time.perf_counter()
    for thread in (*threads, writer):
        thread.start()
    threads[1].join()
    seconds = time.perf_counter() - start
    done.set()
    threads[0].join()
    writer.join()
    return n_orders / seconds


def main() -> None:
    engines = start_engines(durable=True)
    try:
        for broker in engines.brokers:
            ours = baseline = 0.0
            for _ in range(REPEAT):
                run = run_end_to_end(engines, broker, relay="cdc", n_orders=ORDERS, seed=0,
                                     batch_size=500)
                assert run.report.ok and run.report.lost == 0, run.report
                ours = max(ours, run.orders_per_s)
                baseline = max(baseline, raw_end_to_end(engines, broker, ORDERS))
            report(f"end to end on PostgreSQL + {broker}: outbox, CDC relay, inbox", ours,
                   "orders/s", f"raw psycopg2 + {'confluent-kafka' if broker == 'kafka' else 'redis'}"
                   " loop, same writes and publishes", baseline, 0.7)
        for broker in engines.brokers:
            lags = {}
            for relay in ("cdc", "polling"):
                run = run_end_to_end(engines, broker, relay=relay, n_orders=LAG_ORDERS,
                                     rate_per_s=LAG_RATE_PER_S, poll_interval_s=0.05, seed=1)
                lags[relay] = run.relay_lags_ms
            for q in (50, 99):
                report(f"commit-to-publish lag p{q}, CDC relay ({broker})",
                       percentile(lags["cdc"], q), "ms",
                       "polling relay, 50 ms interval", percentile(lags["polling"], q), 0.5,
                       better="lower", orders_per_s=LAG_RATE_PER_S)
    finally:
        engines.stop()


if __name__ == "__main__":
    main()
