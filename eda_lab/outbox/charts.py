"""Charts for notebooks 03 and 04: losses against the fault rate, relay lag, the polling gap.

Each function takes plain rows (the dicts that :mod:`eda_lab.outbox.pipeline` and
:mod:`eda_lab.outbox.polling_gap` return, or a DataFrame of them) and an optional ``ax``, and returns
the Axes, drawn in the course style.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd
from matplotlib.ticker import FuncFormatter, MaxNLocator

from ..charts import axes, color_for, style

SHORT_LABELS = {"db_then_publish": "DB, then\npublish", "publish_then_db": "publish,\nthen DB",
                "outbox-polling": "outbox +\npolling relay",
                "outbox-log-tailing": "outbox +\nlog-tailing relay"}
VARIANT_COLORS = {"db_then_publish": "#C44E52", "publish_then_db": "#DD8452",
                  "outbox-polling": "#4C72B0", "outbox-log-tailing": "#55A868"}


def _frame(rows: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))


def loss_chart(rows, ax=None, title: str = "Events lost and invented as faults grow"):
    """Lost (solid) and phantom (dashed) events against the fault rate, one colour per variant.

    ``rows``: :func:`~eda_lab.outbox.pipeline.loss_sweep` output.
    """
    frame = _frame(rows)
    ax = axes(ax)
    with style():
        flat = []
        for variant, part in frame.groupby("variant", sort=False):
            color = VARIANT_COLORS.get(variant, color_for(variant))
            ax.plot(part["rate"] * 100, part["lost"], "-o", color=color, markersize=4,
                    label=f"{variant}: lost")
            ax.plot(part["rate"] * 100, part["phantom"], "--s", color=color, markersize=4,
                    label=f"{variant}: phantom")
            flat += [f"{variant} {kind}" for kind in ("lost", "phantom") if not part[kind].any()]
        if flat:  # lines on top of each other at zero: say which, or they look missing
            ax.text(0.99, 0.04, "at 0 at every rate: " + ", ".join(flat), ha="right",
                    transform=ax.transAxes, fontsize=7, color="#555555")
        ax.set_xlabel("probability of each fault (%)")
        ax.set_ylabel(f"events, of {int(frame['orders'].iloc[0])} orders")
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", ncol=2)
    return ax


def variant_bars(rows, ax=None, title: str = "Lost and phantom events by variant"):
    """Side-by-side bars of lost and phantom events, one group per variant."""
    frame = _frame(rows)
    ax = axes(ax)
    with style():
        xs = range(len(frame))
        lost = ax.bar([x - 0.2 for x in xs], frame["lost"], width=0.4, color="#C44E52",
                      label="lost")
        phantom = ax.bar([x + 0.2 for x in xs], frame["phantom"], width=0.4, color="#DD8452",
                         label="phantom")
        for bars in (lost, phantom):  # a 0 is a result, not a missing bar
            ax.bar_label(bars, padding=2, fontsize=8)
        ax.margins(y=0.15)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xticks(list(xs), [SHORT_LABELS.get(v, v) for v in frame["variant"]])
        ax.set_ylabel("events")
        ax.set_title(title)
        ax.legend(loc="upper right")
    return ax


LAG_COLORS = {"outbox-polling": ["#4C72B0", "#C44E52", "#8172B3", "#DD8452"],
              "outbox-log-tailing": ["#55A868", "#937860", "#DA8BC3"]}


def lag_chart(rows, ax=None, title: str = "Relay lag: commit to publish"):
    """Mean (solid) and worst (dotted) lag against the poll interval, both axes on log scales
    (a tick at each interval measured), one colour per relay and batch size. A hollow marker
    is a lower bound: some events were still unpublished when the run stopped, and they count
    with the time they had waited.

    ``rows``: :func:`~eda_lab.outbox.pipeline.lag_sweep` output (of one or more relays).
    """
    frame = _frame(rows)
    if "variant" not in frame:
        frame["variant"] = "outbox-polling"
    if "censored" not in frame:
        frame["censored"] = False
    ax = axes(ax)
    with style():
        for variant, of_variant in frame.groupby("variant", sort=False):
            palette = LAG_COLORS.get(variant, [color_for(variant)])
            batches = sorted(of_variant["batch_size"].unique(), reverse=True)
            for rank, batch in enumerate(batches):
                part = of_variant[of_variant["batch_size"] == batch].sort_values("poll_interval_ms")
                color = palette[rank % len(palette)]
                label = f"{variant.removeprefix('outbox-')}, batch {batch}"
                same = bool((part["mean_lag_ms"] == part["max_lag_ms"]).all())
                ax.plot(part["poll_interval_ms"], part["mean_lag_ms"] / 1000, "-", color=color,
                        label=f"{label}: mean" + (" = worst" if same else ""))
                if not same:   # (a dotted line under the solid one would look missing)
                    ax.plot(part["poll_interval_ms"], part["max_lag_ms"] / 1000, ":",
                            color=color, label=f"{label}: worst")
                for censored, marker_face in ((False, color), (True, "white")):
                    shown = part[part["censored"] == censored]
                    ax.plot(shown["poll_interval_ms"], shown["mean_lag_ms"] / 1000, "o",
                            color=color, markerfacecolor=marker_face, markersize=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        intervals = sorted(frame["poll_interval_ms"].unique())
        ax.set_xticks(intervals, [f"{v:,g}" for v in intervals])
        ax.minorticks_off()
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.set_xlabel("poll interval (ms, log scale)")
        ax.set_ylabel("lag (s, log scale)")
        ax.set_title(title + ("  (hollow: at least, some still unpublished)"
                              if frame["censored"].any() else ""))
        ax.legend(loc="upper left", fontsize=8)
    return ax


def skip_chart(rows, ax=None, title: str = "The polling gap: rows never published"):
    """Share of rows each relay skipped against the number of overlapping writers (log scale,
    a tick at each count measured).

    Relays that skip nothing lie on top of each other at 0: each is drawn with its own marker
    (a large hollow one under a small filled one) and named in a note, so none looks missing.
    ``rows``: :func:`~eda_lab.outbox.polling_gap.skip_rates` output.
    """
    frame = _frame(rows)
    ax = axes(ax)
    with style():
        relays = [c for c in frame.columns if c not in ("writers", "schedules", "rows")]
        looks = [("-o", 5, None), ("--s", 9, "white"), (":^", 4, None)]
        for i, column in enumerate(relays):
            line, size, face = looks[i % 3]
            ax.plot(frame["writers"], frame[column] * 100, line, markersize=size,
                    markerfacecolor=face, markeredgewidth=1.2, clip_on=False, zorder=3 + i,
                    color=["#C44E52", "#4C72B0", "#55A868"][i % 3], label=column)
        flat = [c for c in relays if not frame[c].any()]
        if flat:
            ax.text(0.99, 0.04, "at 0 for every writer count: " + ", ".join(flat), ha="right",
                    transform=ax.transAxes, fontsize=7, color="#555555")
        ax.set_xscale("log", base=2)
        writers = sorted(frame["writers"].unique())
        ax.set_xticks(writers, [str(int(w)) for w in writers])
        ax.minorticks_off()
        ax.set_xlabel("writers whose transactions overlap (log scale)")
        ax.set_ylabel("rows never published (%)")
        if "schedules" in frame:
            title += f" ({int(frame['schedules'].iloc[0]):,} random schedules each)"
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left")
    return ax
