"""The errors of the real engines: each says what went wrong and what to do about it.

A learner meets these when a server is missing or misconfigured, so every message names the
argument (or environment variable), what is allowed, what was given, and the next step.
They are ``RuntimeError``s about the outside world; bad arguments stay ``ValueError`` and
``TypeError``, as everywhere in eda_lab.
"""

from __future__ import annotations


class EngineError(RuntimeError):
    """Something about a real server (PostgreSQL, a broker) stopped eda_lab from going on."""


class EngineUnavailable(EngineError):
    """A server could not be started or reached (no binary, a DSN that does not connect,
    a broker that is down)."""


class PortInUse(EngineError):
    """The port asked for is taken by another program."""


class BrokerDown(EngineError):
    """The broker did not acknowledge a publish in time: nothing was confirmed, so the
    relay will publish the same events again when the broker is back."""


class SlotExists(EngineError):
    """A replication slot of that name already exists and cannot be created again."""


class SlotInUse(EngineError):
    """Another reader streams from this replication slot right now (a relay started twice)."""
