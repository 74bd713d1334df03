"""Participants: one local transaction per command, idempotent, refusing by their own rules."""

from __future__ import annotations

import pytest
from saga_helpers import ORDER

from eda_lab import Broker, Clock, Crash, FaultPlan, Trace, command
from eda_lab.outbox.relay import make_relay
from eda_lab.saga import (
    InventoryParticipant,
    OrderLocked,
    OrderParticipant,
    PaymentParticipant,
    ShippingParticipant,
)
from eda_lab.saga.participants import DONE, NONE, UNDONE, check_outcomes, shop_participants


def cmd(type_, saga_id="saga-1", step="x", attempt=1, direction="forward", **payload):
    """A saga command as the orchestrator sends it."""
    return command(type_, saga_id, {**ORDER, **payload},
                   headers={"saga_id": saga_id, "step": step, "attempt": str(attempt),
                            "direction": direction},
                   id=f"{saga_id}:{step}:{'do' if direction == 'forward' else 'undo'}:{attempt}")


@pytest.fixture
def broker():
    return Broker(Clock(), Trace(), FaultPlan())


def relay(participant):
    """Publish what the participant's outbox holds (its relay, drained by hand)."""
    return make_relay("polling", participant.db, participant.broker,
                      table=participant.outbox_table, topic=participant.reply_topic,
                      name="relay").drain()


def test_a_command_runs_as_a_local_transaction_and_the_reply_goes_through_the_outbox(broker):
    inventory = InventoryParticipant(broker)
    reply = inventory.on_command(cmd("ReserveInventory"))
    assert reply.type == "InventoryReserved" and reply.headers["outcome"] == "succeeded"
    assert reply.headers["command_id"] == "saga-1:x:do:1" and reply.id == "saga-1:x:do:1/reply"
    assert broker.messages("inventory.replies") == []  # committed with the effect, not yet sent
    assert relay(inventory) == 1
    [sent] = broker.messages("inventory.replies")
    assert (sent.id, sent.type, sent.payload) == (reply.id, reply.type, reply.payload)
    assert inventory.tables()["stock"][0] == {"sku": "book", "available": 8}
    assert inventory.effect("saga-1", "ReserveInventory") == DONE


def test_a_duplicate_command_has_no_second_effect_and_gets_its_original_reply(broker):
    inventory = InventoryParticipant(broker)
    first = inventory.on_command(cmd("ReserveInventory"))
    again = inventory.on_command(cmd("ReserveInventory"))
    assert again == first
    assert inventory.tables()["stock"][0]["available"] == 8
    assert inventory.duplicates == 1
    assert relay(inventory) == 1   # the reply was still waiting in the outbox: it goes once
    first_try = cmd("ReserveInventory")  # a second try after a timeout: the same command id
    asked_again = command("ReserveInventory", "saga-1", first_try.payload,
                          headers={**first_try.headers, "command_id": first_try.id},
                          id=f"{first_try.id}/try-2")
    assert inventory.on_command(asked_again).payload == first.payload
    assert relay(inventory) == 1   # the original reply, sent again
    first_sent, again_sent = broker.messages("inventory.replies")
    assert first_sent.payload == again_sent.payload
    assert first_sent.headers["command_id"] == again_sent.headers["command_id"]
    assert inventory.tables()["stock"][0]["available"] == 8 and inventory.duplicates == 2


def test_a_duplicate_of_a_refused_command_is_refused_again_without_rechecking(broker):
    inventory = InventoryParticipant(broker, stock={"book": 1})
    first = inventory.on_command(cmd("ReserveInventory"))
    assert first.type == "InventoryReservationFailed"
    assert "out of stock: 1 x book left, 2 wanted" in first.payload["detail"]
    inventory.db.execute("UPDATE stock SET available = 10")  # a restock meanwhile
    assert inventory.on_command(cmd("ReserveInventory")) == first


