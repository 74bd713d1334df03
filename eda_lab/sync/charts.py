"""Charts of notebook 01: the synchronous chain over time, beside its event-driven twin.

Each function takes plain data (the frames a run returns: ``windows()``, ``requests``,
``pools``, ``backlog``) and an optional ``ax``, and returns the Axes, in the course style. The
outage windows are shaded on every chart, so cause and effect line up on the time axis.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogLocator, MaxNLocator

from ..charts import axes, backlog_chart, color_for, style
from ..faults import Outage

OUTAGE_COLOR = "#F4A3A3"


def figure_png(fig, dpi: int = 72) -> bytes:
    """Render ``fig`` to PNG bytes as laid out (no tight bounding box: faster) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return buffer.getvalue()


def show(fig, dpi: int = 100) -> None:
    """Display ``fig`` as laid out, drawn once, and close it.

    Jupyter's inline backend draws each figure twice (the first time to measure a tight crop);
    these figures lay themselves out, so one drawing is enough, a third of a second saved each.
    """
    from IPython.display import Image, display

    display(Image(figure_png(fig, dpi)))


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
                  title: str = "p95 latency of successful answers (dashed: until fully processed)"):
    """p95 latency of the successful requests over time, one line per run (log scale).

    Failed requests are not in it (a "down" outage that fails every request leaves a gap):
    the success-rate chart above it counts them.

    A frame with a ``lag_p95_ms`` column (the twin's) also gets a dashed line: how long until
    its orders were fully processed, which is the price of answering early.
    """
    ax = axes(ax)
    with style():
        for i, (label, frame) in enumerate(windows.items()):
            _line(ax, f"{label}: answered OK", frame, "p95_ms", i)
            if "lag_p95_ms" in frame:
                _line(ax, f"{label}: fully processed", frame, "lag_p95_ms", i, dashed=True)
        shade_outages(ax, outages)
        ax.set_yscale("log")
        top = max((frame[c].max() for frame in windows.values() for c in ("p95_ms", "lag_p95_ms")
                   if c in frame and frame[c].notna().any()), default=1_000.0)
        ax.set_ylim(top=top * 8)  # room for the legend above the lines
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))  # as in
        ax.yaxis.set_minor_formatter(plt.FuncFormatter(lambda v, _: ""))          # the tables
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("ms, successful requests (log)")
        ax.set_title(title)
        ax.legend(loc="upper center", ncol=3)
    return ax


def failures_chart(requests, window_ms: float = 1_000.0, outages: Iterable[Outage] = (),
                   ax=None, title: str | None = None):
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
        ax.set_ylabel(f"failed requests per {window_ms / 1000:g} s")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(top=ax.get_ylim()[1] * 1.08)  # the tallest bar below the frame, not in it
        ax.set_title(title or "Failed requests, by the service they failed at "
                              f"(bars of {window_ms / 1000:g} s)")
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


WAITING_COLOR = "#BBBBBB"


def swimlane_chart(run, ax=None, title: str = "Ten requests, worker by worker"):
    """Each service's worker slots as rows; each call a bar: coloured while the worker does its
    own work, grey while it only **waits** for the service it called; a cross where a call was
    refused (its pool was full, or it was down). ``run`` is a run made with ``spans=True``.

    The mechanism behind the cascade, at a scale where every request can be followed: when
    the service at the bottom slows down, the grey grows upwards until no slot is free.
    """
    ax = axes(ax)
    spans = run.spans
    services = list(dict.fromkeys(run.pools["service"])) if len(run.pools) else list(
        dict.fromkeys(spans["service"]))
    workers = {row["service"]: row["workers"] for row in run._pool_stats}
    base, y = {}, 0
    for service in services:  # the entry on top, the bottom of the chain below
        base[service] = y
        y += workers[service] + 1
    with style():
        served = spans[spans["slot"] >= 0]
        for row in served.itertuples():
            top = base[row.service] + row.slot
            color = color_for(row.service)
            ax.add_patch(Rectangle((row.start_ms, top + 0.1), row.work_end_ms - row.start_ms,
                                   0.8, color=color, linewidth=0))
            if row.end_ms > row.work_end_ms:
                ax.add_patch(Rectangle((row.work_end_ms, top + 0.1),
                                       row.end_ms - row.work_end_ms, 0.8, facecolor=WAITING_COLOR,
                                       edgecolor=color, linewidth=0.6, hatch="///"))
            ax.text(row.start_ms + 3, top + 0.5, str(row.request % 1000), fontsize=6,
                    va="center", color="white" if row.work_end_ms - row.start_ms > 25 else "black")
        refused = spans[spans["slot"] < 0]
        for row in refused.itertuples():
            y_refused = base[row.service] + workers[row.service] + 0.3
            ax.plot(row.start_ms, y_refused, marker="x", color="#C44E52", markersize=6)
        ax.set_yticks([base[s] + workers[s] / 2 for s in services], services)
        ax.set_ylim(y - 0.5, -0.5)
        end = max(float(spans["end_ms"].max()) if len(spans) else 1.0, 1.0)
        ax.set_xlim(0, end * 1.02)
        ax.set_xlabel("simulated time (ms)")
        ax.set_title(title)
        ax.grid(axis="y", alpha=0)
        for service in services[1:]:
            ax.axhline(base[service] - 0.5, color="#DDDDDD", linewidth=0.8)
        ax.legend(handles=[Rectangle((0, 0), 1, 1, color="#888888", label="own work"),
                           Rectangle((0, 0), 1, 1, facecolor=WAITING_COLOR, hatch="///",
                                     edgecolor="#888888", label="waiting for its callee"),
                           plt.Line2D([], [], marker="x", color="#C44E52", linestyle="",
                                      label="refused (pool full)")],
                  loc="lower right", ncol=3)
    return ax


def load_sweep_figure(rows):
    """Success rate and p95 of successful answers against the load, sync beside events.

    ``rows``: dicts with ``wiring``, ``rate_per_s``, ``success_rate``, ``p95_ms`` (what
    :func:`eda_lab.sync.load_sweep` returns).
    """
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    with style():
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
        for i, (wiring, part) in enumerate(frame.groupby("wiring", sort=False)):
            color = color_for(wiring, i)
            left.plot(part["rate_per_s"], part["success_rate"], "-o", color=color,
                      markersize=4, label=wiring)
            right.plot(part["rate_per_s"], part["p95_ms"], "-o", color=color, markersize=4,
                       label=wiring)
        left.set_ylim(0, 1.05)
        left.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{min(v, 1):.0%}"))
        left.set_title("Requests that succeeded")
        left.set_ylabel("success rate")
        right.set_title("p95 latency of successful answers")
        right.set_ylabel("ms (log scale)")
        right.set_yscale("log")
        # 10, 20, 50, 100, ...: a decade holds both wirings, so one tick per decade says nothing
        right.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        right.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        right.yaxis.set_minor_formatter(plt.FuncFormatter(lambda v, _: ""))
        for ax in (left, right):
            ax.set_xlabel("load (requests per second)")
            ax.legend(loc="best")
        fig.subplots_adjust(left=0.09, right=0.98, top=0.88, bottom=0.16, wspace=0.3)
    return fig
