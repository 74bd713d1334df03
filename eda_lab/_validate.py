"""Argument checks, one way everywhere: each refusal names the argument, says what is allowed
and shows what was given, before anything is written.

Numbers must be finite: NaN passes every ``> 0`` comparison's negation (``nan <= 0`` is
False), so a NaN timeout would otherwise slip through and leave a saga waiting forever.
``True`` is not a number here, although Python counts it as 1.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _bounds(minimum: float | None, above: float | None, maximum: float | None,
            interval: bool = True) -> str:
    if interval and minimum is not None and maximum is not None and above is None:
        return f"in [{minimum:g}, {maximum:g}]"
    parts = []
    if above is not None:
        parts.append(f"> {above:g}")
    if minimum is not None:
        parts.append(f">= {minimum:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    return " and ".join(parts)


def number(argument: str, value: Any, *, minimum: float | None = None,
           above: float | None = None, maximum: float | None = None,
           unit: str = "", interval: bool = True) -> float:
    """``value`` as a float if it is a finite number within the bounds: a TypeError for what
    is not a number at all, a ValueError for one out of bounds (NaN and infinity included)."""
    wrong_type = isinstance(value, bool) or not isinstance(value, (int, float))
    if (wrong_type or not math.isfinite(value)
            or (minimum is not None and value < minimum)
            or (above is not None and value <= above)
            or (maximum is not None and value > maximum)):
        kind = f"a number of {unit}" if unit else "a number"
        bounds = _bounds(minimum, above, maximum, interval)
        error = TypeError if wrong_type else ValueError
        raise error(f"{argument} must be {kind}{' ' + bounds if bounds else ''}, got {value!r}")
    return float(value)


def ms(argument: str, value: Any, *, positive: bool = True,
       maximum: float | None = None) -> float:
    """A duration in simulated ms: finite, > 0 (or >= 0 with ``positive=False``)."""
    if positive:
        return number(argument, value, above=0, maximum=maximum, unit="ms")
    return number(argument, value, minimum=0, maximum=maximum, unit="ms", interval=False)


def count(argument: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """A whole number within the bounds (``True`` is not one)."""
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        raise ValueError(f"{argument} must be an integer {_bounds(minimum, None, maximum, False)}, "
                         f"got {value!r}")
    return value


def seed(argument: str, value: Any) -> int:
    """A seed: any whole number (the same seed, the same run)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{argument} must be an integer, got {value!r}")
    return value


def probability(argument: str, value: Any) -> float:
    """A probability: a finite number in [0, 1]."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or not 0 <= value <= 1):
        raise ValueError(f"{argument} must be a probability in [0, 1], got {value!r}")
    return float(value)


def flag(argument: str, value: Any) -> bool:
    """``True`` or ``False``, nothing that merely looks like one (``"no"`` is truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{argument} must be True or False, got {value!r}")
    return value


def one_of(argument: str, value: Any, allowed: Iterable[Any]) -> Any:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{argument} must be one of {allowed}, got {value!r}")
    return value


def name(argument: str, value: Any) -> str:
    """A non-empty string (a service, group or topic name)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{argument} must be a non-empty string, got {value!r}")
    return value


def names(argument: str, values: Any, allowed: Iterable[str] | None = None) -> tuple[str, ...]:
    """A list of distinct names; a bare string is refused (it would be read letter by letter)."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise TypeError(f"{argument} must be a list of names such as ['shipping'], "
                        f"got {values!r}")
    found = tuple(values)
    for item in found:
        name(f"each of {argument}", item)
        if allowed is not None:
            one_of(f"each of {argument}", item, allowed)
    if len(set(found)) != len(found):
        raise ValueError(f"{argument} must not repeat a name, got {list(found)}")
    return found


def identifier(argument: str, value: Any) -> str:
    """A plain SQL identifier (letters, digits, underscore): it goes into SQL text."""
    if not isinstance(value, str) or not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{argument} must be a plain identifier (letters, digits, underscore), "
                         f"got {value!r}")
    return value


def mapping(argument: str, value: Any, example: str) -> Mapping:
    """A dict (``example`` shows one in the message)."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{argument} must be a dict such as {example}, "
                        f"got {type(value).__name__}")
    return value


def function(argument: str, value: Any, signature: str = "") -> Any:
    """Something callable (``signature`` says how it is called)."""
    if not callable(value):
        raise TypeError(f"{argument} must be a function{' ' + signature if signature else ''}, "
                        f"got {value!r}")
    return value


def sequence(argument: str, value: Any, example: str) -> Sequence:
    """A list or tuple (not a string)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{argument} must be a list such as {example}, got {value!r}")
    return value
