"""Notebook 04's charts say what they plot: every series visible, one colour each, ticks at the
values measured."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt

from eda_lab.outbox import lag_chart, skip_chart

matplotlib.use("Agg")

RATES = [{"writers": w, "schedules": 50, "rows": 50 * w, "high-water mark": share, "flag": 0.0,
          "commit-order log": 0.0} for w, share in [(1, 0.0), (2, 0.03), (4, 0.09), (16, 0.24)]]


def lag_row(variant, batch, poll, mean, worst, censored=False):
    return {"variant": variant, "batch_size": batch, "poll_interval_ms": poll, "published": 200,
            "unpublished": 0, "censored": censored, "mean_lag_ms": mean, "max_lag_ms": worst}


def test_relays_that_skip_nothing_are_all_visible_and_named():
    ax = skip_chart(RATES)
    lines = {line.get_label(): line for line in ax.lines}
    flag, log = lines["flag"], lines["commit-order log"]
    assert list(flag.get_ydata()) == list(log.get_ydata()) == [0.0] * 4   # on top of each other
    assert flag.get_markersize() > log.get_markersize() and flag.get_markerfacecolor() == "white"
    assert not flag.get_clip_on()   # markers at 0 are not cut in half by the axis
    assert any("at 0 for every writer count: flag, commit-order log" in t.get_text()
               for t in ax.texts)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "16"]
    assert "50 random schedules each" in ax.get_title()
    plt.close(ax.figure)


def test_each_relay_and_batch_has_its_own_colour_and_a_tick_per_interval():
    rows = [lag_row("outbox-polling", batch, poll, poll / 2 * (10 if batch == 5 else 1), poll)
            for batch in (5, 50) for poll in (50, 500)]
    rows += [lag_row("outbox-log-tailing", 50, poll, 5.0, 5.0) for poll in (50, 500)]
    ax = lag_chart(rows)
    solid = [line for line in ax.lines if line.get_linestyle() == "-"]
    assert len({line.get_color() for line in solid}) == 3
    labels = [line.get_label() for line in solid]
    assert "log-tailing, batch 50: mean = worst" in labels   # one line, said to be both
    assert [t.get_text() for t in ax.get_xticklabels()] == ["50", "500"]
    assert ax.get_yscale() == "log" and "log scale" in ax.get_ylabel()
    plt.close(ax.figure)
