"""Self-checks of notebook 07's exercises: each one runs a chaos run with the learner's answer.

Exercises 1-3 ask for the keyword arguments of :func:`~eda_lab.shop.chaos.run_chaos` (rates
and switches); the check runs 40 orders with them (seed 2) and says which invariants broke.
Exercise 4 is a prediction: the check runs the storm it describes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..shop.chaos import ChaosReport, run_chaos
from ._common import verdict

ORDERS, SEED = 40, 2
# Exercise 4: every consumer crashes before every acknowledgement while the orders arrive.
ORDERS_4, SEED_4, RATES_4 = ORDERS, SEED, {"consumer": 1.0}
ALLOWED = ("rates", "relay", "outbox", "dual_write", "inbox", "consumers", "recovery")
EXAMPLES = {  # the notebook's placeholders: the form of an answer, not the answer
    "answer_1": '{"rates": {"relay": 0.02}, "inbox": True}',
    "answer_2": '{"rates": {"broker": 0.01}, "outbox": False}',
    "answer_3": '{"rates": {"order": 0.02}, "outbox": False, "dual_write": "..."}',
}


def run_answer(kwargs, name: str) -> ChaosReport | str:
    """The chaos run of an answer, or what is wrong with the answer (a sentence)."""
    example = EXAMPLES.get(name, EXAMPLES["answer_1"])
    if kwargs is None:
        return f"set {name} to the keyword arguments for run_chaos, e.g. {example}"
    if not isinstance(kwargs, Mapping):
        return f"{name} must be a dict of keyword arguments such as {example}, got {kwargs!r}"
    unknown = sorted(set(kwargs) - set(ALLOWED))
    if unknown:
        return (f"{name} names {unknown}: the check runs {ORDERS} orders with seed {SEED} "
                f"itself; use only {', '.join(ALLOWED)}")
    try:
        return run_chaos(ORDERS, seed=SEED, **kwargs)
    except (TypeError, ValueError) as error:
        return f"run_chaos refused {name}: {error}"


def broken(report: ChaosReport) -> list[str]:
    return [f"{line.name} ({line.value})" for line in report.invariants() if not line.holds]


def check_exercise_1(kwargs) -> None:
    """Duplicate effects broken, and nothing else."""
    report = run_answer(kwargs, "answer_1")
    if isinstance(report, str):
        return verdict(False, report)
    bad = broken(report)
    said = (f"duplicate effects {report.duplicate_effects} from "
            f"{report.duplicate_deliveries} duplicate deliveries")
    if [line.name for line in report.invariants() if not line.holds] == ["duplicate effects"]:
        return verdict(True, f"only duplicate effects broke: {said}")
    if report.duplicate_effects == 0:
        return verdict(False, f"duplicate effects still holds ({said}); broken: {bad or 'none'}")
    return verdict(False, f"duplicate effects broke, and so did others: {bad}")


def check_exercise_2(kwargs) -> None:
    """The outbox off, OrderPlaced events lost, and each lost order an unfinished saga."""
    report = run_answer(kwargs, "answer_2")
    if isinstance(report, str):
        return verdict(False, report)
    if report.settings["outbox"]:
        return verdict(False, "the outbox is on (it loses nothing): add \"outbox\": False")
    # version 1 is the order's OrderPlaced; a lost version 2 is its approval or rejection,
    # published by the order participant after the saga's own commit
    lost = {event for r in report.consistency.values() for event in r.lost_events}
    placed = sorted({order for order, version in lost if version == 1})
    later = len(lost) - len(placed)
    also = f" (and {later} later event(s) of finished orders)" if later else ""
    if not placed:
        return verdict(False, f"no OrderPlaced was lost{also}: which fault leaves an order "
                              "committed and its event never published?")
    stranded = sorted(set(placed) - set(report.unfinished))
    if stranded:
        return verdict(False, f"{stranded} lost their OrderPlaced but their sagas finished: "
                              "that should not happen, tell the course's authors")
    return verdict(True, f"{len(placed)} OrderPlaced lost{also}, and each of those orders is an "
                         f"unfinished saga: {placed[:3]}")


def check_exercise_3(kwargs) -> None:
    """A phantom event: consumers acted on an order the order service never committed."""
    report = run_answer(kwargs, "answer_3")
    if isinstance(report, str):
        return verdict(False, report)
    sagas = ", ".join(f"{n} {status}" for status, n in report.saga_outcomes.items()) or "none"
    if report.phantom:
        return verdict(True, f"{report.phantom} phantom event(s); the sagas: {sagas}")
    hint = (" (the outbox is on: it invents nothing)" if report.settings["outbox"] else
            " (which order of the two writes can announce what is then rolled back?)")
    return verdict(False, f"no phantom event{hint}; broken: {broken(report) or 'none'}")


def run_4() -> ChaosReport:
    """Exercise 4's storm: every consumer crashes before acknowledging, on every visit."""
    return run_chaos(ORDERS_4, RATES_4, seed=SEED_4)


def check_exercise_4(prediction: Any) -> None:
    """A predicted number of broken invariants (0-6) after Exercise 4's storm."""
    if prediction is None:
        return verdict(False, "set prediction_4 to the number of invariants you expect to break "
                              "(0 to 6)")
    if isinstance(prediction, bool) or not isinstance(prediction, int) or not 0 <= prediction <= 6:
        return verdict(False, f"prediction_4 must be a whole number from 0 to 6, got "
                              f"{prediction!r}")
    report = run_4()
    bad = broken(report)
    said = (f"{len(bad)} broke{': ' + ', '.join(bad) if bad else ''}; "
            f"{sum(report.faults_fired.values())} consumer crashes, "
            f"{report.duplicate_deliveries} duplicate deliveries, p99 lag "
            f"{report.lag_percentiles(0.99)['p99'] / 1000:.2f} s")
    return verdict(prediction == len(bad), f"you predicted {prediction}; {said}")
