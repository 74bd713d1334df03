"""Chaos runs: with every safeguard on, no random fault plan breaks an invariant; with one
off, the checker finds exactly the violation it lets through."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eda_lab.faults import fault_points
from eda_lab.shop.chaos import (
    DEFAULT_RATES,
    FAMILIES,
    chaos_plan,
    check_rates,
    family_of,
    run_chaos,
)
from eda_lab.shop.charts import chaos_figure, lag_chart, throughput_chart
from eda_lab.shop.shop import CONSUMERS

# Rates up to 3% per visit (the saga family's points are visited most: up to 0.5%).
rates_strategy = st.fixed_dictionaries({
    family: st.sampled_from([0.0, 0.003, 0.01, 0.03]) if family != "saga"
    else st.sampled_from([0.0, 0.001, 0.005]) for family in FAMILIES})
FAST = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(rates=rates_strategy, seed=st.integers(0, 10_000),
       relay=st.sampled_from(["polling", "log-tailing"]))
def test_with_every_safeguard_on_no_fault_plan_breaks_an_invariant(rates, seed, relay):
    report = run_chaos(40, rates, seed=seed, relay=relay)
    assert report.settled
    assert [line for line in report.invariants() if not line.holds] == []
    assert report.committed == sum(report.saga_outcomes.values())


@FAST
@given(rates=rates_strategy, seed=st.integers(0, 10_000))
def test_without_the_inbox_the_checker_counts_every_duplicate_delivery_as_an_effect(rates,
                                                                                      seed):
    report = run_chaos(40, rates, seed=seed, inbox=False)
    for consumer in report.consistency.values():
        assert consumer.duplicate_effects == consumer.duplicate_deliveries
    assert report.ok == (report.duplicate_deliveries == 0)
    assert (report.lost, report.phantom, len(report.unfinished)) == (0, 0, 0)


@FAST
@given(rates=rates_strategy, seed=st.integers(0, 10_000))
def test_without_the_outbox_every_zombie_order_is_found_lost(rates, seed):
    report = run_chaos(40, rates, seed=seed, outbox=False)
    zombies = [order for order, seen in report.failed_orders
               if seen in ("crash at order.after_commit", "BrokerUnavailable")]
    assert report.lost >= len(zombies)
    assert set(zombies) <= set(report.unfinished)   # no saga ever heard of them
    if zombies:
        assert not report.ok


@FAST
@given(rates=rates_strategy, seed=st.integers(0, 10_000))
def test_publishing_before_the_commit_every_ghost_order_is_found_phantom(rates, seed):
    report = run_chaos(40, rates, seed=seed, outbox=False, dual_write="publish_then_db")
    ghosts = [order for order, seen in report.failed_orders
              if seen in ("crash at order.after_publish", "crash at order.before_commit")]
    assert report.phantom == len(ghosts)
    assert not set(ghosts) & set(report.unfinished)   # their sagas were refused: compensated


def test_a_big_run_settles_and_every_invariant_holds():
    report = run_chaos(2_000, DEFAULT_RATES, seed=1)
    assert report.settled and report.ok
    assert report.saga_outcomes["compensated"] > 0 and report.saga_outcomes["completed"] > 0
    assert report.committed > 1_950
    assert 50 < report.orders_per_simulated_s <= 110
    assert sum(report.faults_by_family().values()) == sum(report.faults_fired.values()) > 100


def test_the_same_settings_give_the_same_counts():
    first, second = (run_chaos(200, DEFAULT_RATES, seed=4) for _ in range(2))
    assert first.counts() == second.counts()
    assert first.lags_ms == second.lags_ms
    assert run_chaos(200, DEFAULT_RATES, seed=5).counts() != first.counts()


def test_progress_is_reported_until_done():
    calls = []
    run_chaos(300, {}, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (300, 300)
    assert all(total == 300 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) > 3


def test_the_plan_covers_every_fault_point_of_the_families_at_their_rate():
    plan = chaos_plan({"relay": 0.05, "saga": 0.01})
    assert sorted(plan.points) == fault_points("relay.") + fault_points("saga.")
    every = chaos_plan(dict.fromkeys(FAMILIES, 0.5))
    assert sorted(every.points) == sorted(p for p in fault_points() if family_of(p) in FAMILIES)
    assert not chaos_plan({}).points


@pytest.mark.parametrize(("rates", "error", "message"), [
    ({"network": 0.1}, ValueError, "unknown fault family 'network'"),
    ({"relay": 1.5}, ValueError, r"rates\['relay'\] must be a probability"),
    ({"relay": True}, ValueError, "must be a probability"),
    ([0.1], TypeError, "rates must be a dict"),
])
def test_bad_rates_are_refused_naming_the_family(rates, error, message):
    with pytest.raises(error, match=message):
        check_rates(rates)
    with pytest.raises(error, match=message):
        run_chaos(5, rates)


def test_bad_run_arguments_are_refused():
    with pytest.raises(ValueError, match="n_orders must be an integer"):
        run_chaos(-3)
    with pytest.raises(TypeError, match="progress must be a callable"):
        run_chaos(3, progress="bar")
    with pytest.raises(ValueError, match="relay must be one of"):
        run_chaos(3, relay="kafka")


def test_a_storm_too_big_to_wait_for_is_refused_naming_the_limit():
    with pytest.raises(ValueError, match="n_orders must be an integer >= 0 and <= 10000"):
        run_chaos(10_001)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_family_firing_on_every_visit_ends_and_the_shop_recovers_after_the_storm(family):
    # consumers that crash on every visit used to rejoin at once and loop for ever with the
    # clock standing still; the saga's relays used to keep the storm's plan after it passed
    report = run_chaos(30, {family: 1.0}, seed=1)
    assert report.settled and report.crash_loop is None
    assert report.ok, [line for line in report.invariants() if not line.holds]


def test_the_storm_passes_for_the_sagas_relays_too():
    from eda_lab.shop.shop import Shop

    shop = Shop(seed=1, faults=chaos_plan({"relay": 0.5}, seed=1), trace=False)
    shop.place_orders(10)
    storm = shop.calm()
    assert all(relay.faults is shop.faults is not storm for relay in shop.sagas.relays)
    fired = len(storm.fired)
    assert shop.settle() and len(storm.fired) == fired


def test_each_relay_reports_what_it_published_and_how_long_its_crashes_kept_it_down():
    from eda_lab.outbox.write_path import SHOP_TIMINGS

    storm = {"relay": 0.05}
    by_recovery = {recovery: run_chaos(60, storm, seed=3, recovery=recovery).relays_frame()
                   for recovery in ("deadlines", "resend-all")}
    for frame in by_recovery.values():
        assert list(frame.index) == ["relay", "orchestrator-relay", "order-relay",
                                     "inventory-relay", "payment-relay", "shipping-relay"]
        # every crash kept its relay down for the supervisor's restart time, no more
        assert (frame["down_ms"] == frame["crashes"] * SHOP_TIMINGS.restart_after_ms).all()
        assert frame["crashes"].sum() > 0
    # the deadlines orchestrator sends every command through its relay; resend-all publishes
    # them itself, so its outbox relay carries nothing and never crashes
    deadlines, resend_all = (by_recovery[r].loc["orchestrator-relay"]
                             for r in ("deadlines", "resend-all"))
    assert deadlines["published"] >= 5 * 60 and deadlines["crashes"] > 0
    assert resend_all["published"] == resend_all["crashes"] == 0


def test_counts_hold_no_wall_clock_time_and_name_every_invariant():
    report = run_chaos(100, {}, seed=2)
    counts = report.counts()
    for line in report.invariants():
        assert counts[line.name.replace(" ", "_")] == line.value == 0
    assert "wall" not in " ".join(counts)
    assert report.orders_per_wall_s > 0
    frame = report.consumers_frame()
    assert list(frame.index) == list(CONSUMERS)
    assert set(frame["lost"]) == {0}


def test_charts_draw_the_run():
    report = run_chaos(150, DEFAULT_RATES, seed=3)
    ax = throughput_chart(report)
    assert sum(patch.get_height() for patch in ax.patches if patch.get_width() < 1) \
        == len(report.saga_end_ms)
    lag_ax = lag_chart(report)
    assert any("p50" in text.get_text() for text in lag_ax.get_legend().get_texts())
    fig = chaos_figure(report)
    assert len(fig.axes) == 2
    assert "Sagas finished per simulated second" in ax.get_title()


def test_the_baseline_is_drawn_beside_the_storm():
    storm, calm = run_chaos(60, DEFAULT_RATES, seed=3), run_chaos(60, {}, seed=3)
    ax = throughput_chart(storm, baseline=calm)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "the same orders without faults" in labels
    assert sum(ax.lines[-1].get_ydata()[1:]) == len(calm.saga_end_ms)
    lag_ax = lag_chart(storm, baseline=calm)
    labels = " ".join(t.get_text() for t in lag_ax.get_legend().get_texts())
    assert "without faults p50" in labels and "storm p99" in labels
    assert all(float(t).is_integer() for t in lag_ax.get_yticks())


def test_the_verdict_is_one_sentence_and_says_what_happened():
    assert run_chaos(0).verdict() == "No order was placed, so there was nothing to judge."
    assert run_chaos(5, {"order": 1.0}).verdict().startswith("None of the 5 orders was committed")
    ok = run_chaos(20, seed=1)
    assert ok.verdict().startswith("All six invariants hold after 20 orders")
    broken = run_chaos(50, seed=2, outbox=False)
    assert broken.verdict().startswith("2 of the six invariants broke")
    assert "lost events (1)" in broken.verdict()
    for report in (ok, broken):
        assert report.verdict().endswith(".")
    times = ok.timings()
    assert times["last saga ended (s)"] == round(ok.saga_end_ms[-1] / 1000, 2)
    assert run_chaos(0).timings()["lag p50 (s)"] is None
