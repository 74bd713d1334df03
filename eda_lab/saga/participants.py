"""The saga's participants: the shop's order, inventory, payment and shipping services.

Each participant owns its database and runs every command as **one local transaction** in
it: the business check, the effect, and the reply it will send all commit together or not
at all. That is all a saga asks of a service; there is no transaction across services.

A participant must be **idempotent**, because commands arrive more than once: the broker
redelivers after a crash, and the orchestrator sends a command again after a timeout. The
reply is stored in the ``replies`` table under the command's id, in the same transaction as
the effect (the inbox of notebook 04, keeping the reply too). A duplicate finds its id there:
no second effect, and the *original* reply (same words, same time) goes out again, so the
orchestrator learns what really happened the first time.

The reply goes out through the participant's own **outbox** (the table ``saga_outbox``),
written in that same transaction; a relay publishes it. Replying straight to the broker after
the commit would be the dual write of notebook 03: a crash in between would leave the effect
done and nobody told.

Compensations must also be safe when they arrive before (or instead of) the action they undo:
messages overtake each other (a delayed or redelivered command comes after its own undo), and a
choreography compensates a step whose outcome it never heard.
Undoing something that never happened writes a small "cancelled" record, so a late action for
the same saga is refused instead of applied after its own undo.

**Step outcomes** are the learner's dial: ``{"AuthorizePayment": "fail"}`` makes the payment
service refuse that command (a business failure), ``"time out"`` makes it do the work but lose
the reply. A list gives one outcome per attempt: ``{"ScheduleShipping": ["fail", "fail"]}``.
Without a script every decision comes from the data (stock, credit limits).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlite_utils

from ..broker import Broker
from ..db import open_db, transaction
from ..faults import crash_point
from ..messages import Message, thaw_json
from ..orders import APPROVED, PENDING, PLACED, REJECTED, create_orders_table
from ..outbox.table import create_outbox, write_event
from .commands import commands_topic, replies_topic

SUCCEED = "succeed"
FAIL = "fail"
TIME_OUT = "time out"
OUTCOMES = (SUCCEED, FAIL, TIME_OUT)

BEFORE_COMMIT = crash_point(
    "saga.participant_before_commit",
    "a participant died inside its local transaction: nothing is kept, the command comes again")
AFTER_COMMIT = crash_point(
    "saga.participant_after_commit",
    "a participant committed its local transaction and died before replying: the command comes "
    "again and gets the stored reply")

# What a step left in a participant's data, for the consistency checks.
DONE = "done"          # the action's effect is in place
UNDONE = "undone"      # the action happened and was compensated (or was cancelled before it came)
NONE = "none"          # no trace of the action

REPLIES = "replies"
SAGA_OUTBOX = "saga_outbox"   # what a participant says back (its replies), sent by a relay


class Refused(Exception):  # noqa: N818 - a refusal is a business answer, not a program error
    """A business rule said no (out of stock, card declined). The step fails, nothing is kept."""


def check_outcomes(outcomes: Mapping[str, Any] | None,
                   known_commands: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Validate a step-outcomes script; returns command type -> one outcome per attempt."""
    if outcomes is None:
        return {}
    if not isinstance(outcomes, Mapping):
        raise TypeError(f"outcomes must be a dict such as {{'AuthorizePayment': 'fail'}}, "
                        f"got {type(outcomes).__name__}")
    script = {}
    for command_type, spec in outcomes.items():
        if command_type not in known_commands:
            raise ValueError(f"outcomes: unknown command {command_type!r}; the saga sends "
                             f"{', '.join(known_commands)}")
        values = (spec,) if isinstance(spec, str) else spec
        if not isinstance(values, (list, tuple)) or not all(v in OUTCOMES for v in values):
            raise ValueError(f"outcomes[{command_type!r}] must be one of {OUTCOMES} or a list of "
                             f"them (one per attempt), got {spec!r}")
        script[command_type] = tuple(values)
    return script


Handler = Callable[[sqlite3.Connection, Message], str]


