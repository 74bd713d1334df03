"""The synchronous call chain: profiles, bad input, the closed forms, the cascade, determinism."""

from __future__ import annotations

import math
import statistics
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eda_lab import Outage, SyncChain
from eda_lab.sync import ServiceProfile, chain_availability, chain_latency_ms, load_services
from eda_lab.sync.chain import (
    DOWN,
    ERROR,
    MAX_REQUESTS,
    POOL_EXHAUSTED,
    REASONS,
    SERVICES_CSV,
    TIMEOUT,
)

FOUR = ("order", "payment", "inventory", "shipping")

# Closed-form tolerances. 10,000 requests at 5/s keep every pool below a third full (no
# contention). Mean latency: the standard error of the mean is under 0.5 ms on ~150 ms, so
# 2% is more than 6 standard errors. Availability: within 4 standard errors of a binomial
# proportion (about 1 point for 0.98 ** 4 = 0.92, 2 points for 0.8 ** 4 = 0.41): the product
# is told apart from a wrong formula such as 1 - the sum of failure rates (0.2 for four at 0.8).
N_LOW_LOAD = 10_000
LATENCY_TOLERANCE = 0.02
AVAILABILITY_TOLERANCE = 4  # standard errors


@pytest.fixture(scope="module")
def services():
    return load_services()


def low_load(chain: SyncChain, n: int = N_LOW_LOAD, seed: int = 7):
    return chain.run(rate_per_s=5.0, duration_ms=n / 5.0 * 1000, seed=seed)


# -- profiles and the data file ------------------------------------------------------------------
def test_services_csv_holds_the_shop(services):
    assert list(services)[:4] == list(FOUR)
    assert {"notifier", "analytics"} <= set(services)
    order = services["order"]
    assert isinstance(order.workers, int) and order.mean_ms == 20 and order.failure_prob == 0.001
    assert all(p.does for p in services.values()), "every service says what it does"


def test_load_services_names_the_bad_line_and_field(tmp_path):
    path = tmp_path / "services.csv"
    header = SERVICES_CSV.read_text().splitlines()[0]
    path.write_text(header + "\norder,lognormal,20,8,0.001,2000,0,twelve,takes orders\n")
    with pytest.raises(ValueError, match=r"line 2: workers must be int, got 'twelve'"):
        load_services(path)
    path.write_text("service,mean_ms\norder,20\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_services(path)
    path.write_text(header + "\norder,lognormal,-20,8,0.001,2000,0,12,x\n")
    with pytest.raises(ValueError, match=r"service 'order': mean_ms must be a number >= 0, got -20"):
        load_services(path)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("mean_ms", -5, "mean_ms must be a number >= 0"),
    ("sd_ms", -1, "sd_ms must be a number >= 0"),
    ("mean_ms", math.nan, "mean_ms must be a number >= 0"),
    ("failure_prob", 1.5, r"failure_prob must be a number in \[0, 1\]"),
    ("failure_prob", -0.1, r"failure_prob must be a number in \[0, 1\]"),
    ("timeout_ms", 0, "timeout_ms must be a number > 0"),
    ("workers", 0, "workers must be an integer >= 1"),
    ("workers", 2.5, "workers must be an integer >= 1"),
    ("retries", -1, "retries must be an integer >= 0"),
    ("latency", "normal", "latency must be one of"),
])
def test_bad_profile_values_are_refused_with_the_argument_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        ServiceProfile("payment", **{"mean_ms": 50, field: value})


def test_a_latency_that_is_not_a_number_is_a_type_error():
    with pytest.raises(TypeError, match="mean_ms must be a number"):
        ServiceProfile("payment", mean_ms="fast")


def test_changed_checks_the_new_values_and_keeps_the_old_profile(services):
    with pytest.raises(ValueError, match="failure_prob"):
        services["payment"].changed(failure_prob=2)
    assert services["payment"].failure_prob == 0.001


