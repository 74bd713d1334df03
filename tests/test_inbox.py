"""The idempotent consumer: a redelivered message has no second effect."""

from __future__ import annotations

import pytest

from eda_lab import Crash, event
from eda_lab.db import transaction
from eda_lab.inbox import Inbox


def add_shipment(conn, message):
    conn.execute("INSERT INTO shipments (order_id) VALUES (?)", (message.key,))


@pytest.fixture
def shipping_db(fresh_db):
    fresh_db["shipments"].create({"id": int, "order_id": str}, pk="id")
    return fresh_db


def test_a_redelivered_message_has_no_second_effect(shipping_db):
    inbox = Inbox(shipping_db, "shipping")
    m = event("OrderPlaced", "order-1")
    assert inbox.process(m, add_shipment) is True
    assert inbox.process(m, add_shipment) is False
    assert shipping_db["shipments"].count == 1
    assert inbox.duplicates == 1 and inbox.seen(m.id) and len(inbox) == 1


def test_a_failed_effect_leaves_no_inbox_row_so_the_redelivery_retries(shipping_db):
    inbox = Inbox(shipping_db, "shipping")
    m = event("OrderPlaced", "order-1")

    def crash_midway(conn, message):
        add_shipment(conn, message)
        raise Crash("consumer.midway")

    with pytest.raises(Crash):
        inbox.process(m, crash_midway)
    assert shipping_db["shipments"].count == 0 and not inbox.seen(m.id)
    assert inbox.process(m, add_shipment) is True
    assert shipping_db["shipments"].count == 1


def test_two_consumers_sharing_a_database_keep_separate_inboxes(shipping_db):
    m = event("OrderPlaced", "order-1")
    assert Inbox(shipping_db, "shipping").process(m, add_shipment)
    assert Inbox(shipping_db, "analytics").process(m, lambda conn, msg: None)


def test_inbox_refuses_bad_input(shipping_db):
    with pytest.raises(ValueError, match="consumer"):
        Inbox(shipping_db, "")
    with pytest.raises(TypeError, match="Message"):
        Inbox(shipping_db, "shipping").process({"id": "x"}, add_shipment)


def test_transaction_rolls_back_on_a_crash(fresh_db):
    fresh_db["orders"].create({"id": str}, pk="id")
    with pytest.raises(Crash):
        with transaction(fresh_db) as conn:
            conn.execute("INSERT INTO orders VALUES (?)", ("o1",))
            raise Crash("order.before_commit")
    assert fresh_db["orders"].count == 0
    with transaction(fresh_db) as conn:
        conn.execute("INSERT INTO orders VALUES (?)", ("o1",))
    assert fresh_db["orders"].count == 1
