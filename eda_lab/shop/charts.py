"""The charts of notebooks 06 and 07: agreement lag, saga-style traffic, the chaos lab.

Each function takes plain data (an :class:`~eda_lab.shop.lag.Agreement`, sweep or traffic
rows, a :class:`~eda_lab.shop.chaos.ChaosReport`: numbers read from the databases), takes an
optional ``ax``, draws in the course style and returns the Axes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from ..charts import COLORS, STATE_COLORS, STYLE, axes, color_for, style
from ..stats import percentile
from .chaos import ChaosReport
from .lag import Agreement

# -- notebook 06: how long the services disagree, and what each saga style costs ----------

_P50, _P95 = "#4C72B0", "#C44E52"
_OUTAGE = "#F4A3A3"


def agreement_histogram(agreement: Agreement, ax=None, title: str | None = None, bins: int = 30):
    """How many orders took how long until every service agreed, with the median and p95.

    Only orders every consumer applied have a lag; when some have not (yet), the title says
    how many of them the histogram leaves out. The legend sits under the axis, where no bar or
    line can be, and the counts have whole-number ticks.
    """
    ax = axes(ax)
    lags = agreement.lags()
    with style():
        counts, _, _ = ax.hist(lags, bins=bins, color=COLORS["order"], alpha=0.8,
                               edgecolor="white", label="orders")
        for q, color in ((50, _P50), (95, _P95)):
            value = percentile(lags, q)
            if value is not None:
                ax.axvline(value, color=color, linestyle="--", linewidth=1.5,
                           label=f"p{q} = {value:,.0f} ms")
        ax.set_xlabel("agreement lag: commit -> applied by every consumer (ms)")
        ax.set_ylabel("orders")
        ax.set_xlim(left=0)
        ax.set_ylim(0, 1.1 * max([*counts, 1]))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        missing = len(agreement.rows) - len(lags)
        ax.set_title((title or _title(agreement))
                     + (f"\n({missing} of {len(agreement.rows)} orders not agreed on when the "
                        "run stopped: not drawn)" if missing else ""))
        if lags:
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
        else:
            ax.text(0.5, 0.5, "no order agreed on", ha="center", va="center",
                    transform=ax.transAxes)
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
        top = max([r.lag_ms for r in done], default=1.0)
        ax.set_ylim(0, 1.3 * top)
        if title is None:
            title = "Agreement lag of each order"
            if settings.get("outage_ms"):
                start = settings["outage_start_ms"] / 1000
                title += (f", {settings['outage_consumer']} down from {start:g} s to "
                          f"{start + settings['outage_ms'] / 1000:g} s")
        ax.set_title(title)
        if done or settings.get("outage_ms"):
            ax.legend(loc="upper right", ncol=3)
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
            # a run in which no order was agreed on has no lag: it is left out, not drawn as 0
            mine = [r for r in mine if r[quantile] is not None]
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
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
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


def _per_second(ends_ms: Sequence[float], seconds: int) -> list[int]:
    counts = [0] * seconds
    for end in ends_ms:
        counts[min(seconds - 1, int(end // 1000))] += 1
    return counts


def throughput_chart(report: ChaosReport, ax=None,
                     title: str = "Sagas finished per simulated second",
                     baseline: ChaosReport | None = None):
    """Sagas finished in each simulated second; the storm (while orders arrived) shaded, and
    the same orders without faults (``baseline``) as a line."""
    ax = axes(ax)
    with style():
        last = max([report.simulated_ms, 1.0]
                   + ([baseline.simulated_ms] if baseline is not None else []))
        seconds = max(1, math.ceil(last / 1000))
        per_second = _per_second(report.saga_end_ms, seconds)
        ax.axvspan(0, report.storm_ms / 1000, color=STORM_COLOR, alpha=0.25, lw=0,
                   label="storm: orders arrive, faults fire")
        ax.bar([s + 0.5 for s in range(seconds)], per_second, width=0.9,
               color=STATE_COLORS["completed"], edgecolor="#4d8f5c",
               label="sagas finished in the storm")
        if baseline is not None:
            calm = _per_second(baseline.saga_end_ms, seconds)
            ax.step([0, *[s + 1 for s in range(seconds)]], [calm[0], *calm], where="pre",
                    color="#333333", lw=1.5, ls="--", label="the same orders without faults")
        if report.storm_ms > 0:
            rate = report.placed / (report.storm_ms / 1000)
            ax.hlines(rate, 0, report.storm_ms / 1000, colors=COLORS["order"], lw=2,
                      label=f"orders placed ({rate:.0f}/s)")
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("sagas (orders) per second")
        ax.set_title(title)
        ax.set_xlim(0, seconds)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    return ax


def lag_chart(report: ChaosReport, ax=None,
              title: str = "Consistency lag: commit until every service agrees",
              baseline: ChaosReport | None = None):
    """How long each order took until every service agreed about it, with p50 and p99; the
    same orders without faults (``baseline``) as an outline, with its p50."""
    ax = axes(ax)
    with style():
        lags_s = [lag / 1000 for lag in report.lags_ms]
        calm_s = [lag / 1000 for lag in baseline.lags_ms] if baseline is not None else []
        if lags_s or calm_s:
            bins = min(40, max(5, len(lags_s) // 10))
            edges = None
            if lags_s:
                _, edges, _ = ax.hist(lags_s, bins=bins, color=COLORS["broker"],
                                      edgecolor="white", label="in the storm")
            if calm_s:
                ax.hist(calm_s, bins=edges if edges is not None else bins, histtype="step",
                        color="#333333", lw=1.2, label="without faults")
            for name, value in (report.lag_percentiles(0.5, 0.99).items() if lags_s else ()):
                ax.axvline(value / 1000, color="#333333", ls="--" if name == "p50" else ":",
                           lw=1.5, label=f"storm {name}: {value / 1000:.2f} s")
            if calm_s:
                calm_p50 = baseline.lag_percentiles(0.5)["p50"] / 1000
                ax.axvline(calm_p50, color="#55A868", ls="-", lw=1.5,
                           label=f"without faults p50: {calm_p50:.2f} s")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)  # clear of it all
        else:
            ax.text(0.5, 0.5, "no order agreed on yet", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel("consistency lag (simulated s)")
        ax.set_ylabel("orders")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
    return ax


def chaos_figure(report: ChaosReport, baseline: ChaosReport | None = None):
    """Both charts side by side (what the Chaos Lab shows), as a Figure; ``baseline`` (the
    same orders without faults) drawn beside the storm in both."""
    with plt.rc_context(STYLE):
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    throughput_chart(report, left, baseline=baseline)
    lag_chart(report, right, baseline=baseline)
    fig.tight_layout()
    return fig
