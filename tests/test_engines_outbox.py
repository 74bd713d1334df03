"""The outbox on PostgreSQL: the same schema and service as in SQLite, the CDC relay and the
polling relay on both brokers, every crash point tried, the polling gap for real, and clear
errors for slots."""

from __future__ import annotations

import itertools
import time

import pytest
from engines_support import require, shared_engines

from eda_lab.faults import fault_points
from eda_lab.outbox.table import COLUMNS

pytestmark = pytest.mark.engines
BROKERS = ["kafka", "redis"]
_names = itertools.count(1)


@pytest.fixture(scope="session")
def engines(request):
    return shared_engines(request)


@pytest.fixture
def dsn(engines):
    """A fresh database of its own for one test."""
    return engines.postgres.create_database(f"outbox_test_{next(_names)}", fresh=True)


def columns(dsn: str, table: str) -> tuple[str, ...]:
    from eda_lab.engines import connect

    conn = connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position", (table,))
        names = tuple(row[0] for row in cur.fetchall())
    conn.close()
    return names


def test_the_postgres_outbox_has_the_sqlite_outbox_columns(dsn):
    from eda_lab.engines import install_outbox

    install_outbox(dsn)
    assert columns(dsn, "outbox") == COLUMNS


def test_the_order_service_has_the_sqlite_interface_and_writes_both_rows_at_once(dsn):
    from eda_lab.engines import PgOrderService

    service = PgOrderService(dsn)
    assert service.place_order(customer="ada", amount=30.0) == "order-1"
    assert service.place_order("order-x", customer="bob", amount=5,
                               details={"sku": "book"}) == "order-x"
    service.record_event("order-1", "OrderConfirmed", status="confirmed")
    assert service.truth() == {"order-1": 2, "order-x": 1}
    assert service.pending() == 3
    assert service.event_id("order-1", 2).endswith("-order-1-v2")


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"customer": "", "amount": 1}, ValueError, "customer must be a non-empty string"),
    ({"customer": "ada", "amount": -1}, ValueError, "amount must be a number > 0, got -1"),
    ({"customer": "ada", "amount": float("nan")}, ValueError, "amount must be a number > 0, got nan"),
    ({"customer": "ada", "amount": "9"}, TypeError, "amount must be a number > 0, got '9'"),
    ({"customer": "ada", "amount": 1, "details": [1]}, TypeError, "details must be a dict"),
    ({"customer": "ada", "amount": 1, "details": {"amount": 2}}, ValueError,
     r"details must not repeat \['amount'\]"),
    ({"customer": "ada", "amount": 1, "details": {"when": object()}}, TypeError,
     "details must be JSON"),
])
def test_bad_orders_are_refused_before_anything_is_written(dsn, kwargs, error, message):
    from eda_lab.engines import PgOrderService

    service = PgOrderService(dsn)
    service.place_order(customer="ada", amount=10)
    with pytest.raises(error, match=message):
        service.place_order(**kwargs)
    assert service.truth() == {"order-1": 1} and service.pending() == 1


def test_a_taken_order_id_is_refused_and_rolls_back(dsn):
    from eda_lab.engines import PgOrderService

    service = PgOrderService(dsn)
    service.place_order("order-7", customer="ada", amount=10)
    with pytest.raises(ValueError, match="order_id 'order-7' is already in the orders table"):
        service.place_order("order-7", customer="bob", amount=10)
    assert service.pending() == 1
    service.place_order(customer="ada", amount=1)      # the connection is usable again


@pytest.mark.parametrize("kind", BROKERS)
@pytest.mark.parametrize("relay", ["cdc", "polling"])
def test_every_committed_event_arrives_once_in_order_per_key(engines, kind, relay):
    from eda_lab.engines import run_end_to_end

    run = run_end_to_end(engines, kind, relay=relay, n_orders=150, seed=3)
    assert run.report.ok and run.report.lost == 0 and run.report.committed == run.events > 150
    assert run.duplicates_dropped == 0 and run.report.applied == run.events


try:    # importing the relays registers their crash points; without psycopg2 the tests skip
    import eda_lab.engines.cdc_relay  # noqa: F401
    import eda_lab.engines.polling_relay  # noqa: F401
except ImportError:
    pass
CRASH_POINTS = ([("cdc", p) for p in fault_points("pg_relay.")]
                + [("polling", p) for p in fault_points("pg_poller.")])


def test_the_relays_register_their_crash_points():
    require("postgres")
    assert [p for _, p in CRASH_POINTS] == [
        "pg_relay.after_confirm", "pg_relay.after_publish", "pg_relay.after_read",
        "pg_poller.after_mark", "pg_poller.after_publish", "pg_poller.after_read"]


