"""Messages: the immutable facts (events) and requests (commands) that cross service boundaries.

An **event** names something that already happened, so its type is in the past tense
(``OrderPlaced``, ``PaymentAuthorized``). A **command** asks a service to do something, so its
type is imperative (``ReserveInventory``). Both are frozen: once published, nobody can change
what was said, only say something new.

The payload must survive a trip through JSON, because that is what a broker or an outbox table
stores. It is checked when the message is made, so a bad payload fails where it was written,
not three services later.
"""

from __future__ import annotations

import functools
import json
import math
import random
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

EVENT = "event"
COMMAND = "command"
KINDS = (EVENT, COMMAND)

_CAMEL_WORD = re.compile(r"[A-Z][a-z0-9]*")
# Past participles that do not end in -ed but still name a fact.
IRREGULAR_PAST = frozenset(
    "Paid Sent Made Built Held Lost Sold Shipped Done Taken Given Won Begun Run Set Put Read "
    "Split Kept Left Found Bought Brought Caught Chosen Drawn Driven Fallen Frozen Known Seen "
    "Shown Spent Stolen Thrown Withdrawn Written Out".split()
)

_id_source = random.Random(0)


def seed_ids(seed: int) -> None:
    """Restart the message-id sequence.

    Ids look like ``uuid4()`` values but are drawn from a seeded generator, so a notebook
    prints the same ids on every run. A real service calls ``uuid.uuid4()``; code that needs
    ids unique across processes (the outbox) makes its own.
    """
    _id_source.seed(seed)


def new_id() -> str:
    """A fresh message id (a version-4 UUID from the seeded sequence)."""
    return str(uuid.UUID(int=_id_source.getrandbits(128), version=4))


@functools.lru_cache(maxsize=1024)  # a run uses a handful of types, thousands of times
def is_past_tense(type_name: str) -> bool:
    """True when the last word of a CamelCase name reads as a past participle."""
    words = _CAMEL_WORD.findall(type_name)
    if not words or "".join(words) != type_name:
        return False
    last = words[-1]
    return last.endswith("ed") or last in IRREGULAR_PAST


@functools.lru_cache(maxsize=1024)  # a run makes thousands of messages of a few types
def _type_problem(type_name: str, kind: str) -> str | None:
    """What is wrong with ``type_name`` as the type of a ``kind`` message (None: nothing)."""
    if not _CAMEL_WORD.match(type_name):
        return _not_camel_case(type_name)
    if kind == EVENT and not is_past_tense(type_name):
        return (f"event type {type_name!r} must name a fact in the past tense, such as "
                "'OrderPlaced' or 'PaymentAuthorized'; a request to act is a command "
                "(kind='command')")
    return None


def _not_camel_case(type_name: Any) -> str:
    return f"type must be a CamelCase name such as 'OrderPlaced', got {type_name!r}"


# Values that are their own frozen copy (exactly these types: a subclass takes the long way).
_PLAIN = frozenset((str, int, bool, type(None)))


def freeze_json(value: Any, where: str = "payload") -> Any:
    """Check that ``value`` is JSON and return a read-only copy of it.

    Dicts become read-only mappings and lists become tuples, so a frozen message cannot be
    changed through its payload either. ``where`` names the field in the error.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}; JSON carries only finite numbers")
        return value
    if isinstance(value, Mapping):
        frozen = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"{where} has key {key!r} of type {type(key).__name__}; JSON object keys are strings"
                )
            frozen[key] = item if type(item) in _PLAIN else freeze_json(item, f"{where}.{key}")
        return MappingProxyType(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(freeze_json(item, f"{where}[{i}]") for i, item in enumerate(value))
    raise TypeError(
        f"{where} has type {type(value).__name__}; JSON carries only dict, list, str, int, "
        "float, bool and None"
    )


def thaw_json(value: Any) -> Any:
    """The plain ``dict``/``list`` form of a frozen payload, ready for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {key: thaw_json(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class Message:
    """One event or command, as it travels through a broker.

    ``key`` decides the partition, so all messages of one aggregate (one order) stay in order.
    ``timestamp`` is milliseconds on the simulated clock when the message was made.
    """

    type: str
    key: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    timestamp: float = 0.0
    id: str = field(default_factory=new_id)
    kind: str = EVENT

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.type, str):
            raise ValueError(_not_camel_case(self.type))
        problem = _type_problem(self.type, self.kind)
        if problem is not None:
            raise ValueError(problem)
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"key must be a non-empty string (an aggregate id), got {self.key!r}")
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.payload, Mapping):
            raise TypeError(
                f"payload must be a JSON object (a dict), got {type(self.payload).__name__}"
            )
        if not isinstance(self.timestamp, (int, float)) or not math.isfinite(self.timestamp):
            raise ValueError(f"timestamp must be a finite number of ms, got {self.timestamp!r}")
        object.__setattr__(self, "payload", freeze_json(self.payload))
        headers = {}
        for name, value in self.headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"headers must map str to str; header {name!r} is {value!r}")
            headers[name] = value
        object.__setattr__(self, "headers", MappingProxyType(headers))

    def with_headers(self, **headers: str) -> Message:
        """A copy with headers added: the same id, so consumers still see the same message."""
        return Message(
            self.type, self.key, self.payload, {**self.headers, **headers},
            self.timestamp, self.id, self.kind,
        )

    def to_dict(self) -> dict[str, Any]:
        """The message as plain JSON-ready data."""
        return {
            "id": self.id, "kind": self.kind, "type": self.type, "key": self.key,
            "payload": thaw_json(self.payload), "headers": dict(self.headers),
            "timestamp": self.timestamp,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            type=data["type"], key=data["key"], payload=data.get("payload", {}),
            headers=data.get("headers", {}), timestamp=data.get("timestamp", 0.0),
            id=data["id"], kind=data.get("kind", EVENT),
        )

    @classmethod
    def from_json(cls, text: str) -> Message:
        return cls.from_dict(json.loads(text))


def event(type: str, key: str, payload: Mapping[str, Any] | None = None, *, clock=None,
          headers: Mapping[str, str] | None = None, id: str | None = None) -> Message:
    """Make an event (a fact in the past tense), stamped with the clock's time if given."""
    return Message(type, key, payload or {}, headers or {},
                   clock.now if clock is not None else 0.0, id or new_id(), EVENT)


def command(type: str, key: str, payload: Mapping[str, Any] | None = None, *, clock=None,
            headers: Mapping[str, str] | None = None, id: str | None = None) -> Message:
    """Make a command (a request to act), stamped with the clock's time if given."""
    return Message(type, key, payload or {}, headers or {},
                   clock.now if clock is not None else 0.0, id or new_id(), COMMAND)
