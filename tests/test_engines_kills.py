"""The CDC relay in a process of its own, SIGKILLed by its pid 20 times while a writer keeps
inserting, for each broker: every committed event arrives, in order per key, and every
duplicate the kills caused is dropped by the inbox."""

from __future__ import annotations

import subprocess
import sys

import pytest
from engines_support import require, shared_engines

pytestmark = [pytest.mark.engines, pytest.mark.slow]
KILLS = 20


@pytest.fixture(scope="session")
def engines(request):
    return shared_engines(request)


@pytest.mark.parametrize("kind", ["kafka", "redis"])
def test_the_cdc_relay_killed_20_times_loses_nothing(engines, kind):
    from eda_lab.engines import run_relay_kills

    run = run_relay_kills(engines, kind, kills=KILLS, seed=7)
    report = run.report
    print(f"\n{kind}: {run.kills} kills, {run.events} events, {run.deliveries} deliveries, "
          f"{run.duplicates_dropped} duplicates dropped, lost {report.lost}")
    assert run.kills == KILLS
    assert report.committed == run.events > 1_000
    assert report.lost == 0 and report.phantom == 0 and report.in_flight == 0
    assert report.order_violations == 0 and report.duplicate_effects == 0
    assert run.duplicates_dropped == report.duplicate_deliveries


def test_the_relay_process_loads_the_relays_and_not_the_notebooks_toolkit():
    """A restart is what the kills measure: the relay process registers eda_lab without its
    __init__ and must not pull in eda_lab.outbox (pandas, matplotlib, sqlite-utils, SimPy)."""
    require("postgres", "kafka", "redis")
    from eda_lab.engines.relay_process import REGISTER_PACKAGE

    code = REGISTER_PACKAGE + (
        "import eda_lab.engines.relay_process, eda_lab.engines.cdc_relay, "
        "eda_lab.engines.polling_relay, eda_lab.engines.kafka, eda_lab.engines.redis_streams\n"
        "print(' '.join(sorted(sys.modules)))\n")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout.split())
    assert {"psycopg2", "confluent_kafka", "redis", "eda_lab.faults"} <= loaded
    heavy = {"eda_lab.outbox", "eda_lab.shop", "pandas", "matplotlib", "sqlite_utils", "simpy"}
    assert not heavy & loaded, sorted(heavy & loaded)
