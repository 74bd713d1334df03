"""What the Transactional Outbox Visualizer records and replays: its pipeline and its actions.

The visualizer drives an :class:`~eda_lab.outbox.pipeline.OrderPipeline` in step mode. This
module adds the two things a learner needs on top of it and nothing else:

* :class:`VisualizerPipeline` lets the learner **stop** a part (the relay, the consumer) and
  resume it: a stopped part takes no turn, so the outbox backlog or the consumer's lag grows
  while it is down and drains after;
* :func:`apply` performs one recorded **action** (plain data: ``("step",)``,
  ``("fault", "relay_crash", "once")``, ``("stop", "relay")``, ``("message", "drop")``) and
  says in one sentence what happened. The widget's timeline replays these actions, so the
  same list always gives the same state.

Fault controls have a stated mode: ``off``, ``once`` (the point fires the next time it is
reached, then the control is off again) or ``every time``.
"""

from __future__ import annotations

from ..outbox.pipeline import OrderPipeline, StepResult
from .timeline import ALWAYS, OFF, ONCE, Action, fault_spec

# control name -> (label, fault point, who reaches it, why it matters)
FAULTS = {
    "broker_down": ("broker down", "broker.unavailable", "broker",
                    "the broker refuses every publish"),
    "crash_before_commit": ("service crash before commit", "order.before_commit", "service",
                            "the local transaction is rolled back; publish-first already "
                            "published: a ghost message"),
    "crash_after_commit": ("service crash after commit", "order.after_commit", "service",
                           "DB-first committed and never publishes: a zombie record"),
    "crash_after_publish": ("service crash after publish", "order.after_publish", "service",
                            "publish-first only: published, then no commit: a ghost message"),
    "relay_crash": ("relay crash after publish", "relay.after_publish", "relay",
                    "published, not marked: published again after the restart (a duplicate)"),
    "consumer_crash": ("consumer crash before ack", "consumer.before_commit", "consumer",
                       "applied, not acknowledged: delivered again (the inbox drops it)"),
}
# in-flight message controls: op -> (label, fault point, what it does to the next message)
MESSAGE_FAULTS = {
    "drop": ("drop the next delivery", "broker.drop",
             "the next delivery is lost on its way; the broker delivers it again later"),
    "duplicate": ("duplicate the next delivery", "broker.duplicate",
                  "the next delivery arrives twice"),
    "delay": ("delay the next publish", "broker.delay",
              "the next published message is visible only after delay_ms"),
}
STOPPABLE = ("relay", "consumer")
RUN_STEPS = 60          # the most steps one click of "run" takes (a click stays fast)
CRASH_LOOP = 5          # this many crashes in a row of one part: run stops and says why


class VisualizerPipeline(OrderPipeline):
    """An :class:`OrderPipeline` whose relay and consumer a learner can stop and resume, and
    whose fault toggles have a mode (``modes``: control name -> off / once / every time)."""

    def __init__(self, variant: str, *, seed: int = 0, inbox: bool = True,
                 delay_ms: float = 1_000.0):
        super().__init__(variant, seed=seed, inbox=inbox, batch_size=1, consumer_batch=1,
                         cleanup="retain")
        self.broker.delay_ms = delay_ms
        self.stopped: set[str] = set()
        self.modes: dict[str, str] = dict.fromkeys(FAULTS, OFF)
        self.armed_messages: set[str] = set()
        self._once_at: dict[str, int] = {}     # point -> the visit a "once" fault fires at
        self.last_step: StepResult | None = None
        self.crash_runs: dict[str, int] = {}    # part -> its own steps in a row that crashed

    def has_work(self, actor: str) -> bool:
        """A stopped part has no turn; otherwise as :meth:`OrderPipeline.has_work`."""
        return actor not in self.stopped and super().has_work(actor)

    def arm(self, point: str, mode: str) -> None:
        """Plan ``point`` in ``mode`` on the pipeline's one fault plan (every part shares it)."""
        spec = fault_spec(mode, self.faults.hits.get(point, 0))
        self.faults.set_point(point, spec)
        if mode == ONCE:
            self._once_at[point] = spec
        else:
            self._once_at.pop(point, None)

    def disarm_fired(self) -> list[str]:
        """Turn off every "once" fault that has fired; the labels of those that did."""
        fired = []
        hits = self.faults.hits
        for point, at in list(self._once_at.items()):
            if hits.get(point, 0) >= at:
                del self._once_at[point]
                self.faults.set_point(point, None)
                for name, (label, control_point, *_) in FAULTS.items():
                    if control_point == point and self.modes[name] == ONCE:
                        self.modes[name] = OFF
                        fired.append(label)
                for op, (label, control_point, _) in MESSAGE_FAULTS.items():
                    if control_point == point and op in self.armed_messages:
                        self.armed_messages.discard(op)
                        fired.append(label)
        return fired

    def crash_loop(self) -> str | None:
        """The part whose last :data:`CRASH_LOOP` steps all crashed (a livelock), or None."""
        return next((part for part, n in self.crash_runs.items() if n >= CRASH_LOOP), None)

    def relay_backlog(self) -> int:
        """Events committed to the outbox and not yet published (0 without a relay)."""
        return 0 if self.relay is None else self.relay.backlog()


