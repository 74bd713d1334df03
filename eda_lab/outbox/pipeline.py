"""The outbox pipeline of notebooks 03-04: the write path (:mod:`eda_lab.outbox.write_path`) with one
consumer, and the experiments run on it.

One :class:`OrderPipeline` is one experiment. It can be driven three ways, all on the same
plain code:

* ``step()``: one action of one part (the service takes an order, the relay polls once, the
  consumer polls once), for the visualizer;
* ``run(n)``: n orders as fast as possible, the relay and consumer polling in between, then
  ``settle()`` until nothing is left on the way (for counts over many orders);
* ``simulate(n, order_interval_ms)``: the same parts as processes on the simulated clock, with
  poll intervals and restart delays, for lag measurements.

A crash at a named point is caught here, as a supervisor restarting the process would: the
crash is in the trace and the part carries on from what its database says.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from .. import _validate as check
from .._runtime import paused_gc
from ..faults import Crash, FaultPlan, fault_points
from .checks import ConsistencyReport, EventKey
from .relay import BATCH_SIZE, RETENTION_MS
from .write_path import OUTBOX_VARIANTS, TIMINGS, VARIANTS, WritePath

PIPELINES = VARIANTS
OUTBOX_PIPELINES = OUTBOX_VARIANTS
ACTORS = ("order", "relay", "consumer")
STEP_MS = 100.0   # simulated time one visualizer step takes
MAX_ORDERS = 100_000          # more orders than this in one run only make a cell slow
MAX_SETTLE_MS = 3_600_000.0   # an hour of simulated time after the last order
MAX_WALK_STEPS = 200          # a walk that has not gone idle by then never will (see walk)


class StepResult(NamedTuple):
    """What one ``step()`` did: which part acted, a sentence, and the trace records it made."""

    actor: str
    summary: str
    records: list


class Walk(NamedTuple):
    """What ``walk()`` did: every step, and one sentence saying why it stopped."""

    steps: list
    stopped: str


def _summary(actor: str, records: list, order_id: str) -> str:
    """One sentence for a step, from the trace records it made."""
    kinds = [r.kind for r in records]
    crash = next((r.detail for r in records if r.kind == "crash"), None)
    refused = "unavailable" in kinds
    if actor == "order":
        committed = "db_commit" in kinds
        text = f"order service: {order_id} " + ("committed" if committed else "not committed")
        if "publish" in kinds:
            text += ", published"
    elif actor == "relay":
        text = f"relay: published {kinds.count('publish')} event(s)"
        text += ", marked them" if "mark" in kinds else ""
    else:
        text = f"consumer: received {kinds.count('deliver') + kinds.count('duplicate')} event(s)"
        text += ", acknowledged" if "commit" in kinds else ""
    if refused:
        text += "; the broker refused a publish"
    if crash:
        text += f"; then CRASHED at {crash}"
    return text


class OrderPipeline(WritePath):
    """The write path with one consumer (``shipping``), driven a step, a run or a simulation
    at a time.

    ``variant`` is one of :data:`PIPELINES`; ``faults`` a dict such as
    ``{"relay.after_publish": 1}`` or a :class:`FaultPlan`; ``seed`` fixes every random
    choice (the fault plan's, the ids').
    """

    def __init__(self, variant: str = "outbox-polling",
                 faults: FaultPlan | Mapping[str, Any] | None = None, *, seed: int = 0,
                 inbox: bool = True, partitions: int = 3, batch_size: int = BATCH_SIZE,
                 poll_interval_ms: float = TIMINGS.poll_interval_ms, consumer_batch: int = 100,
                 cleanup: str = "retain", retention_ms: float = RETENTION_MS, retries: int = 0,
                 restart_after_ms: float = TIMINGS.restart_after_ms, trace: bool = True):
        super().__init__(variant, faults, seed=seed, inbox=inbox, partitions=partitions,
                         batch_size=batch_size, poll_interval_ms=poll_interval_ms,
                         consumer_batch=consumer_batch, cleanup=cleanup,
                         retention_ms=retention_ms, retries=retries,
                         restart_after_ms=restart_after_ms, trace=trace)
        self.consumer = self.consumers["shipping"]
        self.queued = 0
        self._turn = 0

    # -- the parts' actions, as a supervisor runs them -----------------------------------------
    def relay_poll(self) -> int:
        """One poll of the relay (0 for the naive variants); a crash restarts it."""
        if self.relay is None:
            return 0
        try:
            return self.relay.poll_once()
        except Crash:
            self.relay.crash(restart_after_ms=0.0)   # synchronous runs restart it at once
            return 0

    def consumer_poll(self) -> int:
        """One poll of the consumer; a crash restarts it (its unacknowledged batch comes again)."""
        try:
            return self.consumer.poll_once()
        except Crash:
            return 0

    def settle(self, max_rounds: int = 2_000) -> int:
        """Poll relay and consumer until nothing is on its way (or ``max_rounds``); rounds used."""
        for rounds in range(1, max_rounds + 1):
            self.relay_poll()
            self.consumer_poll()
            if self.idle():
                return rounds
        return max_rounds

    @paused_gc()   # a long run: see eda_lab/_runtime.py
    def run(self, n_orders: int, *, poll_every: int = 10, settle: bool = True,
            **order: Any) -> ConsistencyReport:
        """Place ``n_orders`` orders, the relay and consumer polling every ``poll_every``; then
        settle and return the check."""
        check.count("n_orders", n_orders, minimum=0, maximum=MAX_ORDERS)
        check.count("poll_every", poll_every)
        for i in range(1, n_orders + 1):
            self.place_order(**order)
            if i % poll_every == 0:
                self.relay_poll()
                self.consumer_poll()
        if settle:
            self.settle()
        return self.report()

    def simulate(self, n_orders: int, order_interval_ms: float = 20.0,
                 settle_ms: float = 10_000.0) -> ConsistencyReport:
        """Orders arrive every ``order_interval_ms`` on the simulated clock while the relay and
        the consumer run as processes; the clock stops ``settle_ms`` after the last order."""
        check.count("n_orders", n_orders, minimum=0, maximum=MAX_ORDERS)
        check.ms("order_interval_ms", order_interval_ms)
        check.ms("settle_ms", settle_ms, positive=False, maximum=MAX_SETTLE_MS)
        clock = self.clock

        def orders():
            for _ in range(n_orders):
                self.place_order()
                yield clock.timeout(order_interval_ms)

        clock.process(orders())
        self.start()
        clock.run(clock.now + n_orders * order_interval_ms + settle_ms)
        return self.report()

    # -- stepping, one action at a time (the visualizer) ---------------------------------------
    def request_order(self, count: int = 1) -> None:
        """Queue orders; each ``step()`` of the service takes one."""
        check.count("count", count, maximum=MAX_ORDERS)
        self.queued += count

    def has_work(self, actor: str) -> bool:
        if actor == "order":
            return self.queued > 0
        if actor == "relay":
            return self.relay is not None and self.relay.backlog() > 0
        return self.consumer.lag() > 0

    def step(self) -> StepResult | None:
        """Advance the clock by :data:`STEP_MS` and let the next part with work act once.

        Parts take turns (service, relay, consumer); None when nobody has anything to do.
        """
        for i in range(len(ACTORS)):
            actor = ACTORS[(self._turn + i) % len(ACTORS)]
            if self.has_work(actor):
                self._turn = (self._turn + i + 1) % len(ACTORS)
                break
        else:
            return None
        self.clock.advance(STEP_MS)
        before = len(self.trace)
        order_id = ""
        if actor == "order":
            self.queued -= 1
            order_id = self.place_order() or self.failed_orders[-1][0]
        elif actor == "relay":
            self.relay_poll()
        else:
            self.consumer_poll()
        records = self.trace.tail(len(self.trace) - before)
        return StepResult(actor, _summary(actor, records, order_id), records)

    def walk(self, orders: int = 2, max_steps: int = MAX_WALK_STEPS) -> Walk:
        """Queue ``orders`` and step until nobody has work left, or ``max_steps`` steps.

        A fault that never clears (``{"broker.drop": 1.0}``, ``{"consumer.before_commit":
        True}``) keeps the consumer's lag above zero for ever, so "until idle" alone would
        never end: the bound stops it, and ``stopped`` says why.
        """
        check.count("orders", orders, maximum=MAX_WALK_STEPS)
        check.count("max_steps", max_steps, maximum=10 * MAX_WALK_STEPS)
        self.request_order(orders)
        steps = []
        fired_before = len(self.faults.fired)
        while len(steps) < max_steps:
            step = self.step()
            if step is None:
                return Walk(steps, f"Stopped after {len(steps)} steps: nothing left to do.")
            steps.append(step)
        return Walk(steps, self._why_not_idle(max_steps, self.faults.fired[fired_before:]))

    def _why_not_idle(self, max_steps: int, fired: list) -> str:
        """The sentence for a walk cut off at ``max_steps``: which fault kept it going."""
        counts = Counter(point for point, _ in fired)
        waiting = self.consumer.lag()
        unmarked = self.relay.backlog() if self.relay is not None else 0
        head = f"Stopped after {max_steps} steps, not idle: " + " and ".join(
            ([f"{unmarked} event(s) still waiting in the outbox"] if unmarked else [])
            + ([f"{waiting} event(s) never got through to the consumer"]
               if waiting or not unmarked else []))
        if counts.get("consumer.before_commit"):
            return (f"{head}, because it crashed before committing "
                    f"{counts['consumer.before_commit']} times (a crash loop: every restart "
                    "gets the same message again).")
        if counts.get("broker.drop"):
            return (f"{head}, because the network dropped all {counts['broker.drop']} "
                    "deliveries (at-least-once needs the network to deliver eventually).")
        worst = max(counts, key=counts.get) if counts else None
        if worst in _LOOPS:
            return f"{head}, because {_LOOPS[worst]}: {_fired_clause(counts)}."
        return f"{head}" + (f" ({worst} fired {counts[worst]} times)." if worst else ".")

    # -- judging -------------------------------------------------------------------------------
    def outcome(self, group: str = "shipping") -> str:
        """One sentence saying how the run ended, for the last line of an experiment cell.

        Either everything settled (with the checker's counts), or some events never got through
        and the fault that held them back is named: a crash loop (the same point firing on every
        restart), a broker that refuses every publish, a network that drops every delivery.
        """
        report = self.report(group)
        fired = Counter(point for point, _ in self.faults.fired)
        if not report.committed and not report.received:
            why = f" ({_fired_clause(fired)})" if fired else ""
            return f"Nothing was committed{why}: no order, so no event to lose."
        counts = (f"{report.lost} lost, {report.phantom} phantom, {report.duplicate_deliveries} "
                  f"duplicate deliveries, {report.duplicate_effects} duplicate effects")
        if self.idle():
            crashes = f" ({_fired_clause(fired)})" if fired else ""
            return f"Settled{crashes}: {report.committed} events committed, {counts}."
        waiting = report.in_flight or self.consumers[group].lag()
        return (f"Not settled: {waiting} of {report.committed} events are still on their way, "
                f"{_stuck_reason(fired)}; so far {counts}.")

    def in_flight(self, group: str = "shipping") -> set[EventKey]:
        """Committed events still on their way to the consumer (see :meth:`WritePath.in_flight`)."""
        return super().in_flight(group)

    def report(self, group: str = "shipping") -> ConsistencyReport:
        """The checker's verdict on this pipeline's consumer, now."""
        return super().report(group)

    def lags(self) -> list[float]:
        """For each event published, ms from its commit to its first publish (from the trace)."""
        return self.lag_times()[0]

    def lag_times(self) -> tuple[list[float], list[float]]:
        """(published, waiting): each published event's commit-to-publish lag, and for each
        event still unpublished now, how long it has waited so far (its lag is at least that).

        A lag average over the published events alone hides the slowest ones: the events a
        slow relay has not reached yet are the ones with the longest lag.
        """
        committed: dict[str, float] = {}
        lags: list[float] = []
        for record in self.trace.of_kind("db_commit", "publish"):
            if record.kind == "db_commit":
                committed[record.message_id] = record.time
            elif record.message_id in committed:
                lags.append(record.time - committed.pop(record.message_id))
        now = self.clock.now
        return lags, [now - at for at in committed.values()]

    def __repr__(self) -> str:
        return f"OrderPipeline({self.variant!r}, {self.report()})"


_LOOPS = {   # a point that fires on every visit, as the reason nothing gets past it
    "relay.after_read": "the relay crashed after every read, before publishing anything "
                        "(a crash loop)",
    "relay.after_publish": "the relay crashed after publishing, before marking, on every "
                           "restart (a crash loop: each restart publishes the same rows again)",
    "relay.after_mark": "the relay crashed after every mark (a crash loop)",
    "consumer.before_commit": "the consumer crashed before committing on every restart (a "
                              "crash loop: each restart gets the same messages again)",
    "broker.unavailable": "the broker refused every publish (the events wait in the outbox "
                          "until it takes them)",
    "broker.drop": "the network dropped every delivery (at-least-once needs a network that "
                   "delivers eventually)",
}


def _fired_clause(fired: Mapping[str, int]) -> str:
    worst = max(fired, key=fired.get)
    return f"{worst} fired {fired[worst]} time{'s' if fired[worst] != 1 else ''}"


def _stuck_reason(fired: Mapping[str, int]) -> str:
    """Why a pipeline did not settle: the fault that fired most, in words."""
    if not fired:
        return "with no fault firing (the run stopped before the relay and consumer caught up)"
    worst = max(fired, key=fired.get)
    return f"because {_LOOPS.get(worst, 'a fault kept firing')}: {_fired_clause(fired)}"


def default_crash_points() -> list[str]:
    """Every crash point on the write path, plus the broker refusing a publish."""
    return (fault_points("order.") + fault_points("relay.") + fault_points("consumer.")
            + ["broker.unavailable"])


def try_every_crash_point(points: Iterable[str] | None = None,
                          variants: Iterable[str] = tuple(PIPELINES), *, n_orders: int = 6,
                          hits: tuple[int, ...] = (1, 3), inbox: bool = True,
                          batch_size: int = 2) -> list[dict]:
    """Run ``n_orders`` through each variant with each crash point firing at ``hits``.

    Returns one dict per (point, variant): whether the point fired, and the checker's counts.
    """
    rows = []
    for point in (default_crash_points() if points is None else list(points)):
        for variant in variants:
            pipeline = OrderPipeline(variant, {point: list(hits)}, inbox=inbox,
                                     batch_size=batch_size, poll_interval_ms=100.0, trace=False)
            report = pipeline.run(n_orders, poll_every=2)
            rows.append({"point": point, "variant": variant,
                         "fired": len(pipeline.faults.fired), **report.counts()})
    return rows


def loss_sweep(rates: Iterable[float], variants: Iterable[str] = tuple(PIPELINES), *,
               n_orders: int = 300, seed: int = 0, retries: int = 0,
               points: Iterable[str] = ("broker.unavailable", "order.after_commit",
                                        "order.before_commit")) -> list[dict]:
    """Lost and phantom events over ``n_orders`` as every fault in ``points`` fires with
    probability ``rate``: one row per (rate, variant)."""
    check.count("n_orders", n_orders, maximum=MAX_ORDERS)
    rows = []
    for rate in rates:
        check.probability("each rate", rate)
        for variant in variants:
            pipeline = OrderPipeline(variant, {point: float(rate) for point in points},
                                     seed=seed, retries=retries, trace=False)
            report = pipeline.run(n_orders)
            rows.append({"rate": rate, "variant": variant, "orders": n_orders,
                         "failed_calls": len(pipeline.failed_orders), **report.counts()})
    return rows


def lag_sweep(poll_intervals_ms: Iterable[float], batch_sizes: Iterable[int], *,
              variant: str = "outbox-polling", n_orders: int = 200,
              order_interval_ms: float = 20.0, seed: int = 0,
              settle_ms: float = 10_000.0) -> list[dict]:
    """The relay lag (commit to publish) for each poll interval and batch size, on the clock.

    The run stops ``settle_ms`` after the last order. An event not yet published then counts
    with the time it has waited: its lag is at least that (``censored`` says some were; the
    mean and max are then lower bounds), so a slow relay cannot look fast by leaving its
    slowest events out.
    """
    check.count("n_orders", n_orders, maximum=MAX_ORDERS)
    rows = []
    for batch_size in batch_sizes:
        for interval in poll_intervals_ms:
            pipeline = OrderPipeline(variant, seed=seed, batch_size=batch_size,
                                     poll_interval_ms=interval)
            pipeline.simulate(n_orders, order_interval_ms, settle_ms)
            published, waiting = pipeline.lag_times()
            lags = sorted(published + waiting)
            rows.append({"variant": variant, "batch_size": batch_size,
                         "poll_interval_ms": interval, "published": len(published),
                         "unpublished": len(waiting), "censored": bool(waiting),
                         "mean_lag_ms": round(sum(lags) / len(lags), 1) if lags else None,
                         "max_lag_ms": lags[-1] if lags else None})
    return rows
