"""The saga orchestrator: sends each step as a command, reacts to replies, undoes on failure.

It is plain, synchronous code with four entry points, each a complete reaction:

* ``start(order)``: create the saga and send the first command;
* ``on_reply(reply)``: a participant answered; go forward, turn back, or retry;
* ``on_deadline(saga_id)``: a reply deadline passed (a **timeout**) or a backoff ended;
* ``recover()``: after a restart, pick up every unfinished saga from the saga log.

Every reaction is **one local transaction** in the orchestrator's own database: the
transition goes into the saga log, and the command it decides on goes into the
orchestrator's **outbox**, together (notebook 04's outbox, used by the orchestrator itself: a
relay publishes the command). So a crash can never leave a transition recorded and its
command unsent, or a command sent for a transition that was never recorded. The deadline of
each reply is stored with the saga, so a restarted orchestrator only re-arms its timers; it
re-sends nothing, and a deadline that passes re-sends just that saga's command, with the same
command id (the participant answers a duplicate with its stored reply). This is what
Eventuate Tram Sagas, Debezium's saga example, MassTransit and NServiceBus do, and Temporal's
durable timers.

``recovery="resend-all"`` keeps the course's first orchestrator for comparison: it records,
then publishes the command itself (the database-then-broker dual write of notebook 03), and to
cover the lost sends it re-sends the command of every open saga the moment it restarts. At a
high crash rate those re-sends feed new crashes: notebook 07 shows the storm and its cure.

What it does when things go wrong:

==================================  ==========================================================
a step is refused, before or at     compensations of the completed steps, in reverse order;
the pivot (a business failure)      the saga ends ``compensated``
a retriable step is refused         a new attempt after a backoff (up to ``max_attempts``)
no reply before the deadline        a **technical** failure: the same command again, after a
(a timeout: the participant is      capped exponential backoff with jitter, for as long as
down, slow, or its reply was lost)  ``retry_budget_ms`` lasts (a routine outage is ridden out)
a compensation is refused           retried (up to ``max_attempts``); it must succeed
retries run out                     the saga stops in ``needs_attention``: visible, never silent
a duplicate or late reply           ignored: it does not match the command the saga waits for
==================================  ==========================================================
"""

from __future__ import annotations

import random
from collections.abc import Callable, KeysView, Mapping
from typing import Any

import sqlite_utils

from .. import _validate as check
from ..broker import Broker, BrokerUnavailable
from ..db import open_db, transaction
from ..faults import crash_point
from ..messages import command
from ..outbox.table import create_outbox, encode_payload, write_event
from .commands import MAX_ATTEMPTS, check_order, command_id, commands_topic, replies_topic
from .definition import SagaDefinition
from .log import (
    BACKWARD,
    COMPENSATED,
    COMPENSATING,
    COMPLETED,
    FORWARD,
    NEEDS_ATTENTION,
    RUNNING,
    SagaLog,
    SagaState,
    Transition,
)

BEFORE_RECORD = crash_point(
    "saga.before_record",
    "the orchestrator took a reply and died before recording it: the reply is not committed "
    "on the broker, so it is delivered again after the restart")
AFTER_RECORD = crash_point(
    "saga.after_record",
    "the orchestrator recorded a transition (with its command, in the outbox) and died before "
    "committing the reply it reacted to: the reply comes again and is ignored as a duplicate. "
    "(recovery='resend-all': died before sending the command; recovery re-sends it)")
AFTER_SEND = crash_point(
    "saga.after_send",
    "recovery='resend-all' only: the orchestrator published the next command itself and died "
    "before committing the reply it reacted to: the reply comes again and is ignored")

