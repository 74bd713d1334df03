"""All the engines of notebook 08 in one call: :func:`start_engines`, and ``stop()`` at the end.

The servers start side by side (PostgreSQL's ``initdb`` is the slow one, about half a second),
each on a free port of 127.0.0.1, each stopped by its own pid. A broker whose binary is missing
on this platform is left out and its reason kept in ``missing``, so the notebook can say so and
go on with the other. The environment variables of :mod:`.postgres`, :mod:`.kafka` and
:mod:`.redis_streams` switch each engine to an existing server. ``stop()`` also runs when the
Python process exits, so a kernel restart does not leave servers behind.
"""

from __future__ import annotations

import atexit
from concurrent.futures import ThreadPoolExecutor

from .. import _validate as check
from .availability import missing
from .errors import EngineUnavailable

BROKERS = ("kafka", "redis")


def _start(engine: str, durable: bool):
    if engine == "postgres":
        from .postgres import start_postgres

        return start_postgres(durable=durable)
    if engine == "kafka":
        from .kafka import start_kafka

        return start_kafka()
    from .redis_streams import start_redis

    return start_redis()


class Engines:
    """A PostgreSQL cluster and the brokers that could start; ``broker(kind)`` is a client."""

    def __init__(self, postgres, servers: dict, missing_reasons: dict[str, str]):
        self.postgres = postgres
        self.servers = servers
        self.missing = missing_reasons
        self._clients: dict = {}
        atexit.register(self.stop)

    @property
    def brokers(self) -> tuple[str, ...]:
        """The broker kinds running, in the order asked for."""
        return tuple(self.servers)

    def broker(self, kind: str):
        """The (shared) client of broker ``kind``: a KafkaBroker or a RedisStreamsBroker."""
        if kind not in self.servers:
            reason = self.missing.get(kind, f"it was not asked for (brokers={self.brokers})")
            raise ValueError(f"broker must be one of {self.brokers}; {kind!r} is not running: "
                             f"{reason}")
        if kind not in self._clients:
            self._clients[kind] = self.servers[kind].client()
        return self._clients[kind]

    def status(self) -> list[dict]:
        """One row per engine: what it is and whether it runs here or is external."""
        rows = [{"engine": "postgres", "running": True,
                 "where": "external" if self.postgres.external else "local, by pid"}]
        for kind in BROKERS:
            if kind in self.servers:
                server = self.servers[kind]
                rows.append({"engine": kind, "running": True,
                             "where": "external" if server.external else "local, by pid"})
            elif kind in self.missing:
                rows.append({"engine": kind, "running": False, "where": self.missing[kind]})
        return rows

    def stop(self) -> None:
        """Close the clients, then stop every server this object started (by pid)."""
        for client in self._clients.values():
            try:
                client.close()
            except Exception:   # a client of a server already gone: nothing left to close
                pass
        self._clients.clear()
        for server in self.servers.values():
            server.stop()
        if self.postgres is not None:
            self.postgres.stop()
        atexit.unregister(self.stop)

    def __enter__(self) -> Engines:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Engines(postgres={self.postgres!r}, brokers={self.brokers})"


def start_engines(brokers=BROKERS, *, durable: bool = True) -> Engines:
    """Start PostgreSQL and each broker in ``brokers`` ("kafka", "redis") at once.

    A broker that cannot run on this machine is skipped (see ``Engines.missing``), unless it
    is the only one asked for; PostgreSQL is always needed."""
    brokers = check.names("brokers", brokers, allowed=BROKERS)
    if not brokers:
        raise ValueError(f"brokers must name at least one of {BROKERS}, got []")
    check.flag("durable", durable)
    reason = missing("postgres")
    if reason:
        raise EngineUnavailable(f"PostgreSQL cannot start: {reason}")
    reasons = {kind: why for kind in brokers if (why := missing(kind))}
    wanted = [kind for kind in brokers if kind not in reasons]
    if not wanted:
        raise EngineUnavailable(f"no broker can start here: {reasons}")
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {engine: pool.submit(_start, engine, durable)
                   for engine in ("postgres", *wanted)}
        started, errors = {}, []
        for engine, future in futures.items():
            try:
                started[engine] = future.result()
            except Exception as error:
                errors.append(error)
    if errors:
        for server in started.values():
            server.stop()
        raise errors[0]
    return Engines(started.pop("postgres"), {kind: started[kind] for kind in wanted}, reasons)
