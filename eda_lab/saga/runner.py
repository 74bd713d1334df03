"""Running sagas on the clock: the orchestrator and every participant as service processes.

The orchestrator and the participants are plain code (``on_reply``, ``on_command``). This
module only decides *when* they run, on the simulated clock:

* each service reads its topic through a real consumer of the broker; a message sent to it
  is taken ``latency_ms`` later (the hop), handled, and its offset committed. A crash before
  the commit means the message is delivered again;
* a service that crashes comes back ``restart_after_ms`` later. A restarted orchestrator is a
  **new object** reading the saga log, and it resumes every unfinished saga from there;
* the orchestrator's deadlines (reply timeouts, backoffs) become timers on the clock.

``step()`` advances to the next thing that happens and returns its trace records (the Saga
Orchestrator Stepper calls it once per click); ``run()`` goes on until every saga is finished
and no message is left in flight. Many sagas can run at once, on a broker, clock, trace and
fault plan shared with the rest of a simulation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from .. import _validate as check
from ..broker import Broker, BrokerUnavailable
from ..clock import Clock
from ..consumer import ConsumerWorker
from ..db import open_db
from ..faults import Crash, FaultPlan, as_fault_plan, check_outages
from ..messages import Message
from ..outbox.relay import RELAYS, STREAM_LATENCY_MS, Relay, make_relay
from ..trace import Trace, TraceRecord
from .checks import saga_problems
from .commands import commands_topic
from .definition import SagaDefinition, create_order_saga
from .log import SagaLog
from .orchestrator import (
    BACKOFF_FACTOR,
    COMMANDS_OUTBOX,
    MAX_ATTEMPTS,
    MAX_BACKOFF_MS,
    RECOVERIES,
    REPLY_TIMEOUT_MS,
    RETRY_BACKOFF_MS,
    RETRY_BUDGET_MS,
    SagaOrchestrator,
    check_retry_options,
)
from .participants import SHOP_SERVICE_NAMES, Participant, check_outcomes, shop_participants

LATENCY_MS = 10.0          # one hop: from sending a message to its receiver taking it
RESTART_AFTER_MS = 300.0   # how long a crashed service stays down
REDELIVERY_MS = 50.0       # how soon a consumer polls again after a lost or held delivery
LOG_FILE = "saga_log.db"
RETRY_FOREVER = 1_000_000  # a reply the broker refused is sent again until it goes out
RELAY_POLL_MS = 50.0       # how often a polling relay of a saga service reads its outbox
RELAY_BATCH_SIZE = 20      # ... and how much at a time (it reads on at once after a full one)
CRASH_LOOP = 20            # crashes in a row at one point, with nothing done: a crash loop
MAX_RUN_MS = 3_600_000.0   # run() gives up after an hour of simulated time
MAX_RESTARTS = 10_000      # ... or this many restarts

# What a crash loop at each point means, in words (run() says it when it stops).
_LOOPS = {
    "saga.before_record": "so it can never record a transition",
    "saga.after_record": "right after each transition it records, so it never acknowledges "
                         "a reply",
    "saga.after_send": "right after each command it sends, so it never acknowledges a reply",
    "saga.participant_before_commit": "inside its local transaction, so it never commits a "
                                      "command",
    "saga.participant_after_commit": "after each commit, before acknowledging the command, so "
                                     "the same command comes back for ever",
}


class RunStopped(RuntimeError):  # noqa: N818 - reads as what happened
    """A saga run that could not finish: a crash loop, or a bound on time or restarts."""


def crash_loop_message(service: str, point: str | None, times: int) -> str:
    why = _LOOPS.get(point or "", "so it makes no progress")
    return (f"crash loop: the {service} crashed at {point} {times} times in a row, {why}; "
            f"the run stopped (lower that fault, or give it a count such as {{{point!r}: 1}})")


class OrchestratorDown(RuntimeError):  # noqa: N818 - reads as a state, like BrokerUnavailable
    """The orchestrator crashed and has not restarted yet: it cannot start a saga now."""


class ServiceProcess:
    """One service on the clock: the consumer loop (:class:`~eda_lab.consumer.ConsumerWorker`)
    run whenever a message is sent to it, instead of polling.

    It sleeps until a message is published to one of its topics (a long poll) and wakes
    ``latency_ms`` later (the hop from the sender). Awake, it runs one turn of the loop: takes
    up to ``max_batch`` waiting messages (one by default, so a step shows one message), hands
    each to ``handle`` and commits its offset. A reply the broker refused to take is tried
    again ``redelivery_ms`` later. Handling takes no simulated time, so many sagas do not
    queue behind one another. Nothing polls while there is nothing to do.
    """

    def __init__(self, runner: ServiceHost, name: str, topics: list[str],
                 handle: Callable[[Message], Any], latency_ms: float, max_batch: int = 1):
        self.runner = runner
        self.name = name
        self.latency_ms = latency_ms
        # Its own consumer group: on a broker shared with other code, a "shipping" group that
        # reads the orders topic is someone else's.
        self.group = f"saga-{name}"
        self.worker = ConsumerWorker(runner.broker, self.group, topics,
                                     lambda delivery: handle(delivery.message), name=name,
                                     max_batch=max_batch, max_attempts=RETRY_FOREVER,
                                     backoff_ms=runner.redelivery_ms, backoff_factor=1.0,
                                     start=False, retry_on=(BrokerUnavailable,),
                                     # the saga's own crash points mark that moment
                                     before_commit_point=None)
        self.wake_at: float | None = None
        self.up = True
        self.crashes = 0
        self.crash_streak: tuple[str | None, int] = (None, 0)  # crashes in a row, at one point
        for topic in topics:  # long poll: a message sent to it wakes it (after the hop)
            runner.broker.on_publish(topic, self.ring)

    def ring(self, delay_ms: float | None = None) -> None:
        """Wake up ``delay_ms`` from now (one hop by default), unless already due sooner."""
        if not self.up:
            return
        clock = self.runner.clock
        at = clock.now + (self.latency_ms if delay_ms is None else delay_ms)
        if self.wake_at is not None and self.wake_at <= at:
            return
        self.wake_at = at
        clock.call_later(at - clock.now, functools.partial(self._wake, at))

    def _wake(self, at: float) -> None:
        if self.wake_at != at or not self.up:
            return  # replaced by an earlier wake, or the service crashed meanwhile
        self.wake_at = None
        worker, runner = self.worker, self.runner
        handled = worker.handled
        try:
            done = worker.poll_once()
        except Crash as crash:
            runner.crashed(self, crash.point)
            return
        if done or worker.handled > handled:
            self.crash_streak = (None, 0)   # it got something done: no crash loop
        if done or worker.handled > handled or worker.waiting or worker.down:
            runner.actions += 1
        wait = worker.wait_ms()
        if worker.down or worker.waiting:
            self.ring(wait)           # down, or a refused reply to send again
        elif worker.consumer.lag:
            # More is waiting: take it now, as a separate event; or it was lost on the way
            # or held back, and the broker delivers it again.
            self.ring(0.0 if done else runner.redelivery_ms)

    def __repr__(self) -> str:
        return f"ServiceProcess({self.name!r}, {'up' if self.up else 'down'})"


class ServiceHost:
    """The services of a saga, each a :class:`ServiceProcess` on one clock, and their crashes.

    What both ways of running a saga share: the orchestrated :class:`SagaRunner` and the
    choreographed :class:`~eda_lab.saga.choreography.ChoreographyRunner`. It checks the
    options, makes the broker (or takes one shared with a bigger simulation), sets up the
    participants and their step-outcome script, crashes and restarts processes, and runs the
    clock until nothing is left to do.
    """

    def __init__(self, definition: SagaDefinition | None, *, broker: Broker | None,
                 faults: FaultPlan | Mapping[str, Any] | None,
                 participants: Mapping[str, Participant] | None,
                 outcomes: Mapping[str, Any] | None, stock: Mapping[str, int] | None,
                 accounts: Mapping[str, float] | None, latency_ms: float,
                 restart_after_ms: float, redelivery_ms: float,
                 participant_dbs: Callable[[], Mapping[str, sqlite_utils.Database]] = dict,
                 check_script: Callable[[dict], None] | None = None,
                 own_parts: tuple[str, ...] = (), relay: str = "log-tailing",
                 relay_poll_ms: float = RELAY_POLL_MS):
        self.definition = definition if definition is not None else create_order_saga()
        if not isinstance(self.definition, SagaDefinition):
            raise TypeError(f"definition must be a SagaDefinition, got {type(definition).__name__}")
        for argument, value in (("latency_ms", latency_ms), ("restart_after_ms", restart_after_ms),
                                ("redelivery_ms", redelivery_ms)):
            check.ms(argument, value)
        if broker is not None and faults is not None:
            raise ValueError("pass faults to the Broker you give, or let the runner make the "
                             "broker; not both")
        self.relay_kind = check.one_of("relay", relay, RELAYS)
        self.relay_poll_ms = check.ms("relay_poll_ms", relay_poll_ms)
        self.script = check_outcomes(outcomes, list(self.definition.commands))
        if check_script is not None:  # the runner's own rule about outcomes
            check_script(self.script)
        if participants is not None and (stock is not None or accounts is not None):
            raise ValueError("stock and accounts set up the default participants; give them to "
                             "your own participants instead")
        if participants is not None:
            check.mapping("participants", participants, "{'order': OrderParticipant(broker)}")
        plan = as_fault_plan(faults)
        names = tuple(participants) if participants is not None else SHOP_SERVICE_NAMES
        check_outages(plan.outages, ("broker", *names, *own_parts))
        self.broker = broker if broker is not None else Broker(Clock(), Trace(), plan)
        self.clock: Clock = self.broker.clock
        self.trace: Trace = self.broker.trace
        if participants is None:
            participants = shop_participants(self.broker, participant_dbs(), stock=stock,
                                             accounts=accounts)
        self.participants: dict[str, Participant] = dict(participants)
        self._check_participants()
        for participant in self.participants.values():
            mine = {c: v for c, v in self.script.items() if participant.handles(c)}
            if mine or outcomes is not None:
                participant.set_outcomes(mine)
        self.latency_ms = float(latency_ms)
        self.restart_after_ms = float(restart_after_ms)
        self.redelivery_ms = float(redelivery_ms)
        self.actions = 0          # things that happened (what step() waits for)
        self.restarts = 0
        self.processes: dict[str, ServiceProcess] = {}
        self.relays: list[Relay] = []
        self.crash_loop: str | None = None   # set when a process keeps crashing at one point

    def _check_participants(self) -> None:
        for name, participant in self.participants.items():
            if participant.broker is not self.broker:
                raise ValueError(f"participants: {name!r} was made on another broker; make "
                                 "the participants on the broker you give the runner")
        for step in self.definition.steps:
            participant = self.participants.get(step.participant)
            if participant is None:
                raise ValueError(f"participants: step {step.name!r} needs a participant named "
                                 f"{step.participant!r}; given: {', '.join(self.participants)}")
            for command_type in step.commands:
                if not participant.handles(command_type):
                    raise ValueError(
                        f"participant {step.participant!r} does not handle {command_type!r} "
                        f"(step {step.name!r}); it handles {', '.join(participant.handlers)}")

    def _add_process(self, name: str, topics: list[str], handle: Callable[[Message], Any],
                     max_batch: int) -> ServiceProcess:
        process = ServiceProcess(self, name, topics, handle, self.latency_ms, max_batch)
        self.processes[name] = process
        return process

    def _add_relay(self, db: sqlite_utils.Database, table: str, topic: Callable[[str], str] | str,
                   name: str) -> Relay:
        """The relay of one service's outbox (``self.relay_kind``), running on the clock."""
        # (log tailing: every writer of these databases is in this process, so commits wake the
        # relay and an idle one sets no timer)
        settings = {"stream_latency_ms": STREAM_LATENCY_MS, "poll_fallback": False} \
            if self.relay_kind == "log-tailing" else {}
        relay = make_relay(self.relay_kind, db, self.broker, table=table, topic=topic, name=name,
                           poll_interval_ms=self.relay_poll_ms, cleanup="delete",
                           batch_size=RELAY_BATCH_SIZE, read_on_full=True,
                           restart_after_ms=self.restart_after_ms, **settings)
        relay.start()
        self.relays.append(relay)
        return relay

    # -- crashes and restarts --------------------------------------------------------------
    def crashed(self, process: ServiceProcess, point: str | None = None) -> None:
        """``process`` died (at crash ``point``): it stops, forgets what it did not commit,
        and restarts later. The same point :data:`CRASH_LOOP` times in a row, with nothing
        done in between, is a crash loop: :meth:`run` stops and says so."""
        self.actions += 1
        last, streak = process.crash_streak
        process.crash_streak = (point, streak + 1 if point == last else 1)
        if process.crash_streak[1] >= CRASH_LOOP and self.crash_loop is None:
            self.crash_loop = crash_loop_message(process.name, point, CRASH_LOOP)
        process.up = False
        process.wake_at = None
        process.crashes += 1
        process.worker.crash()
        self._lost(process)
        self.clock.call_later(self.restart_after_ms, lambda: self._restart(process))

    def _lost(self, process: ServiceProcess) -> None:
        """What else dies with ``process`` (nothing, for a participant)."""

    def _restart(self, process: ServiceProcess) -> None:
        self.actions += 1
        self.restarts += 1
        process.worker.go_online()
        process.up = True
        self.trace.add(self.clock.now, "restart", process.name, detail=self._restart_detail(process))
        if self._back(process):
            process.ring()

    def _restart_detail(self, process: ServiceProcess) -> str:
        return "back after a crash"

    def _back(self, process: ServiceProcess) -> bool:
        """A restarted process picks up its work; False if it crashed again doing so."""
        return True

    # -- running ----------------------------------------------------------------------------
    def step(self, until_ms: float | None = None) -> list[TraceRecord]:
        """Advance the clock to the next thing that happens; its trace records.

        One message handled by one service, one deadline, one crash or restart. An empty list
        means nothing is left to happen (before ``until_ms``, if given: a widget that holds a
        service stopped does not jump to the end of its outage).
        """
        before_actions = self.actions
        before_trace = len(self.trace)
        clock = self.clock
        while self.actions == before_actions and self.busy:  # (a relay's idle polls go on)
            if until_ms is not None and clock.next_event_at() >= until_ms:
                break
            if not clock.step():
                break
        return self.trace.tail(len(self.trace) - before_trace)

    @property
    def busy(self) -> bool:
        """True while a message is on its way to a service or a service (or relay) is down."""
        return (any(p.wake_at is not None or not p.up for p in self.processes.values())
                or any(relay.busy for relay in self.relays))

    def run(self, until_ms: float | None = None, *, max_ms: float = MAX_RUN_MS,
            max_restarts: int = MAX_RESTARTS) -> None:
        """Run until every saga is finished and nothing is in flight (or until ``until_ms``).

        Never for ever: a run stops with :class:`RunStopped`, saying why, after ``max_ms`` of
        simulated time or ``max_restarts`` restarts, or at once when a process crashes at the
        same point again and again (a crash loop: no restart can get it past that point).
        """
        clock = self.clock
        if until_ms is not None:
            check.ms("until_ms", until_ms, positive=False)
            if until_ms < clock.now:
                raise ValueError(f"until_ms ({until_ms}) is before now ({clock.now:g} ms)")
        check.ms("max_ms", max_ms)
        check.count("max_restarts", max_restarts, minimum=0)
        stop_at, restarts = clock.now + max_ms, self.restarts
        while self.busy:
            if self.crash_loop is not None:
                raise RunStopped(self.crash_loop)
            if self.restarts - restarts > max_restarts:
                raise RunStopped(f"stopped after {max_restarts} restarts at "
                                 f"t={clock.now:g} ms: the services keep crashing; lower the "
                                 "crash rate, or pass max_restarts to run on")
            next_at = clock.next_event_at()
            if next_at == float("inf") or (until_ms is not None and next_at > until_ms):
                break
            if next_at > stop_at:
                raise RunStopped(f"stopped at t={clock.now:g} ms: {max_ms:g} ms of simulated "
                                 "time passed and the sagas are not finished (pass max_ms to "
                                 "wait longer)")
            clock.step()

    # -- reading the outcome -----------------------------------------------------------------
    def data(self) -> dict[str, dict[str, list[dict]]]:
        """Each service's business data: service -> table -> rows."""
        return {name: p.tables() for name, p in self.participants.items()}

    def tables(self) -> dict:
        """Each service's tables as pandas tables, named ``service.table``."""
        import pandas as pd

        return {f"{service}.{name}": pd.DataFrame(rows)
                for service, tables in self.data().items() for name, rows in tables.items()}

    def effects(self, saga_id: str) -> dict[str, str]:
        """What each step of ``saga_id`` left in its participant's own data: done, undone, none."""
        return {step.name: self.participants[step.participant].effect(saga_id, step.action)
                for step in self.definition.steps}


