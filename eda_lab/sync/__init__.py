"""Notebook 01: why a synchronous call chain fails, and the same shop wired with events.

Read in this order:

* :mod:`.chain`: the services' profiles (``data/services.csv``), the closed forms (latency
  adds up, availability multiplies) and the simulated call chain with its worker pools;
* :mod:`.twin`: the event-driven twin: the order service publishes ``OrderPlaced`` and
  answers, the other services are consumer groups;
* :mod:`.explorer`: the model behind the sync-chain explorer (both wirings, one load);
* :mod:`.charts`: the notebook's charts.
"""

from .chain import (
    ServiceProfile,
    SyncChain,
    SyncRun,
    chain_availability,
    chain_latency_ms,
    load_services,
)
from .charts import cascade_figure, comparison_figure, load_sweep_figure, show, swimlane_chart
from .explorer import ExplorerModel, load_sweep
from .twin import EventDrivenTwin, TwinRun

__all__ = [
    "EventDrivenTwin", "ExplorerModel", "ServiceProfile", "SyncChain", "SyncRun", "TwinRun",
    "cascade_figure", "chain_availability", "chain_latency_ms", "comparison_figure",
    "load_services", "load_sweep", "load_sweep_figure", "show", "swimlane_chart",
]
