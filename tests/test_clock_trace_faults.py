"""The simulated clock, the trace and fault plans."""

from __future__ import annotations

import warnings

import pytest

from eda_lab import Clock, Crash, FaultPlan, Outage, Trace, crash_point, fault_points
from eda_lab.faults import PURELY_PROBABILISTIC, FaultValueWarning


def test_clock_runs_processes_in_simulated_milliseconds():
    clock = Clock()
    ticks = []
    clock.every(100, lambda: ticks.append(clock.now), until_ms=350)
    clock.run(1000)
    assert ticks == [0, 100, 200, 300]
    assert clock.now == 1000


def test_clock_refuses_to_go_back_or_wait_negative():
    clock = Clock()
    clock.advance(10)
    with pytest.raises(ValueError, match="until_ms"):
        clock.run(5)
    with pytest.raises(ValueError, match="delay_ms"):
        clock.timeout(-1)
    with pytest.raises(ValueError, match="interval_ms"):
        clock.every(0, lambda: None)


def test_clock_step_processes_one_event_at_a_time():
    clock = Clock()
    seen = []
    clock.call_at(50, lambda: seen.append("a"))
    clock.call_at(80, lambda: seen.append("b"))
    while clock.step():
        pass
    assert seen == ["a", "b"] and clock.now == 80


def test_trace_frame_has_one_row_per_record():
    trace = Trace()
    trace.add(0, "publish", "broker", "orders", 0, 0, "o1", "id1", "OrderPlaced")
    trace.add(5, "commit", "c1", "orders", 0, 1, detail="group=g")
    frame = trace.frame()
    assert list(frame["kind"]) == ["publish", "commit"]
    assert frame.loc[1, "offset"] == 1
    assert len(trace) == 2 and trace.count("commit") == 1
    assert trace.tail(1)[0].kind == "commit"


def test_disabled_trace_records_nothing():
    trace = Trace(enabled=False)
    trace.add(0, "publish", "broker")
    assert len(trace) == 0


POINT = crash_point("test.somewhere", "a point for these tests")


def test_fault_plan_fires_on_the_listed_visits_only():
    plan = FaultPlan({POINT: [2, 4]})
    assert [plan.reach(POINT) for _ in range(5)] == [False, True, False, True, False]
    assert plan.fired == [(POINT, 2), (POINT, 4)]


def test_fault_plan_probability_is_seeded():
    def draws(seed):
        plan = FaultPlan({POINT: 0.3}, seed=seed)
        return [plan.reach(POINT) for _ in range(200)]

    assert draws(1) == draws(1) != draws(2)
    assert 30 < sum(draws(1)) < 90


def test_check_raises_a_crash_that_except_exception_does_not_catch():
    plan = FaultPlan({POINT: 1})
    trace = Trace()
    with pytest.raises(Crash) as info:
        try:
            plan.check(POINT, trace=trace, now=3, actor="relay")
        except Exception:  # noqa: BLE001 - the point: a crash is not an Exception
            pytest.fail("a crash was swallowed")
    assert info.value.point == POINT
    assert trace.of_kind("crash")[0].detail == POINT


@pytest.mark.parametrize("spec", [0, -1, 1.5, "sometimes", [0], ["1"]])
def test_bad_fault_plan_entries_are_refused(spec):
    with pytest.raises(ValueError, match="test.somewhere"):
        FaultPlan({POINT: spec})


def test_unknown_fault_point_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known points:.*broker.drop"):
        FaultPlan({"relay.after_lunch": 1})


def test_fault_points_are_enumerable():
    assert {"broker.unavailable", "broker.drop", "broker.duplicate", "broker.delay",
            "consumer.before_commit"} <= set(fault_points())
    assert all(p.startswith("broker.") for p in fault_points("broker."))


def test_outages_cover_their_window_only():
    plan = FaultPlan(outages=[Outage("payment", 100, 200), Outage("inventory", 0, 50, "slow", 4)])
    assert not plan.is_down("payment", 99) and plan.is_down("payment", 100)
    assert not plan.is_down("payment", 200)
    assert plan.slowdown("inventory", 10) == 4 and plan.slowdown("inventory", 60) == 1


@pytest.mark.parametrize("kwargs", [dict(start_ms=5, end_ms=5), dict(start_ms=-1, end_ms=5),
                                    dict(start_ms=0, end_ms=5, mode="flaky"),
                                    dict(start_ms=0, end_ms=5, mode="slow", slowdown=0.5)])
def test_bad_outages_are_refused(kwargs):
    with pytest.raises(ValueError):
        Outage("payment", **kwargs)


@pytest.mark.parametrize(("kwargs", "error", "named"), [
    (dict(start_ms="10000", end_ms=20_000), TypeError, "start_ms must be a number"),
    (dict(start_ms=0, end_ms=5, mode="slow", slowdown="20"), TypeError, "slowdown must be a number"),
    (dict(start_ms=0, end_ms=5, mode="slow", slowdown=float("nan")), ValueError, "slowdown must be a finite"),
    (dict(start_ms=0, end_ms=float("inf")), ValueError, "end_ms must be a finite"),
])
def test_an_outage_with_a_field_that_is_not_a_number_names_the_field(kwargs, error, named):
    with pytest.raises(error, match=named):
        Outage("payment", **kwargs)


@pytest.mark.parametrize("point", sorted(PURELY_PROBABILISTIC))
def test_a_bare_integer_on_a_purely_probabilistic_point_warns_did_you_mean_always(point):
    with pytest.warns(FaultValueWarning, match=r"did you mean 1\.0, every time"):
        plan = FaultPlan({point: 1})
    assert plan.points == {point: "hits"}  # still what was written: the 1st time only


@pytest.mark.parametrize("spec", [1.0, 0.2, True, "always", [1, 3]])
def test_probabilities_and_the_other_forms_do_not_warn(spec):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FaultPlan({"broker.drop": spec, "broker.unavailable": 1, "consumer.before_commit": 1})
