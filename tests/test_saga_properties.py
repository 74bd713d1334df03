"""Properties over random failures, duplicates, losses and crashes (Hypothesis).

Whatever happens, every saga ends: completed, compensated, or stopped visibly in
needs_attention. A completed or compensated saga kept its promise (data agrees, compensations
in reverse order), and the shop's bookkeeping (stock, credit) always holds.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from saga_helpers import ACTIONS, DEFINITION, STEPS, all_problems, order, start_all, undone

from eda_lab import FaultPlan, Outage, fault_points
from eda_lab.saga import SagaRunner, step_states

COMMANDS = list(DEFINITION.commands)
SAGA_POINTS = fault_points("saga.")
CUSTOMERS = st.sampled_from(["alice", "bob"])
SKUS = st.sampled_from(["book", "lamp"])


@st.composite
def orders(draw):
    count = draw(st.integers(1, 3))
    return [order(n, customer=draw(CUSTOMERS), sku=draw(SKUS), quantity=draw(st.integers(1, 3)),
                  amount=float(draw(st.sampled_from([10, 30, 55])))) for n in range(1, count + 1)]


def outcome_scripts(allowed, max_len):
    return st.dictionaries(st.sampled_from(COMMANDS),
                           st.lists(st.sampled_from(allowed), min_size=1, max_size=max_len),
                           max_size=4)


# one crash per point at most, at its n-th visit
crash_plans = st.dictionaries(st.sampled_from(SAGA_POINTS), st.integers(1, 12), max_size=3)


def run(orders_, outcomes, faults, **options):
    runner = SagaRunner(faults=faults, outcomes=outcomes, **options)
    ids = start_all(runner, orders_)
    runner.run()
    return runner, ids


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders(), outcome_scripts(["succeed", "fail"], 2), crash_plans,
       st.sampled_from([0.0, 0.3, 1.0]), st.integers(0, 10_000), st.sampled_from([1, 100]))
def test_crashes_and_duplicates_change_nothing_about_how_sagas_end(orders_, outcomes, crashes,
                                                                    duplicate, seed, max_batch):
    """Refusals (fewer than max_attempts per command), crashes anywhere, duplicated deliveries:
    the same outcome and the same compensations as the run without crashes or duplicates.

    Stock and credit are ample here: sagas that compete for the last lamp race each other (a
    saga gives no isolation), and a crash changes who wins; the next property covers that.
    """
    options = {"reply_timeout_ms": 10_000.0,  # crashes are the subject, not timeouts
               "stock": {"book": 100, "lamp": 100}, "accounts": {"alice": 1e6, "bob": 1e6}}
    clean, clean_ids = run(orders_, outcomes, FaultPlan(), **options)
    faults = FaultPlan({**crashes, "broker.duplicate": duplicate}, seed=seed)
    runner, ids = run(orders_, outcomes, faults, max_batch=max_batch, **options)
    assert ids == clean_ids and not runner.busy
    for saga_id in ids:
        assert runner.status(saga_id) in ("completed", "compensated")
        assert runner.status(saga_id) == clean.status(saga_id)
        assert undone(runner, saga_id) == undone(clean, saga_id)
    assert all_problems(runner, *ids) == []
    assert runner.data() == clean.data()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders(), outcome_scripts(["succeed", "fail", "time out"], 4), crash_plans,
       st.fixed_dictionaries({"broker.drop": st.sampled_from([0.0, 0.2]),
                              "broker.duplicate": st.sampled_from([0.0, 0.3]),
                              "broker.delay": st.sampled_from([0.0, 0.1]),
                              "broker.unavailable": st.sampled_from([0.0, 0.1])}),
       st.one_of(st.none(), st.sampled_from(["order", "inventory", "payment", "shipping"])),
       st.integers(0, 10_000), st.sampled_from([1, 100]))
def test_every_saga_ends_and_keeps_its_promise_or_asks_for_attention(
        orders_, outcomes, crashes, broker_faults, down, seed, max_batch):
    outages = [Outage(down, 0, 1_500)] if down else []
    faults = FaultPlan({**crashes, **broker_faults}, seed=seed, outages=outages)
    runner, ids = run(orders_, outcomes, faults, max_batch=max_batch)
    assert not runner.busy
    for saga_id in ids:
        state = runner.log.get(saga_id)
        assert state.status in ("completed", "compensated", "needs_attention")
        if state.status == "needs_attention":
            history = runner.log.history(saga_id)
            assert history[-1]["transition"] == "needs_attention" and state.reason
            boxes = step_states(STEPS, history)
            assert boxes[DEFINITION.steps[state.step].name] == "needs_attention"
    finished = [s for s in ids if runner.status(s) != "needs_attention"]
    assert all_problems(runner, *finished) == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["succeed", "fail", "time out"]), min_size=5, max_size=5),
       st.sampled_from(["succeed", "fail"]))
def test_the_pivot_decides_completed_or_compensated(toggles, pivot_outcome):
    """Without crashes or losses: a refused or timed-out step before the pivot, or a refused
    pivot, compensates; otherwise the saga completes, whatever the retriable steps do."""
    toggles[2] = pivot_outcome
    outcomes = {action: t for action, t in zip(ACTIONS, toggles, strict=True) if t != "succeed"}
    runner, [saga_id] = run([order(1)], outcomes, FaultPlan())
    turned_back = "fail" in toggles[:2] or pivot_outcome == "fail"
    assert runner.status(saga_id) == ("compensated" if turned_back else "completed")
    assert all_problems(runner, saga_id) == []
