"""The orchestrator's plain logic, driven by hand: no runner, no timers, just calls and the log."""

from __future__ import annotations

import pytest
from saga_helpers import DEFINITION, ORDER

from eda_lab import Broker, Clock, FaultPlan, Trace
from eda_lab.outbox.relay import make_relay
from eda_lab.saga import SagaOrchestrator, shop_participants
from eda_lab.saga.commands import command_id, commands_topic
from eda_lab.saga.orchestrator import COMMANDS_OUTBOX

RELAYS = []   # the relays of the services made by the running test (drained by hand)


def make(faults=None, **options):
    broker = Broker(Clock(), Trace(), faults or FaultPlan())
    participants = shop_participants(broker)
    orchestrator = SagaOrchestrator(DEFINITION, broker, **options)
    RELAYS[:] = [make_relay("polling", orchestrator.log.db, broker, table=COMMANDS_OUTBOX,
                            topic=commands_topic, name="orchestrator-relay")]
    RELAYS.extend(make_relay("polling", p.db, broker, table=p.outbox_table, topic=p.reply_topic,
                             name=f"{p.name}-relay") for p in participants.values())
    return broker, participants, orchestrator


def relay():
    """Each service's relay publishes what its outbox holds."""
    for r in RELAYS:
        r.drain()


def deliver(broker, participants, orchestrator, rounds=1):
    """Hand every waiting command to its participant and every reply to the orchestrator."""
    for _ in range(rounds):
        relay()
        for participant in participants.values():
            for delivery in _reader(broker, participant.topic).poll():
                participant.on_command(delivery.message)
        relay()
        for topic in orchestrator.reply_topics:
            for delivery in _reader(broker, topic).poll():
                orchestrator.on_reply(delivery.message)


def _reader(broker, topic):
    group = f"test-{topic}"
    if group in broker.groups:
        return next(iter(broker.group(group).consumers.values()))
    return broker.consumer(group, topic)


def test_start_records_the_saga_and_its_first_command_in_one_transaction():
    broker, _, orchestrator = make()
    saga_id = orchestrator.start(ORDER)
    assert saga_id == "saga-0001"
    assert broker.messages("order.commands") == []  # in the outbox, not yet on the broker
    assert orchestrator.log.db[COMMANDS_OUTBOX].count == 1
    relay()
    [sent] = broker.messages("order.commands")
    assert (sent.type, sent.kind, sent.key) == ("CreatePendingOrder", "command", "saga-0001")
    cid = command_id("saga-0001", "create_order", "forward", 1)
    assert sent.id == f"{cid}/try-1"
    assert dict(sent.headers) == {"aggregatetype": "order", "version": "1",
                                  "saga_id": "saga-0001", "step": "create_order",
                                  "direction": "forward", "attempt": "1", "command_id": cid,
                                  "try": "1"}
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


def test_a_deadline_is_handled_only_once_it_has_passed_and_the_same_command_goes_again():
    broker, _, orchestrator = make(reply_timeout_ms=500)
    saga_id = orchestrator.start(ORDER)
    assert orchestrator.on_deadline(saga_id) is None and orchestrator.tick() == []
    broker.clock.advance(500)
    assert orchestrator.due() == [saga_id]
    assert orchestrator.tick() == [saga_id]
    # no reply is a technical failure (the outcome is unknown, not a refusal): a backoff, then
    # the same command again, with the same command id
    state = orchestrator.log.get(saga_id)
    assert (state.status, state.awaiting, state.tries) == ("running", False, 2)
    broker.clock.advance(state.deadline_ms - broker.clock.now)
    assert orchestrator.tick() == [saga_id]
    relay()
    first, again = broker.messages("order.commands")
    assert first.type == again.type == "CreatePendingOrder"
    assert first.headers["command_id"] == again.headers["command_id"]
    assert (first.headers["try"], again.headers["try"]) == ("1", "2")


def test_a_broker_that_refuses_holds_the_command_in_the_outbox_until_it_comes_back():
    broker, _, orchestrator = make(FaultPlan({"broker.unavailable": [1, 2, 3]}))
    saga_id = orchestrator.start(ORDER)
    for _ in range(3):
        relay()   # refused: the row stays
    assert broker.messages("order.commands") == []
    relay()
    assert [m.type for m in broker.messages("order.commands")] == ["CreatePendingOrder"]
    assert [r["transition"] for r in orchestrator.log.history(saga_id)] == ["started",
                                                                         "step_sent"]


def test_resend_all_retries_a_refused_send_with_backoff():
    broker, _, orchestrator = make(FaultPlan({"broker.unavailable": [1, 2]}),
                                   retry_backoff_ms=100, recovery="resend-all")
    saga_id = orchestrator.start(ORDER)
    state = orchestrator.log.get(saga_id)
    assert (state.awaiting, state.tries) == (False, 2) and 80 <= state.deadline_ms <= 120
    broker.clock.advance(state.deadline_ms)
    orchestrator.tick()  # 2nd send refused: the backoff doubles (+-20% jitter)
    wait = orchestrator.log.get(saga_id).deadline_ms - broker.clock.now
    assert 160 <= wait <= 240
    broker.clock.advance(wait)
    orchestrator.tick()  # 3rd send goes out
    transitions = [r["transition"] for r in orchestrator.log.history(saga_id)]
    assert transitions.count("send_failed") == 2
    assert [m.type for m in broker.messages("order.commands")] == ["CreatePendingOrder"]


def test_recover_re_arms_the_stored_deadlines_and_sends_nothing():
    broker, _, orchestrator = make()
    saga_id = orchestrator.start(ORDER)
    armed = []
    fresh = SagaOrchestrator(DEFINITION, broker, orchestrator.log,  # a restarted process
                             schedule=lambda s, at: armed.append((s, at)))
    assert fresh.recover() == [saga_id]
    assert armed == [(saga_id, 1_000.0)] and fresh.resent == 0
    relay()
    assert len(broker.messages("order.commands")) == 1  # the one command, from the outbox
    assert orchestrator.log.history(saga_id)[-1]["transition"] == "resumed"


def test_resend_all_recovery_sends_the_awaited_command_again():
    broker, _, orchestrator = make(recovery="resend-all")
    saga_id = orchestrator.start(ORDER)
    fresh = SagaOrchestrator(DEFINITION, broker, orchestrator.log, recovery="resend-all")
    assert fresh.recover() == [saga_id] and fresh.resent == 1
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
    assert orchestrator.log.db[COMMANDS_OUTBOX].count == 1


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
    ({"retry_budget_ms": 0}, "retry_budget_ms must be a number of ms > 0"),
    ({"recovery": "resend"}, "recovery must be one of"),
])
def test_bad_orchestrator_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        SagaOrchestrator(DEFINITION, Broker(), **options)
    with pytest.raises(TypeError, match="definition must be a SagaDefinition"):
        SagaOrchestrator({"name": "create_order"}, Broker())
