"""Charts of notebook 01: the synchronous chain over time, beside its event-driven twin.

Each function takes plain data (the frames a run returns: ``windows()``, ``requests``,
``pools``, ``backlog``) and an optional ``ax``, and returns the Axes, in the course style. The
outage windows are shaded on every chart, so cause and effect line up on the time axis.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt

from ..charts import axes, backlog_chart, color_for, style
from ..faults import Outage

OUTAGE_COLOR = "#F4A3A3"


def figure_png(fig, dpi: int = 72) -> bytes:
    """Render ``fig`` to PNG bytes as laid out (no tight bounding box: faster) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def shade_outages(ax, outages: Iterable[Outage]) -> None:
    """Shade each outage window (in seconds) and name it."""
    for outage in outages:
        what = "down" if outage.mode == "down" else f"{outage.slowdown:g}x slower"
        ax.axvspan(outage.start_ms / 1000, outage.end_ms / 1000, color=OUTAGE_COLOR, alpha=0.25,
                   linewidth=0)
        ax.annotate(f"{outage.target} {what}", (outage.start_ms / 1000, 0.0),
                    xycoords=("data", "axes fraction"), xytext=(3, 3),
                    textcoords="offset points", fontsize=8, color="#A33")


def _share_axes(ax, outages: Iterable[Outage], ylabel: str, title: str,
                top: float = 1.05) -> None:
    """Outages shaded, a 0-100% y axis, labels: what every chart of a share over time needs."""
    shade_outages(ax, outages)
    ax.set_ylim(0, top)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{min(v, 1):.0%}"))
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def _three_panels(figsize):
    with style():
        fig, panels = plt.subplots(3, 1, figsize=figsize, sharex=True)
    return fig, panels


def _finish(fig, panels):
    """One time axis label at the bottom; fixed margins (tight_layout costs 3x as much, and
    a widget redraws often)."""
    for ax in panels[:-1]:
        ax.set_xlabel("")
    fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.07, hspace=0.32)
    return fig


def _line(ax, label: str, frame, column: str, index: int, dashed: bool = False) -> None:
    ax.plot(frame["time_s"], frame[column], label=label, color=color_for(label, index),
            linewidth=2, linestyle="--" if dashed else "-", drawstyle="steps-post")


def success_rate_chart(windows: Mapping[str, object], outages: Iterable[Outage] = (), ax=None,
                       title: str = "Requests that succeeded, per second"):
    """Success rate over time, one line per run. ``windows``: label -> ``run.windows()``."""
    ax = axes(ax)
    with style():
        for i, (label, frame) in enumerate(windows.items()):
            _line(ax, label, frame, "success_rate", i)
        _share_axes(ax, outages, "success rate", title)
        ax.legend(loc="lower left")
    return ax


def latency_chart(windows: Mapping[str, object], outages: Iterable[Outage] = (), ax=None,
                  title: str = "What the client waits for (95th percentile)"):
    """p95 latency of the successful requests over time, one line per run (log scale).

    A frame with a ``lag_p95_ms`` column (the twin's) also gets a dashed line: how long until
    its orders were fully processed, which is the price of answering early.
    """
    ax = axes(ax)
    with style():
        for i, (label, frame) in enumerate(windows.items()):
            _line(ax, f"{label}: answered", frame, "p95_ms", i)
            if "lag_p95_ms" in frame:
                _line(ax, f"{label}: fully processed", frame, "lag_p95_ms", i, dashed=True)
        shade_outages(ax, outages)
        ax.set_yscale("log")
        top = max((frame[c].max() for frame in windows.values() for c in ("p95_ms", "lag_p95_ms")
                   if c in frame and frame[c].notna().any()), default=1_000.0)
        ax.set_ylim(top=top * 8)  # room for the legend above the lines
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("ms (log scale)")
        ax.set_title(title)
        ax.legend(loc="upper center", ncol=3)
    return ax


def failures_chart(requests, window_ms: float = 1_000.0, outages: Iterable[Outage] = (),
                   ax=None, title: str = "Failed requests, by the service they failed at"):
    """Stacked bars: failed requests per window, coloured by the service they failed at.

    ``requests`` is ``run.requests``. A bar coloured by a service that had no outage is the
    cascade: a healthy service refusing work because it was stuck waiting.
    """
    ax = axes(ax)
    with style():
        failed = requests[~requests["ok"]]
        if len(failed):
            window = (failed["start_ms"] // window_ms) * window_ms / 1000
            counts = failed.groupby([window, failed["failed_at"]]).size().unstack(fill_value=0)
            bottom = None
            for i, service in enumerate(counts.columns):
                ax.bar(counts.index, counts[service], width=window_ms / 1000, align="edge",
                       bottom=bottom, label=service, color=color_for(service, i))
                bottom = counts[service] if bottom is None else bottom + counts[service]
            ax.legend(loc="upper right", title="failed at", title_fontsize=8)
        shade_outages(ax, outages)
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("failed requests")
        ax.set_title(title)
    return ax


def pool_chart(pools, outages: Iterable[Outage] = (), ax=None, window_ms: float = 1_000.0,
               title: str = "Busy workers, as a share of each pool (mean per second)"):
    """How full each service's worker pool is over time. ``pools`` is ``run.pools``.

    The samples are averaged per ``window_ms``: a pool near 100% for a whole second is one
    that refuses calls.
    """
    ax = axes(ax)
    with style():
        for i, (service, rows) in enumerate(pools.groupby("service", sort=False)):
            share = (rows["busy"] / rows["workers"]).groupby(
                (rows["time"] // window_ms) * window_ms / 1000).mean()
            ax.step(share.index, share.to_numpy(), where="post", label=service,
                    color=color_for(service, i), linewidth=1.8)
        _share_axes(ax, outages, "busy / workers", title, top=1.15)  # room for the legend
        ax.legend(loc="upper right", ncol=max(1, pools["service"].nunique()))
    return ax


def cascade_figure(run, window_ms: float = 1_000.0):
    """Three charts of one synchronous run: success rate, failures by service, pools."""
    fig, panels = _three_panels((8, 7.5))
    success_rate_chart({run.label: run.windows(window_ms)}, run.outages, ax=panels[0])
    failures_chart(run.requests, window_ms, run.outages, ax=panels[1])
    pool_chart(run.pools, run.outages, ax=panels[2])
    return _finish(fig, panels)


def comparison_figure(sync_run, twin_run, window_ms: float = 1_000.0, figsize=(8, 7.5)):
    """The same load and outage, both ways: success rate, latency, and the twin's backlog."""
    fig, panels = _three_panels(figsize)
    windows = {sync_run.label: sync_run.windows(window_ms),
               twin_run.label: twin_run.windows(window_ms)}
    success_rate_chart(windows, sync_run.outages, ax=panels[0])
    latency_chart(windows, sync_run.outages, ax=panels[1])
    backlog_chart(twin_run.backlog, ax=panels[2],
                  title="Event-driven: backlog per consumer group")
    shade_outages(panels[2], twin_run.outages)
    return _finish(fig, panels)
