"""Sagas run on the clock: every failure path, timeouts, retries, lock, many sagas, restarts."""

from __future__ import annotations

import pytest
from saga_helpers import (
    ACTIONS,
    DEFINITION,
    ORDER,
    STEPS,
    all_problems,
    order,
    run_one,
    transitions,
    undone,
)

from eda_lab import Broker, Clock, FaultPlan, Outage, Trace, fault_points
from eda_lab.saga import OrchestratorDown, OrderLocked, SagaRunner, step_states
from eda_lab.saga.orchestrator import MAX_BACKOFF_MS, REPLY_TIMEOUT_MS, RETRY_BUDGET_MS
from eda_lab.saga.runner import CRASH_LOOP, RunStopped


def test_the_happy_path_runs_every_step_once_in_order():
    runner, saga_id = run_one()
    assert runner.status(saga_id) == "completed"
    assert transitions(runner, saga_id) == [("started", None)] + [
        pair for step in STEPS for pair in (("step_sent", step), ("step_succeeded", step))
    ] + [("completed", None)]
    assert all_problems(runner, saga_id) == []
    # ten hops of 10 ms, each message 5 ms behind its commit (the log-tailing relay's stream
    # latency)
    assert runner.clock.now == 150.0
    assert runner.data()["order"]["orders"][0]["state"] == "APPROVED"


@pytest.mark.parametrize("failing", ["create_order", "reserve_inventory", "authorize_payment"])
def test_a_refusal_up_to_the_pivot_undoes_the_completed_steps_in_reverse(failing):
    action = DEFINITION.steps[DEFINITION.index(failing)].action
    runner, saga_id = run_one({action: "fail"})
    completed = STEPS[:STEPS.index(failing)]
    assert runner.status(saga_id) == "compensated"
    assert undone(runner, saga_id) == list(reversed(completed))
    assert all_problems(runner, saga_id) == []
    assert "step outcomes say" in runner.log.get(saga_id).reason
    states = step_states(STEPS, runner.log.history(saga_id))
    assert states[failing] == "failed"
    assert all(states[s] == "compensated" for s in completed)
    assert all(states[s] == "pending" for s in STEPS[STEPS.index(failing) + 1:])


@pytest.mark.parametrize("failing", ["schedule_shipping", "approve_order"])
def test_a_refused_retriable_step_is_retried_and_the_saga_completes(failing):
    action = DEFINITION.steps[DEFINITION.index(failing)].action
    runner, saga_id = run_one({action: ["fail", "fail"]})
    assert runner.status(saga_id) == "completed"
    rows = [r for r in runner.log.history(saga_id) if r["step"] == failing]
    assert [r["transition"] for r in rows] == [
        "step_sent", "step_failed", "retry_scheduled", "step_sent", "step_failed",
        "retry_scheduled", "step_sent", "step_succeeded"]
    assert [r["attempt"] for r in rows if r["transition"] == "step_sent"] == [1, 2, 3]
    # the backoff doubles: 200 ms, then 400 ms (each +-20% jitter), between the refusals and
    # the next attempts
    times = [r["time_ms"] for r in rows if r["transition"] in ("step_failed", "step_sent")]
    waits = [b - a for a, b in zip(times[1::2], times[2::2], strict=False)]
    assert 160 <= waits[0] <= 240 and 320 <= waits[1] <= 480
    assert all_problems(runner, saga_id) == []


@pytest.mark.parametrize("failing", STEPS)
def test_a_timeout_is_a_technical_failure_asked_again_and_the_duplicate_gets_the_first_answer(
        failing):
    """No reply is not a refusal: the participant did the work and its reply was lost, so the
    same command goes again, before the pivot as after it; nothing is undone."""
    action = DEFINITION.steps[DEFINITION.index(failing)].action
    runner, saga_id = run_one({action: "time out"})
    assert runner.status(saga_id) == "completed"
    pairs = transitions(runner, saga_id)
    assert ("step_timed_out", failing) in pairs and ("retry_scheduled", failing) in pairs
    participant = runner.participants[DEFINITION.steps[DEFINITION.index(failing)].participant]
    assert participant.duplicates == 1  # asked twice, did it once
    assert all_problems(runner, saga_id) == []


def test_a_timed_out_pivot_is_never_done_twice():
    runner, saga_id = run_one({"AuthorizePayment": "time out"})
    assert runner.data()["payment"]["accounts"][0]["authorized"] == 30.0
    assert len(runner.data()["payment"]["authorizations"]) == 1


