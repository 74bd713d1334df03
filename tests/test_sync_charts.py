"""The charts of notebook 01 draw the data they are given, and shade the outages."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from eda_lab import Outage, SyncChain
from eda_lab.sync import EventDrivenTwin, load_services
from eda_lab.sync.charts import (
    cascade_figure,
    comparison_figure,
    failures_chart,
    figure_png,
    pool_chart,
    success_rate_chart,
)

matplotlib.use("Agg")

OUTAGE = Outage("inventory", 3_000, 6_000, "slow", 20)
LOAD = {"rate_per_s": 30, "duration_ms": 10_000, "outages": [OUTAGE], "seed": 1}


@pytest.fixture(scope="module")
def runs():
    services = load_services()
    chain = ("order", "payment", "inventory", "shipping")
    return (SyncChain(services, chain).run(**LOAD),
            EventDrivenTwin(services, "order", chain[1:]).run(**LOAD))


def test_success_rate_lines_are_the_windows_success_rates(runs):
    sync, twin = runs
    windows = {"sync": sync.windows(), "event-driven": twin.windows()}
    ax = success_rate_chart(windows, [OUTAGE])
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"sync", "event-driven"}
    np.testing.assert_allclose(lines["sync"].get_ydata(), windows["sync"]["success_rate"])
    assert len(ax.patches) == 1, "one shaded outage window"
    assert ax.patches[0].get_x() == pytest.approx(3.0)
    matplotlib.pyplot.close(ax.figure)


def test_failure_bars_add_up_to_the_failed_requests(runs):
    sync, _ = runs
    ax = failures_chart(sync.requests, 1_000, [OUTAGE])
    bars = [patch for patch in ax.patches if patch.get_width() == 1.0]
    assert sum(bar.get_height() for bar in bars) == (~sync.requests["ok"]).sum()
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert "payment" in legend, "the cascade shows up as failures at payment"
    matplotlib.pyplot.close(ax.figure)


def test_pool_chart_draws_one_line_per_service_within_0_and_1(runs):
    sync, _ = runs
    ax = pool_chart(sync.pools, [OUTAGE])
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["order", "payment", "inventory", "shipping"]
    for line in ax.get_lines():
        assert 0 <= min(line.get_ydata()) and max(line.get_ydata()) <= 1
    matplotlib.pyplot.close(ax.figure)


def test_the_figures_have_three_panels_and_render_to_png(runs):
    sync, twin = runs
    for fig in (cascade_figure(sync), comparison_figure(sync, twin)):
        assert len(fig.axes) == 3
        assert all(ax.patches for ax in fig.axes), "every panel shades the outage"
        assert figure_png(fig).startswith(b"\x89PNG")
