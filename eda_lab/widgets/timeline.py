"""The timeline both seed widgets share: every action recorded, scrubbed, stepped back, played.

RaftScope's lesson is that a learner understands a distributed protocol by moving back and
forth through it, not by pressing Step and hoping. So every action a learner takes (place an
order, step, crash the relay once, stop the consumer) is recorded as plain data, and a slider,
back and forward buttons and a Play button move through them.

**Why replay, not snapshots.** A model holds SQLite databases, a broker and a simulated clock:
copying all of it at every action is costly and easy to get subtly wrong. Every action is
deterministic instead (the models are seeded, and the timeline keeps its own stream of
message ids, see :class:`IdStream`), so *the state at position k is the state after replaying
the first k actions on a fresh model*. That is the invariant the tests check, over random
action sequences.

**Why it is still fast.** What the learner sees at each position is cached as a *frame* (the
views' HTML, drawn by the widget's pure functions), so scrubbing only swaps strings. The live
model is rebuilt by replay only when the learner *acts* at a position behind it; moving
forward from the live model applies the missing actions one by one. A ``run`` records many
steps but renders only what it needs: a frame nobody has seen yet is drawn on demand.

:class:`Timeline` is the mechanism (no widgets in it, so tests drive it directly);
:class:`TimelineControls` is its row of controls; :class:`Story` and :class:`StoryPlayer`
script frames with captions on top of it, as The Secret Lives of Data does.
"""

from __future__ import annotations

import html
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import ipywidgets as widgets

from .. import messages
from .common import styled_button

M = TypeVar("M")
Action = tuple[Hashable, ...]   # ("step",), ("fault", "relay.after_publish", "once"), ...
Frame = dict[str, Any]          # view name -> HTML (and whatever else the widget draws)
MAX_ACTIONS = 400               # a replay of this many actions stays well under a click
SPEEDS_MS = {"slow": 1_200, "normal": 600, "fast": 250}   # Play: ms between two frames


class IdStream:
    """A private stream of message ids for one timeline.

    Message ids come from one module-level seeded sequence (:func:`eda_lab.messages.seed_ids`),
    so a replay would draw different ids from the first run (and the learner's own cells
    would move the sequence between clicks). Inside ``with stream:`` the ids come from this
    stream; outside, the global sequence is left where it was.
    """

    def __init__(self, seed: int = 0):
        self._state = random.Random(seed).getstate()
        self._saved: tuple | None = None

    def __enter__(self) -> IdStream:
        source = messages._id_source  # noqa: SLF001 - the one place ids are drawn from
        self._saved = source.getstate()
        source.setstate(self._state)
        return self

    def __exit__(self, *exc) -> None:
        source = messages._id_source  # noqa: SLF001
        self._state = source.getstate()
        source.setstate(self._saved)


class TimelineFull(ValueError):  # noqa: N818 - reads as a state, like OrchestratorDown
    """The timeline holds :data:`MAX_ACTIONS` actions; reset to go on."""