def test_a_compensation_that_keeps_failing_stops_in_needs_attention_visibly():
    runner, saga_id = run_one({"AuthorizePayment": "fail", "ReleaseInventory": ["fail"] * 3})
    state = runner.log.get(saga_id)
    assert state.status == "needs_attention"
    assert state.reason.startswith("refused 3 times")
    assert step_states(STEPS, runner.log.history(saga_id))["reserve_inventory"] == "needs_attention"
    assert not runner.busy  # stopped, not looping
    assert runner.trace.of_kind("saga")[-1].detail.startswith("needs_attention reserve_inventory")
    assert all_problems(runner, saga_id) == [f"{saga_id} needs attention: {state.reason}"]
    # what was not undone is still there for a person to see
    assert runner.data()["inventory"]["reservations"][0]["state"] == "RESERVED"


def test_a_compensation_that_fails_twice_is_retried_and_still_compensates():
    runner, saga_id = run_one({"AuthorizePayment": "fail", "RejectOrder": ["fail", "time out"]})
    assert runner.status(saga_id) == "compensated"
    assert all_problems(runner, saga_id) == []


def test_duplicated_deliveries_are_ignored_everywhere():
    runner, saga_id = run_one(faults=FaultPlan({"broker.duplicate": True}))
    assert runner.status(saga_id) == "completed"
    # each command came twice: done once; the duplicate's stored reply was still waiting in the
    # outbox, so each reply went out once, and the broker duplicated it
    assert sum(p.duplicates for p in runner.participants.values()) == 5
    ignored = runner.trace.of_kind("ignore")
    assert sum(r.actor == "orchestrator" for r in ignored) == 5  # 2 copies of 5 replies, 1 used
    assert all_problems(runner, saga_id) == []


def test_the_data_itself_can_refuse_out_of_stock_and_over_the_credit_limit():
    runner = SagaRunner()
    lamps = [runner.start(order(n, sku="lamp", quantity=1, amount=20.0)) for n in range(1, 5)]
    big = runner.start(order(9, customer="bob", amount=75.0))
    runner.run()
    assert [runner.status(s) for s in lamps] == ["completed"] * 3 + ["compensated"]
    assert "out of stock: 0 x lamp left" in runner.log.get(lamps[3]).reason
    assert runner.status(big) == "compensated"
    assert "card declined" in runner.log.get(big).reason
    assert all_problems(runner, *lamps, big) == []


def test_the_order_is_visibly_pending_while_the_saga_runs_and_the_lock_holds():
    runner = SagaRunner()
    first = runner.start(ORDER)
    second = runner.start(ORDER)  # a second saga for the same order
    orders = runner.participants["order"]
    runner.run(until_ms=50)
    assert runner.status(first) == "running"
    assert orders.read_order("order-1")["state"] == "PENDING"  # a concurrent reader sees it
    with pytest.raises(OrderLocked):
        orders.cancel_order("order-1")
    runner.run()
    assert runner.status(first) == "completed" and runner.status(second) == "compensated"
    assert "semantic lock" in runner.log.get(second).reason
    assert orders.read_order("order-1")["state"] == "APPROVED"
    assert all_problems(runner, first, second) == []


def test_many_sagas_share_one_broker_clock_and_trace():
    broker = Broker(Clock(), Trace(), FaultPlan({"broker.duplicate": 0.3}, seed=4))
    runner = SagaRunner(broker=broker, stock={"book": 100}, accounts={"alice": 10_000.0})
    ids = [runner.start(order(n)) for n in range(40)]
    runner.run()
    assert {runner.status(s) for s in ids} == {"completed"}
    assert runner.trace is broker.trace and runner.clock is broker.clock
    assert runner.data()["inventory"]["stock"][0]["available"] == 20
    assert all_problems(runner, *ids) == []


@pytest.mark.parametrize("outage_ms", [3_000, 60_000])
def test_a_participant_outage_is_ridden_out_by_retries_with_backoff(outage_ms):
    faults = FaultPlan(outages=[Outage("inventory", 0, outage_ms)])
    runner, saga_id = run_one(faults=faults)
    assert runner.status(saga_id) == "completed"
    pairs = transitions(runner, saga_id)
    assert ("step_timed_out", "reserve_inventory") in pairs
    assert ("compensating", None) not in pairs  # a technical failure undoes nothing
    assert all_problems(runner, saga_id) == []
    assert runner.data()["inventory"]["reservations"][0]["state"] == "RESERVED"
    # the backoff grew and was capped: tries are at most MAX_BACKOFF_MS (+20%) apart
    sent = [r["time_ms"] for r in runner.log.history(saga_id)
            if r["transition"] == "retry_scheduled" and r["step"] == "reserve_inventory"]
    assert max(b - a for a, b in zip(sent, sent[1:], strict=False)) <= 1.2 * MAX_BACKOFF_MS + \
        REPLY_TIMEOUT_MS


