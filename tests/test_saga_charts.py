"""The saga charts draw what the trace and the log say (as data first, then as Axes)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from saga_helpers import STEPS, run_one

from eda_lab import FaultPlan
from eda_lab.saga import step_states
from eda_lab.saga.charts import message_arrows, saga_boxes, saga_timeline, sequence_rows


def test_arrows_follow_each_message_from_sender_to_receiver():
    runner, _ = run_one({"AuthorizePayment": "fail"})
    arrows = message_arrows(runner.trace.frame())
    assert [(a["sender"], a["receiver"], a["type"], a["kind"]) for a in arrows][4:8] == [
        ("orchestrator", "payment", "AuthorizePayment", "command"),
        ("payment", "orchestrator", "PaymentDeclined", "reply_failed"),
        ("orchestrator", "inventory", "ReleaseInventory", "compensation"),
        ("inventory", "orchestrator", "InventoryReleased", "reply_succeeded")]
    assert all(a["arrived"] == a["time"] + 10.0 for a in arrows)


def test_a_lost_reply_a_timeout_a_crash_and_a_restart_are_marked():
    runner, _ = run_one({"ReserveInventory": "time out"}, FaultPlan({"saga.after_record": 4}))
    rows = sequence_rows(runner.trace.frame())
    kinds = [r["kind"] for r in rows]
    assert "lost" in kinds and "timeout" in kinds and "crash" in kinds and "restart" in kinds
    lost = next(r for r in rows if r["kind"] == "lost")
    assert (lost["type"], lost["arrived"]) == ("InventoryReserved", None)
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)


def test_the_charts_return_axes_with_one_box_per_step_and_one_row_per_message():
    runner, saga_id = run_one()
    ax = saga_timeline(runner.trace.frame())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["orchestrator", "order", "inventory",
                                                            "payment", "shipping"]
    # per message: its arrow (an annotation), its label and its time
    assert len(ax.texts) == 3 * len(sequence_rows(runner.trace.frame()))
    plt.close(ax.figure)
    states = step_states(STEPS, runner.log.history(saga_id))
    ax = saga_boxes({"a": states, "b": dict.fromkeys(STEPS, "pending")})
    assert len(ax.patches) == 2 * len(STEPS)
    assert [t.get_text() for t in ax.texts[:len(STEPS)]] == ["done"] * len(STEPS)
    plt.close(ax.figure)