@dataclass
class Timeline(Generic[M]):
    """Recorded actions on a model, and a position among them.

    ``make_model()`` builds the model at position 0; ``apply(model, action)`` performs one
    action and returns a sentence saying what happened (it raises ``ValueError`` for an action
    it refuses, before changing anything); ``render(model, note)`` draws a frame.
    """

    make_model: Callable[[], M]
    apply: Callable[[M, Action], str]
    render: Callable[[M, str], Frame]
    seed: int = 0
    max_actions: int = MAX_ACTIONS
    start_note: str = "start"
    actions: list[Action] = field(default_factory=list, init=False)
    notes: list[str] = field(default_factory=list, init=False)
    position: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not isinstance(self.max_actions, int) or self.max_actions < 1:
            raise ValueError(f"max_actions must be a positive int, got {self.max_actions!r}")
        self.reset()

    # -- the record --------------------------------------------------------------------------
    def reset(self, make_model: Callable[[], M] | None = None, note: str | None = None) -> Frame:
        """Forget every action; position 0 is a fresh model (built by ``make_model`` if
        given, which then replaces the timeline's own)."""
        if make_model is not None:
            self.make_model = make_model
        note = self.start_note if note is None else note
        self.actions, self.notes, self.position = [], [note], 0
        self._model, self._model_at, self._ids = self._fresh()
        self._frames: list[Frame | None] = [self.render(self._model, note)]
        return self._frames[0]

    def _fresh(self) -> tuple[M, int, IdStream]:
        ids = IdStream(self.seed)
        with ids:
            model = self.make_model()
        return model, 0, ids

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def at_end(self) -> bool:
        return self.position == len(self.actions)

    def record(self, action: Action, *, render: bool = True) -> str:
        """Do ``action`` at the current position and move after it; what it did.

        Actions after the current position are dropped first (acting in the past starts a
        new future, as in an editor's undo). ``render=False`` leaves the frame to be drawn
        when someone looks at it (``run`` records many steps, shows the last).
        """
        if not isinstance(action, tuple) or not action:
            raise TypeError(f"action must be a non-empty tuple such as ('step',), got {action!r}")
        if self.position >= self.max_actions:
            raise TimelineFull(f"the timeline holds at most {self.max_actions} actions: "
                               "press reset to start a new one")
        model = self.live()
        with self._ids:
            note = self.apply(model, action)
        del self.actions[self.position:]
        del self.notes[self.position + 1:]
        del self._frames[self.position + 1:]
        self.actions.append(action)
        self.notes.append(note)
        self.position += 1
        self._model_at = self.position
        self._frames.append(self.render(model, note) if render else None)
        return note

    def annotate(self, note: str) -> None:
        """Replace what the current position says happened (a run sums up its steps)."""
        self.notes[self.position] = note
        if self.position:
            self._frames[self.position] = None   # drawn again, with the new note

    # -- moving ----------------------------------------------------------------------------
    def goto(self, k: int) -> Frame:
        """Show position ``k`` (0 = the fresh model, ``len(self)`` = after the last action)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= len(self.actions):
            raise ValueError(f"position must be an int from 0 to {len(self.actions)}, got {k!r}")
        self.position = k
        return self.frame

    def back(self) -> Frame:
        return self.goto(max(0, self.position - 1))

    def forward(self) -> Frame:
        return self.goto(min(len(self.actions), self.position + 1))

    @property
    def frame(self) -> Frame:
        """The frame at the current position (drawn now if nobody has looked at it yet)."""
        frame = self._frames[self.position]
        if frame is None:
            frame = self._frames[self.position] = self.render(self.live(), self.note)
        return frame

    @property
    def note(self) -> str:
        """What the action that led to the current position did."""
        return self.notes[self.position]

    def live(self) -> M:
        """The model in the state of the current position (replayed if it is behind)."""
        if self._model_at > self.position:
            self._model, self._model_at, self._ids = self._fresh()
        with self._ids:
            while self._model_at < self.position:
                self.apply(self._model, self.actions[self._model_at])
                self._model_at += 1
        return self._model

    def replay(self, k: int | None = None) -> M:
        """A fresh model after the first ``k`` actions (all by default): what position ``k``
        must show. The tests' oracle; the live model is left alone."""
        k = len(self.actions) if k is None else k
        model, _, ids = self._fresh()
        with ids:
            for action in self.actions[:k]:
                self.apply(model, action)
        return model


# --- the row of controls ---------------------------------------------------------------------

