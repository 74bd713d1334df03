"""Self-checks of notebook 06's exercises: each one runs the measurement it asks about."""

from __future__ import annotations

from collections.abc import Sequence

from ..saga.choreography import run_saga, story
from ..shop.lag import MAX_MS, measure_agreement
from ._common import number_problem, verdict

ORDERS = 300
# Exercise 1 (predict, then run): the p95 agreement lag with these polls, within TOLERANCE.
RELAY_POLL_1, CONSUMER_POLL_1, TOLERANCE_1 = 300, 100, 0.15
# Exercise 2: the order of Exercise 2's choreography.
ORDER = {"order_id": "order-1", "customer": "alice", "sku": "book", "quantity": 2, "amount": 30.0}
# Exercise 3: a consumer down from t = 1 s, relay every 100 ms; the share over 1 s to reach.
SLOW_MS, LOW_3, HIGH_3 = 1_000, 0.10, 0.15


def p95_1() -> float:
    """The p95 agreement lag (ms) of Exercise 1's setting, measured."""
    return measure_agreement(ORDERS, poll_interval_ms=RELAY_POLL_1,
                             consumer_poll_ms=CONSUMER_POLL_1).summary()["p95_ms"]


def check_exercise_1(answer) -> None:
    """A predicted p95 agreement lag (ms): the relay polls every 300 ms, consumers every 100."""
    problem = number_problem(answer, "the p95 lag in ms")
    if problem:
        return verdict(False, problem)
    if not 0 < answer <= MAX_MS:
        return verdict(False, f"{answer:g} ms is not a lag this run can have: give ms "
                              f"between 0 and {MAX_MS:,.0f}")
    measured = p95_1()
    off = (answer - measured) / measured
    if abs(off) <= TOLERANCE_1:
        return verdict(True, f"you predicted {answer:g} ms; {ORDERS} orders measured a p95 of "
                             f"{measured:.0f} ms ({off:+.0%})")
    return verdict(False, f"you predicted {answer:g} ms; {ORDERS} orders measured a p95 of "
                          f"{measured:.0f} ms, so the prediction is {abs(off):.0%} too "
                          f"{'high' if off > 0 else 'low'} (within {TOLERANCE_1:.0%} counts): "
                          + ("which waits did you leave out?" if off < 0 else
                             "does every wait really take its whole interval?"))


def transactions_2() -> list[tuple[str, str]]:
    """The local transactions the choreography runs when ReserveInventory is refused."""
    runner, saga_id = run_saga("choreography", ORDER, {"ReserveInventory": "fail"})
    return [(row["who"], row["what"].split(":")[0]) for row in story(runner.trace.frame(),
                                                                     saga_id)
            if row["does"] == "runs"]


def check_exercise_2(answer) -> None:
    """The (service, command) pairs, in order, of a choreography whose reservation is refused."""
    if answer is None:
        return verdict(False, "set answer_2 to the list of (service, command) pairs, in order")
    if not isinstance(answer, Sequence) or isinstance(answer, str):
        return verdict(False, "answer_2 must be a list of (service, command) pairs such as "
                              f"[('order', 'CreatePendingOrder'), ...], got {answer!r}")
    for number, pair in enumerate(answer, 1):
        if not (isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2
                and all(isinstance(part, str) for part in pair)):
            return verdict(False, f"item {number} is {pair!r}, not a (service, command) pair of "
                                  "two strings")
    mine = [tuple(pair) for pair in answer]
    ran = transactions_2()
    if mine == ran:
        return verdict(True, f"{len(ran)} local transactions: "
                             + ", then ".join(f"{who} runs {what}" for who, what in ran))
    for number, (wrote, did) in enumerate(zip(mine, ran, strict=False), 1):
        if wrote != did:
            return verdict(False, f"transaction {number} is not {wrote!r} (the ones before it "
                                  "are right): who hears what the step before published?")
    if len(mine) < len(ran):
        return verdict(False, f"the first {len(mine)} are right, but the run made {len(ran)} "
                              "local transactions: what happens after the refusal?")
    return verdict(False, f"the first {len(ran)} are right, but the run made only {len(ran)}: "
                          f"{mine[len(ran):]} never happened (was there anything to undo?)")


def slow_share(outage_ms: float) -> float:
    """The share of the 300 orders that took longer than 1 s to be known everywhere, with one
    consumer down from t = 1 s for ``outage_ms`` (relay every 100 ms)."""
    run = measure_agreement(ORDERS, poll_interval_ms=100, outage_ms=outage_ms)
    return sum(lag > SLOW_MS for lag in run.lags()) / len(run.rows)


def check_exercise_3(outage_ms) -> None:
    """An outage just long enough that more than 10% of the orders take longer than 1 s."""
    problem = number_problem(outage_ms, "an outage length in ms, e.g. 500", noun="answer")
    if problem:
        return verdict(False, problem)
    if not 0 <= outage_ms <= MAX_MS:
        return verdict(False, f"outage_3 must be between 0 and {MAX_MS:,.0f} ms, got "
                              f"{outage_ms:g}")
    share = slow_share(outage_ms)
    said = f"with analytics down {outage_ms:g} ms, {share:.0%} of the orders took longer than 1 s"
    if LOW_3 < share <= HIGH_3:
        return verdict(True, f"{said}: just over {LOW_3:.0%}")
    return verdict(False, f"{said}: " + ("too short, aim just above 10%" if share <= LOW_3
                                         else f"too long, more than {HIGH_3:.0%}; shorten it"))
