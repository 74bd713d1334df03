"""The sync-chain explorer, headless: move sliders, toggle the outage, read the PNG and table."""

from __future__ import annotations

import matplotlib
import pytest

from eda_lab.sync import load_services
from eda_lab.widgets.sync_explorer import CSS, ExplorerModel, SyncExplorer

matplotlib.use("Agg")

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def explorer():
    return SyncExplorer(duration_ms=10_000)


def table_row(explorer, wiring: str) -> dict:
    return next(row for row in explorer.model.rows() if row["wiring"] == wiring)


def test_it_draws_both_wirings_on_first_display(explorer):
    assert bytes(explorer.chart.value).startswith(PNG)
    assert "sync" in explorer.table.value and "event-driven" in explorer.table.value
    assert "no outage" in explorer.table.value
    assert table_row(explorer, "sync")["expected ms"] == "150"
    assert table_row(explorer, "event-driven")["expected ms"] == "20"
    assert table_row(explorer, "sync")["closed form (no outage, no waiting)"] == "99.60%"


def test_the_outage_toggle_breaks_the_sync_chain_but_not_the_twin(explorer):
    calm_png = explorer.chart.value
    calm_sync = explorer.model.sync_run.summary()["success_rate"]
    explorer.outage.value = True
    assert explorer.model.outages and explorer.model.outages[0].target == "inventory"
    assert "inventory slow in the shaded window" in explorer.table.value
    assert explorer.model.sync_run.summary()["success_rate"] < calm_sync - 0.1
    assert explorer.model.twin_run.summary()["success_rate"] == 1.0
    assert explorer.chart.value != calm_png


def test_outage_target_and_mode_choose_what_breaks(explorer):
    explorer.outage_target.value = "payment"
    explorer.outage_mode.value = "down"
    explorer.outage.value = True
    outage = explorer.model.outages[0]
    assert (outage.target, outage.mode) == ("payment", "down")
    failed = explorer.model.sync_run.failures()
    assert failed.get(("payment", "down"), 0) > 20
    explorer.outage.value = False
    assert explorer.model.outages == ()


def test_a_latency_slider_moves_the_sync_latency_only(explorer):
    explorer.latency["payment"].value = 200
    profile = explorer.model.services["payment"]
    assert profile.mean_ms == 200 and profile.sd_ms == pytest.approx(200 * 20 / 60)
    assert table_row(explorer, "sync")["expected ms"] == "290"
    assert table_row(explorer, "event-driven")["expected ms"] == "20"
    assert float(table_row(explorer, "sync")["mean ms (successes)"]) > 250


def test_a_failure_slider_moves_the_sync_availability_only(explorer):
    explorer.failure["shipping"].value = 0.2
    assert explorer.model.services["shipping"].failure_prob == 0.2
    assert table_row(explorer, "sync")["closed form (no outage, no waiting)"] == f"{0.999 ** 3 * 0.8:.2%}"
    assert table_row(explorer, "event-driven")["succeeded"] == "100.00%"


def test_the_load_slider_sets_the_request_rate(explorer):
    explorer.rate.value = 40
    assert explorer.model.rate_per_s == 40
    assert explorer.model.sync_run.summary()["requests"] > 300
    assert "40 requests/s" in explorer.table.value


def test_sliders_debounce_and_controls_carry_css_hooks(explorer):
    assert CSS in explorer.root._dom_classes
    for slider in [*explorer.latency.values(), *explorer.failure.values(), explorer.rate]:
        assert slider.continuous_update is False
        assert "eda-control" in slider._dom_classes
    assert f"{CSS}-latency-payment" in explorer.latency["payment"]._dom_classes
    assert "eda-view" in explorer.chart._dom_classes and "eda-view" in explorer.table._dom_classes
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_a_bad_value_is_shown_and_the_last_good_state_is_kept(explorer):
    before = explorer.model.services["payment"]
    explorer.failure["payment"].max = 2.0
    explorer.failure["payment"].value = 1.5
    assert "failure_prob must be a number in [0, 1]" in explorer.status.value
    assert explorer.model.services["payment"] == before


def test_the_model_refuses_a_bad_chain_and_outage():
    with pytest.raises(ValueError, match="at least one more"):
        ExplorerModel(chain=("order",))
    with pytest.raises(ValueError, match="unknown service 'billing'"):
        ExplorerModel(chain=("order", "billing"))
    model = ExplorerModel(load_services())
    with pytest.raises(ValueError, match="outage_mode must be 'down' or 'slow'"):
        model.set_outage("payment", "flaky")
    with pytest.raises(ValueError, match="outage_target"):
        model.set_outage("analytics", "down")


def test_the_table_counts_what_the_closed_form_leaves_out():
    from eda_lab.sync.explorer import ExplorerModel

    model = ExplorerModel(outage_on=True)
    model.run()
    rows = {row["wiring"]: row for row in model.rows()}
    # the slow inventory fills the pools above it: the gap to the closed form, counted
    assert rows["sync"]["refused by a full pool"] > 0
    assert rows["event-driven"]["refused by a full pool"] == 0
