"""The experiments of notebook 08, each on emptied databases and a new topic of the real engines.

:func:`run_end_to_end` wires the write path of notebook 04 on real servers: the order service
writes orders and outbox rows to PostgreSQL, a relay (CDC or polling) publishes them to a
broker, a consumer with an inbox applies them in its own database, and
:func:`eda_lab.outbox.check_consistency` judges the result. A relay that crashes at a crash point is
restarted at once, as a supervisor would, by a new relay object on the same slot.

:func:`run_relay_kills` does the same with the CDC relay in a process of its own, SIGKILLed by
its pid at random moments (seeded) while a writer keeps inserting.

Lags are wall-clock: the relay lag is broker ack time minus the outbox row's ``created_at``
(taken inside the writing transaction, just before its commit), the end-to-end lag is the
consumer's commit time minus the same. They vary from run to run; the counts do not.
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import _validate as check
from ..faults import Crash, FaultPlan
from .brokers import MAX_PARTITIONS
from .cdc_relay import LINGER_S, CdcRelay
from .pg_consumer import PgInboxConsumer
from .pg_outbox import MAX_BATCH_SIZE, PgOrderService
from .polling_relay import PgPollingRelay
from .postgres import connect
from .relay_process import RelayProcess

RELAYS = ("cdc", "polling")
CUSTOMERS = ("ada", "grace", "alan", "edsger", "barbara")
_RUNS = itertools.count(1)
DATABASE = "eda_lab_run"                 # the order service's database, emptied for each run
INBOX_DATABASE = "eda_lab_run_inbox"     # the consumer's own database, emptied likewise
SLOT = "eda_lab_run"                     # the CDC relay's slot, dropped and made anew per run
WRITE_FIRST_LINGER_S = 0.25              # write_first: a CDC batch waits this long to fill up


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank; NaN for no values."""
    check.number("q", q, minimum=0, maximum=100)
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class EndToEndRun:
    """One run: what was committed, what the consumer saw, and how long it took."""

    broker: str
    relay: str
    orders: int
    events: int
    seconds: float
    report: Any
    deliveries: int
    duplicates_dropped: int
    relay_crashes: int
    relay_lags_ms: list[float] = field(repr=False, default_factory=list)
    end_to_end_lags_ms: list[float] = field(repr=False, default_factory=list)

    @property
    def orders_per_s(self) -> float:
        return self.orders / self.seconds if self.seconds else math.nan

    def counts(self) -> dict:
        """The counts that hold exactly on every run (for a notebook table)."""
        r = self.report
        return {"broker": self.broker, "relay": self.relay, "events": self.events,
                "lost": r.lost, "phantom": r.phantom, "duplicate_effects": r.duplicate_effects,
                "order_violations": r.order_violations}

    def timings(self) -> dict:
        """The numbers that vary from run to run (lags in ms, throughput)."""
        return {"broker": self.broker, "relay": self.relay,
                "relay lag p50 (ms)": round(percentile(self.relay_lags_ms, 50), 1),
                "relay lag p99 (ms)": round(percentile(self.relay_lags_ms, 99), 1),
                "end-to-end p50 (ms)": round(percentile(self.end_to_end_lags_ms, 50), 1),
                "end-to-end p99 (ms)": round(percentile(self.end_to_end_lags_ms, 99), 1),
                "orders/s": round(self.orders_per_s)}


@dataclass
class _Setup:
    dsn: str
    inbox_dsn: str
    topic: str
    slot: str
    client: Any
    service: PgOrderService
    inbox: PgInboxConsumer


def _setup(engines, broker: str, label: str, *, partitions: int, slot: bool) -> _Setup:
    """An empty service database, an empty consumer database and a new topic.

    Every run uses the same two databases, emptied (``empty_database``: tables truncated,
    the previous run's slot dropped, so the new slot starts from now), which is what a fresh
    pair of databases would give it at a few ms instead of ~0.5 s and several MB of WAL.
    A Kafka topic cannot be emptied, so every run gets a new one, named after the run."""
    dsn = engines.postgres.empty_database(DATABASE)
    inbox_dsn = engines.postgres.empty_database(INBOX_DATABASE)
    topic = f"{label}-{broker}-{next(_RUNS)}"
    client = engines.broker(broker)
    client.create_topic(topic, partitions)
    service = PgOrderService(dsn, slot=SLOT if slot else None)
    options = {"join_group": False} if client.kind == "kafka" else {}
    consumer = client.consumer(f"{topic}-shipping", topic, **options)
    return _Setup(dsn, inbox_dsn, topic, SLOT, client, service,
                  PgInboxConsumer(inbox_dsn, consumer))


