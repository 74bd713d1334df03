"""The harness of the engine tests: skip (or fail) when an engine cannot run, and one shared
set of servers for the whole session.

Without a driver or a server binary the engine tests skip and say why, unless
``EDA_LAB_REQUIRE_ENGINES=1`` (``.ci/run`` sets it): then they fail, so CI cannot pass by
skipping. Every test module asks for the servers through :func:`shared_engines`, which starts
them once per session (they take about a second) and stops them, by pid, after the last
module that used them is done.
"""

from __future__ import annotations

import os

import pytest

from eda_lab.engines.availability import missing

REQUIRE_ENGINES_ENV = "EDA_LAB_REQUIRE_ENGINES"
_SHARED: dict = {"engines": None, "users": 0}


def require(*engines: str) -> None:
    """Skip, saying why, when one of ``engines`` cannot run here; fail instead under
    EDA_LAB_REQUIRE_ENGINES=1."""
    for engine in engines:
        reason = missing(engine)
        if reason is None:
            continue
        if os.environ.get(REQUIRE_ENGINES_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENGINES_ENV}=1 but {engine} cannot run: {reason}",
                        pytrace=False)
        pytest.skip(f"{engine} cannot run here: {reason}")


def shared_engines(request):
    """PostgreSQL and both brokers, started on first use and stopped after the last user."""
    require("postgres", "kafka", "redis")
    from eda_lab.engines import start_engines

    if _SHARED["engines"] is None:
        _SHARED["engines"] = start_engines(("kafka", "redis"), durable=False)
    _SHARED["users"] += 1

    def release() -> None:
        _SHARED["users"] -= 1
        if _SHARED["users"] == 0 and _SHARED["engines"] is not None:
            _SHARED["engines"].stop()
            _SHARED["engines"] = None

    request.addfinalizer(release)
    return _SHARED["engines"]


def pid_alive(pid: int) -> bool:
    """True while a process with ``pid`` exists (and is not a zombie we already reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
