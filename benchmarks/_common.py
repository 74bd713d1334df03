"""Shared helpers for the benchmarks: best-of-N timing and the JSON line of the design brief."""

from __future__ import annotations

import json
import time
from collections.abc import Callable


def best_time(run: Callable[[], object], repeat: int = 5) -> float:
    """The fastest of ``repeat`` runs, in seconds (the least disturbed by the machine)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def report(name: str, value: float, unit: str, baseline: str, baseline_value: float,
           target: float, **extra) -> dict:
    """Print one benchmark as a JSON line; ratio = value / baseline_value (throughputs)."""
    line = {
        "name": name, "value": round(value, 1), "unit": unit, "baseline": baseline,
        "baseline_value": round(baseline_value, 1),
        "ratio": round(value / baseline_value, 3) if baseline_value else None,
        "target": target, **extra,
    }
    print(json.dumps(line), flush=True)
    return line