def test_a_refusal_keeps_nothing_of_the_effect(broker):
    payment = PaymentParticipant(broker, accounts={"alice": 40.0})
    payment.on_command(cmd("AuthorizePayment", saga_id="saga-1", amount=30.0))
    reply = payment.on_command(cmd("AuthorizePayment", saga_id="saga-2", amount=30.0))
    assert reply.type == "PaymentDeclined"
    assert "card declined: 30.00 asked, 10.00 of credit left" in reply.payload["detail"]
    assert payment.tables()["accounts"] == [{"customer": "alice", "credit_limit": 40.0,
                                             "authorized": 30.0}]
    assert payment.effect("saga-2", "AuthorizePayment") == NONE
    assert payment.invariant_problems() == []


def test_release_undoes_a_reservation_and_is_idempotent(broker):
    inventory = InventoryParticipant(broker)
    inventory.on_command(cmd("ReserveInventory", step="reserve_inventory"))
    inventory.on_command(cmd("ReleaseInventory", step="reserve_inventory", direction="backward"))
    inventory.on_command(cmd("ReleaseInventory", step="reserve_inventory", direction="backward",
                             attempt=2))
    assert inventory.tables()["stock"][0]["available"] == 10
    assert inventory.effect("saga-1", "ReserveInventory") == UNDONE
    assert inventory.invariant_problems() == []


def test_a_compensation_that_comes_first_makes_the_late_action_refused(broker):
    inventory = InventoryParticipant(broker)
    undo = inventory.on_command(cmd("ReleaseInventory", direction="backward"))
    assert "a late reservation is refused" in undo.payload["detail"]
    late = inventory.on_command(cmd("ReserveInventory"))
    assert late.headers["outcome"] == "failed" and "cancelled before it came" in late.payload["detail"]
    assert inventory.tables()["stock"][0]["available"] == 10
    orders = OrderParticipant(broker)
    orders.on_command(cmd("RejectOrder", direction="backward"))
    assert orders.on_command(cmd("CreatePendingOrder")).headers["outcome"] == "failed"
    assert orders.read_order("order-1")["state"] == "REJECTED"


@pytest.mark.parametrize("point", ["saga.participant_before_commit",
                                   "saga.participant_after_commit"])
def test_a_crash_keeps_all_or_nothing_and_the_redelivery_is_answered(point):
    broker = Broker(Clock(), Trace(), FaultPlan({point: 1}))
    inventory = InventoryParticipant(broker)
    with pytest.raises(Crash):
        inventory.on_command(cmd("ReserveInventory"))
    committed = point.endswith("after_commit")
    assert inventory.tables()["stock"][0]["available"] == (8 if committed else 10)
    assert broker.messages("inventory.replies") == []  # died before replying
    reply = inventory.on_command(cmd("ReserveInventory"))  # the broker delivers it again
    assert reply.headers["outcome"] == "succeeded"
    assert inventory.tables()["stock"][0]["available"] == 8
    assert inventory.duplicates == (1 if committed else 0)


def test_the_order_is_pending_while_its_saga_runs_and_the_lock_refuses_interference(broker):
    orders = OrderParticipant(broker)
    orders.on_command(cmd("CreatePendingOrder", saga_id="saga-1"))
    assert orders.read_order("order-1")["state"] == "PENDING"
    with pytest.raises(OrderLocked, match="order-1 is pending in saga-1"):
        orders.cancel_order("order-1")
    second = orders.on_command(cmd("CreatePendingOrder", saga_id="saga-2"))
    assert second.type == "OrderCreationFailed"
    assert "pending in saga-1 (semantic lock)" in second.payload["detail"]
    # saga-2 cannot undo what saga-1 holds
    orders.on_command(cmd("RejectOrder", saga_id="saga-2", direction="backward"))
    assert orders.read_order("order-1")["state"] == "PENDING"
    orders.on_command(cmd("ApproveOrder", saga_id="saga-1", step="approve"))
    assert orders.read_order("order-1")["state"] == "APPROVED"
    assert "cancelling it is a saga of its own" in orders.cancel_order("order-1")
    with pytest.raises(KeyError, match="no order 'order-9'"):
        orders.cancel_order("order-9")


