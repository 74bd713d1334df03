"""The broker playground: the shop's order service publishing to consumer groups over time.

One topic, ``orders``; the order service publishes ``OrderPlaced`` and moves on; consumer
groups (shipping to start with, analytics when you add it) read at their own pace. You take a
group offline, bring it back, add a group, publish more orders, and read the backlog per group
over time and the delivery timeline from the trace. ``crash_next("shipping")`` makes a group's
consumer die after it handles its next message and before it commits it: a supervisor restarts
it ``RESTART_MS`` later and the group reads again from its committed offset (at-least-once).

Every action is followed by one step of simulated time (``STEP_MS``), so each click in the
widget is one second of the shop's life.
"""

from __future__ import annotations

import pandas as pd

from .broker import Broker
from .clock import Clock
from .consumer import BEFORE_COMMIT, ConsumerWorker
from .faults import Crash, FaultPlan
from .messages import event
from .trace import Trace

STEP_MS = 1_000
RESTART_MS = 300  # a crashed consumer's supervisor brings it back after this long
SAMPLE_EVERY_MS = 50
TOPIC = "orders"


class BrokerPlayground:
    """The model behind the playground widget (usable on its own in a notebook cell).

    ``processing_ms`` is how long each group takes per message; ``publish_every_ms`` spaces
    the orders of one ``publish_orders`` call, as if customers clicked one after another.
    """

    def __init__(self, partitions: int = 3, publish_every_ms: float = 50.0,
                 processing_ms: dict[str, float] | None = None, seed: int = 0):
        if publish_every_ms <= 0:
            raise ValueError(f"publish_every_ms must be > 0, got {publish_every_ms}")
        self.partitions = partitions
        self.publish_every_ms = publish_every_ms
        self.processing_ms = {"shipping": 80.0, "analytics": 30.0, **(processing_ms or {})}
        self.seed = seed
        self.reset()

    def reset(self) -> None:
        """Start over: an empty broker with the shipping group online."""
        self.clock = Clock()
        self.trace = Trace()
        self.broker = Broker(self.clock, self.trace, FaultPlan(seed=self.seed))
        self.broker.create_topic(TOPIC, self.partitions)
        self.workers: dict[str, ConsumerWorker] = {}
        self.handled: dict[str, list[str]] = {}
        self.orders_placed = 0
        self.samples: list[tuple[float, str, int]] = []
        self._offline: list[tuple[float, float | None]] = []  # shipping's offline spans (ms)
        self.crash_armed: set[str] = set()  # groups whose next handled message kills them
        self.clock.every(SAMPLE_EVERY_MS, self._sample)
        self.add_group("shipping", step=False)

    # -- actions ----------------------------------------------------------------------------
    def publish_orders(self, n: int = 5, step: bool = True) -> None:
        """The order service places ``n`` orders, one every ``publish_every_ms``."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        start = self.clock.now
        for i in range(n):
            self.orders_placed += 1
            number = self.orders_placed
            self.clock.call_at(start + i * self.publish_every_ms,
                               lambda number=number: self._place(number))
        if step:
            self.step()

    def add_group(self, name: str, step: bool = True) -> None:
        """Subscribe a new consumer group; it reads the whole history of ``orders``."""
        if name in self.workers:
            raise ValueError(f"group {name!r} exists already; groups: {sorted(self.workers)}")
        if name not in self.processing_ms:
            raise ValueError(f"name must be one of {sorted(self.processing_ms)}, got {name!r}")
        self.handled[name] = []
        self.workers[name] = ConsumerWorker(
            self.broker, name, TOPIC, lambda delivery, name=name: self._handle(name, delivery),
            name=f"{name}-1", processing_ms=self.processing_ms[name], poll_interval_ms=50,
            restart_after_ms=RESTART_MS,
        )
        if step:
            self.step()

    def set_online(self, group: str, online: bool, step: bool = True) -> None:
        """Take ``group``'s consumer offline, or bring it back."""
        worker = self._worker(group)
        if online and not worker.online:
            self._offline[-1] = (self._offline[-1][0], self.clock.now)
        elif not online and worker.online:
            self._offline.append((self.clock.now, None))
        worker.go_online() if online else worker.go_offline()
        if step:
            self.step()

    def crash_next(self, group: str, step: bool = True) -> None:
        """``group``'s consumer dies after handling its next message, before committing it.

        It comes back ``RESTART_MS`` later and reads again from the committed offset: the
        message it handled (and the rest of its batch) is delivered a second time."""
        self._worker(group)
        self.crash_armed.add(group)
        if step:
            self.step()

    def step(self, ms: float = STEP_MS) -> None:
        """Let ``ms`` of simulated time pass."""
        self.clock.advance(ms)

    # -- what a learner reads ------------------------------------------------------------------
    def is_online(self, group: str) -> bool:
        return self._worker(group).online

    def offline_spans(self) -> list[tuple[float, float]]:
        """When shipping was offline: (start, end) in ms, the open span ending now."""
        return [(start, self.clock.now if end is None else end) for start, end in self._offline]

    def groups(self) -> pd.DataFrame:
        """One row per group: online or not, messages handled, backlog."""
        return pd.DataFrame([
            {"group": name, "online": worker.online, "handled": worker.handled,
             "backlog": self.broker.lag(name)}
            for name, worker in sorted(self.workers.items())
        ], columns=["group", "online", "handled", "backlog"])

    def backlog_samples(self) -> pd.DataFrame:
        """Backlog per group over time (columns time, group, backlog)."""
        return pd.DataFrame(self.samples, columns=["time", "group", "backlog"])

    def _handle(self, group: str, delivery) -> None:
        self.handled[group].append(delivery.message.key)
        if group in self.crash_armed:
            self.crash_armed.discard(group)
            worker = self.workers[group]
            self.trace.add(self.clock.now, "crash", worker.name, TOPIC, delivery.partition,
                           delivery.offset, delivery.message.key, delivery.message.id,
                           delivery.message.type, f"{BEFORE_COMMIT} (crashed by hand)")
            raise Crash(BEFORE_COMMIT, "crashed by hand")

    def _place(self, number: int) -> None:
        self.broker.publish(TOPIC, event("OrderPlaced", f"order-{number}",
                                         {"order": number, "total": 20 + number % 7 * 5},
                                         clock=self.clock))

    def _sample(self) -> None:
        for name in sorted(self.workers):
            self.samples.append((self.clock.now, name, self.broker.lag(name)))

    def _worker(self, group: str) -> ConsumerWorker:
        try:
            return self.workers[group]
        except KeyError:
            raise ValueError(f"group must be one of {sorted(self.workers)}, got {group!r}") from None


