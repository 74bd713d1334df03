"""Self-checks of notebook 03's exercises."""

from __future__ import annotations

from collections.abc import Mapping

from ..outbox.dual_write import try_publish_inside_transaction
from ..outbox.pipeline import OrderPipeline
from ._common import verdict

REFUSALS = 0.3   # Exercise 2: the share of publishes the broker refuses
ORDERS_2 = 300


def check_exercise_1(faults) -> None:
    """A plan that uses only order.after_commit and loses exactly three of ten orders."""
    if not isinstance(faults, Mapping):
        return verdict(False, f"faults must be a dict such as {{'order.after_commit': 1}}, got "
                              f"{faults!r}")
    others = sorted(set(faults) - {"order.after_commit"})
    if others:
        return verdict(False, f"use only 'order.after_commit'; the plan also names {others}")
    try:
        pipeline = OrderPipeline("db_then_publish", faults, trace=False)
    except (TypeError, ValueError) as error:
        return verdict(False, str(error))
    lost = pipeline.run(10).lost
    return verdict(lost == 3, f"{lost} of 10 events lost" + (
        "" if lost == 3 else ": each firing of the point loses one"))


def lost_with(retries: int) -> int:
    """Events lost by db_then_publish over 300 orders with the broker refusing 30% (seed 0)."""
    return OrderPipeline("db_then_publish", {"broker.unavailable": REFUSALS}, retries=retries,
                         trace=False).run(ORDERS_2).lost


def check_exercise_2(answer) -> None:
    """The fewest retries with which none of the 300 orders is lost."""
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= 20:
        return verdict(False, f"answer must be a whole number of retries from 0 to 20, got "
                              f"{answer!r}")
    lost = lost_with(answer)
    if lost:
        return verdict(False, f"with {answer} retries, {lost} of {ORDERS_2} are still lost")
    if answer and lost_with(answer - 1) == 0:
        return verdict(False, f"{answer} works, but fewer would do too")
    return verdict(True, f"{answer} retries lose none; {answer - 1} lose "
                         f"{lost_with(answer - 1)}" if answer else "no retries needed")


def check_exercise_3(damage) -> None:
    """Predicted: the damage of publishing inside the transaction when the commit fails."""
    if damage not in ("zombie", "ghost"):
        return verdict(False, f"damage must be 'zombie' or 'ghost', got {damage!r}")
    result = try_publish_inside_transaction(2, {"order.before_commit": 1})
    ghosts = sorted(set(result["on the broker"]) - set(result["in the database"]))
    zombies = sorted(set(result["in the database"]) - set(result["on the broker"]))
    happened = "ghost" if ghosts else "zombie" if zombies else "nothing"
    said = (f"database {result['in the database']}, broker {result['on the broker']}: "
            + (f"{ghosts} announced, never saved" if ghosts else f"{zombies} saved, never announced"))
    return verdict(damage == happened, said)
