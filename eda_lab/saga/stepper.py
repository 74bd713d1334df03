"""The model behind the Saga Orchestrator Stepper: one saga, advanced one thing at a time.

The widget (:mod:`eda_lab.widgets.saga_stepper`) only draws this model. Everything it shows
is read back from where it lives: the boxes and the log table from the saga log in the
orchestrator's database, each service's data from that service's database, the messages from
the trace. So what the learner sees cannot disagree with what the code did.

Outcome toggles apply live, to steps that have not run yet (a participant reads its script
when the command arrives). The crash toggle arms a crash of the orchestrator at its next
reaction, at the chosen moment; the orchestrator restarts a little later and resumes from the
log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..faults import FaultPlan
from ..trace import TraceRecord
from .definition import SagaDefinition, create_order_saga
from .log import step_states
from .orchestrator import AFTER_RECORD, AFTER_SEND, BEFORE_RECORD
from .participants import OUTCOMES, SUCCEED
from .runner import SagaRunner

SAMPLE_ORDER = {"order_id": "order-1", "customer": "alice", "sku": "book", "quantity": 2,
                "amount": 30.0}
NO_CRASH = "no crash"
# What the crash toggle offers: a label for the learner -> the crash point it arms.
CRASH_CHOICES = {NO_CRASH: None, "before record": BEFORE_RECORD, "after record": AFTER_RECORD,
                 "after send": AFTER_SEND}


class ArmedFaults(FaultPlan):
    """A fault plan whose crashes are armed by hand: each armed point fires once, next time."""

    def arm(self, point: str | None) -> None:
        """Fire ``point`` the next time it is reached (None disarms everything)."""
        for planned in list(self.points):
            self.set_point(planned, None)
        if point is not None:
            self.set_point(point, self.hits.get(point, 0) + 1)

    @property
    def armed(self) -> set[str]:
        """The points that will fire the next time they are reached."""
        return {point for point, (kind, value) in self._specs.items()
                if kind == "hits" and max(value) > self.hits.get(point, 0)}


def describe(record: TraceRecord) -> str | None:
    """One trace record in plain words (None for bookkeeping a learner need not read)."""
    kind, actor, topic, detail = record.kind, record.actor, record.topic, record.detail
    if kind == "publish" and topic:
        service, _, channel = topic.partition(".")
        sender, receiver = (("orchestrator", service) if channel == "commands"
                            else (service, "orchestrator"))
        return f"{sender} → {receiver}: {record.message_type}"
    if kind == "handle":
        return f"{actor} ran {record.message_type} as one local transaction: {detail}"
    if kind == "ignore":
        return f"{actor} ignored {record.message_type}: {detail}"
    if kind == "saga":
        return f"saga log: {detail}"
    if kind == "crash":
        return f"{actor} CRASHED at {detail}"
    if kind in ("restart", "lost", "drop", "unavailable", "duplicate", "delay"):
        return f"{actor} ({kind}): {detail}" if detail else f"{actor}: {kind}"
    return None


class SagaStepperModel:
    """One saga of ``definition`` for ``order``, with outcome toggles and a crash toggle."""

    def __init__(self, definition: SagaDefinition | None = None,
                 order: Mapping[str, Any] | None = None,
                 outcomes: Mapping[str, str] | None = None, **runner_options: Any):
        self.definition = definition if definition is not None else create_order_saga()
        self.order = dict(order if order is not None else SAMPLE_ORDER)
        self.runner_options = runner_options
        self.outcomes = dict.fromkeys(self.definition.step_names, SUCCEED)
        for step, outcome in (outcomes or {}).items():
            self._check_outcome(step, outcome)
            self.outcomes[step] = outcome
        self.crash = NO_CRASH
        self.happened: list[TraceRecord] = []
        self.reset()

    def _check_outcome(self, step: str, outcome: str) -> None:
        if step not in self.outcomes:
            raise ValueError(f"step must be one of {self.definition.step_names}, got {step!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")

    def _script(self) -> dict[str, str]:
        """The outcome toggles as the participants' script (command type -> outcome)."""
        steps = {s.name: s for s in self.definition.steps}
        return {steps[name].action: outcome for name, outcome in self.outcomes.items()
                if outcome != SUCCEED}

    # -- controls ------------------------------------------------------------------------
    def reset(self) -> None:
        """A fresh shop and a fresh saga for the order, with the current toggles."""
        self.faults = ArmedFaults()
        self.runner = SagaRunner(self.definition, faults=self.faults, outcomes=self._script(),
                                 **self.runner_options)
        self.set_crash(self.crash)
        before = len(self.runner.trace)
        self.saga_id = self.runner.start(self.order)
        self.happened = self.runner.trace.tail(len(self.runner.trace) - before)
        self.steps_taken = 0

    def set_outcome(self, step: str, outcome: str) -> None:
        """Choose what ``step``'s participant does with its command (from now on)."""
        self._check_outcome(step, outcome)
        self.outcomes[step] = outcome
        script = self._script()
        for participant in self.runner.participants.values():
            participant.set_outcomes({c: v for c, v in script.items() if participant.handles(c)})

    def set_crash(self, choice: str) -> None:
        """Arm a crash of the orchestrator at its next reaction (``'no crash'`` disarms)."""
        if choice not in CRASH_CHOICES:
            raise ValueError(f"crash must be one of {list(CRASH_CHOICES)}, got {choice!r}")
        self.crash = choice
        self.faults.arm(CRASH_CHOICES[choice])

    def step(self) -> list[TraceRecord]:
        """Advance to the next thing that happens; its trace records (empty when finished)."""
        self.happened = self.runner.step()
        if self.happened:
            self.steps_taken += 1
        self._disarm_if_fired()
        return self.happened

    def run(self) -> None:
        """Run the saga to its end."""
        before = len(self.runner.trace)
        self.runner.run()
        self.happened = self.runner.trace.tail(len(self.runner.trace) - before)
        self._disarm_if_fired()

    def _disarm_if_fired(self) -> None:
        if self.crash != NO_CRASH and not self.faults.armed:
            self.crash = NO_CRASH

    # -- what the views show ----------------------------------------------------------------
    @property
    def status(self) -> str:
        """The saga's status in the log (``running`` ... ``compensated``)."""
        return self.runner.status(self.saga_id)

    @property
    def finished(self) -> bool:
        return not self.runner.busy

    def log_rows(self) -> list[dict]:
        """The saga log of this saga, read from the orchestrator's database."""
        return self.runner.log.history(self.saga_id)

    def boxes(self) -> list[dict[str, str]]:
        """One box per step: its name, participant, kind, state (from the log) and toggle."""
        states = step_states(self.definition.step_names, self.log_rows())
        return [{"step": s.name, "participant": s.participant, "kind": s.kind,
                 "state": states[s.name], "outcome": self.outcomes[s.name]}
                for s in self.definition.steps]

    def data(self) -> dict[str, dict[str, list[dict]]]:
        """Each service's business data, read from its own database."""
        return self.runner.data()

    def lines(self) -> list[str]:
        """What the last step did, in plain words."""
        return [f"{r.time:g} ms  {text}" for r in self.happened
                if (text := describe(r)) is not None]
