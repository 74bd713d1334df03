"""The synchronous call chain: why request-response cracks at scale.

The client calls the order service and waits. The order service does its own work, then calls
payment and waits; payment calls inventory and waits; and so on down the chain. Three things
follow, and this module lets a learner watch each of them on the simulated clock:

* **latency adds up**: the client waits for every service in turn, so without contention the
  mean response time is the sum of the services' means (:func:`chain_latency_ms`);
* **availability multiplies**: a request succeeds only if every service does, so four services
  at 99.9% give 99.6% (:func:`chain_availability`);
* **failure cascades**: a service waiting for a slow callee keeps its worker busy while it
  waits. Worker pools have a fixed size, so one slow service deep in the chain fills the pools
  of the healthy services above it, and they turn requests away ("pool exhausted").

Each service is a :class:`ServiceProfile`, one row of ``data/services.csv``. There is no queue
in front of a pool: a call that finds every worker busy is refused at once (an HTTP 503), as a
bulkhead does. A caller waits at most the callee's ``timeout_ms`` and then gives up, but the
callee does not know that and finishes its work, holding its worker: nobody cancels it.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial
from pathlib import Path

from .. import _validate as check
from ..clock import Clock
from ..data_files import data_file
from ..faults import FaultPlan, Outage, check_outages
from ..stats import percentile

SERVICES_CSV = data_file("services.csv")
LATENCIES = ("lognormal", "exponential", "constant")
DEFAULT_CHAIN = ("order", "payment", "inventory")
SAMPLE_MS = 250.0  # how often the worker pools (and the twin's backlogs) are sampled
WINDOW_MS = 1_000.0  # the default width of a time window in the per-window metrics

# Why a call failed, as its caller saw it.
ERROR = "error"
TIMEOUT = "timeout"
POOL_EXHAUSTED = "pool exhausted"
DOWN = "down"
REASONS = {
    ERROR: "the service ran and answered with an error",
    TIMEOUT: "the caller waited timeout_ms and gave up (the service kept working)",
    POOL_EXHAUSTED: "every worker of the service was busy, so it refused the call",
    DOWN: "the service was down (an outage) and refused the call",
}

Failure = tuple[str, str]  # (service, reason)
MAIN_ENDPOINT = "place order"
REQUEST_COLUMNS = ("request", "start_ms", "end_ms", "ok", "failed_at", "reason", "endpoint")
SPAN_COLUMNS = ("request", "endpoint", "service", "slot", "start_ms", "work_end_ms", "end_ms",
                "outcome")
# A run simulates every request, so its size is its cost: about 15 us of Python per call.
MAX_REQUESTS = 150_000     # rate_per_s x duration_ms / 1000 in one run (all endpoints)
ENDPOINT_OFFSET = 1_000_000_000  # request numbers of the k-th extra endpoint start at k x this


# -- service profiles ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceProfile:
    """How one service behaves when it is called: one row of ``data/services.csv``.

    ``latency`` is the shape of its own work time: ``lognormal`` (mean ``mean_ms``, standard
    deviation ``sd_ms``: most calls are quick, a few are slow, as measured services are),
    ``exponential`` or ``constant``. ``failure_prob`` is the chance that it answers with an
    error. ``timeout_ms`` is how long a caller waits for it, ``retries`` how many more times a
    caller tries after a failed call, ``workers`` how many calls it serves at once.
    """

    name: str
    mean_ms: float
    sd_ms: float = 0.0
    latency: str = "lognormal"
    failure_prob: float = 0.0
    timeout_ms: float = 1_000.0
    retries: int = 0
    workers: int = 10
    does: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        where = f"service {self.name!r}"
        if self.latency not in LATENCIES:
            raise ValueError(f"{where}: latency must be one of {LATENCIES}, got {self.latency!r}")
        check.number(f"{where}: mean_ms", self.mean_ms, minimum=0)
        check.number(f"{where}: sd_ms", self.sd_ms, minimum=0)
        check.number(f"{where}: failure_prob", self.failure_prob, minimum=0, maximum=1)
        check.number(f"{where}: timeout_ms", self.timeout_ms, above=0)
        check.count(f"{where}: retries", self.retries, minimum=0)
        check.count(f"{where}: workers", self.workers, minimum=1)

    @property
    def availability(self) -> float:
        """The chance that one call succeeds on its own (no contention, no outage)."""
        return 1.0 - self.failure_prob

    def changed(self, **changes) -> ServiceProfile:
        """A copy with some fields changed (checked again, so bad values still fail)."""
        return replace(self, **changes)

    def sampler(self, rng: random.Random) -> Callable[[], float]:
        """A function drawing one work time (ms) from this profile's distribution with ``rng``."""
        mean, sd = float(self.mean_ms), float(self.sd_ms)
        if self.latency == "constant" or mean == 0 or (self.latency == "lognormal" and sd == 0):
            return lambda: mean
        if self.latency == "exponential":
            rate = 1.0 / mean
            return lambda: rng.expovariate(rate)
        # A lognormal with this mean and standard deviation: sigma^2 = ln(1 + sd^2 / mean^2).
        sigma = math.sqrt(math.log1p((sd / mean) ** 2))
        mu = math.log(mean) - sigma * sigma / 2
        lognormvariate = rng.lognormvariate
        return lambda: lognormvariate(mu, sigma)