class SagaRunner(ServiceHost):
    """The orchestrator, its saga log and the participants, scheduled on one clock.

    >>> runner = SagaRunner()
    >>> saga_id = runner.start({"order_id": "order-1", "customer": "alice", "sku": "book",
    ...                         "quantity": 1, "amount": 20.0})
    >>> runner.run()
    >>> runner.status(saga_id)
    'completed'

    ``outcomes`` scripts the participants (``{"AuthorizePayment": "fail"}``); a fault plan
    (a dict or a :class:`FaultPlan`) crashes processes at named points (``saga.after_record``),
    loses, duplicates or delays messages. ``directory`` keeps every database in a file there
    (``order.db``, ..., ``saga_log.db``); without it they live in memory. ``max_batch`` lets a
    service take several waiting messages per event (faster with many sagas at once; the
    stepper keeps 1, so each step shows one message).
    """

    def __init__(self, definition: SagaDefinition | None = None, *, broker: Broker | None = None,
                 faults: FaultPlan | Mapping[str, Any] | None = None,
                 participants: Mapping[str, Participant] | None = None,
                 directory: str | Path | None = None,
                 outcomes: Mapping[str, Any] | None = None,
                 stock: Mapping[str, int] | None = None,
                 accounts: Mapping[str, float] | None = None,
                 latency_ms: float = LATENCY_MS, restart_after_ms: float = RESTART_AFTER_MS,
                 redelivery_ms: float = REDELIVERY_MS, reply_timeout_ms: float = REPLY_TIMEOUT_MS,
                 retry_backoff_ms: float = RETRY_BACKOFF_MS,
                 backoff_factor: float = BACKOFF_FACTOR, max_attempts: int = MAX_ATTEMPTS,
                 retry_budget_ms: float = RETRY_BUDGET_MS, max_backoff_ms: float = MAX_BACKOFF_MS,
                 recovery: str = "deadlines", relay: str = "log-tailing",
                 relay_poll_ms: float = RELAY_POLL_MS, max_batch: int = 1):
        check.count("max_batch", max_batch)
        check_retry_options(reply_timeout_ms, retry_backoff_ms, backoff_factor, max_attempts,
                            retry_budget_ms, max_backoff_ms)
        check.one_of("recovery", recovery, RECOVERIES)
        if directory is not None and (not isinstance(directory, (str, Path)) or str(directory) == ""):
            raise ValueError(f"directory must be a folder for the databases (a path), or None to "
                             f"keep them in memory, got {directory!r}")
        self.directory = None if directory is None else Path(directory)
        if self.directory is not None and self.directory.exists() and not self.directory.is_dir():
            raise ValueError(f"directory must be a folder for the databases, got the file "
                             f"{str(self.directory)!r}")
        super().__init__(definition, broker=broker, faults=faults, participants=participants,
                         outcomes=outcomes, stock=stock, accounts=accounts,
                         latency_ms=latency_ms, restart_after_ms=restart_after_ms,
                         redelivery_ms=redelivery_ms, participant_dbs=self._participant_dbs,
                         own_parts=("orchestrator",), relay=relay, relay_poll_ms=relay_poll_ms)
        self._orchestrator_options = {
            "reply_timeout_ms": reply_timeout_ms, "retry_backoff_ms": retry_backoff_ms,
            "backoff_factor": backoff_factor, "max_attempts": max_attempts,
            "retry_budget_ms": retry_budget_ms, "max_backoff_ms": max_backoff_ms,
            "recovery": recovery}
        self._incarnation = 0     # the orchestrator's life; timers of a dead one do nothing
        self.resent = 0           # commands re-sent by recoveries (recovery="resend-all")
        self._deadlines: dict[str, float] = {}
        self._log_db = self._open_log_db()
        self.orchestrator: SagaOrchestrator | None = self._new_orchestrator()
        self.log: SagaLog = self.orchestrator.log
        # Every service says what it has to say through its own outbox, and a relay sends it:
        # the orchestrator its commands (to each participant's topic), a participant its replies.
        self._add_relay(self._log_db, COMMANDS_OUTBOX, commands_topic, "orchestrator-relay")
        for name, participant in self.participants.items():
            self._add_relay(participant.db, participant.outbox_table, participant.reply_topic,
                            f"{name}-relay")
            self._add_process(name, [participant.topic], participant.on_command, max_batch)
        self.orchestrator_process = self._add_process(
            self.orchestrator.name, self.orchestrator.reply_topics, self._on_reply, max_batch)
        self._resume()

    # -- wiring --------------------------------------------------------------------------
    def _participant_dbs(self) -> dict[str, sqlite_utils.Database]:
        if self.directory is None:
            return {}
        self.directory.mkdir(parents=True, exist_ok=True)
        return {name: open_db(self.directory / f"{name}.db")
                for name in ("order", "inventory", "payment", "shipping")}

    def _open_log_db(self) -> sqlite_utils.Database:
        if self.directory is None:
            return open_db()
        self.directory.mkdir(parents=True, exist_ok=True)
        return open_db(self.directory / LOG_FILE)

    def _new_orchestrator(self) -> SagaOrchestrator:
        return SagaOrchestrator(self.definition, self.broker, SagaLog(self._log_db),
                                schedule=self._schedule, **self._orchestrator_options)

    def _on_reply(self, message: Message) -> None:
        self.orchestrator.on_reply(message)

    def _schedule(self, saga_id: str, at_ms: float) -> None:
        self._deadlines[saga_id] = at_ms
        incarnation = self._incarnation
        self.clock.call_later(max(0.0, at_ms - self.clock.now),
                              lambda: self._deadline(saga_id, at_ms, incarnation))

    def _deadline(self, saga_id: str, at_ms: float, incarnation: int) -> None:
        orchestrator = self.orchestrator
        if (incarnation != self._incarnation or orchestrator is None
                or self._deadlines.get(saga_id) != at_ms or saga_id not in orchestrator.open):
            return  # a newer deadline replaced it, the saga finished, or its process died
        try:
            if orchestrator.on_deadline(saga_id) is not None:
                self.actions += 1
        except Crash as crash:
            self.crashed(self.orchestrator_process, crash.point)

    # -- crashes and restarts --------------------------------------------------------------
    def _lost(self, process: ServiceProcess) -> None:
        if process is self.orchestrator_process:  # its memory and its timers die with it
            self.orchestrator = None
            self._incarnation += 1
            self._deadlines.clear()

    def _restart_detail(self, process: ServiceProcess) -> str:
        if process is self.orchestrator_process:
            return "back after a crash: resumes sagas from the saga log"
        return super()._restart_detail(process)

    def _back(self, process: ServiceProcess) -> bool:
        if process is not self.orchestrator_process:
            return True
        self.orchestrator = self._new_orchestrator()  # knows nothing but what the log says
        self.log = self.orchestrator.log
        return self._resume()

    def _resume(self) -> bool:
        """Let the (new) orchestrator resume the unfinished sagas; False if it crashed."""
        orchestrator = self.orchestrator
        try:
            orchestrator.recover()
        except Crash as crash:
            self.crashed(self.orchestrator_process, crash.point)
            return False
        finally:
            self.resent += orchestrator.resent
        return True

    # -- what a notebook calls --------------------------------------------------------------
    def start(self, order: Mapping[str, Any], saga_id: str | None = None) -> str:
        """Start a saga for ``order`` now; returns its id (``saga-0001``, ...)."""
        orchestrator = self.orchestrator
        if orchestrator is None:
            raise OrchestratorDown(
                f"the orchestrator crashed and restarts {self.restart_after_ms:g} ms after its "
                f"crash (now: {self.clock.now:g} ms); run the clock on, then start the saga")
        if saga_id is None:
            saga_id = orchestrator.next_saga_id()
        try:
            orchestrator.start(order, saga_id)
        except Crash as crash:
            self.crashed(self.orchestrator_process, crash.point)
        self.actions += 1
        return saga_id

    @property
    def busy(self) -> bool:
        """True while a saga is unfinished, a message is in flight or a service is down."""
        return self.orchestrator is None or bool(self.orchestrator.open) or super().busy

    # -- reading the outcome -----------------------------------------------------------------
    def status(self, saga_id: str) -> str | None:
        """The saga's status from the log: running, compensating, completed, compensated,
        needs_attention (None for an unknown saga)."""
        state = self.log.get(saga_id)
        return None if state is None else state.status

    def history(self, saga_id: str | None = None):
        """The saga log as a table (of one saga, if given)."""
        return self.log.frame(saga_id)

    def problems(self, saga_id: str) -> list[str]:
        """What is wrong with ``saga_id`` once finished (see :func:`saga_problems`)."""
        return saga_problems(self.definition, self.log, self.participants, saga_id)

    def timeline(self, kinds: tuple[str, ...] = ("publish", "handle", "ignore", "saga", "crash",
                                                 "restart", "lost", "drop", "unavailable")):
        """The trace as a table, the kinds that tell the saga's story."""
        frame = self.trace.frame()
        return frame[frame["kind"].isin(kinds)].reset_index(drop=True)

    def __repr__(self) -> str:
        open_sagas = "down" if self.orchestrator is None else len(self.orchestrator.open)
        return (f"SagaRunner({self.definition.name!r}, now={self.clock.now:g} ms, "
                f"open sagas={open_sagas}, participants={list(self.participants)})")
