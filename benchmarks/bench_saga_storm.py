"""The saga storm: what saga crashes cost the shop's agreement lag, and what recovery does.

The shop's own storm (:data:`~eda_lab.shop.chaos.DEFAULT_RATES`) over 3,000 orders, with the
saga family's crash points firing on 0.2% of their visits, against the same storm with no saga
crashes, same seed. The figure is the p50 **agreement lag** (commit until every service agrees,
simulated ms): lower is better, and the ratio is storm / baseline (target: <= 2.0).

The orchestrator's default recovery (``"deadlines"``: commands through its outbox, durable
deadlines, nothing re-sent on restart) makes the line; the course's first orchestrator
(``"resend-all"``: record, then publish, and re-send every open saga's command on restart) is
measured beside it, with the number of commands its recoveries re-sent. Each line also says
how long the orchestrator's outbox relay was down in the storm (it carries every command under
``deadlines``; ``resend-all`` publishes them itself): the price of the outbox.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import report  # noqa: E402

from eda_lab.shop import DEFAULT_RATES, run_chaos

N = 3_000
SAGA_RATE = 0.002
SEED = 1


def storm(saga_rate: float, recovery: str) -> dict:
    result = run_chaos(N, {**DEFAULT_RATES, "saga": saga_rate}, seed=SEED, recovery=recovery)
    assert result.ok and result.settled, result.invariants()
    relay = result.relays["orchestrator-relay"]
    return {**result.counts(), "storm_ms": result.storm_ms,
            "orchestrator_relay_published": relay["published"],
            "orchestrator_relay_down_ms": relay["down_ms"]}


if __name__ == "__main__":
    for recovery, target in (("deadlines", 2.0), ("resend-all", None)):
        calm, stormy = storm(0.0, recovery), storm(SAGA_RATE, recovery)
        report("saga storm" if recovery == "deadlines" else "saga storm (resend-all recovery)",
               stormy["lag_p50_ms"], "simulated ms (p50 agreement lag)",
               "the same storm without saga crashes", calm["lag_p50_ms"], target,
               better="lower", orders=N, seed=SEED, saga_rate=SAGA_RATE, recovery=recovery,
               p99_ms=stormy["lag_p99_ms"], baseline_p99_ms=calm["lag_p99_ms"],
               orchestrator_crashes=stormy["orchestrator_crashes"], resent=stormy["resent"],
               needs_attention=stormy["needs_attention"], storm_ms=stormy["storm_ms"],
               orchestrator_relay_published=stormy["orchestrator_relay_published"],
               orchestrator_relay_down_ms=stormy["orchestrator_relay_down_ms"],
               baseline_orchestrator_relay_down_ms=calm["orchestrator_relay_down_ms"])