@pytest.mark.parametrize("latency", ["lognormal", "exponential", "constant"])
def test_sampled_work_times_have_the_profile_mean(latency):
    profile = ServiceProfile("payment", mean_ms=60, sd_ms=20, latency=latency)
    draw = profile.sampler(Random(3))
    samples = [draw() for _ in range(50_000)]
    assert min(samples) >= 0
    assert statistics.fmean(samples) == pytest.approx(60, rel=0.02)
    if latency == "lognormal":
        assert statistics.stdev(samples) == pytest.approx(20, rel=0.05)


# -- bad chains and loads ------------------------------------------------------------------------
def test_an_empty_chain_is_refused(services):
    with pytest.raises(ValueError, match="chain must name at least one service"):
        SyncChain(services, [])


def test_unknown_and_repeated_services_are_refused(services):
    with pytest.raises(ValueError, match="unknown service 'billing'; known: order, payment"):
        SyncChain(services, ["order", "billing"])
    with pytest.raises(ValueError, match="only once"):
        SyncChain(services, ["order", "payment", "order"])


def test_calls_must_form_a_tree_from_the_entry(services):
    with pytest.raises(ValueError, match="nobody calls them"):
        SyncChain(services, ["order", "payment", "inventory"], calls={"order": ["payment"]})
    with pytest.raises(ValueError, match="called twice"):
        SyncChain(services, ["order", "payment"], calls={"order": ["payment"],
                                                         "payment": ["order"]})
    tree = SyncChain(services, ["order", "payment", "inventory"],
                     calls={"order": ["payment", "inventory"]})
    assert tree.calls == {"order": ("payment", "inventory"), "payment": (), "inventory": ()}


@pytest.mark.parametrize(("load", "message"), [
    ({"rate_per_s": 0}, "rate_per_s must be a number > 0"),
    ({"rate_per_s": -3}, "rate_per_s must be a number > 0"),
    ({"duration_ms": 0}, "duration_ms must be a number > 0"),
    ({"outages": [Outage("billing", 0, 10)]}, "outage target 'billing' is not a service here"),
    ({"outages": [("inventory", 0, 10)]}, "outages must be Outage objects"),
])
def test_bad_loads_are_refused(services, load, message):
    with pytest.raises((ValueError, TypeError), match=message):
        SyncChain(services).run(**load)


# -- the arithmetic --------------------------------------------------------------------------------
def test_closed_forms_are_the_sum_and_the_product(services):
    four = [services[n] for n in FOUR]
    assert chain_latency_ms(four) == 20 + 60 + 30 + 40
    assert chain_availability(four) == pytest.approx(0.999 ** 4)
    assert round(chain_availability(four), 3) == 0.996  # "four services at 99.9% give 99.6%"
    assert SyncChain(services, FOUR).expected_latency_ms() == 150


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_simulated_mean_latency_is_the_sum_of_the_means(services, length):
    chain = SyncChain(services, FOUR[:length])
    run = low_load(chain)
    measured = run.summary()["mean_ms"]
    assert measured == pytest.approx(chain.expected_latency_ms(), rel=LATENCY_TOLERANCE)
    assert run.services()["refused_pool"].sum() == 0  # the assumption: no contention


@pytest.mark.parametrize("failure_prob", [0.02, 0.2])
@pytest.mark.parametrize("length", [1, 2, 4])
def test_simulated_availability_is_the_product_of_the_availabilities(services, length,
                                                                    failure_prob):
    flaky = {name: p.changed(failure_prob=failure_prob) for name, p in services.items()}
    chain = SyncChain(flaky, FOUR[:length])
    run = low_load(chain)
    expected = chain.expected_availability()
    standard_error = math.sqrt(expected * (1 - expected) / run.summary()["requests"])
    assert run.summary()["success_rate"] == pytest.approx(
        expected, abs=AVAILABILITY_TOLERANCE * standard_error)