_CSV_FIELDS = {"service": str, "latency": str, "mean_ms": float, "sd_ms": float,
               "failure_prob": float, "timeout_ms": float, "retries": int, "workers": int,
               "does": str}


def load_services(path: str | Path | None = None) -> dict[str, ServiceProfile]:
    """The shop's services from ``path`` (default ``data/services.csv``), by name, in file order."""
    path = Path(path) if path is not None else SERVICES_CSV
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [f for f in _CSV_FIELDS if f not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(_CSV_FIELDS)}")
        services: dict[str, ServiceProfile] = {}
        for line, row in enumerate(reader, start=2):
            values = {}
            for field, kind in _CSV_FIELDS.items():
                text = (row[field] or "").strip()
                if not text:  # an empty cell is a mistake, not a zero
                    raise ValueError(f"{path}, line {line}: {field} is empty; every column needs "
                                     "a value")
                try:
                    values[field] = kind(text)
                except ValueError:
                    raise ValueError(
                        f"{path}, line {line}: {field} must be {kind.__name__}, got {text!r}"
                    ) from None
            name = values.pop("service")
            if name in services:
                raise ValueError(f"{path}, line {line}: service {name!r} is listed twice")
            services[name] = ServiceProfile(name, **values)
    if not services:
        raise ValueError(f"{path}: no services")
    return services


# -- the arithmetic -----------------------------------------------------------------------------
def chain_latency_ms(services: Iterable[ServiceProfile]) -> float:
    """Mean response time of a chain that calls each service once: the sum of their means.

    Exact when nothing waits for a worker, nothing times out and nothing is retried: the
    client waits for every call in turn, so the waits add up.
    """
    return float(sum(s.mean_ms for s in services))


def chain_availability(services: Iterable[ServiceProfile]) -> float:
    """The chance a request through all ``services`` succeeds: the product of theirs.

    Every service must succeed, and they fail independently, so their availabilities
    multiply: four services at 99.9% give 0.999 ** 4 = 99.6%. (No retries, no outage.)
    """
    return math.prod(s.availability for s in services)


# -- the simulation engine ---------------------------------------------------------------------
class _Pool:
    """One service's worker pool and what happened to the calls it received."""

    __slots__ = ("workers", "busy", "peak", "calls", "served", "errors", "timeouts",
                 "refused_pool", "refused_down", "free")

    def __init__(self, workers: int):
        self.workers = workers
        self.busy = self.peak = 0
        self.calls = self.served = self.errors = self.timeouts = 0
        self.refused_pool = self.refused_down = 0
        self.free = list(range(workers))  # worker slots, only tracked when spans are recorded


