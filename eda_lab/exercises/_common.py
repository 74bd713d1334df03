"""What every self-check shares: one way to say "correct" and "not yet"."""

from __future__ import annotations

import math

from ..messages import Message


def verdict(ok: bool, text: str) -> None:
    """Print ``correct: text`` or ``not yet: text`` (returns nothing, so a notebook cell that
    ends with a check shows the line once)."""
    text = text if text.endswith((".", "?", "!")) else text + "."
    print(f"{'correct' if ok else 'not yet'}: {text}")


def not_a_message(answer, made_with: str) -> str | None:
    """Why ``answer`` is not a message, or None when it is one."""
    if answer is None:
        return f"make it with {made_with} and store it in the variable"
    if not isinstance(answer, Message):
        return (f"the answer is a {type(answer).__name__}, not a message: make it with "
                f"{made_with}")
    return None


def payload_problem(message: Message, key: str, value) -> str | None:
    """What is wrong with ``message.payload[key]``, or None when it equals ``value``."""
    payload = dict(message.payload)
    if key not in payload:
        has = ", ".join(repr(k) for k in payload) or "no keys at all"
        return f"the payload has no {key!r} (it has {has})"
    if payload[key] != value:
        return f"payload[{key!r}] is {payload[key]!r}: check the amount in the task"
    return None


def number_problem(answer, what: str, noun: str = "prediction") -> str | None:
    """What is wrong with an answer that must be a finite number (unset, a string, ``nan``),
    or None when it is one."""
    if answer is None:
        return f"set the variable to your {noun} ({what})"
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not math.isfinite(answer):
        return f"the {noun} must be a number ({what}), got {answer!r}"
    return None
