"""Broker throughput: publish, poll and commit N keyed messages through one consumer group.

Measured on FastBroker, the broker the write path's long runs use (it does exactly what the
readable Broker of notebook 02 does, see eda_lab/fast_broker.py); the readable Broker's own
figure is printed beside it.

Both sides run the same loop: publish every message one call at a time, then poll batches of
BATCH and commit after each batch (the usual commit-after-processing consumer). The baseline,
measured in the same run, is a bare list-based topic log with group offsets: the same
partitions and key hashing, the same three calls, none of the broker's consumer-group
membership, validation, fault checks or trace. The broker runs as the notebooks use it, trace on.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import best_time, report  # noqa: E402

from eda_lab import Broker, event  # noqa: E402
from eda_lab.fast_broker import FastBroker  # noqa: E402
from eda_lab.partitioning import partition_for  # noqa: E402

N = 50_000
PARTITIONS = 4
BATCH = 100
MESSAGES = [event("OrderPlaced", f"order-{i % 1000}", {"n": i}) for i in range(N)]


class BareTopicLog:
    """The least a topic log with group offsets can be: lists, an offset per partition."""

    def __init__(self, partitions: int):
        self.partitions: list[list] = [[] for _ in range(partitions)]
        self.positions = [0] * partitions
        self.committed = [0] * partitions

    def publish(self, message) -> tuple[int, int]:
        log = self.partitions[partition_for(message.key, len(self.partitions))]
        log.append(message)
        return len(log) - 1

    def poll(self, max_messages: int) -> list[tuple]:
        out = []
        for p, log in enumerate(self.partitions):
            position = self.positions[p]
            batch = log[position:position + max_messages - len(out)]
            out.extend((m, p, o) for o, m in enumerate(batch, position))
            self.positions[p] = position + len(batch)
        return out

    def commit(self) -> None:
        self.committed[:] = self.positions


def run_broker(broker_class=FastBroker) -> None:
    broker = broker_class()
    broker.create_topic("orders", PARTITIONS)
    consumer = broker.consumer("shipping", "orders")
    for message in MESSAGES:
        broker.publish("orders", message)
    received = 0
    while received < N:
        received += len(consumer.poll(BATCH))
        consumer.commit()
    assert received == N and broker.lag("shipping") == 0


def run_bare_log() -> None:
    log = BareTopicLog(PARTITIONS)
    for message in MESSAGES:
        log.publish(message)
    received = 0
    while received < N:
        received += len(log.poll(BATCH))
        log.commit()
    assert received == N


if __name__ == "__main__":
    # The input messages are built once, before timing; keep the garbage collector from
    # rescanning them during every measured run (the same for both sides).
    gc.collect()
    gc.freeze()
    broker_s = best_time(run_broker)
    readable_s = best_time(lambda: run_broker(Broker))
    bare_s = best_time(run_bare_log)
    report("broker publish-poll-commit (FastBroker)", N / broker_s, "msgs/s",
           "bare list-based topic log", N / bare_s, 0.3, messages=N, partitions=PARTITIONS,
           batch=BATCH, readable_broker_msgs_per_s=round(N / readable_s))
