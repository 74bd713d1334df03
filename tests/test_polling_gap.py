"""A high-water-mark relay skips a row that commits out of id order; the three fixes do not."""

from __future__ import annotations

import pytest

import eda_lab.outbox.polling_gap as polling_gap
from eda_lab.outbox import random_schedule, run_schedule, serialise, skip_rates
from eda_lab.outbox.polling_gap import COMMIT_LOG, FLAG, HIGH_WATER_MARK, rule_skips

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
    assert [r["schedules"] for r in rates] == [10, 10]


@pytest.mark.parametrize("batch_size", [1, 2, 3, 100])
@pytest.mark.parametrize("writers", [2, 5, 9])
def test_the_reading_rules_replayed_skip_what_the_real_relays_skip(writers, batch_size):
    for seed in range(15):
        schedule = random_schedule(writers, seed=seed)
        assert (rule_skips(schedule, batch_size)
                == run_schedule(schedule, batch_size=batch_size).skipped), schedule


def test_many_schedules_are_affordable_and_two_writers_already_skip():
    rates = skip_rates([2], trials=2_000, checked=5)   # the notebook's chart: 3.2%
    assert 0.02 < rates[0][HIGH_WATER_MARK] < 0.05 and rates[0]["rows"] == 4_000


def test_skip_rates_refuses_to_chart_a_replay_that_disagrees_with_the_relays(monkeypatch):
    monkeypatch.setattr(polling_gap, "_replay", lambda schedule, batch: dict.fromkeys(
        polling_gap.RELAY_KINDS, []))
    with pytest.raises(AssertionError, match="disagrees with the relays"):
        skip_rates([8], trials=5)
    assert skip_rates([8], trials=5, checked=0)[0][HIGH_WATER_MARK] == 0   # unchecked: trusted


@pytest.mark.parametrize("settings, match", [
    ({"trials": 0}, "trials must be an integer >= 1"), ({"checked": -1}, "checked must be"),
    ({"trials": 10 ** 6}, "100000"),
])
def test_skip_rates_bounds_name_the_argument(settings, match):
    with pytest.raises(ValueError, match=match):
        skip_rates([2], **settings)


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
