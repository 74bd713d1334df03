"""Self-checks of notebook 05's exercises."""

from __future__ import annotations

from ..faults import FaultPlan, Outage, fault_points
from ..saga.definition import create_order_saga
from ..saga.runner import RunStopped, SagaRunner
from ._common import verdict

ORDER = {"order_id": "order-1", "customer": "alice", "sku": "book", "quantity": 2, "amount": 30.0}
REFUSED_1 = "ReserveInventory"          # Exercise 1: the command that is refused
BEFORE_PIVOT = ("order", "inventory")   # Exercise 2: the participants before the pivot


def compensations_when_refused(command: str = REFUSED_1) -> list[str]:
    """The steps compensated, in order, when ``command`` is refused."""
    runner = SagaRunner(outcomes={command: "fail"})
    saga_id = runner.start(ORDER)
    runner.run()
    return [r["step"] for r in runner.log.history(saga_id)
            if r["transition"] == "compensation_succeeded"]


def check_exercise_1(answer) -> None:
    """Predicted: the compensations, in order, when ReserveInventory is refused."""
    steps = create_order_saga().step_names
    if not isinstance(answer, (list, tuple)) or not all(isinstance(s, str) for s in answer):
        return verdict(False, f"answer_1 must be a list of step names such as "
                              f"['{steps[0]}'], got {answer!r}")
    unknown = [s for s in answer if s not in steps]
    if unknown:
        return verdict(False, f"{unknown} are not steps of the saga; its steps are "
                              f"{', '.join(steps)}")
    expected = compensations_when_refused()
    if list(answer) == expected:
        return verdict(True, f"the saga undid {', '.join(expected)}, and nothing else")
    refused = steps[1]
    if refused in answer:
        return verdict(False, f"{refused} was refused: it did nothing, so there is nothing of "
                              "it to undo")
    later = [s for s in answer if steps.index(s) > 1]
    if later:
        return verdict(False, f"{later} never ran: the saga stops at the refused step")
    if sorted(answer) == sorted(expected):
        return verdict(False, "the right steps in the wrong order: compensations run last "
                              "step first")
    return verdict(False, f"the saga undid {len(expected)} step(s), you listed {len(answer)}")


def outage_run(outage: Outage) -> tuple[str, str, int]:
    """(status, reason, sends of the first step of the participant that was down)."""
    runner = SagaRunner(faults=FaultPlan(outages=[outage]))
    saga_id = runner.start(ORDER)
    try:
        runner.run()
    except RunStopped:   # the participant stays down past the run's bound: read where it is
        pass
    state = runner.log.get(saga_id)
    step = next(s.name for s in runner.definition.steps if s.participant == outage.target)
    sent = sum(r["transition"] == "step_sent" and r["step"] == step
               for r in runner.log.history(saga_id))
    return state.status, state.reason or "", sent


def check_exercise_2(outage) -> None:
    """An outage of a participant before the pivot that ends the saga in needs_attention."""
    if outage is None:
        return verdict(False, "set outage_2 to an Outage such as Outage('inventory', 0, 10_000)")
    if not isinstance(outage, Outage):
        return verdict(False, f"outage_2 must be an Outage(target, start_ms, end_ms), got "
                              f"{outage!r}")
    if outage.target not in BEFORE_PIVOT:
        return verdict(False, f"{outage.target!r} is not before the pivot; take down "
                              f"{' or '.join(BEFORE_PIVOT)}")
    if outage.mode != "down":
        return verdict(False, "a slow participant still answers: make the outage mode 'down'")
    status, reason, tries = outage_run(outage)
    down_s = (outage.end_ms - outage.start_ms) / 1_000
    if status == "needs_attention":
        return verdict(True, f"{outage.target} down {down_s:g} s: its command was sent {tries} "
                             f"times, then needs_attention ({reason})")
    return verdict(False, f"{outage.target} down {down_s:g} s: the saga ended {status}, its "
                          f"command sent {tries} time(s); how long does the orchestrator keep "
                          "asking before it gives up?")


def crash_loop_run(point: str) -> tuple[str, int, str | None]:
    """(saga status, restarts, the run's stop message or None) with ``{point: True}``."""
    runner = SagaRunner(faults={point: True})
    saga_id = runner.start(ORDER)
    try:
        runner.run()
    except RunStopped as stop:
        return runner.status(saga_id), runner.restarts, str(stop)
    return runner.status(saga_id), runner.restarts, None


def check_exercise_3(point) -> None:
    """The orchestrator's crash point that, set to True, stops the run with a crash loop."""
    points = fault_points("saga.")
    if point not in points:
        return verdict(False, f"crash_3 must be one of the saga crash points "
                              f"({', '.join(points)}), got {point!r}")
    status, restarts, stopped = crash_loop_run(point)
    if stopped is None and not restarts:
        return verdict(False, f"{point} is never reached here: the saga ended {status} with no "
                              "crash at all")
    if stopped is None:
        return verdict(False, f"with {{{point!r}: True}} the saga ended {status} after "
                              f"{restarts} restarts: each restart got further")
    if "the orchestrator crashed" not in stopped:
        return verdict(False, f"that crash loop is a participant's, not the orchestrator's: "
                              f"{stopped}")
    return verdict(True, f"the run stopped after {restarts} restarts: {stopped}")
