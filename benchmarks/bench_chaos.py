"""Chaos lab throughput: orders per wall-clock second through the whole shop.

Two measurements, each beside a baseline measured in the same run:

1. **the whole shop**: 10,000 orders through the order service and its outbox, the polling
   relay, the broker, the saga starter, a Create Order saga per order (five steps, eleven
   local transactions in five databases) and two downstream consumers with inboxes, no
   faults. The baseline is the outbox pipeline of notebook 04 alone (service, polling relay,
   one consumer with an inbox) for the same number of orders: what the saga and the second
   consumer add is the price of the rest of the shop. Target ratio: 0.1.
2. **a chaos run**: the same 10,000 orders under the default storm (:data:`DEFAULT_RATES`),
   then recovery and every check, as ``run_chaos`` does for the notebook. The baseline is
   the whole shop without faults (1.). Target ratio: 0.5.

Every database is in memory, as in the chaos lab. The sides alternate and the fastest of
``REPEAT`` runs counts (the machine may be busy: alternating slows both alike). ``run_chaos``
pauses the cyclic garbage collector for its run (``eda_lab/_runtime.py``); the pipeline is
timed with it paused too, so neither side is spared work the other does.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import report  # noqa: E402

from eda_lab import OrderPipeline
from eda_lab._runtime import paused_gc
from eda_lab.shop import DEFAULT_RATES, run_chaos

N = 10_000
REPEAT = 2


def seconds(run) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@paused_gc()
def pipeline_alone() -> None:
    pipeline = OrderPipeline("outbox-polling", trace=False)
    assert pipeline.run(N).ok


def whole_shop() -> None:
    result = run_chaos(N, {})
    assert result.ok and result.committed == N


def chaos_run() -> None:
    result = run_chaos(N, DEFAULT_RATES)
    assert result.ok and result.settled


if __name__ == "__main__":
    times = {"pipeline": [], "shop": [], "chaos": []}
    for _ in range(REPEAT):
        times["pipeline"].append(seconds(pipeline_alone))
        times["shop"].append(seconds(whole_shop))
        times["chaos"].append(seconds(chaos_run))
    best = {name: min(values) for name, values in times.items()}
    report("chaos whole shop", N / best["shop"], "orders/s",
           "the outbox pipeline alone (service, polling relay, one consumer with an inbox), "
           "same orders", N / best["pipeline"], 0.1, orders=N, wall_s=round(best["shop"], 2))
    report("chaos run under the default storm", N / best["chaos"], "orders/s",
           "the whole shop without faults, same orders", N / best["shop"], 0.5, orders=N,
           wall_s=round(best["chaos"], 2), rates=DEFAULT_RATES)