RECOVERIES = ("deadlines", "resend-all")
COMMANDS_OUTBOX = "outbox"     # the orchestrator's outbox table, in the saga log's database
REPLY_TIMEOUT_MS = 1_000.0
RETRY_BACKOFF_MS = 200.0
BACKOFF_FACTOR = 2.0
MAX_BACKOFF_MS = 5_000.0       # a backoff never grows past this
JITTER = 0.2                   # each backoff is drawn within +-20% (retries spread out)
# Technical retries go on this long after a command was first sent: a participant that is
# down for a minute (a deploy, a restart) is ridden out, and then a person is asked.
RETRY_BUDGET_MS = 120_000.0
_EPSILON_MS = 1e-6  # a timer fires at now + (deadline - now), which may round below deadline


Schedule = Callable[[str, float], None]


def check_retry_options(reply_timeout_ms: float, retry_backoff_ms: float, backoff_factor: float,
                        max_attempts: int, retry_budget_ms: float = RETRY_BUDGET_MS,
                        max_backoff_ms: float = MAX_BACKOFF_MS) -> None:
    """Refuse timeouts and retry settings the orchestrator cannot work with, naming each."""
    check.ms("reply_timeout_ms", reply_timeout_ms)
    check.ms("retry_backoff_ms", retry_backoff_ms)
    check.number("backoff_factor", backoff_factor, minimum=1)
    check.count("max_attempts", max_attempts)
    check.ms("retry_budget_ms", retry_budget_ms)
    check.ms("max_backoff_ms", max_backoff_ms)


