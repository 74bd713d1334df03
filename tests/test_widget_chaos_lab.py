"""The Chaos Lab, headless: set the controls, click Run, read the views it drew."""

from __future__ import annotations

import re

import pytest

from eda_lab.shop.chaos import FAMILIES, run_chaos
from eda_lab.widgets import chaos_lab
from eda_lab.widgets.chaos_lab import ChaosLab, dashboard_html, details_html

PNG = b"\x89PNG"


def holds(dashboard: str) -> dict[str, bool]:
    """Each invariant card's name -> whether it is drawn as holding."""
    return {name: flag == "true" for name, flag in
            re.findall(r'data-name="([^"]+)" data-holds="(true|false)"', dashboard)}


def classes(widget) -> list[str]:
    return list(widget._dom_classes)


@pytest.fixture(scope="module")
def lab() -> ChaosLab:
    return ChaosLab(n_orders=100)


def test_the_lab_runs_once_and_shows_every_invariant_holding(lab):
    assert lab.report is not None and lab.report.placed == 100
    assert holds(lab.dashboard.value) == {line.name: True for line in lab.report.invariants()}
    assert len(holds(lab.dashboard.value)) == 6
    assert bytes(lab.charts.value).startswith(PNG)
    assert "shipping-notifier" in lab.details.value and "analytics" in lab.details.value
    assert "every invariant holds" in lab.status.value


def test_every_control_and_view_carries_the_browser_hooks(lab):
    assert "eda-chaos-lab" in classes(lab.root)
    controls = [*lab.rates.values(), lab.relay, lab.publishing, lab.inbox, lab.consumers,
                lab.orders, lab.seed, lab.run_button]
    for control in controls:
        assert "eda-control" in classes(control)
        assert any(c.startswith("eda-chaos-lab-") for c in classes(control))
    for view in (lab.status, lab.dashboard, lab.charts, lab.details):
        assert "eda-view" in classes(view)


def test_each_control_change_says_so_in_a_numbered_status_line():
    lab = ChaosLab(n_orders=100, run=False)
    lines = [lab.status.value]
    lab.rates["relay"].value = 0.02
    lab.relay.value = "log-tailing"
    lab.publishing.value = "publish_then_db"
    lab.consumers.value = ("analytics",)
    lab.seed.value = 3
    lines += [lab.status.value]
    assert "5." not in lines[0] and lines[-1].startswith("<b>6.</b>")
    assert "seed set to 3" in lab.status.value
    lab.consumers.value = ("shipping-notifier",)
    assert "consumers set to shipping-notifier: press Run" in lab.status.value
    assert lab.settings() == {
        "n_orders": 100, "rates": {**{f: lab.rates[f].value for f in FAMILIES}, "relay": 0.02},
        "seed": 3, "relay": "log-tailing", "outbox": False, "dual_write": "publish_then_db",
        "inbox": True, "consumers": ("shipping-notifier",)}
    assert lab.report is None and lab.dashboard.value == ""


def test_turning_the_inbox_off_turns_duplicate_effects_red():
    lab = ChaosLab(n_orders=300, run=False)
    lab.inbox.value = False
    lab.rates["relay"].value = 0.03
    lab.run_button.click()
    shown = holds(lab.dashboard.value)
    assert shown["duplicate effects"] is False
    assert shown["lost events"] and shown["phantom events"]
    assert "BROKEN: duplicate effects" in lab.status.value


def test_turning_the_outbox_off_turns_lost_events_red():
    lab = ChaosLab(n_orders=300, run=False)
    lab.publishing.value = "db_then_publish"
    lab.rates["order"].value = 0.03
    lab.run_button.click()
    shown = holds(lab.dashboard.value)
    assert shown["lost events"] is False and shown["unfinished sagas"] is False
    assert shown["duplicate effects"]


def test_a_long_run_shows_a_progress_bar_and_hides_it_after():
    lab = ChaosLab(n_orders=300, run=False)
    lab.progress_after_s = 0.0          # any run counts as long
    seen = []
    lab.progress.observe(lambda change: seen.append(change["new"]), "value")
    shown = []
    lab.progress.layout.observe(lambda change: shown.append(change["new"]), "display")
    lab.run_button.click()
    assert seen[-1] == 300 and seen == sorted(seen) and len(seen) > 2
    assert None in shown and lab.progress.layout.display == "none"


def test_a_short_run_never_shows_the_progress_bar():
    lab = ChaosLab(n_orders=100, run=False)
    shown = []
    lab.progress.layout.observe(lambda change: shown.append(change["new"]), "display")
    lab.run_button.click()
    assert None not in shown


def test_a_failing_run_reports_the_error_and_keeps_the_last_dashboard(monkeypatch):
    lab = ChaosLab(n_orders=100)
    before = lab.dashboard.value

    def broken(**settings):
        raise ValueError("the broker caught fire")

    monkeypatch.setattr(chaos_lab, "run_chaos", broken)
    lab.run_button.click()
    assert "error: ValueError: the broker caught fire" in lab.status.value
    assert lab.dashboard.value == before and lab.progress.layout.display == "none"


def test_the_same_seed_redraws_the_same_dashboard_and_another_seed_another():
    lab = ChaosLab(n_orders=100)
    first = lab.dashboard.value
    lab.run_button.click()
    assert _without_wall_clock(lab.dashboard.value) == _without_wall_clock(first)
    lab.seed.value = 7
    lab.run_button.click()
    assert _without_wall_clock(lab.dashboard.value) != _without_wall_clock(first)


def _without_wall_clock(text: str) -> str:
    return re.sub(r"<b>[\d,]+</b> per wall-clock second", "", text)


def test_the_drawing_functions_show_a_broken_invariant_in_red():
    report = run_chaos(100, {"relay": 0.05}, inbox=False, seed=1)
    page = dashboard_html(report)
    assert holds(page)["duplicate effects"] is False
    assert chaos_lab.RED in page and chaos_lab.GREEN in page
    assert f"<b>{report.placed}</b> orders placed" in page
    assert "inbox off" in details_html(report)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_orders": 50}, "n_orders must be one of"),
    ({"rates": {"relay": 0.2}}, "at most 0.05"),
    ({"rates": {"disk": 0.01}}, "unknown fault family"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ChaosLab(run=False, **kwargs)
