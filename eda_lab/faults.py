"""Faults are data: named crash points, fault plans and outage windows.

Code marks the places where a process can die by name (``"relay.after_publish"``) and asks the
fault plan whether to die there. A plan is plain data that a learner writes in a cell::

    faults = FaultPlan({"relay.after_publish": 1,      # the 1st time it is reached
                        "broker.drop": 0.05},          # 5% of the times, seeded
                       outages=[Outage("payment", 2_000, 5_000)])

The forms of an entry: an int ``n`` fires the n-th time the point is reached (``1``: only the
first time), a list ``[1, 3]`` those times, a float is a probability for every visit (``0.2``:
one time in five, ``1.0``: every time, ``0.0``: never), ``True`` or ``"always"`` every time,
``None`` never. ``1`` and ``1.0`` are easy to mix up, so a plan written with a bare int on a point where only a
probability makes sense (:data:`PURELY_PROBABILISTIC`) warns.

Because every point is registered with a description, tests and the chaos lab can enumerate
them all and try each one, instead of trusting that the happy path covers the rest.

A :class:`Crash` is a ``BaseException``, not an ``Exception``: a process that crashes does not
get to run its ``except Exception`` handlers, just as a killed process does not.
"""

from __future__ import annotations

import math
import numbers
import random
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# name -> description; filled by the modules that mark crash points (see ``crash_point``).
FAULT_POINTS: dict[str, str] = {}

# Points reached once per delivery or publish, over every partition, group and redelivery, so
# "the n-th time" names a visit nobody can point at: only a probability means something there.
# (``broker.unavailable`` is not one of them: ``1`` is "the first publish", which a learner can
# see, and notebook 03 uses it so.)
PURELY_PROBABILISTIC = frozenset({"broker.drop", "broker.duplicate", "broker.delay"})


class FaultValueWarning(UserWarning):
    """A fault plan entry that is valid but probably not what was meant (``1`` for ``1.0``)."""


def crash_point(name: str, description: str) -> str:
    """Register a named fault point and return its name (use it as a module constant)."""
    if "." not in name:
        raise ValueError(f"fault point names are 'component.moment', got {name!r}")
    FAULT_POINTS[name] = description
    return name


def fault_points(prefix: str = "") -> list[str]:
    """Every registered point whose name starts with ``prefix``, sorted."""
    return sorted(name for name in FAULT_POINTS if name.startswith(prefix))


class Crash(BaseException):  # noqa: N818 - a crash is not an error a program handles
    """The process died at a named crash point."""

    def __init__(self, point: str, detail: str = ""):
        super().__init__(point if not detail else f"{point}: {detail}")
        self.point = point


@dataclass(frozen=True)
class Outage:
    """``target`` is down (or slow, ``slowdown`` times its normal latency) from start to end ms."""

    target: str
    start_ms: float
    end_ms: float
    mode: str = "down"
    slowdown: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.target, str) or not self.target:
            raise TypeError(f"an outage's target must be a name such as 'payment', got "
                            f"{self.target!r}")
        for field in ("start_ms", "end_ms", "slowdown"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"outage of {self.target!r}: {field} must be a number, got "
                                f"{value!r}")
            if not math.isfinite(value):
                raise ValueError(f"outage of {self.target!r}: {field} must be a finite number, "
                                 f"got {value!r}")
        if self.mode not in ("down", "slow"):
            raise ValueError(f"mode must be 'down' or 'slow', got {self.mode!r}")
        if not (0 <= self.start_ms < self.end_ms):
            raise ValueError(
                f"an outage needs 0 <= start_ms < end_ms, got start_ms={self.start_ms}, "
                f"end_ms={self.end_ms}"
            )
        if self.mode == "slow" and self.slowdown < 1:
            raise ValueError(f"slowdown must be >= 1 for a slow outage, got {self.slowdown}")

    def covers(self, now_ms: float) -> bool:
        return self.start_ms <= now_ms < self.end_ms