class SagaOrchestrator:
    """Runs the sagas of one definition over a broker, recording every transition first.

    ``log`` is the saga log (a :class:`SagaLog`, or a database to keep it in; in-memory when
    omitted); the orchestrator's outbox is a table in the same database. ``schedule(saga_id,
    at_ms)``, if given, is called whenever a saga gets a new deadline, so a runner can call
    :meth:`on_deadline` then; without it, call :meth:`tick`. ``recovery`` is ``"deadlines"``
    (commands through the outbox, durable deadlines) or ``"resend-all"`` (see the module doc).
    """

    def __init__(self, definition: SagaDefinition, broker: Broker,
                 log: SagaLog | sqlite_utils.Database | None = None, *,
                 reply_timeout_ms: float = REPLY_TIMEOUT_MS,
                 retry_backoff_ms: float = RETRY_BACKOFF_MS,
                 backoff_factor: float = BACKOFF_FACTOR, max_attempts: int = MAX_ATTEMPTS,
                 retry_budget_ms: float = RETRY_BUDGET_MS,
                 max_backoff_ms: float = MAX_BACKOFF_MS, recovery: str = "deadlines",
                 schedule: Schedule | None = None, name: str = "orchestrator"):
        if not isinstance(definition, SagaDefinition):
            raise TypeError(f"definition must be a SagaDefinition, got {type(definition).__name__}")
        check_retry_options(reply_timeout_ms, retry_backoff_ms, backoff_factor, max_attempts,
                            retry_budget_ms, max_backoff_ms)
        self.recovery = check.one_of("recovery", recovery, RECOVERIES)
        self.definition = definition
        self.broker = broker
        self.clock = broker.clock
        if log is None:
            log = open_db()
        self.log = log if isinstance(log, SagaLog) else SagaLog(log)
        create_outbox(self.log.db, COMMANDS_OUTBOX)
        self.reply_timeout_ms = float(reply_timeout_ms)
        self.retry_backoff_ms = float(retry_backoff_ms)
        self.backoff_factor = float(backoff_factor)
        self.max_attempts = max_attempts
        self.retry_budget_ms = float(retry_budget_ms)
        self.max_backoff_ms = float(max_backoff_ms)
        self.schedule = schedule
        self.name = name
        steps = definition.steps
        self._steps = steps
        self._index = {s.name: i for i, s in enumerate(steps)}
        self._last = len(steps) - 1
        pivot = definition.pivot_index
        # A refusal may still turn the saga back at every step before the pivot, and at the
        # pivot itself (a refusal there is the "no-go").
        self._may_turn_back = [pivot is None or i <= pivot for i in range(len(steps))]
        self._topics = {s.participant: commands_topic(s.participant) for s in steps}
        for topic in self._topics.values():
            broker.create_topic(topic)
        self.reply_topics = sorted({replies_topic(s.participant) for s in steps})
        for topic in self.reply_topics:
            broker.create_topic(topic)
        # The state of each saga this instance knows is unfinished, as it last wrote it to the
        # log (filled by start and recover). A reply or a deadline then needs no read, as
        # Temporal's workers keep their workflows' state in memory; the log stays the truth:
        # a restarted orchestrator is a new object, and recover() reads it all from the log.
        self._states: dict[str, SagaState] = {}
        self.resent = 0   # commands re-sent by recovery (resend-all only)

    @property
    def open(self) -> KeysView[str]:
        """The sagas this instance knows are unfinished: a runner tells when it is done without
        a query per event."""
        return self._states.keys()

    # -- the four entry points -------------------------------------------------------------
    def start(self, order: Mapping[str, Any], saga_id: str | None = None) -> str:
        """Create a saga for ``order`` (a dict with at least ``order_id``) and send step 1."""
        order_id = check_order(order, saga_id)
        if saga_id is None:
            saga_id = self.next_saga_id()
        now = self.clock.now
        first = self._steps[0]
        cid = command_id(saga_id, first.name, FORWARD, 1)
        state = SagaState(saga_id=saga_id, definition=self.definition.name, order_id=order_id,
                          payload=dict(order), status=RUNNING, step=0, direction=FORWARD,
                          attempt=1, tries=1, command_id=cid, awaiting=True,
                          deadline_ms=now + self.reply_timeout_ms, started_ms=now,
                          updated_ms=now, since_ms=now)
        transitions = [Transition("started", detail=f"for {order_id}"),
                       Transition("step_sent", first.name, 1, cid, first.action)]
        self._act(state, transitions, now, new=True)
        return saga_id

    def on_reply(self, reply) -> str:
        """React to a participant's reply; returns the last transition, or 'ignored'."""
        now = self.clock.now
        faults = self.broker.faults
        faults.check(BEFORE_RECORD, trace=self.broker.trace, now=now, actor=self.name)
        headers = reply.headers
        saga_id = headers.get("saga_id", reply.key)
        state = self._state_of(saga_id)
        wanted = headers.get("command_id")
        if state is None or state.finished or state.command_id != wanted:
            why = ("for an unknown saga" if state is None else
                   f"the saga is {state.status}" if state.finished else
                   "it answers a command the saga no longer waits for")
            self.broker.trace.add(now, "ignore", self.name, None, None, None, saga_id, reply.id,
                                  reply.type, f"duplicate or late reply: {why}")
            return "ignored"
        succeeded = headers.get("outcome") == "succeeded"
        detail = str(reply.payload.get("detail", ""))
        step = self._steps[state.step]
        if state.direction == FORWARD:
            if succeeded:
                transitions = [Transition("step_succeeded", step.name, state.attempt, wanted,
                                          detail)]
                new = self._forward_from(state, state.step + 1, transitions, now)
            else:
                transitions = [Transition("step_failed", step.name, state.attempt, wanted, detail)]
                if self._may_turn_back[state.step]:
                    new = self._turn_back(state, detail, transitions, now)
                else:
                    new = self._next_attempt(state, detail, transitions, now)
        elif succeeded:
            transitions = [Transition("compensation_succeeded", step.name, state.attempt, wanted,
                                      detail)]
            new = self._backward_to(state, state.plan, transitions, now)
        else:
            transitions = [Transition("compensation_failed", step.name, state.attempt, wanted,
                                      detail)]
            new = self._next_attempt(state, detail, transitions, now)
        return self._act(new, transitions, now)

    def on_deadline(self, saga_id: str) -> str | None:
        """A deadline passed: send again after a backoff, or handle a reply timeout.

        Returns the last transition, or None when nothing was due (a stale timer).
        """
        now = self.clock.now
        state = self._state_of(saga_id)
        if (state is None or state.finished or state.deadline_ms is None
                or state.deadline_ms > now + _EPSILON_MS):
            return None
        step = self._steps[state.step]
        forward = state.direction == FORWARD
        if not state.awaiting:  # a backoff ended: send (again), the same command id
            new = state.but(awaiting=True, deadline_ms=now + self.reply_timeout_ms)
            transitions = [Transition("step_sent" if forward else "compensation_sent", step.name,
                                      state.attempt, state.command_id,
                                      f"{self._command_type(state)} (try {state.tries})")]
            return self._act(new, transitions, now)
        why = f"no reply within {self.reply_timeout_ms:g} ms"
        transitions = [Transition("step_timed_out" if forward else "compensation_timed_out",
                                  step.name, state.attempt, state.command_id, why)]
        return self._act(self._resend_later(state, why, transitions, now), transitions, now)

    def recover(self) -> list[str]:
        """Resume every unfinished saga of this definition from the log; their ids.

        ``recovery="deadlines"``: each saga's stored deadline is armed again; nothing is sent
        (every command the log says was sent is in the outbox, on its way). ``"resend-all"``:
        the command of every saga waiting for a reply is sent again at once (it may never have
        left: the crash may have come between recording and sending).
        """
        resumed, rearmed = [], []
        now = self.clock.now
        for state in self.log.unfinished(self.definition.name):
            self._remember(state, now)   # as the log has it once "resumed" is written
            step = self._steps[state.step]
            if self.recovery == "deadlines" or not state.awaiting:
                if self.schedule is not None and state.deadline_ms is not None:
                    self.schedule(state.saga_id, state.deadline_ms)
                what = "reply" if state.awaiting else "backoff"
                rearmed.append((state, Transition(
                    "resumed", step.name, state.attempt, state.command_id,
                    f"the {what} deadline at {state.deadline_ms:g} ms is armed again")))
            else:
                new = state.but(deadline_ms=now + self.reply_timeout_ms)
                self.resent += 1
                self._act(new, [Transition("resumed", step.name, state.attempt,
                                           state.command_id,
                                           f"sends {self._command_type(state)} again")], now)
            resumed.append(state.saga_id)
        if rearmed:  # written down, one transaction for all: the history shows the restart
            with transaction(self.log.db) as conn:
                self.log.write_resumed(conn, [(state.saga_id, t) for state, t in rearmed], now)
            if self.broker.trace.enabled:
                for state, t in rearmed:
                    self.broker.trace.add(now, "saga", self.name, None, None, None, state.saga_id,
                                          t.command_id, None, f"resumed {t.step}: {t.detail}")
        return resumed

    def tick(self) -> list[str]:
        """Handle every deadline that has passed (for use without a ``schedule`` hook)."""
        done = []
        for saga_id in self.due():
            if self.on_deadline(saga_id) is not None:
                done.append(saga_id)
        return done

    def due(self) -> list[str]:
        """The unfinished sagas whose deadline has passed."""
        rows = self.log.db.execute(
            "SELECT saga_id FROM sagas WHERE status IN (?, ?) AND deadline_ms <= ? "
            "ORDER BY deadline_ms, saga_id", (RUNNING, COMPENSATING, self.clock.now))
        return [r[0] for r in rows]

    def next_saga_id(self) -> str:
        """A fresh saga id, ``saga-0001``, ``saga-0002``, ... (from the log: survives restarts)."""
        row = self.log.db.execute("SELECT max(rowid) FROM sagas").fetchone()
        return f"saga-{(row[0] or 0) + 1:04d}"

    # -- deciding the next state -----------------------------------------------------------
    def _sent(self, state: SagaState, now: float, **changes: Any) -> SagaState:
        """The state of a saga that sends a new command now (a step, an attempt, an undo)."""
        return state.but(tries=1, awaiting=True, deadline_ms=now + self.reply_timeout_ms,
                         since_ms=now, **changes)

    def _forward_from(self, state: SagaState, index: int, transitions: list,
                      now: float) -> SagaState:
        if index > self._last:
            transitions.append(Transition("completed"))
            return state.but(status=COMPLETED, command_id=None, awaiting=False, deadline_ms=None)
        step = self._steps[index]
        cid = command_id(state.saga_id, step.name, FORWARD, 1)
        transitions.append(Transition("step_sent", step.name, 1, cid, step.action))
        return self._sent(state, now, step=index, attempt=1, command_id=cid)

    def _turn_back(self, state: SagaState, reason: str, transitions: list[Transition],
                   now: float) -> SagaState:
        """Start compensating: the completed steps that have a compensation, last first."""
        undo = self.definition.compensation_order(state.step)
        plan = tuple(self._index[s.name] for s in undo)
        state = state.but(reason=reason)
        if plan:
            names = ", ".join(self._steps[i].name for i in plan)
            transitions.append(Transition("compensating", detail=f"undo in this order: {names}"))
        return self._backward_to(state, plan, transitions, now)

    def _backward_to(self, state: SagaState, plan: tuple[int, ...], transitions: list,
                     now: float) -> SagaState:
        if not plan:
            transitions.append(Transition("compensated", detail=state.reason))
            return state.but(status=COMPENSATED, direction=BACKWARD, plan=(), command_id=None,
                             awaiting=False, deadline_ms=None)
        index, rest = plan[0], plan[1:]
        step = self._steps[index]
        cid = command_id(state.saga_id, step.name, BACKWARD, 1)
        transitions.append(Transition("compensation_sent", step.name, 1, cid, step.compensation))
        return self._sent(state, now, status=COMPENSATING, direction=BACKWARD, step=index,
                          plan=rest, attempt=1, command_id=cid)

    def _backoff(self, state: SagaState, n: int) -> float:
        """The wait before try or attempt ``n + 1``: exponential, capped, with a jitter drawn
        from the saga's id, so a run repeats and sagas that failed together spread out."""
        wait = min(self.max_backoff_ms, self.retry_backoff_ms * self.backoff_factor ** (n - 1))
        spread = random.Random(f"{state.saga_id}:{state.command_id}:{n}").uniform(-JITTER, JITTER)
        return round(wait * (1 + spread), 1)

    def _next_attempt(self, state: SagaState, why: str, transitions: list, now: float) -> SagaState:
        """A refused command that must not turn the saga back: a new attempt after a backoff."""
        if state.attempt >= self.max_attempts:
            return self._needs_attention(state, f"refused {state.attempt} times, last: {why}",
                                         transitions)
        attempt = state.attempt + 1
        step = self._steps[state.step]
        cid = command_id(state.saga_id, step.name, state.direction, attempt)
        wait = self._backoff(state, state.attempt)
        transitions.append(Transition("retry_scheduled", step.name, attempt, cid,
                                      f"attempt {attempt} in {wait:g} ms"))
        return state.but(attempt=attempt, tries=1, command_id=cid, awaiting=False,
                         deadline_ms=now + wait, since_ms=now + wait)

    def _resend_later(self, state: SagaState, why: str, transitions: list, now: float) -> SagaState:
        """No answer (a timeout, a refused send): the same command again after a backoff,
        while the retry budget lasts (a technical failure goes away: the participant restarts,
        the network heals)."""
        wait = self._backoff(state, state.tries)
        if now + wait - state.since_ms > self.retry_budget_ms:
            return self._needs_attention(
                state, f"{state.tries} tries in {now - state.since_ms:g} ms unanswered: {why}",
                transitions)
        transitions.append(Transition("retry_scheduled", self._steps[state.step].name,
                                      state.attempt, state.command_id,
                                      f"try {state.tries + 1} in {wait:g} ms"))
        return state.but(tries=state.tries + 1, awaiting=False, deadline_ms=now + wait)

    def _needs_attention(self, state: SagaState, reason: str, transitions: list) -> SagaState:
        transitions.append(Transition("needs_attention", self._steps[state.step].name,
                                      state.attempt, state.command_id, reason))
        return state.but(status=NEEDS_ATTENTION, awaiting=False, deadline_ms=None,
                         reason=reason)

    def _command_type(self, state: SagaState) -> str:
        step = self._steps[state.step]
        return step.action if state.direction == FORWARD else step.compensation

    def _command_headers(self, state: SagaState) -> dict[str, str]:
        step = self._steps[state.step]
        return {"saga_id": state.saga_id, "step": step.name, "direction": state.direction,
                "attempt": str(state.attempt), "command_id": state.command_id,
                "try": str(state.tries)}

    # -- recording, then acting --------------------------------------------------------------
    def _act(self, state: SagaState, transitions: list, now: float, new: bool = False) -> str:
        """Record the transitions and the new state, with the command they decide on, in one
        local transaction (``resend-all``: record, then publish the command); then arm the
        deadline."""
        sends = state.awaiting and not state.finished
        with transaction(self.log.db) as conn:
            self.log.write(conn, state, transitions, now, new=new)
            if sends and self.recovery == "deadlines":
                step = self._steps[state.step]
                write_event(conn, id=f"{state.command_id}/try-{state.tries}",
                            aggregatetype=step.participant, aggregateid=state.saga_id,
                            type=self._command_type(state), payload=encode_payload(state.payload),
                            created_at=now, headers=self._command_headers(state),
                            table=COMMANDS_OUTBOX)
        trace, faults = self.broker.trace, self.broker.faults
        if trace.enabled:
            for t in transitions:
                what = t.transition if t.step is None else f"{t.transition} {t.step}"
                trace.add(now, "saga", self.name, None, None, None, state.saga_id, t.command_id,
                          None, f"{what}: {t.detail}" if t.detail else what)
        self._remember(state, now)
        if not state.finished and self.schedule is not None and state.deadline_ms is not None:
            self.schedule(state.saga_id, state.deadline_ms)
        faults.check(AFTER_RECORD, trace=trace, now=now, actor=self.name)
        if sends and self.recovery == "resend-all":
            self._send(state, now)
            faults.check(AFTER_SEND, trace=trace, now=now, actor=self.name)
        return transitions[-1].transition

    def _state_of(self, saga_id: str) -> SagaState | None:
        """The saga's current state: as this instance last wrote it, else read from the log
        (a finished saga, or one this instance never heard of)."""
        state = self._states.get(saga_id)
        return state if state is not None else self.log.get(saga_id)

    def _remember(self, state: SagaState, now: float) -> None:
        """Keep ``state`` as the log holds it once written at ``now``; forget a finished saga
        (the log has it, and nothing happens to it any more)."""
        if state.finished:
            self._states.pop(state.saga_id, None)
        else:
            self._states[state.saga_id] = state.but(updated_ms=now)

    def _send(self, state: SagaState, now: float) -> None:
        """resend-all only: publish the command, after the transaction (a dual write)."""
        step = self._steps[state.step]
        message = command(self._command_type(state), state.saga_id, state.payload,
                          headers=self._command_headers(state), id=state.command_id,
                          clock=self.clock)
        try:
            self.broker.publish(self._topics[step.participant], message)
        except BrokerUnavailable as error:
            transitions = [Transition("send_failed", step.name, state.attempt, state.command_id,
                                      str(error))]
            self._act(self._resend_later(state, "the broker refused the send", transitions,
                                         now), transitions, now)

    def __repr__(self) -> str:
        return (f"SagaOrchestrator({self.definition.name!r}, open={len(self.open)}, "
                f"recovery={self.recovery!r}, reply_timeout_ms={self.reply_timeout_ms:g})")