def _give_up(reply, failure: Failure, pool: _Pool, _timer) -> None:
    """The caller's timer fired: answer the caller with a timeout unless the reply came first."""
    if not reply.triggered:
        pool.timeouts += 1
        reply.succeed(failure)


LocalWork = Callable[[int], Failure | None]


class CallSimulation:
    """Services calling each other synchronously on one clock: the engine of a run.

    ``calls`` says whom each service calls, in order, after its own work. ``local_work`` is
    optional extra work a service does after its calls succeed (the event-driven twin's order
    service commits and publishes there); it returns a failure or None. Every random draw
    comes from a stream of its own (arrivals, and one per service), so changing one service
    changes nothing else that is drawn.
    """

    def __init__(self, clock: Clock, profiles: Mapping[str, ServiceProfile],
                 calls: Mapping[str, Sequence[str]], plan: FaultPlan, seed: int,
                 local_work: Mapping[str, LocalWork] | None = None, *,
                 record_spans: bool = False):
        self.clock = clock
        self.env = clock.env
        self.profiles = dict(profiles)
        self.calls = {name: tuple(calls.get(name, ())) for name in profiles}
        # Each endpoint's wiring: who calls whom for a request of that endpoint.
        self.routes: dict[str, dict[str, tuple[str, ...]]] = {MAIN_ENDPOINT: self.calls}
        self.record_spans = record_spans
        self.spans: list[tuple] = []  # one per call a worker served, or refused (record_spans)
        self.plan = plan
        self.seed = seed
        self.local_work = dict(local_work or {})
        self.pools = {name: _Pool(p.workers) for name, p in profiles.items()}
        self._rngs = {name: random.Random(f"{seed}:{name}") for name in profiles}
        self._samplers = {name: p.sampler(self._rngs[name]) for name, p in profiles.items()}
        self.started = 0  # requests sent so far
        self.records: list[tuple] = []
        self.pool_samples: list[tuple] = []

    def call(self, name: str, request: int, endpoint: str = MAIN_ENDPOINT):
        """Call ``name`` and wait for it: ``failure = yield from sim.call(name, request)``.

        Returns None on success, or the failure the caller saw: ``(service, reason)``, where
        ``service`` is where it started (a timeout deep in the chain travels up unchanged).
        A call is tried ``1 + retries`` times, at once: retries add load just when it hurts.
        """
        env = self.env
        plan = self.plan
        profile = self.profiles[name]
        pool = self.pools[name]
        failure: Failure | None = None
        for _attempt in range(profile.retries + 1):
            pool.calls += 1
            if plan.outages and plan.is_down(name, env.now):
                pool.refused_down += 1
                failure = (name, DOWN)
                if self.record_spans:
                    self._refusal(request, endpoint, name, DOWN)
                continue
            if pool.busy >= pool.workers:
                pool.refused_pool += 1
                failure = (name, POOL_EXHAUSTED)
                if self.record_spans:
                    self._refusal(request, endpoint, name, POOL_EXHAUSTED)
                continue
            pool.busy += 1
            if pool.busy > pool.peak:
                pool.peak = pool.busy
            reply = env.event()
            env.process(self._serve(name, request, reply, pool, endpoint))
            env.timeout(profile.timeout_ms).callbacks.append(
                partial(_give_up, reply, (name, TIMEOUT), pool))
            failure = yield reply
            if failure is None:
                return None
        return failure

    def _refusal(self, request: int, endpoint: str, name: str, reason: str) -> None:
        now = self.env.now
        self.spans.append((request, endpoint, name, -1, now, now, now, reason))

    def _serve(self, name: str, request: int, reply, pool: _Pool, endpoint: str = MAIN_ENDPOINT):
        """One worker of ``name`` serving one call: its own work, then its own calls."""
        env = self.env
        plan = self.plan
        start = env.now
        slot = pool.free.pop(0) if self.record_spans else -1
        work = self._samplers[name]()
        fails = self._rngs[name].random() < self.profiles[name].failure_prob
        if plan.outages:
            work *= plan.slowdown(name, env.now)
        yield env.timeout(work)
        work_end = env.now
        failure: Failure | None = None
        if fails:
            pool.errors += 1
            failure = (name, ERROR)
        else:
            for callee in self.routes[endpoint].get(name, ()):
                failure = yield from self.call(callee, request, endpoint)
                if failure is not None:
                    break
            if failure is None and name in self.local_work:
                failure = self.local_work[name](request)
        pool.busy -= 1
        if failure is None:
            pool.served += 1
        if self.record_spans:
            pool.free.append(slot)
            pool.free.sort()
            self.spans.append((request, endpoint, name, slot, start, work_end, env.now,
                               "ok" if failure is None else failure[1]
                               if failure[0] == name else f"{failure[0]} {failure[1]}"))
        if not reply.triggered:
            reply.succeed(failure)

    def _request(self, entry: str, request: int, endpoint: str = MAIN_ENDPOINT):
        start = self.env.now
        failure = yield from self.call(entry, request, endpoint)
        if failure is None:
            self.records.append((request, start, self.env.now, True, None, None, endpoint))
        else:
            self.records.append((request, start, self.env.now, False, failure[0], failure[1],
                                 endpoint))

    def _arrivals(self, entry: str, rate_per_s: float, duration_ms: float,
                  endpoint: str = MAIN_ENDPOINT, first: int = 0):
        """Requests arrive at random (a Poisson process) at ``rate_per_s`` until ``duration_ms``."""
        env = self.env
        stream = "arrivals" if endpoint == MAIN_ENDPOINT else f"arrivals:{endpoint}"
        rng = random.Random(f"{self.seed}:{stream}")
        rate_per_ms = rate_per_s / 1000.0
        request = first
        while True:
            yield env.timeout(rng.expovariate(rate_per_ms))
            if env.now >= duration_ms:
                return
            env.process(self._request(entry, request, endpoint))
            request += 1
            self.started += 1

    def start(self, entry: str, rate_per_s: float, duration_ms: float,
              sample_ms: float = SAMPLE_MS) -> None:
        """Schedule the arrivals and the pool sampling (run the clock to make them happen)."""
        self.clock.process(self._arrivals(entry, rate_per_s, duration_ms))
        # Samples at 0, sample_ms, ... up to the last one before duration_ms.
        self.clock.every(sample_ms, self._sample_pools, until_ms=duration_ms - sample_ms)

    def add_endpoint(self, endpoint: str, path: Sequence[str], rate_per_s: float,
                     duration_ms: float) -> None:
        """A second kind of request, through ``path`` (its first service is what the client
        calls), arriving at ``rate_per_s`` on the same pools: call :meth:`start` too."""
        route = {a: (b,) for a, b in zip(path, path[1:], strict=False)}
        self.routes[endpoint] = route
        first = ENDPOINT_OFFSET * (len(self.routes) - 1)
        self.clock.process(self._arrivals(path[0], rate_per_s, duration_ms, endpoint, first))

    def _sample_pools(self) -> None:
        now = self.env.now
        self.pool_samples.extend((now, name, pool.busy, pool.workers)
                                 for name, pool in self.pools.items())

    def pool_stats(self) -> list[dict]:
        """What happened at each service, one dict per service."""
        return [{"service": name, "workers": pool.workers, "peak_busy": pool.peak,
                 "calls": pool.calls, "served": pool.served, "errors": pool.errors,
                 "timeouts": pool.timeouts, "refused_pool": pool.refused_pool,
                 "refused_down": pool.refused_down}
                for name, pool in self.pools.items()]


