"""A high-water-mark relay skips a row that commits out of id order; the three fixes do not."""

from __future__ import annotations

import pytest

from eda_lab.outbox import random_schedule, run_schedule, serialise, skip_rates
from eda_lab.outbox.polling_gap import COMMIT_LOG, FLAG, HIGH_WATER_MARK

GAP = ["begin A", "begin B", "commit B", "poll", "commit A", "poll"]


def test_high_water_mark_relay_skips_the_row_that_committed_late_forever():
    run = run_schedule(GAP)
    assert run.committed == [1, 2]
    assert run.skipped[HIGH_WATER_MARK] == [1]
    assert run.published[HIGH_WATER_MARK] == [2]


def test_flag_polling_and_the_commit_order_log_publish_every_row():
    run = run_schedule(GAP)
    assert run.skipped[FLAG] == [] and run.skipped[COMMIT_LOG] == []
    assert run.published[COMMIT_LOG] == [2, 1]  # commit order, not id order


def test_serialised_writers_make_the_high_water_mark_safe():
    assert serialise(GAP) == ["begin B", "commit B", "poll", "begin A", "commit A", "poll"]
    run = run_schedule(serialise(GAP))
    assert all(skipped == [] for skipped in run.skipped.values())


def test_no_overlap_means_no_gap():
    run = run_schedule(["begin A", "commit A", "poll", "begin B", "commit B", "poll"])
    assert run.skipped[HIGH_WATER_MARK] == []


def test_the_step_table_shows_what_each_relay_published_so_far():
    steps = run_schedule(GAP).steps
    assert [s["action"] for s in steps] == GAP
    assert steps[3][HIGH_WATER_MARK] == "2" and steps[5][FLAG] == "2 1"


@pytest.mark.parametrize("seed", range(10))
def test_random_schedules_never_make_the_fixes_skip(seed):
    schedule = random_schedule(6, seed=seed)
    run = run_schedule(schedule)
    assert run.skipped[FLAG] == run.skipped[COMMIT_LOG] == []
    assert run_schedule(serialise(schedule)).skipped[HIGH_WATER_MARK] == []


def test_more_concurrent_writers_skip_more():
    rates = skip_rates([1, 8], trials=10)
    assert rates[0][HIGH_WATER_MARK] == 0 < rates[1][HIGH_WATER_MARK]
    assert rates[1][FLAG] == rates[1][COMMIT_LOG] == 0


@pytest.mark.parametrize("schedule, match", [
    (["start A"], "begin <writer>"), (["commit A"], "without an open transaction"),
    (["begin A", "begin A"], "begins twice"), ("begin A", "list of steps"), ([1], "string"),
])
def test_bad_schedules_say_what_is_allowed(schedule, match):
    with pytest.raises((ValueError, TypeError), match=match):
        run_schedule(schedule)


def test_bad_relay_names_are_refused():
    with pytest.raises(ValueError, match="relays"):
        run_schedule(GAP, relays=["magic"])
