"""The outbox table: one transaction with the business row, the relay's index, stable ids."""

from __future__ import annotations

import pytest

from eda_lab import Crash, FaultPlan, open_db, seed_ids, transaction
from eda_lab.outbox import OrderService, create_outbox
from eda_lab.outbox.table import outbox_rows, pending, relay_query_plan, row_to_message, write_event


def test_order_and_outbox_row_commit_together():
    service = OrderService(variant="outbox")
    order_id = service.place_order(customer="ada", amount=30.0)
    rows = outbox_rows(service.db)
    assert [o["order_id"] for o in service.orders()] == [order_id]
    assert [(r["aggregatetype"], r["aggregateid"], r["type"], r["version"]) for r in rows] == [
        ("order", order_id, "OrderPlaced", 1)]
    assert rows[0]["published_at"] is None
    assert row_to_message((rows[0]["id"], "order", order_id, "OrderPlaced", rows[0]["payload"],
                           1, 0.0, None)).payload["amount"] == 30.0


def test_crash_before_commit_leaves_neither_the_order_nor_its_event():
    service = OrderService(variant="outbox", faults=FaultPlan({"order.before_commit": 2}))
    service.place_order()
    with pytest.raises(Crash):
        service.place_order()
    assert len(service.orders()) == 1 and pending(service.db) == 1


def test_crash_after_commit_keeps_both_for_the_relay():
    service = OrderService(variant="outbox", faults=FaultPlan({"order.after_commit": 1}))
    with pytest.raises(Crash):
        service.place_order()
    assert len(service.orders()) == 1 and pending(service.db) == 1


def test_relay_query_uses_the_partial_index():
    db = open_db()
    create_outbox(db)
    assert "outbox_unpublished" in relay_query_plan(db)


def test_write_event_outside_a_transaction_is_refused():
    db = open_db()
    create_outbox(db)
    with pytest.raises(RuntimeError, match="inside the transaction"):
        write_event(db.conn, id="e1", aggregatetype="order", aggregateid="order-1",
                    type="OrderPlaced", payload={})
    with transaction(db) as conn:
        write_event(conn, id="e1", aggregatetype="order", aggregateid="order-1",
                    type="OrderPlaced", payload={"n": 1})
    assert pending(db) == 1


@pytest.mark.parametrize("kwargs, match", [
    ({"amount": -1}, "amount"), ({"amount": float("nan")}, "amount"), ({"amount": True}, "amount"),
    ({"customer": ""}, "customer"), ({"order_id": ""}, "order_id"), ({"variant": "both"}, "variant"),
])
def test_bad_order_input_names_the_argument_and_writes_nothing(kwargs, match):
    service = OrderService()
    service.place_order()
    with pytest.raises((ValueError, TypeError), match=match):
        service.place_order(**kwargs)
    assert len(service.orders()) == 1 and pending(service.db) == 1


def test_bad_payload_names_the_argument():
    service = OrderService()
    service.place_order("order-1")
    with pytest.raises(TypeError, match="payload"):
        service.record_event("order-1", "OrderConfirmed", {"when": object()})
    with pytest.raises(ValueError, match="past tense"):
        service.record_event("order-1", "ConfirmOrder")
    with pytest.raises(ValueError, match="order_id"):
        service.record_event("order-9", "OrderConfirmed")
    assert service.truth() == {"order-1": 1} and pending(service.db) == 1


def test_record_event_bumps_the_version_in_the_same_transaction():
    service = OrderService()
    service.place_order("order-1")
    event_id = service.record_event("order-1", "OrderConfirmed", state="confirmed")
    assert event_id.endswith("order-1-v2")
    assert service.truth() == {"order-1": 2}
    assert [r["version"] for r in outbox_rows(service.db)] == [1, 2]
    assert service.orders()[0]["state"] == "confirmed"


def test_event_ids_survive_a_restart_of_the_service(tmp_path):
    path = tmp_path / "orders.db"
    first = OrderService(db=path)
    first.place_order()
    seed_ids(0)  # a restarted process starts its id sequence again
    second = OrderService(db=path)
    second.place_order()
    ids = [r["id"] for r in outbox_rows(second.db)]
    assert len(set(ids)) == 2 and second.origin == first.origin
    assert [o["order_id"] for o in second.orders()] == ["order-1", "order-2"]


def test_event_ids_repeat_when_the_notebook_runs_again():
    def ids():
        seed_ids(7)
        service = OrderService()
        for _ in range(3):
            service.place_order()
        return [r["id"] for r in outbox_rows(service.db)]

    assert ids() == ids()


def test_naive_variant_without_a_broker_says_so():
    with pytest.raises(ValueError, match="broker"):
        OrderService(variant="db_then_publish").place_order()


def test_bad_table_name_is_refused():
    with pytest.raises(ValueError, match="table"):
        create_outbox(open_db(), 'outbox"; DROP TABLE orders; --')


def test_a_taken_order_id_is_a_clear_error_and_writes_nothing_more():
    service = OrderService()
    service.place_order("order-7")
    with pytest.raises(ValueError, match="order_id 'order-7' is already"):
        service.place_order("order-7", amount=5.0)
    assert len(service.orders()) == 1 and pending(service.db) == 1


def test_a_row_with_headers_and_an_imperative_type_becomes_a_command_with_those_headers():
    db = open_db()
    create_outbox(db)
    with transaction(db) as conn:
        write_event(conn, id="saga-1:pay:do:1", aggregatetype="payment", aggregateid="saga-1",
                    type="AuthorizePayment", payload={"amount": 20.0},
                    headers={"saga_id": "saga-1", "attempt": "1"})
    row = outbox_rows(db)[0]
    message = row_to_message(tuple(row[c] for c in ("id", "aggregatetype", "aggregateid", "type",
                                                    "payload", "version", "created_at",
                                                    "headers")))
    assert message.kind == "command" and message.headers["saga_id"] == "saga-1"
    assert message.headers["aggregatetype"] == "payment"