def test_an_outage_longer_than_the_retry_budget_stops_in_needs_attention():
    faults = FaultPlan(outages=[Outage("inventory", 0, 200_000)])
    runner, saga_id = run_one(faults=faults)
    state = runner.log.get(saga_id)
    assert state.status == "needs_attention"
    assert "unanswered" in state.reason
    assert state.updated_ms <= RETRY_BUDGET_MS + 1_000


def test_an_orchestrator_crash_is_recovered_from_the_log_by_a_new_orchestrator():
    runner, saga_id = run_one(faults=FaultPlan({"saga.after_record": 3}))
    assert runner.status(saga_id) == "completed"
    assert runner.restarts == 1
    resumed = [r for r in runner.log.history(saga_id) if r["transition"] == "resumed"]
    assert [r["step"] for r in resumed] == ["authorize_payment"]
    assert all_problems(runner, saga_id) == []


def test_starting_a_saga_while_the_orchestrator_is_down_is_refused_clearly():
    runner = SagaRunner(faults=FaultPlan({"saga.after_record": 1}))
    runner.start(ORDER)
    with pytest.raises(OrchestratorDown, match="the orchestrator crashed and restarts 300 ms"):
        runner.start(order(2))
    runner.run()
    assert runner.start(order(2)) == "saga-0002"


def test_a_new_runner_over_the_same_files_resumes_unfinished_sagas(tmp_path):
    runner = SagaRunner(directory=tmp_path)
    saga_id = runner.start(ORDER)
    runner.run(until_ms=45)  # the whole shop stops mid-saga
    assert runner.status(saga_id) == "running"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == [
        "inventory.db", "order.db", "payment.db", "saga_log.db", "shipping.db"]
    again = SagaRunner(directory=tmp_path)  # a new process, reading the same databases
    again.run()
    assert again.status(saga_id) == "completed"
    assert again.problems(saga_id) == []
    assert again.data()["inventory"]["stock"][0]["available"] == 8  # reserved once


def test_a_file_is_refused_as_the_database_folder(tmp_path):
    (tmp_path / "shop").write_text("not a folder")
    with pytest.raises(ValueError, match="directory must be a folder for the databases"):
        SagaRunner(directory=tmp_path / "shop")


def test_step_advances_one_thing_at_a_time_and_ends_empty():
    runner = SagaRunner()
    runner.start(ORDER)
    handled = []
    while records := runner.step():
        handled.append([r for r in records if r.kind in ("handle", "saga")])
        assert sum(r.kind == "deliver" for r in records) <= 1
    assert runner.step() == [] and not runner.busy
    assert len(handled) == 10  # five commands handled, five replies taken
    assert runner.status("saga-0001") == "completed"


@pytest.mark.parametrize("options, error, message", [
    ({"latency_ms": 0}, ValueError, "latency_ms must be a number of ms > 0"),
    ({"restart_after_ms": -1}, ValueError, "restart_after_ms must be a number of ms > 0"),
    ({"outcomes": {"Refund": "fail"}}, ValueError, "outcomes: unknown command 'Refund'"),
    ({"definition": "create_order"}, TypeError, "definition must be a SagaDefinition"),
    ({"broker": Broker(), "faults": FaultPlan()}, ValueError, "not both"),
])
def test_bad_runner_options_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        SagaRunner(**options)


def test_participants_that_cannot_run_the_definition_are_refused():
    broker = Broker()
    from eda_lab.saga import shop_participants
    services = shop_participants(broker)
    del services["shipping"]
    with pytest.raises(ValueError, match="step 'schedule_shipping' needs a participant named "
                                         "'shipping'"):
        SagaRunner(broker=broker, participants=services)
    with pytest.raises(ValueError, match="'order' was made on another broker"):
        SagaRunner(broker=Broker(), participants=shop_participants(broker))
    with pytest.raises(ValueError, match="until_ms"):
        SagaRunner().run(until_ms=-1)


def test_the_timeline_tells_the_story_in_order():
    runner, _ = run_one({"AuthorizePayment": "fail"})
    frame = runner.timeline()
    assert set(frame["kind"]) <= {"publish", "handle", "ignore", "saga", "crash", "restart",
                                  "lost", "drop", "unavailable"}
    published = list(frame[frame["kind"] == "publish"]["message_type"])
    assert published[:6] == ["CreatePendingOrder", "OrderCreated", "ReserveInventory",
                             "InventoryReserved", "AuthorizePayment", "PaymentDeclined"]
    assert published[6:] == ["ReleaseInventory", "InventoryReleased", "RejectOrder",
                             "OrderRejected"]
    assert ACTIONS[2] == "AuthorizePayment"


