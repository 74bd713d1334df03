"""Notebooks 06-07: the whole shop, how long its services disagree, and its chaos lab.

Read in this order:

* :mod:`.lag`: eventual consistency measured: per order, how long until every service
  agrees (the agreement lag), on the outbox's write path;
* :mod:`.tradeoffs`: the model behind the trade-offs explorer;
* :mod:`.shop`: the whole shop: the write path, the saga starter and the Create Order saga
  on one clock, one trace and one fault plan;
* :mod:`.chaos`: a chaos run: the shop under random faults, then its invariants checked;
* :mod:`.complexity`: infrastructure complexity counted: the moving parts of each design, from
  plain CRUD to the whole shop, read from its wiring;
* :mod:`.charts`: the notebooks' charts.
"""

from .chaos import DEFAULT_RATES, FAMILIES, ChaosReport, chaos_plan, run_chaos
from .charts import (
    agreement_histogram,
    agreement_timeline,
    chaos_figure,
    lag_chart,
    sweep_chart,
    traffic_chart,
)
from .complexity import DESIGNS, MovingParts, count_parts, moving_parts
from .lag import (
    Agreement,
    agreement_rows,
    agreement_sweep,
    applied_times,
    arrival_times,
    broken_promises,
    committed_times,
    measure_agreement,
)
from .shop import CONSUMERS, Shop
from .tradeoffs import TradeoffsModel

__all__ = [
    "CONSUMERS", "DEFAULT_RATES", "DESIGNS", "FAMILIES", "Agreement", "ChaosReport",
    "MovingParts", "Shop", "TradeoffsModel", "agreement_histogram", "agreement_rows",
    "agreement_sweep", "agreement_timeline", "applied_times", "arrival_times",
    "broken_promises", "chaos_figure", "chaos_plan", "committed_times", "count_parts",
    "lag_chart", "measure_agreement", "moving_parts", "run_chaos", "sweep_chart",
    "traffic_chart",
]