def _nth(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _parse_spec(point: str, spec: Any) -> tuple[str, Any]:
    """Turn one plan entry into ('never'|'always'|'hits'|'chance', value)."""
    if spec is None or spec is False:
        return "never", None
    if spec is True or spec == "always":
        return "always", None
    if isinstance(spec, int):
        if spec < 1:
            raise ValueError(
                f"fault plan entry {point!r}: an integer means 'the n-th time it is reached' "
                f"and must be >= 1, got {spec} (use 0.0 or None for never)"
            )
        return "hits", frozenset([spec])
    if isinstance(spec, float):
        if not 0.0 <= spec <= 1.0:
            raise ValueError(
                f"fault plan entry {point!r}: a float is a probability in [0, 1], got {spec}"
            )
        return "chance", spec
    if isinstance(spec, (list, tuple, set, frozenset, range)):
        hits = list(spec)
        if not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hits):
            raise ValueError(
                f"fault plan entry {point!r}: a list holds the times (1, 2, ...) it fires, got {spec!r}"
            )
        return "hits", frozenset(hits)
    raise ValueError(
        f"fault plan entry {point!r}: expected an int (the n-th time), a list of ints, a "
        f"probability (float in [0, 1]), True/'always' or None, got {spec!r}"
    )


class FaultPlan:
    """Which fault points fire, and when; plus outage windows. Seeded, so runs repeat.

    ``reach(point)`` is called by the code each time it passes a point; it counts the visit
    and answers whether the fault fires this time.
    """

    def __init__(self, points: Mapping[str, Any] | None = None, *, seed: int = 0,
                 outages: Iterable[Outage] = (), strict: bool = True):
        if points is not None and not isinstance(points, Mapping):
            raise TypeError(f"a fault plan is a dict of fault points such as "
                            f"{{'relay.after_publish': 1}}, got {points!r}")
        self.seed = seed
        self.strict = strict
        self._specs: dict[str, tuple[str, Any]] = {}
        self._rngs: dict[str, random.Random] = {}
        # The points this plan may fire (every other point is only counted when reached).
        self.planned: frozenset[str] = frozenset()
        for point, spec in (points or {}).items():
            self.set_point(point, spec)
            # Only a plan someone writes warns: code that arms "the next visit" by number
            # (the saga stepper) means exactly what it says.
            if (point in PURELY_PROBABILISTIC and isinstance(spec, int)
                    and not isinstance(spec, bool)):
                warnings.warn(
                    f"fault plan entry {point!r}: {spec} means 'only the {_nth(spec)} time it "
                    "is reached' (one delivery among all of them); did you mean 1.0, every "
                    "time? Probabilities are floats: 1.0 every time, 0.2 one time in five",
                    FaultValueWarning, stacklevel=2)
        self.outages = tuple(outages)
        for outage in self.outages:
            if not isinstance(outage, Outage):
                raise TypeError(f"outages must be Outage objects, got {outage!r}")
        self.hits: dict[str, int] = {}
        self.fired: list[tuple[str, int]] = []

    def set_point(self, point: str, spec: Any) -> None:
        """Plan ``point`` from now on (``spec`` as in the constructor; None: never)."""
        if self.strict and point not in FAULT_POINTS:
            raise ValueError(
                f"unknown fault point {point!r}; known points: {', '.join(fault_points())}"
            )
        self._specs[point] = _parse_spec(point, spec)
        self.planned = frozenset(p for p, (kind, _) in self._specs.items() if kind != "never")
        # One stream per point: adding a point to the plan does not change the others.
        self._rngs.setdefault(point, random.Random(f"{self.seed}:{point}"))

    @property
    def points(self) -> dict[str, Any]:
        return {point: kind for point, (kind, _) in self._specs.items()}

    def reach(self, point: str) -> bool:
        """Count one visit to ``point``; True when the fault fires on this visit.

        Every visit is counted (``hits``), planned or not, so a test can see that code passed a
        point; a point the plan does not name costs two dict look-ups, which is why code calls
        :meth:`check` at every crash point without asking first.
        """
        hits = self.hits
        n = hits[point] = hits.get(point, 0) + 1
        spec = self._specs.get(point)
        if spec is None:
            return False
        kind, value = spec
        if kind == "always":
            fire = True
        elif kind == "hits":
            fire = n in value
        elif kind == "chance":
            fire = self._rngs[point].random() < value
        else:
            fire = False
        if fire:
            self.fired.append((point, n))
        return fire

    def first_firing(self, point: str, visits: int) -> int | None:
        """Reach ``point`` up to ``visits`` times in a row and stop at the first visit that
        fires: its index (from 0), or None when none did. The same as calling :meth:`reach` in
        a loop, counted in one call when the plan does not name the point (a batch of 100
        deliveries visits ``broker.drop`` 100 times)."""
        if point not in self._specs:
            if visits > 0:   # no visit, no count (reach() is never called then either)
                self.hits[point] = self.hits.get(point, 0) + visits
            return None
        for i in range(visits):
            if self.reach(point):
                return i
        return None

    def check(self, point: str, *, trace=None, now: float = 0.0, actor: str = "") -> None:
        """Reach ``point`` and raise :class:`Crash` there if the plan says so (traced)."""
        if self.reach(point):
            if trace is not None:
                trace.add(now, "crash", actor, detail=point)
            raise Crash(point)

    def is_down(self, target: str, now_ms: float) -> bool:
        """True while an outage of mode 'down' covers ``target`` at ``now_ms``."""
        if not self.outages:
            return False
        return any(o.target == target and o.mode == "down" and o.covers(now_ms)
                   for o in self.outages)

    def down_until(self, target: str, now_ms: float) -> float | None:
        """When the outage covering ``target`` at ``now_ms`` ends (None: it is not down)."""
        ends = [o.end_ms for o in self.outages
                if o.target == target and o.mode == "down" and o.covers(now_ms)]
        return max(ends) if ends else None

    def slowdown(self, target: str, now_ms: float) -> float:
        """The latency multiplier for ``target`` at ``now_ms`` (1.0 when not slowed)."""
        factor = 1.0
        for o in self.outages:
            if o.target == target and o.mode == "slow" and o.covers(now_ms):
                factor = max(factor, o.slowdown)
        return factor

    def __repr__(self) -> str:
        entries = ", ".join(f"{p!r}: {k}" for p, k in self.points.items())
        return f"FaultPlan({{{entries}}}, seed={self.seed}, outages={len(self.outages)})"