class Participant:
    """A service taking part in sagas: one local transaction per command, then a reply.

    Subclasses name themselves, create their tables and give one handler per command type:
    ``handler(conn, command) -> str`` writes the effect with ``conn`` and says what it did, or
    raises :class:`Refused`. ``on_command`` wraps it in the transaction, the deduplication,
    the crash points and the reply.
    """

    name = "participant"
    # command type -> (reply type when it succeeds, reply type when it is refused)
    REPLY_TYPES: dict[str, tuple[str, str]] = {}

    def __init__(self, broker: Broker, db: sqlite_utils.Database | None = None, *,
                 outcomes: Mapping[str, Any] | None = None):
        self.broker = broker
        self.db = db if db is not None else open_db()
        self.outbox_table = SAGA_OUTBOX
        create_outbox(self.db, SAGA_OUTBOX)
        self.topic = commands_topic(self.name)
        self.reply_topic = replies_topic(self.name)
        broker.create_topic(self.topic)
        broker.create_topic(self.reply_topic)
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {REPLIES} (command_id TEXT PRIMARY KEY, "
                        "saga_id TEXT, command_type TEXT, reply_type TEXT, outcome TEXT, "
                        "detail TEXT, replied_ms REAL)")
        self.db.execute(f"CREATE INDEX IF NOT EXISTS {REPLIES}_saga ON {REPLIES} (saga_id)")
        self.create_schema()
        self.handlers: dict[str, Handler] = self.command_handlers()
        self.outcomes = check_outcomes(outcomes, list(self.handlers))
        self.duplicates = 0
        self._after_commit: list[Callable[[], Any]] = []

    # -- what a subclass provides ----------------------------------------------------------
    def create_schema(self) -> None:
        """Create the service's own tables (called once, on an empty or existing database)."""

    def command_handlers(self) -> dict[str, Handler]:
        return {}

    def effect(self, saga_id: str, command_type: str) -> str:
        """What the action ``command_type`` of ``saga_id`` left here: DONE, UNDONE or NONE."""
        raise NotImplementedError

    def tables(self) -> dict[str, list[dict]]:
        """The service's business data, table by table (what the stepper shows)."""
        return {}

    def invariant_problems(self) -> list[str]:
        """Broken bookkeeping inside this one database (an empty list when all is well)."""
        return []

    # -- the command path ------------------------------------------------------------------
    def handles(self, command_type: str) -> bool:
        return command_type in self.handlers

    def set_outcomes(self, outcomes: Mapping[str, Any] | None) -> None:
        """Replace the step-outcomes script (keys: command types this service handles)."""
        self.outcomes = check_outcomes(outcomes, list(self.handlers))

    def scripted(self, command_type: str, attempt: int) -> str:
        """The outcome the script asks for at this attempt (``succeed`` when it says nothing)."""
        script = self.outcomes.get(command_type)
        if not script or attempt > len(script):
            return SUCCEED
        return script[attempt - 1]

    def on_command(self, command: Message) -> Message | None:
        """Run ``command`` as one local transaction, its reply written to this service's outbox
        in that transaction (a relay sends it); returns the reply.

        Returns None when the script made the reply get lost ("time out").
        """
        return self.run_command(command, answer=lambda reply: reply)

    def run_command(self, command: Message,
                    answer: Callable[[Message], Message | None] | None = None) -> Message | None:
        """The local transaction of ``command``: the effect, its stored reply and what the
        service says about it, committed together; returns the reply (None when the script
        says it gets lost).

        ``answer(reply)`` is the message to write to the outbox in the transaction: the reply
        itself for an orchestrator, an event for a choreography; None writes nothing. A
        duplicate (its command id is in ``replies``) changes nothing and answers with the
        stored reply. What a handler asked to do once the transaction has committed
        (:meth:`after_commit`) runs before this returns.
        """
        broker = self.broker
        now = broker.clock.now
        faults = broker.faults
        saga_id = command.headers.get("saga_id", command.key)
        cid = command.headers.get("command_id", command.id)
        outcome = self.scripted(command.type, int(command.headers.get("attempt", "1")))
        duplicate = False
        self._after_commit.clear()
        with transaction(self.db) as conn:
            stored = conn.execute(f"SELECT outcome, detail, replied_ms FROM {REPLIES} "
                                  "WHERE command_id=?", (cid,)).fetchone()
            if stored is not None:  # the same reply as the first time: same words, same time
                duplicate = True
                reply = self._reply(command, saga_id, stored[0] == "succeeded", stored[1],
                                    stored[2])
            else:
                ok, detail = self._apply(conn, command, outcome)
                reply = self._reply(command, saga_id, ok, detail, now)
                conn.execute(
                    f"INSERT INTO {REPLIES} (command_id, saga_id, command_type, reply_type, "
                    "outcome, detail, replied_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (cid, saga_id, command.type, reply.type, reply.headers["outcome"],
                     detail, now))
            said = None
            if answer is not None and (duplicate or outcome != TIME_OUT):
                said = answer(reply)
            if said is not None:
                write_event(conn, id=said.id, aggregatetype=self.name, aggregateid=said.key,
                            type=said.type, payload=thaw_json(said.payload),
                            created_at=said.timestamp, headers=dict(said.headers),
                            table=self.outbox_table, ignore_duplicate=True)
            faults.check(BEFORE_COMMIT, trace=broker.trace, now=now, actor=self.name)
        faults.check(AFTER_COMMIT, trace=broker.trace, now=now, actor=self.name)
        for action in self._after_commit:  # a crash above leaves them undone
            action()
        self._after_commit.clear()
        trace = broker.trace
        if duplicate:
            self.duplicates += 1
            trace.add(now, "ignore", self.name, self.topic, None, None, saga_id, command.id,
                      command.type, "duplicate command: no second effect, the stored reply "
                      "goes out again")
        else:
            trace.add(now, "handle", self.name, self.topic, None, None, saga_id, command.id,
                      command.type, f"{reply.headers['outcome']}: {reply.payload['detail']}")
            if outcome == TIME_OUT:
                trace.add(now, "lost", self.name, self.reply_topic, None, None, saga_id,
                          reply.id, reply.type, "the reply is lost on its way (step outcome "
                          "'time out'); the orchestrator will have to wait for its deadline")
                return None
        return reply

    def after_commit(self, action: Callable[[], Any]) -> None:
        """Run ``action()`` once the handler's local transaction has committed (a handler
        calls this; a naive service publishes its event there, after the commit)."""
        self._after_commit.append(action)

    def _apply(self, conn: sqlite3.Connection, command: Message, outcome: str) -> tuple[bool, str]:
        """The effect, inside the transaction: (succeeded?, what happened or why not)."""
        handler = self.handlers.get(command.type)
        if handler is None:
            return False, f"{self.name} does not handle {command.type}"
        if outcome == FAIL:
            return False, f"the step outcomes say {command.type} fails"
        conn.execute("SAVEPOINT effect")
        queued = len(self._after_commit)
        try:
            detail = handler(conn, command)
        except Refused as refusal:
            conn.execute("ROLLBACK TO effect")
            conn.execute("RELEASE effect")
            del self._after_commit[queued:]  # nothing of a refused command happens
            return False, str(refusal)
        conn.execute("RELEASE effect")
        return True, detail

    def _reply(self, command: Message, saga_id: str, ok: bool, detail: str,
               replied_ms: float) -> Message:
        success, failure = self.reply_types(command.type)
        return Message(
            success if ok else failure, command.key, {"detail": detail},
            {"saga_id": saga_id, "command_id": command.headers.get("command_id", command.id),
             "outcome": "succeeded" if ok else "failed", "participant": self.name},
            replied_ms, f"{command.id}/reply")

    def reply_types(self, command_type: str) -> tuple[str, str]:
        """The reply (or, in a choreography, the event) when ``command_type`` succeeds and
        when it is refused: the service's own names, else ``<Command>Succeeded/Failed``."""
        return self.REPLY_TYPES.get(command_type, (f"{command_type}Succeeded",
                                                   f"{command_type}Failed"))

    def replies(self, saga_id: str | None = None) -> list[dict]:
        """Every command this service answered, with its outcome (its inbox); only those of
        ``saga_id`` if given (by the indexed saga id, so checking thousands of sagas stays
        cheap; not by a prefix of the command id, which ``shop:1:retry`` would share with
        ``shop:1``)."""
        where, args = "", ()
        if saga_id is not None:
            where, args = "WHERE saga_id = ? ", (saga_id,)
        cursor = self.db.execute(f"SELECT command_id, command_type, outcome, detail, replied_ms "
                                 f"FROM {REPLIES} {where}ORDER BY replied_ms, command_id", args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor]

    def _rows(self, sql: str, args: tuple = ()) -> list[dict]:
        cursor = self.db.execute(sql, args)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r, strict=True)) for r in cursor]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(handles={sorted(self.handlers)})"


