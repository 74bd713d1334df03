"""Messages are immutable facts with JSON payloads, checked where they are made."""

from __future__ import annotations

import dataclasses
import json

import pytest

from eda_lab import Clock, Message, command, event, seed_ids
from eda_lab.messages import is_past_tense


def test_event_is_frozen_including_its_payload():
    m = event("OrderPlaced", "order-1", {"items": [{"sku": "A", "qty": 2}]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.key = "order-2"
    with pytest.raises(TypeError):
        m.payload["total"] = 10
    with pytest.raises(TypeError):
        m.payload["items"][0]["qty"] = 3
    assert m.payload["items"][0]["qty"] == 2


def test_each_message_gets_a_unique_id_and_the_sequence_repeats_after_seeding():
    seed_ids(7)
    first = [event("OrderPlaced", "o", {}).id for _ in range(100)]
    assert len(set(first)) == 100
    seed_ids(7)
    assert [event("OrderPlaced", "o", {}).id for _ in range(100)] == first


def test_timestamp_comes_from_the_clock():
    clock = Clock()
    clock.advance(250)
    assert event("OrderPlaced", "o", {}, clock=clock).timestamp == 250


@pytest.mark.parametrize("name", ["OrderPlaced", "PaymentAuthorized", "InventoryReserved",
                                  "PaymentFailed", "OrderPaid", "ParcelSent"])
def test_past_tense_event_types_are_accepted(name):
    assert is_past_tense(name)
    assert event(name, "k").type == name


@pytest.mark.parametrize("name", ["PlaceOrder", "ReserveInventory", "orderPlaced", "Order_Placed", ""])
def test_an_event_type_that_is_not_a_past_tense_fact_is_refused(name):
    with pytest.raises(ValueError, match="type"):
        event(name, "order-1")


def test_a_command_is_imperative():
    c = command("ReserveInventory", "order-1", {"sku": "A"})
    assert c.kind == "command"


@pytest.mark.parametrize("payload, field", [
    ({"total": 1.5, "when": object()}, "payload.when"),
    ({"items": [1, {2: "x"}]}, "payload.items[1]"),
    ({"amount": float("nan")}, "payload.amount"),
    ({"tags": {"a", "b"}}, "payload.tags"),
])
def test_a_payload_json_cannot_carry_is_a_type_error_naming_the_field(payload, field):
    with pytest.raises(TypeError) as info:
        event("OrderPlaced", "order-1", payload)
    assert field in str(info.value)


def test_payload_must_be_an_object_and_key_non_empty():
    with pytest.raises(TypeError, match="payload"):
        Message("OrderPlaced", "o", [1, 2])
    with pytest.raises(ValueError, match="key"):
        event("OrderPlaced", "", {})


def test_headers_are_strings_and_with_headers_keeps_the_id():
    m = event("OrderPlaced", "o", {}, headers={"trace": "abc"})
    m2 = m.with_headers(retry="1")
    assert m2.id == m.id and dict(m2.headers) == {"trace": "abc", "retry": "1"}
    with pytest.raises(TypeError, match="headers"):
        event("OrderPlaced", "o", {}, headers={"n": 1})


def test_json_round_trip_gives_an_equal_message():
    m = event("OrderPlaced", "order-1", {"items": [{"sku": "A"}], "total": 9.5}, headers={"h": "v"})
    back = Message.from_json(m.to_json())
    assert back == m
    assert json.loads(m.to_json())["payload"] == {"items": [{"sku": "A"}], "total": 9.5}
