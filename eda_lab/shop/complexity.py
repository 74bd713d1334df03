"""Infrastructure complexity, counted: the moving parts of each design, read from its wiring.

The seed says that event-driven architecture "increases infrastructure complexity". Here that
is a count per design, not an adjective. Each design is built from the course's own parts (the
ones the notebooks run), a few orders go through it, and then its parts are counted from the
objects that were wired together and from what the run did:

=================  ==========================================================================
processes to run   the broker, one service per database (a service owns its database and
                   runs as one process: its requests, its consumers, its handlers), and every
                   relay (a poller, or a CDC connector such as Debezium, is a process of its own)
databases          the distinct databases found in the wiring
tables             the tables the run read or wrote (the SQL every database executed while the
                   orders went through); a table that is created but never used is not counted
topics             the topics on the broker, dead-letter topics included
consumer groups    the groups subscribed on the broker
crash points       the named fault points the run passed (:attr:`FaultPlan.hits`): each is a
                   moment where a crash leaves something to recover
settings           the tunables of the parts found, one per kind of part and setting (every
                   relay's poll interval counts once): the numbers somebody must choose
=================  ==========================================================================

The designs (:data:`DESIGNS`), from the simplest:

* **plain CRUD**: one service, one database, an order is one local transaction; nobody else is
  told (:class:`CrudOrders`, the only wiring made here: a service of notebook 03 without its
  broker);
* **naive dual write**: the order service commits, then publishes; one consumer (notebook 03);
* **outbox and relay**: the order service, its outbox and a polling relay; one consumer with
  an inbox (notebook 04);
* **outbox and saga**: the shop of notebook 07 without its downstream consumers: the order
  service and its relay, the saga starter, the orchestrator and its saga log, four
  participants, each service sending through its own outbox and relay (notebook 05);
* **the whole shop**: the same, plus the two downstream consumers with their inboxes (07).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import sqlite_utils

from .. import _validate as check
from ..broker import Broker
from ..clock import Clock
from ..consumer import ConsumerWorker
from ..db import open_db, transaction
from ..faults import FaultPlan
from ..inbox import Inbox
from ..messages import Message
from ..orders import ORDERS_TABLE, PLACED, create_orders_table
from ..outbox.order_service import AFTER_COMMIT, BEFORE_COMMIT, OrderService
from ..outbox.relay import Relay
from ..outbox.write_path import WritePath
from ..saga.definition import SagaDefinition
from ..saga.orchestrator import SagaOrchestrator
from ..saga.runner import ServiceHost
from ..trace import Trace
from .shop import Shop

# The attributes of a part that are settings (somebody must choose them), by name. Attributes
# that only model the simulation (a handler's processing time, a hop's latency, how long the
# broker's delay fault holds a message) are not settings of the design and are left out.
SETTING_NAMES = frozenset({
    "poll_interval_ms", "batch_size", "max_batch", "cleanup", "retention_ms",
    "restart_after_ms", "max_attempts", "backoff_ms", "backoff_factor", "commit_every",
    "reply_timeout_ms", "retry_backoff_ms", "retry_budget_ms", "max_backoff_ms", "recovery",
    "retries",
})
MAX_ORDERS = 100     # a count needs only a few orders; more would only take longer
_LEAVES = (Clock, Trace, FaultPlan, Message, SagaDefinition, str, bytes, int, float, bool,
           type(None))


class CrudOrders:
    """Plain CRUD: the order service alone. An order is one local transaction in its own
    database, between the same two crash points as notebook 03's service; nobody else hears
    of it, so there is no broker, no event and nothing to relay.

    >>> crud = CrudOrders()
    >>> crud.place_order(customer="ada", amount=30.0)
    'order-1'
    """

    name = "order"

    def __init__(self, faults: FaultPlan | None = None):
        self.faults = faults if faults is not None else FaultPlan()
        self.clock = Clock()
        self.db = open_db()
        create_orders_table(self.db)
        self._number = 0

    def place_order(self, *, customer: str = "ada", amount: float = 25.0) -> str:
        check.name("customer", customer)
        check.number("amount", amount, above=0)
        self._number += 1
        order_id = f"order-{self._number}"
        now = self.clock.now
        with transaction(self.db) as conn:
            conn.execute(f"INSERT INTO {ORDERS_TABLE} (order_id, customer, amount, state, "
                         "version, created_at, updated_at) VALUES (?, ?, ?, ?, 1, ?, ?)",
                         (order_id, customer, amount, PLACED, now, now))
            self.faults.check(BEFORE_COMMIT)
        self.faults.check(AFTER_COMMIT)
        return order_id


Design = Callable[[FaultPlan], tuple[Any, Callable[[int], Any]]]


def _crud(plan: FaultPlan):
    crud = CrudOrders(plan)
    return crud, lambda n: [crud.place_order(customer="alice", amount=30.0) for _ in range(n)]


def _write_path(variant: str) -> Design:
    def build(plan: FaultPlan):
        path = WritePath(variant, plan, consumers=("shipping",), trace=False)

        def drive(n: int) -> None:
            path.start()
            for _ in range(n):
                path.place_order(customer="alice", amount=30.0)
                path.clock.run(path.clock.now + 20.0)
            path.clock.run(path.clock.now + 5_000.0)   # ten relay polls: everything delivered
        return path, drive
    return build


def _shop(consumers: tuple[str, ...] | None) -> Design:
    def build(plan: FaultPlan):
        shop = (Shop(faults=plan, trace=False) if consumers is None
                else Shop(faults=plan, consumers=consumers, trace=False))
        return shop, shop.run
    return build


DESIGNS: dict[str, Design] = {
    "plain CRUD": _crud,
    "naive dual write": _write_path("db_then_publish"),
    "outbox and relay": _write_path("outbox-polling"),
    "outbox and saga": _shop(()),
    "the whole shop": _shop(None),
}


class MovingParts(NamedTuple):
    """What one design needs to run, counted from its wiring (see the module's table)."""

    design: str
    brokers: int
    databases: int
    relays: int
    tables: tuple[str, ...]          # "database: table", the ones the run used
    topics: tuple[str, ...]
    groups: tuple[str, ...]
    crash_points: tuple[str, ...]
    settings: tuple[str, ...]        # "kind of part.setting"

    @property
    def processes(self) -> int:
        """The broker, one service per database, and every relay."""
        return self.brokers + self.databases + self.relays

    def counts(self) -> dict[str, Any]:
        """One row of the table: the design and each count."""
        return {"design": self.design, "processes to run": self.processes,
                "databases": self.databases, "relays": self.relays,
                "tables": len(self.tables), "topics": len(self.topics),
                "consumer groups": len(self.groups), "crash points": len(self.crash_points),
                "settings": len(self.settings)}

    def added_to(self, simpler: MovingParts) -> dict[str, list[str]]:
        """What this design has that ``simpler`` has not: tables, topics, groups, crash points
        and settings, by name."""
        return {field: sorted(set(getattr(self, field)) - set(getattr(simpler, field)))
                for field in ("tables", "topics", "groups", "crash_points", "settings")}


def parts_of(root: Any) -> list[Any]:
    """Every part reachable from ``root`` through its attributes (and the dicts, lists and
    tuples they hold): the course's own objects, brokers and databases. The clock, the trace,
    the fault plan and messages are not walked into (they hold no parts), nor functions and
    other objects from outside the course."""
    seen: set[int] = set()
    found: list[Any] = []
    stack: deque[Any] = deque([root])
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _LEAVES):
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset, deque)):
            stack.extend(obj)
        elif isinstance(obj, (Broker, sqlite_utils.Database)):
            found.append(obj)     # counted, not walked into (a broker holds every message)
        elif type(obj).__module__.startswith("eda_lab.") and hasattr(obj, "__dict__"):
            found.append(obj)
            stack.extend(vars(obj).values())
    return found


