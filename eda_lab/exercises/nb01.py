"""Self-checks of notebook 01's exercises: each one simulates, so the answer is measured."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..faults import Outage
from ..sync.chain import ServiceProfile, SyncChain, load_services
from ..sync.twin import EventDrivenTwin
from ._common import number_problem, verdict

CHAIN = ("order", "payment", "inventory", "shipping")
OUTAGE = Outage("inventory", start_ms=10_000, end_ms=20_000, mode="slow", slowdown=20)
LOAD = {"rate_per_s": 30, "duration_ms": 30_000, "seed": 1}
MAX_RATE_PER_S = 2_000  # Exercise 3: a rate above this is a unit mistake, not a prediction


def check_exercise_1(answer, requests: int = 1_000) -> None:
    """Ten services at 99.9% each: the availability of the chain, against a simulation."""
    problem = number_problem(answer, "a number between 0 and 1")
    if problem:
        return verdict(False, problem)
    if not 0 <= answer <= 1:
        return verdict(False, f"an availability is between 0 and 1, got {answer}")
    payment = load_services()["payment"]
    ten = [payment.changed(name=f"service{i}", workers=50) for i in range(10)]
    run = SyncChain(ten, [s.name for s in ten]).run(rate_per_s=5, duration_ms=requests * 200,
                                                    seed=3)
    simulated = run.summary()["success_rate"]
    noise = 3 * math.sqrt(simulated * (1 - simulated) / max(1, len(run.requests))) + 0.001
    if abs(answer - simulated) > noise:
        return verdict(False, f"{answer:.2%} is off: {len(run.requests):,} simulated requests "
                              f"give something else (more than {noise:.2%} away)")
    return verdict(True, f"{len(run.requests):,} simulated requests: {simulated:.2%} succeeded")


def check_exercise_2(fixed: Mapping[str, ServiceProfile]) -> None:
    """Only ``workers`` changed, and at least 90% succeed while inventory is 20x slower."""
    services = load_services()
    if not isinstance(fixed, Mapping) or not all(name in fixed for name in CHAIN):
        return verdict(False, f"fixed must be a dict with every service of {list(CHAIN)}")
    changed = sorted(name for name in CHAIN
                     if fixed[name].changed(workers=1) != services[name].changed(workers=1))
    if changed:
        return verdict(False, f"only workers may change, but {changed} changed more")
    run = SyncChain(dict(fixed), CHAIN).run(**LOAD, outages=[OUTAGE])
    during = run.requests.query("10_000 <= start_ms < 20_000")
    share = during["ok"].mean()
    p95 = during.loc[during["ok"], "latency_ms"].quantile(0.95)
    failed = during[~during["ok"]]["failed_at"].value_counts()
    where = ", ".join(f"{n} at {s}" for s, n in failed.items())
    return verdict(share >= 0.9, f"{share:.0%} succeeded during the outage (p95 of the "
                                 f"successful ones: {p95:.0f} ms)"
                                 + (f"; failures: {where}" if share < 0.9 and where else ""))


def check_exercise_3(answer) -> None:
    """The rate inventory's consumer group can keep up with: runs the twin at 80% and 125%."""
    problem = number_problem(answer, "orders per second")
    if problem:
        return verdict(False, problem)
    if not 1 <= answer <= MAX_RATE_PER_S:
        return verdict(False, f"{answer:g} orders/s is outside 1-{MAX_RATE_PER_S:,}: is it in "
                              "orders per second (not per ms, not ms per order)?")
    ends = {}
    for share in (0.8, 1.25):
        run = EventDrivenTwin(load_services(), "order", ["inventory"]).run(
            rate_per_s=share * answer, duration_ms=10_000, seed=1, drain_limit_ms=0,
            trace=False)
        backlog = run.backlog
        ends[share] = int(backlog[backlog["time"] <= 10_000]["backlog"].iloc[-1])
    keeps_up, falls_behind = ends[0.8] < 20, ends[1.25] > 100
    hint = ("" if keeps_up and falls_behind else
            ": too high, it falls behind below it" if not keeps_up else
            ": too low, it still keeps up above it")
    return verdict(keeps_up and falls_behind,
                   f"backlog after 10 s at 80% of {answer:.0f}/s: {ends[0.8]}, at 125%: "
                   f"{ends[1.25]}{hint}")
