"""The dual-write lab, headless: move sliders, click, read the counts and the chart."""

from __future__ import annotations

import re

import pytest

from eda_lab.widgets.dual_write_lab import DualWriteLab


def shown(lab: DualWriteLab, label: str) -> int:
    match = re.search(rf"{label}</td><td[^>]*>(\d+)</td>", lab.counts.value)
    assert match, label
    return int(match.group(1))


def test_controls_and_views_carry_their_css_hooks():
    lab = DualWriteLab(orders=100)
    assert "eda-dual-write-lab" in lab.root._dom_classes
    controls = [lab.variant, lab.retries, lab.orders, lab.run_button, *lab.sliders.values()]
    assert all("eda-control" in c._dom_classes for c in controls)
    assert "eda-view" in lab.counts._dom_classes and "eda-view" in lab.chart._dom_classes
    assert bytes(lab.chart.value).startswith(b"\x89PNG")


def test_db_then_publish_loses_and_publish_then_db_invents_and_the_table_agrees():
    lab = DualWriteLab("db_then_publish", orders=200)
    assert shown(lab, "lost: zombie records") == lab.model.report().lost > 0
    assert shown(lab, "phantom: ghost messages") == 0
    lab.variant.value = "publish_then_db"
    assert shown(lab, "phantom: ghost messages") == lab.model.report().phantom > 0
    assert lab.model.variant == "publish_then_db"


def test_the_outbox_row_of_the_lab_is_clean_under_the_same_faults():
    lab = DualWriteLab(orders=200)
    lab.broker_refuses.value = 0.4
    outbox = next(r for r in lab.rows if r["variant"] == "outbox-polling")
    assert outbox["lost"] == outbox["phantom"] == 0 and outbox["committed"] > 0


def test_faults_off_means_nothing_lost_and_more_faults_lose_more():
    lab = DualWriteLab(orders=200)
    for slider in lab.sliders.values():
        slider.value = 0.0
    assert all(r["lost"] == r["phantom"] == 0 for r in lab.rows)
    lab.crash_after_commit.value = 0.05
    few = shown(lab, "lost: zombie records")
    lab.crash_after_commit.value = 0.3
    assert shown(lab, "lost: zombie records") > few > 0


def test_retries_help_with_a_refusing_broker_but_not_with_crashes():
    lab = DualWriteLab(orders=300)
    lab.commit_fails.value = 0.0
    lab.crash_after_commit.value = 0.0
    lab.broker_refuses.value = 0.3
    without = shown(lab, "lost: zombie records")
    lab.retries.value = 5
    assert shown(lab, "lost: zombie records") < without
    lab.crash_after_commit.value = 0.1
    assert shown(lab, "lost: zombie records") > 0


def test_the_same_settings_give_the_same_counts():
    first, second = DualWriteLab(orders=150), DualWriteLab(orders=150)
    assert first.rows == second.rows
    first.run_button.click()
    second.run_button.click()
    assert first.rows == second.rows  # "run again" moves both to the next seed
    first.orders.value = second.orders.value = 200
    assert first.rows == second.rows


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="variant"):
        DualWriteLab("outbox-log-tailing")
    with pytest.raises(ValueError, match="orders"):
        DualWriteLab(orders=10**6)


def test_run_again_draws_a_new_sample_at_the_same_rates():
    lab = DualWriteLab(orders=100)
    first_counts, first_chart = lab.counts.value, bytes(lab.chart.value)
    lab.run_button.click()
    assert lab.seed == 1
    assert lab.counts.value != first_counts and bytes(lab.chart.value) != first_chart
