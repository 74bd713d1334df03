"""Every named fault point is reached, counted and fires when a plan arms it.

A plan's contract: ``reach()`` counts every visit of a point, planned or not, and a fault
armed at a point fires the next time code passes it. Code calls ``faults.check`` at each
crash point unconditionally; these tests would catch a point that some code skips.
"""

from __future__ import annotations

import pytest

from eda_lab import FaultPlan, OrderPipeline, SagaRunner, fault_points
from eda_lab.saga.stepper import ArmedFaults
from eda_lab.shop import FAMILIES

# The package's points (a test may register points of its own).
POINTS = [p for p in fault_points() if p.split(".")[0] in FAMILIES]

ORDER = {"order_id": "order-1", "customer": "alice", "sku": "book", "quantity": 1,
         "amount": 20.0}


def run_scenario(point: str, plan: FaultPlan) -> None:
    """A short run that passes ``point`` (the saga for saga points, else the write path)."""
    if point.startswith("saga."):
        # The orchestrator publishes commands itself (and so passes saga.after_send) only in
        # the old recovery mode; otherwise its outbox does.
        recovery = "resend-all" if point == "saga.after_send" else "deadlines"
        runner = SagaRunner(faults=plan, recovery=recovery)
        runner.start(ORDER)
        runner.run(until_ms=60_000)
        return
    variant = "publish_then_db" if point == "order.after_publish" else "outbox-polling"
    OrderPipeline(variant, plan, batch_size=2).run(4, poll_every=1)


@pytest.mark.parametrize("point", POINTS)
def test_every_visit_of_every_point_is_counted(point):
    plan = FaultPlan()
    run_scenario(point, plan)
    assert plan.hits.get(point, 0) >= 1, f"{point} was never reached"
    assert plan.fired == []


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.filterwarnings("ignore::eda_lab.faults.FaultValueWarning")  # the 1st time is meant
def test_a_fault_planned_at_each_point_fires_the_first_time_it_is_reached(point):
    plan = FaultPlan({point: 1})
    run_scenario(point, plan)
    assert (point, 1) in plan.fired


@pytest.mark.parametrize("point", POINTS)
def test_a_fault_armed_by_hand_at_each_point_fires(point):
    plan = ArmedFaults()
    plan.arm(point)
    run_scenario(point, plan)
    assert [p for p, _ in plan.fired] == [point]
