"""The promise of a saga, checked: all of it happened, or all of it was undone, in order.

A saga gives no isolation and no atomic commit, only this: once it is finished, it is either
**completed** (every step's effect is in place) or **compensated** (no step's effect is left:
each completed compensatable step was undone, the last one first, and nothing from the pivot
on ever happened). These checks read the evidence from where it lives: the saga log for what
the orchestrator decided, and each participant's own database for what really happened.
"""

from __future__ import annotations

from collections.abc import Mapping

from .definition import SagaDefinition
from .log import COMPENSATED, COMPLETED, NEEDS_ATTENTION, SagaLog
from .participants import DONE, NONE, UNDONE, Participant


def expected_compensations(definition: SagaDefinition, history: list[dict]) -> list[str]:
    """The steps that must be undone, in order, according to what the log says succeeded.

    The completed steps with a compensation, last first; preceded by the failed step itself
    when it failed without an answer (its outcome is unknown, so it is undone too).
    """
    turned = next((i for i, row in enumerate(history) if row["transition"] == "compensating"
                   or row["transition"] == "compensated"), None)
    if turned is None:
        return []
    succeeded = [row["step"] for row in history[:turned] if row["transition"] == "step_succeeded"]
    cause = next((row for row in reversed(history[:turned])
                  if row["transition"] in ("step_failed", "step_timed_out", "send_failed")), None)
    steps = {s.name: s for s in definition.steps}
    order = [name for name in reversed(succeeded) if steps[name].compensation]
    if cause is not None and cause["transition"] != "step_failed":
        if steps[cause["step"]].compensation and cause["step"] not in order:
            order.insert(0, cause["step"])
    return order


def compensation_times(definition: SagaDefinition, participants: Mapping[str, Participant],
                       saga_id: str) -> list[tuple[float, str]]:
    """(when, step) of each step the participants undid for ``saga_id``, oldest first (read
    from their own ``replies`` tables, not from the orchestrator)."""
    by_command = {s.compensation: s for s in definition.steps if s.compensation}
    done = []
    for participant in {id(p): p for p in participants.values()}.values():
        for row in participant.replies(saga_id):
            step = by_command.get(row["command_type"])
            if step is not None and row["outcome"] == "succeeded":
                done.append((row["replied_ms"], step.name))
    return sorted(done)


def applied_compensations(definition: SagaDefinition, participants: Mapping[str, Participant],
                          saga_id: str) -> list[str]:
    """The steps the participants undid for ``saga_id``, in the order they did it."""
    return [name for _, name in compensation_times(definition, participants, saga_id)]


def undone_in_order(times: list[tuple[float, str]], expected: list[str]) -> bool:
    """True when the undone steps are the expected ones and no step was undone before one
    expected ahead of it. Two compensations in the same simulated millisecond are in order
    either way: the clock cannot tell them apart (a service may take a reply and send the next
    command in one instant), so only a later time for an earlier step is a violation."""
    when = {name: ms for ms, name in times}
    if len(times) != len(expected) or set(when) != set(expected):
        return False
    return all(when[a] <= when[b] for a, b in zip(expected, expected[1:], strict=False))


def saga_problems(definition: SagaDefinition, log: SagaLog,
                  participants: Mapping[str, Participant], saga_id: str) -> list[str]:
    """Everything that breaks the saga's promise for ``saga_id`` (an empty list if none).

    A saga in ``needs_attention`` is reported as such: it kept its promise to stop visibly,
    and a person has to finish it.
    """
    state = log.get(saga_id)
    if state is None:
        return [f"{saga_id}: not in the saga log"]
    if state.status == NEEDS_ATTENTION:
        return [f"{saga_id} needs attention: {state.reason}"]
    if state.status not in (COMPLETED, COMPENSATED):
        return [f"{saga_id} is still {state.status}"]
    problems = []
    for step in definition.steps:
        effect = participants[step.participant].effect(saga_id, step.action)
        if state.status == COMPLETED and effect != DONE:
            problems.append(f"{saga_id} completed but {step.name} is {effect} in "
                            f"{step.participant}'s data")
        # A step with no compensation (a check that changes nothing, FTGO's "verify consumer")
        # has nothing to undo: compensated leaves it as it was.
        if state.status == COMPENSATED and step.compensation and effect not in (NONE, UNDONE):
            problems.append(f"{saga_id} compensated but {step.name} is still {effect} in "
                            f"{step.participant}'s data")
    history = log.history(saga_id)
    expected = expected_compensations(definition, history)
    logged = [row["step"] for row in history if row["transition"] == "compensation_succeeded"]
    times = compensation_times(definition, participants, saga_id)
    applied = [name for _, name in times]
    if state.status == COMPENSATED and logged != expected:
        problems.append(f"{saga_id}: the log shows compensations {logged}, expected {expected}")
    if state.status == COMPENSATED and not undone_in_order(times, expected):
        problems.append(f"{saga_id}: the participants undid {applied}, expected {expected}")
    if state.status == COMPLETED and (logged or applied):
        problems.append(f"{saga_id} completed but compensations ran: {logged or applied}")
    return problems


def shop_problems(participants: Mapping[str, Participant]) -> list[str]:
    """Bookkeeping broken inside any participant's database (stock, credit)."""
    return [problem for p in participants.values() for problem in p.invariant_problems()]