def test_every_failure_without_an_outage_is_a_service_error(services):
    flaky = {name: p.changed(failure_prob=0.05) for name, p in services.items()}
    run = low_load(SyncChain(flaky, FOUR), n=2_000)
    failed = run.requests[~run.requests["ok"]]
    assert len(failed) > 0 and set(failed["reason"]) == {ERROR}


def test_retries_turn_p_into_p_squared(services):
    coin = {"flip": ServiceProfile("flip", mean_ms=10, failure_prob=0.5, retries=1, workers=50)}
    run = low_load(SyncChain(coin, ["flip"]), n=4_000)
    assert run.summary()["success_rate"] == pytest.approx(1 - 0.5 ** 2, abs=0.02)


def test_a_caller_gives_up_after_the_timeout_while_the_callee_keeps_working():
    services = [ServiceProfile("order", mean_ms=10, latency="constant", workers=100),
                ServiceProfile("payment", mean_ms=300, latency="constant", timeout_ms=100,
                               workers=100)]
    run = SyncChain(services, ["order", "payment"]).run(rate_per_s=10, duration_ms=5_000)
    requests = run.requests
    assert set(zip(requests["failed_at"], requests["reason"], strict=True)) == {("payment", TIMEOUT)}
    assert requests["latency_ms"].round(6).unique().tolist() == [110.0]
    stats = run.services().loc["payment"]
    assert stats["timeouts"] == len(requests) and stats["served"] == len(requests)


def test_a_full_pool_refuses_calls_and_never_runs_more_than_its_workers():
    services = [ServiceProfile("order", mean_ms=100, latency="constant", workers=2)]
    run = SyncChain(services, ["order"]).run(rate_per_s=40, duration_ms=10_000, seed=2)
    stats = run.services().loc["order"]
    assert stats["peak_busy"] == 2
    assert stats["refused_pool"] > 0
    refused = run.requests[run.requests["reason"] == POOL_EXHAUSTED]
    assert len(refused) == stats["refused_pool"] and (refused["latency_ms"] == 0).all()


# -- outages and the cascade ----------------------------------------------------------------------
SLOW_INVENTORY = Outage("inventory", 10_000, 20_000, "slow", 20)


@pytest.fixture(scope="module")
def cascade(services):
    return SyncChain(services, FOUR).run(rate_per_s=30, duration_ms=30_000,
                                         outages=[SLOW_INVENTORY], seed=1)


def test_a_slow_service_makes_requests_fail_at_healthy_services(cascade):
    requests = cascade.requests
    during = requests[(requests["start_ms"] >= 10_000) & (requests["start_ms"] < 20_000)]
    failed = during[~during["ok"]]
    at_healthy = failed[failed["failed_at"] != "inventory"]
    assert len(failed) > 0.4 * len(during), "the outage costs a large share of the requests"
    assert len(at_healthy) > 0.75 * len(failed), "most fail at services that are healthy"
    assert set(at_healthy["reason"]) == {POOL_EXHAUSTED}
    assert {"payment", "order"} <= set(at_healthy["failed_at"])
    stats = cascade.services()
    assert stats.loc["payment", "peak_busy"] == stats.loc["payment", "workers"]
    assert stats.loc["inventory", "errors"] <= 3, "the slow service itself hardly ever errs"


def test_the_chain_recovers_after_the_outage(cascade):
    windows = cascade.windows(2_000)
    before = windows[windows["time_s"] < 10]
    during = windows[(windows["time_s"] >= 10) & (windows["time_s"] < 20)]
    after = windows[windows["time_s"] >= 22]
    assert before["success_rate"].min() >= 0.9 and after["success_rate"].min() >= 0.9
    assert during["success_rate"].max() <= 0.7
    assert (during["failed_at_healthy"] > 0).all()
    # Back to the everyday level: a rare burst of arrivals, not a full pool every second.
    assert after["failed_at_healthy"].mean() < during["failed_at_healthy"].mean() / 5


