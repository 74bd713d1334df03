"""Two tables for notebook 08: the course's words on real brokers, and on the field's tools.

``BROKER_TERMS`` maps the in-memory broker's words (notebook 02) onto Kafka and Redis Streams.
``ECOSYSTEM_TERMS`` maps each eda_lab name onto Debezium, Kafka Connect and the Kafka client.
They are data (lists of dicts), so the notebook shows them with ``pd.DataFrame`` and a test
checks every course word is there.
"""

from __future__ import annotations

BROKER_TERMS = [
    {"eda_lab (in memory)": "topic",
     "Kafka protocol": "topic",
     "Redis Streams": "one stream per partition: <topic>:0 ... <topic>:n-1"},
    {"eda_lab (in memory)": "partition",
     "Kafka protocol": "partition: an ordered log, one leader; the unit of parallelism",
     "Redis Streams": "a stream (the key picks it with the same murmur2 formula)"},
    {"eda_lab (in memory)": "key",
     "Kafka protocol": "record key: hash(key) % partitions picks the partition",
     "Redis Streams": "a field of the entry; eda_lab hashes it to pick the stream"},
    {"eda_lab (in memory)": "consumer group",
     "Kafka protocol": "consumer group: each partition goes to one member",
     "Redis Streams": "XGROUP CREATE: each entry goes to one member (any member, any stream)"},
    {"eda_lab (in memory)": "committed offset",
     "Kafka protocol": "committed offset per partition (commit after processing)",
     "Redis Streams": "XACK per entry; unacked entries wait in the pending entries list"},
    {"eda_lab (in memory)": "redelivery",
     "Kafka protocol": "a restarted or new member reads from the committed offset (rebalance)",
     "Redis Streams": "XREADGROUP ... 0 rereads own pending; XAUTOCLAIM takes a dead member's"},
    {"eda_lab (in memory)": "dead letter",
     "Kafka protocol": "no broker feature: the consumer publishes to a <topic>.DLT topic",
     "Redis Streams": "no broker feature: XPENDING shows delivery counts; XADD to a DLQ stream, "
                      "then XACK"},
]

ECOSYSTEM_TERMS = [
    {"eda_lab": "outbox table (seq, id, aggregatetype, aggregateid, type, payload)",
     "Debezium": "outbox event router (EventRouter SMT) columns",
     "Kafka Connect": "the source table of a PostgreSQL source connector",
     "Kafka client": "-"},
    {"eda_lab": "CdcRelay",
     "Debezium": "PostgreSQL connector (plugin.name=pgoutput)",
     "Kafka Connect": "a source task",
     "Kafka client": "a producer with acks=all"},
    {"eda_lab": "replication slot (slot=)",
     "Debezium": "slot.name",
     "Kafka Connect": "-",
     "Kafka client": "-"},
    {"eda_lab": "publication (eda_lab_outbox)",
     "Debezium": "publication.name",
     "Kafka Connect": "-",
     "Kafka client": "-"},
    {"eda_lab": "confirmed slot position (send_feedback flush_lsn)",
     "Debezium": "the committed source offset (LSN)",
     "Kafka Connect": "offset.storage.topic, offset.flush.interval.ms",
     "Kafka client": "-"},
    {"eda_lab": "aggregateid as the key",
     "Debezium": "route.by.field / the message key",
     "Kafka Connect": "record key",
     "Kafka client": "ProducerRecord key"},
    {"eda_lab": "PgPollingRelay",
     "Debezium": "-",
     "Kafka Connect": "JDBC source connector (mode=incrementing is the id cursor)",
     "Kafka client": "a producer"},
    {"eda_lab": "PgInboxConsumer (inbox table)",
     "Debezium": "-",
     "Kafka Connect": "a sink task with idempotent writes (upsert)",
     "Kafka client": "a consumer, enable.auto.commit=false, commit after the transaction"},
    {"eda_lab": "KafkaConsumer.commit",
     "Debezium": "-",
     "Kafka Connect": "the sink's committed offsets",
     "Kafka client": "consumer.commit(offsets)"},
    {"eda_lab": "crash point pg_relay.after_publish",
     "Debezium": "connector restart after a crash: at-least-once, duplicates downstream",
     "Kafka Connect": "task restart from the last flushed offset",
     "Kafka client": "-"},
]
