"""Self-checks of notebook 04's exercises."""

from __future__ import annotations

import numbers
from collections import Counter

from ..db import open_db
from ..inbox import Inbox
from ..messages import event
from ..outbox.pipeline import OrderPipeline
from ..outbox.polling_gap import HIGH_WATER_MARK, check_schedule, run_schedule, serialise
from ._common import verdict

CRASHES_1 = [1, 4]          # Exercise 1: the relay dies after its 1st and 4th publish
ORDERS_1, BATCH_1 = 10, 3
WRITERS_2, SKIPS_2 = 3, 2   # Exercise 2: three writers, two rows skipped
LATE_MIN_3 = 120            # Exercise 3: the duplicate comes two hours after the first delivery
MAX_WINDOW_MIN = 7 * 24 * 60


def duplicates_run() -> OrderPipeline:
    """Exercise 1's run: ten orders, batches of 3, the relay crashing after its 1st and 4th
    publish, no inbox."""
    pipeline = OrderPipeline("outbox-polling", {"relay.after_publish": CRASHES_1}, inbox=False,
                             batch_size=BATCH_1, trace=False)
    pipeline.run(ORDERS_1)
    return pipeline


def check_exercise_1(prediction) -> None:
    """Predicted: the duplicate effects the checker counts after Exercise 1's run."""
    if prediction is None:
        return verdict(False, "put your prediction in prediction_1 and rerun")
    if isinstance(prediction, bool) or not isinstance(prediction, int):
        return verdict(False, f"prediction must be a whole number of duplicate effects, got "
                              f"{prediction!r}")
    pipeline = duplicates_run()
    actual = pipeline.report().duplicate_effects
    if prediction != actual:
        return verdict(False, f"the checker counts {'more' if actual > prediction else 'fewer'} "
                              f"than {prediction}: which rows did each restarted relay read "
                              "again, and how many of them had it published before it died?")
    times = Counter(m.key for m in pipeline.consumer.received)
    again = ", ".join(f"{key} {n} times" for key, n in sorted(times.items()) if n > 1)
    return verdict(True, f"{actual} duplicate effects: {again}, each applied again without an "
                         "inbox")


def _writers(schedule) -> list[str]:
    return sorted({writer for action, writer in check_schedule(schedule) if writer is not None})


def check_exercise_2(schedule) -> None:
    """A schedule of three writers in which the high-water mark skips exactly two rows, and
    which serialised skips none."""
    if not isinstance(schedule, (list, tuple)):
        return verdict(False, f"the schedule must be a list of steps such as ['begin A', "
                              f"'commit A', 'poll'], got {schedule!r}")
    try:
        writers = _writers(schedule)
        run = run_schedule(schedule)
    except (TypeError, ValueError) as error:
        return verdict(False, str(error))
    if len(writers) != WRITERS_2:
        return verdict(False, f"the schedule has {len(writers)} writer(s) ({', '.join(writers)}"
                              f"); the task asks for {WRITERS_2}")
    uncommitted = sorted(set(writers) - {w for a, w in check_schedule(schedule) if a == "commit"})
    if uncommitted:
        return verdict(False, f"{', '.join(uncommitted)} never commit(s): a row that is never "
                              "committed cannot be skipped, only missing")
    skipped = run.skipped[HIGH_WATER_MARK]
    if len(skipped) != SKIPS_2:
        return verdict(False, f"the high-water mark skips {len(skipped)} row(s) {skipped}; it "
                              f"must skip {SKIPS_2}: which rows commit after a poll has seen a "
                              "higher seq?")
    fixed = run_schedule(serialise(schedule)).skipped[HIGH_WATER_MARK]
    if fixed:
        return verdict(False, f"serialised, it still skips {fixed}")
    return verdict(True, f"the high-water mark skips seq {skipped}; serialised, it skips none")


def drops_the_duplicate(window_min: float, late_min: float = LATE_MIN_3) -> bool:
    """Deliver once at t = 0, clean up the inbox with a ``window_min`` window and redeliver
    ``late_min`` minutes later: is the duplicate dropped?"""
    inbox = Inbox(open_db(), "shipping")
    duplicate = event("OrderPlaced", "order-9", {"total": 5.0})
    late_ms = late_min * 60_000

    def effect(conn, message):
        return None

    inbox.process(duplicate, effect, now=0)
    inbox.purge(now=late_ms, retention_ms=window_min * 60_000)
    return not inbox.process(duplicate, effect, now=late_ms)


def check_exercise_3(window_min) -> None:
    """The smallest whole number of minutes of inbox retention that drops a duplicate coming
    two hours after the first delivery."""
    if window_min is None:
        return verdict(False, "set answer_window_min to a number of minutes and rerun")
    if (isinstance(window_min, bool) or not isinstance(window_min, numbers.Integral)
            or not 0 <= window_min <= MAX_WINDOW_MIN):
        return verdict(False, f"answer_window_min must be a whole number of minutes from 0 to "
                              f"{MAX_WINDOW_MIN:,} (a week), got {window_min!r}")
    if not drops_the_duplicate(window_min):
        return verdict(False, f"with a {window_min}-minute window the row is purged before the "
                              f"duplicate comes, {LATE_MIN_3} minutes later: it is processed "
                              "twice")
    if window_min and drops_the_duplicate(window_min - 1):
        return verdict(False, f"{window_min} minutes drops the duplicate, but a smaller window "
                              "does too")
    return verdict(True, f"{window_min} minutes keeps the row of t = 0 until the duplicate comes; "
                         f"{window_min - 1} minutes purges it first")
