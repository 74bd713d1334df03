"""Charts: matplotlib functions that take data and an optional ``ax``, and return the Axes.

One style for the whole course (``STYLE``), one colour per service and per state, so a learner
recognises "payment" or "compensated" at a glance in every notebook. The functions draw from
plain data (trace frames, metric tables), never from a component's internals.
"""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

STYLE = {
    "figure.figsize": (8, 3.2),
    "figure.dpi": 100,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.frameon": False,
}

# One colour per participant of the running example, and per state.
COLORS = {
    "order": "#4C72B0", "payment": "#DD8452", "inventory": "#55A868", "shipping": "#8172B3",
    "analytics": "#937860", "broker": "#64B5CD", "relay": "#DA8BC3", "outbox": "#CCB974",
    "sync": "#C44E52", "event-driven": "#4C72B0",
}
STATE_COLORS = {
    "pending": "#DDDDDD", "running": "#FFE08A", "done": "#8FD19E", "completed": "#8FD19E",
    "failed": "#F4A3A3", "compensating": "#FFC58A", "compensated": "#A7C7E7",
    "needs_attention": "#E377C2", "skipped": "#EEEEEE",
}
_FALLBACK = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3"]


def color_for(name: str, index: int = 0) -> str:
    """The course colour of ``name`` (a service, group or state), or a stable fallback."""
    lowered = name.lower()
    for key, value in {**COLORS, **STATE_COLORS}.items():
        if key in lowered:
            return value
    return _FALLBACK[index % len(_FALLBACK)]


def axes(ax=None, figsize: tuple[float, float] | None = None):
    """``ax`` if given, else a new figure's axes drawn in the course style."""
    if ax is not None:
        return ax
    with plt.rc_context(STYLE):
        fig, new_ax = plt.subplots(figsize=figsize or STYLE["figure.figsize"])
    return new_ax


def style():
    """A context manager applying the course style: ``with charts.style(): ...``."""
    return plt.rc_context(STYLE)


def to_png(fig, dpi: int = 80) -> bytes:
    """Render a figure to PNG bytes (for ``widgets.Image``) and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def backlog_chart(samples, ax=None, title: str = "Backlog per consumer group"):
    """Backlog over time, one line per group. ``samples``: a DataFrame with columns
    ``time`` (ms), ``group`` and ``backlog`` (see :class:`eda_lab.broker_playground`)."""
    ax = axes(ax)
    with style():
        for i, (group, rows) in enumerate(samples.groupby("group", sort=True)):
            ax.step(rows["time"] / 1000, rows["backlog"], where="post", label=group,
                    color=color_for(group, i), linewidth=2)
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("messages not yet committed")
        ax.set_title(title)
        if len(samples):
            ax.legend(loc="upper left")
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return ax


def delivery_timeline(trace_frame, ax=None, title: str = "Deliveries over time"):
    """Per consumer group: when messages were delivered (fetched), redelivered, and committed.

    ``trace_frame`` is ``trace.frame()``; publishes are drawn on their own row. A gap between
    the publish row and a group's row is that group's lag. Deliveries at the same instant (a
    fetched batch) draw as one circle with their number above it.
    """
    ax = axes(ax)
    with style():
        frame = trace_frame
        publishes = frame[frame["kind"] == "publish"]
        publishes = publishes[~publishes["topic"].fillna("").str.endswith(".DLT")]
        consumed = frame[frame["kind"].isin(["deliver", "duplicate", "commit"])].copy()
        consumed["group"] = consumed["detail"].str.extract(r"group=(\S+)", expand=False)
        consumed["attempt"] = consumed["detail"].str.extract(
            r"attempt=(\d+)", expand=False).astype(float)
        rows = ["published"] + sorted(consumed["group"].dropna().unique())
        ypos = {name: i for i, name in enumerate(rows)}
        ax.scatter(publishes["time"] / 1000, [ypos["published"]] * len(publishes), marker="|",
                   s=150, color=COLORS["order"], label="published")
        delivered = consumed[consumed["kind"] != "commit"]
        first = delivered[delivered["attempt"] <= 1]
        again = delivered[delivered["attempt"] > 1]
        commits = consumed[consumed["kind"] == "commit"]
        ax.scatter(first["time"] / 1000, first["group"].map(ypos) + 0.15, s=22,
                   facecolors="none", edgecolors=COLORS["inventory"],
                   label="delivered (n: n at once)")
        # A fetched batch is delivered at one instant: its circles coincide, so count them.
        together = first.groupby(["time", "group"]).size()
        for (time, group), n in together[together > 1].items():
            ax.annotate(f"{n}", (time / 1000, ypos[group] + 0.15), xytext=(0, 4),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7,
                        color=COLORS["inventory"])
        ax.scatter(again["time"] / 1000, again["group"].map(ypos) + 0.15, s=36, marker="x",
                   color="#C44E52", label="redelivered")
        ax.scatter(commits["time"] / 1000, commits["group"].map(ypos) - 0.15, s=60,
                   marker="|", color="#333333", label="committed")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_xlabel("simulated time (s)")
        ax.set_title(title)
        ax.legend(loc="upper left", ncol=4, bbox_to_anchor=(0, -0.28))
        ax.grid(axis="y", alpha=0)
    return ax
