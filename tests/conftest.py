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


@pytest.fixture
def broker_with():
    """Make a broker with a fault plan and one topic: ``broker_with(FaultPlan({...}))``."""

    def make(faults: FaultPlan, partitions: int = 1, topic: str = "orders") -> Broker:
        b = Broker(Clock(), Trace(), faults)
        b.create_topic(topic, partitions)
        return b

    return make