def _order_fields(command: Message) -> tuple[str, str, str, int, float]:
    p = command.payload
    try:
        return (str(p["order_id"]), str(p["customer"]), str(p["sku"]), int(p["quantity"]),
                float(p["amount"]))
    except (KeyError, TypeError, ValueError) as error:
        raise Refused(f"the order is incomplete ({error!r}); it needs order_id, customer, sku, "
                      "quantity and amount") from None


# -- the four services of the shop ----------------------------------------------------------

# Announce(conn, order_id, version, event_type, payload): tell the world about a decided
# order, from inside the local transaction that decided it (see OrderParticipant).
Announce = Callable[[sqlite3.Connection, str, int, str, dict], None]


class OrderLocked(ValueError):  # noqa: N818 - reads as a fact, like the other refusals
    """A change to an order that a running saga holds (the semantic lock)."""


class OrderParticipant(Participant):
    """Orders, in the orders table of :mod:`eda_lab.orders`. ``PENDING`` is the **semantic
    lock**: while a saga runs, the order says so.

    Anyone may read a pending order (there is no isolation between sagas), but the order
    service refuses what would interfere with the running saga: a second saga for the same
    order, a cancellation. Both are told to come back when the order is approved or rejected.

    Approving or rejecting is a new fact about the order: its version goes up by one and, if
    ``announce`` is given, it is told the event (``OrderApproved`` / ``OrderRejected``) inside
    the same local transaction. The whole shop passes an announce that writes the event to the
    order service's outbox (or, to show the dual write, publishes it before or after the
    commit, see :meth:`Participant.after_commit`). With ``creates_orders=False`` the order must
    exist already (placed by the order service); a missing one is a ghost and is refused.
    """

    name = "order"
    REPLY_TYPES = {
        "CreatePendingOrder": ("OrderCreated", "OrderCreationFailed"),
        "RejectOrder": ("OrderRejected", "OrderRejectionFailed"),
        "ApproveOrder": ("OrderApproved", "OrderApprovalFailed"),
    }

    def __init__(self, broker: Broker, db: sqlite_utils.Database | None = None, *,
                 outcomes: Mapping[str, Any] | None = None, announce: Announce | None = None,
                 creates_orders: bool = True):
        if announce is not None and not callable(announce):
            raise TypeError(f"announce must be a function (conn, order_id, version, "
                            f"event_type, payload), got {announce!r}")
        if not isinstance(creates_orders, bool):
            raise TypeError(f"creates_orders must be True or False, got {creates_orders!r}")
        self.announce = announce
        self.creates_orders = creates_orders
        super().__init__(broker, db, outcomes=outcomes)

    def create_schema(self) -> None:
        create_orders_table(self.db)

    def command_handlers(self) -> dict[str, Handler]:
        return {"CreatePendingOrder": self.create_pending_order, "RejectOrder": self.reject_order,
                "ApproveOrder": self.approve_order}

    def _order(self, conn: sqlite3.Connection, order_id: str):
        return conn.execute("SELECT state, saga_id, version FROM orders WHERE order_id=?",
                            (order_id,)).fetchone()

    def create_pending_order(self, conn: sqlite3.Connection, command: Message) -> str:
        order_id, customer, sku, quantity, amount = _order_fields(command)
        if quantity < 1 or amount < 0:
            raise Refused(f"quantity must be >= 1 and amount >= 0, got {quantity} and {amount}")
        saga_id = command.headers["saga_id"]
        row = self._order(conn, order_id)
        if row is None:
            if not self.creates_orders:
                raise Refused(f"{order_id} is not in the orders table (a ghost order)")
            conn.execute(
                "INSERT INTO orders (order_id, customer, sku, quantity, amount, state, version, "
                "saga_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (order_id, customer, sku, quantity, amount, PENDING, saga_id, command.timestamp,
                 command.timestamp))
            return f"{order_id} is pending"
        state, owner, _ = row
        if owner == saga_id:
            if state == PENDING:
                return f"{order_id} was already pending"
            raise Refused(f"{order_id} was {state.lower()} by this saga before the create came")
        if state == PENDING:
            raise Refused(f"{order_id} is pending in {owner} (semantic lock): wait until it "
                          "is approved or rejected")
        if state not in (PLACED, REJECTED):
            raise Refused(f"{order_id} is already {state.lower()}")
        conn.execute("UPDATE orders SET state=?, saga_id=?, updated_at=? WHERE order_id=?",
                     (PENDING, saga_id, command.timestamp, order_id))
        return f"{order_id} is pending"

    def reject_order(self, conn: sqlite3.Connection, command: Message) -> str:
        order_id = str(command.payload.get("order_id"))
        saga_id = command.headers["saga_id"]
        row = self._order(conn, order_id)
        if row is None:
            if not self.creates_orders:
                return f"{order_id} is not in the orders table: nothing to undo"
            p = command.payload
            conn.execute(
                "INSERT INTO orders (order_id, customer, sku, quantity, amount, state, version, "
                "saga_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (order_id, str(p.get("customer", "")), str(p.get("sku", "")),
                 int(p.get("quantity", 0)), float(p.get("amount", 0.0)), REJECTED, saga_id,
                 command.timestamp, command.timestamp))
            return f"{order_id} was never created: recorded as rejected, a late create is refused"
        state, owner, version = row
        if owner not in (None, saga_id):
            return f"{order_id} belongs to {owner}: nothing of this saga to undo"
        if state in (PENDING, PLACED):
            self._decide(conn, command, order_id, version, REJECTED, "OrderRejected")
            return f"{order_id} rejected"
        return f"{order_id} is already {state.lower()}"

    def approve_order(self, conn: sqlite3.Connection, command: Message) -> str:
        order_id = str(command.payload.get("order_id"))
        saga_id = command.headers["saga_id"]
        row = self._order(conn, order_id)
        if row is None or row[1] != saga_id:
            raise Refused(f"{order_id} is not held by {saga_id}")
        state, _, version = row
        if state == APPROVED:
            return f"{order_id} was already approved"
        if state != PENDING:
            raise Refused(f"{order_id} is {state.lower()}, not pending")
        self._decide(conn, command, order_id, version, APPROVED, "OrderApproved")
        return f"{order_id} approved"

    def _decide(self, conn: sqlite3.Connection, command: Message, order_id: str, version: int,
                state: str, event_type: str) -> None:
        """The order's new state, and the event announcing it: one local transaction."""
        saga_id = command.headers["saga_id"]
        now = self.broker.clock.now
        conn.execute("UPDATE orders SET state=?, saga_id=?, version=?, updated_at=? "
                     "WHERE order_id=?", (state, saga_id, version + 1, now, order_id))
        if self.announce is not None:
            self.announce(conn, order_id, version + 1, event_type,
                          {"order_id": order_id, "saga_id": saga_id})

    # -- what other code may do with an order (the semantic lock at work) -----------------
    def read_order(self, order_id: str) -> dict | None:
        """A concurrent reader: sees the order as it is now, pending included (no isolation)."""
        rows = self._rows("SELECT * FROM orders WHERE order_id=?", (order_id,))
        return rows[0] if rows else None

    def cancel_order(self, order_id: str) -> str:
        """A customer's cancellation, a local transaction of the order service.

        Refused with :class:`OrderLocked` while a saga holds the order; a rejected order has
        nothing to cancel. (An approved order would be cancelled by a saga of its own that
        releases the stock and voids the payment; that saga is not part of this course.)
        """
        with transaction(self.db) as conn:
            row = self._order(conn, order_id)
            if row is None:
                raise KeyError(f"no order {order_id!r}")
            state, owner, _ = row
            if state == PENDING:
                raise OrderLocked(f"{order_id} is pending in {owner} (semantic lock): it cannot "
                                  "be cancelled until the saga approves or rejects it")
            if state == REJECTED:
                return f"{order_id} is already rejected: nothing to cancel"
            return f"{order_id} is {state.lower()}: cancelling it is a saga of its own"

    # -- checks ------------------------------------------------------------------------
    def effect(self, saga_id: str, command_type: str) -> str:
        row = self.db.execute("SELECT state FROM orders WHERE saga_id=?", (saga_id,)).fetchone()
        state = row[0] if row else None
        if command_type == "CreatePendingOrder":
            return {PENDING: DONE, APPROVED: DONE, REJECTED: UNDONE}.get(state, NONE)
        if command_type == "ApproveOrder":
            return DONE if state == APPROVED else NONE
        raise ValueError(f"effect() takes an action this service handles, got {command_type!r}")

    def tables(self) -> dict[str, list[dict]]:
        return {"orders": self._rows("SELECT order_id, customer, sku, quantity, amount, state, "
                                     "version, saga_id FROM orders "
                                     "ORDER BY created_at, order_id")}


