"""Choreography: the same Create Order saga with no orchestrator, each service reacting to events.

In notebook 05 an **orchestrator** drives the saga: it sends each participant a command, reads
the reply, and finds the compensations in one place (the definition, through its saga log). In
a **choreography** nobody drives. Each service subscribes to the events of the services it
depends on and knows, by itself, what to do when one arrives:

* the order service creates the pending order when the customer's request comes, and
  publishes ``OrderCreated``;
* inventory hears ``OrderCreated`` and reserves, publishing ``InventoryReserved`` (or
  ``InventoryReservationFailed``); payment hears ``InventoryReserved``, and so on;
* a failure is just another event: inventory hears ``PaymentDeclined`` and releases the stock,
  the order service hears ``InventoryReleased`` and rejects the order. The compensations still
  run in reverse order, but that order is now spread over the services' subscriptions.

The local transactions are exactly the participants' of :mod:`eda_lab.saga.participants`
(idempotent, one transaction per command, the outcome stored with the effect). Only the wiring
changes: a service turns an event it cares about into its own command (with the same
deterministic command id an orchestrator would use), runs it, and publishes the outcome as an
event on its own topic, ``<service>.events``, carrying the order along (there is no
orchestrator holding it). So the same outcomes leave the same data in every database.

Who reacts to what is data, :class:`Reaction`, derived from the saga definition by
:func:`choreograph` with the rule a team would follow by hand; :func:`who_knows_whom` reads
the coupling off it. Where is a saga's state? Nowhere in one place: :meth:`ChoreographyRunner.
statuses` assembles it from the events on the broker.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

from .. import _validate as check
from ..broker import Broker
from ..faults import FaultPlan
from ..messages import Message, command, thaw_json
from .checks import compensation_times, shop_problems, undone_in_order
from .commands import MAX_ATTEMPTS, check_order, command_id, commands_topic
from .definition import SagaDefinition
from .log import BACKWARD, COMPENSATED, COMPLETED, FORWARD, NEEDS_ATTENTION, RUNNING
from .participants import (
    DONE,
    NONE,
    TIME_OUT,
    UNDONE,
    Participant,
)
from .runner import (
    LATENCY_MS,
    REDELIVERY_MS,
    RESTART_AFTER_MS,
    SagaRunner,
    ServiceHost,
)

CUSTOMER = "customer"   # who sends the request that starts a choreographed saga
def events_topic(service: str) -> str:
    """The topic a service publishes its events to (the others subscribe to it)."""
    return f"{service}.events"


class Reaction(NamedTuple):
    """``service`` hears ``on`` (published by ``source``) and runs ``command`` as its own local
    transaction: the ``direction`` part of ``step``. ``retry``: the same step again, as the next
    attempt (a retriable step or a compensation that was refused)."""

    service: str
    on: str
    source: str
    command: str
    step: str
    direction: str
    retry: bool = False


class Choreography(NamedTuple):
    """The wiring of a choreographed saga: every reaction, and the events that end it."""

    definition: SagaDefinition
    reactions: tuple[Reaction, ...]
    ends: Mapping[str, str]        # event type -> the status it leaves (completed/compensated)
    turns_back: Mapping[str, str]  # refusal event that turns the saga back -> its step

    def of(self, service: str) -> dict[str, Reaction]:
        """The reactions of ``service``, by the event (or request) type it reacts to."""
        return {r.on: r for r in self.reactions if r.service == service}

    def subscriptions(self, service: str) -> list[str]:
        """The topics ``service`` must read: its requests, and the events it reacts to."""
        topics = set()
        for r in self.reactions:
            if r.service == service:
                topics.add(commands_topic(service) if r.source == CUSTOMER
                           else events_topic(r.source))
        return sorted(topics)

    def frame(self):
        """The reactions as a table: who listens to what, and what it does then."""
        import pandas as pd

        return pd.DataFrame(
            [{"service": r.service, "hears": r.on, "from": r.source, "runs": r.command,
              "step": r.step, "direction": "retry" if r.retry else r.direction}
             for r in self.reactions],
            columns=["service", "hears", "from", "runs", "step", "direction"])


def reply_types(participants: Mapping[str, Participant]) -> dict[str, tuple[str, str]]:
    """Command type -> (event when it succeeds, event when it is refused), from the services
    (a service that names none gets ``<Command>Succeeded`` and ``<Command>Failed``)."""
    return {c: p.reply_types(c) for p in participants.values() for c in p.handlers}


def choreograph(definition: SagaDefinition,
                outcome_events: Mapping[str, tuple[str, str]]) -> Choreography:
    """The reactions that run ``definition`` without an orchestrator.

    ``outcome_events`` maps each command to the events its service publishes when it succeeds
    and when it is refused (:func:`reply_types`). The rule, step by step:

    * the first step runs on the customer's request;
    * each next step runs when the previous step's success event arrives;
    * a refusal that may turn the saga back (before or at the pivot) makes the nearest earlier
      step with a compensation undo itself; each compensation's success event starts the one
      before it. When nothing is left to undo, the saga is compensated;
    * a refused retriable step, or a refused compensation, is run again by its own service;
    * the last step's success event ends the saga completed.
    """
    if not isinstance(definition, SagaDefinition):
        raise TypeError(f"definition must be a SagaDefinition, got {type(definition).__name__}")
    steps = definition.steps
    for step in steps:
        for c in step.commands:
            if c not in outcome_events:
                raise ValueError(f"outcome_events: no events for {c!r} (step {step.name!r}); "
                                 f"known commands: {', '.join(sorted(outcome_events))}")
    published = [e for s in steps for c in s.commands for e in outcome_events[c]]
    doubled = sorted({e for e in published if published.count(e) > 1})
    if doubled:
        raise ValueError(f"outcome_events: {', '.join(doubled)} would be published by two "
                         "commands; in a choreography an event must say which step it ends")
    pivot = definition.pivot_index

    def may_turn_back(i: int) -> bool:
        return pivot is None or i <= pivot

    def undo_before(i: int) -> int | None:
        """The nearest step before ``i`` that has a compensation."""
        return next((j for j in range(i - 1, -1, -1) if steps[j].compensation), None)

    reactions: list[Reaction] = []
    ends: dict[str, str] = {}
    turns_back: dict[str, str] = {}

    def undo(i: int, event: str, source: str) -> None:
        j = undo_before(i)
        if j is None:
            ends[event] = COMPENSATED
        else:
            reactions.append(Reaction(steps[j].participant, event, source,
                                      steps[j].compensation, steps[j].name, BACKWARD))

    first = steps[0]
    reactions.append(Reaction(first.participant, first.action, CUSTOMER, first.action,
                              first.name, FORWARD))
    for i, step in enumerate(steps):
        succeeded, refused = outcome_events[step.action]
        if i + 1 < len(steps):
            nxt = steps[i + 1]
            reactions.append(Reaction(nxt.participant, succeeded, step.participant, nxt.action,
                                      nxt.name, FORWARD))
        else:
            ends[succeeded] = COMPLETED
        if may_turn_back(i):
            turns_back[refused] = step.name
            undo(i, refused, step.participant)
        else:
            reactions.append(Reaction(step.participant, refused, step.participant, step.action,
                                      step.name, FORWARD, retry=True))
        if step.compensation:
            undone, not_undone = outcome_events[step.compensation]
            undo(i, undone, step.participant)
            reactions.append(Reaction(step.participant, not_undone, step.participant,
                                      step.compensation, step.name, BACKWARD, retry=True))
    order = {FORWARD: 0, BACKWARD: 1}
    reactions.sort(key=lambda r: (r.retry, order[r.direction]))  # stable: step order kept
    return Choreography(definition, tuple(reactions), ends, turns_back)


# -- who knows whom ----------------------------------------------------------------------------

class Dependency(NamedTuple):
    """``knower`` must know ``known``: the messages it sends it or reads from it."""

    knower: str
    known: str
    messages: tuple[str, ...]


def who_knows_whom(choreography: Choreography) -> list[Dependency]:
    """In a choreography: service A knows service B when A reacts to B's events."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for r in choreography.reactions:
        if r.source not in (r.service, CUSTOMER):
            pairs.setdefault((r.service, r.source), []).append(r.on)
    return [Dependency(a, b, tuple(m)) for (a, b), m in sorted(pairs.items())]


