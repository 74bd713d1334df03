"""Every widget of the course renders and responds in a real browser.

One JupyterLab server and one chromium serve the whole module. Each notebook whose stored
outputs show a widget is opened from a temporary copy, run top to bottom, checked for widgets
that did not render, and then every ``eda-control`` is used once while some ``eda-view`` must
change. Screenshots go to ``tests/artifacts/browser/<notebook>-<step>.png``.

Without chromium or playwright the module skips and says why, unless
``EDA_LAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then it fails.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import browser_support
import nbformat
import pytest
from browser_support import (
    REQUIRE_BROWSER_ENV,
    browser_session,
    displays_widget,
    require_browser,
    voila_session,
    widget_renderer_problem,
    write_widget_notebook,
)
from nbformat.v4 import new_code_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIXTURES = "browser_fixtures"  # folder of the generated fixture notebooks in the server root


def _notebook_params():
    for path in NOTEBOOKS:
        marks = () if displays_widget(path) else pytest.mark.skip(
            reason=f"{path.name} shows no widget in its stored outputs")
        yield pytest.param(path.name, id=path.stem, marks=marks)


# --- fixture notebooks: the harness is developed and proved against these ----------------------

# Every kind of control a course widget may use, following CONTRIBUTING.md: a root eda-fixture,
# controls eda-control + eda-fixture-<control>, views eda-view (an HTML table and a PNG chart).
# "Undo" (disabled until something changed) and "Reset" (nothing to reset yet) come first:
# both can only be used on the harness's second pass. "where" acts only while "crash" is on,
# and the harness's first click turns crash off: it needs crash flipped back on.
FIXTURE_WIDGETS = '''\
import ipywidgets as w
import matplotlib.pyplot as plt
from eda_lab.widgets.common import html_table, image_widget, show_figure, styled_button

def control(widget, name):
    widget.add_class("eda-control")
    widget.add_class(f"eda-fixture-{name}")
    return widget

reset = control(styled_button("Reset", "eda-fixture-reset"), "reset")
undo = control(w.Button(description="Undo", disabled=True), "undo")
step = control(w.Button(description="Step"), "step")
crash = control(w.ToggleButton(description="Crash relay", value=True), "crash")
where = control(w.Dropdown(options=["after publish", "before commit"]), "where")
relay = control(w.ToggleButtons(options=["polling", "log-tailing"]), "relay")
orders = control(w.Dropdown(options=[("10 orders", 10), ("100 orders", 100)]), "orders")
rate = control(w.IntSlider(min=0, max=10, value=10, description="fail %"), "rate")
delay = control(w.FloatSlider(min=0.0, max=1.0, step=0.1, value=0.3), "delay")
inbox = control(w.Checkbox(description="inbox"), "inbox")
group = control(w.RadioButtons(options=["shipping", "analytics"]), "group")
seed = control(w.BoundedIntText(value=1, min=0, max=5), "seed")
table = w.HTML()
table.add_class("eda-view")
chart = image_widget("eda-view")
history = []

def redraw():
    rows = [{"control": c.description or type(c).__name__, "value": c.value}
            for c in (crash, where, relay, orders, rate, delay, inbox, group, seed)]
    table.value = html_table(rows, caption=f"{len(history)} change(s)")
    undo.disabled = not history
    fig, ax = plt.subplots(figsize=(3, 1.5))
    ax.bar(["fail %"], [rate.value])
    ax.set_ylim(0, 10)
    show_figure(chart, fig)

def changed(change):
    if change["owner"] is where and not crash.value:
        return  # where the relay crashes matters only while it crashes
    history.append(change["name"])
    redraw()

def on_reset(_):
    history.clear()
    redraw()

def on_undo(_):
    history.pop()
    redraw()

reset.on_click(on_reset)
undo.on_click(on_undo)
step.on_click(lambda _: changed({"name": "step", "owner": step}))
for c in (crash, where, relay, orders, rate, delay, inbox, group, seed):
    c.observe(changed, "value")
redraw()
root = w.VBox([w.HBox([undo, reset, step, crash, where, relay]), w.HBox([orders, rate, delay]),
               w.HBox([inbox, group, seed]), w.HBox([table, chart])])
root.add_class("eda-fixture")
root
'''

# Two controls that change no view: a dead button (it reaches the kernel, which redraws
# nothing) and a "jam" toggle that shows nothing but, left on, would make "live" dead too.
FIXTURE_DEAD_CONTROL = '''\
import ipywidgets as w
view = w.HTML("clicks: 0")
view.add_class("eda-view")
jam = w.ToggleButton(description="Jam")
live, dead = w.Button(description="Live"), w.Button(description="Dead")
for control, name in ((jam, "jam"), (live, "live"), (dead, "dead")):
    control.add_class("eda-control")
    control.add_class(f"eda-fixture-{name}")
clicks = []

def on_live(_):
    if not jam.value:
        clicks.append(1)
        view.value = f"clicks: {len(clicks)}"

live.on_click(on_live)
root = w.HBox([jam, live, dead, view])
root.add_class("eda-fixture")
root
'''

# Two ways a notebook fails before any control is used.
FIXTURE_FAILING_CELL = "import ipywidgets as w\nw.Button(description='never shown')\n1 / 0\n"
FIXTURE_UNMARKED_WIDGET = "import ipywidgets as w\nw.Button(description='no eda class')\n"


def write_fixture(folder: Path, name: str, source: str) -> str:
    """Write fixture ``name`` into ``folder``; its path relative to the server root."""
    write_widget_notebook(folder / f"{name}.ipynb", source)
    return f"{folder.name}/{name}.ipynb"


# --- one server and one browser for the module -------------------------------------------------

@pytest.fixture(scope="module")
def lab_page(tmp_path_factory):
    require_browser()
    problem = widget_renderer_problem()
    assert problem is None, problem

    home = tmp_path_factory.mktemp("browser")
    root = home / "root"
    for folder in ("notebooks", "data"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, root / folder)
    root.mkdir(exist_ok=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.json")]:
        old.unlink()

    with browser_session(root, home, ARTIFACTS) as page:  # stopped by pid when the module ends
        yield page


def _explain(report, lab_page) -> str:
    lines = [f"{report.notebook}:", *(f"  - {p}" for p in report.problems)]
    if lab_page.console_errors:
        lines.append("  browser console errors: " + " | ".join(lab_page.console_errors[-5:]))
    return "\n".join(lines)


# --- the tests -----------------------------------------------------------------------------------

def test_only_notebooks_with_a_stored_widget_output_are_driven(tmp_path):
    """The browser test picks notebooks from their JSON, without running them."""
    with_widget = write_fixture(tmp_path / FIXTURES, "with_widget", FIXTURE_DEAD_CONTROL)
    plain = tmp_path / "plain.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("1 + 1", outputs=[new_output(
        "execute_result", data={"text/plain": "2"}, execution_count=1)])]), plain)
    assert displays_widget(tmp_path / with_widget)
    assert not displays_widget(plain)


def test_without_chromium_the_browser_test_skips_unless_required(monkeypatch):
    monkeypatch.setattr(browser_support.shutil, "which", lambda name: None)
    monkeypatch.delenv(REQUIRE_BROWSER_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not on PATH"):
        require_browser()
    monkeypatch.setenv(REQUIRE_BROWSER_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_BROWSER_ENV}=1 but .*chromium"):
        require_browser()


@pytest.mark.browser
def test_fixture_widget_renders_and_every_control_redraws_a_view(lab_page):
    path = write_fixture(lab_page.lab.root / FIXTURES, "fixture_widgets", FIXTURE_WIDGETS)
    report = lab_page.check(path)
    assert not report.problems, _explain(report, lab_page)
    used = {outcome.name for outcome in report.controls}
    assert used == {f"eda-fixture-{name}" for name in (
        "reset", "undo", "step", "crash", "where", "relay", "orders", "rate", "delay", "inbox",
        "group", "seed")}
    # Undo (disabled) and Reset (nothing to reset yet) worked once the others were used;
    # "where" once "crash" was turned back on.
    assert [o.name for o in report.controls][-4:] == [
        "eda-fixture-undo", "eda-fixture-reset", "eda-fixture-crash", "eda-fixture-where"]
    assert len(report.screenshots) == 1 + len(report.controls)
    for shot in report.screenshots:
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", shot
    saved = json.loads((ARTIFACTS / "fixture_widgets.json").read_text())
    assert [c["control"] for c in saved["controls"]] == [o.name for o in report.controls]
    assert all(c["redraw_ms"] > 0 for c in saved["controls"])


@pytest.mark.browser
def test_a_control_that_redraws_no_view_is_reported_by_name(lab_page):
    """The jam toggle is flipped back after changing nothing, so "live" still works."""
    path = write_fixture(lab_page.lab.root / FIXTURES, "fixture_dead_control",
                         FIXTURE_DEAD_CONTROL)
    report = lab_page.check(path)
    assert report.problems == ["eda-fixture-jam: clicked: no eda-view changed",
                               "eda-fixture-dead: clicked: no eda-view changed"]
    assert [o.name for o in report.controls] == [
        "eda-fixture-live", "eda-fixture-jam", "eda-fixture-dead"]


@pytest.mark.browser
@pytest.mark.parametrize(("source", "problem"), [
    (FIXTURE_FAILING_CELL, "cell 0 raised ZeroDivisionError: division by zero"),
    (FIXTURE_UNMARKED_WIDGET, "no rendered widget has an eda-* class"),
], ids=["failing-cell", "unmarked-widget"])
def test_a_notebook_that_fails_or_shows_no_eda_widget_is_reported(lab_page, source, problem):
    path = write_fixture(lab_page.lab.root / FIXTURES, "fixture_broken", source)
    report = lab_page.check(path)
    assert len(report.problems) == 1 and report.problems[0].startswith(problem), report.problems
    assert report.controls == []


@pytest.mark.browser
@pytest.mark.parametrize("notebook", list(_notebook_params()))
def test_notebook_widgets_render_and_respond_in_the_browser(lab_page, notebook):
    report = lab_page.check(f"notebooks/{notebook}")
    assert not report.problems, _explain(report, lab_page)
    assert report.screenshots


# --- the two seed widgets as Voila apps -------------------------------------------------------

APPS = {"outbox_visualizer": "eda-outbox-visualizer", "saga_stepper": "eda-saga-stepper"}
# The controls the timeline and the stories add to both widgets: each must change a view.
TIMELINE_CONTROLS = ("back", "forward", "slider", "play", "speed", "story", "story-next")
# Used with the keyboard alone (focus, then the key) in each app, after the mouse pass: the
# main buttons (Enter), a toggle's option (Space), a stop toggle, the timeline's slider (an
# arrow key) and back.
KEYBOARD = {
    "outbox_visualizer": [("place", "Enter"), ("step", "Enter"), ("relay-crash", "Space"),
                          ("stop-relay", "Space"), ("slider", "ArrowLeft"), ("back", "Enter")],
    "saga_stepper": [("step", "Enter"), ("outcome-authorize-payment", "Space"),
                     ("stop-payment", "Space"), ("drop", "Enter"), ("slider", "ArrowLeft"),
                     ("back", "Enter")],
}


@pytest.mark.browser
@pytest.mark.parametrize("app", list(APPS))
def test_the_seed_widgets_run_as_voila_apps_and_every_control_redraws(app, tmp_path):
    """Voila on 127.0.0.1 (a free port, stopped by its pid) serves apps/<app>.ipynb; chromium
    uses every control of the widget, and each use must change a view; then every control has
    a label and a keyboard stop, and a few are used with the keyboard alone."""
    require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with voila_session(ROOT / "apps" / f"{app}.ipynb", tmp_path, ARTIFACTS) as page:
        report = page.check_app(APPS[app], f"voila-{app}")
        keyboard_problems = page.check_keyboard(APPS[app], [
            (f"{APPS[app]}-{name}", key) for name, key in KEYBOARD[app]])
    assert not report.problems, _explain(report, page)
    used = {outcome.name for outcome in report.controls}
    assert {f"{APPS[app]}-{name}" for name in TIMELINE_CONTROLS} <= used, sorted(used)
    assert all(o.redraw_ms is not None for o in report.controls)
    assert not keyboard_problems, keyboard_problems