RESERVED = "RESERVED"
RELEASED = "RELEASED"
CANCELLED = "CANCELLED"


class InventoryParticipant(Participant):
    """Stock per sku; a reservation per saga. Refuses when there is not enough stock."""

    name = "inventory"
    REPLY_TYPES = {
        "ReserveInventory": ("InventoryReserved", "InventoryReservationFailed"),
        "ReleaseInventory": ("InventoryReleased", "InventoryReleaseFailed"),
    }

    def __init__(self, broker: Broker, db: sqlite_utils.Database | None = None, *,
                 stock: Mapping[str, int] | None = None, outcomes: Mapping[str, Any] | None = None):
        self._initial_stock = dict(stock if stock is not None else DEFAULT_STOCK)
        for sku, units in self._initial_stock.items():
            if not isinstance(units, int) or isinstance(units, bool) or units < 0:
                raise ValueError(f"stock[{sku!r}] must be a whole number >= 0, got {units!r}")
        super().__init__(broker, db, outcomes=outcomes)

    def create_schema(self) -> None:
        if not self.db["stock"].exists():
            self.db["stock"].create({"sku": str, "available": int}, pk="sku")
            self.db["stock"].insert_all(
                [{"sku": s, "available": n} for s, n in self._initial_stock.items()])
        if not self.db["reservations"].exists():
            self.db["reservations"].create({"saga_id": str, "order_id": str, "sku": str,
                                            "quantity": int, "state": str}, pk="saga_id")

    def command_handlers(self) -> dict[str, Handler]:
        return {"ReserveInventory": self.reserve, "ReleaseInventory": self.release}

    def reserve(self, conn: sqlite3.Connection, command: Message) -> str:
        order_id, _, sku, quantity, _ = _order_fields(command)
        saga_id = command.headers["saga_id"]
        row = conn.execute("SELECT state FROM reservations WHERE saga_id=?", (saga_id,)).fetchone()
        if row is not None:
            if row[0] == RESERVED:
                return f"{quantity} x {sku} were already reserved"
            raise Refused(f"the reservation of {saga_id} was cancelled before it came")
        stock = conn.execute("SELECT available FROM stock WHERE sku=?", (sku,)).fetchone()
        if stock is None:
            raise Refused(f"unknown sku {sku!r}")
        if stock[0] < quantity:
            raise Refused(f"out of stock: {stock[0]} x {sku} left, {quantity} wanted")
        conn.execute("UPDATE stock SET available = available - ? WHERE sku=?", (quantity, sku))
        conn.execute("INSERT INTO reservations (saga_id, order_id, sku, quantity, state) "
                     "VALUES (?, ?, ?, ?, ?)", (saga_id, order_id, sku, quantity, RESERVED))
        return f"reserved {quantity} x {sku}"

    def release(self, conn: sqlite3.Connection, command: Message) -> str:
        saga_id = command.headers["saga_id"]
        row = conn.execute("SELECT sku, quantity, state FROM reservations WHERE saga_id=?",
                           (saga_id,)).fetchone()
        if row is None:
            conn.execute("INSERT INTO reservations (saga_id, order_id, sku, quantity, state) "
                         "VALUES (?, ?, ?, 0, ?)", (saga_id, str(command.payload.get("order_id")),
                                                   str(command.payload.get("sku")), CANCELLED))
            return "nothing was reserved: recorded as cancelled, a late reservation is refused"
        sku, quantity, state = row
        if state != RESERVED:
            return f"already {state.lower()}"
        conn.execute("UPDATE stock SET available = available + ? WHERE sku=?", (quantity, sku))
        conn.execute("UPDATE reservations SET state=? WHERE saga_id=?", (RELEASED, saga_id))
        return f"released {quantity} x {sku}"

    def effect(self, saga_id: str, command_type: str) -> str:
        if command_type != "ReserveInventory":
            raise ValueError(f"effect() takes 'ReserveInventory', got {command_type!r}")
        row = self.db.execute("SELECT state FROM reservations WHERE saga_id=?",
                              (saga_id,)).fetchone()
        return NONE if row is None else (DONE if row[0] == RESERVED else UNDONE)

    def tables(self) -> dict[str, list[dict]]:
        return {"stock": self._rows("SELECT sku, available FROM stock ORDER BY sku"),
                "reservations": self._rows("SELECT saga_id, sku, quantity, state FROM "
                                           "reservations ORDER BY saga_id")}

    def invariant_problems(self) -> list[str]:
        """Units are conserved: available + reserved = the initial stock, per sku."""
        problems = []
        held = dict(self.db.execute("SELECT sku, sum(quantity) FROM reservations WHERE state=? "
                                    "GROUP BY sku", (RESERVED,)).fetchall())
        for sku, available in self.db.execute("SELECT sku, available FROM stock"):
            if available < 0:
                problems.append(f"inventory: {sku} has {available} available")
            if available + held.get(sku, 0) != self._initial_stock.get(sku, 0):
                problems.append(f"inventory: {sku}: {available} available + {held.get(sku, 0)} "
                                f"reserved != {self._initial_stock.get(sku, 0)} at the start")
        return problems


