"""Tiny fixtures shared by the tests."""

from __future__ import annotations

import pytest

from eda_lab import Broker, Clock, FaultPlan, Trace, seed_ids
from eda_lab.db import open_db


@pytest.fixture(autouse=True)
def _fixed_ids():
    """Every test starts from the same message-id sequence."""
    seed_ids(0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker(clock) -> Broker:
    return Broker(clock, Trace())


@pytest.fixture
def fresh_db():
    return open_db()


def broker_with(faults: FaultPlan, partitions: int = 1, topic: str = "orders") -> Broker:
    """A broker with ``faults`` and one topic."""
    b = Broker(Clock(), Trace(), faults)
    b.create_topic(topic, partitions)
    return b