@pytest.mark.parametrize("kind", BROKERS)
@pytest.mark.parametrize(("relay", "point"), CRASH_POINTS)
def test_a_relay_crash_at_any_point_loses_nothing(engines, kind, relay, point):
    """Crash on the 1st and 3rd time the point is reached (batches of at most 25 events, all
    written first). A crash after publishing repeats its batch; the polling relay repeats
    nothing else. The CDC relay may also repeat the batch it confirmed just before dying (the
    confirmation dies with the connection), never more. The inbox drops every repeat."""
    from eda_lab.engines import run_end_to_end

    run = run_end_to_end(engines, kind, relay=relay, n_orders=90, batch_size=25,
                         write_first=True, faults={point: [1, 3]}, seed=5)
    assert run.relay_crashes == 2
    assert run.report.lost == 0 and run.report.phantom == 0
    assert run.report.duplicate_effects == 0 and run.report.order_violations == 0
    if point == "pg_poller.after_publish":
        assert run.duplicates_dropped == 50      # two whole batches of 25 published twice
    elif point == "pg_relay.after_publish":      # the slot's batches end where a burst did
        assert 2 <= run.duplicates_dropped <= 100
    elif point.startswith("pg_relay."):
        assert run.duplicates_dropped <= 50
    else:
        assert run.duplicates_dropped == 0


def test_the_polling_gap_skips_a_row_for_the_id_cursor_and_not_for_the_slot(engines):
    from eda_lab.engines import run_polling_gap

    gap = run_polling_gap(engines.postgres, engines.broker("redis"))
    assert gap.skipped == {"id cursor": ["order-A"], "published_at flag": [],
                           "replication slot": []}
    assert gap.published["replication slot"] == ["order-B", "order-A"]   # commit order


def test_a_second_relay_on_one_slot_is_refused_and_the_first_loses_nothing(engines, dsn):
    from eda_lab.engines import CdcRelay, PgOrderService, SlotInUse

    client = engines.broker("redis")
    client.create_topic("twice", 1)
    service = PgOrderService(dsn, slot="twice")
    first = CdcRelay(dsn, client, topic="twice", slot="twice")
    service.place_order(customer="ada", amount=3)
    with pytest.raises(SlotInUse, match=r"slot='twice' is already streaming to another relay.*"
                                        r"stop the other relay first, or pass another slot="):
        CdcRelay(dsn, client, topic="twice", slot="twice")
    assert first.poll_once(timeout_s=5) == 1
    first.close()


def test_emptying_a_database_keeps_its_tables_and_drops_its_rows_and_slots(engines, dsn):
    """What the experiments do between runs instead of DROP/CREATE DATABASE: the next run
    starts as on a new database (order-1, seq 1, a slot from now), at a fraction of the cost."""
    from eda_lab.engines import CdcRelay, PgOrderService, SlotInUse, slot_status

    database = psycopg2_dbname(dsn)
    client = engines.broker("redis")
    client.create_topic("emptied", 1)
    service = PgOrderService(dsn, slot="emptied")
    service.place_order(customer="ada", amount=3)
    service.record_event("order-1", "OrderConfirmed")
    relay = CdcRelay(dsn, client, topic="emptied", slot="emptied")
    with pytest.raises(SlotInUse, match=r"database='outbox_test_\d+' has slots still streaming "
                                        r"to a reader \(emptied \(walsender pid \d+\)\); stop"):
        engines.postgres.empty_database(database, slot_wait_s=0.1)
    assert service.pending() == 2          # refused before anything was emptied
    relay.close()
    service.close()
    assert engines.postgres.empty_database(database) == dsn
    assert slot_status(dsn, "emptied") is None
    assert columns(dsn, "outbox") == COLUMNS
    service = PgOrderService(dsn, slot="emptied")
    assert service.pending() == 0 and service.truth() == {}
    assert service.place_order(customer="grace", amount=4) == "order-1"
    with service.conn, service.conn.cursor() as cur:
        cur.execute("SELECT seq FROM outbox")
        assert cur.fetchall() == [(1,)]
    relay = CdcRelay(dsn, client, topic="emptied", slot="emptied")
    assert relay.poll_once(timeout_s=5) == 1       # the new order, not the emptied two
    assert relay.last_batch == ["order-1"] and relay.poll_once(timeout_s=0.2) == 0
    relay.close()
    service.close()


def test_emptying_a_missing_database_creates_it(engines):
    name = f"outbox_test_{next(_names)}"
    dsn = engines.postgres.empty_database(name)
    assert columns(dsn, "outbox") == ()


def psycopg2_dbname(dsn: str) -> str:
    import psycopg2.extensions

    return psycopg2.extensions.parse_dsn(dsn)["dbname"]


def test_creating_a_slot_that_exists_says_how_to_resume_or_start_over(dsn):
    from eda_lab.engines import SlotExists, create_slot, ensure_slot

    create_slot(dsn, "taken")
    with pytest.raises(SlotExists, match=r"slot='taken' already exists.*CdcRelay\(\.\.\., "
                                         r"slot='taken'\).*drop_slot"):
        create_slot(dsn, "taken")
    assert ensure_slot(dsn, "taken") is False          # the relay's way: reuse it


