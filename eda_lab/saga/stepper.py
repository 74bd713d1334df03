"""The model behind the Saga Orchestrator Stepper: sagas for one order, advanced one thing at a time.

It is built only on what the rest of the saga package offers a learner: the runner, its
participants and their crash points, the saga log.

The widget (:mod:`eda_lab.widgets.saga_stepper`) only draws this model. Everything it shows
is read back from where it lives: the boxes and the log table from the saga log in the
orchestrator's database, each service's data from that service's database, the messages from
the trace. So what the learner sees cannot disagree with what the code did.

What a learner can change, each with its mode stated:

* what each **step** does with its command: succeed, fail once, fail every time, time out
  once (a participant reads its script when the command arrives, so a toggle applies to steps
  that have not run yet);
* what each **compensation** does: succeed, fail once, fail every time. A compensation that
  fails every time exhausts its retries and the saga ends in ``needs_attention``;
* a **crash of the orchestrator** at its next reaction (before recording, after recording,
  after sending), once; it restarts later and resumes from the log;
* a **crash of one participant** in its next local transaction (before or after its commit),
  once; the command is delivered again after its restart;
* a **stop** of one participant (an :class:`~eda_lab.faults.Outage` from now on) and its
  **resume**: its commands wait in the broker, the orchestrator's deadlines run on;
* a **second saga for the same order**, to watch the semantic lock refuse it.
* a fault on the **next message in flight**, once: drop the next delivery (the broker
  delivers it again later), duplicate it (the receiver answers the copy from its stored reply),
  or delay the next message sent (visible only after the broker's ``delay_ms``).

:meth:`SagaStepperModel.agreement` answers "do the services agree yet?" and for how long they
disagreed, in simulated ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..faults import Crash, FaultPlan, Outage
from ..trace import TraceRecord
from .definition import SagaDefinition, create_order_saga
from .log import step_states
from .orchestrator import AFTER_RECORD, AFTER_SEND, BEFORE_RECORD
from .participants import AFTER_COMMIT, BEFORE_COMMIT, DONE, FAIL, SUCCEED, TIME_OUT
from .runner import SagaRunner

SAMPLE_ORDER = {"order_id": "order-1", "customer": "alice", "sku": "book", "quantity": 2,
                "amount": 30.0}
NO_CRASH = "no crash"
# What the crash toggle offers: a label for the learner -> the crash point it arms.
CRASH_CHOICES = {NO_CRASH: None, "before record": BEFORE_RECORD, "after record": AFTER_RECORD,
                 "after send": AFTER_SEND}
# A participant's crash, in its next local transaction (once).
PARTICIPANT_CRASHES = {"before commit": BEFORE_COMMIT, "after commit": AFTER_COMMIT}

FAIL_ONCE, FAIL_ALWAYS, TIME_OUT_ONCE = "fail once", "fail every time", "time out once"
EVERY_TIME = 50   # "every time": more attempts than any retry policy makes
# A step's outcome -> the participant's script for its command (one outcome per attempt).
STEP_OUTCOMES = {SUCCEED: (), FAIL_ONCE: (FAIL,), FAIL_ALWAYS: (FAIL,) * EVERY_TIME,
                 TIME_OUT_ONCE: (TIME_OUT,)}
COMPENSATION_OUTCOMES = {SUCCEED: (), FAIL_ONCE: (FAIL,), FAIL_ALWAYS: (FAIL,) * EVERY_TIME}
# The first stepper's names, still accepted: "fail" failed the first attempt only.
_ALIASES = {FAIL: FAIL_ONCE, TIME_OUT: TIME_OUT_ONCE}
# A fault on the next message in flight (once): name -> (the broker's fault point, what it does).
MESSAGE_FAULTS = {
    "drop": ("broker.drop", "the next delivery is lost on its way; the broker delivers it "
                            "again later"),
    "duplicate": ("broker.duplicate", "the next delivery arrives twice; the receiver answers "
                                      "the copy from its stored reply"),
    "delay": ("broker.delay", "the next message sent is visible only after the broker's "
                              "delay"),
}
STOP_HORIZON_MS = 3_600_000.0   # a stopped participant is down "until resumed": an hour ahead
MAX_RUN_STEPS = 400             # run() stops after this many steps, whatever happens


class ArmedFaults(FaultPlan):
    """A fault plan whose crashes are armed by hand: each armed point fires once, next time.

    ``arm_actor(point, actor)`` arms a crash for one process only (a participant's crash
    points are shared by every participant); other processes pass the point untouched.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.actor_crashes: dict[str, str] = {}   # point -> the actor it fires for, once

    def arm(self, point: str | None) -> None:
        """Fire ``point`` the next time it is reached (None disarms everything)."""
        for planned in list(self.points):
            self.set_point(planned, None)
        if point is not None:
            self.set_point(point, self.hits.get(point, 0) + 1)

    def arm_actor(self, point: str, actor: str | None) -> None:
        """Fire ``point`` the next time ``actor`` reaches it (None disarms it)."""
        if actor is None:
            self.actor_crashes.pop(point, None)
        else:
            self.set_point(point, None)  # checks the name; the firing is decided below
            self.actor_crashes[point] = actor

    def check(self, point: str, *, trace=None, now: float = 0.0, actor: str = "") -> None:
        if self.actor_crashes.get(point) == actor:
            self.reach(point)
            del self.actor_crashes[point]
            self.fired.append((point, self.hits[point]))
            if trace is not None:
                trace.add(now, "crash", actor, detail=point)
            raise Crash(point)
        super().check(point, trace=trace, now=now, actor=actor)

    @property
    def armed(self) -> set[str]:
        """The points that will fire the next time they are reached."""
        return {point for point, (kind, value) in self._specs.items()
                if kind == "hits" and max(value) > self.hits.get(point, 0)} | set(self.actor_crashes)


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
    if kind in ("restart", "lost", "drop", "unavailable", "duplicate", "delay", "down"):
        return f"{actor} ({kind}): {detail}" if detail else f"{actor}: {kind}"
    return None


