"""The saga charts draw what the trace and the log say (as data first, then as Axes)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from saga_helpers import STEPS, run_one

from eda_lab import FaultPlan
from eda_lab.saga import step_states
from eda_lab.saga.charts import GAP_MS, message_arrows, saga_boxes, saga_timeline, sequence_rows


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


def test_the_timeline_says_it_is_not_to_scale_and_how_long_each_long_gap_is():
    runner, _ = run_one({"AuthorizePayment": "time out"})
    rows = sequence_rows(runner.trace.frame())
    gaps = [b["time"] - a["time"] for a, b in zip(rows, rows[1:], strict=False)
            if b["time"] - a["time"] >= GAP_MS]
    ax = saga_timeline(runner.trace.frame())
    labels = [t.get_text() for t in ax.texts if t.get_text().endswith(" ms pass")]
    assert labels == [f"{gap:,.0f} ms pass" for gap in gaps] and gaps   # the 1 s timeout is one
    assert "not to scale" in ax.get_ylabel()
    plt.close(ax.figure)


def test_the_legend_draws_each_mark_as_the_chart_does():
    runner, _ = run_one({}, FaultPlan({"saga.after_record": 2}))
    ax = saga_timeline(runner.trace.frame())
    legend = {h.get_label(): h for h in ax.get_legend().legend_handles}
    drawn = [line for line in ax.lines if line.get_marker() == "o" and line.get_xydata().size]
    assert legend["restart"].get_markerfacecolor() == "white"
    assert all(line.get_markerfacecolor() == "white" for line in drawn)
    assert legend["crash"].get_markerfacecolor() != "white"
    plt.close(ax.figure)
