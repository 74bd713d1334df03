"""Charts of notebook 05: the messages of a saga over time, and its steps as coloured boxes.

Both draw from plain data (the trace as a table, step states from the saga log), in the
course style, and return the Axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from matplotlib.patches import FancyBboxPatch

from ..charts import COLORS, STATE_COLORS, axes, style

LANE_ORDER = ("orchestrator", "order", "inventory", "payment", "shipping")
GAP_MS = 100.0   # a gap between two rows at least this long is labelled with its length
_CRASH_COLOR = "#C44E52"


def _lanes(frame) -> list[str]:
    """The services in the story: who sent, handled, crashed or restarted (not the broker's
    own bookkeeping, such as consumer groups rebalancing)."""
    story = frame[frame["kind"].isin(["publish", "handle", "ignore", "crash", "restart",
                                      "saga", "lost"])]
    seen = set(story["actor"]) | {t.split(".")[0] for t in story["topic"].dropna()}
    return [lane for lane in LANE_ORDER if lane in seen or lane == "orchestrator"] + sorted(
        seen - set(LANE_ORDER) - {"broker"})


def message_arrows(frame) -> list[dict]:
    """One arrow per message sent between the orchestrator and a participant.

    From the trace table (``trace.frame()``): where (lane) and when it was sent, where and when
    it was first delivered (``None`` if never), and what kind it was (command, compensation,
    reply that succeeded or failed, lost).
    """
    outcomes = {}
    for row in frame[frame["kind"] == "handle"].itertuples():
        outcomes[f"{row.message_id}/reply"] = row.detail.split(":")[0]
    delivered = {}
    for row in frame[frame["kind"].isin(["deliver", "duplicate"])].itertuples():
        delivered.setdefault((row.message_id, row.topic), row.time)
    arrows = []
    for row in frame[frame["kind"].isin(["publish", "lost"])].itertuples():
        if not isinstance(row.topic, str) or "." not in row.topic:
            continue
        service, _, channel = row.topic.partition(".")
        if channel not in ("commands", "replies"):
            continue
        sender, receiver = (("orchestrator", service) if channel == "commands"
                            else (service, "orchestrator"))
        if channel == "commands":
            kind = "compensation" if ":undo:" in str(row.message_id) else "command"
        else:
            kind = "reply_" + outcomes.get(row.message_id, "succeeded")
        lost = row.kind == "lost"
        arrows.append({"seq": row.Index, "time": row.time, "sender": sender, "receiver": receiver,
                       "type": row.message_type, "kind": "lost" if lost else kind,
                       "arrived": None if lost else delivered.get((row.message_id, row.topic))})
    return arrows


_ARROW_COLORS = {"command": COLORS["order"], "compensation": "#E08A2C",
                 "reply_succeeded": "#55A868", "reply_failed": _CRASH_COLOR, "lost": "#999999"}
_MARKS = {"crash": ("X", _CRASH_COLOR), "restart": ("o", _CRASH_COLOR),
          "timeout": ("v", "#8172B3"), "duplicate": ("s", "#999999")}


def sequence_rows(frame) -> list[dict]:
    """The saga's story in order, one row per message or mark (crash, restart, timeout,
    duplicate): what :func:`saga_timeline` draws, as plain data."""
    rows = [{**a, "mark": None} for a in message_arrows(frame)]
    for row in frame[frame["kind"].isin(["crash", "restart", "ignore", "saga"])].itertuples():
        if row.kind == "saga":
            if "timed_out" not in row.detail:
                continue
            mark, text = "timeout", row.detail.split(":")[0].replace("_", " ")
        elif row.kind == "ignore":
            mark = "duplicate"
            text = (f"ignored {row.message_type}" if row.actor == "orchestrator" else
                    f"duplicate {row.message_type}: the stored reply again")
        elif row.kind == "crash":
            mark, text = "crash", f"crash: {row.detail}"
        else:
            mark, text = "restart", "restart"
        rows.append({"seq": row.Index, "time": row.time, "sender": row.actor, "receiver": row.actor,
                     "type": text, "kind": mark, "arrived": row.time, "mark": mark})
    rows.sort(key=lambda r: (r["time"], r["seq"]))  # the trace's own order
    return rows


def saga_timeline(frame, ax=None, title: str = "Messages of the saga", last: int = 40):
    """A sequence diagram: one column per service, one row per message, time going down.

    Rows are in the order things happened, not to scale (a 1 s timeout takes one row, like a
    10 ms hop); the simulated time of each row is on the left, and a dotted line between two
    rows says how much time passed where it is at least ``GAP_MS``. Crashes, restarts, timeouts
    and ignored duplicates are marked in the column of the service they happened to.
    ``frame`` is ``trace.frame()``; only the ``last`` rows are drawn.
    """
    rows = sequence_rows(frame)[-last:]
    lanes = _lanes(frame)
    ax = axes(ax, figsize=(9, 1.1 + 0.26 * max(len(rows), 3)))
    with style():
        x = {lane: i for i, lane in enumerate(lanes)}
        for lane, i in x.items():
            ax.axvline(i, color=COLORS.get(lane, "#888888"), alpha=0.35, linewidth=2, zorder=0)
        for n, row in enumerate(rows):
            yy = -n
            gap = row["time"] - rows[n - 1]["time"] if n else 0.0
            if gap >= GAP_MS:   # the rows are not to scale: say how long this gap is
                ax.axhline(yy + 0.5, color="#999999", linestyle=":", linewidth=0.8, zorder=0)
                ax.text(-0.45, yy + 0.5, f"{gap:,.0f} ms pass", fontsize=6, color="#777777",
                        ha="right", va="center", style="italic",
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3})
            if row["sender"] not in x:
                continue
            if row["mark"] is not None:
                marker, color = _MARKS[row["mark"]]
                ax.plot([x[row["sender"]]], [yy], marker=marker, color=color, markersize=9,
                        markerfacecolor="white" if row["mark"] == "restart" else color,
                        linestyle="none")
                ax.text(x[row["sender"]] + 0.08, yy, row["type"], fontsize=7, color=color,
                        va="center")
            elif row["receiver"] in x:
                x0, x1 = x[row["sender"]], x[row["receiver"]]
                if row["kind"] == "lost":
                    x1 = (x0 + x1) / 2
                color = _ARROW_COLORS.get(row["kind"], "#555555")
                ax.annotate("", xy=(x1, yy), xytext=(x0, yy),
                            arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.5,
                                        "linestyle": "--" if row["kind"] == "lost" else "-"})
                if row["kind"] == "lost":
                    ax.plot([x1], [yy], marker="x", color=color, markersize=8)
                ax.text((x0 + x1) / 2, yy + 0.12, row["type"], fontsize=7, color=color,
                        ha="center", va="bottom")
            ax.text(-0.45, yy, f"{row['time']:g} ms", fontsize=7, color="#666666",
                    ha="right", va="center")
        ax.set_xticks(range(len(lanes)), lanes)
        ax.xaxis.tick_top()
        ax.set_xlim(-0.9, len(lanes) - 0.4)
        ax.set_ylim(-max(len(rows), 1) + 0.4, 0.8)
        ax.set_yticks([])
        ax.set_ylabel("time, in order (not to scale)", fontsize=8, color="#666666",
                      labelpad=34)
        ax.grid(False)
        for side in ("left", "bottom", "top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(length=0)
        ax.set_title(title, pad=16)
        handles = [ax.plot([], [], color=c, lw=2, label=n)[0] for n, c in (
            ("command", _ARROW_COLORS["command"]),
            ("compensation", _ARROW_COLORS["compensation"]),
            ("reply: done", _ARROW_COLORS["reply_succeeded"]),
            ("reply: refused", _ARROW_COLORS["reply_failed"]),
            ("lost", _ARROW_COLORS["lost"]))]
        handles += [ax.plot([], [], marker=m, color=c, linestyle="none", label=n,
                            markerfacecolor="white" if n == "restart" else c)[0]
                    for n, (m, c) in _MARKS.items()]   # drawn as on the chart: restart hollow
        ax.legend(handles=handles, loc="upper left", ncol=9, bbox_to_anchor=(-0.02, 0.0),
                  handlelength=1.2, columnspacing=0.8)
    return ax


def saga_boxes(rows: Mapping[str, Mapping[str, str]], ax=None,
               title: str = "Steps by state", steps: Sequence[str] | None = None):
    """Rows of coloured step boxes: ``{row label: {step: state}}``, state colours of the course.

    One row is the stepper's static picture; several rows compare runs (a failure at each step).
    """
    rows = dict(rows)
    steps = list(steps) if steps is not None else list(next(iter(rows.values()), {}))
    ax = axes(ax, figsize=(9, 0.7 + 0.55 * len(rows)))
    with style():
        for r, states in enumerate(rows.values()):
            yy = len(rows) - 1 - r
            for c, step in enumerate(steps):
                state = states.get(step, "pending")
                ax.add_patch(FancyBboxPatch((c + 0.05, yy + 0.1), 0.9, 0.8,
                                            boxstyle="round,pad=0.02",
                                            facecolor=STATE_COLORS.get(state, "#FFFFFF"),
                                            edgecolor="#555555", linewidth=0.8))
                ax.text(c + 0.5, yy + 0.5, state.replace("_", " "), ha="center",
                        va="center", fontsize=7)
        ax.set_xlim(0, len(steps))
        ax.set_ylim(0, len(rows))
        ax.set_xticks([c + 0.5 for c in range(len(steps))], steps)
        ax.xaxis.tick_top()
        ax.set_yticks([len(rows) - 1 - r + 0.5 for r in range(len(rows))], list(rows))
        ax.grid(False)
        for side in ("left", "bottom", "top", "right"):
            ax.spines[side].set_visible(False)
        ax.tick_params(length=0)
        ax.set_title(title, pad=18)
    return ax