class SagaStepperModel:
    """Sagas of ``definition`` for ``order``, with outcome, crash and stop toggles.

    ``outcomes`` preset the step toggles (``{"authorize_payment": "fail once"}``),
    ``compensations`` the compensation toggles (``{"reserve_inventory": "fail every time"}``);
    other keyword arguments go to :class:`~eda_lab.saga.runner.SagaRunner`.
    """

    def __init__(self, definition: SagaDefinition | None = None,
                 order: Mapping[str, Any] | None = None,
                 outcomes: Mapping[str, str] | None = None,
                 compensations: Mapping[str, str] | None = None, **runner_options: Any):
        self.definition = definition if definition is not None else create_order_saga()
        self.order = dict(order if order is not None else SAMPLE_ORDER)
        self.runner_options = runner_options
        self.outcomes = dict.fromkeys(self.definition.step_names, SUCCEED)
        self.compensations = {s.name: SUCCEED for s in self.definition.steps if s.compensation}
        for step, outcome in (outcomes or {}).items():
            self.outcomes[step] = self._check_outcome(step, outcome)
        for step, outcome in (compensations or {}).items():
            self.compensations[step] = self._check_compensation(step, outcome)
        self.crash = NO_CRASH
        self.happened: list[TraceRecord] = []
        self.reset()

    # -- checking what a control asks for ------------------------------------------------
    def _check_outcome(self, step: str, outcome: str) -> str:
        if step not in self.outcomes:
            raise ValueError(f"step must be one of {self.definition.step_names}, got {step!r}")
        outcome = _ALIASES.get(outcome, outcome)
        if outcome not in STEP_OUTCOMES:
            raise ValueError(f"outcome must be one of {list(STEP_OUTCOMES)}, got {outcome!r}")
        return outcome

    def _check_compensation(self, step: str, outcome: str) -> str:
        if step not in self.compensations:
            raise ValueError(f"compensation step must be one of {list(self.compensations)} "
                             f"(the steps that have a compensation), got {step!r}")
        outcome = _ALIASES.get(outcome, outcome)
        if outcome not in COMPENSATION_OUTCOMES:
            raise ValueError(f"compensation outcome must be one of "
                             f"{list(COMPENSATION_OUTCOMES)}, got {outcome!r}")
        return outcome

    def _check_participant(self, participant: str) -> str:
        if participant not in self.runner.participants:
            raise ValueError(f"participant must be one of {list(self.runner.participants)}, "
                             f"got {participant!r}")
        return participant

    def _script(self) -> dict[str, tuple[str, ...]]:
        """The toggles as the participants' script (command type -> one outcome per attempt)."""
        steps = {s.name: s for s in self.definition.steps}
        script = {steps[name].action: STEP_OUTCOMES[outcome]
                  for name, outcome in self.outcomes.items() if outcome != SUCCEED}
        script.update({steps[name].compensation: COMPENSATION_OUTCOMES[outcome]
                       for name, outcome in self.compensations.items() if outcome != SUCCEED})
        return script

    # -- controls ------------------------------------------------------------------------
    def reset(self) -> None:
        """A fresh shop and a fresh saga for the order, with the current toggles."""
        self.faults = ArmedFaults()
        self.runner = SagaRunner(self.definition, faults=self.faults, outcomes=self._script(),
                                 **self.runner_options)
        self.set_crash(self.crash)
        self.participant_crash: tuple[str, str] | None = None
        self.stopped: dict[str, Outage] = {}
        self._stalled = False   # the last step found nothing to do before a stop's horizon
        self.armed_messages: dict[str, int] = {}   # name -> the visit it fires at
        before = len(self.runner.trace)
        self.saga_id = self.runner.start(self.order)
        self.saga_ids = [self.saga_id]
        self.happened = self.runner.trace.tail(len(self.runner.trace) - before)
        self.steps_taken = 0
        self._agreement: dict[str, dict[str, float | None]] = {}
        self._track_agreement()

    def _apply_script(self) -> None:
        script = self._script()
        for participant in self.runner.participants.values():
            participant.set_outcomes({c: v for c, v in script.items() if participant.handles(c)})

    def set_outcome(self, step: str, outcome: str) -> None:
        """Choose what ``step``'s participant does with its command (from now on)."""
        self.outcomes[step] = self._check_outcome(step, outcome)
        self._apply_script()

    def set_compensation(self, step: str, outcome: str) -> None:
        """Choose what the compensation of ``step`` does (from now on)."""
        self.compensations[step] = self._check_compensation(step, outcome)
        self._apply_script()

    def set_crash(self, choice: str) -> None:
        """Arm a crash of the orchestrator at its next reaction (``'no crash'`` disarms)."""
        if choice not in CRASH_CHOICES:
            raise ValueError(f"crash must be one of {list(CRASH_CHOICES)}, got {choice!r}")
        self.crash = choice
        for point in CRASH_CHOICES.values():
            if point is not None:
                self.faults.set_point(point, None)
        point = CRASH_CHOICES[choice]
        if point is not None:
            self.faults.set_point(point, self.faults.hits.get(point, 0) + 1)

    def crash_participant(self, participant: str, moment: str = "before commit") -> None:
        """Crash ``participant`` in its next local transaction, once: ``'before commit'`` (the
        transaction rolls back) or ``'after commit'`` (kept, reply not sent)."""
        self._check_participant(participant)
        if moment not in PARTICIPANT_CRASHES:
            raise ValueError(f"moment must be one of {list(PARTICIPANT_CRASHES)}, got {moment!r}")
        for point in PARTICIPANT_CRASHES.values():
            self.faults.arm_actor(point, None)
        self.faults.arm_actor(PARTICIPANT_CRASHES[moment], participant)
        self.participant_crash = (participant, moment)

    def arm_message(self, fault: str) -> None:
        """Drop, duplicate or delay the next message in flight, once (``MESSAGE_FAULTS``)."""
        if fault not in MESSAGE_FAULTS:
            raise ValueError(f"message fault must be one of {list(MESSAGE_FAULTS)}, got {fault!r}")
        point = MESSAGE_FAULTS[fault][0]
        at = self.faults.hits.get(point, 0) + 1
        self.faults.set_point(point, at)
        self.armed_messages[fault] = at

    def stop(self, participant: str) -> None:
        """Take ``participant`` down from now until :meth:`resume` (its commands wait)."""
        self._check_participant(participant)
        if participant in self.stopped:
            raise ValueError(f"{participant} is already stopped")
        now = self.runner.clock.now
        outage = Outage(participant, now, now + STOP_HORIZON_MS)
        self.stopped[participant] = outage
        self.faults.outages = (*self.faults.outages, outage)
        self.runner.trace.add(now, "down", participant,
                              detail="stopped by the learner: its commands wait in the broker")

    def resume(self, participant: str) -> None:
        """Bring a stopped ``participant`` back now: it takes the commands that waited."""
        self._check_participant(participant)
        outage = self.stopped.pop(participant, None)
        if outage is None:
            raise ValueError(f"{participant} is not stopped")
        now = self.runner.clock.now
        kept = tuple(o for o in self.faults.outages if o is not outage)
        if now > outage.start_ms:   # it was down from start until now
            kept += (Outage(participant, outage.start_ms, now),)
        self.faults.outages = kept
        self.runner.trace.add(now, "restart", participant,
                              detail="resumed by the learner: it takes what waited")
        self._stalled = False
        process = self.runner.processes[participant]
        process.wake_at = None       # its long sleep (until the outage's end) is cancelled
        process.ring()

    def start_second_saga(self) -> str:
        """Start another saga for the same order (the semantic lock should refuse it)."""
        before = len(self.runner.trace)
        saga_id = self.runner.start(self.order)
        self.saga_ids.append(saga_id)
        self.happened = self.runner.trace.tail(len(self.runner.trace) - before)
        self._track_agreement()
        return saga_id

    def step(self) -> list[TraceRecord]:
        """Advance to the next thing that happens; its trace records (empty when finished,
        or when only a stopped participant's outage end is left)."""
        if self.waiting_for_resume or self.finished:
            self.happened = []
            return self.happened
        self.happened = self.runner.step(until_ms=self._horizon())
        if self.happened:
            self.steps_taken += 1
        self._stalled = not self.happened and self._horizon() is not None
        self._after_step()
        return self.happened

    def run(self, max_steps: int = MAX_RUN_STEPS) -> int:
        """Step until every saga is finished (or a stopped participant holds it up, or
        ``max_steps``); the steps taken."""
        before = len(self.runner.trace)
        taken = 0
        while taken < max_steps and not self.finished and not self.waiting_for_resume:
            if not self.runner.step(until_ms=self._horizon()):
                self._stalled = self._horizon() is not None
                break
            taken += 1
            self.steps_taken += 1
            self._after_step()
        self.happened = self.runner.trace.tail(len(self.runner.trace) - before)
        return taken

    def _after_step(self) -> None:
        if self.crash != NO_CRASH and CRASH_CHOICES[self.crash] not in self.faults.armed:
            self.crash = NO_CRASH   # a fired crash disarms itself
        for fault, at in list(self.armed_messages.items()):
            point = MESSAGE_FAULTS[fault][0]
            if self.faults.hits.get(point, 0) >= at:   # it fired: the control is off again
                del self.armed_messages[fault]
                self.faults.set_point(point, None)
        if self.participant_crash is not None and not self.faults.actor_crashes:
            self.participant_crash = None
        self._track_agreement()

    # -- what the views show ----------------------------------------------------------------
    def _horizon(self) -> float | None:
        """When the first stopped participant's outage would end by itself (None: none)."""
        return min((o.end_ms for o in self.stopped.values()), default=None)

    @property
    def waiting_for_resume(self) -> bool:
        """True when the next thing to happen is a stopped participant's outage ending by
        itself: nothing more happens until the learner resumes it."""
        horizon = self._horizon()
        if horizon is None:
            return False
        # (or the last step found nothing before it but a relay's idle look at its log)
        return self.runner.clock.next_event_at() >= horizon or self._stalled

    @property
    def status(self) -> str:
        """The first saga's status in the log (``running`` ... ``compensated``)."""
        return self.runner.status(self.saga_id)

    @property
    def finished(self) -> bool:
        return not self.runner.busy

    def log_rows(self, saga_id: str | None = None) -> list[dict]:
        """The saga log of one saga (the first by default), read from the orchestrator's
        database."""
        return self.runner.log.history(saga_id or self.saga_id)

    def boxes(self, saga_id: str | None = None) -> list[dict[str, str]]:
        """One box per step: name, participant, kind, state (from the log), the toggles,
        and what happened to it (the last logged transition of the step, in words)."""
        rows = self.log_rows(saga_id)
        states = step_states(self.definition.step_names, rows)
        happened: dict[str, str] = {}
        for row in rows:
            if row["step"] in states and row["transition"] not in ("step_sent",
                                                                   "compensation_sent"):
                detail = row.get("detail") or ""
                happened[row["step"]] = (row["transition"].replace("_", " ")
                                         + (f": {detail}" if detail else ""))
        return [{"step": s.name, "participant": s.participant, "kind": s.kind,
                 "state": states[s.name], "outcome": self.outcomes[s.name],
                 "compensation": self.compensations.get(s.name, ""),
                 "has_compensation": "yes" if s.compensation else "",
                 "happened": happened.get(s.name, "")}
                for s in self.definition.steps]

    def data(self) -> dict[str, dict[str, list[dict]]]:
        """Each service's business data, read from its own database."""
        return self.runner.data()

    def lines(self) -> list[str]:
        """What the last step did, in plain words."""
        return [f"{r.time:g} ms  {text}" for r in self.happened
                if (text := describe(r)) is not None]

    def agrees(self, saga_id: str) -> bool:
        """Do the services agree about ``saga_id``? Either every step's effect is in place,
        or none is (each undone or never done): all or nothing, read from their databases."""
        effects = set(self.runner.effects(saga_id).values())
        return effects <= {DONE} or DONE not in effects

    def _track_agreement(self) -> None:
        now = self.runner.clock.now
        for saga_id in self.saga_ids:
            track = self._agreement.setdefault(saga_id, {"since": None, "total": 0.0})
            agree = self.agrees(saga_id)
            if not agree and track["since"] is None:
                track["since"] = now
            elif agree and track["since"] is not None:
                track["total"] += now - track["since"]
                track["since"] = None

    def agreement(self, saga_id: str | None = None) -> dict[str, Any]:
        """``{"agree": bool, "disagreed_ms": float, "since_ms": float | None}`` for one saga:
        whether the services agree now, and for how long they disagreed (so far)."""
        track = self._agreement[saga_id or self.saga_id]
        now = self.runner.clock.now
        open_ms = 0.0 if track["since"] is None else now - track["since"]
        return {"agree": track["since"] is None, "disagreed_ms": track["total"] + open_ms,
                "since_ms": track["since"]}