def count_parts(design: str, n_orders: int = 5) -> MovingParts:
    """Build ``design`` (a key of :data:`DESIGNS`), run ``n_orders`` orders through it and
    count its moving parts."""
    check.one_of("design", design, DESIGNS)
    check.count("n_orders", n_orders, maximum=MAX_ORDERS)
    plan = FaultPlan()                      # fires nothing; counts every point passed
    system, drive = DESIGNS[design](plan)
    databases = _distinct(p for p in parts_of(system) if isinstance(p, sqlite_utils.Database))
    statements: dict[int, list[str]] = {id(db): [] for db in databases}
    for db in databases:
        db.conn.set_trace_callback(statements[id(db)].append)
    try:
        drive(n_orders)
    finally:
        for db in databases:
            db.conn.set_trace_callback(None)
    parts = parts_of(system)               # again: a restarted part is a new object
    brokers = _distinct(p for p in parts if isinstance(p, Broker))
    names = _database_names(parts, databases)
    tables = []
    for db in databases:
        sql = "\n".join(statements[id(db)])
        for table in db.table_names():
            if not table.startswith("sqlite_") and re.search(rf'\b"?{re.escape(table)}"?\b', sql):
                tables.append(f"{names[id(db)]}: {table}")
    topics = sorted({t for b in brokers for t in b.topics})
    groups = sorted({g for b in brokers for g in b.groups})
    settings = sorted({f"{_kind(p)}.{name}" for p in parts for name in _settings_of(p)}
                      | ({"broker.partitions"} if brokers else set()))
    return MovingParts(design, len(brokers), len(databases),
                       len(_distinct(p for p in parts if isinstance(p, Relay))),
                       tuple(sorted(tables)), tuple(topics), tuple(groups),
                       tuple(sorted(plan.hits)), tuple(settings))