def test_pools_fill_up_the_chain_during_the_outage_and_empty_after(cascade):
    pools = cascade.pools
    share = pools.assign(share=pools["busy"] / pools["workers"])
    payment = share[share["service"] == "payment"]
    during = payment[(payment["time"] >= 11_000) & (payment["time"] < 20_000)]
    after = payment[payment["time"] >= 22_000]
    assert during["share"].mean() > 0.7 > 0.4 > after["share"].mean()


def test_a_down_service_refuses_every_call_that_reaches_it(services):
    outage = Outage("inventory", 5_000, 10_000)
    run = SyncChain(services, FOUR).run(rate_per_s=20, duration_ms=15_000, outages=[outage])
    requests = run.requests
    during = requests[(requests["start_ms"] >= 5_000) & (requests["start_ms"] < 9_900)]
    reached = during[~during["failed_at"].isin(["order", "payment"])]
    assert (reached["failed_at"] == "inventory").all() and (reached["reason"] == DOWN).all()
    later = requests[requests["start_ms"] >= 10_000]
    assert later["ok"].mean() > 0.98


# -- results -----------------------------------------------------------------------------------
def test_windows_cover_the_whole_run_and_count_every_request(cascade):
    windows = cascade.windows(1_000)
    assert len(windows) == 30 and windows["time_s"].tolist() == [float(i) for i in range(30)]
    assert windows["requests"].sum() == len(cascade.requests)
    assert windows["succeeded"].sum() == cascade.summary()["succeeded"]
    with pytest.raises(ValueError, match="window_ms must be a number > 0"):
        cascade.windows(0)


def test_summary_and_failures_agree(cascade):
    summary = cascade.summary()
    failures = cascade.failures()
    assert failures.sum() == summary["requests"] - summary["succeeded"]
    assert failures.index.names == ["failed_at", "reason"]
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]


def test_the_same_seed_gives_the_same_run_and_another_seed_another(services):
    chain = SyncChain(services, FOUR)
    load = {"rate_per_s": 30, "duration_ms": 8_000, "outages": [Outage("payment", 2_000, 5_000,
                                                                       "slow", 10)]}
    first, again = chain.run(**load, seed=4), chain.run(**load, seed=4)
    assert first.requests.equals(again.requests) and first.pools.equals(again.pools)
    other = chain.run(**load, seed=5)
    assert not first.requests["start_ms"].equals(other.requests["start_ms"])


def test_changing_one_service_does_not_change_the_arrivals_or_the_others_draws(services):
    load = {"rate_per_s": 10, "duration_ms": 5_000, "seed": 3}
    base = SyncChain(services, FOUR).run(**load).requests
    slower = SyncChain(services, FOUR).with_service("shipping", mean_ms=80).run(**load).requests
    assert base["start_ms"].equals(slower["start_ms"])
    assert (slower["latency_ms"] - base["latency_ms"]).mean() == pytest.approx(40, rel=0.2)


# -- coupling ----------------------------------------------------------------------------------
def test_adding_a_consumer_to_the_sync_chain_changes_the_order_code_and_its_latency(services):
    chain = SyncChain(services, FOUR)
    coupled = chain.calling("order", "notifier").calling("order", "analytics")
    before, after = chain.source_of("order"), coupled.source_of("order")
    assert 'call("notifier"' not in before and 'call("notifier"' in after
    assert 'call("analytics"' in after
    assert coupled.expected_latency_ms() == chain.expected_latency_ms() + 25 + 15
    load = {"rate_per_s": 5, "duration_ms": 60_000, "seed": 2}
    added = coupled.run(**load).summary()["mean_ms"] - chain.run(**load).summary()["mean_ms"]
    assert added == pytest.approx(40, rel=0.15)
    with pytest.raises(ValueError, match="already in the chain"):
        chain.calling("order", "payment")
    with pytest.raises(ValueError, match="unknown service 'billing'"):
        chain.calling("order", "billing")


