"""The trade-offs explorer, headless: move the controls, then read what the views show."""

from __future__ import annotations

import re

import pytest

from eda_lab.shop.lag import measure_agreement
from eda_lab.widgets.tradeoffs_explorer import (
    OUTAGES_MS,
    POLL_INTERVALS_MS,
    TradeoffsExplorer,
    TradeoffsModel,
    coupling_html,
    numbers_html,
)

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def explorer():
    return TradeoffsExplorer(TradeoffsModel(n_orders=120))


def p95_shown(widget) -> float:
    """The p95 of 'this setting', read from the numbers table the learner sees."""
    row = re.search(r"<td[^>]*>this setting</td>((?:<td[^>]*>[^<]*</td>)+)",
                    widget.numbers_view.value).group(1)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    return float(cells[3])   # orders, agreed, p50_ms, p95_ms


def test_the_widget_has_the_css_hooks_of_the_browser_test(explorer):
    assert "eda-tradeoffs-explorer" in explorer.root._dom_classes
    controls = [explorer.poll_slider, explorer.outage_slider, explorer.style_toggle]
    assert all("eda-control" in c._dom_classes for c in controls)
    assert all(any(k.startswith("eda-tradeoffs-explorer-") for k in c._dom_classes)
               for c in controls)
    views = [explorer.status_view, explorer.lag_view, explorer.numbers_view,
             explorer.coupling_view, explorer.styles_view]
    assert all("eda-view" in v._dom_classes for v in views)
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


def test_the_views_show_the_model_after_every_control(explorer):
    model = explorer.model
    for value in (500, 50, 100):
        before = bytes(explorer.lag_view.value)
        explorer.poll_slider.value = value
        assert model.poll_interval_ms == value
        assert f"relay polls every {value} ms" in explorer.status_view.value
        assert bytes(explorer.lag_view.value).startswith(PNG)
        assert bytes(explorer.lag_view.value) != before
        assert p95_shown(explorer) == model.agreement().summary()["p95_ms"]
    explorer.outage_slider.value = 2000
    assert "analytics down 2 s" in explorer.status_view.value
    assert p95_shown(explorer) > 1_000
    assert "same poll interval, no outage" in explorer.numbers_view.value
    explorer.outage_slider.value = 0
    assert p95_shown(explorer) < 200


def test_the_style_toggle_redraws_who_knows_whom_and_the_story(explorer):
    explorer.style_toggle.value = "orchestration"
    assert explorer.coupling_view.value.count('class="eda-diagram-edge"') == 4
    assert 'data-id="orchestrator"' in explorer.coupling_view.value
    assert "compensating: undo in this order: reserve_inventory, create_order" in (
        explorer.styles_view.value)
    explorer.style_toggle.value = "choreography"
    assert explorer.coupling_view.value.count('class="eda-diagram-edge"') == 6
    assert 'data-id="orchestrator"' not in explorer.coupling_view.value
    assert "PaymentDeclined from payment -&gt; runs ReleaseInventory" in (
        explorer.styles_view.value)
    assert "saga style: choreography" in explorer.status_view.value


def test_every_use_of_a_control_says_something_new_in_the_status_line(explorer):
    seen = set()
    for control, value in ((explorer.style_toggle, "orchestration"),
                           (explorer.poll_slider, 200), (explorer.outage_slider, 1000)):
        control.value = value
        seen.add(explorer.status_view.value)
    assert len(seen) == 3


def test_traffic_rows_compare_the_two_styles_on_the_same_order():
    rows = {(r["style"], r["scenario"]): r for r in TradeoffsModel().traffic_rows()}
    for scenario, status in (("all steps succeed", "completed"),
                             ("payment refused", "compensated")):
        orch, chor = rows["orchestration", scenario], rows["choreography", scenario]
        assert orch["status"] == chor["status"] == status
        assert orch["published"] == 10 and chor["published"] == 6
        assert chor["delivered"] > chor["published"]   # events fan out to every subscriber
        assert orch["local transactions"] == chor["local transactions"] == 5


def test_a_setting_is_run_once_and_the_same_setting_gives_the_same_numbers():
    model = TradeoffsModel(n_orders=50)
    first = model.agreement()
    assert model.agreement() is first
    assert first.rows == measure_agreement(50, poll_interval_ms=100).rows


@pytest.mark.parametrize(("call", "message"), [
    (lambda: TradeoffsModel(poll_interval_ms=70), "poll_interval_ms must be one of"),
    (lambda: TradeoffsModel(outage_ms=-1), "outage_ms must be one of"),
    (lambda: TradeoffsModel(style="both"), "style must be one of"),
    (lambda: TradeoffsModel(n_orders=0), "n_orders must be an integer"),
    (lambda: TradeoffsModel().saga("orchestration", "meteor"), "scenario must be one of"),
])
def test_bad_settings_are_refused_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_bad_value_reaching_the_model_is_shown_not_lost(explorer):
    explorer._changed(explorer.model.set_poll_interval, "poll-interval")({"new": 70})
    assert "error:" in explorer.status_view.value and "poll_interval_ms" in (
        explorer.status_view.value)
    explorer.poll_slider.value = POLL_INTERVALS_MS[0]
    assert "error:" not in explorer.status_view.value


def test_pure_views_draw_from_their_input():
    agreement = measure_agreement(30)
    text = numbers_html(agreement)
    assert "same poll interval" not in text and "Reading your own write" in text
    svg = coupling_html([])
    assert "<svg" in svg and "0 arrows" in svg
    assert OUTAGES_MS[0] == 0