def _write(service: PgOrderService, n_orders: int, rng: random.Random,
           rate_per_s: float | None = None) -> int:
    """``n_orders`` orders; about one in three is confirmed later (a second event of the
    same key, so order per key can be checked). Returns the events written."""
    events = 0
    start = time.monotonic()
    for i in range(n_orders):
        if rate_per_s:
            delay = start + i / rate_per_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        order_id = service.place_order(customer=rng.choice(CUSTOMERS),
                                       amount=float(rng.randint(5, 120)))
        events += 1
        if rng.random() < 1 / 3:
            number = int(order_id.rsplit("-", 1)[1])
            service.record_event(f"order-{rng.randint(max(1, number - 5), number)}",
                                 "OrderConfirmed", status="confirmed")
            events += 1
    return events


def _applied(inbox_dsn: str, conn_box: list) -> int:
    if not conn_box:
        conn_box.append(connect(inbox_dsn))
    conn = conn_box[0]
    with conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM effects")
        return cur.fetchone()[0]


def _wait_applied(setup: _Setup, events: int, timeout_s: float) -> None:
    box: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while _applied(setup.inbox_dsn, box) < events and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        for conn in box:
            conn.close()


def _close(setup: _Setup) -> None:
    setup.service.close()
    setup.inbox.close()
    setup.inbox.consumer.close()   # a Kafka consumer left open keeps fetching in the background


def _consume(inbox: PgInboxConsumer, stop: threading.Event) -> None:
    while not stop.is_set():
        inbox.poll_once(500, 0.05)


def run_end_to_end(engines, broker: str = "redis", *, relay: str = "cdc", n_orders: int = 300,
                   rate_per_s: float | None = None, batch_size: int = 100,
                   faults: FaultPlan | Mapping[str, Any] | None = None,
                   write_first: bool = False, partitions: int = 3,
                   poll_interval_s: float = 0.05, seed: int = 0,
                   timeout_s: float = 60.0) -> EndToEndRun:
    """Orders through outbox, relay, broker and inbox on the real engines; the checks' verdict.

    ``write_first`` writes every order before the relay starts (batches are then exactly
    ``batch_size``, so a fault plan gives the same duplicates on every run: the CDC relay
    lingers ``WRITE_FIRST_LINGER_S`` for a batch to fill, as the stream from the slot can
    pause for a few ms on a busy machine); otherwise the writer runs alongside the relay, at
    ``rate_per_s`` orders per second (None: flat out). The run ends when the consumer applied
    every event and received every record the broker acknowledged (duplicates included).
    """
    check.one_of("relay", relay, RELAYS)
    check.count("n_orders", n_orders)
    if rate_per_s is not None:
        check.number("rate_per_s", rate_per_s, above=0, unit="orders per second")
    check.count("batch_size", batch_size, maximum=MAX_BATCH_SIZE)
    check.flag("write_first", write_first)
    check.count("partitions", partitions, maximum=MAX_PARTITIONS)
    check.number("poll_interval_s", poll_interval_s, above=0, unit="seconds")
    check.seed("seed", seed)
    check.number("timeout_s", timeout_s, above=0, unit="seconds")
    plan = faults if isinstance(faults, FaultPlan) else FaultPlan(faults or {}, seed=seed)
    setup = _setup(engines, broker, f"e2e_{relay}", partitions=partitions, slot=relay == "cdc")
    rng = random.Random(seed)
    stop_relay, stop_consumer = threading.Event(), threading.Event()
    relays: list = []

    def supervise() -> None:
        while not stop_relay.is_set():
            if relay == "cdc":
                current = CdcRelay(setup.dsn, setup.client, topic=setup.topic, slot=setup.slot,
                                   batch_size=batch_size, faults=plan, slot_wait_s=5.0,
                                   linger_s=WRITE_FIRST_LINGER_S if write_first else LINGER_S)
            else:
                current = PgPollingRelay(setup.dsn, setup.client, topic=setup.topic,
                                         batch_size=batch_size, faults=plan)
            relays.append(current)
            try:
                if relay == "cdc":
                    current.run(stop_relay)
                else:
                    current.run(stop_relay, poll_interval_s=poll_interval_s)
            except Crash:
                continue           # the supervisor starts a new relay at once
            finally:
                current.close()

    threads = [threading.Thread(target=supervise, daemon=True),
               threading.Thread(target=_consume, args=(setup.inbox, stop_consumer), daemon=True)]
    started = time.perf_counter()
    if write_first:
        events = _write(setup.service, n_orders, rng, rate_per_s)
        for thread in threads:
            thread.start()
    else:
        for thread in threads:
            thread.start()
        events = _write(setup.service, n_orders, rng, rate_per_s)
    try:
        _wait_applied(setup, events, timeout_s)
        seconds = time.perf_counter() - started
        # every event took effect; the duplicates of a repeated batch may still be on their
        # way (another Kafka partition): wait for every acknowledged record
        deadline = time.monotonic() + min(timeout_s, 5.0)
        while (len(setup.inbox.received) < sum(len(r.lags_ms) for r in list(relays))
               and time.monotonic() < deadline):
            time.sleep(0.01)
    finally:
        stop_relay.set()
        stop_consumer.set()
        for thread in threads:
            thread.join(timeout=10)
    inbox = setup.inbox
    report = inbox.check(setup.service.truth())
    run = EndToEndRun(broker, relay, n_orders, events, seconds, report, len(inbox.received),
                      inbox.duplicates, len(plan.fired),
                      [lag for r in relays for lag in r.lags_ms], list(inbox.lags_ms))
    _close(setup)
    return run