# -- the partition picture: a group's position in each partition, drawn ------------------------
_CELL = ('<td title="{title}" style="width:64px;height:22px;border:1px solid #999;{mark}'
         'background:{bg};font-size:10px;text-align:center;padding:0 2px">{text}</td>')
_MARK = "border-left:4px solid #C44E52;"
COMMITTED_BG, FETCHED_BG, WAITING_BG = "#8FD19E", "#FFE08A", "#FFFFFF"


def offsets_html(broker, group: str, caption: str = "", topic: str = TOPIC) -> str:
    """One row per partition of ``topic``, one box per offset: green below the group's
    **committed offset** (done, for good), yellow where it was delivered but not committed
    (handled or not: a crash now sends it again; "x2" counts the deliveries), white where it
    waits. The red edge is the committed offset, where a restarted consumer starts reading.

    Read from the broker's state (its topics, the group's committed offsets and delivery
    counts), never from a consumer's memory.
    """
    import html

    log = broker.topic(topic)
    g = broker.group(group)
    width = max((len(m) for m in log.partitions), default=0)
    rows = []
    for p, messages in enumerate(log.partitions):
        committed = g.committed.get((topic, p), 0)
        delivered = g.delivered_upto.get((topic, p), 0)
        again = g.redeliveries.get((topic, p), {})
        cells = []
        for offset in range(width + 1):
            mark = _MARK if offset == committed else ""
            if offset >= len(messages):
                cells.append(f'<td style="width:20px;{mark}"></td>')
                continue
            message = messages[offset]
            bg = (COMMITTED_BG if offset < committed else FETCHED_BG if offset < delivered
                  else WAITING_BG)
            text = f"{offset}: {html.escape(message.key)}"
            if offset >= committed and again.get(offset, 1) > 1:
                text += f" x{again[offset]}"
            cells.append(_CELL.format(title=html.escape(f"offset {offset}: {message.id}"),
                                      bg=bg, mark=mark, text=text))
        rows.append(f'<tr><td style="font-size:10px;padding-right:6px">partition {p}</td>'
                    f"{''.join(cells)}<td style=\"font-size:10px;padding-left:6px\">"
                    f"committed = {committed}</td></tr>")
    head = (f'<caption style="text-align:left;font-size:11px;font-weight:bold">'
            f"{html.escape(caption)}</caption>" if caption else "")
    return (f'<table class="eda-offsets" style="border-collapse:collapse;margin:4px 0">{head}'
            f"{''.join(rows)}</table>")


OFFSETS_LEGEND = (
    f'<div style="font-size:10px"><span style="background:{COMMITTED_BG}">&nbsp;committed&nbsp;'
    f'</span> <span style="background:{FETCHED_BG}">&nbsp;delivered, not committed&nbsp;</span> '
    f'<span style="border:1px solid #999">&nbsp;waiting&nbsp;</span> '
    '<span style="border-left:4px solid #C44E52">&nbsp;</span> the committed offset: a '
    "restarted consumer reads from there</div>")
