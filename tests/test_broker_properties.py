"""Property: whatever happens (publishes, polls, commits, crashes, joins, leaves, lossy
deliveries), every group gets every message at least once, nothing is lost, and each key's
messages are first seen in the order they were published."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab import Broker, BrokerError, Clock, FaultPlan, Trace, event

GROUPS = ("shipping", "analytics")
KEYS = ("order-1", "order-2", "order-3", "order-4", "order-5")

ops = st.lists(st.one_of(
    st.tuples(st.just("publish"), st.sampled_from(KEYS)),
    st.tuples(st.just("poll"), st.integers(0, 5), st.integers(1, 6)),
    st.tuples(st.just("commit"), st.integers(0, 5)),
    st.tuples(st.just("commit_one"), st.integers(0, 5)),
    st.tuples(st.just("crash"), st.integers(0, 5)),
    st.tuples(st.just("leave"), st.integers(0, 5)),
    st.tuples(st.just("join"), st.sampled_from(GROUPS)),
    st.tuples(st.just("advance"), st.integers(1, 300)),
), max_size=80)


@settings(max_examples=150, deadline=None)
@given(ops=ops, partitions=st.integers(1, 4), seed=st.integers(0, 1000),
       drop=st.sampled_from([0.0, 0.2]), duplicate=st.sampled_from([0.0, 0.2]),
       delay=st.sampled_from([0.0, 0.3]))
def test_every_group_gets_every_message_in_order_per_key(ops, partitions, seed, drop,
                                                           duplicate, delay):
    faults = FaultPlan({"broker.drop": drop, "broker.duplicate": duplicate,
                        "broker.delay": delay}, seed=seed)
    broker = Broker(Clock(), Trace(), faults, delay_ms=200)
    broker.create_topic("orders", partitions)
    for group in GROUPS:
        broker.subscribe(group, "orders")
    consumers = []
    published: dict[str, list[str]] = {k: [] for k in KEYS}
    received: dict[str, list] = {g: [] for g in GROUPS}
    last_polled = {}

    def pick(i):
        live = [c for c in consumers if c.active]
        return live[i % len(live)] if live else None

    def record(consumer, batch):
        by_partition = {}
        for d in batch:
            received[consumer.group.name].append(d)
            by_partition.setdefault(d.partition, []).append(d.offset)
        for offsets in by_partition.values():  # one poll reads each partition in order
            assert offsets == sorted(offsets)
        if batch:
            last_polled[consumer.name] = batch[-1]

    for op in ops:
        kind = op[0]
        if kind == "publish":
            m = event("OrderPlaced", op[1], {"n": sum(map(len, published.values()))})
            broker.publish("orders", m)
            published[op[1]].append(m.id)
        elif kind == "join":
            consumers.append(broker.consumer(op[1]))
        elif kind == "advance":
            broker.clock.advance(op[1])
        else:
            consumer = pick(op[1])
            if consumer is None:
                continue
            if kind == "poll":
                record(consumer, consumer.poll(op[2]))
            elif kind == "commit":
                consumer.commit()
            elif kind == "commit_one" and consumer.name in last_polled:
                try:
                    consumer.commit(last_polled[consumer.name])
                except BrokerError:
                    pass  # its partition moved in a rebalance: refused, and nothing is lost
            elif kind == "crash":
                consumer.crash()
            elif kind == "leave":
                consumer.close()

    # Drain: the others leave; one fresh consumer per group reads until its backlog is empty.
    for consumer in consumers:
        consumer.close()
    broker.clock.advance(1_000)
    for group in GROUPS:
        drainer = broker.consumer(group, name=f"{group}-drainer")
        for _ in range(1_000):
            if broker.lag(group) == 0:
                break
            record(drainer, drainer.poll(50))
            drainer.commit()
        assert broker.lag(group) == 0, "a group could not drain its backlog"

    all_ids = {i for ids in published.values() for i in ids}
    for group in GROUPS:
        got = received[group]
        assert {d.message.id for d in got} == all_ids, "a message never reached a group"
        for key, ids in published.items():
            first_seen = []
            for d in got:
                if d.message.key == key and d.message.id not in first_seen:
                    first_seen.append(d.message.id)
            assert first_seen == ids, f"{group} first saw {key}'s messages out of order"