def check_outages(outages: Iterable[Outage] | Outage | None,
                  known: Iterable[str]) -> tuple[Outage, ...]:
    """The outages as a tuple, each checked to name a part of this run (``known``).

    An outage of a part that does not exist would otherwise do nothing, silently: a typo
    (``"paymnt"``) would make the experiment look as if the outage had no effect.
    """
    if outages is None:
        return ()
    if isinstance(outages, Outage):
        outages = (outages,)
    outages = tuple(outages)
    known = sorted(set(known))
    for outage in outages:
        if not isinstance(outage, Outage):
            raise TypeError(f"outages must be Outage objects, got {outage!r}")
        if outage.target not in known:
            raise ValueError(f"outage target {outage.target!r} is not a service here; "
                             f"known: {', '.join(known)}")
    return outages


def as_fault_plan(faults: FaultPlan | Mapping[str, Any] | None, *, seed: int = 0) -> FaultPlan:
    """The plan every part of a run shares: ``faults`` itself, or a plan made from a dict such
    as ``{"relay.after_publish": 1}`` (seeded with ``seed``), or an empty one for None.

    Every experiment takes either form, so a learner can write the dict in a cell.
    """
    if faults is None:
        return FaultPlan(seed=seed)
    if isinstance(faults, FaultPlan):
        return faults
    if isinstance(faults, Mapping):
        return FaultPlan(faults, seed=seed)
    raise TypeError(f"faults must be a dict of fault points such as {{'relay.after_publish': 1}} "
                    f"or a FaultPlan, got {type(faults).__name__}")

