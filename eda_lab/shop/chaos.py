"""The chaos run: the whole shop under a random fault plan, then the invariants checked.

A chaos run is an incident with a beginning and an end. While the customers place their
orders, every named fault point of the shop fires at random, at the rate its **family** is
given (``{"relay": 0.05}``: every relay crash point fires on 5% of its visits). When the last
order is placed the storm passes (:meth:`~eda_lab.shop.shop.Shop.calm`), the shop recovers, and
once nothing is left on its way the checkers judge what is left in the databases:

=====================  ============================================================  =======
lost events            committed events a downstream consumer never applied          0
phantom events         events consumers saw that the order service never committed  0
duplicate effects      an event applied twice by one consumer (a double shipment)   0
unfinished sagas       committed orders whose saga is neither completed nor         0
                       compensated (never started, stuck, or waiting for a person)
saga problems          finished sagas whose participants' data disagree with the    0
                       ending, and broken stock or credit bookkeeping
order violations       per order, an event applied after a newer one                0
=====================  ============================================================  =======

Beside them: how many orders per simulated second and per wall-clock second went through,
and the **consistency lag** (from an order's commit until every service agrees about it).

Every database is in memory (each service still has its own): 10,000 orders run in
seconds. The plan is seeded, so the same settings give the same numbers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .. import _validate as check
from .._runtime import paused_gc
from ..faults import FaultPlan, fault_points
from ..outbox.checks import ConsistencyReport
from ..stats import percentile
from .shop import CONSUMERS, MAX_ORDERS, Shop

# The fault families of the shop: the part of a fault point's name before the dot.
FAMILIES = ("order", "relay", "broker", "consumer", "saga")
FAMILY_NAMES = {
    "order": "order service crashes (before or after its commit)",
    "relay": "relay crashes (after reading, publishing, marking)",
    "broker": "broker refuses, drops, duplicates or delays messages",
    "consumer": "consumers crash before acknowledging",
    "saga": "orchestrator and participants crash",
}
# A storm every part of the shop survives, for the notebook and the lab's first run.
DEFAULT_RATES = {"order": 0.01, "relay": 0.01, "broker": 0.01, "consumer": 0.01, "saga": 0.001}

Progress = Callable[[int, int], Any]


def check_rates(rates: Mapping[str, float] | None) -> dict[str, float]:
    """The rates as a dict with every family (0.0 where not given); clear errors otherwise."""
    if rates is None:
        return dict.fromkeys(FAMILIES, 0.0)
    if not isinstance(rates, Mapping):
        raise TypeError(f"rates must be a dict such as {{'relay': 0.05}}, got "
                        f"{type(rates).__name__}")
    checked = dict.fromkeys(FAMILIES, 0.0)
    for family, rate in rates.items():
        if family not in FAMILIES:
            raise ValueError(f"rates: unknown fault family {family!r}; a family must be one of "
                             f"{', '.join(FAMILIES)}")
        checked[family] = check.probability(f"rates[{family!r}]", rate)
    return checked


def chaos_plan(rates: Mapping[str, float] | None, seed: int = 0) -> FaultPlan:
    """A fault plan over every named fault point of the shop, at its family's rate.

    >>> plan = chaos_plan({"relay": 0.05})
    >>> sorted(plan.points)
    ['relay.after_mark', 'relay.after_publish', 'relay.after_read']
    """
    checked = check_rates(rates)
    return FaultPlan({point: checked[family_of(point)] for point in fault_points()
                      if family_of(point) in checked and checked[family_of(point)] > 0},
                     seed=seed)


def family_of(point: str) -> str:
    """The family of a fault point: ``"relay"`` for ``"relay.after_publish"``."""
    return point.split(".", 1)[0]


class Invariant(NamedTuple):
    """One line of the dashboard: its name, the count, whether it holds, what it protects."""

    name: str
    value: int
    holds: bool
    meaning: str


@dataclass(frozen=True)
class ChaosReport:
    """What a chaos run left behind, counted from the databases and the fault plan."""

    settings: dict[str, Any]
    placed: int                                  # orders the customers tried to place
    committed: int                               # orders the order service committed
    failed_orders: tuple[tuple[str, str], ...]   # (order id, the error the customer saw)
    consistency: dict[str, ConsistencyReport]    # per downstream consumer
    saga_outcomes: dict[str, int]                # saga status -> count
    unfinished: tuple[str, ...]                  # order ids
    saga_problems: tuple[str, ...]
    faults_fired: dict[str, int]                 # fault point -> times it fired
    storm_ms: float                              # simulated ms while orders arrived
    settled: bool
    simulated_ms: float                          # until everything settled
    wall_s: float
    lags_ms: tuple[float, ...] = field(repr=False)         # per order, until all agree
    saga_end_ms: tuple[float, ...] = field(repr=False)     # when each saga finished
    orchestrator_crashes: int = 0
    resent: int = 0                              # commands re-sent by saga recovery
    crash_loop: str | None = None                # why the run stopped early, if it did
    # per relay: messages published, crashes, ms spent down (each outbox's price)
    relays: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    # -- the invariants ------------------------------------------------------------------------
    @property
    def lost(self) -> int:
        """Distinct committed events that some downstream consumer never applied."""
        return len({e for r in self.consistency.values() for e in r.lost_events})

    @property
    def phantom(self) -> int:
        """Distinct events some consumer saw that the order service never committed."""
        return len({e for r in self.consistency.values() for e in r.phantom_events})

    @property
    def duplicate_effects(self) -> int:
        return sum(r.duplicate_effects for r in self.consistency.values())

    @property
    def duplicate_deliveries(self) -> int:
        return sum(r.duplicate_deliveries for r in self.consistency.values())

    @property
    def order_violations(self) -> int:
        return sum(r.order_violations for r in self.consistency.values())

    def invariants(self) -> list[Invariant]:
        """The dashboard's lines, in order; each holds when its count is 0."""
        counts = [
            ("lost events", self.lost, "the outbox: a committed event is always published"),
            ("phantom events", self.phantom,
             "the outbox: nothing is published that was not committed"),
            ("duplicate effects", self.duplicate_effects,
             "the inbox: a redelivered event changes nothing"),
            ("unfinished sagas", len(self.unfinished),
             "the saga log: every order ends completed or compensated"),
            ("saga problems", len(self.saga_problems),
             "idempotent participants: the data agree with each saga's ending"),
            ("order violations", self.order_violations,
             "the key: one order's events stay in one partition, in order"),
        ]
        return [Invariant(name, value, value == 0, meaning) for name, value, meaning in counts]

    @property
    def ok(self) -> bool:
        """Every invariant holds."""
        return all(line.holds for line in self.invariants())

    def verdict(self) -> str:
        """One sentence: what the run came to (a notebook cell's last line)."""
        fired = sum(self.faults_fired.values())
        broken = [f"{line.name} ({line.value})" for line in self.invariants() if not line.holds]
        if self.crash_loop is not None:
            return f"The run stopped early, {self.crash_loop.rstrip('.')}."
        if self.placed == 0:
            return "No order was placed, so there was nothing to judge."
        if self.committed == 0:
            return (f"None of the {self.placed} orders was committed ({fired} faults fired), so "
                    "nothing was sent and nothing was lost.")
        end = ("" if self.settled else
               f"; the shop had not settled {self.simulated_ms / 1000:g} simulated s in, when "
               "the run gave up waiting")
        if not broken:
            return (f"All six invariants hold after {self.placed} orders and {fired} faults "
                    f"fired{end}.")
        return (f"{len(broken)} of the six invariants broke after {self.placed} orders and "
                f"{fired} faults fired: {', '.join(broken)}{end}.")

    # -- throughput and lag ------------------------------------------------------------------
    @property
    def orders_per_simulated_s(self) -> float:
        """Sagas finished per simulated second, from the first order to the last ending."""
        if not self.saga_end_ms or self.saga_end_ms[-1] <= 0:
            return 0.0
        return len(self.saga_end_ms) / (self.saga_end_ms[-1] / 1000)

    @property
    def orders_per_wall_s(self) -> float:
        """Orders placed per second of real time the run took (this machine's speed)."""
        return self.placed / self.wall_s if self.wall_s > 0 else 0.0

    def lag_percentiles(self, *quantiles: float) -> dict[str, float | None]:
        """Consistency lag (ms) at the given quantiles, e.g. ``(0.5, 0.99)`` -> p50, p99."""
        return {f"p{q * 100:g}": percentile(self.lags_ms, q * 100)
                for q in quantiles or (0.5, 0.99)}

    def timings(self) -> dict[str, float | None]:
        """The run's times in simulated seconds: the lag's p50, p90 and p99, when the storm
        ended and when the last saga did, and sagas finished per simulated second (None where
        no order was agreed on)."""
        lags = self.lag_percentiles(0.5, 0.9, 0.99)
        return {**{f"lag {q} (s)": None if ms is None else round(ms / 1000, 2)
                   for q, ms in lags.items()},
                "storm ended (s)": round(self.storm_ms / 1000, 2),
                "last saga ended (s)": (round(self.saga_end_ms[-1] / 1000, 2)
                                        if self.saga_end_ms else None),
                "sagas per simulated s": round(self.orders_per_simulated_s, 1)}

    def faults_by_family(self) -> dict[str, int]:
        """How many faults fired in each family."""
        counts = Counter()
        for point, times in self.faults_fired.items():
            counts[family_of(point)] += times
        return {family: counts.get(family, 0) for family in FAMILIES}

    def counts(self) -> dict[str, Any]:
        """The headline numbers as one flat dict (deterministic: no wall-clock time)."""
        lags = self.lag_percentiles(0.5, 0.99)
        return {
            "orders": self.placed, "committed": self.committed,
            **{line.name.replace(" ", "_"): line.value for line in self.invariants()},
            "duplicate_deliveries": self.duplicate_deliveries,
            "completed": self.saga_outcomes.get("completed", 0),
            "compensated": self.saga_outcomes.get("compensated", 0),
            "needs_attention": self.saga_outcomes.get("needs_attention", 0),
            "orchestrator_crashes": self.orchestrator_crashes, "resent": self.resent,
            "faults_fired": sum(self.faults_fired.values()),
            "orders_per_simulated_s": round(self.orders_per_simulated_s, 1),
            "lag_p50_ms": lags["p50"], "lag_p99_ms": lags["p99"],
        }

    def relays_frame(self):
        """Each relay of the shop: what it published, how often it crashed and how long it
        was down (a pandas table). A relay is a process every message of its outbox waits
        for: the busiest one's downtime is what an outbox adds to the lag."""
        import pandas as pd

        frame = pd.DataFrame(self.relays, index=["published", "crashes", "down_ms"]).T
        return frame.astype({"published": int, "crashes": int}).rename_axis("relay")

    def consumers_frame(self):
        """The consistency checker's counts per downstream consumer (a pandas table)."""
        import pandas as pd

        return pd.DataFrame({name: report.counts() for name, report in
                             self.consistency.items()}).T.rename_axis("consumer")


