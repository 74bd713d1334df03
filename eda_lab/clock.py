"""The simulated clock every process runs on.

Time here is simulated milliseconds, not wall time: a relay that polls every 500 ms, a consumer
that is offline for 10 s, or a payment service that takes 300 ms cost nothing real, so ten
thousand orders run in seconds and every run gives the same numbers.

The clock is a thin layer over a SimPy environment. Plain, synchronous code (a relay's
``poll_once()``, a consumer's ``handle()``) never needs it; a *process* (a generator that
yields ``clock.timeout(ms)``) is how the same code is scheduled over time.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from . import _validate as check

_INF = float("inf")


def _delay(argument: str, delay_ms: Any) -> float:
    """A delay of ``delay_ms`` >= 0 ms, checked (the plain case first: it runs per event)."""
    if type(delay_ms) in (float, int) and 0 <= delay_ms < _INF:
        return delay_ms
    return check.ms(argument, delay_ms, positive=False)


class Clock:
    """Simulated time in milliseconds, with SimPy processes scheduled on it."""

    def __init__(self, start_ms: float = 0.0):
        check.ms("start_ms", start_ms, positive=False)
        self.env = simpy.Environment(initial_time=start_ms)

    @property
    def now(self) -> float:
        """The current simulated time, in ms."""
        return self.env.now

    def timeout(self, delay_ms: float, value: Any = None) -> simpy.events.Timeout:
        """An event that fires ``delay_ms`` from now; ``yield`` it inside a process to wait."""
        return self.env.timeout(_delay("delay_ms", delay_ms), value)

    def process(self, generator: Generator) -> simpy.Process:
        """Start a process: a generator that yields clock events."""
        return self.env.process(generator)

    def every(self, interval_ms: float, action: Callable[[], Any],
              until_ms: float | None = None) -> simpy.Process:
        """Call ``action()`` every ``interval_ms`` (first call now) until ``until_ms``, if given."""
        check.ms("interval_ms", interval_ms)
        if until_ms is not None:
            check.ms("until_ms", until_ms, positive=False)

        def loop():
            while until_ms is None or self.now <= until_ms:
                action()
                yield self.env.timeout(interval_ms)

        return self.env.process(loop())

    def call_at(self, at_ms: float, action: Callable[[], Any]) -> None:
        """Call ``action()`` once, at simulated time ``at_ms`` (now, if that has passed)."""
        self.call_later(max(0.0, check.ms("at_ms", at_ms, positive=False) - self.now), action)

    def call_later(self, delay_ms: float, action: Callable[[], Any]) -> None:
        """Call ``action()`` once, ``delay_ms`` from now: a timer, lighter than a process."""
        self.env.timeout(_delay("delay_ms", delay_ms)).callbacks.append(lambda _event: action())

    def run(self, until_ms: float | None = None) -> None:
        """Advance time, running every process, until ``until_ms`` or until nothing is left."""
        if until_ms is not None:
            check.ms("until_ms", until_ms, positive=False)
        if until_ms is not None and until_ms < self.now:
            raise ValueError(f"until_ms ({until_ms}) is before now ({self.now})")
        if until_ms is not None and until_ms == self.now:
            return
        self.env.run(until=until_ms)

    def advance(self, delta_ms: float) -> None:
        """Run everything scheduled in the next ``delta_ms``."""
        check.ms("delta_ms", delta_ms, positive=False)
        self.run(self.now + delta_ms)

    def step(self) -> bool:
        """Process the next scheduled event; False when nothing is scheduled."""
        if self.env.peek() == float("inf"):
            return False
        self.env.step()
        return True

    def next_event_at(self) -> float:
        """When the next scheduled event fires (``inf`` if none)."""
        return self.env.peek()

    def __repr__(self) -> str:
        return f"Clock(now={self.now:g} ms)"