AUTHORIZED = "AUTHORIZED"


class PaymentParticipant(Participant):
    """Credit per customer; an authorization per saga. Declines above the credit limit."""

    name = "payment"
    REPLY_TYPES = {"AuthorizePayment": ("PaymentAuthorized", "PaymentDeclined")}

    def __init__(self, broker: Broker, db: sqlite_utils.Database | None = None, *,
                 accounts: Mapping[str, float] | None = None,
                 outcomes: Mapping[str, Any] | None = None):
        self._accounts = dict(accounts if accounts is not None else DEFAULT_ACCOUNTS)
        for customer, limit in self._accounts.items():
            if not isinstance(limit, (int, float)) or isinstance(limit, bool) or limit < 0:
                raise ValueError(
                    f"accounts[{customer!r}] must be a credit limit >= 0, got {limit!r}")
        super().__init__(broker, db, outcomes=outcomes)

    def create_schema(self) -> None:
        if not self.db["accounts"].exists():
            self.db["accounts"].create({"customer": str, "credit_limit": float,
                                        "authorized": float}, pk="customer")
            self.db["accounts"].insert_all([{"customer": c, "credit_limit": float(v),
                                             "authorized": 0.0} for c, v in self._accounts.items()])
        if not self.db["authorizations"].exists():
            self.db["authorizations"].create({"saga_id": str, "order_id": str, "customer": str,
                                              "amount": float, "state": str}, pk="saga_id")

    def command_handlers(self) -> dict[str, Handler]:
        return {"AuthorizePayment": self.authorize}

    def authorize(self, conn: sqlite3.Connection, command: Message) -> str:
        order_id, customer, _, _, amount = _order_fields(command)
        saga_id = command.headers["saga_id"]
        if conn.execute("SELECT 1 FROM authorizations WHERE saga_id=?", (saga_id,)).fetchone():
            return f"{amount:.2f} was already authorized"
        account = conn.execute("SELECT credit_limit, authorized FROM accounts WHERE customer=?",
                               (customer,)).fetchone()
        if account is None:
            raise Refused(f"unknown customer {customer!r}")
        limit, used = account
        if used + amount > limit:
            raise Refused(f"card declined: {amount:.2f} asked, {limit - used:.2f} of credit left")
        conn.execute("UPDATE accounts SET authorized = authorized + ? WHERE customer=?",
                     (amount, customer))
        conn.execute("INSERT INTO authorizations (saga_id, order_id, customer, amount, state) "
                     "VALUES (?, ?, ?, ?, ?)", (saga_id, order_id, customer, amount, AUTHORIZED))
        return f"authorized {amount:.2f} for {customer}"

    def effect(self, saga_id: str, command_type: str) -> str:
        if command_type != "AuthorizePayment":
            raise ValueError(f"effect() takes 'AuthorizePayment', got {command_type!r}")
        row = self.db.execute("SELECT state FROM authorizations WHERE saga_id=?",
                              (saga_id,)).fetchone()
        return DONE if row is not None else NONE

    def tables(self) -> dict[str, list[dict]]:
        return {"accounts": self._rows("SELECT customer, credit_limit, authorized FROM accounts "
                                       "ORDER BY customer"),
                "authorizations": self._rows("SELECT saga_id, customer, amount, state FROM "
                                             "authorizations ORDER BY saga_id")}

    def invariant_problems(self) -> list[str]:
        """Each account's authorized total is the sum of its authorizations, within the limit."""
        problems = []
        sums = dict(self.db.execute("SELECT customer, sum(amount) FROM authorizations "
                                    "GROUP BY customer").fetchall())
        for customer, limit, used in self.db.execute(
                "SELECT customer, credit_limit, authorized FROM accounts"):
            if abs(used - sums.get(customer, 0.0)) > 1e-6 or used > limit + 1e-6:
                problems.append(f"payment: {customer} has {used} authorized, authorizations "
                                f"sum to {sums.get(customer, 0.0)}, limit {limit}")
        return problems


