"""Notebook 08: the same outbox, CDC relay and inbox on PostgreSQL and real brokers.

Nothing here starts a server until asked, and importing ``eda_lab.engines`` needs none of the
drivers (psycopg2, confluent-kafka, redis; the ``engines`` extra, part of ``lab``): names are
loaded on first use. It builds on the foundation and on :mod:`eda_lab.outbox` (whose checks
judge the runs) only. Reading order:

1. :mod:`.processes` and :mod:`.errors`: servers started and stopped by their own pid; errors
   that say what to do. :mod:`.availability` says what can run here without starting anything.
2. :mod:`.postgres`: a throwaway cluster with ``wal_level=logical`` (or ``EDA_LAB_PG_DSN``).
3. :mod:`.brokers`: the small broker interface; :mod:`.kafka` (Tansu + confluent-kafka) and
   :mod:`.redis_streams` (redis-server + redis) implement it. :mod:`.glossary` maps the words.
4. :mod:`.pg_outbox`: the outbox table and the order service, as in SQLite.
5. :mod:`.slots`, :mod:`.pgoutput`, :mod:`.cdc_relay`: the replication slot, its messages, and
   the relay that confirms a position only after the broker acknowledged.
6. :mod:`.polling_relay` and :mod:`.polling_gap`: the comparison, and its gap for real.
7. :mod:`.pg_consumer`: the inbox in the consumer's own database.
8. :mod:`.relay_process`, :mod:`.lab`, :mod:`.experiments`: a relay to SIGKILL, every engine in
   one call, and the experiments of the notebook.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "EngineError": "errors", "EngineUnavailable": "errors", "PortInUse": "errors",
    "BrokerDown": "errors", "SlotExists": "errors", "SlotInUse": "errors",
    "ServerProcess": "processes", "free_port": "processes",
    "PostgresCluster": "postgres", "start_postgres": "postgres", "connect": "postgres",
    "Ack": "brokers", "Record": "brokers", "record_to_message": "brokers",
    "KafkaBroker": "kafka", "KafkaServer": "kafka", "start_kafka": "kafka",
    "RedisStreamsBroker": "redis_streams", "RedisServer": "redis_streams",
    "start_redis": "redis_streams",
    "BROKER_TERMS": "glossary", "ECOSYSTEM_TERMS": "glossary",
    "PgOrderService": "pg_outbox", "install_outbox": "pg_outbox",
    "create_slot": "slots", "ensure_slot": "slots", "drop_slot": "slots",
    "slot_status": "slots",
    "CdcRelay": "cdc_relay",
    "PgPollingRelay": "polling_relay", "IdCursorRelay": "polling_relay",
    "run_polling_gap": "polling_gap",
    "PgInboxConsumer": "pg_consumer",
    "RelayProcess": "relay_process",
    "Engines": "lab", "start_engines": "lab",
    "missing": "availability",
    "run_end_to_end": "experiments", "run_relay_kills": "experiments",
    "percentile": "experiments",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name not in _NAMES:
        raise AttributeError(f"module 'eda_lab.engines' has no attribute {name!r}")
    try:
        module = importlib.import_module(f".{_NAMES[name]}", __name__)
    except ModuleNotFoundError as error:
        from .availability import DRIVERS, INSTALL

        if error.name not in DRIVERS.values():
            raise
        raise ModuleNotFoundError(f"eda_lab.engines.{name} needs the Python package "
                                  f"{error.name}, which is not installed; it comes with "
                                  f"{INSTALL}", name=error.name) from None
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
