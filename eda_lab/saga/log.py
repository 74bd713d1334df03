"""The saga log: where the orchestrator writes down every transition, with the command it sends.

An orchestrator is a process, and processes die. What makes a saga survive that is the
transactional outbox of notebook 04, used by the orchestrator itself: the transition
(``step_succeeded`` + ``step_sent`` for the next step) and the next command (a row of the
orchestrator's outbox) are written in ONE local transaction in its own database, and a relay
publishes the command. There is no moment where one exists without the other. A crash before
the commit loses nothing either: the reply was not committed on the broker, so it is
delivered again. (``recovery="resend-all"`` records first and publishes after: see
:mod:`eda_lab.saga.orchestrator` for what that costs.)

Two tables: ``sagas`` holds the current state of each saga (one row, updated), ``saga_log``
the history of transitions (append-only). They are written in the same transaction, so the
history and the state never disagree.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import sqlite_utils

from ..db import transaction

# Saga statuses. The last three are final: the orchestrator never touches such a saga again.
RUNNING = "running"
COMPENSATING = "compensating"
COMPLETED = "completed"
COMPENSATED = "compensated"
NEEDS_ATTENTION = "needs_attention"
FINAL = frozenset((COMPLETED, COMPENSATED, NEEDS_ATTENTION))

FORWARD = "forward"
BACKWARD = "backward"

# Transitions, as written in the saga log (one row each).
TRANSITIONS = {
    "started": "the saga was created for an order",
    "step_sent": "the command of a step was sent to its participant",
    "step_succeeded": "the participant replied that the step succeeded",
    "step_failed": "the participant refused the step (a business failure)",
    "step_timed_out": "no reply came before the deadline",
    "send_failed": "the broker refused the command; it is sent again after a backoff",
    "retry_scheduled": "the command will be sent again after a backoff",
    "compensating": "the saga turned back: compensations run in reverse order",
    "compensation_sent": "the compensation of a completed step was sent",
    "compensation_succeeded": "the participant undid the step",
    "compensation_failed": "the participant could not undo the step (retried)",
    "compensation_timed_out": "no reply to a compensation before the deadline (retried)",
    "resumed": "the orchestrator restarted and picked the saga up from the log",
    "completed": "every step succeeded",
    "compensated": "every completed step was undone",
    "needs_attention": "retries ran out: a person must look at this saga",
}

SAGAS = "sagas"
LOG = "saga_log"


class SagaState(NamedTuple):
    """The current state of one saga: everything the orchestrator needs to carry on.

    ``step`` is the index of the step being run (forward) or undone (backward); ``plan`` the
    indices still to undo after it. ``command_id`` is the command in flight: when
    ``awaiting`` it was sent and ``deadline_ms`` is the reply deadline; otherwise it is sent
    (again) at ``deadline_ms``. ``attempt`` counts refusals of the step, ``tries`` sends of
    the current attempt that got no answer. Immutable: the orchestrator makes a new state.
    """

    saga_id: str
    definition: str
    order_id: str
    payload: dict[str, Any]
    status: str = RUNNING
    step: int = 0
    direction: str = FORWARD
    attempt: int = 1
    tries: int = 1
    command_id: str | None = None
    awaiting: bool = False
    deadline_ms: float | None = None
    plan: tuple[int, ...] = ()
    reason: str = ""
    started_ms: float = 0.0
    updated_ms: float = 0.0
    since_ms: float = 0.0   # when the current command was first sent (its retry budget starts)

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    def but(self, **changes: Any) -> SagaState:
        """A copy with ``changes`` (the orchestrator never edits a state in place)."""
        return self._replace(**changes)


# The columns of ``sagas`` are the fields of SagaState, in the same order: a row is a state.
_SAGA_COLUMNS = SagaState._fields
# The columns stored as something else than the field: JSON text, and 0/1 for a bool.
_PAYLOAD, _AWAITING, _PLAN = (_SAGA_COLUMNS.index(c) for c in ("payload", "awaiting", "plan"))
_SELECT = f"SELECT {', '.join(_SAGA_COLUMNS)} FROM {SAGAS}"
_INSERT_SAGA = (f"INSERT INTO {SAGAS} ({', '.join(_SAGA_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_SAGA_COLUMNS))})")
_UPDATE_SAGA = (f"UPDATE {SAGAS} SET status=?, step=?, direction=?, attempt=?, tries=?, "
                "command_id=?, awaiting=?, deadline_ms=?, plan=?, reason=?, updated_ms=?, "
                "since_ms=? WHERE saga_id=?")
_TOUCH_SAGA = f"UPDATE {SAGAS} SET updated_ms=? WHERE saga_id=?"
_INSERT_LOG = (f"INSERT INTO {LOG} (saga_id, time_ms, transition, step, attempt, command_id, "
               "detail) VALUES (?, ?, ?, ?, ?, ?, ?)")


def _state_from_row(row: Sequence) -> SagaState:
    """The state a ``sagas`` row holds, field by field (the JSON and bool columns decoded)."""
    fields = list(row)
    fields[_PAYLOAD] = json.loads(fields[_PAYLOAD])
    fields[_AWAITING] = bool(fields[_AWAITING])
    fields[_PLAN] = _plan_from_text(fields[_PLAN])
    return SagaState._make(fields)


# A definition has a handful of compensation plans, written and read thousands of times.
@functools.lru_cache(maxsize=256)
def _plan_text(plan: tuple[int, ...]) -> str:
    """The plan as the ``plan`` column stores it: JSON text (``[2, 0]``)."""
    return json.dumps(list(plan))


@functools.lru_cache(maxsize=256)
def _plan_from_text(text: str) -> tuple[int, ...]:
    return tuple(json.loads(text))


class Transition(NamedTuple):
    """One row of the saga log to write: what happened, to which step, why.

    ``Transition("completed")`` needs no step; ``Transition("step_sent", "pay", 1, cid,
    "AuthorizePayment")`` names the step, its attempt and the command in flight.
    """

    transition: str                 # one of TRANSITIONS
    step: str | None = None         # the step's name
    attempt: int | None = None      # which attempt of the step
    command_id: str | None = None   # the command sent (or answered)
    detail: str = ""                # in words


class SagaLog:
    """The orchestrator's own database: saga states and their history, written together.

    >>> from eda_lab.db import open_db
    >>> log = SagaLog(open_db())
    >>> state = SagaState(saga_id="saga-1", definition="create_order", order_id="order-1",
    ...                   payload={"order_id": "order-1"})
    >>> log.begin(state, [Transition("started")], now=0.0)
    >>> log.get("saga-1").status
    'running'
    """

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        if not db[SAGAS].exists():
            db[SAGAS].create({
                "saga_id": str, "definition": str, "order_id": str, "payload": str,
                "status": str, "step": int, "direction": str, "attempt": int, "tries": int,
                "command_id": str, "awaiting": int, "deadline_ms": float, "plan": str,
                "reason": str, "started_ms": float, "updated_ms": float, "since_ms": float,
            }, pk="saga_id")
            db[SAGAS].create_index(["status"])
            db[SAGAS].create_index(["order_id"])
        if not db[LOG].exists():
            db[LOG].create({
                "seq": int, "saga_id": str, "time_ms": float, "transition": str, "step": str,
                "attempt": int, "command_id": str, "detail": str,
            }, pk="seq")
            db[LOG].create_index(["saga_id"])

    # -- writing ---------------------------------------------------------------------------
    def write(self, conn, state: SagaState, transitions: Iterable[Transition], now: float, *,
              new: bool = False) -> None:
        """Write the saga's state and the transitions that led to it, with ``conn``, inside
        the caller's transaction (the orchestrator adds its command to the same one).

        ``new``: the saga is created; refused with ``ValueError`` if its id is taken (nothing
        is overwritten).
        """
        if new:
            if conn.execute(f"SELECT 1 FROM {SAGAS} WHERE saga_id=?",
                            (state.saga_id,)).fetchone():
                raise ValueError(f"saga_id {state.saga_id!r} is already in the saga log; "
                                 "pick another id (or leave it out to get a fresh one)")
            conn.execute(_INSERT_SAGA, self._row(state, now))
        else:
            conn.execute(_UPDATE_SAGA, self._changes(state, now))
        conn.executemany(_INSERT_LOG, [(state.saga_id, now, *t) for t in transitions])

    def write_resumed(self, conn, resumed: Iterable[tuple[str, Transition]], now: float) -> None:
        """Write down that each saga of ``resumed`` (saga id, its ``resumed`` transition) was
        picked up again at ``now``, with ``conn`` inside the caller's transaction: the
        transition joins its history and the state is left as it was, only its time of
        update moves (a restarted orchestrator resumes every open saga, in two statements)."""
        resumed = list(resumed)
        conn.executemany(_TOUCH_SAGA, [(now, saga_id) for saga_id, _ in resumed])
        conn.executemany(_INSERT_LOG, [(saga_id, now, *t) for saga_id, t in resumed])

    def begin(self, state: SagaState, transitions: Iterable[Transition], now: float) -> None:
        """Create a saga and write its first transitions, in one transaction."""
        with transaction(self.db) as conn:
            self.write(conn, state, transitions, now, new=True)

    def record(self, state: SagaState, transitions: Iterable[Transition], now: float) -> None:
        """Write the saga's new state and the transitions that led to it, in one transaction."""
        with transaction(self.db) as conn:
            self.write(conn, state, transitions, now)

    @staticmethod
    def _row(state: SagaState, now: float) -> tuple:
        return (state.saga_id, state.definition, state.order_id, json.dumps(state.payload),
                state.status, state.step, state.direction, state.attempt, state.tries,
                state.command_id, int(state.awaiting), state.deadline_ms,
                _plan_text(state.plan), state.reason, now, now, state.since_ms)

    @staticmethod
    def _changes(state: SagaState, now: float) -> tuple:
        """The parameters of the UPDATE that writes ``state`` over its saga's row."""
        return (state.status, state.step, state.direction, state.attempt, state.tries,
                state.command_id, int(state.awaiting), state.deadline_ms,
                _plan_text(state.plan), state.reason, now, state.since_ms, state.saga_id)

    # -- reading ------------------------------------------------------------------------
    def get(self, saga_id: str) -> SagaState | None:
        """The current state of ``saga_id``, or None if the log never heard of it."""
        row = self.db.execute(f"{_SELECT} WHERE saga_id=?", (saga_id,)).fetchone()
        return None if row is None else _state_from_row(row)

    def unfinished(self, definition: str | None = None) -> list[SagaState]:
        """Every saga that is neither completed, compensated nor waiting for a person."""
        sql = f"{_SELECT} WHERE status IN (?, ?)"
        args: tuple = (RUNNING, COMPENSATING)
        if definition is not None:
            sql += " AND definition=?"
            args += (definition,)
        rows = self.db.execute(sql + " ORDER BY started_ms, saga_id", args)
        return [_state_from_row(r) for r in rows]

    def states(self) -> list[SagaState]:
        """Every saga, oldest first."""
        rows = self.db.execute(f"{_SELECT} ORDER BY started_ms, saga_id")
        return [_state_from_row(r) for r in rows]

    def count(self) -> int:
        return self.db.execute(f"SELECT count(*) FROM {SAGAS}").fetchone()[0]

    def history(self, saga_id: str | None = None) -> list[dict[str, Any]]:
        """The transitions, in the order they were written (of one saga, if given)."""
        sql = (f"SELECT seq, saga_id, time_ms, transition, step, attempt, command_id, detail "
               f"FROM {LOG}")
        args: tuple = ()
        if saga_id is not None:
            sql += " WHERE saga_id=?"
            args = (saga_id,)
        cursor = self.db.execute(sql + " ORDER BY seq", args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def frame(self, saga_id: str | None = None):
        """The history as a pandas table (what the notebook shows)."""
        import pandas as pd

        columns = ["seq", "saga_id", "time_ms", "transition", "step", "attempt", "detail"]
        frame = pd.DataFrame(self.history(saga_id), columns=columns + ["command_id"])[columns]
        frame["attempt"] = frame["attempt"].astype("Int64")
        return frame

    def summary(self):
        """One row per saga: its order, status and why (a pandas table)."""
        import pandas as pd

        return pd.DataFrame(
            [{"saga_id": s.saga_id, "order_id": s.order_id, "status": s.status,
              "reason": s.reason} for s in self.states()],
            columns=["saga_id", "order_id", "status", "reason"])


# -- the steps as boxes: what each step looks like, read from the log ----------------------

# The box state each transition leaves its step in.
_BOX_AFTER = {
    "step_sent": "running", "retry_scheduled": "running", "send_failed": "running",
    "step_succeeded": "done", "step_failed": "failed", "step_timed_out": "failed",
    "compensation_sent": "compensating", "compensation_failed": "compensating",
    "compensation_timed_out": "compensating", "compensation_succeeded": "compensated",
    "needs_attention": "needs_attention",
}
BOX_STATES = ("pending", "running", "done", "failed", "compensating", "compensated",
              "needs_attention")


def step_states(step_names: Sequence[str], history: Iterable[dict[str, Any]]) -> dict[str, str]:
    """The state of each step's box, folded from the saga log rows of one saga.

    The widget draws exactly this, so its boxes cannot disagree with the database.
    """
    states = dict.fromkeys(step_names, "pending")
    for row in history:
        box = _BOX_AFTER.get(row["transition"])
        if box is not None and row["step"] in states:
            states[row["step"]] = box
    return states