class TimelineControls:
    """Back, a slider over the positions, forward, Play with a speed, and a readout.

    The Play widget is linked to the slider in the browser (``jslink``), so playing runs in
    JupyterLab and in Voila without a kernel loop: each tick moves the slider, and the kernel
    only swaps in the cached frame. ``on_move(k)`` is called for every new position.
    """

    def __init__(self, css: str, on_move: Callable[[int], None]):
        self.on_move = on_move
        self._syncing = False
        self._ends = 0   # presses of back at the start or forward at the end (each one says so)
        self.back_button = styled_button("◀ back", f"{css}-back", "one action back (the state "
                                         "before it)")
        self.forward_button = styled_button("forward ▶", f"{css}-forward",
                                            "one action forward")
        self.slider = widgets.IntSlider(value=0, min=0, max=0, description="timeline",
                                        continuous_update=True, readout=True,
                                        layout=widgets.Layout(width="360px"),
                                        tooltip="drag, or use the arrow keys: the state after "
                                                "that many actions")
        self.play = widgets.Play(value=0, min=0, max=0, interval=SPEEDS_MS["normal"],
                                 show_repeat=False, description="play",
                                 tooltip="play the recorded actions from the slider's position")
        self.speed = widgets.Dropdown(options=list(SPEEDS_MS.items()), value=SPEEDS_MS["normal"],
                                      description="speed", layout=widgets.Layout(width="170px"))
        self.link = widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.readout = widgets.HTML()
        for name, control in (("back", self.back_button), ("forward", self.forward_button),
                              ("slider", self.slider), ("play", self.play),
                              ("speed", self.speed)):
            control.add_class("eda-control")
            control.add_class(f"{css}-{name}")
        self.readout.add_class("eda-view")
        self.readout.add_class(f"{css}-position")
        self.back_button.on_click(lambda _: self._move(self.slider.value - 1))
        self.forward_button.on_click(lambda _: self._move(self.slider.value + 1))
        self.slider.observe(self._slid, "value")
        self.play.observe(self._play_toggled, "playing")
        self.speed.observe(self._speed_changed, "value")
        # The Play widget's buttons are icons only (one toggles play and pause, one stops and
        # goes back to the start): each gets its word, so it has a label a learner can read.
        words = "".join(f".{css}-play button:nth-of-type({i})::after{{content:'{w}'}}"
                        for i, w in enumerate(("play / pause", "stop"), 1))
        self.style = widgets.HTML(
            f"<style>.{css}-play button{{width:auto !important;padding:0 8px}}"
            f".{css}-play button i{{margin-right:3px}}{words}</style>",
            layout=widgets.Layout(width="0px", height="0px", overflow="hidden"))
        self.root = widgets.HBox([self.back_button, self.slider, self.forward_button,
                                  self.play, self.speed, self.style],
                                 layout=widgets.Layout(flex_flow="row wrap",
                                                       align_items="center"))

    def _move(self, k: int) -> None:
        if not self.slider.min <= k <= self.slider.max:   # back at the start, forward at the end
            self._ends += 1
            where = "the start" if k < self.slider.min else "the end"
            self.readout.value = (f'<span style="font-size:12px">already at {where} of the '
                                  f"timeline ({self._ends}): "
                                  + ("act to record more" if k > 0 else "nothing before it")
                                  + "</span>")
            return
        self.slider.value = k

    def _slid(self, change) -> None:
        if not self._syncing:
            self.on_move(change["new"])

    def _play_toggled(self, change) -> None:
        """Play pressed at the end replays from the start (the browser's Play would stop at
        once: it only moves forward)."""
        if change["new"] and self.slider.max and self.slider.value >= self.slider.max:
            self._move(0)
        elif change["new"] and not self.slider.max:
            self._move(1)   # nothing recorded yet: says so

    def _speed_changed(self, change) -> None:
        self.play.interval = change["new"]
        self.readout.value = (self.readout.value.split(" · play:")[0]
                              + f" · play: one action every {change['new']} ms")

    def show(self, timeline: Timeline) -> None:
        """Put the controls at the timeline's position (without calling ``on_move``)."""
        self._syncing = True
        try:
            n = len(timeline)
            self.slider.max = self.play.max = n
            self.slider.value = self.play.value = timeline.position
        finally:
            self._syncing = False
        where = ("the start" if timeline.position == 0
                 else f"after action {timeline.position} of {n}")
        self.readout.value = (f'<span style="font-size:12px">timeline: {where}'
                              f"{'' if timeline.at_end else ' (the past: acting here drops the later actions)'}"
                              f" · play: one action every {self.play.interval} ms</span>")


# --- guided stories --------------------------------------------------------------------------

@dataclass(frozen=True)
class StoryFrame:
    """One frame of a story: the actions that lead to it and the caption that explains it."""

    caption: str
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Story:
    """A scripted walk through one scenario: a setup (the widget's settings) and frames.

    ``setup`` is what the widget resets to before the first frame (the variant, the inbox),
    so every story starts from the same place however the learner left the widget.
    """

    title: str
    setup: dict = field(default_factory=dict)
    frames: tuple[StoryFrame, ...] = ()

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError(f"story {self.title!r} needs at least one frame")


