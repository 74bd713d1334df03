"""Eventual consistency, measured: per order, how long until every service agrees.

An order is committed in the order service's database at one moment; shipping, billing and
analytics each learn of it later, when the relay has published ``OrderPlaced`` and their
consumer has applied it to their own database. Until the last of them has, the services
disagree about whether the order exists. That window is the **agreement lag**:

    agreement lag = (the last consumer's ``applied_at``) - (the order's ``created_at``)

Both times are read from the databases (the order service's ``orders`` table, each consumer's
``effects`` table), never from a component's memory, so the measurement works the same for
any run that leaves those tables behind (the chaos lab's too): see :func:`agreement_rows`.

:func:`measure_agreement` runs the experiment on the simulated clock: orders arrive at random
(seeded) moments, the outbox's relay polls every ``poll_interval_ms``, each consumer polls on
its own, and one consumer can be down for ``outage_ms``. What moves the lag is then plain to
see: the poll interval sets its everyday size, an outage its tail.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import sqlite_utils

from .. import _validate as check
from ..faults import FaultPlan, Outage
from ..orders import ORDERS_TABLE
from ..outbox.order_consumer import EFFECTS_TABLE
from ..outbox.relay import RELAYS
from ..outbox.write_path import TIMINGS, WritePath
from ..stats import percentile

CONSUMERS = ("shipping", "billing", "analytics")
OUTAGE_START_MS = 1_000.0      # when the outage (if any) begins
SETTLE_MS = 60_000.0           # how long after the last order the run may go on catching up
# Longer settings than ten simulated minutes only make a run slow (the consumers poll all the
# way through): they are refused, with this limit named. The same bound holds for the order
# stream (n_orders x order_interval_ms), and a run takes at most MAX_ORDERS orders (about 4 s).
MAX_MS = 600_000.0
MAX_ORDERS = 10_000
MAX_SWEEP_RUNS = 40            # agreement_sweep: poll intervals x outages, each a full run


class AgreementRow(NamedTuple):
    """One order: when it was committed, when each consumer applied it, when all agreed."""

    order_id: str
    committed_ms: float
    applied_ms: Mapping[str, float | None]
    agreed_ms: float | None     # None: some consumer has not applied it (yet)
    lag_ms: float | None
    last: str | None            # the consumer that applied it last (the one that set the lag)


def agreement_rows(committed: Mapping[str, float],
                   applied: Mapping[str, Mapping[str, float]]) -> list[AgreementRow]:
    """Per order, when every consumer agreed with the source of truth.

    ``committed`` maps order id -> commit time (ms); ``applied`` maps consumer -> {order id ->
    the first time it applied that order}. An order a consumer never applied has no
    agreement time. Rows come in commit order.

    >>> rows = agreement_rows({"order-1": 0.0}, {"shipping": {"order-1": 120.0},
    ...                                          "billing": {"order-1": 450.0}})
    >>> rows[0].lag_ms, rows[0].last
    (450.0, 'billing')
    """
    if not isinstance(committed, Mapping) or not isinstance(applied, Mapping):
        raise TypeError("committed must map order id -> ms and applied consumer -> {order id -> "
                        "ms}")
    if not applied:
        raise ValueError("applied must name at least one consumer: agreement needs someone to "
                         "agree with the source of truth")
    rows = []
    for order_id, at in sorted(committed.items(), key=lambda item: (item[1], item[0])):
        times = {name: seen.get(order_id) for name, seen in applied.items()}
        if any(t is None for t in times.values()):
            rows.append(AgreementRow(order_id, at, times, None, None, None))
            continue
        last = max(times, key=lambda name: (times[name], name))
        rows.append(AgreementRow(order_id, at, times, times[last], times[last] - at, last))
    return rows


def committed_times(db: sqlite_utils.Database, table: str = ORDERS_TABLE) -> dict[str, float]:
    """Order id -> the time its row was committed, from the order service's database."""
    return dict(db.execute(f'SELECT order_id, created_at FROM "{table}"').fetchall())


def applied_times(db: sqlite_utils.Database, event_type: str = "OrderPlaced",
                  table: str = EFFECTS_TABLE) -> dict[str, float]:
    """Order id -> when a consumer first applied ``event_type`` of it, from its database."""
    return dict(db.execute(f'SELECT order_id, min(applied_at) FROM "{table}" WHERE type = ? '
                           "GROUP BY order_id", (event_type,)).fetchall())