def test_a_slot_of_another_plugin_is_a_clear_error(dsn):
    from eda_lab.engines import CdcRelay, SlotExists, connect, drop_slot

    conn = connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_create_logical_replication_slot('other', 'test_decoding')")
    conn.close()
    with pytest.raises(SlotExists, match=r"slot='other' already exists for plugin "
                                         r"'test_decoding'.*needs a 'pgoutput' slot"):
        CdcRelay(dsn, object.__new__(type("B", (), {"publish_batch": print})), slot="other")
    assert drop_slot(dsn, "other") is True and drop_slot(dsn, "other") is False


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"slot": "bad-name"}, r"slot must be a plain identifier \(letters, digits, underscore\)"),
    ({"slot": "BadName"}, "slot must be a lower-case SQL identifier"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1 and <= 10000"),
    ({"batch_size": 10_001}, "batch_size must be an integer >= 1 and <= 10000"),
    ({"slot_wait_s": float("nan")}, "slot_wait_s must be a number of seconds >= 0"),
    ({"linger_s": -1}, "linger_s must be a number of seconds >= 0"),
    ({"topic": ""}, "topic must be a non-empty string"),
])
def test_relay_settings_are_checked(dsn, engines, kwargs, message):
    from eda_lab.engines import CdcRelay

    with pytest.raises(ValueError, match=message):
        CdcRelay(dsn, engines.broker("redis"), **kwargs)


def test_a_relay_needs_a_broker_with_publish_batch(dsn):
    from eda_lab.engines import CdcRelay, PgPollingRelay

    for relay in (CdcRelay, PgPollingRelay):
        with pytest.raises(TypeError, match="broker must be a KafkaBroker or a RedisStreamsBroker"):
            relay(dsn, object())


def test_the_slot_holds_wal_while_the_relay_is_down_and_drop_frees_it(dsn, engines):
    from eda_lab.engines import PgOrderService, drop_slot, slot_status

    service = PgOrderService(dsn, slot="held")
    before = slot_status(dsn, "held")["retained_wal_bytes"]
    for _ in range(200):
        service.place_order(customer="ada", amount=1)
    deadline = time.monotonic() + 5    # the test cluster writes WAL out lazily (fsync off)
    while (during := slot_status(dsn, "held"))["retained_wal_bytes"] < before + 50_000:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert during["active"] is False and during["retained_wal_bytes"] > before + 50_000
    assert drop_slot(dsn, "held") and slot_status(dsn, "held") is None


def test_a_broker_outage_keeps_the_batch_and_publishes_it_when_back(dsn):
    from eda_lab.engines import BrokerDown, CdcRelay, PgOrderService, start_redis

    server = start_redis()
    port = int(server.url.rsplit(":", 1)[1].split("/")[0])
    client = server.client(ack_timeout_s=1.0)
    client.create_topic("outage", 1)
    service = PgOrderService(dsn, slot="outage")
    relay = CdcRelay(dsn, client, topic="outage", slot="outage")
    try:
        for _ in range(3):
            service.place_order(customer="ada", amount=1)
        server.stop()
        with pytest.raises(BrokerDown):
            relay.poll_once(timeout_s=5)
        server = start_redis(port=port)              # back (empty: Redis kept nothing)
        client.create_topic("outage", 1)
        assert relay.poll_once(timeout_s=5) == 3     # the kept batch, nothing skipped
        records = client.consumer("check", "outage").poll(10, 0.5)
        assert [r.key for r in records] == ["order-1", "order-2", "order-3"]
    finally:
        relay.close()
        server.stop()


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda e: e.start_engines("kafka"), TypeError, "brokers must be a list of names"),
    (lambda e: e.start_engines(["rabbitmq"]), ValueError, r"each of brokers must be one of"),
    (lambda e: e.start_engines([]), ValueError, "brokers must name at least one of"),
    (lambda e: e.start_engines(durable="no"), TypeError, "durable must be True or False"),
    (lambda e: e.run_end_to_end(None, relay="debezium"), ValueError,
     r"relay must be one of \('cdc', 'polling'\)"),
    (lambda e: e.run_end_to_end(None, n_orders=0), ValueError, "n_orders must be an integer >= 1"),
    (lambda e: e.run_end_to_end(None, rate_per_s=float("inf")), ValueError,
     "rate_per_s must be a number of orders per second > 0"),
    (lambda e: e.run_end_to_end(None, partitions=65), ValueError, "partitions must be an integer"),
    (lambda e: e.run_relay_kills(None, kills=-1), ValueError, "kills must be an integer >= 0"),
    (lambda e: e.run_relay_kills(None, gap_s=(0.4,)), ValueError, r"gap_s must be \(shortest, "),
    (lambda e: e.run_relay_kills(None, gap_s=(0.4, 0.1)), ValueError, r"gap_s\[1\] must be a "
                                                                      "number of seconds >= 0.4"),
    (lambda e: e.percentile([1.0], 101), ValueError, r"q must be a number in \[0, 100\]"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_experiment_settings_are_refused_before_anything_starts(call, error, message):
    """``None`` stands in for the engines: a refused call never gets as far as using them."""
    require("postgres")
    import eda_lab.engines as e

    with pytest.raises(error, match=message):
        call(e)