# -- properties over random chains, loads and outages -------------------------------------------
profiles = st.builds(
    dict,
    mean_ms=st.integers(0, 200), sd_ms=st.integers(0, 80),
    latency=st.sampled_from(["lognormal", "exponential", "constant"]),
    failure_prob=st.sampled_from([0.0, 0.01, 0.2, 1.0]), timeout_ms=st.integers(50, 1_000),
    retries=st.integers(0, 2), workers=st.integers(1, 8),
)
outages = st.lists(st.builds(
    lambda target, start, length, mode, slowdown: Outage(
        target, start, start + length, mode, slowdown if mode == "slow" else 1),
    target=st.sampled_from(FOUR), start=st.integers(0, 3_000), length=st.integers(1, 2_000),
    mode=st.sampled_from(["down", "slow"]), slowdown=st.integers(1, 30)), max_size=2)


@settings(max_examples=40, deadline=None)
@given(params=st.lists(profiles, min_size=1, max_size=4), outages=outages,
       rate=st.integers(1, 80), seed=st.integers(0, 1_000))
def test_every_request_ends_once_and_no_pool_ever_overflows(params, outages, rate, seed):
    names = FOUR[:len(params)]
    chain = SyncChain([ServiceProfile(n, **p) for n, p in zip(names, params, strict=True)], names)
    outages = [o for o in outages if o.target in names]
    run = chain.run(rate_per_s=rate, duration_ms=4_000, outages=outages, seed=seed)
    requests = run.requests
    assert requests["request"].tolist() == list(range(len(requests)))
    assert (requests["end_ms"] >= requests["start_ms"]).all()
    assert (requests["ok"] == requests["failed_at"].isna()).all()
    assert set(requests["reason"].dropna()) <= set(REASONS)
    assert set(requests["failed_at"].dropna()) <= set(names)
    stats = run.services()
    assert (stats["peak_busy"] <= stats["workers"]).all()
    assert (run.pools["busy"] <= run.pools["workers"]).all()
    assert run.summary()["succeeded"] == int(requests["ok"].sum())
    again = chain.run(rate_per_s=rate, duration_ms=4_000, outages=outages, seed=seed)
    assert again.requests.equals(requests)


# -- the second endpoint, the spans, the limits -------------------------------------------------


def _refunds_ok(mode: str) -> float:
    chain = SyncChain(load_services(), FOUR).with_endpoint("refund", ["order", "payment"], 10)
    extra = {"slowdown": 20} if mode == "slow" else {}
    run = chain.run(rate_per_s=30, duration_ms=30_000, seed=1,
                    outages=[Outage("inventory", 10_000, 20_000, mode, **extra)])
    during = run.requests.query("10_000 <= start_ms < 20_000 and endpoint == 'refund'")
    return during["ok"].mean()


def test_a_slow_service_fails_requests_that_never_call_it_and_a_dead_one_does_not():
    assert _refunds_ok("slow") < 0.8
    assert _refunds_ok("down") > 0.98


def test_spans_show_every_call_in_a_worker_slot_within_the_pool():
    run = SyncChain(load_services(), FOUR).run(rate_per_s=20, duration_ms=1_000, seed=2,
                                               spans=True)
    served = run.spans[run.spans["slot"] >= 0]
    workers = dict(zip(run.services().index, run.services()["workers"], strict=True))
    assert (served["slot"] < served["service"].map(workers)).all()
    assert (served["start_ms"] <= served["work_end_ms"]).all()
    assert (served["work_end_ms"] <= served["end_ms"]).all()
    assert len(served[served["service"] == "order"]) == len(run.requests)


def test_a_load_too_big_to_run_in_seconds_is_refused_with_the_limit_named():
    with pytest.raises(ValueError, match="MAX_REQUESTS"):
        SyncChain(load_services(), FOUR).run(rate_per_s=MAX_REQUESTS, duration_ms=10_000)
    with pytest.raises(ValueError, match="duration_ms must be at least sample_ms"):
        SyncChain(load_services(), FOUR).run(duration_ms=100)
    with pytest.raises(ValueError, match="only applies to mode='slow'"):
        SyncChain(load_services(), FOUR).run(outages=[Outage("inventory", 0, 10, "down", 20)])