def test_a_rejected_order_may_be_placed_again_by_a_new_saga(broker):
    orders = OrderParticipant(broker)
    orders.on_command(cmd("CreatePendingOrder", saga_id="saga-1"))
    orders.on_command(cmd("RejectOrder", saga_id="saga-1", direction="backward"))
    assert orders.cancel_order("order-1") == "order-1 is already rejected: nothing to cancel"
    reply = orders.on_command(cmd("CreatePendingOrder", saga_id="saga-2"))
    assert reply.headers["outcome"] == "succeeded"
    assert orders.read_order("order-1")["saga_id"] == "saga-2"
    assert orders.effect("saga-1", "CreatePendingOrder") == NONE  # saga-2 owns the row now


def test_shipping_books_one_delivery_per_saga(broker):
    shipping = ShippingParticipant(broker)
    shipping.on_command(cmd("ScheduleShipping", attempt=1))
    shipping.on_command(cmd("ScheduleShipping", attempt=2))  # a new attempt, same saga
    assert len(shipping.tables()["shipments"]) == 1


def test_an_incomplete_order_is_refused_not_crashed(broker):
    reply = InventoryParticipant(broker).on_command(
        command("ReserveInventory", "saga-1", {"order_id": "order-1"},
                headers={"saga_id": "saga-1"}, id="c1"))
    assert reply.headers["outcome"] == "failed" and "the order is incomplete" in reply.payload["detail"]


def test_step_outcomes_script_each_attempt(broker):
    shipping = ShippingParticipant(broker, outcomes={"ScheduleShipping": ["fail", "time out"]})
    first = shipping.on_command(cmd("ScheduleShipping", attempt=1))
    assert first.headers["outcome"] == "failed" and "step outcomes say" in first.payload["detail"]
    assert shipping.on_command(cmd("ScheduleShipping", attempt=2)) is None  # the reply is lost
    assert shipping.effect("saga-1", "ScheduleShipping") == DONE
    resent = shipping.on_command(cmd("ScheduleShipping", attempt=2))  # asked again: stored reply
    assert resent.headers["outcome"] == "succeeded"
    assert shipping.on_command(cmd("ScheduleShipping", attempt=3)).headers["outcome"] == "succeeded"


@pytest.mark.parametrize("outcomes, message", [
    ({"ShipIt": "fail"}, "unknown command 'ShipIt'"),
    ({"ScheduleShipping": "explode"}, "must be one of ('succeed', 'fail', 'time out')"),
    ({"ScheduleShipping": ["fail", 3]}, "must be one of"),
])
def test_bad_step_outcomes_are_refused(outcomes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_outcomes(outcomes, ["ScheduleShipping"])
    with pytest.raises(TypeError, match="outcomes must be a dict"):
        check_outcomes(["fail"], ["ScheduleShipping"])


def test_bad_shop_data_is_refused(broker):
    with pytest.raises(ValueError, match=r"stock\['book'\] must be a whole number >= 0"):
        InventoryParticipant(broker, stock={"book": -1})
    with pytest.raises(ValueError, match=r"accounts\['alice'\] must be a credit limit >= 0"):
        PaymentParticipant(broker, accounts={"alice": "lots"})
    with pytest.raises(ValueError, match=r"dbs: unknown service\(s\) \['warehouse'\]"):
        shop_participants(broker, {"warehouse": None})


def test_each_service_keeps_its_own_database(broker):
    services = shop_participants(broker)
    dbs = {id(p.db.conn) for p in services.values()}
    assert len(dbs) == 4
    assert sorted(services["inventory"].db.table_names()) == [
        "replies", "reservations", "saga_outbox", "sqlite_sequence", "stock"]
