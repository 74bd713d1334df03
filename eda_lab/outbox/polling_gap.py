"""The polling gap: a relay that remembers "the highest id I have seen" skips rows forever.

In Postgres or MySQL an outbox id comes from a sequence when the row is *inserted*, but the row
becomes visible to other connections only when its transaction *commits*. Two writers can take
ids 1 and 2 and commit in the order 2, 1. A relay that polls ``WHERE id > highest_seen`` in
between sees row 2, remembers 2, and never looks at row 1 again. Nothing crashed and nothing
failed: the event is simply never published.

SQLite runs one writer at a time, so the interleaving cannot happen by itself here; this module
makes it explicit. A *schedule* is a list of steps a learner can edit::

    ["begin A", "begin B", "commit B", "poll", "commit A", "poll"]

``begin W`` allocates writer W's id (the sequence moves on, as ``nextval`` does outside any
transaction); ``commit W`` inserts W's outbox row with that id, in one transaction, which is
when it becomes visible; ``poll`` lets every relay poll once.

Three relays read the same outbox side by side, each publishing to its own topic:

* ``high-water mark``: ``WHERE seq > last`` and store the largest seq (the bug);
* ``flag``: the :class:`~eda_lab.outbox.relay.PollingRelay`, ``WHERE published_at IS NULL`` (fix 1);
* ``commit-order log``: the :class:`~eda_lab.outbox.relay.LogTailingRelay`, whose log positions are
  given at commit, so commit order is read order (fix 2: what CDC reads).

Fix 3 is to serialise the writers (take ids at commit, or one writer at a time):
:func:`serialise` rewrites a schedule that way, and then even the high-water mark relay is safe.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .. import _validate as check
from ..broker import Broker
from ..db import open_db, transaction
from ..messages import Message
from .relay import BATCH_SIZE, MAX_BATCH_SIZE, LogTailingRelay, PollingRelay, Relay
from .table import MESSAGE_COLUMNS, OFFSETS_TABLE, create_offsets, create_outbox, encode_payload

HIGH_WATER_MARK = "high-water mark"
FLAG = "flag"
COMMIT_LOG = "commit-order log"
RELAY_KINDS = (HIGH_WATER_MARK, FLAG, COMMIT_LOG)
MAX_WRITERS = 1_000   # concurrent transactions in one schedule; more only makes it slow
MAX_TRIALS = 100_000  # random schedules per writer count in skip_rates


class HighWaterMarkRelay(Relay):
    """The broken relay: reads ``seq > highest seq seen`` and stores that highest seq.

    It is resumable (the mark is in ``relay_offsets``) and publishes in order; its only flaw is
    the assumption that ids become visible in id order.
    """

    kind = "high-water mark"

    def __init__(self, db, broker, **settings):
        super().__init__(db, broker, **settings)
        create_offsets(db)
        self._select = (f'SELECT seq, {MESSAGE_COLUMNS} FROM "{self.table}" WHERE seq > ? '
                        'ORDER BY seq LIMIT ?')

    @property
    def offset(self) -> int:
        row = self.db.conn.execute(f'SELECT position FROM "{OFFSETS_TABLE}" WHERE relay = ?',
                                   (self.name,)).fetchone()
        return row[0] if row else 0

    def _read(self) -> list[tuple]:
        return self.db.conn.execute(self._select, (self.offset, self.batch_size)).fetchall()

    def _mark(self, done: list[int], now: float) -> None:
        with transaction(self.db) as conn:
            conn.execute(f'INSERT INTO "{OFFSETS_TABLE}" (relay, position) VALUES (?, ?) '
                         "ON CONFLICT(relay) DO UPDATE SET position = excluded.position",
                         (self.name, max(done)))

    def _mark_detail(self, done: list[int]) -> str:
        return f"highest seq seen: {max(done)}"

    def backlog(self) -> int:
        return self.db.conn.execute(f'SELECT count(*) FROM "{self.table}" WHERE seq > ?',
                                    (self.offset,)).fetchone()[0]


def parse_step(step: str) -> tuple[str, str | None]:
    """``"begin A"`` -> ("begin", "A"); ``"poll"`` -> ("poll", None); clear errors otherwise."""
    if not isinstance(step, str):
        raise TypeError(f"each schedule step must be a string such as 'begin A', got {step!r}")
    words = step.split()
    if words == ["poll"]:
        return "poll", None
    if len(words) == 2 and words[0] in ("begin", "commit"):
        return words[0], words[1]
    raise ValueError(f"schedule step {step!r} must be 'begin <writer>', 'commit <writer>' or "
                     "'poll'")


def check_schedule(schedule: Sequence[str]) -> list[tuple[str, str | None]]:
    """The parsed schedule; every writer must begin once, then commit once."""
    if isinstance(schedule, str):
        raise TypeError("schedule must be a list of steps such as ['begin A', 'commit A', 'poll']")
    parsed = [parse_step(step) for step in schedule]
    state: dict[str, str] = {}
    for action, writer in parsed:
        if action == "begin":
            if writer in state:
                raise ValueError(f"writer {writer!r} begins twice in the schedule")
            state[writer] = "open"
        elif action == "commit":
            if state.get(writer) != "open":
                raise ValueError(f"writer {writer!r} commits without an open transaction "
                                 f"(add 'begin {writer}' before it)")
            state[writer] = "committed"
    return parsed


def serialise(schedule: Sequence[str]) -> list[str]:
    """Fix 3: each writer takes its id when it commits (one writer at a time)."""
    out = []
    for action, writer in check_schedule(schedule):
        if action == "poll":
            out.append("poll")
        elif action == "commit":
            out += [f"begin {writer}", f"commit {writer}"]
    return out


@dataclass
class GapRun:
    """The outcome of one schedule: a row per step, and what each relay published."""

    steps: list[dict]
    committed: list[int]
    published: dict[str, list[int]]
    skipped: dict[str, list[int]] = field(default_factory=dict)


class GapWorld:
    """One outbox with ids allocated at begin and rows visible at commit, read by three relays."""

    def __init__(self, relays: Iterable[str] = RELAY_KINDS, batch_size: int = BATCH_SIZE):
        relays = tuple(relays)
        for kind in relays:
            if kind not in RELAY_KINDS:
                raise ValueError(f"relays must be chosen from {RELAY_KINDS}, got {kind!r}")
        self.db = open_db()
        create_outbox(self.db, change_log=COMMIT_LOG in relays)
        self.broker = Broker()
        self.next_seq = 1
        self.open: dict[str, int] = {}
        self.committed: list[int] = []
        # The id was taken at begin, so the INSERT names it (the outbox usually numbers rows).
        self._insert = ('INSERT INTO outbox (seq, id, aggregatetype, aggregateid, type, payload, '
                        "version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        makers = {HIGH_WATER_MARK: HighWaterMarkRelay, FLAG: PollingRelay,
                  COMMIT_LOG: LogTailingRelay}
        self.relays: dict[str, Relay] = {}
        for kind in relays:
            topic = kind.replace(" ", "-")
            self.broker.create_topic(topic)
            self.relays[kind] = makers[kind](self.db, self.broker, topic=topic, name=topic,
                                             retention_ms=1e12, batch_size=batch_size)

    def begin(self, writer: str) -> int:
        seq = self.open[writer] = self.next_seq
        self.next_seq += 1
        return seq

    def commit(self, writer: str) -> int:
        seq = self.open.pop(writer)
        with transaction(self.db) as conn:
            conn.execute(self._insert, (seq, f"event-{seq}", "order", f"order-{seq}",
                                        "OrderPlaced", encode_payload({"writer": writer}), 1,
                                        self.broker.clock.now))
        self.committed.append(seq)
        return seq

    def published(self, kind: str) -> list[int]:
        topic = self.relays[kind].topic
        return [_seq_of(m) for m in self.broker.messages(topic)]


def _seq_of(message: Message) -> int:
    return int(message.id.removeprefix("event-"))


def run_schedule(schedule: Sequence[str], relays: Iterable[str] = RELAY_KINDS, *,
                 batch_size: int = BATCH_SIZE) -> GapRun:
    """Play ``schedule`` against the relays (each reading at most ``batch_size`` rows a poll);
    return the step table and what each skipped."""
    parsed = check_schedule(schedule)
    world = GapWorld(relays, batch_size)
    steps = []
    for n, (action, writer) in enumerate(parsed, 1):
        row: dict = {"step": n, "action": action if writer is None else f"{action} {writer}"}
        if action == "begin":
            row["note"] = f"{writer} takes seq {world.begin(writer)}"
        elif action == "commit":
            row["note"] = f"seq {world.commit(writer)} becomes visible"
        else:
            for relay in world.relays.values():
                relay.poll_once()
            row["note"] = "relays poll"
        row["visible"] = " ".join(map(str, sorted(world.committed))) or "-"
        for kind in world.relays:
            row[kind] = " ".join(map(str, world.published(kind))) or "-"
        steps.append(row)
    # A last round of polls after every writer committed: whatever is still missing is lost.
    for relay in world.relays.values():
        relay.drain()
    published = {kind: world.published(kind) for kind in world.relays}
    skipped = {kind: sorted(set(world.committed) - set(seqs)) for kind, seqs in published.items()}
    return GapRun(steps, sorted(world.committed), published, skipped)


def random_schedule(writers: int, seed: int = 0, polls: int | None = None) -> list[str]:
    """A random interleaving of ``writers`` overlapping transactions and ``polls`` polls."""
    check.count("writers", writers, maximum=MAX_WRITERS)
    if polls is not None:
        check.count("polls", polls, minimum=0, maximum=MAX_WRITERS * 10)
    rng = random.Random(seed)
    polls = writers if polls is None else polls
    names = [f"W{i}" for i in range(1, writers + 1)]
    pending = [f"begin {name}" for name in names] + ["poll"] * polls
    rng.shuffle(pending)
    schedule: list[str] = []
    waiting: list[str] = []   # writers that began and have not committed
    for step in pending:
        schedule.append(step)
        if step.startswith("begin"):
            waiting.append(step.split()[1])
        if waiting and rng.random() < 0.5:
            schedule.append(f"commit {waiting.pop(rng.randrange(len(waiting)))}")
    schedule += [f"commit {name}" for name in waiting]
    return schedule


def rule_skips(schedule: Sequence[str], batch_size: int = BATCH_SIZE) -> dict[str, list[int]]:
    """What each relay's reading rule leaves unpublished in ``schedule``, replayed in plain
    Python (no database): the same answer as ``run_schedule(schedule).skipped``, in
    microseconds instead of milliseconds, so that :func:`skip_rates` can afford thousands of
    schedules. Each ``poll`` reads at most ``batch_size`` rows, as the relays do:

    * high-water mark: the visible rows above the highest seq it has seen, lowest first;
    * flag: the visible rows not published yet, lowest first;
    * commit-order log: the next visible rows in commit order, from its offset.

    A last round of polls after the schedule (until nothing is read) publishes whatever each
    rule can still see.
    """
    check_schedule(schedule)
    check.count("batch_size", batch_size, maximum=MAX_BATCH_SIZE)
    return _replay(schedule, batch_size)


def _replay(schedule: Sequence[str], batch_size: int) -> dict[str, list[int]]:
    """:func:`rule_skips` for a schedule known to be valid."""
    taken: dict[str, int] = {}
    visible: list[int] = []   # in commit order: what the commit-order log holds
    offset = 0                # the log's stored position
    mark = 0                  # the high-water mark
    above: list[int] = []     # visible rows above the mark, not yet read by the high-water mark
    unflagged: list[int] = []  # visible rows the flag relay has not published
    high: list[int] = []      # what the high-water mark published
    waiting = False           # a commit (or a full batch) since the last poll

    def poll() -> bool:
        nonlocal offset, mark, above, unflagged
        above.sort()
        read, above = above[:batch_size], above[batch_size:]
        if read:
            high.extend(read)
            mark = read[-1]
        unflagged.sort()
        flagged, unflagged = unflagged[:batch_size], unflagged[batch_size:]
        logged = min(batch_size, len(visible) - offset)
        offset += logged
        return batch_size in (len(read), len(flagged), logged)   # a full batch: read again

    for step in schedule:
        if step == "poll":
            if waiting:
                waiting = poll()
            continue
        action, writer = step.split()
        if action == "begin":
            taken[writer] = len(taken) + 1
            continue
        seq = taken[writer]
        visible.append(seq)
        unflagged.append(seq)
        if seq > mark:   # below the mark, the high-water mark never looks at it again
            above.append(seq)
        waiting = True
    while waiting:
        waiting = poll()
    committed = set(visible)
    return {HIGH_WATER_MARK: sorted(committed - set(high)), FLAG: sorted(unflagged),
            COMMIT_LOG: sorted(visible[offset:])}


def skip_rates(writer_counts: Iterable[int], trials: int = 20, seed: int = 0, *,
               checked: int = 20) -> list[dict]:
    """For each number of concurrent writers: the share of rows each relay never published,
    over ``trials`` random schedules.

    Every schedule is replayed by the relays' reading rules (:func:`rule_skips`); the first
    ``checked`` schedules of each writer count (all of them, if there are fewer) also run the
    three real relays on SQLite (:func:`run_schedule`), and the two must agree, so the fast
    replay is checked rather than trusted.
    """
    check.count("trials", trials, maximum=MAX_TRIALS)
    check.count("checked", checked, minimum=0, maximum=MAX_TRIALS)
    rows = []
    for writers in writer_counts:
        totals = {kind: 0 for kind in RELAY_KINDS}
        committed = 0
        for trial in range(trials):
            schedule = random_schedule(writers, seed=seed * 1000 + trial)
            skipped = _replay(schedule, BATCH_SIZE)   # valid by construction
            if trial < checked:
                real = run_schedule(schedule).skipped
                if real != skipped:   # the replay is wrong: say so rather than chart it
                    raise AssertionError(f"rule_skips disagrees with the relays on {schedule}: "
                                         f"{skipped} against {real}")
            committed += sum(step.startswith("commit") for step in schedule)
            for kind, seqs in skipped.items():
                totals[kind] += len(seqs)
        rows.append({"writers": writers, "schedules": trials, "rows": committed,
                     **{kind: totals[kind] / committed for kind in RELAY_KINDS}})
    return rows
