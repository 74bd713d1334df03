"""Bad input is refused clearly (the argument, what is allowed, what was given), and a refused
call changes nothing already written."""

from __future__ import annotations

import math
import os

import pytest

from eda_lab import Broker, Clock, ConsumerWorker, FaultPlan, Outage, SagaRunner, Shop, open_db
from eda_lab.broker import UnknownTopic
from eda_lab.inbox import Inbox
from eda_lab.messages import event
from eda_lab.outbox import (
    OrderPipeline,
    OrderService,
    PollingRelay,
    WritePath,
    lag_sweep,
    outbox_rows,
    run_schedule,
    skip_rates,
)
from eda_lab.partitioning import partition_for
from eda_lab.shop.lag import arrival_times, measure_agreement
from eda_lab.sync import load_services

NAN, INF = math.nan, math.inf
ORDER = {"order_id": "order-1", "customer": "alice", "sku": "book", "quantity": 1,
         "amount": 20.0}


@pytest.mark.parametrize("make, message", [
    (lambda: SagaRunner(reply_timeout_ms=NAN), "reply_timeout_ms must be a number of ms > 0"),
    (lambda: SagaRunner(retry_backoff_ms=INF), "retry_backoff_ms must be a number of ms > 0"),
    (lambda: SagaRunner(latency_ms=NAN), "latency_ms"),
    (lambda: ConsumerWorker(Broker(), "g", "orders", lambda d: None, poll_interval_ms=NAN),
     "poll_interval_ms must be a number of ms > 0"),
    (lambda: PollingRelay(open_db(), Broker(), poll_interval_ms=NAN), "poll_interval_ms"),
    (lambda: Clock().advance(NAN), "delta_ms must be a number of ms >= 0"),
    (lambda: Clock().run(INF), "until_ms"),
    (lambda: OrderPipeline(poll_interval_ms=NAN), "poll_interval_ms"),
    (lambda: Shop(order_interval_ms=INF), "order_interval_ms"),
], ids=["reply timeout", "backoff", "latency", "consumer poll", "relay poll", "advance", "run",
        "pipeline", "shop"])
def test_nan_and_infinity_are_refused_where_a_duration_is_expected(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_clock_refused_a_nan_keeps_its_time():
    clock = Clock()
    clock.advance(10)
    with pytest.raises(ValueError):
        clock.advance(NAN)
    clock.advance(5)
    assert clock.now == 15


@pytest.mark.parametrize("table", ['inbox" (consumer) VALUES (1); --', "in box", "", 7])
def test_an_inbox_table_name_that_is_not_an_identifier_is_refused(table):
    db = open_db()
    with pytest.raises(ValueError, match="table must be a plain identifier"):
        Inbox(db, "shipping", table=table)
    assert db.table_names() == []


def test_an_event_payload_cannot_say_another_order_and_the_outbox_is_unchanged():
    service = OrderService()
    service.place_order("order-1")
    before = outbox_rows(service.db)
    with pytest.raises(ValueError, match="payload must not set 'order_id'"):
        service.record_event("order-1", "OrderConfirmed", {"order_id": "order-2"})
    assert outbox_rows(service.db) == before and service.truth() == {"order-1": 1}


def test_a_refused_order_takes_no_order_number():
    service = OrderService()
    with pytest.raises(ValueError, match="details\\['quantity'\\]"):
        service.place_order(details={"quantity": "2"})
    assert service.place_order() == "order-1"


def test_a_fault_plan_given_as_a_dict_is_accepted_by_the_saga_runner_too():
    runner = SagaRunner(faults={"saga.after_record": 1})
    runner.start(ORDER)
    runner.run()
    assert ("saga.after_record", 1) in runner.broker.faults.fired


@pytest.mark.parametrize("make", [
    lambda plan: SagaRunner(faults=plan),
    lambda plan: OrderPipeline(faults=plan),
    lambda plan: WritePath(faults=plan),
    lambda plan: Shop(faults=plan),
], ids=["saga runner", "pipeline", "write path", "shop"])
def test_an_outage_of_a_part_that_does_not_exist_is_refused(make):
    plan = FaultPlan(outages=[Outage("paymnt", 0, 10_000)])
    with pytest.raises(ValueError, match="outage target 'paymnt' is not a service here; known:"):
        make(plan)


def test_names_given_as_one_string_are_refused_not_read_letter_by_letter():
    with pytest.raises(TypeError, match="participants must be a dict"):
        SagaRunner(participants="order")
    with pytest.raises(TypeError, match="consumers must be a list"):
        WritePath(consumers="shipping")


@pytest.mark.parametrize("partitions", [0, -3, 2.5, True])
def test_partition_for_refuses_a_partition_count_that_is_not_positive(partitions):
    with pytest.raises(ValueError, match="partitions must be an integer >= 1"):
        partition_for("order-1", partitions)


def test_a_naive_service_with_an_unknown_topic_is_refused_before_it_commits_anything():
    broker = Broker()
    broker.create_topic("orders")
    with pytest.raises(UnknownTopic, match="'order'"):
        OrderService(broker, variant="db_then_publish", topic="order")


def test_an_empty_directory_name_is_refused_and_writes_nothing_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="directory must be a folder"):
        SagaRunner(directory="")
    assert os.listdir(tmp_path) == []