def check_sync_outages(outages, known) -> tuple[Outage, ...]:
    """:func:`~eda_lab.faults.check_outages`, plus the fields a learner is likely to get wrong:
    numbers that are strings, a ``slowdown`` given to a 'down' outage (it would be ignored)."""
    outages = check_outages(outages, known)
    for outage in outages:
        where = f"outage of {outage.target!r}"
        check.number(f"{where}: start_ms", outage.start_ms, minimum=0, unit="ms")
        check.number(f"{where}: end_ms", outage.end_ms, above=0, unit="ms")
        check.number(f"{where}: slowdown", outage.slowdown, minimum=1, maximum=1_000)
        if outage.mode == "down" and outage.slowdown != 1:
            raise ValueError(f"{where}: slowdown={outage.slowdown:g} only applies to "
                             "mode='slow'; a 'down' outage refuses every call (pass "
                             "mode='slow' to slow it down)")
    return outages


def check_load(rate_per_s, duration_ms, sample_ms, extra_rate_per_s: float = 0.0) -> None:
    """Reject a load that cannot run, naming the argument, or that would take minutes."""
    check.number("load: rate_per_s", rate_per_s, above=0)
    check.number("load: duration_ms", duration_ms, above=0)
    check.number("load: sample_ms", sample_ms, above=0)
    if duration_ms < sample_ms:
        raise ValueError(f"load: duration_ms must be at least sample_ms ({sample_ms:g} ms, one "
                         f"sample of the pools), got {duration_ms:g}")
    expected = (rate_per_s + extra_rate_per_s) * duration_ms / 1000
    if expected > MAX_REQUESTS:
        raise ValueError(
            f"load: rate_per_s x duration_ms / 1000 = {expected:,.0f} requests; a run is limited "
            f"to MAX_REQUESTS = {MAX_REQUESTS:,} (about 15 s): lower the rate or the duration")
    if duration_ms / sample_ms > 100_000:
        raise ValueError(f"load: sample_ms={sample_ms:g} takes more than 100,000 samples of a "
                         f"{duration_ms:g} ms run; sample less often")


