"""Every crash point, at every moment it is reached, for every way a step can fail.

For each scenario (all steps succeed; one step refused; one step's reply lost) the scenario is
first run without crashes to count how often each ``saga.*`` crash point is reached. Then it
is run once per (point, n): the process dies the n-th time it reaches the point, restarts, and
the saga must still end completed or fully compensated, with the compensations in exact
reverse order and every service's data agreeing.
"""

from __future__ import annotations

import pytest
from saga_helpers import DEFINITION, STEPS, all_problems, run_one, undone

from eda_lab import FaultPlan, fault_points

POINTS = fault_points("saga.")
SCENARIOS = {"happy path": {}}
for _step in DEFINITION.steps:
    SCENARIOS[f"{_step.name} refused"] = {_step.action: "fail"}
    SCENARIOS[f"{_step.name} reply lost"] = {_step.action: "time out"}


RECOVERIES = ("deadlines", "resend-all")


def _clean(outcomes, recovery):
    runner, saga_id = run_one(outcomes, FaultPlan(dict.fromkeys(POINTS)), recovery=recovery)
    return runner, saga_id


CLEAN = {(recovery, name): _clean(outcomes, recovery)
         for recovery in RECOVERIES for name, outcomes in SCENARIOS.items()}


def _cases():
    for (recovery, name), (runner, _) in CLEAN.items():
        for point in POINTS:
            for n in range(1, runner.broker.faults.hits.get(point, 0) + 1):
                yield pytest.param(recovery, name, point, n, id=f"{recovery}-{name}-{point}-{n}")


def test_every_crash_point_of_the_saga_is_covered():
    assert POINTS == ["saga.after_record", "saga.after_send", "saga.before_record",
                      "saga.participant_after_commit", "saga.participant_before_commit"]
    happy, _ = CLEAN["resend-all", "happy path"]
    assert all(happy.broker.faults.hits[p] >= 5 for p in POINTS)
    # with commands through the outbox the orchestrator never sends one itself
    happy, _ = CLEAN["deadlines", "happy path"]
    assert "saga.after_send" not in happy.broker.faults.hits
    assert all(happy.broker.faults.hits[p] >= 5 for p in POINTS if p != "saga.after_send")


@pytest.mark.parametrize("recovery", RECOVERIES)
@pytest.mark.parametrize("failing", STEPS)
def test_each_step_refused_ends_consistently_with_reverse_compensations(failing, recovery):
    runner, saga_id = CLEAN[recovery, f"{failing} refused"]
    k = STEPS.index(failing)
    pivot = DEFINITION.pivot_index
    if k <= pivot:
        assert runner.status(saga_id) == "compensated"
        assert undone(runner, saga_id) == [s.name for s in reversed(DEFINITION.steps[:k])
                                           if s.compensation]
    else:
        assert runner.status(saga_id) == "completed" and undone(runner, saga_id) == []
    assert all_problems(runner, saga_id) == []


@pytest.mark.parametrize("recovery, scenario, point, n", list(_cases()))
def test_a_crash_anywhere_still_ends_completed_or_fully_compensated(recovery, scenario, point, n):
    outcomes = SCENARIOS[scenario]
    runner, saga_id = run_one(outcomes, FaultPlan({point: n}), recovery=recovery)
    assert runner.broker.faults.fired == [(point, n)]
    assert runner.restarts == 1 and not runner.busy
    assert runner.status(saga_id) in ("completed", "compensated")
    assert all_problems(runner, saga_id) == []
    clean_runner, clean_id = CLEAN[recovery, scenario]
    # a crash is invisible in the outcome: same end, same compensations (a lost reply is
    # retried, so it changes nothing either)
    assert runner.status(saga_id) == clean_runner.status(clean_id)
    assert undone(runner, saga_id) == undone(clean_runner, clean_id)