def apply(model: VisualizerPipeline, action: Action) -> str:
    """Perform one recorded action on ``model``; one sentence saying what happened.

    Refuses a malformed action with a ``ValueError`` before changing anything.
    """
    kind, *args = action
    if kind == "place":
        model.request_order()
        return f"an order is queued ({model.queued} waiting for the service)"
    if kind == "step":
        return _step(model)
    if kind == "fault":
        name, mode = _two(action)
        if name not in FAULTS:
            raise ValueError(f"fault must be one of {list(FAULTS)}, got {name!r}")
        label, point, _, why = FAULTS[name]
        model.arm(point, mode)
        model.modes[name] = mode
        if mode == OFF:
            return f"{label}: off"
        when = "the next time it is reached" if mode == ONCE else "every time it is reached"
        return f"{label}: fires {when} ({why})"
    if kind == "message":
        if len(args) != 1 or args[0] not in MESSAGE_FAULTS:
            raise ValueError(f"message action must be one of {list(MESSAGE_FAULTS)}, got {args!r}")
        label, point, what = MESSAGE_FAULTS[args[0]]
        model.arm(point, ONCE)
        model.armed_messages.add(args[0])
        return f"armed once: {what}"
    if kind in ("stop", "resume"):
        if len(args) != 1 or args[0] not in STOPPABLE:
            raise ValueError(f"{kind} takes one of {STOPPABLE}, got {args!r}")
        part = args[0]
        if part == "relay" and model.relay is None:
            raise ValueError(f"the {model.variant} variant has no relay to {kind}")
        now = model.clock.now
        if kind == "stop":
            model.stopped.add(part)
            model.trace.add(now, "down", part, detail=f"{part} stopped by the learner: its "
                            "work waits")
            return f"{part} stopped: its backlog grows until you resume it"
        model.stopped.discard(part)
        model.trace.add(now, "restart", part, detail=f"{part} resumed: it catches up from "
                        "what its database and the broker say")
        return f"{part} resumed: it works through its backlog"
    raise ValueError(f"action must start with one of 'place', 'step', 'fault', 'message', "
                     f"'stop', 'resume'; got {action!r}")


def _two(action: Action) -> tuple[str, str]:
    if len(action) != 3 or action[2] not in (OFF, ONCE, ALWAYS):
        raise ValueError(f"a fault action is ('fault', name, mode) with mode off, once or "
                         f"every time, got {action!r}")
    return action[1], action[2]


def _step(model: VisualizerPipeline) -> str:
    step = model.step()
    if step is None:
        stopped = sorted(model.stopped & {a for a in STOPPABLE if OrderPipeline.has_work(model, a)})
        model.last_step = None
        if stopped:
            return f"step: only the stopped {' and '.join(stopped)} has work: resume it"
        return "step: nothing to do (place an order first)"
    model.last_step = step
    crashed = any(r.kind == "crash" for r in step.records)
    runs = model.crash_runs
    runs[step.actor] = runs.get(step.actor, 0) + 1 if crashed else 0
    fired = model.disarm_fired()
    return f"step: {step.summary}" + (f" (fired once, now off: {', '.join(fired)})"
                                      if fired else "")
