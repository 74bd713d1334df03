"""The long runs' garbage-collector pause: off inside, as it was after, errors included."""

from __future__ import annotations

import gc

import pytest

from eda_lab._runtime import paused_gc
from eda_lab.shop import run_chaos


@pytest.fixture(autouse=True)
def _collector_restored():
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_off_inside_and_back_after():
    gc.enable()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_error_inside_brings_the_collector_back():
    gc.enable()
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError("the run failed")
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off():
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()


def test_a_chaos_run_leaves_the_collector_on():
    gc.enable()
    assert run_chaos(20, {}).ok
    assert gc.isenabled()
