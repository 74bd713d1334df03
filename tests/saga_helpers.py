"""Shared pieces of the saga tests: an order, a run to the end, what a run leaves behind."""

from __future__ import annotations

from eda_lab import FaultPlan
from eda_lab.saga import (
    OrchestratorDown,
    SagaRunner,
    create_order_saga,
    saga_problems,
    shop_problems,
)

DEFINITION = create_order_saga()
ORDER = {"order_id": "order-1", "customer": "alice", "sku": "book", "quantity": 2, "amount": 30.0}
STEPS = DEFINITION.step_names
ACTIONS = [s.action for s in DEFINITION.steps]


def order(n: int = 1, **changes) -> dict:
    """Order number ``n`` (``order-n``), with ``changes``."""
    return {**ORDER, "order_id": f"order-{n}", **changes}


def run_one(outcomes=None, faults=None, **options) -> tuple[SagaRunner, str]:
    """One saga for ORDER, run to its end."""
    runner = SagaRunner(faults=faults if faults is not None else FaultPlan(), outcomes=outcomes,
                        **options)
    saga_id = runner.start(ORDER)
    runner.run()
    return runner, saga_id


def start_all(runner: SagaRunner, orders) -> list[str]:
    """Start a saga per order, now; a client whose start found the orchestrator down waits
    until it is back and tries again."""
    ids = []
    for o in orders:
        while True:
            try:
                ids.append(runner.start(o))
                break
            except OrchestratorDown:
                if not runner.clock.step():
                    raise
    return ids


def transitions(runner: SagaRunner, saga_id: str) -> list[tuple[str, str | None]]:
    return [(row["transition"], row["step"]) for row in runner.log.history(saga_id)]


def undone(runner: SagaRunner, saga_id: str) -> list[str]:
    """The steps whose compensation succeeded, in log order."""
    return [row["step"] for row in runner.log.history(saga_id)
            if row["transition"] == "compensation_succeeded"]


def all_problems(runner: SagaRunner, *saga_ids: str) -> list[str]:
    problems = [p for s in saga_ids for p in saga_problems(
        runner.definition, runner.log, runner.participants, s)]
    return problems + shop_problems(runner.participants)