def orchestrator_knows(definition: SagaDefinition,
                       orchestrator: str = "orchestrator") -> list[Dependency]:
    """In an orchestration: the orchestrator knows every participant (the commands it sends
    them); the participants know nobody (they answer on their own replies topic)."""
    sends: dict[str, list[str]] = {}
    for step in definition.steps:
        sends.setdefault(step.participant, []).extend(step.commands)
    return [Dependency(orchestrator, p, tuple(c)) for p, c in sends.items()]


# -- running it ----------------------------------------------------------------------------

def _order_of(message: Message) -> dict[str, Any]:
    """The whole order a message carries: the customer's request is the order itself; each
    service's event carries it under ``order`` (there is no orchestrator to keep it)."""
    if message.kind == "command":
        return thaw_json(message.payload)
    return thaw_json(message.payload["order"])


class ChoreographyRunner(ServiceHost):
    """The four services of the shop on one clock, reacting to each other's events.

    >>> runner = ChoreographyRunner(outcomes={"AuthorizePayment": "fail"})
    >>> saga_id = runner.start({"order_id": "order-1", "customer": "alice", "sku": "book",
    ...                         "quantity": 1, "amount": 20.0})
    >>> runner.run()
    >>> runner.status(saga_id)
    'compensated'

    The options mean what they mean for :class:`~eda_lab.saga.SagaRunner`: ``outcomes``
    scripts the services (``"succeed"``/``"fail"``, or a list, one per attempt), a fault plan
    crashes them at the participants' crash points or drops, duplicates and delays
    deliveries; ``max_attempts`` bounds the retries of a refused retriable step or
    compensation. ``"time out"`` has no meaning here: there is no reply to lose, and events go
    through the broker at least once.
    """

    def __init__(self, definition: SagaDefinition | None = None, *, broker: Broker | None = None,
                 faults: FaultPlan | Mapping[str, Any] | None = None,
                 participants: Mapping[str, Participant] | None = None,
                 outcomes: Mapping[str, Any] | None = None,
                 stock: Mapping[str, int] | None = None,
                 accounts: Mapping[str, float] | None = None,
                 latency_ms: float = LATENCY_MS, restart_after_ms: float = RESTART_AFTER_MS,
                 redelivery_ms: float = REDELIVERY_MS, max_attempts: int = MAX_ATTEMPTS,
                 relay: str = "log-tailing", max_batch: int = 1):
        check.count("max_attempts", max_attempts)
        check.count("max_batch", max_batch)
        super().__init__(definition, broker=broker, faults=faults, participants=participants,
                         outcomes=outcomes, stock=stock, accounts=accounts,
                         latency_ms=latency_ms, restart_after_ms=restart_after_ms,
                         redelivery_ms=redelivery_ms, check_script=_no_time_out, relay=relay)
        self.choreography = choreograph(self.definition, reply_types(self.participants))
        self.max_attempts = max_attempts
        self.started: list[str] = []
        self._first = self.definition.steps[0]
        for name, participant in self.participants.items():
            self.broker.create_topic(events_topic(name))
            self._add_relay(participant.db, participant.outbox_table, events_topic(name),
                            f"{name}-relay")
        for name in self.participants:
            topics = self.choreography.subscriptions(name)
            if not topics:
                continue
            for topic in topics:
                self.broker.create_topic(topic)
            self._add_process(name, topics,
                              functools.partial(self._react, name, self.choreography.of(name)),
                              max_batch)

    # -- one service's reaction: plain code -------------------------------------------------
    def _react(self, service: str, reactions: Mapping[str, Reaction], message: Message) -> None:
        """``service`` takes ``message``: runs its local transaction if it cares, then tells."""
        reaction = reactions.get(message.type)
        if reaction is None:
            return  # an event on a topic it reads that asks nothing of it
        saga_id = message.headers.get("saga_id", message.key)
        # A retry is the refused command's next attempt; anything else starts a step (or its
        # compensation) afresh, at attempt 1, whatever attempt the event it hears came from.
        attempt = int(message.headers.get("attempt", "1")) + 1 if reaction.retry else 1
        now = self.clock.now
        if attempt > self.max_attempts:
            self.trace.add(now, "give_up", service, None, None, None, saga_id, message.id,
                           message.type, f"{reaction.command} refused {attempt - 1} times: "
                           "the saga needs attention")
            return
        cid = command_id(saga_id, reaction.step, reaction.direction, attempt)
        order = _order_of(message)
        self.trace.add(now, "react", service, None, None, None, saga_id, cid, reaction.command,
                       f"on {message.type} from {reaction.source}")
        local = command(reaction.command, saga_id, order,
                        headers={"saga_id": saga_id, "step": reaction.step,
                                 "direction": reaction.direction, "attempt": str(attempt)},
                        id=cid, clock=self.clock)
        # The participant's own local transaction; its outcome goes out as an event, to
        # whoever subscribed, instead of a reply to an orchestrator: written to its outbox in
        # that transaction, and published by its relay.
        self.participants[service].run_command(local, answer=lambda outcome: Message(
            outcome.type, saga_id, {"order": order, "detail": outcome.payload["detail"]},
            {"saga_id": saga_id, "step": reaction.step, "direction": reaction.direction,
             "attempt": str(attempt), "outcome": outcome.headers["outcome"],
             "service": service}, outcome.timestamp, outcome.id))

    # -- what a notebook calls --------------------------------------------------------------
    def start(self, order: Mapping[str, Any], saga_id: str | None = None) -> str:
        """The customer's request: publish it to the first service; returns the saga id.

        The saga id correlates every event of this order (``saga-0001``, ...). When the broker
        refuses the request, :class:`~eda_lab.broker.BrokerUnavailable` is raised and no saga
        was started: the customer sees the error and may try again.
        """
        check_order(order, saga_id)
        if saga_id is None:
            saga_id = f"saga-{len(self.started) + 1:04d}"
        if saga_id in self.started:
            raise ValueError(f"saga_id {saga_id!r} was started already; pick another id")
        first = self._first
        request = command(first.action, saga_id, dict(order),
                          headers={"saga_id": saga_id, "step": first.name,
                                   "direction": FORWARD, "attempt": "1"},
                          id=command_id(saga_id, first.name, FORWARD, 1), clock=self.clock)
        self.broker.publish(commands_topic(first.participant), request)  # may raise
        self.started.append(saga_id)
        self.actions += 1
        return saga_id

    # -- reading the outcome: assembled from the events ----------------------------------------
    def events(self, saga_id: str | None = None) -> list[Message]:
        """Every event the services published (of one saga, if given), topic by topic."""
        out = []
        for name in self.participants:
            for message in self.broker.messages(events_topic(name)):
                if saga_id is None or message.key == saga_id:
                    out.append(message)
        return out

    def statuses(self) -> dict[str, str]:
        """Each started saga's status, read off the events: completed, compensated,
        needs_attention (a refusal retried ``max_attempts`` times) or running."""
        ends = self.choreography.ends
        retried = {r.on for r in self.choreography.reactions if r.retry}
        found: dict[str, str] = {}
        for message in self.events():
            saga_id = message.key
            if message.type in ends:
                found[saga_id] = ends[message.type]
            elif (message.type in retried and found.get(saga_id) is None
                  and int(message.headers.get("attempt", "1")) >= self.max_attempts):
                found[saga_id] = NEEDS_ATTENTION
        return {saga_id: found.get(saga_id, RUNNING) for saga_id in self.started}

    def status(self, saga_id: str) -> str | None:
        """The status of ``saga_id`` (None for a saga this runner never started)."""
        return self.statuses().get(saga_id)

    def expected_compensations(self, saga_id: str) -> list[str]:
        """The steps that must be undone, last first: the ones before the refusal that turned
        the saga back (found among its events) that have a compensation."""
        turns_back = self.choreography.turns_back
        failed = next((turns_back[m.type] for m in self.events(saga_id)
                       if m.type in turns_back), None)
        if failed is None:
            return []
        return [s.name for s in self.definition.compensation_order(
            self.definition.index(failed))]

    def problems(self, saga_id: str) -> list[str]:
        """What breaks the saga's promise for ``saga_id``: all done, or all undone in reverse
        order, read from every service's own data (an empty list when it holds)."""
        status = self.status(saga_id)
        if status is None:
            return [f"{saga_id}: never started here"]
        if status == NEEDS_ATTENTION:
            return [f"{saga_id} needs attention: a refusal was retried {self.max_attempts} times"]
        if status == RUNNING:
            return [f"{saga_id} is still running"]
        problems = []
        undoable = {s.name for s in self.definition.steps if s.compensation}
        for step, effect in self.effects(saga_id).items():
            if status == COMPLETED and effect != DONE:
                problems.append(f"{saga_id} completed but {step} is {effect}")
            if status == COMPENSATED and step in undoable and effect not in (NONE, UNDONE):
                problems.append(f"{saga_id} compensated but {step} is still {effect}")
        times = compensation_times(self.definition, self.participants, saga_id)
        expected = self.expected_compensations(saga_id) if status == COMPENSATED else []
        if not undone_in_order(times, expected):  # same-millisecond ties count as in order
            applied = [name for _, name in times]
            problems.append(f"{saga_id}: the services undid {applied}, expected {expected}")
        return problems

    def shop_problems(self) -> list[str]:
        """Bookkeeping broken inside any service's database (stock, credit)."""
        return shop_problems(self.participants)

    def __repr__(self) -> str:
        return (f"ChoreographyRunner({self.definition.name!r}, now={self.clock.now:g} ms, "
                f"sagas={len(self.started)}, services={list(self.participants)})")


