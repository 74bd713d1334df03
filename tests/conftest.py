"""Tiny fixtures shared by the tests."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from eda_lab import Broker, Clock, FaultPlan, Trace, seed_ids
from eda_lab.db import open_db

# Hypothesis draws new examples on every run unless told not to. The suite (and CI) runs the
# "repeatable" profile: the same examples every time, so a red run is reproducible and a green
# one is not luck. HYPOTHESIS_PROFILE=explore draws fresh ones to look for new failures; keep
# what it finds as an @example.
settings.register_profile("repeatable", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


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
