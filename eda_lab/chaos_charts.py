"""The chaos lab's charts: throughput over simulated time and the consistency lag.

Both draw from a :class:`~eda_lab.chaos.ChaosReport` (numbers read from the databases),
take an optional ``ax`` and return it, in the course style.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

from .chaos import ChaosReport
from .charts import COLORS, STATE_COLORS, STYLE, axes, style

STORM_COLOR = "#F4A3A3"


def throughput_chart(report: ChaosReport, ax=None, title: str = "Orders through the shop"):
    """Sagas finished per simulated second; the storm (while orders arrived) shaded."""
    ax = axes(ax)
    with style():
        seconds = max(1, math.ceil(max(report.simulated_ms, 1.0) / 1000))
        per_second = [0] * seconds
        for end in report.saga_end_ms:
            per_second[min(seconds - 1, int(end // 1000))] += 1
        ax.axvspan(0, report.storm_ms / 1000, color=STORM_COLOR, alpha=0.25, lw=0,
                   label="storm: orders arrive, faults fire")
        ax.bar([s + 0.5 for s in range(seconds)], per_second, width=0.9,
               color=STATE_COLORS["completed"], edgecolor="#4d8f5c", label="sagas finished")
        if report.storm_ms > 0:
            rate = report.placed / (report.storm_ms / 1000)
            ax.hlines(rate, 0, report.storm_ms / 1000, colors=COLORS["order"], lw=2,
                      label=f"orders placed ({rate:.0f}/s)")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("orders per second")
        ax.set_title(title)
        ax.set_xlim(0, seconds)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    return ax


def lag_chart(report: ChaosReport, ax=None,
              title: str = "Consistency lag: commit until every service agrees"):
    """How long each order took until every service agreed about it, with p50 and p99."""
    ax = axes(ax)
    with style():
        lags_s = [lag / 1000 for lag in report.lags_ms]
        if lags_s:
            ax.hist(lags_s, bins=min(40, max(5, len(lags_s) // 10)), color=COLORS["broker"],
                    edgecolor="white")
            for name, value in report.lag_percentiles(0.5, 0.99).items():
                ax.axvline(value / 1000, color="#333333", ls="--" if name == "p50" else ":",
                           lw=1.5, label=f"{name}: {value / 1000:.2f} s")
            ax.legend(loc="upper right")
        else:
            ax.text(0.5, 0.5, "no order agreed on yet", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel("seconds (simulated)")
        ax.set_ylabel("orders")
        ax.set_title(title)
    return ax


def chaos_figure(report: ChaosReport):
    """Both charts side by side (what the Chaos Lab shows), as a Figure."""
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    throughput_chart(report, left)
    lag_chart(report, right)
    fig.tight_layout()
    return fig