def test_a_service_may_take_several_waiting_messages_per_event():
    runner = SagaRunner(max_batch=100)
    ids = [runner.start(order(n, sku="book", quantity=1)) for n in range(1, 6)]
    runner.run()
    assert {runner.status(s) for s in ids} == {"completed"}
    assert runner.clock.now == 150.0  # five sagas side by side, ten hops each (as one saga)
    with pytest.raises(ValueError, match="max_batch must be an integer >= 1"):
        SagaRunner(max_batch=0)


def test_effects_and_tables_read_each_service_database():
    runner, saga_id = run_one({"AuthorizePayment": "fail"})
    assert runner.effects(saga_id) == {"create_order": "undone", "reserve_inventory": "undone",
                                       "authorize_payment": "none", "schedule_shipping": "none",
                                       "approve_order": "none"}
    tables = runner.tables()
    assert list(tables) == ["order.orders", "inventory.stock", "inventory.reservations",
                            "payment.accounts", "payment.authorizations", "shipping.shipments"]
    assert list(tables["inventory.reservations"]["state"]) == ["RELEASED"]


def test_sagas_share_a_broker_with_other_consumers_of_the_same_service_names():
    """The capstone's broker already has a 'shipping' group reading the orders topic."""
    broker = Broker(Clock(), Trace(), FaultPlan())
    broker.create_topic("orders")
    broker.consumer("shipping", "orders")
    runner = SagaRunner(broker=broker)
    saga_id = runner.start(ORDER)
    runner.run()
    assert runner.status(saga_id) == "completed"
    assert sorted(g for g in broker.groups if g.startswith("saga-")) == [
        "saga-inventory", "saga-orchestrator", "saga-order", "saga-payment", "saga-shipping"]


@pytest.mark.parametrize("recovery", ["deadlines", "resend-all"])
@pytest.mark.parametrize("value", [True, 1.0])
@pytest.mark.parametrize("point", fault_points("saga."))
def test_every_saga_crash_point_set_to_always_ends_and_names_the_point(point, value, recovery):
    """A crash at every visit either cannot stop the saga (a restart gets past it) or is a
    crash loop: run() then stops at once with an error that names the point."""
    try:
        runner, saga_id = run_one(faults=FaultPlan({point: value}), recovery=recovery)
    except RunStopped as stopped:
        assert f"crashed at {point} {CRASH_LOOP} times in a row" in str(stopped)
    else:
        assert runner.status(saga_id) == "completed" and not runner.busy
        # (saga.after_send is never reached when commands go through the outbox)
        assert runner.restarts > 0 or (point, recovery) == ("saga.after_send", "deadlines")


def test_a_run_stops_at_its_bound_of_simulated_time_or_restarts():
    runner = SagaRunner(faults=FaultPlan(outages=[Outage("inventory", 0, 100_000)]))
    runner.start(ORDER)
    with pytest.raises(RunStopped, match="5000 ms of simulated time passed"):
        runner.run(max_ms=5_000)
    runner = SagaRunner(faults=FaultPlan({"saga.participant_after_commit": 0.5}, seed=3))
    runner.start(ORDER)
    with pytest.raises(RunStopped, match="stopped after 1 restarts"):
        runner.run(max_restarts=1)


@pytest.mark.parametrize("recovery", ["deadlines", "resend-all"])
def test_the_orchestrator_s_states_in_memory_are_always_the_log_s(recovery):
    """What the orchestrator keeps in memory (so a reply needs no read) is the log's copy,
    through crashes, restarts, timeouts and duplicates; a finished saga is only in the log."""
    faults = FaultPlan(seed=3)
    runner = SagaRunner(faults=faults, stock={"book": 100}, accounts={"alice": 10_000.0},
                        recovery=recovery, reply_timeout_ms=200.0)
    ids = [runner.start(order(n)) for n in range(20)]
    for point, rate in {"saga.after_record": 0.05, "saga.before_record": 0.05,
                        "broker.duplicate": 0.1, "broker.drop": 0.05}.items():
        faults.set_point(point, rate)   # the storm begins once every saga has started
    checked = 0
    while runner.busy and runner.clock.now < 60_000:
        runner.step()
        orchestrator = runner.orchestrator
        if orchestrator is None:
            continue
        unfinished = {s.saga_id: s for s in runner.log.unfinished()}
        assert set(orchestrator.open) == set(unfinished)
        assert {s: orchestrator._states[s] for s in unfinished} == unfinished
        checked += 1
    assert checked > 100 and runner.orchestrator_process.crashes > 0
    assert {runner.status(s) for s in ids} <= {"completed", "compensated"}