def test_an_empty_cell_in_services_csv_is_an_error_not_a_zero(tmp_path):
    path = tmp_path / "services.csv"
    good = (load_services.__globals__["SERVICES_CSV"]).read_text().splitlines()
    header, first = good[0], good[1].split(",")
    first[header.split(",").index("timeout_ms")] = ""
    path.write_text("\n".join([header, ",".join(first)]) + "\n")
    with pytest.raises(ValueError, match="line 2: timeout_ms is empty"):
        load_services(path)


def test_a_saga_order_with_an_amount_given_as_text_is_refused_and_the_log_is_unchanged():
    runner = SagaRunner()
    first = runner.start(ORDER)
    runner.run()
    with pytest.raises(TypeError, match="order\\['amount'\\] must be a number"):
        runner.start({**ORDER, "order_id": "order-2", "amount": "30"})
    assert [s.saga_id for s in runner.log.states()] == [first]
    assert runner.data()["payment"]["authorizations"][0]["amount"] == 20.0


def test_a_message_published_to_a_refused_topic_is_not_stored():
    broker = Broker()
    broker.create_topic("orders")
    with pytest.raises(TypeError, match="Message"):
        broker.publish("orders", {"type": "OrderPlaced"})
    broker.publish("orders", event("OrderPlaced", "order-1"))
    assert len(broker.messages("orders")) == 1


# -- the review's L7 list (notebooks 04-06): each refused, naming the argument ----------------
@pytest.mark.parametrize("call, error, message", [
    (lambda: skip_rates([2], trials=0), ValueError, "trials must be an integer >= 1"),
    (lambda: arrival_times(5, 0), ValueError, "order_interval_ms must be a number of ms > 0, got 0"),
    (lambda: measure_agreement(10).stale_share([-50]),
     ValueError, "each of after_ms must be a number of ms >= 0, got -50"),
    (lambda: lag_sweep([50], [5], n_orders=-5), ValueError, "n_orders must be an integer >= 1"),
    (lambda: FaultPlan(["order.after_commit"]),
     TypeError, "a fault plan is a dict of fault points"),
], ids=["skip_rates trials=0", "arrival_times rate 0", "stale_share -50", "lag_sweep n=-5",
        "fault plan list"])
def test_the_reviews_error_gaps_are_closed(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("schedule", [["begin A", "begin A"], ["commit B"]])
def test_a_bad_schedule_names_its_writer_not_a_placeholder(schedule):
    with pytest.raises(ValueError) as refused:
        run_schedule(schedule)
    assert "{writer}" not in str(refused.value) and repr(schedule[-1].split()[1]) in str(
        refused.value)