SCHEDULED = "SCHEDULED"


class ShippingParticipant(Participant):
    """Shipments: one per saga. Never refuses on its own (its step is retriable)."""

    name = "shipping"
    REPLY_TYPES = {"ScheduleShipping": ("ShippingScheduled", "ShippingNotScheduled")}

    def create_schema(self) -> None:
        if not self.db["shipments"].exists():
            self.db["shipments"].create({"saga_id": str, "order_id": str, "sku": str,
                                         "quantity": int, "state": str}, pk="saga_id")

    def command_handlers(self) -> dict[str, Handler]:
        return {"ScheduleShipping": self.schedule}

    def schedule(self, conn: sqlite3.Connection, command: Message) -> str:
        order_id, _, sku, quantity, _ = _order_fields(command)
        saga_id = command.headers["saga_id"]
        if conn.execute("SELECT 1 FROM shipments WHERE saga_id=?", (saga_id,)).fetchone():
            return f"the delivery of {order_id} was already booked"
        conn.execute("INSERT INTO shipments (saga_id, order_id, sku, quantity, state) VALUES "
                     "(?, ?, ?, ?, ?)", (saga_id, order_id, sku, quantity, SCHEDULED))
        return f"delivery of {order_id} booked"

    def effect(self, saga_id: str, command_type: str) -> str:
        if command_type != "ScheduleShipping":
            raise ValueError(f"effect() takes 'ScheduleShipping', got {command_type!r}")
        row = self.db.execute("SELECT 1 FROM shipments WHERE saga_id=?", (saga_id,)).fetchone()
        return DONE if row is not None else NONE

    def tables(self) -> dict[str, list[dict]]:
        return {"shipments": self._rows("SELECT saga_id, order_id, sku, quantity, state FROM "
                                        "shipments ORDER BY saga_id")}