@paused_gc()   # a long run: see eda_lab/_runtime.py
def run_chaos(n_orders: int = 1_000, rates: Mapping[str, float] | None = None, *,
              seed: int = 0, relay: str = "polling", outbox: bool = True,
              dual_write: str = "db_then_publish", inbox: bool = True,
              consumers: Sequence[str] = CONSUMERS, progress: Progress | None = None,
              **shop_settings: Any) -> ChaosReport:
    """Run ``n_orders`` through the shop while the faults of ``rates`` fire, let the shop
    recover, and count what the checkers find.

    ``rates`` maps fault families (:data:`FAMILIES`) to probabilities (default
    :data:`DEFAULT_RATES`; ``{}`` for no faults). ``progress(done, total)`` is called as sagas
    finish (``total`` = ``n_orders``), and once more with ``done == total`` at the end.
    Other keyword arguments go to :class:`~eda_lab.shop.shop.Shop`.
    """
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable progress(done, total), got {progress!r}")
    check.count("n_orders", n_orders, minimum=0, maximum=MAX_ORDERS)
    checked = check_rates(DEFAULT_RATES if rates is None else rates)
    started = time.perf_counter()
    shop = Shop(seed=seed, faults=chaos_plan(checked, seed), relay=relay, outbox=outbox,
                dual_write=dual_write, inbox=inbox, consumers=consumers,
                trace=shop_settings.pop("trace", False), **shop_settings)

    def tick() -> None:
        progress(min(shop.finished_sagas(), n_orders), n_orders)

    shop.place_orders(n_orders, tick=tick if progress else None)
    storm_ms = shop.clock.now
    storm = shop.calm()
    settled = shop.settle(tick=tick if progress else None)
    report = report_of(shop, storm, storm_ms, settled, time.perf_counter() - started,
                       {"n_orders": n_orders, "rates": checked, "seed": seed, "relay": relay,
                        "outbox": outbox, "dual_write": dual_write, "inbox": inbox,
                        "consumers": tuple(consumers), "recovery": shop.settings["recovery"]})
    if progress is not None:
        progress(n_orders, n_orders)
    return report


