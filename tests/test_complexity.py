"""Infrastructure complexity, counted from the wiring: every number comes from the parts that
were built and from what a run of orders did, so a change in the wiring changes the count."""

from __future__ import annotations

import pytest

from eda_lab.outbox.write_path import WritePath
from eda_lab.shop import complexity
from eda_lab.shop.complexity import CrudOrders, count_parts, moving_parts, parts_of
from eda_lab.shop.shop import Shop


@pytest.fixture(scope="module")
def parts():
    return {p.design: p for p in moving_parts()}


def test_each_design_costs_at_least_what_the_simpler_one_does(parts):
    order = ["plain CRUD", "naive dual write", "outbox and relay", "outbox and saga",
             "the whole shop"]
    assert list(parts) == order
    for simpler, richer in zip(order, order[1:], strict=False):
        a, b = parts[simpler].counts(), parts[richer].counts()
        assert all(b[k] >= a[k] for k in a if k != "design"), (simpler, richer)


def test_plain_crud_is_one_process_one_table_and_its_commit(parts):
    crud = parts["plain CRUD"]
    assert crud.counts() | {"design": None} == {
        "design": None, "processes to run": 1, "databases": 1, "relays": 0, "tables": 1,
        "topics": 0, "consumer groups": 0, "crash points": 2, "settings": 0}
    assert crud.tables == ("order: orders",)
    assert crud.crash_points == ("order.after_commit", "order.before_commit")


def test_the_outbox_adds_a_relay_its_table_and_its_crash_points(parts):
    naive, outbox = parts["naive dual write"], parts["outbox and relay"]
    added = outbox.added_to(naive)
    assert outbox.processes == naive.processes + 1 and outbox.relays == 1
    assert added["tables"] == ["order: outbox"]
    assert added["crash_points"] == ["relay.after_mark", "relay.after_publish", "relay.after_read"]
    assert "order.after_publish" in naive.crash_points
    assert "order.after_publish" not in outbox.crash_points   # it never publishes itself
    assert "order service.retries" in naive.settings
    assert "order service.retries" not in outbox.settings


def test_the_shop_counts_match_what_its_wiring_holds(parts):
    whole = parts["the whole shop"]
    shop = Shop(trace=False)
    assert len(whole.topics) == len(shop.broker.topics)
    assert len(whole.groups) == len(shop.broker.groups)
    assert whole.relays == 1 + len(shop.sagas.relays)
    # the order service, four participants minus the order one (it shares the order service's
    # database), the saga log, and one database per downstream consumer
    assert whole.databases == 1 + 3 + 1 + len(shop.consumers)
    assert parts["outbox and saga"].processes == whole.processes - len(shop.consumers)


def test_a_change_in_the_wiring_changes_the_count(monkeypatch):
    def three_consumers(plan):
        path = WritePath("outbox-log-tailing", plan, consumers=("a", "b", "c"), trace=False)

        def drive(n):
            path.start()
            for _ in range(n):
                path.place_order(customer="ada", amount=10.0)
            path.clock.run(path.clock.now + 2_000)
        return path, drive

    monkeypatch.setitem(complexity.DESIGNS, "three consumers", three_consumers)
    counted = count_parts("three consumers", 3)
    assert counted.processes == 1 + 4 + 1 and len(counted.groups) == 3
    assert {"order: outbox_log", "order: relay_offsets"} <= set(counted.tables)


def test_a_table_nobody_uses_is_not_counted():
    # the naive order service creates an outbox table it never writes
    naive = count_parts("naive dual write", 2)
    assert "order: outbox" not in naive.tables


def test_parts_are_found_without_walking_into_the_broker_or_the_trace():
    crud = CrudOrders()
    found = parts_of(crud)
    assert crud in found and crud.db in found
    shop = Shop(trace=False)
    kinds = {type(p).__name__ for p in parts_of(shop)}
    assert {"FastBroker", "PollingRelay", "LogTailingRelay", "SagaOrchestrator"} <= kinds
    assert "Message" not in kinds


@pytest.mark.parametrize(("call", "message"), [
    (lambda: count_parts("microservices"), "design must be one of"),
    (lambda: count_parts("plain CRUD", 0), "n_orders must be an integer >= 1"),
    (lambda: count_parts("plain CRUD", 1_000), "<= 100"),
    (lambda: moving_parts("plain CRUD"), "designs must be a list"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()
