"""A consumer with an inbox in its own PostgreSQL database: duplicates change nothing.

The broker delivers at least once (a relay that died before confirming publishes again; a
consumer that died before committing its offset reads again), so the consumer records each
message id in an ``inbox`` table **in the same local transaction** as the effect it causes.
``INSERT ... ON CONFLICT DO NOTHING`` is the check and the claim in one statement: a
redelivered id inserts nothing, and its effect is skipped. Only after that transaction
committed does the consumer commit its offset (Kafka) or XACK (Redis): a crash in between
redelivers a message whose id is already in the inbox.

A batch of records is one transaction (all effects and inbox rows, or none): fewer commits,
the same guarantee. The effect here is a row in ``effects`` (think "shipment prepared"), in the
order applied, so the checks can count duplicate effects and order per key.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import _validate as check
from ..outbox import ConsistencyReport, check_consistency
from .brokers import BrokerConsumer, Record
from .pg_outbox import now_ms
from .postgres import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    consumer text NOT NULL,
    message_id text NOT NULL,
    message_type text NOT NULL,
    processed_at double precision NOT NULL,
    PRIMARY KEY (consumer, message_id)
);
CREATE TABLE IF NOT EXISTS effects (
    seq bigserial PRIMARY KEY,
    consumer text NOT NULL,
    message_id text NOT NULL,
    order_id text NOT NULL,
    version integer NOT NULL,
    type text NOT NULL,
    applied_at double precision NOT NULL
);
"""


class PgInboxConsumer:
    """Reads records from ``consumer`` and applies each message once, in its own database."""

    def __init__(self, dsn: str, consumer: BrokerConsumer, *, name: str = "shipping"):
        if not callable(getattr(consumer, "poll", None)):
            raise TypeError(f"consumer must be a broker consumer (broker.consumer(group, "
                            f"topic)), got {consumer!r}")
        check.name("name", name)
        self.dsn = dsn
        self.consumer = consumer
        self.name = name
        self.conn = connect(dsn)
        with self.conn, self.conn.cursor() as cur:
            cur.execute(SCHEMA)
        self.received: list[tuple[str, str, int]] = []   # every delivery, in arrival order
        self.duplicates = 0                             # deliveries the inbox dropped
        self.lags_ms: list[float] = []                  # applied_at - created_at

    def handle(self, records: Sequence[Record]) -> int:
        """Apply ``records`` in one transaction, skipping ids already in the inbox; then
        commit them to the broker. Returns how many took effect."""
        if not records:
            return 0
        applied = 0
        now = now_ms()
        messages = [record.message() for record in records]
        with self.conn, self.conn.cursor() as cur:
            for message in messages:
                version = int(message.headers.get("version", 1))
                self.received.append((message.id, message.key, version))
                cur.execute("INSERT INTO inbox (consumer, message_id, message_type, "
                            "processed_at) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                            (self.name, message.id, message.type, now))
                if cur.rowcount == 0:
                    self.duplicates += 1
                    continue
                cur.execute("INSERT INTO effects (consumer, message_id, order_id, version, "
                            "type, applied_at) VALUES (%s, %s, %s, %s, %s, %s)",
                            (self.name, message.id, message.key, version, message.type, now))
                applied += 1
                self.lags_ms.append(now - message.timestamp)
        self.consumer.commit(records)      # only after the effects are durable
        return applied

    def poll_once(self, max_records: int = 500, timeout_s: float = 0.2) -> int:
        """Read one batch and handle it; returns how many records were read."""
        check.count("max_records", max_records)
        check.number("timeout_s", timeout_s, minimum=0, unit="seconds")
        records = self.consumer.poll(max_records, timeout_s)
        self.handle(records)
        return len(records)

    def applied(self) -> list[tuple[str, str, int]]:
        """Every effect this consumer wrote, in the order it wrote them."""
        with self.conn, self.conn.cursor() as cur:
            cur.execute("SELECT message_id, order_id, version FROM effects WHERE consumer = %s "
                        "ORDER BY seq", (self.name,))
            return cur.fetchall()

    def applied_count(self) -> int:
        with self.conn, self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM effects WHERE consumer = %s", (self.name,))
            return cur.fetchone()[0]

    def check(self, truth: dict[str, int]) -> ConsistencyReport:
        """The checks of notebooks 04 and 07 on what this consumer received and applied."""
        return check_consistency(truth, self.received, self.applied())

    def close(self) -> None:
        if not self.conn.closed:
            self.conn.close()

    def __repr__(self) -> str:
        return (f"PgInboxConsumer({self.name!r}, received={len(self.received)}, "
                f"duplicates dropped={self.duplicates})")
