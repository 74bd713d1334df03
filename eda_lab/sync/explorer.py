"""The model behind the sync-chain explorer (notebook 01): both wirings of the shop, one load.

The widget (:mod:`eda_lab.widgets.sync_explorer`) only draws this model: it sets latencies,
failure chances and an outage here, and shows the two runs this model makes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..faults import Outage
from .chain import POOL_EXHAUSTED, ServiceProfile, SyncChain, SyncRun, check_names, load_services
from .twin import EventDrivenTwin, TwinRun

EXPLORER_CHAIN = ("order", "payment", "inventory", "shipping")
MAX_LATENCY_MS = 500
MAX_FAILURE_PROB = 0.3
SLOWDOWN = 20.0  # a "slow" outage makes the service this many times slower
# The outage covers this share of the run, so there is a before, a during and an after.
OUTAGE_SHARE = (0.35, 0.7)


class ExplorerModel:
    """What the explorer shows: the services, the load, the outage, and the last two runs.

    The outage is on or off; when on, ``outage_target`` is down or slow (``outage_mode``)
    for the middle of the run. Every setter checks its value; :meth:`run` simulates both
    wirings with the same seed, so only what was changed changes.
    """

    def __init__(self, services: Mapping[str, ServiceProfile] | None = None,
                 chain: Sequence[str] = EXPLORER_CHAIN, *, rate_per_s: float = 20.0,
                 duration_ms: float = 20_000.0, seed: int = 1, outage_on: bool = False,
                 outage_target: str = "inventory", outage_mode: str = "slow"):
        self.services = dict(services if services is not None else load_services())
        self.chain = check_names("chain", chain, self.services)
        if len(self.chain) < 2:
            raise ValueError("chain must name the entry service and at least one more")
        SyncChain(self.services, self.chain)  # checks the names and profiles
        self.rate_per_s = rate_per_s
        self.duration_ms = duration_ms
        self.seed = seed
        # Each service's spread as a share of its mean, kept when a slider moves the mean.
        self._spread = {name: (p.sd_ms / p.mean_ms if p.mean_ms else 0.0)
                        for name, p in self.services.items()}
        self.outage_on = outage_on
        self.set_outage(outage_target, outage_mode)
        self.sync_run: SyncRun | None = None
        self.twin_run: TwinRun | None = None

    def set_latency(self, name: str, mean_ms: float) -> None:
        """Set a service's mean latency; its spread keeps the same share of the mean."""
        profile = self.services[check_names("name", name, self.services)[0]]
        self.services[name] = profile.changed(mean_ms=mean_ms,
                                              sd_ms=mean_ms * self._spread[name])

    def set_failure(self, name: str, failure_prob: float) -> None:
        """Set the chance that a call to ``name`` answers with an error."""
        profile = self.services[check_names("name", name, self.services)[0]]
        self.services[name] = profile.changed(failure_prob=failure_prob)

    def set_outage(self, target: str, mode: str) -> None:
        """Choose which service the outage hits and how ('down' or 'slow')."""
        check_names("outage_target", target, self.chain)
        if mode not in ("down", "slow"):
            raise ValueError(f"outage_mode must be 'down' or 'slow', got {mode!r}")
        self.outage_target, self.outage_mode = target, mode

    @property
    def outages(self) -> tuple[Outage, ...]:
        """The outage in force, as the simulations take it (none while the toggle is off)."""
        if not self.outage_on:
            return ()
        start, end = (share * self.duration_ms for share in OUTAGE_SHARE)
        return (Outage(self.outage_target, start, end, self.outage_mode,
                       SLOWDOWN if self.outage_mode == "slow" else 1.0),)

    @property
    def sync_chain(self) -> SyncChain:
        return SyncChain(self.services, self.chain)

    @property
    def twin(self) -> EventDrivenTwin:
        return EventDrivenTwin(self.services, self.chain[0], self.chain[1:])

    def run(self) -> tuple[SyncRun, TwinRun]:
        """Run the same load and outage through both wirings; keep and return the results."""
        load = {"rate_per_s": self.rate_per_s, "duration_ms": self.duration_ms,
                "outages": self.outages, "seed": self.seed}
        self.sync_run = self.sync_chain.run(**load)
        self.twin_run = self.twin.run(**load, trace=False)
        return self.sync_run, self.twin_run

    def rows(self) -> list[dict]:
        """The comparison table: each wiring's measured numbers beside its closed form."""
        if self.sync_run is None or self.twin_run is None:
            return []
        rows = []
        for wiring, run, expected in (("sync", self.sync_run, self.sync_chain),
                                      ("event-driven", self.twin_run, self.twin)):
            s = run.summary()
            rows.append({
                "wiring": wiring,
                "succeeded": f"{s['success_rate']:.2%}",
                "closed form (no outage, no waiting)": f"{expected.expected_availability():.2%}",
                # A closed form knows no waiting: refusals by full pools are what it leaves out.
                "refused by a full pool": int((run.requests["reason"] == POOL_EXHAUSTED).sum()),
                "mean ms (successes)": f"{s['mean_ms']:.0f}",
                "expected ms": f"{expected.expected_latency_ms():.0f}",
                "p95 ms (successes)": f"{s['p95_ms']:.0f}",
                "all orders processed at": "when answered" if wiring == "sync" else
                _seconds(run.consistency()),
            })
        return rows


def _seconds(consistency: dict) -> str:
    value = consistency["all_processed_at_s"]
    if value == value:
        return f"{value:.1f} s"
    dead = consistency["dead_lettered"]
    return f"never: {dead} dead-lettered" if dead else "not within the run"


MAX_SWEEP_RATE = 2_000  # requests per second


def load_sweep(services: Mapping[str, ServiceProfile], rates, *,
               chain: Sequence[str] = EXPLORER_CHAIN, duration_ms: float = 5_000.0,
               seed: int = 1) -> list[dict]:
    """Both wirings at each load in ``rates`` (requests per second), no outage: success rate
    and p95 of the successful answers. The twin's answers do not wait for its consumers, so
    its backlog is not drained here (``drain_limit_ms=0``): only what the client sees counts."""
    from .. import _validate as check

    rows = []
    for rate in rates:
        check.number("each rate", rate, above=0, maximum=MAX_SWEEP_RATE)
        sync = SyncChain(services, chain).run(rate_per_s=rate, duration_ms=duration_ms,
                                              seed=seed).summary()
        twin = EventDrivenTwin(services, chain[0], chain[1:]).run(
            rate_per_s=rate, duration_ms=duration_ms, seed=seed, drain_limit_ms=0,
            trace=False).summary()
        for wiring, s in (("sync", sync), ("event-driven", twin)):
            rows.append({"wiring": wiring, "rate_per_s": rate, "requests": s["requests"],
                         "success_rate": s["success_rate"], "p95_ms": s["p95_ms"]})
    return rows
