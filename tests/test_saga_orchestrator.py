"""The orchestrator's plain logic, driven by hand: no runner, no timers, just calls and the log."""

from __future__ import annotations

import pytest
from saga_helpers import DEFINITION, ORDER

from eda_lab import Broker, Clock, FaultPlan, Trace
from eda_lab.saga import SagaOrchestrator, shop_participants
from eda_lab.saga.commands import command_id


def make(faults=None, **options):
    broker = Broker(Clock(), Trace(), faults or FaultPlan())
    participants = shop_participants(broker)
    return broker, participants, SagaOrchestrator(DEFINITION, broker, **options)


def deliver(broker, participants, orchestrator, rounds=1):
    """Hand every waiting command to its participant and every reply to the orchestrator."""
    for _ in range(rounds):
        for participant in participants.values():
            for delivery in _reader(broker, participant.topic).poll():
                participant.on_command(delivery.message)
        for topic in orchestrator.reply_topics:
            for delivery in _reader(broker, topic).poll():
                orchestrator.on_reply(delivery.message)


def _reader(broker, topic):
    group = f"test-{topic}"
    if group in broker.groups:
        return next(iter(broker.group(group).consumers.values()))
    return broker.consumer(group, topic)


def test_start_records_then_sends_the_first_command():
    broker, _, orchestrator = make()
    saga_id = orchestrator.start(ORDER)
    assert saga_id == "saga-0001"
    [sent] = broker.messages("order.commands")
    assert (sent.type, sent.kind, sent.key) == ("CreatePendingOrder", "command", "saga-0001")
    assert sent.id == command_id("saga-0001", "create_order", "forward", 1)
    assert dict(sent.headers) == {"saga_id": "saga-0001", "step": "create_order",
                                  "direction": "forward", "attempt": "1"}
    assert [r["transition"] for r in orchestrator.log.history()] == ["started", "step_sent"]
    assert orchestrator.open == {"saga-0001"}
    assert orchestrator.next_saga_id() == "saga-0002"


def test_replies_move_the_saga_to_completion():
    broker, participants, orchestrator = make()
    saga_id = orchestrator.start(ORDER)
    deliver(broker, participants, orchestrator, rounds=5)
    assert orchestrator.log.get(saga_id).status == "completed"
    assert orchestrator.open == set()


def test_a_duplicate_reply_is_ignored_and_changes_nothing():
    broker, participants, orchestrator = make()
    saga_id = orchestrator.start(ORDER)
    deliver(broker, participants, orchestrator)
    [reply] = broker.messages("order.replies")
    before = orchestrator.log.history()
    assert orchestrator.on_reply(reply) == "ignored"
    assert orchestrator.log.history() == before
    assert orchestrator.log.get(saga_id).step == 1
    assert broker.trace.of_kind("ignore")[-1].detail.startswith("duplicate or late reply")


def test_a_deadline_is_handled_only_once_it_has_passed():
    broker, _, orchestrator = make(reply_timeout_ms=500)
    saga_id = orchestrator.start(ORDER)
    assert orchestrator.on_deadline(saga_id) is None and orchestrator.tick() == []
    broker.clock.advance(500)
    assert orchestrator.due() == [saga_id]
    assert orchestrator.tick() == [saga_id]
    # create_order timed out before the pivot: it is undone itself (its outcome is unknown)
    state = orchestrator.log.get(saga_id)
    assert (state.status, DEFINITION.steps[state.step].name) == ("compensating", "create_order")
    assert broker.messages("order.commands")[-1].type == "RejectOrder"


def test_a_refused_send_is_retried_with_backoff_then_turns_back_before_the_pivot():
    broker, _, orchestrator = make(FaultPlan({"broker.unavailable": [1, 2, 3]}),
                                   retry_backoff_ms=100, max_attempts=3)
    saga_id = orchestrator.start(ORDER)
    state = orchestrator.log.get(saga_id)
    assert (state.awaiting, state.deadline_ms, state.tries) == (False, 100.0, 2)
    broker.clock.advance(100)
    orchestrator.tick()  # 2nd send refused: the backoff doubles
    assert orchestrator.log.get(saga_id).deadline_ms == 300.0
    broker.clock.advance(200)
    orchestrator.tick()  # 3rd send refused: out of tries, undo create_order (it may have gone)
    transitions = [r["transition"] for r in orchestrator.log.history(saga_id)]
    assert transitions.count("send_failed") == 3
    assert transitions[-2:] == ["compensating", "compensation_sent"]
    assert [m.type for m in broker.messages("order.commands")] == ["RejectOrder"]


def test_recover_sends_the_awaited_command_again():
    broker, _, orchestrator = make()
    saga_id = orchestrator.start(ORDER)
    fresh = SagaOrchestrator(DEFINITION, broker, orchestrator.log)  # a restarted process
    assert fresh.recover() == [saga_id]
    first, again = broker.messages("order.commands")
    assert first == again  # the same id: the participant treats it as a duplicate
    assert orchestrator.log.history(saga_id)[-1]["transition"] == "resumed"


@pytest.mark.parametrize("order, error, message", [
    (["order-1"], TypeError, "order must be a dict"),
    ({"customer": "alice"}, ValueError, r"order\['order_id'\] must be a non-empty string"),
    ({"order_id": "order-1", "items": {1, 2}}, TypeError, "order.items has type set"),
])
def test_a_bad_order_is_refused_before_anything_is_written(order, error, message):
    broker, _, orchestrator = make()
    orchestrator.start(ORDER)
    with pytest.raises(error, match=message):
        orchestrator.start(order)
    assert orchestrator.log.count() == 1
    assert len(broker.messages("order.commands")) == 1


def test_an_existing_saga_id_is_refused():
    _, _, orchestrator = make()
    orchestrator.start(ORDER, saga_id="mine")
    with pytest.raises(ValueError, match="saga_id 'mine' is already in the saga log"):
        orchestrator.start(ORDER, saga_id="mine")


@pytest.mark.parametrize("options, message", [
    ({"reply_timeout_ms": 0}, "reply_timeout_ms must be a number of ms > 0"),
    ({"retry_backoff_ms": -5}, "retry_backoff_ms must be a number of ms > 0"),
    ({"backoff_factor": 0.5}, "backoff_factor must be a number >= 1"),
    ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
])
def test_bad_orchestrator_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SagaOrchestrator(DEFINITION, Broker(), **options)
    with pytest.raises(TypeError, match="definition must be a SagaDefinition"):
        SagaOrchestrator({"name": "create_order"}, Broker())