class StoryPlayer:
    """The "play a story" menu, a Next button and the caption view.

    Choosing a story calls ``begin(story)`` (the widget resets to the story's setup), then shows
    the first frame; Next performs the next frame's actions through ``act(action)`` and shows
    its caption, and so on: the story waits for the learner at every frame.
    """

    NONE = "(choose a story)"

    def __init__(self, css: str, stories: Sequence[Story], begin: Callable[[Story], None],
                 act: Callable[[Action], None]):
        self.stories = {story.title: story for story in stories}
        self.begin, self.act = begin, act
        self.story: Story | None = None
        self.index = -1
        self.menu = widgets.Dropdown(options=[self.NONE, *self.stories], value=self.NONE,
                                     description="play a story",
                                     style={"description_width": "initial"},
                                     layout=widgets.Layout(width="470px"))
        self.next_button = styled_button("next ▶▶", f"{css}-story-next",
                                         "the next frame of the story", "info")
        self.caption = widgets.HTML()
        for name, control in (("story", self.menu), ("story-next", self.next_button)):
            control.add_class("eda-control")
            control.add_class(f"{css}-{name}")
        self.caption.add_class("eda-view")
        self.caption.add_class(f"{css}-caption")
        self.menu.observe(self._chosen, "value")
        self.next_button.on_click(lambda _: self.next())
        self.next_button.disabled = True
        self.root = widgets.VBox([widgets.HBox([self.menu, self.next_button]), self.caption])

    def _chosen(self, change) -> None:
        if change["new"] != self.NONE:
            self.play(change["new"])

    def play(self, title: str) -> None:
        """Start the story called ``title`` from its first frame."""
        if title not in self.stories:
            raise ValueError(f"story must be one of {list(self.stories)}, got {title!r}")
        self.story, self.index = self.stories[title], -1
        self.begin(self.story)
        self.next()

    def next(self) -> None:
        """Show the next frame of the story (after doing its actions)."""
        story = self.story
        if story is None or self.index + 1 >= len(story.frames):
            return
        self.index += 1
        frame = story.frames[self.index]
        for action in frame.actions:
            self.act(action)
        self._show()

    def stop(self) -> None:
        """Leave the story (the learner reset or changed a setting)."""
        self.story, self.index = None, -1
        self._show()

    def _show(self) -> None:
        story = self.story
        if story is None:
            self.caption.value = ""
            self.next_button.disabled = True
            return
        last = self.index + 1 >= len(story.frames)
        self.next_button.disabled = last
        self.caption.value = caption_html(story, self.index)


def caption_html(story: Story, index: int) -> str:
    """The caption of frame ``index`` of ``story``, with where we are in it."""
    frame = story.frames[index]
    last = index + 1 >= len(story.frames)
    hint = ("the end: scrub the timeline back to look again, or choose another story" if last
            else "press next ▶▶ when you have looked")
    return ('<div class="eda-story-caption" style="border-left:4px solid #4C72B0;'
            'background:#F0F4FA;padding:6px 10px;margin:4px 0;font-size:13px">'
            f"<b>{html.escape(story.title)}</b> · frame {index + 1} of {len(story.frames)}"
            f"<div style='margin-top:3px'>{html.escape(frame.caption)}</div>"
            f"<div style='color:#666;font-size:11px;margin-top:3px'>{html.escape(hint)}</div>"
            "</div>")


# --- fault controls with a stated mode --------------------------------------------------------

OFF, ONCE, ALWAYS = "off", "once", "every time"
MODES = (OFF, ONCE, ALWAYS)


def fault_spec(mode: str, hits_so_far: int) -> Any:
    """The :class:`~eda_lab.faults.FaultPlan` entry of a control's mode: None (off), the next
    visit (once), or True (every time)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return None if mode == OFF else (hits_so_far + 1 if mode == ONCE else True)


def mode_toggle(label: str, css: str, name: str, tooltip: str,
                modes: Sequence[str] = MODES) -> widgets.ToggleButtons:
    """A fault control whose options say how often it fires: off / once / every time."""
    toggle = widgets.ToggleButtons(options=list(modes), value=modes[0], description=label,
                                   tooltips=[f"{tooltip}: {m}" for m in modes],
                                   style={"button_width": "92px", "description_width": "190px"})
    toggle.add_class("eda-control")
    toggle.add_class(f"{css}-{name}")
    return toggle