@dataclass
class KillRun:
    """The CDC relay SIGKILLed ``kills`` times while a writer inserted ``events`` events."""

    broker: str
    kills: int
    events: int
    deliveries: int
    duplicates_dropped: int
    report: Any

    def counts(self) -> dict:
        r = self.report
        return {"broker": self.broker, "kills": self.kills, "lost": r.lost,
                "phantom": r.phantom, "duplicate_effects": r.duplicate_effects,
                "order_violations": r.order_violations}


def run_relay_kills(engines, broker: str = "redis", *, kills: int = 20, seed: int = 0,
                    gap_s: tuple[float, float] = (0.05, 0.4), batch_size: int = 200,
                    rate_per_s: float = 300.0, timeout_s: float = 60.0) -> KillRun:
    """SIGKILL the CDC relay process ``kills`` times, by pid, while a writer inserts.

    The writer places about ``rate_per_s`` orders a second. Between two kills the relay runs
    for a seeded random time in ``gap_s`` (seconds) after it reported ready; then one last
    relay drains the slot and the checks compare what the consumer applied with what
    PostgreSQL committed."""
    check.count("kills", kills, minimum=0)
    check.seed("seed", seed)
    if len(check.sequence("gap_s", gap_s, "(0.05, 0.4)")) != 2:
        raise ValueError(f"gap_s must be (shortest, longest) in seconds such as (0.05, 0.4), "
                         f"got {gap_s!r}")
    low = check.number("gap_s[0]", gap_s[0], above=0, unit="seconds")
    check.number("gap_s[1]", gap_s[1], minimum=low, unit="seconds")
    check.count("batch_size", batch_size, maximum=MAX_BATCH_SIZE)
    check.number("rate_per_s", rate_per_s, above=0, unit="orders per second")
    check.number("timeout_s", timeout_s, above=0, unit="seconds")
    setup = _setup(engines, broker, "kills", partitions=3, slot=True)
    rng = random.Random(seed)
    stop_writer, stop_consumer = threading.Event(), threading.Event()
    written = [0]

    def write() -> None:    # at about rate_per_s orders a second, until told to stop
        writer_rng = random.Random(seed + 1)
        start, n = time.monotonic(), 0
        while not stop_writer.is_set():
            written[0] += _write(setup.service, 1, writer_rng)
            n += 1
            delay = start + n / rate_per_s - time.monotonic()
            if delay > 0:
                stop_writer.wait(delay)

    process = RelayProcess(setup.dsn, setup.client, topic=setup.topic, slot=setup.slot,
                           batch_size=batch_size)
    threads = [threading.Thread(target=write, daemon=True),
               threading.Thread(target=_consume, args=(setup.inbox, stop_consumer), daemon=True)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(kills):
            process.start()
            time.sleep(rng.uniform(*gap_s))
            process.kill()
        stop_writer.set()
        threads[0].join(timeout=10)
        process.start()
        _wait_applied(setup, written[0], timeout_s)
    finally:
        stop_writer.set()
        process.stop()
        stop_consumer.set()
        for thread in threads:
            thread.join(timeout=10)
    inbox = setup.inbox
    report = inbox.check(setup.service.truth())
    run = KillRun(broker, process.kills, written[0], len(inbox.received), inbox.duplicates,
                  report)
    _close(setup)
    return run