def _no_time_out(script: Mapping[str, tuple[str, ...]]) -> None:
    for command_type, values in script.items():
        if TIME_OUT in values:
            raise ValueError(
                f"outcomes[{command_type!r}]: 'time out' loses a reply to an orchestrator; a "
                "choreography has no replies, and its events go through the broker at least "
                "once. Use 'succeed' or 'fail'")


# -- comparing the two styles, from the trace ---------------------------------------------------

def traffic(frame, saga_id: str) -> dict[str, int]:
    """The messages of one saga, from ``trace.frame()``: published, delivered (duplicates
    included), and local transactions run (``handle``; a duplicate answered is not one)."""
    mine = frame[frame["key"] == saga_id]
    topics = mine["topic"].fillna("")
    published = mine[(mine["kind"] == "publish") & ~topics.str.endswith(".DLT")]
    delivered = mine[mine["kind"].isin(["deliver", "duplicate"])]
    return {"published": len(published), "delivered": len(delivered),
            "local transactions": int((mine["kind"] == "handle").sum())}


def story(frame, saga_id: str) -> list[dict]:
    """Who decided what, in order, for one saga: the orchestrator's transitions (``saga``), a
    service reacting to an event (``react``), a local transaction (``handle``)."""
    kinds = {"saga": "decides", "react": "hears", "handle": "runs", "give_up": "gives up"}
    rows = []
    mine = frame[(frame["key"] == saga_id) & frame["kind"].isin(list(kinds))]
    for row in mine.itertuples():
        if row.kind == "handle":
            what = f"{row.message_type}: {row.detail}"
        elif row.kind == "react":
            what = f"{row.detail.removeprefix('on ')} -> runs {row.message_type}"
        else:
            what = row.detail
        rows.append({"t (ms)": row.time, "who": row.actor, "does": kinds[row.kind],
                     "what": what})
    return rows


def _count_services(dependencies: list[Dependency]) -> int:
    return len({d.knower for d in dependencies} | {d.known for d in dependencies})


def coupling_summary(definition: SagaDefinition,
                     outcome_events: Mapping[str, tuple[str, str]]) -> list[dict]:
    """Per style: how many 'knows' arrows, and how many services must know another one."""
    chor = who_knows_whom(choreograph(definition, outcome_events))
    orch = orchestrator_knows(definition)
    return [{"style": name, "arrows": len(deps),
             "services that know another": len({d.knower for d in deps}),
             "parts involved": _count_services(deps)}
            for name, deps in (("orchestration", orch), ("choreography", chor))]


STYLES = ("orchestration", "choreography")


def run_saga(style: str, order: Mapping[str, Any], outcomes: Mapping[str, Any] | None = None,
             **options: Any) -> tuple[SagaRunner | ChoreographyRunner, str]:
    """One Create Order saga for ``order``, run to its end in ``style``; (runner, saga id).

    The same participants, data and ``outcomes`` either way, so the two can be compared.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    runner_class = SagaRunner if style == "orchestration" else ChoreographyRunner
    runner = runner_class(outcomes=outcomes, **options)
    saga_id = runner.start(order)
    runner.run()
    return runner, saga_id
