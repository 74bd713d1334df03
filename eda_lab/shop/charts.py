"""The charts of notebooks 06 and 07: agreement lag, saga-style traffic, the chaos lab.

Each function takes plain data (an :class:`~eda_lab.shop.lag.Agreement`, sweep or traffic
rows, a :class:`~eda_lab.shop.chaos.ChaosReport`: numbers read from the databases), takes an
optional ``ax``, draws in the course style and returns the Axes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt

from ..charts import COLORS, STATE_COLORS, STYLE, axes, color_for, style
from ..stats import percentile
from .chaos import ChaosReport
from .lag import Agreement

# -- notebook 06: how long the services disagree, and what each saga style costs ----------

_P50, _P95 = "#4C72B0", "#C44E52"
_OUTAGE = "#F4A3A3"


def agreement_histogram(agreement: Agreement, ax=None, title: str | None = None, bins: int = 30):
    """How many orders took how long until every service agreed, with the median and p95."""
    ax = axes(ax)
    lags = agreement.lags()
    with style():
        ax.hist(lags, bins=bins, color=COLORS["order"], alpha=0.8, edgecolor="white")
        for q, color in ((50, _P50), (95, _P95)):
            value = percentile(lags, q)
            if value is not None:
                ax.axvline(value, color=color, linestyle="--", linewidth=1.5,
                           label=f"p{q} = {value:,.0f} ms")
        ax.set_xlabel("agreement lag: commit -> applied by every consumer (ms)")
        ax.set_ylabel("orders")
        ax.set_xlim(left=0)
        ax.set_title(title or _title(agreement))
        if lags:
            ax.legend(loc="upper right")
    return ax


def agreement_timeline(agreement: Agreement, ax=None, title: str | None = None):
    """Each order's agreement lag against the moment it was committed; an outage shaded.

    Orders committed during a consumer's outage wait for it to come back: their lag falls in
    a straight line (the later the commit, the shorter the wait) until the outage ends.
    """
    ax = axes(ax)
    settings = agreement.settings
    with style():
        done = [r for r in agreement.rows if r.lag_ms is not None]
        consumers = list(settings["consumers"])
        for i, consumer in enumerate(consumers):
            mine = [r for r in done if r.last == consumer]
            if not mine:
                continue
            ax.scatter([r.committed_ms / 1000 for r in mine], [r.lag_ms for r in mine], s=9,
                       color=color_for(consumer, i), label=f"{consumer} was last")
        if settings.get("outage_ms"):
            start = settings["outage_start_ms"] / 1000
            ax.axvspan(start, start + settings["outage_ms"] / 1000, color=_OUTAGE, alpha=0.3,
                       label=f"{settings['outage_consumer']} down")
        ax.set_xlabel("order committed at (simulated s)")
        ax.set_ylabel("agreement lag (ms)")
        ax.set_ylim(bottom=0)
        ax.set_title(title or "Agreement lag of each order")
        ax.legend(loc="upper right", ncol=2)
    return ax


def sweep_chart(rows: Sequence[Mapping], ax=None, quantile: str = "p95_ms",
                title: str = "How the poll interval and an outage move the lag"):
    """``quantile`` of the agreement lag against the relay's poll interval, one line per
    outage length (rows from :func:`~eda_lab.shop.lag.agreement_sweep`)."""
    ax = axes(ax)
    with style():
        outages = sorted({r["outage_ms"] for r in rows})
        for i, outage in enumerate(outages):
            mine = sorted((r for r in rows if r["outage_ms"] == outage),
                          key=lambda r: r["poll_interval_ms"])
            label = "no outage" if not outage else f"a consumer down {outage / 1000:g} s"
            ax.plot([r["poll_interval_ms"] for r in mine], [r[quantile] for r in mine],
                    marker="o", color=[_P50, "#DD8452", _P95, "#8172B3"][i % 4], label=label)
        ax.set_xscale("log")
        ticks = sorted({r["poll_interval_ms"] for r in rows})
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("relay poll interval (ms)")
        ax.set_ylabel(f"{quantile.removesuffix('_ms')} agreement lag (ms)")
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5))
    return ax


def traffic_chart(rows: Sequence[Mapping], ax=None,
                  title: str = "Messages per order, by saga style"):
    """Grouped bars: messages published and delivered per order, for each (style, scenario)
    row (``{"style": ..., "scenario": ..., "published": n, "delivered": n}``)."""
    ax = axes(ax)
    with style():
        labels = [f"{r['style']}\n{r['scenario']}" for r in rows]
        x = range(len(rows))
        for offset, key, color in ((-0.2, "published", COLORS["order"]),
                                   (0.2, "delivered", COLORS["broker"])):
            bars = ax.bar([i + offset for i in x], [r[key] for r in rows], width=0.38,
                          color=color, label=key)
            ax.bar_label(bars, fontsize=8)
        ax.set_xticks(list(x), labels)
        ax.set_ylabel("messages for one order")
        ax.set_ylim(0, 1.3 * max([r["delivered"] for r in rows] + [r["published"] for r in rows]
                                 + [1]))
        ax.set_title(title)
        ax.legend(loc="upper left", ncol=2)
    return ax


def _title(agreement: Agreement) -> str:
    s = agreement.settings
    outage = (f", {s['outage_consumer']} down {s['outage_ms'] / 1000:g} s" if s["outage_ms"]
              else "")
    return f"Agreement lag, relay polling every {s['poll_interval_ms']:g} ms{outage}"


# -- notebook 07: the chaos lab ---------------------------------------------------------------

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
