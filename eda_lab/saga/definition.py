"""Saga definitions as data: the ordered steps of a business transaction that spans services.

A saga replaces one distributed transaction (which would need a global lock) by a sequence of
**local transactions**, one per step, each in the database of the step's participant. What
makes the sequence safe is the *kind* of each step:

* **compensatable**: it can be undone later by its **compensation** (a separate command that
  semantically reverses it: ``ReleaseInventory`` undoes ``ReserveInventory``). A step may have
  no compensation (nothing to undo); it is then skipped on the way back.
* **pivot**: the go/no-go step. Once it succeeds the saga runs to completion; it is never
  undone. At most one per saga.
* **retriable**: after the pivot. It cannot be refused for a business reason, so it is retried
  until it succeeds and is never compensated.

So the only legal shape is: compensatable steps, then at most one pivot, then retriable steps.
A definition is checked when it is made, with errors that say which step is wrong and why,
because a bad definition would otherwise show up as a half-undone order weeks later.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data_files import data_file

COMPENSATABLE = "compensatable"
PIVOT = "pivot"
RETRIABLE = "retriable"
KINDS = (COMPENSATABLE, PIVOT, RETRIABLE)

# The services of the course's shop, the participants a definition may name by default.
SHOP_PARTICIPANTS = ("order", "inventory", "payment", "shipping")

_STEP_NAME = re.compile(r"[a-z][a-z0-9_]*")
_COMMAND = re.compile(r"(?:[A-Z][a-z0-9]*)+")
_STEP_FIELDS = ("name", "participant", "action", "compensation", "kind", "description")


class SagaDefinitionError(ValueError):
    """A saga definition that cannot run safely; the message names the step and the rule."""


@dataclass(frozen=True, slots=True)
class SagaStep:
    """One step: ``participant`` runs ``action`` locally; ``compensation`` undoes it."""

    name: str
    participant: str
    action: str
    compensation: str | None = None
    kind: str = COMPENSATABLE
    description: str = ""

    def __post_init__(self) -> None:
        where = f"step {self.name!r}"
        if not isinstance(self.name, str) or not _STEP_NAME.fullmatch(self.name):
            raise SagaDefinitionError(
                f"step name must be snake_case such as 'reserve_inventory', got {self.name!r}")
        if not isinstance(self.participant, str) or not self.participant:
            raise SagaDefinitionError(f"{where}: participant must be a service name, got "
                                      f"{self.participant!r}")
        for field, value in (("action", self.action), ("compensation", self.compensation)):
            if value is None and field == "compensation":
                continue
            if not isinstance(value, str) or not _COMMAND.fullmatch(value):
                raise SagaDefinitionError(
                    f"{where}: {field} must be a command name in CamelCase such as "
                    f"'ReserveInventory', got {value!r}")
        if self.kind not in KINDS:
            raise SagaDefinitionError(f"{where}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind != COMPENSATABLE and self.compensation is not None:
            raise SagaDefinitionError(
                f"{where} is {self.kind} but has compensation {self.compensation!r}: only a "
                "compensatable step is ever undone (a pivot commits the saga, a retriable step "
                "is retried until it succeeds); remove the compensation or make it compensatable")

    @property
    def commands(self) -> tuple[str, ...]:
        """The command types this step sends: its action and, if any, its compensation."""
        return (self.action,) if self.compensation is None else (self.action, self.compensation)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "participant": self.participant, "action": self.action,
                "compensation": self.compensation, "kind": self.kind,
                "description": self.description}


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    """An ordered, validated list of steps, plus the participants it may name.

    >>> d = SagaDefinition("demo", [
    ...     SagaStep("reserve", "inventory", "ReserveInventory", "ReleaseInventory"),
    ...     SagaStep("charge", "payment", "AuthorizePayment", kind="pivot")])
    >>> [s.name for s in d.compensation_order(2)]
    ['reserve']
    """

    name: str
    steps: tuple[SagaStep, ...]
    participants: tuple[str, ...] = SHOP_PARTICIPANTS
    description: str = ""

    def __init__(self, name: str, steps: Iterable[SagaStep],
                 participants: Iterable[str] = SHOP_PARTICIPANTS, description: str = ""):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "steps", tuple(steps))
        object.__setattr__(self, "participants", tuple(participants))
        object.__setattr__(self, "description", description)
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.name, str) or not _STEP_NAME.fullmatch(self.name):
            raise SagaDefinitionError(
                f"saga name must be snake_case such as 'create_order', got {self.name!r}")
        if not self.steps:
            raise SagaDefinitionError(f"saga {self.name!r} has no steps; a saga needs at least one")
        for i, step in enumerate(self.steps):
            if not isinstance(step, SagaStep):
                raise SagaDefinitionError(f"steps[{i}] must be a SagaStep, got {step!r}")
        seen: set[str] = set()
        commands: dict[str, str] = {}
        for step in self.steps:
            if step.name in seen:
                raise SagaDefinitionError(
                    f"saga {self.name!r}: duplicate step name {step.name!r}; the saga log "
                    "identifies steps by name, so each name may appear once")
            seen.add(step.name)
            if step.participant not in self.participants:
                raise SagaDefinitionError(
                    f"step {step.name!r}: unknown participant {step.participant!r}; known "
                    f"participants: {', '.join(self.participants)}")
            for command_type in step.commands:
                if command_type in commands:
                    raise SagaDefinitionError(
                        f"step {step.name!r}: command {command_type!r} is already used by step "
                        f"{commands[command_type]!r}; a participant must tell them apart")
                commands[command_type] = step.name
        pivots = [s.name for s in self.steps if s.kind == PIVOT]
        if len(pivots) > 1:
            raise SagaDefinitionError(
                f"saga {self.name!r} has {len(pivots)} pivot steps ({', '.join(pivots)}); a "
                "saga has at most one go/no-go point")
        pivot = self.pivot_index
        for i, step in enumerate(self.steps):
            if step.kind == RETRIABLE and (pivot is None or i < pivot):
                where = "before the pivot" if pivot is not None else "in a saga without a pivot"
                raise SagaDefinitionError(
                    f"step {step.name!r} is retriable {where}: a retriable step is never "
                    "compensated, so it must come after the pivot has committed the saga")
            if step.kind == COMPENSATABLE and pivot is not None and i > pivot:
                raise SagaDefinitionError(
                    f"step {step.name!r} is compensatable after the pivot "
                    f"{self.steps[pivot].name!r}: once the pivot succeeds the saga only goes "
                    "forward, so every later step must be retriable")

    # -- reading ------------------------------------------------------------------------
    @property
    def pivot_index(self) -> int | None:
        """The index of the pivot step, or None when every step is compensatable."""
        for i, step in enumerate(self.steps):
            if step.kind == PIVOT:
                return i
        return None

    def index(self, step_name: str) -> int:
        """The position of ``step_name``; a clear error for an unknown name."""
        for i, step in enumerate(self.steps):
            if step.name == step_name:
                return i
        raise KeyError(f"saga {self.name!r} has no step {step_name!r}; steps: "
                       f"{', '.join(self.step_names)}")

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    @property
    def commands(self) -> dict[str, SagaStep]:
        """Every command type the saga sends (actions and compensations) -> its step."""
        return {command_type: step for step in self.steps for command_type in step.commands}

    def compensation_order(self, failed_index: int, include_failed: bool = False) -> list[SagaStep]:
        """The steps to undo when step ``failed_index`` fails, in the order to undo them.

        The completed steps before it, last first, skipping those without a compensation.
        ``include_failed`` adds the failed step itself first: needed when its outcome is
        unknown (a reply timeout), because the participant may have done it after all.
        """
        upto = failed_index + 1 if include_failed else failed_index
        return [s for s in reversed(self.steps[:upto]) if s.compensation is not None]

    # -- data in and out ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "steps": [s.to_dict() for s in self.steps]}

    def frame(self):
        """The steps as a pandas table, in order (what the notebook shows)."""
        import pandas as pd

        return pd.DataFrame([s.to_dict() for s in self.steps],
                            columns=["name", "kind", "participant", "action", "compensation"])

    @classmethod
    def from_dict(cls, data: Mapping[str, Any],
                  participants: Sequence[str] = SHOP_PARTICIPANTS) -> SagaDefinition:
        """Build and check a definition from plain data (the JSON in ``data/``)."""
        if not isinstance(data, Mapping):
            raise SagaDefinitionError(
                f"a saga definition is a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"name", "description", "steps"}
        if unknown:
            raise SagaDefinitionError(f"unknown field(s) {sorted(unknown)} in saga definition; "
                                      "allowed: name, description, steps")
        steps = data.get("steps")
        if not isinstance(steps, list):
            raise SagaDefinitionError(f"'steps' must be a list of step objects, got {steps!r}")
        built = []
        for i, raw in enumerate(steps):
            if not isinstance(raw, Mapping):
                raise SagaDefinitionError(f"steps[{i}] must be an object, got {raw!r}")
            extra = set(raw) - set(_STEP_FIELDS)
            missing = {"name", "participant", "action"} - set(raw)
            if extra or missing:
                raise SagaDefinitionError(
                    f"steps[{i}]: " + (f"unknown field(s) {sorted(extra)}; " if extra else "")
                    + (f"missing {sorted(missing)}; " if missing else "")
                    + f"allowed fields: {', '.join(_STEP_FIELDS)}")
            built.append(SagaStep(**raw))
        return cls(data.get("name", ""), built, participants, data.get("description", ""))


def load_saga_definition(path: str | Path,
                         participants: Sequence[str] = SHOP_PARTICIPANTS) -> SagaDefinition:
    """Load and check a saga definition from a JSON file (e.g. ``data/create_order_saga.json``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no saga definition at {str(path)!r}") from None
    except json.JSONDecodeError as error:
        raise SagaDefinitionError(f"{path.name} is not valid JSON: {error}") from None
    return SagaDefinition.from_dict(data, participants)


CREATE_ORDER_SAGA = data_file("create_order_saga.json")


def create_order_saga() -> SagaDefinition:
    """The shop's Create Order saga, loaded from ``data/create_order_saga.json``."""
    return load_saga_definition(CREATE_ORDER_SAGA)
