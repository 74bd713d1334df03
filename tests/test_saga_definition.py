"""Saga definitions: the shop's saga loads from data/, and every bad shape is refused clearly."""

from __future__ import annotations

import json

import pytest

from eda_lab.saga import SagaDefinition, SagaDefinitionError, SagaStep, load_saga_definition
from eda_lab.saga.definition import (
    COMPENSATABLE,
    CREATE_ORDER_SAGA,
    PIVOT,
    RETRIABLE,
    create_order_saga,
)


def test_create_order_saga_is_loaded_from_the_data_folder():
    definition = create_order_saga()
    assert CREATE_ORDER_SAGA.parent.name == "data" and CREATE_ORDER_SAGA.exists()
    assert definition.name == "create_order"
    assert definition.step_names == ["create_order", "reserve_inventory", "authorize_payment",
                                     "schedule_shipping", "approve_order"]
    assert [s.kind for s in definition.steps] == [COMPENSATABLE, COMPENSATABLE, PIVOT,
                                                  RETRIABLE, RETRIABLE]
    assert [s.participant for s in definition.steps] == ["order", "inventory", "payment",
                                                         "shipping", "order"]
    assert definition.pivot_index == 2
    assert definition.steps[0].compensation == "RejectOrder"


def test_compensation_order_is_the_completed_steps_reversed_skipping_those_without_one():
    steps = [SagaStep("a", "order", "DoA", "UndoA"), SagaStep("b", "inventory", "DoB"),
             SagaStep("c", "payment", "DoC", "UndoC"), SagaStep("d", "shipping", "DoD", "UndoD")]
    definition = SagaDefinition("demo", steps)
    assert [s.name for s in definition.compensation_order(3)] == ["c", "a"]
    assert [s.name for s in definition.compensation_order(3, include_failed=True)] == ["d", "c", "a"]
    assert definition.compensation_order(0) == []
    assert definition.pivot_index is None


def test_round_trip_through_plain_data():
    definition = create_order_saga()
    again = SagaDefinition.from_dict(definition.to_dict())
    assert again == definition
    assert list(definition.frame()["name"]) == definition.step_names


def _data(**changes):
    data = create_order_saga().to_dict()
    data.update(changes)
    return data


def _steps(*edits):
    data = create_order_saga().to_dict()
    for index, field, value in edits:
        data["steps"][index][field] = value
    return data


@pytest.mark.parametrize("data, message", [
    (_data(steps=[]), "has no steps"),
    (_steps((1, "name", "create_order")), "duplicate step name 'create_order'"),
    (_steps((1, "kind", "retriable"), (1, "compensation", None)),
     "'reserve_inventory' is retriable before the pivot"),
    (_steps((1, "kind", "pivot"), (1, "compensation", None)), "has 2 pivot steps"),
    (_steps((1, "participant", "warehouse")), "unknown participant 'warehouse'"),
    (_steps((3, "kind", "compensatable")), "'schedule_shipping' is compensatable after the pivot"),
    (_steps((2, "compensation", "VoidPayment")), "is pivot but has compensation"),
    (_steps((2, "kind", "pivotal")), "kind must be one of"),
    (_steps((1, "action", "reserve inventory")), "action must be a command name"),
    (_steps((1, "compensation", "CreatePendingOrder")), "is already used by step 'create_order'"),
    (_steps((0, "name", "Create Order")), "step name must be snake_case"),
    (_data(name=""), "saga name must be snake_case"),
    (_data(steps="create, reserve"), "'steps' must be a list"),
    (_data(owner="me"), "unknown field(s) ['owner']"),
])
def test_a_bad_definition_is_refused_with_a_clear_error(data, message):
    with pytest.raises(SagaDefinitionError) as error:
        SagaDefinition.from_dict(data)
    assert message in str(error.value)


def test_a_retriable_step_needs_a_pivot_before_it():
    with pytest.raises(SagaDefinitionError, match="retriable in a saga without a pivot"):
        SagaDefinition("demo", [SagaStep("a", "order", "DoA", "UndoA"),
                                SagaStep("b", "shipping", "DoB", kind=RETRIABLE)])


def test_participants_can_be_named_for_another_shop():
    definition = SagaDefinition("trip", [SagaStep("book_hotel", "hotel", "BookHotel", "CancelHotel")],
                                participants=["hotel"])
    assert definition.steps[0].participant == "hotel"
    with pytest.raises(SagaDefinitionError, match="known participants: order, inventory"):
        SagaDefinition("trip", [SagaStep("book_hotel", "hotel", "BookHotel")])


def test_missing_and_unknown_step_fields_are_named(tmp_path):
    data = _data()
    del data["steps"][0]["action"]
    data["steps"][0]["retries"] = 3
    path = tmp_path / "saga.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SagaDefinitionError) as error:
        load_saga_definition(path)
    assert "unknown field(s) ['retries']" in str(error.value)
    assert "missing ['action']" in str(error.value)


def test_a_file_that_is_not_json_or_missing_says_so(tmp_path):
    path = tmp_path / "saga.json"
    path.write_text("{ not json")
    with pytest.raises(SagaDefinitionError, match="saga.json is not valid JSON"):
        load_saga_definition(path)
    with pytest.raises(FileNotFoundError, match="no saga definition at"):
        load_saga_definition(tmp_path / "missing.json")


def test_index_of_an_unknown_step_names_the_known_ones():
    with pytest.raises(KeyError, match="steps: create_order, reserve_inventory"):
        create_order_saga().index("refund")
