"""One broker interface, two brokers: the same contract on the Kafka protocol and Redis
Streams (acks, keys to partitions, groups, committed offsets, redelivery), and what each does
on its own (Kafka's rebalance, Redis's XAUTOCLAIM)."""

from __future__ import annotations

import itertools

import pytest
from engines_support import shared_engines

from eda_lab.partitioning import partition_for

pytestmark = pytest.mark.engines
BROKERS = ["kafka", "redis"]
_names = itertools.count(1)


@pytest.fixture(scope="session")
def engines(request):
    return shared_engines(request)


def fresh_topic(client, partitions: int = 3) -> str:
    topic = f"contract-{client.kind}-{next(_names)}"
    client.create_topic(topic, partitions)
    return topic


def consumer(client, group: str, topic: str, name: str | None = None):
    options = {"join_group": False} if client.kind == "kafka" else {}
    return client.consumer(group, topic, name, **options)


def read_all(member, expected: int, polls: int = 40) -> list:
    records = []
    for _ in range(polls):
        records += member.poll(100, 0.1)
        if len(records) >= expected:
            break
    return records


@pytest.mark.parametrize("kind", BROKERS)
def test_a_key_lands_on_the_partition_kafkas_formula_gives(engines, kind):
    client = engines.broker(kind)
    topic = fresh_topic(client, 3)
    acks = client.publish_batch([(topic, f"order-{i}", b"{}", {"id": str(i)})
                                 for i in range(30)])
    assert [a.partition for a in acks] == [partition_for(f"order-{i}", 3) for i in range(30)]
    assert all(a.topic == topic and a.key == f"order-{i}" for i, a in enumerate(acks))


@pytest.mark.parametrize("kind", BROKERS)
def test_records_keep_key_value_headers_and_order_per_key(engines, kind):
    client = engines.broker(kind)
    topic = fresh_topic(client)
    sent = [(topic, f"order-{i % 4}", f'{{"n": {i}}}'.encode(), {"id": f"m{i}", "type": "X"})
            for i in range(20)]
    client.publish_batch(sent)
    records = read_all(consumer(client, "g", topic), 20)
    assert sorted(r.headers["id"] for r in records) == sorted(f"m{i}" for i in range(20))
    for key in {s[1] for s in sent}:
        mine = [int(r.headers["id"][1:]) for r in records if r.key == key]
        assert mine == sorted(mine), f"{key} out of order: {mine}"
    assert {r.value for r in records} == {s[2] for s in sent}


@pytest.mark.parametrize("kind", BROKERS)
def test_a_committed_record_is_not_delivered_again_an_uncommitted_one_is(engines, kind):
    client = engines.broker(kind)
    topic = fresh_topic(client, 1)
    client.publish_batch([(topic, "order-1", b"{}", {"id": f"m{i}"}) for i in range(6)])
    first = consumer(client, "shipping", topic, "member-1")
    records = read_all(first, 6)
    first.commit(records[:4])          # processed 4, then the member dies
    first.close()
    again = read_all(consumer(client, "shipping", topic, "member-1"), 2)
    assert [r.headers["id"] for r in again] == ["m4", "m5"]


@pytest.mark.parametrize("kind", BROKERS)
def test_publish_checks_its_arguments_before_sending(engines, kind):
    client = engines.broker(kind)
    topic = fresh_topic(client, 1)
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        client.publish(topic, "", b"{}")
    with pytest.raises(TypeError, match="value must be bytes"):
        client.publish(topic, "order-1", "text")
    with pytest.raises(TypeError, match="headers must map str to str"):
        client.publish(topic, "order-1", b"{}", {"version": 1})
    with pytest.raises(ValueError, match="partitions must be an integer >= 1 and <= 64"):
        client.create_topic("other", 0)


def test_kafka_group_members_split_the_partitions_and_rebalance_when_one_leaves(engines):
    client = engines.broker("kafka")
    topic = fresh_topic(client, 4)
    group = f"{topic}-group"
    a = client.consumer(group, topic, "a")
    a.wait_for_assignment()
    b = client.consumer(group, topic, "b")
    for _ in range(200):               # both must poll for the rebalance to complete
        a.poll(10, 0.05)
        b.poll(10, 0.05)
        if a.assigned and b.assigned and len(a.assigned) + len(b.assigned) == 4:
            break
    assert sorted(a.assigned + b.assigned) == [0, 1, 2, 3] and a.assigned and b.assigned
    b.close()
    for _ in range(200):
        a.poll(10, 0.05)
        if a.assigned == [0, 1, 2, 3]:
            break
    assert a.assigned == [0, 1, 2, 3] and a.rebalances >= 2


def test_redis_claims_a_dead_members_pending_entries(engines):
    client = engines.broker("redis")
    topic = fresh_topic(client, 2)
    client.publish_batch([(topic, f"order-{i}", b"{}", {"id": f"m{i}"}) for i in range(5)])
    dead = client.consumer("shipping", topic, "dead")
    taken = read_all(dead, 5)
    assert len(taken) == 5 and dead.pending() == 5      # delivered, never acked: it died
    alive = client.consumer("shipping", topic, "alive")
    assert alive.poll(10, 0.05) == []                   # new entries only: none
    assert alive.claim_stale(min_idle_ms=10_000) == []  # not idle long enough yet
    claimed = alive.claim_stale(min_idle_ms=0)
    assert sorted(r.headers["id"] for r in claimed) == [f"m{i}" for i in range(5)]
    alive.commit(claimed)
    assert alive.pending() == 0


def test_the_notebook_tables_map_every_broker_word_onto_both_brokers():
    from eda_lab.engines import BROKER_TERMS, ECOSYSTEM_TERMS

    words = [row["eda_lab (in memory)"] for row in BROKER_TERMS]
    assert words == ["topic", "partition", "key", "consumer group", "committed offset",
                     "redelivery", "dead letter"]
    assert all(row["Kafka protocol"] and row["Redis Streams"] for row in BROKER_TERMS)
    names = " ".join(row["eda_lab"] for row in ECOSYSTEM_TERMS)
    for name in ("CdcRelay", "PgPollingRelay", "PgInboxConsumer", "replication slot"):
        assert name in names
    assert all(set(row) == {"eda_lab", "Debezium", "Kafka Connect", "Kafka client"}
               for row in ECOSYSTEM_TERMS)