# -- results ------------------------------------------------------------------------------------
def rounded_percentile(values, q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``values`` (:mod:`eda_lab.stats`), rounded to
    0.1 ms; NaN when there are none (a gap in a table or chart)."""
    value = percentile(values, q)
    return math.nan if value is None else round(float(value), 1)


class RunResult:
    """What one run did, request by request; the summaries a notebook prints.

    Shared by the synchronous chain and its event-driven twin, so both are measured the same
    way: a request succeeds when the client got an answer that was not an error.
    """

    def __init__(self, label: str, sim: CallSimulation, duration_ms: float,
                 outages: tuple[Outage, ...], rate_per_s: float):
        self.label = label
        self.duration_ms = duration_ms
        self.outages = outages
        self.rate_per_s = rate_per_s
        self._records = sorted(sim.records)
        self._pool_samples = sim.pool_samples
        self._pool_stats = sim.pool_stats()
        self._spans = sorted(sim.spans, key=lambda s: (s[4], s[0]))
        self.endpoints = tuple(sim.routes)

    @cached_property
    def spans(self):
        """One row per call a service served (its worker ``slot``, when its own work ended,
        when the worker was free again) or refused (slot -1); only with ``spans=True``."""
        import pandas as pd

        return pd.DataFrame.from_records(self._spans, columns=SPAN_COLUMNS)

    @cached_property
    def requests(self):
        """One row per request: start, end, ok, and where and why it failed."""
        import pandas as pd

        frame = pd.DataFrame.from_records(self._records, columns=REQUEST_COLUMNS)
        frame["latency_ms"] = frame["end_ms"] - frame["start_ms"]
        return frame

    @cached_property
    def pools(self):
        """Busy workers per service over time (columns time, service, busy, workers)."""
        import pandas as pd

        return pd.DataFrame.from_records(self._pool_samples,
                                         columns=("time", "service", "busy", "workers"))

    def services(self):
        """Per service: calls received, served, errors, timeouts, refusals, peak busy workers."""
        import pandas as pd

        return pd.DataFrame(self._pool_stats).set_index("service")

    def summary(self, endpoint: str | None = None) -> dict:
        """Success rate, and latency percentiles of the *successful* requests, overall (or of
        one ``endpoint``); ``failed_p95_ms``: how long the failed ones took to fail."""
        frame = self.requests
        if endpoint is not None:
            frame = frame[frame["endpoint"] == check.one_of("endpoint", endpoint, self.endpoints)]
        ok = frame["latency_ms"][frame["ok"]].to_numpy()
        total = len(frame)
        return {
            "run": self.label if endpoint is None else f"{self.label}: {endpoint}",
            "requests": total, "succeeded": len(ok),
            "success_rate": round(len(ok) / total, 4) if total else math.nan,
            "mean_ms": round(float(ok.mean()), 1) if len(ok) else math.nan,
            "p50_ms": rounded_percentile(ok, 50), "p95_ms": rounded_percentile(ok, 95),
            "p99_ms": rounded_percentile(ok, 99),
            "failed_p95_ms": rounded_percentile(frame["latency_ms"][~frame["ok"]].to_numpy(), 95),
        }

    def failures(self):
        """How many requests failed, by the service and reason their caller saw."""
        frame = self.requests
        failed = frame[~frame["ok"]]
        return (failed.groupby(["failed_at", "reason"]).size().rename("requests")
                .sort_values(ascending=False))

    def windows(self, window_ms: float = WINDOW_MS, endpoint: str | None = None):
        """The same metrics per time window (by when each request started), every window shown;
        of one ``endpoint`` only, if given."""
        import pandas as pd

        check.number("windows: window_ms", window_ms, above=0)
        frame = self.requests
        if endpoint is not None:
            frame = frame[frame["endpoint"] == check.one_of("endpoint", endpoint, self.endpoints)]
        count = max(1, math.ceil(self.duration_ms / window_ms))
        window = (frame["start_ms"] // window_ms).astype(int)
        ok_latency = frame["latency_ms"].where(frame["ok"])
        grouped = pd.DataFrame({"window": window, "ok": frame["ok"], "latency": ok_latency,
                                "failed_elsewhere": ~frame["ok"] & self._healthy_mask(frame)}
                               ).groupby("window")
        out = pd.DataFrame({
            "requests": grouped.size(),
            "succeeded": grouped["ok"].sum(),
            "mean_ms": grouped["latency"].mean(),
            "p95_ms": grouped["latency"].agg(lambda v: rounded_percentile(v.dropna(), 95)),
            "failed_at_healthy": grouped["failed_elsewhere"].sum(),
        }).reindex(range(count))
        out[["requests", "succeeded", "failed_at_healthy"]] = (
            out[["requests", "succeeded", "failed_at_healthy"]].fillna(0).astype(int))
        out.insert(0, "time_s", out.index * window_ms / 1000.0)
        out.insert(3, "success_rate", out["succeeded"] / out["requests"].where(out["requests"] > 0))
        return out.reset_index(drop=True).round(3)

    def _healthy_mask(self, frame):
        """True where a request failed at a service that had no outage at the time it started."""
        import pandas as pd

        unhealthy = pd.Series(False, index=frame.index)
        for outage in self.outages:
            unhealthy |= ((frame["failed_at"] == outage.target)
                          & (frame["start_ms"] >= outage.start_ms)
                          & (frame["start_ms"] < outage.end_ms))
        return frame["failed_at"].notna() & ~unhealthy

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<{type(self).__name__} {self.label}: {s['requests']} requests, "
                f"{s['success_rate']:.2%} succeeded, p95 {s['p95_ms']} ms>")


class SyncRun(RunResult):
    """The result of :meth:`SyncChain.run`."""


# -- the chain ----------------------------------------------------------------------------------
def as_catalog(services) -> dict[str, ServiceProfile]:
    """Profiles by name, from a mapping or a list of :class:`ServiceProfile`."""
    if isinstance(services, Mapping):
        services = list(services.values())
    out: dict[str, ServiceProfile] = {}
    for profile in services:
        if not isinstance(profile, ServiceProfile):
            raise TypeError(f"services must be ServiceProfile objects, got {profile!r}")
        out[profile.name] = profile
    return out


def check_names(arg: str, names, known: Iterable[str]) -> tuple[str, ...]:
    """``names`` as a tuple of ``known`` service names; a clear error otherwise."""
    known = list(known)
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    for name in names:
        if name not in known:
            raise ValueError(f"{arg}: unknown service {name!r}; known: {', '.join(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{arg}: a service may appear only once, got {list(names)}")
    return names


class SyncChain:
    """Services that call each other synchronously, starting at the first of ``chain``.

    By default each service calls the next one in ``chain`` (order -> payment -> inventory).
    ``calls`` can say otherwise (``{"order": ["payment", "inventory"]}``): the services form
    a tree whose root, the first of ``chain``, is what the client calls.

    >>> chain = SyncChain(load_services(), ["order", "payment", "inventory", "shipping"])
    >>> chain.expected_latency_ms(), round(chain.expected_availability(), 4)
    (150.0, 0.996)
    """

    def __init__(self, services: Mapping[str, ServiceProfile] | Iterable[ServiceProfile],
                 chain: Sequence[str] = DEFAULT_CHAIN,
                 calls: Mapping[str, Sequence[str]] | None = None):
        self.catalog = as_catalog(services)
        names = check_names("chain", chain, self.catalog)
        if not names:
            raise ValueError("chain must name at least one service (the one the client calls)")
        self.chain = names
        if calls is None:
            calls = {a: (b,) for a, b in zip(names, names[1:], strict=False)}
        self.calls = {name: check_names(f"calls[{name!r}]", calls.get(name, ()), self.catalog)
                      for name in names}
        unknown = set(calls) - set(names)
        if unknown:
            raise ValueError(f"calls: {sorted(unknown)} are not in the chain {list(names)}")
        callers: dict[str, str] = {}
        for caller, callees in self.calls.items():
            for callee in callees:
                if callee not in names:
                    raise ValueError(f"calls[{caller!r}]: {callee!r} is not in the chain "
                                     f"{list(names)}")
                if callee == names[0] or callee in callers:
                    raise ValueError(f"calls: {callee!r} is called twice (or calls back to the "
                                     "entry); each service is called by exactly one caller")
                callers[callee] = caller
        unreached = [n for n in names[1:] if n not in callers]
        if unreached:
            raise ValueError(f"calls: {unreached} are in the chain but nobody calls them")
        # Other kinds of request served by the same services: name -> (path, rate per s).
        self.endpoints: dict[str, tuple[tuple[str, ...], float]] = {}

    def with_endpoint(self, name: str, path: Sequence[str], rate_per_s: float) -> SyncChain:
        """The same chain, also serving a second kind of request through ``path`` (say a refund:
        ``["order", "payment"]``) at ``rate_per_s``, on the same worker pools.

        This is how a slow service hurts requests that never call it: they need a worker of a
        service whose pool is full of calls waiting for the slow one.
        """
        check.name("name", name)
        if name == MAIN_ENDPOINT or name in self.endpoints:
            raise ValueError(f"name: endpoint {name!r} exists already")
        path = check_names("path", path, self.chain)
        if not path or path[0] != self.entry:
            raise ValueError(f"path must start at the entry {self.entry!r}, got {list(path)}")
        check.number("rate_per_s", rate_per_s, above=0)
        chain = SyncChain(self.catalog, self.chain, self.calls)
        chain.endpoints = {**self.endpoints, name: (path, float(rate_per_s))}
        return chain

    @property
    def entry(self) -> str:
        """The service the client calls."""
        return self.chain[0]

    @property
    def services(self) -> list[ServiceProfile]:
        """The profiles of the services in the chain, in chain order."""
        return [self.catalog[name] for name in self.chain]

    def expected_latency_ms(self) -> float:
        """The closed form: the sum of the chain's mean latencies."""
        return chain_latency_ms(self.services)

    def expected_availability(self) -> float:
        """The closed form: the product of the chain's availabilities."""
        return chain_availability(self.services)

    def with_service(self, name: str, **changes) -> SyncChain:
        """The same chain with one service's profile changed (``mean_ms=200``, ...)."""
        check_names("name", name, self.catalog)
        catalog = {**self.catalog, name: self.catalog[name].changed(**changes)}
        return SyncChain(catalog, self.chain, self.calls)

    def calling(self, caller: str, callee: str) -> SyncChain:
        """The chain after ``caller``'s code is changed to call ``callee`` too, after the rest.

        This is the coupling the seed warns about: a new consumer of the order (a shipping
        notifier, analytics) is one more call in the order service's code, and one more wait
        in every request.
        """
        check_names("caller", caller, self.chain)
        check_names("callee", callee, self.catalog)
        if callee in self.chain:
            raise ValueError(f"callee: {callee!r} is already in the chain")
        calls = {**self.calls, caller: (*self.calls[caller], callee)}
        return SyncChain(self.catalog, (*self.chain, callee), calls)

    def source_of(self, name: str) -> str:
        """The code of ``name``'s request handler, as the chain wires it (for reading and diffs)."""
        check_names("name", name, self.chain)
        profile = self.catalog[name]
        lines = [f"def handle_{name}(request):",
                 f"    do_own_work(request)  # {profile.does or name} (~{profile.mean_ms:g} ms)"]
        for callee in self.calls[name]:
            timeout = self.catalog[callee].timeout_ms
            lines.append(f'    call("{callee}", request, timeout_ms={timeout:g})  '
                         f"# wait for {callee} and all it calls")
        lines.append('    return "OK"')
        return "\n".join(lines) + "\n"

    def run(self, rate_per_s: float = 20.0, duration_ms: float = 30_000.0,
            outages: Iterable[Outage] = (), seed: int = 0,
            sample_ms: float = SAMPLE_MS, *, spans: bool = False) -> SyncRun:
        """Send requests at ``rate_per_s`` for ``duration_ms`` through the chain; wait for all.

        ``outages`` take a service down (it refuses every call) or make it slow (its work
        takes ``slowdown`` times longer) between ``start_ms`` and ``end_ms``. ``spans=True``
        records every call each worker slot served (for a swimlane of a few requests).
        """
        check_load(rate_per_s, duration_ms, sample_ms,
                   sum(rate for _, rate in self.endpoints.values()))
        check.seed("seed", seed)
        outages = check_sync_outages(outages, self.chain)
        clock = Clock()
        profiles = {name: self.catalog[name] for name in self.chain}
        sim = CallSimulation(clock, profiles, self.calls, FaultPlan(outages=outages), seed,
                             record_spans=check.flag("spans", spans))
        sim.start(self.entry, rate_per_s, duration_ms, sample_ms)
        for name, (path, rate) in self.endpoints.items():
            sim.add_endpoint(name, path, rate, duration_ms)
        clock.run()
        return SyncRun("sync", sim, duration_ms, outages, rate_per_s)

    def __repr__(self) -> str:
        return f"SyncChain({' -> '.join(self.chain)})" if all(
            len(c) <= 1 for c in self.calls.values()) else f"SyncChain({self.calls})"
