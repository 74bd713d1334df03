"""The model behind the trade-offs explorer (notebook 06): agreement lag and saga styles.

For one setting of the explorer's three controls (the relay's poll interval, an outage of
one consumer, the saga style) it makes the runs the views draw, once each, and keeps them.
The widget (:mod:`eda_lab.widgets.tradeoffs_explorer`) only draws them.
"""

from __future__ import annotations

from .. import _validate as check
from ..saga.choreography import (
    STYLES,
    ChoreographyRunner,
    Dependency,
    orchestrator_knows,
    run_saga,
    story,
    traffic,
    who_knows_whom,
)
from ..saga.definition import create_order_saga
from ..saga.runner import SagaRunner
from .lag import Agreement, measure_agreement

POLL_INTERVALS_MS = (50, 100, 200, 500, 1000)
OUTAGES_MS = (0, 1000, 2000, 5000)
SAMPLE_ORDER = {"order_id": "order-1", "customer": "alice", "sku": "book", "quantity": 2,
                "amount": 30.0}
SCENARIOS = {"all steps succeed": None, "payment refused": {"AuthorizePayment": "fail"}}
STALE_AFTER_MS = (100, 250, 500, 1000, 2000)
class TradeoffsModel:
    """What the explorer shows, for one setting of its three controls.

    Each agreement run (``n_orders`` orders, seeded) and each saga run is made once and kept.
    """

    def __init__(self, poll_interval_ms: int = 100, outage_ms: int = 0,
                 style: str = "orchestration", *, n_orders: int = 300, seed: int = 0):
        self.poll_interval_ms = check.one_of("poll_interval_ms", poll_interval_ms, POLL_INTERVALS_MS)
        self.outage_ms = check.one_of("outage_ms", outage_ms, OUTAGES_MS)
        self.style = check.one_of("style", style, STYLES)
        check.count("n_orders", n_orders, maximum=10_000)
        self.n_orders = n_orders
        self.seed = seed
        self.changes = 0   # numbered status line: every use of a control says something new
        self._agreements: dict[tuple[int, int], Agreement] = {}
        self._sagas: dict[tuple[str, str], tuple[SagaRunner | ChoreographyRunner, str]] = {}

    # -- the controls ----------------------------------------------------------------------
    def set_poll_interval(self, value: int) -> None:
        self.poll_interval_ms = check.one_of("poll_interval_ms", value, POLL_INTERVALS_MS)
        self.changes += 1

    def set_outage(self, value: int) -> None:
        self.outage_ms = check.one_of("outage_ms", value, OUTAGES_MS)
        self.changes += 1

    def set_style(self, value: str) -> None:
        self.style = check.one_of("style", value, STYLES)
        self.changes += 1

    # -- what the views read --------------------------------------------------------------
    def agreement(self, poll_interval_ms: int | None = None,
                  outage_ms: int | None = None) -> Agreement:
        """The agreement run for a setting (the current one by default), made once."""
        key = (self.poll_interval_ms if poll_interval_ms is None else poll_interval_ms,
               self.outage_ms if outage_ms is None else outage_ms)
        if key not in self._agreements:
            self._agreements[key] = measure_agreement(
                self.n_orders, poll_interval_ms=key[0], outage_ms=key[1], seed=self.seed)
        return self._agreements[key]

    def saga(self, style: str, scenario: str) -> tuple[SagaRunner | ChoreographyRunner, str]:
        """The sample order's saga in ``style`` under ``scenario`` (a key of SCENARIOS)."""
        key = (check.one_of("style", style, STYLES), check.one_of("scenario", scenario, list(SCENARIOS)))
        if key not in self._sagas:
            self._sagas[key] = run_saga(style, SAMPLE_ORDER, SCENARIOS[scenario])
        return self._sagas[key]

    def traffic_rows(self) -> list[dict]:
        """Messages and outcome of the sample order, for each style and scenario."""
        rows = []
        for style in STYLES:
            for scenario in SCENARIOS:
                runner, saga_id = self.saga(style, scenario)
                rows.append({"style": style, "scenario": scenario,
                             "status": runner.status(saga_id),
                             **traffic(runner.trace.frame(), saga_id),
                             "done at (ms)": runner.clock.now})
        return rows

    def story(self, scenario: str = "payment refused") -> list[dict]:
        """Who decided what, in order, in the current style."""
        runner, saga_id = self.saga(self.style, scenario)
        return story(runner.trace.frame(), saga_id)

    def dependencies(self) -> list[Dependency]:
        """Who must know whom in the current style."""
        if self.style == "orchestration":
            return orchestrator_knows(create_order_saga())
        runner, _ = self.saga("choreography", "all steps succeed")
        return who_knows_whom(runner.choreography)

    def status(self) -> str:
        outage = (f"analytics down {self.outage_ms / 1000:g} s from t = 1 s" if self.outage_ms
                  else "every consumer up")
        return (f"#{self.changes}: relay polls every {self.poll_interval_ms} ms · {outage} · "
                f"saga style: {self.style}")