def report_of(shop: Shop, storm: FaultPlan, storm_ms: float, settled: bool, wall_s: float,
              settings: Mapping[str, Any]) -> ChaosReport:
    """Count what ``shop`` left behind (the checkers read its databases)."""
    committed = len(shop.truth())
    return ChaosReport(
        settings=dict(settings), placed=shop.placed, committed=committed,
        failed_orders=tuple(shop.failed_orders), consistency=shop.consistency(),
        saga_outcomes=shop.saga_outcomes(), unfinished=tuple(shop.unfinished_orders()),
        saga_problems=tuple(shop.saga_problems()),
        faults_fired=dict(sorted(Counter(point for point, _ in storm.fired).items())),
        storm_ms=storm_ms, settled=settled, simulated_ms=shop.clock.now, wall_s=wall_s,
        lags_ms=tuple(sorted(shop.consistency_lags().values())),
        saga_end_ms=tuple(shop.saga_end_times()),
        orchestrator_crashes=shop.sagas.orchestrator_process.crashes, resent=shop.sagas.resent,
        crash_loop=shop.sagas.crash_loop,
        relays={relay.name: {"published": relay.published, "crashes": relay.crashes,
                             "down_ms": relay.down_ms}
                for relay in (shop.relay, *shop.sagas.relays) if relay is not None})