class Agreement(NamedTuple):
    """The result of one run: its settings and one :class:`AgreementRow` per order."""

    settings: Mapping[str, Any]
    rows: tuple[AgreementRow, ...]

    def lags(self) -> list[float]:
        """The agreement lag of every order on which every consumer agrees, in commit order."""
        return [r.lag_ms for r in self.rows if r.lag_ms is not None]

    def summary(self) -> dict[str, Any]:
        """Orders, how many reached agreement, and the lag's median, 95th percentile, max."""
        lags = self.lags()
        return {"orders": len(self.rows), "agreed": len(lags),
                "p50_ms": _round(percentile(lags, 50)), "p95_ms": _round(percentile(lags, 95)),
                "max_ms": _round(max(lags, default=None)),
                "mean_ms": _round(sum(lags) / len(lags) if lags else None)}

    def frame(self):
        """One row per order: commit time, each consumer's apply time, the lag (pandas)."""
        import pandas as pd

        consumers = list(self.settings["consumers"])
        return pd.DataFrame(
            [{"order_id": r.order_id, "committed_ms": r.committed_ms,
              **{f"{c}_ms": r.applied_ms[c] for c in consumers}, "lag_ms": r.lag_ms,
              "last": r.last} for r in self.rows],
            columns=["order_id", "committed_ms", *[f"{c}_ms" for c in consumers], "lag_ms",
                     "last"])

    def stale_share(self, after_ms: Iterable[float]) -> list[dict[str, Any]]:
        """For each delay: the share of orders some service still did not know ``after_ms``
        after the commit (a customer looking then, at the slowest copy, misses the order)."""
        lags = self.lags()
        missing = len(self.rows) - len(lags)
        after_ms = [check.ms("each of after_ms", delay, positive=False) for delay in after_ms]
        rows = []
        for delay in after_ms:
            stale = sum(1 for lag in lags if lag > delay) + missing
            rows.append({"after_ms": delay,
                         "stale_share": round(stale / len(self.rows), 3) if self.rows else None})
        return rows


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def arrival_times(n_orders: int, order_interval_ms: float, seed: int = 0) -> list[float]:
    """When ``n_orders`` orders arrive: random gaps of mean ``order_interval_ms`` (a Poisson
    stream, as independent customers make), seeded, rounded to 0.1 ms."""
    check.count("n_orders", n_orders, minimum=0, maximum=MAX_ORDERS)
    check.ms("order_interval_ms", order_interval_ms)
    rng = random.Random(seed)
    times, now = [], 0.0
    for _ in range(n_orders):
        times.append(round(now, 1))
        now += rng.expovariate(1.0 / order_interval_ms)
    return times


def measure_agreement(n_orders: int = 300, *, poll_interval_ms: float = TIMINGS.poll_interval_ms,
                      outage_ms: float = 0.0, outage_consumer: str = "analytics",
                      outage_start_ms: float = OUTAGE_START_MS,
                      order_interval_ms: float = TIMINGS.order_interval_ms,
                      consumer_poll_ms: float = TIMINGS.consumer_poll_ms,
                      consumers: Sequence[str] = CONSUMERS, relay: str = "polling",
                      batch_size: int = 100, faults: Mapping[str, Any] | None = None,
                      seed: int = 0) -> Agreement:
    """Run ``n_orders`` through the outbox to every consumer on one clock; measure agreement.

    The order service writes each order and its ``OrderPlaced`` outbox row in one transaction;
    a ``relay`` ("polling" or "log-tailing") publishes every ``poll_interval_ms``; each
    consumer (its own group, database and inbox) polls every ``consumer_poll_ms``, starting at
    a seeded moment of its own. ``outage_consumer`` is down (does not poll) from
    ``outage_start_ms`` for ``outage_ms``. ``faults`` may crash the parts at named points
    (``{"relay.after_publish": 0.05}``): a crashed relay restarts after its delay, a crashed
    consumer at its next poll. Arguments are checked before anything runs, and sizes that
    would run for minutes are refused, naming the limit: at most :data:`MAX_ORDERS` orders,
    durations and the order stream (``n_orders x order_interval_ms``) up to :data:`MAX_MS`.
    """
    check.count("n_orders", n_orders, maximum=MAX_ORDERS)
    poll_interval_ms = check.ms("poll_interval_ms", poll_interval_ms, maximum=MAX_MS)
    order_interval_ms = check.ms("order_interval_ms", order_interval_ms, maximum=MAX_MS)
    consumer_poll_ms = check.ms("consumer_poll_ms", consumer_poll_ms, maximum=MAX_MS)
    outage_ms = check.ms("outage_ms", outage_ms, positive=False, maximum=MAX_MS)
    outage_start_ms = check.ms("outage_start_ms", outage_start_ms, positive=False,
                               maximum=MAX_MS)
    if n_orders * order_interval_ms > MAX_MS:
        raise ValueError(f"n_orders x order_interval_ms must be at most {MAX_MS:,.0f} ms (ten "
                         f"simulated minutes of orders: the consumers poll all the way through), "
                         f"got {n_orders:,} x {order_interval_ms:g} ms = "
                         f"{n_orders * order_interval_ms:,.0f} ms")
    consumers = tuple(consumers) if not isinstance(consumers, str) else (consumers,)
    if not consumers or len(set(consumers)) != len(consumers) or not all(
            isinstance(c, str) and c for c in consumers):
        raise ValueError(f"consumers must be distinct non-empty names, got {consumers!r}")
    if outage_ms and outage_consumer not in consumers:
        raise ValueError(f"outage_consumer must be one of the consumers {consumers}, got "
                         f"{outage_consumer!r}")
    if relay not in RELAYS:
        raise ValueError(f"relay kind must be one of {tuple(RELAYS)}, got {relay!r}")
    if faults is not None and not isinstance(faults, Mapping):
        raise TypeError(f"faults must be a dict of fault points such as "
                        f"{{'relay.after_publish': 1}}, got {type(faults).__name__}")
    outages = ([Outage(outage_consumer, outage_start_ms, outage_start_ms + outage_ms)]
               if outage_ms else [])
    plan = FaultPlan(faults or {}, seed=seed, outages=outages)
    path = WritePath(f"outbox-{relay}", plan, seed=seed, consumers=consumers,
                     poll_interval_ms=poll_interval_ms, consumer_poll_ms=consumer_poll_ms,
                     batch_size=batch_size, trace=False)
    clock = path.clock
    rng = random.Random(f"{seed}:phases")
    for consumer in path.consumers.values():  # each starts polling at a moment of its own
        # a crashed consumer is back at its next poll (not at once: one that crashes on every
        # visit would loop for ever without the clock moving)
        consumer.worker.restart_after_ms = consumer_poll_ms
        clock.call_at(round(rng.uniform(0, consumer_poll_ms), 1), consumer.start)
    arrivals = arrival_times(n_orders, order_interval_ms, seed)
    for at in arrivals:
        clock.call_at(at, path.place_order)
    path.relay.start()
    _run_until_agreed(path, arrivals[-1] + outage_start_ms + outage_ms)

    committed = committed_times(path.service.db)
    applied = {name: applied_times(consumer.db) for name, consumer in path.consumers.items()}
    settings = {"n_orders": n_orders, "poll_interval_ms": poll_interval_ms,
                "outage_ms": outage_ms, "outage_consumer": outage_consumer,
                "outage_start_ms": outage_start_ms, "order_interval_ms": order_interval_ms,
                "consumer_poll_ms": consumer_poll_ms, "consumers": consumers, "relay": relay,
                "seed": seed}
    return Agreement(settings, tuple(agreement_rows(committed, applied)))