DEFAULT_STOCK = {"book": 10, "lamp": 3}
DEFAULT_ACCOUNTS = {"alice": 500.0, "bob": 60.0}
SHOP_SERVICES = (OrderParticipant, InventoryParticipant, PaymentParticipant, ShippingParticipant)
SHOP_SERVICE_NAMES = tuple(service.name for service in SHOP_SERVICES)


def shop_participants(broker: Broker, dbs: Mapping[str, sqlite_utils.Database] | None = None, *,
                      stock: Mapping[str, int] | None = None,
                      accounts: Mapping[str, float] | None = None) -> dict[str, Participant]:
    """The four services of the shop on ``broker``, each with its own database.

    ``dbs`` maps a service name to its database (in-memory for the ones not given).
    """
    dbs = dict(dbs or {})
    unknown = set(dbs) - {s.name for s in SHOP_SERVICES}
    if unknown:
        raise ValueError(f"dbs: unknown service(s) {sorted(unknown)}; the shop has "
                         f"{', '.join(s.name for s in SHOP_SERVICES)}")
    return {
        "order": OrderParticipant(broker, dbs.get("order")),
        "inventory": InventoryParticipant(broker, dbs.get("inventory"), stock=stock),
        "payment": PaymentParticipant(broker, dbs.get("payment"), accounts=accounts),
        "shipping": ShippingParticipant(broker, dbs.get("shipping")),
    }
