"""Several relay instances on one outbox (notebook 04 §9), and the inbox's retention window."""

from __future__ import annotations

import pytest

from eda_lab.db import open_db
from eda_lab.inbox import Inbox
from eda_lab.messages import event
from eda_lab.outbox.relay_instances import MODES, run_relay_instances

SEEDS = range(10)


def test_competing_relays_publish_duplicates_but_keep_the_order():
    for seed in SEEDS:
        report = run_relay_instances("competing", seed=seed)
        assert report.duplicates > 0 and report.order_violations == 0
        assert report.published - report.duplicates == report.events


def test_claiming_rows_stops_the_duplicates_but_can_reorder_one_orders_events():
    reports = [run_relay_instances("claiming", seed=seed) for seed in SEEDS]
    assert all(r.duplicates == 0 and r.published == r.events for r in reports)
    assert any(r.order_violations > 0 for r in reports)


def test_a_leader_lease_keeps_the_order_and_a_failover_repeats_at_most_one_batch():
    for seed in SEEDS:
        report = run_relay_instances("leader", seed=seed, batch_size=4)
        assert report.order_violations == 0
        assert 0 < report.duplicates <= 4 and report.published - report.duplicates == 30
        calm = run_relay_instances("leader", seed=seed, leader_dies_at_round=None)
        assert (calm.duplicates, calm.order_violations) == (0, 0)


@pytest.mark.parametrize("options, message", [
    ({"mode": "many"}, "mode must be one of"),
    ({"mode": "leader", "n_orders": 10**9}, "n_orders must be an integer"),
    ({"mode": "claiming", "batch_size": 0}, "batch_size must be an integer >= 1"),
])
def test_bad_settings_are_refused(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        run_relay_instances(**options)
    assert set(MODES) == {"competing", "claiming", "leader"}


def test_an_inbox_forgets_after_its_window_and_a_late_redelivery_is_processed_twice():
    inbox = Inbox(open_db(), "shipping")
    applied = []
    message = event("OrderPlaced", "order-1", {"total": 30})
    assert inbox.process(message, lambda conn, m: applied.append(m.id), now=0)
    assert not inbox.process(message, lambda conn, m: applied.append(m.id), now=1_000)
    assert inbox.purge(now=30 * 60_000, retention_ms=30 * 60_000) == 0   # still in the window
    assert inbox.purge(now=30 * 60_000 + 1, retention_ms=30 * 60_000) == 1
    assert inbox.process(message, lambda conn, m: applied.append(m.id), now=30 * 60_000 + 2)
    assert applied == [message.id, message.id]   # the promise had a horizon
    with pytest.raises(ValueError, match="retention_ms"):
        inbox.purge(now=0, retention_ms=-1)
