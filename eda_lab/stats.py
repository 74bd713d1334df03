"""Percentiles, defined once: the nearest-rank percentile every table and chart uses.

The p-th percentile of n values is the smallest value with at least p% of the values at or
below it: the ``ceil(p/100 * n)``-th of them in sorted order. It is always one of the values
measured (no interpolation between two orders' lags), and the p99 of 1..100 is 99.

>>> percentile(range(1, 101), 99), percentile(range(1, 101), 50), percentile([], 50)
(99, 50, None)
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0-100) of ``values``; None when there are none."""
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 100:  # NaN too
        raise ValueError(f"q must be a percentage in [0, 100], got {q!r}")
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
