"""The saga log: state and history written together, read back as the boxes the stepper shows."""

from __future__ import annotations

import pytest

from eda_lab import Crash
from eda_lab.db import open_db, transaction
from eda_lab.saga import SagaLog, SagaState, step_states

STEPS = ["create_order", "reserve_inventory", "authorize_payment"]


@pytest.fixture
def log():
    return SagaLog(open_db())


def _state(**changes):
    return SagaState("saga-1", "create_order", "order-1", {"order_id": "order-1"}).but(**changes)


def test_begin_writes_the_saga_and_its_first_transitions_together(log):
    log.begin(_state(command_id="c1", awaiting=True, deadline_ms=1000.0),
              [("started", None, None, None, ""), ("step_sent", "create_order", 1, "c1", "")], 0.0)
    state = log.get("saga-1")
    assert state.status == "running" and state.awaiting and state.deadline_ms == 1000.0
    assert state.payload == {"order_id": "order-1"}
    assert [r["transition"] for r in log.history("saga-1")] == ["started", "step_sent"]
    assert [s.saga_id for s in log.unfinished()] == ["saga-1"]


def test_a_saga_id_is_never_overwritten(log):
    log.begin(_state(), [("started", None, None, None, "")], 0.0)
    with pytest.raises(ValueError, match="saga_id 'saga-1' is already in the saga log"):
        log.begin(_state(order_id="order-2"), [("started", None, None, None, "")], 5.0)
    assert log.get("saga-1").order_id == "order-1"
    assert len(log.history()) == 1


def test_record_updates_the_state_and_appends_history_in_one_transaction(log):
    log.begin(_state(), [("started", None, None, None, "")], 0.0)
    log.record(_state(status="compensated", plan=(1, 0), reason="declined"),
               [("step_failed", "authorize_payment", 1, "c3", "declined"),
                ("compensated", None, None, None, "declined")], 10.0)
    state = log.get("saga-1")
    assert (state.status, state.plan, state.reason, state.updated_ms) == (
        "compensated", (1, 0), "declined", 10.0)
    assert log.unfinished() == []
    assert list(log.frame("saga-1")["transition"]) == ["started", "step_failed", "compensated"]


def test_a_crash_inside_the_transaction_keeps_neither_state_nor_history(log):
    log.begin(_state(), [("started", None, None, None, "")], 0.0)
    with pytest.raises(Crash), transaction(log.db) as conn:
        conn.execute("UPDATE sagas SET status='completed'")
        conn.execute("INSERT INTO saga_log (saga_id, transition) VALUES ('saga-1', 'completed')")
        raise Crash("saga.after_record")
    assert log.get("saga-1").status == "running"
    assert len(log.history()) == 1


def test_unfinished_leaves_out_final_sagas_and_other_definitions(log):
    log.begin(_state(), [], 0.0)
    log.begin(_state(saga_id="saga-2", status="compensating"), [], 1.0)
    log.begin(_state(saga_id="saga-3", status="needs_attention"), [], 2.0)
    log.begin(_state(saga_id="saga-4", definition="cancel_order"), [], 3.0)
    assert [s.saga_id for s in log.unfinished("create_order")] == ["saga-1", "saga-2"]
    assert [s.saga_id for s in log.unfinished()] == ["saga-1", "saga-2", "saga-4"]
    assert log.count() == 4
    assert list(log.summary()["status"]) == ["running", "compensating", "needs_attention", "running"]


def test_a_file_log_survives_closing_the_connection(tmp_path):
    db = open_db(tmp_path / "saga_log.db")
    SagaLog(db).begin(_state(), [("started", None, None, None, "")], 0.0)
    db.conn.close()
    again = SagaLog(open_db(tmp_path / "saga_log.db"))
    assert again.get("saga-1").status == "running"


def _rows(*pairs):
    return [{"transition": t, "step": s} for t, s in pairs]


def test_step_states_fold_the_log_into_boxes():
    rows = _rows(("started", None), ("step_sent", "create_order"),
                 ("step_succeeded", "create_order"), ("step_sent", "reserve_inventory"),
                 ("step_succeeded", "reserve_inventory"), ("step_sent", "authorize_payment"),
                 ("step_failed", "authorize_payment"), ("compensating", None),
                 ("compensation_sent", "reserve_inventory"),
                 ("compensation_succeeded", "reserve_inventory"),
                 ("compensation_sent", "create_order"))
    assert step_states(STEPS, rows) == {"create_order": "compensating",
                                        "reserve_inventory": "compensated",
                                        "authorize_payment": "failed"}
    assert step_states(STEPS, rows[:4]) == {"create_order": "done", "reserve_inventory": "running",
                                            "authorize_payment": "pending"}


def test_a_retried_step_goes_back_to_running_and_a_stuck_one_needs_attention():
    rows = _rows(("step_sent", "create_order"), ("step_timed_out", "create_order"))
    assert step_states(STEPS, rows)["create_order"] == "failed"
    rows += _rows(("retry_scheduled", "create_order"))
    assert step_states(STEPS, rows)["create_order"] == "running"
    rows += _rows(("needs_attention", "create_order"))
    assert step_states(STEPS, rows)["create_order"] == "needs_attention"
