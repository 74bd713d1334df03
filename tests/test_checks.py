"""The consistency checker counts each kind of inconsistency, and only that kind."""

from __future__ import annotations

import pytest

from eda_lab import event
from eda_lab.outbox import check_consistency


def msg(order: str, version: int = 1, id: str | None = None):
    return event("OrderPlaced", order, {}, headers={"version": str(version)},
                 id=id or f"{order}-v{version}")


def test_everything_applied_once_is_consistent():
    received = [msg("o1"), msg("o2")]
    report = check_consistency({"o1": 1, "o2": 1}, received, received)
    assert report.ok and report.lost == report.phantom == 0 and report.committed == 2


def test_a_committed_event_never_applied_is_lost_unless_still_in_flight():
    report = check_consistency({"o1": 1, "o2": 1}, [msg("o1")], [msg("o1")])
    assert report.lost == 1 and report.lost_events == (("o2", 1),) and not report.ok
    moving = check_consistency({"o1": 1, "o2": 1}, [msg("o1")], [msg("o1")], [("o2", 1)])
    assert moving.lost == 0 and moving.in_flight == 1


def test_an_event_for_an_order_never_committed_is_phantom():
    report = check_consistency({"o1": 1}, [msg("o1"), msg("ghost")], [msg("o1"), msg("ghost")])
    assert report.phantom == 1 and report.phantom_events == (("ghost", 1),)
    newer = check_consistency({"o1": 1}, [msg("o1", 2)], [msg("o1", 2)])
    assert newer.phantom == 1 and newer.lost == 1


def test_duplicate_deliveries_are_normal_but_duplicate_effects_are_not():
    once = msg("o1")
    report = check_consistency({"o1": 1}, [once, once, once], [once])
    assert report.duplicate_deliveries == 2 and report.duplicate_effects == 0 and report.ok
    double = check_consistency({"o1": 1}, [once, once], [once, once])
    assert double.duplicate_effects == 1 and not double.ok


def test_an_older_event_applied_after_a_newer_one_is_an_order_violation():
    truth = {"o1": 3, "o2": 1}
    in_order = [msg("o1", 1), msg("o2", 1), msg("o1", 2), msg("o1", 3)]
    assert check_consistency(truth, in_order, in_order).order_violations == 0
    swapped = [msg("o1", 2), msg("o1", 1), msg("o1", 3), msg("o2", 1)]
    assert check_consistency(truth, swapped, swapped).order_violations == 1
    # a redelivery of an old event after a newer one is a duplicate, not a violation
    again = [msg("o1", 1), msg("o1", 2), msg("o1", 1), msg("o1", 3)]
    report = check_consistency(truth, again, again)
    assert report.order_violations == 0 and report.duplicate_effects == 1


def test_rows_and_tuples_are_accepted_too():
    rows = [{"message_id": "a", "order_id": "o1", "version": 1}]
    assert check_consistency({"o1": 1}, [("a", "o1", 1)], rows).ok


def test_bad_input_says_what_is_expected():
    with pytest.raises(TypeError, match="truth"):
        check_consistency([("o1", 1)], [], [])
    with pytest.raises(TypeError, match="message_id"):
        check_consistency({"o1": 1}, [42], [])
