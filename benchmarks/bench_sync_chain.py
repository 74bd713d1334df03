"""Sync-chain throughput: simulated requests per second through a four-service chain.

SyncChain.run sends about N requests (a Poisson stream) through order -> payment ->
inventory -> shipping, with everything a notebook uses: worker pools, a timeout timer per
call, failure draws, an outage window, a record per request and pool samples. The baseline,
measured in the same run, is a bare SimPy chain of the same services: each call is a SimPy
process its caller waits for, with the same lognormal work times, and nothing else (no
pools, timeouts, retries, failures, outages or records).
"""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import simpy  # noqa: E402
from _common import best_time, report  # noqa: E402

from eda_lab import Outage, SyncChain
from eda_lab.sync import load_services

N = 10_000
RATE_PER_S = 20.0
DURATION_MS = N / RATE_PER_S * 1000
CHAIN = ("order", "payment", "inventory", "shipping")
SERVICES = load_services()
OUTAGES = [Outage("inventory", DURATION_MS * 0.4, DURATION_MS * 0.5, "slow", 5.0)]


def run_sync_chain() -> int:
    run = SyncChain(SERVICES, CHAIN).run(RATE_PER_S, DURATION_MS, OUTAGES, seed=1)
    return len(run.requests)


def run_bare_simpy() -> int:
    env = simpy.Environment()
    rng = random.Random(1)
    params = []
    for name in CHAIN:
        profile = SERVICES[name]
        sigma = math.sqrt(math.log1p((profile.sd_ms / profile.mean_ms) ** 2))
        params.append((math.log(profile.mean_ms) - sigma * sigma / 2, sigma))
    done = [0]

    def call(depth):
        mu, sigma = params[depth]
        yield env.timeout(rng.lognormvariate(mu, sigma))
        if depth + 1 < len(params):
            yield env.process(call(depth + 1))

    def request():
        yield env.process(call(0))
        done[0] += 1

    def arrivals():
        while True:
            yield env.timeout(rng.expovariate(RATE_PER_S / 1000))
            if env.now >= DURATION_MS:
                return
            env.process(request())

    env.process(arrivals())
    env.run()
    return done[0]


if __name__ == "__main__":
    requests = run_sync_chain()
    bare_requests = run_bare_simpy()
    chain_s = best_time(run_sync_chain, repeat=3)
    bare_s = best_time(run_bare_simpy, repeat=3)
    report("sync chain simulated requests", requests / chain_s, "requests/s",
           "bare SimPy chain (no pools, timeouts, failures, records)", bare_requests / bare_s,
           5_000, requests=requests, services=len(CHAIN), seconds=round(chain_s, 3))