def _run_until_agreed(path: WritePath, quiet_after_ms: float) -> None:
    """Run past the last order and any outage, then until the relay has published everything
    and every consumer has caught up (or ``SETTLE_MS`` more have passed)."""
    clock = path.clock
    clock.run(quiet_after_ms)
    deadline = clock.now + SETTLE_MS
    while clock.now < deadline:
        clock.advance(500.0)
        if path.idle():
            return


def agreement_sweep(poll_intervals_ms: Iterable[float], outages_ms: Iterable[float],
                    **settings: Any) -> list[dict[str, Any]]:
    """:func:`measure_agreement` for each poll interval and outage length: one summary row each
    (at most :data:`MAX_SWEEP_RUNS` runs; every argument is checked before the first runs)."""
    poll_intervals_ms, outages_ms = _values("poll_intervals_ms", poll_intervals_ms), \
        _values("outages_ms", outages_ms)
    runs = len(poll_intervals_ms) * len(outages_ms)
    if runs > MAX_SWEEP_RUNS:
        raise ValueError(f"a sweep must have at most {MAX_SWEEP_RUNS} runs (poll intervals x "
                         f"outages), got {len(poll_intervals_ms)} x {len(outages_ms)} = {runs}")
    for interval in poll_intervals_ms:
        check.ms("each of poll_intervals_ms", interval, maximum=MAX_MS)
    for outage in outages_ms:
        check.ms("each of outages_ms", outage, positive=False, maximum=MAX_MS)
    rows = []
    for outage in outages_ms:
        for interval in poll_intervals_ms:
            result = measure_agreement(poll_interval_ms=interval, outage_ms=outage, **settings)
            rows.append({"poll_interval_ms": interval, "outage_ms": outage, **result.summary()})
    return rows


def _values(name: str, values: Iterable[float]) -> list[float]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list of ms such as [100, 500], got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must name at least one value, got an empty list")
    return values


def broken_promises(stock: int, arrivals_ms: Sequence[float], lag_ms: float) -> dict[str, int]:
    """Buyers check a copy of the stock that is ``lag_ms`` behind; the stock itself decides.

    A storefront that reads an eventually consistent copy accepts a buyer while the copy shows
    stock left; inventory, the source of truth, then reserves the item or refuses (sold out
    meanwhile). Refused after being accepted is a **broken promise**: an apology, a refund.
    A strongly consistent check (one local transaction in inventory: take the item only if one
    is left) breaks none, at the price of asking inventory on every purchase, synchronously.
    """
    check.count("stock", stock, minimum=0)
    lag_ms = check.ms("lag_ms", lag_ms, positive=False)
    sold_at: list[float] = []
    accepted = refused_upfront = broken = 0
    for at in sorted(arrivals_ms):
        seen_left = stock - sum(1 for t in sold_at if t <= at - lag_ms)
        if seen_left <= 0:
            refused_upfront += 1
            continue
        accepted += 1
        if len(sold_at) < stock:
            sold_at.append(at)
        else:
            broken += 1
    return {"buyers": len(arrivals_ms), "accepted": accepted, "sold": len(sold_at),
            "broken_promises": broken, "told_sold_out": refused_upfront}