def moving_parts(designs: Iterable[str] | None = None, n_orders: int = 5) -> list[MovingParts]:
    """:func:`count_parts` for each design (all of :data:`DESIGNS`, simplest first)."""
    chosen = list(DESIGNS) if designs is None else check.names("designs", designs, DESIGNS)
    return [count_parts(design, n_orders) for design in chosen]


def _distinct(objects: Iterable[Any]) -> list[Any]:
    unique: dict[int, Any] = {}
    for obj in objects:
        unique.setdefault(id(obj.conn) if isinstance(obj, sqlite_utils.Database) else id(obj),
                          obj)
    return list(unique.values())


def _settings_of(part: Any) -> list[str]:
    """The settings a part has (see :data:`SETTING_NAMES`); an outbox service's publish
    retries are not one (it never publishes)."""
    if isinstance(part, (Broker, sqlite_utils.Database)) or not hasattr(part, "__dict__"):
        return []
    names = [name for name, value in vars(part).items()
             if name in SETTING_NAMES and value is not None]
    if isinstance(part, OrderService) and part.variant == "outbox":
        names.remove("retries")
    return names


_KINDS = ((Relay, "relay"), (ConsumerWorker, "consumer"), (SagaOrchestrator, "orchestrator"),
          (OrderService, "order service"), (ServiceHost, "saga services"))


def _kind(part: Any) -> str:
    """The kind of a part, as its settings are named: relay, consumer, orchestrator, ..."""
    return next((kind for cls, kind in _KINDS if isinstance(part, cls)), type(part).__name__)


def _database_names(parts: Iterable[Any],
                    databases: list[sqlite_utils.Database]) -> dict[int, str]:
    """A readable name for each database: the service among ``parts`` that owns it (a relay or
    an inbox only works in its service's database)."""
    names: dict[int, str] = {}
    for part in parts:
        db = getattr(part, "db", None)
        if (isinstance(db, sqlite_utils.Database) and id(db.conn) not in names
                and not isinstance(part, (Relay, Inbox))):
            names[id(db.conn)] = (getattr(part, "name", None)
                                  or {"SagaLog": "orchestrator"}.get(type(part).__name__,
                                                                      type(part).__name__))
    return {id(db): names.get(id(db.conn), "database") for db in databases}
