"""The harness of the real-browser test: JupyterLab on 127.0.0.1, Debian's chromium, Playwright.

Headless widget tests prove the kernel side (values, HTML, PNG bytes). Only a browser proves
what a learner sees: that the JupyterLab widget renderer is installed, that every widget
renders, and that a click travels to the kernel and comes back as a redrawn view. The hooks
are the CSS classes of CONTRIBUTING.md ("Widgets"): a widget's root has a class ``eda-<name>``,
each main control ``eda-control`` plus ``eda-<name>-<control>``, each view ``eda-view``.

Everything runs in a temporary root (copies of the notebooks, a fresh settings dir, a fresh
browser profile); the server is stopped by its own process id, never by name.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:  # missing_browser() reports it; nothing below runs without playwright
    PlaywrightTimeout = TimeoutError

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
REQUIRE_BROWSER_ENV = "EDA_LAB_REQUIRE_BROWSER"
WIDGET_MANAGER_PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"
WIDGET_MANAGER_EXTENSION = Path("share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager")

# Generous but bounded: a 2-core machine running one notebook kernel and a browser.
SERVER_START_S = 60
UI_TIMEOUT_MS = 30_000  # page load, opening a notebook, widgets leaving "Loading widget..."
RUN_ALL_TIMEOUT_MS = 90_000  # a notebook runs top to bottom in < 15 s; leave room for a slow CI
KERNEL_REPLY_TIMEOUT_MS = 15_000  # a click reaches the kernel and the kernel goes idle again
VIEW_CHANGE_TIMEOUT_MS = 1_000  # the kernel answered: its updates already reached the page

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-breakpad",
    "--disable-crash-reporter", "--disable-dev-shm-usage", "--disable-extensions",
    "--disable-component-update", "--disable-default-apps", "--disable-sync",
    "--no-first-run", "--no-default-browser-check", "--metrics-recording-only",
    "--mute-audio", "--password-store=basic",
]

# JupyterLab settings for a quiet, fully rendered page: no news toast or update check over the
# page (and no network), and no notebook windowing (it detaches off-screen cells from the DOM).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


# --- which notebooks, and can we run at all --------------------------------------------------

def displays_widget(notebook: Path) -> bool:
    """True when a stored output of ``notebook`` is a widget view (the notebook shows a widget)."""
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    return any(WIDGET_MIME in output.get("data", {})
               for cell in cells for output in cell.get("outputs", []))


def write_widget_notebook(path: Path, source: str) -> Path:
    """A notebook of one cell, ``source``, ending in a widget; stored with a widget output (as
    an executed course notebook is), so :func:`displays_widget` picks it."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    widget_output = new_output("display_data", data={
        "text/plain": "Widget()",
        WIDGET_MIME: {"model_id": "", "version_major": 2, "version_minor": 0}})
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = new_notebook(metadata={"kernelspec": kernelspec}, cells=[
        new_code_cell(source, outputs=[widget_output], metadata={"tags": ["nbval-ignore-output"]}),
    ])
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def missing_browser() -> str | None:
    """Why the browser test cannot run here (no chromium, no playwright), or None."""
    if shutil.which("chromium") is None:
        return "Debian's chromium is not on PATH (apt-get install chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Python playwright is not installed (pip install -e '.[dev]')"
    return None


def require_browser() -> None:
    """Skip, saying why, when chromium or playwright is missing; fail instead when the
    environment sets EDA_LAB_REQUIRE_BROWSER=1 (``.ci/run`` does: there the test must run)."""
    reason = missing_browser()
    if reason is None:
        return
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{REQUIRE_BROWSER_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def widget_renderer_problem() -> str | None:
    """Why widgets could not render in JupyterLab (renderer extension missing), or None."""
    try:
        import jupyterlab_widgets  # noqa: F401
    except ImportError:
        return "jupyterlab_widgets is not installed: widgets would show as plain text"
    extension = Path(sys.prefix) / WIDGET_MANAGER_EXTENSION
    if not (extension / "package.json").exists():
        return f"the widget renderer extension is missing from {extension}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the JupyterLab server ---------------------------------------------------------------------

class JupyterLab:
    """A JupyterLab server on 127.0.0.1, serving ``root``, started and stopped by this object.

    Its config, runtime, settings and workspace dirs live under ``home``, so the learner's own
    ~/.jupyter never changes what the test sees. ``stop()`` shuts the kernels down through the
    REST API, then signals the server by its pid, then any child it left behind by pid.
    """

    def __init__(self, root: Path, home: Path):
        self.root, self.home = root, home
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.process: subprocess.Popen | None = None
        self.log_path = home / "jupyterlab.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> JupyterLab:
        settings = self.home / "settings"
        for name, values in LAB_SETTINGS.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        env = {**os.environ,
               "JUPYTER_CONFIG_DIR": str(self.home / "config"),
               "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
               "IPYTHONDIR": str(self.home / "ipython")}
        command = [
            str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}", "--ServerApp.terminals_enabled=False",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={self.home / 'workspaces'}",
            "--LabApp.expose_app_in_browser=True",
        ]
        if os.geteuid() == 0:
            command.append("--allow-root")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=log,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                self.api("GET", "/api/status")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise RuntimeError(f"JupyterLab did not answer within {SERVER_START_S} s:\n"
                           f"{self.log_tail()}")

    def api(self, method: str, path: str):
        """Call the server's REST API with the token; the decoded JSON answer, if any."""
        request = urllib.request.Request(self.base_url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def lab_url(self) -> str:
        return f"{self.base_url}/lab?reset&token={self.token}"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def shutdown_kernels(self) -> None:
        for session in self.api("GET", "/api/sessions") or []:
            self.api("DELETE", f"/api/sessions/{session['id']}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        children = _child_pids(self.process.pid)
        try:
            self.shutdown_kernels()
        except (OSError, urllib.error.URLError):
            pass  # the server is unwell; the signals below still stop it
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for pid in children:  # kernels it started, if a shutdown left one behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _child_pids(parent: int) -> list[int]:
    """Direct children of ``parent``, read from /proc (empty where /proc does not exist)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def launch_chromium(playwright, user_data_dir: Path):
    """Debian's chromium with a fresh profile in ``user_data_dir`` (never a downloaded browser).

    The window is tall so that a whole widget (controls, chart, tables) fits on screen: an
    element screenshot taller than the notebook area would show the status bar over it.
    """
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=shutil.which("chromium"), headless=True,
        args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1600})


# One Playwright driver per process: its sync API runs an event loop in this thread, and a
# second ``sync_playwright().start()`` while one is running fails ("using Playwright Sync API
# inside the asyncio loop"). Sessions share the driver, so a Voila app can be checked while the
# module's JupyterLab session is open; the last session to close stops it.
_PLAYWRIGHT: dict = {"driver": None, "users": 0}


def _acquire_playwright():
    from playwright.sync_api import sync_playwright

    if _PLAYWRIGHT["driver"] is None:
        _PLAYWRIGHT["driver"] = sync_playwright().start()
    _PLAYWRIGHT["users"] += 1
    return _PLAYWRIGHT["driver"]


def _release_playwright() -> None:
    _PLAYWRIGHT["users"] -= 1
    if _PLAYWRIGHT["users"] == 0 and _PLAYWRIGHT["driver"] is not None:
        driver, _PLAYWRIGHT["driver"] = _PLAYWRIGHT["driver"], None
        driver.stop()


@contextmanager
def browser_session(root: Path, home: Path, artifacts: Path) -> Iterator[LabPage]:
    """JupyterLab serving ``root`` and chromium showing it, both stopped on exit.

    ``home`` holds the server's dirs, its log and the browser profile; screenshots go to
    ``artifacts``. One session serves many notebooks: starting both costs a few seconds.
    """
    from playwright.sync_api import expect

    lab = JupyterLab(root, home)
    playwright = context = None
    try:
        lab.start()
        playwright = _acquire_playwright()
        expect.set_options(timeout=UI_TIMEOUT_MS)
        context = launch_chromium(playwright, home / "chromium-profile")
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = LabPage(context.pages[0] if context.pages else context.new_page(), lab, artifacts)
        page.open_lab()
        yield page
    finally:
        if context is not None:
            context.close()
        if playwright is not None:
            _release_playwright()
        lab.stop()


# --- driving one notebook in the page ----------------------------------------------------------

_OPEN_NOTEBOOK = """async (path) => {
  const app = window.jupyterapp;
  const panel = await app.commands.execute('docmanager:open', {path, factory: 'Notebook'});
  await panel.context.ready;
  await panel.sessionContext.ready;
  app.shell.activateById(panel.id);
  const state = {panel, replies: 0, lastMessage: Date.now(), problems: []};
  window.__eda = state;
  // Count the kernel's answers to widget messages (a click or a new value is a comm_msg), and
  // keep what the kernel printed to stderr or raised, to explain a control that did nothing.
  panel.sessionContext.session.kernel.iopubMessage.connect((_, msg) => {
    const type = msg.header.msg_type;
    state.lastMessage = Date.now();
    if (type === 'status' && msg.content.execution_state === 'idle'
        && msg.parent_header.msg_type === 'comm_msg') state.replies += 1;
    if (type === 'error') state.problems.push(msg.content.ename + ': ' + msg.content.evalue);
    if (type === 'stream' && msg.content.name === 'stderr') state.problems.push(msg.content.text);
  });
  return panel.id;
}"""

_CELLS = """() => {
  const cells = window.__eda.panel.content.model.cells;
  const out = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    const errors = cell.outputs.toJSON().filter(o => o.output_type === 'error')
      .map(o => o.ename + ': ' + o.evalue);
    out.push({index: i, tags: cell.getMetadata('tags') || [], count: cell.executionCount, errors});
  }
  return out;
}"""

# Each widget output of the model, matched to its node on the page: rendered, loading, error,
# or empty (a widget closed by the kernel, e.g. a finished progress bar). A rendered node that
# holds eda-* classes is marked data-eda-widget=<n>, for screenshots.
_WIDGET_OUTPUTS = """(mime) => {
  const panel = window.__eda.panel;
  const out = [];
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') return;
    cell.outputArea.widgets.forEach((child, position) => {
      const output = cell.model.outputs.get(position);
      if (!output || !output.data[mime]) return;
      const node = child.node.querySelector('.jp-OutputArea-output');
      const text = node ? node.textContent : '';
      let status = 'empty';
      if (text.includes('Loading widget')) status = 'loading';
      else if (text.includes('Error displaying widget')) status = 'error';
      else if (node && node.querySelector(':scope > .lm-Widget')) status = 'rendered';
      const eda = status === 'rendered'
        && node.querySelector('[class^="eda-"], [class*=" eda-"]') !== null;
      if (eda) node.dataset.edaWidget = String(out.filter(o => o.eda).length);
      out.push({cell: index, position, status, eda, text: text.slice(0, 200)});
    });
  });
  return out;
}"""

# [name, two_state] of each control: its eda-<name>-<control> class ('' when it has none) and
# whether it is a ToggleButton or a Checkbox.
_CONTROLS = """() => Array.from(window.__eda.panel.node.querySelectorAll('.eda-control')).map(e => {
  const names = Array.from(e.classList).filter(c => c.startsWith('eda-') && c !== 'eda-control');
  return [names[0] || '', e.classList.contains('widget-toggle-button')
                          || e.classList.contains('widget-checkbox')];
})"""

_VIEWS = """() => Array.from(window.__eda.panel.node.querySelectorAll('.eda-view'))
  .map(e => e.tagName === 'IMG' ? 'img:' + e.src : e.innerHTML)"""

_VIEWS_CHANGED = f"""() => {{
  const before = window.__eda.before, now = ({_VIEWS})();
  return now.length !== before.length || now.some((view, i) => view !== before[i]);
}}"""

# Every code cell ran, or one failed (the kernel then drops the cells queued after it).
# "Run all" itself returns at the first error, even in a cell tagged raises-exception whose
# error does not stop the kernel: the cells after it are still running then.
_ALL_RAN = """() => {
  const cells = window.__eda.panel.content.model.cells;
  let all = true;
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    if (cell.executionCount === null) all = false;
    const tags = cell.getMetadata('tags') || [];
    if (tags.includes('raises-exception')) continue;
    for (let j = 0; j < cell.outputs.length; j++) {
      if (cell.outputs.get(j).type === 'error') return true;
    }
  }
  return all;
}"""

# The kernel is idle and sent nothing for 200 ms: the last cell or redraw has finished.
_SETTLED = """() => {
  const state = window.__eda;
  return state.panel.sessionContext.session.kernel.status === 'idle'
    && Date.now() - state.lastMessage > 200;
}"""

_DISABLED = """e => e.matches(':disabled')
  || e.querySelector('button:disabled, input:disabled, select:disabled, textarea:disabled')
     !== null"""

_CLOSE_NOTEBOOK = """async () => {
  const panel = window.__eda.panel;
  await panel.sessionContext.shutdown();
  panel.dispose();
}"""


@dataclass(eq=False)
class Control:
    """An ``eda-control`` on the page: found by ``selector`` and ``rank`` among its matches."""

    name: str
    selector: str
    rank: int
    two_state: bool  # a ToggleButton or a Checkbox: using it twice brings it back
    outcome: ControlOutcome | None = None  # of the last use that changed nothing
    tried_after: int = 0  # how many uses had worked when that happened


@dataclass
class ControlOutcome:
    """What happened when the harness used one control."""

    name: str
    action: str = ""
    problem: str = ""  # empty when a view changed
    redraw_ms: float | None = None  # from the action to the changed view, as the harness saw it


@dataclass
class NotebookReport:
    """The result of driving one notebook: screenshots taken and problems found."""

    notebook: str
    screenshots: list[Path] = field(default_factory=list)
    controls: list[ControlOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def write_json(self, path: Path) -> None:
        """Save the report beside the screenshots: which control did what, how fast, and
        which screenshot shows it (the course's list of widgets and their pictures)."""
        path.write_text(json.dumps({
            "notebook": self.notebook, "problems": self.problems,
            "screenshots": [shot.name for shot in self.screenshots],
            "controls": [{"control": c.name, "action": c.action, "problem": c.problem,
                          "redraw_ms": c.redraw_ms} for c in self.controls],
        }, indent=1))


class LabPage:
    """One chromium page showing JupyterLab; opens, runs and clicks one notebook at a time."""

    def __init__(self, page, lab: JupyterLab, artifacts: Path):
        self.page, self.lab, self.artifacts = page, lab, artifacts
        self.console_errors: list[str] = []
        self.panel = ""  # CSS selector of the open notebook panel
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))

    def open_lab(self) -> None:
        self.page.goto(self.lab.lab_url(), timeout=UI_TIMEOUT_MS)
        self.page.wait_for_function("() => window.jupyterapp !== undefined", timeout=UI_TIMEOUT_MS)
        self.call("() => window.jupyterapp.restored", what="JupyterLab starting up")
        if not self.page.evaluate("(id) => window.jupyterapp.hasPlugin(id)", WIDGET_MANAGER_PLUGIN):
            raise AssertionError(f"JupyterLab runs without the widget renderer "
                                 f"{WIDGET_MANAGER_PLUGIN}: widgets cannot render")

    def check(self, path: str) -> NotebookReport:
        """Open ``path`` (relative to the server root), run all, check widgets, use controls."""
        report = NotebookReport(Path(path).stem)
        self.open_notebook(path)
        try:
            report.problems.extend(self.run_all())
            if not report.problems:
                self._check_rendered(report)
            if not report.problems:
                self._use_controls(report)
        finally:
            self.close_notebook()
            report.write_json(self.artifacts / f"{report.notebook}.json")
        return report

    def open_notebook(self, path: str) -> None:
        """Open ``path`` in a tab with a started kernel; ``window.__eda`` follows its kernel."""
        self.panel = "#" + self.call(_OPEN_NOTEBOOK, path, what=f"opening {path}")

    def close_notebook(self) -> None:
        """Shut the open notebook's kernel down and close its tab without saving."""
        self.call(_CLOSE_NOTEBOOK, what="closing the notebook")

    def call(self, script: str, arg=None, timeout_ms: int = UI_TIMEOUT_MS, what: str = ""):
        """Run the async JS function ``script(arg)`` in the page, waiting at most ``timeout_ms``.

        ``page.evaluate`` alone would wait forever on a promise that never settles (a kernel
        that never starts, a cell that never ends); here the wait is bounded.
        """
        self.page.evaluate(f"""(arg) => {{
          const job = window.__edaJob = {{done: false}};
          Promise.resolve().then(() => ({script})(arg)).then(
            value => Object.assign(job, {{done: true, value}}),
            error => Object.assign(job, {{done: true,
                                          error: String((error && error.stack) || error)}}));
        }}""", arg)
        try:
            self.page.wait_for_function("() => window.__edaJob.done", timeout=timeout_ms)
        except PlaywrightTimeout:
            raise AssertionError(f"{what} did not finish within {timeout_ms / 1000:g} s") from None
        job = self.page.evaluate("() => ({value: window.__edaJob.value, "
                                 "error: window.__edaJob.error})")
        if job["error"]:
            raise AssertionError(f"{what} failed in the page: {job['error']}")
        return job["value"]

    def run_all(self) -> list[str]:
        """Run every cell of the open notebook and wait until the kernel is done; the problems."""
        problems = []
        started = time.monotonic()
        self.call("() => window.jupyterapp.commands.execute('notebook:run-all-cells')",
                   timeout_ms=RUN_ALL_TIMEOUT_MS, what="running all cells")
        left_ms = max(1, RUN_ALL_TIMEOUT_MS - int((time.monotonic() - started) * 1000))
        try:
            self.page.wait_for_function(_ALL_RAN, timeout=left_ms, polling=200)
            self._settle()
        except PlaywrightTimeout:
            problems.append(f"the notebook did not finish within {RUN_ALL_TIMEOUT_MS} ms")
        cells = [c for c in self.page.evaluate(_CELLS) if "raises-exception" not in c["tags"]]
        for cell in cells:
            problems.extend(f"cell {cell['index']} raised {e}" for e in cell["errors"])
        if not problems:
            problems.extend(f"cell {cell['index']} did not run"
                            for cell in cells if cell["count"] is None)
        return problems

    def _settle(self) -> None:
        self.page.wait_for_function(_SETTLED, timeout=KERNEL_REPLY_TIMEOUT_MS, polling=100)

    def _check_rendered(self, report: NotebookReport) -> None:
        try:
            self.page.wait_for_function(
                f"() => ({_WIDGET_OUTPUTS})({json.dumps(WIDGET_MIME)})"
                ".every(o => o.status !== 'loading')", timeout=UI_TIMEOUT_MS, polling=100)
        except PlaywrightTimeout:
            pass  # the widgets still loading are reported below, by cell
        outputs = self.page.evaluate(_WIDGET_OUTPUTS, WIDGET_MIME)
        for output in outputs:
            if output["status"] not in ("rendered", "empty"):
                report.problems.append(f"cell {output['cell']}: widget {output['status']}: "
                                       f"{output['text']!r}")
        rendered = [o for o in outputs if o["status"] == "rendered"]
        if not rendered:
            report.problems.append("no widget rendered on the page")
        elif not any(o["eda"] for o in rendered):
            report.problems.append("no rendered widget has an eda-* class: give the widget's "
                                   "root eda-<name> (CONTRIBUTING.md, Widgets)")
        shown = sum(o["eda"] for o in outputs)
        for n in range(shown):
            self._screenshot(report, "rendered" if shown == 1 else f"rendered-{n + 1}",
                             f"[data-eda-widget='{n}']")

    def _use_controls(self, report: NotebookReport) -> None:
        """Use every ``eda-control``; each use must change some ``eda-view``.

        A control that changed nothing gets more chances, each only after the state moved on:
        once all the others were used (a Reset at the start, an Undo disabled until something
        happened), then after each toggle that worked is flipped again (an outage target that
        only acts while the outage toggle is on).
        """
        controls = self._find_controls()
        pending = [c for c in controls if not self._changed_view(report, c)]
        pending = [c for c in pending if not self._changed_view(report, c)]
        toggles = [c for c in controls if c.two_state and c not in pending]
        failed = []
        for control in pending:
            worked = self._changed_view(report, control)
            for toggle in toggles:
                if worked:
                    break
                self._changed_view(report, toggle)
                worked = self._changed_view(report, control)
            if not worked:
                failed.append(control.outcome)
        report.controls.extend(failed)
        report.problems.extend(f"{o.name}: {o.action}: {o.problem}" for o in failed)

    def _find_controls(self) -> list[Control]:
        # A control is found by its own class and its rank among controls of that class, so a
        # widget that rebuilds its controls on a click does not shift the others.
        controls, seen = [], {}
        for index, (name, two_state) in enumerate(self.page.evaluate(_CONTROLS)):
            if not name:  # no eda-<name>-<control> class: only its rank among all controls
                controls.append(Control("eda-control", ".eda-control", index, two_state))
                continue
            controls.append(Control(name, f".eda-control.{name}", seen.get(name, 0), two_state))
            seen[name] = seen.get(name, 0) + 1
        return controls

    def _changed_view(self, report: NotebookReport, control: Control) -> bool:
        """Use ``control``; True when some view changed (the use is added to ``report``).

        A control that changed nothing is not tried again until another control worked:
        that would only repeat the same state.
        """
        if control.outcome is not None and control.tried_after == len(report.controls):
            return False
        locator = self.page.locator(f"{self.panel} {control.selector}").nth(control.rank)
        outcome = self._use_control(control.name, locator)
        if outcome.problem:
            control.outcome, control.tried_after = outcome, len(report.controls)
            if control.two_state and outcome.action in ("clicked", "toggled"):
                self._put_back(locator)
            return False
        control.outcome = None
        report.controls.append(outcome)
        self._screenshot(report, f"{len(report.controls):02d}-{control.name}",
                         f".jp-OutputArea-output:has(.{control.name})")
        return True

    def _put_back(self, toggle) -> None:
        """Flip back a toggle that changed no view, so that an invisible switch (a fault armed
        for the next step) does not change what the controls after it do."""
        replies_before = self.page.evaluate("() => window.__eda.replies")
        act_on(toggle)
        try:
            self.page.wait_for_function(f"() => window.__eda.replies > {replies_before}",
                                        timeout=KERNEL_REPLY_TIMEOUT_MS)
            self._settle()
        except PlaywrightTimeout:
            pass  # the toggle's own use already reported that the kernel did not answer

    def _use_control(self, name: str, control) -> ControlOutcome:
        outcome = ControlOutcome(name)
        if control.evaluate(_DISABLED):
            outcome.action, outcome.problem = "left alone", "disabled"
            return outcome
        self.page.evaluate(f"() => {{ window.__eda.before = ({_VIEWS})(); }}")
        replies_before = self.page.evaluate("() => window.__eda.replies")
        self.page.evaluate("() => { window.__eda.problems = []; }")
        started = time.perf_counter()
        try:
            outcome.action = act_on(control)
        except UnsupportedControl as error:
            outcome.problem = str(error)
            return outcome
        try:
            self.page.wait_for_function(f"() => window.__eda.replies > {replies_before}",
                                        timeout=KERNEL_REPLY_TIMEOUT_MS)
        except PlaywrightTimeout:
            outcome.problem = (f"the kernel did not answer within {KERNEL_REPLY_TIMEOUT_MS} ms "
                               "(is the control linked to the kernel?)")
            return outcome
        try:
            self.page.wait_for_function(_VIEWS_CHANGED, timeout=VIEW_CHANGE_TIMEOUT_MS)
            outcome.redraw_ms = round((time.perf_counter() - started) * 1000, 1)
        except PlaywrightTimeout:
            kernel_said = " | ".join(self.page.evaluate("() => window.__eda.problems"))[-500:]
            outcome.problem = "no eda-view changed" + (f"; the kernel said: {kernel_said}"
                                                       if kernel_said else "")
        try:
            self._settle()
        except PlaywrightTimeout:
            outcome.problem = outcome.problem or "the kernel stayed busy after the redraw"
        return outcome

    def _screenshot(self, report: NotebookReport, step: str, selector: str) -> None:
        path = self.artifacts / f"{report.notebook}-{step}.png"
        target = self.page.locator(f"{self.panel} {selector}").first
        if target.count():
            target.screenshot(path=str(path), animations="disabled")
        else:
            self.page.screenshot(path=str(path), animations="disabled")
        report.screenshots.append(path)


# --- using one control like a learner would ----------------------------------------------------

class UnsupportedControl(Exception):
    """An ``eda-control`` the harness does not know how to use."""


def act_on(control) -> str:
    """Use ``control`` (a locator) once, changing its value; a short description of what we did.

    Buttons are clicked, toggles flipped, dropdowns/radios/toggle-buttons set to another option,
    sliders moved one step (down when at the top), number/text boxes changed and submitted.
    """
    classes = set(control.evaluate("e => Array.from(e.classList)"))
    if "widget-toggle-buttons" in classes:
        option = control.locator("button:not(.mod-active)").first
        label = option.inner_text().strip()
        option.click()
        return f"chose {label!r}"
    if "widget-play" in classes:   # the ipywidgets Play: press its play button
        control.locator("button").first.click()
        return "pressed play"
    if classes & {"widget-button", "widget-toggle-button"}:
        control.click()
        return "clicked"
    if classes & {"widget-dropdown", "widget-select"}:
        select = control.locator("select")
        current = select.evaluate("s => s.selectedIndex")
        count = select.locator("option").count()
        if count < 2:
            raise UnsupportedControl(f"only {count} option(s) to choose from")
        choice = 1 if current == 0 else 0
        select.select_option(index=choice)
        return f"chose option {choice}"
    if "widget-radio" in classes:
        option = control.locator("input[type=radio]:not(:checked)").first
        label = option.get_attribute("data-value")
        option.check()
        return f"chose {label!r}"
    if "widget-checkbox" in classes:
        control.locator("input[type=checkbox]").click()
        return "toggled"
    if "widget-slider" in classes:
        return _move_slider(control)
    if "widget-text" in classes or "widget-textarea" in classes:
        return _edit_text(control)
    raise UnsupportedControl(f"do not know how to use a control with classes {sorted(classes)}")


def _move_slider(control) -> str:
    """One keyboard step on the (first) handle: what a learner does with the arrow keys."""
    handle = control.locator(".noUi-handle").first
    now, top = (float(handle.get_attribute(a)) for a in ("aria-valuenow", "aria-valuemax"))
    key = "ArrowLeft" if now >= top else "ArrowRight"
    if handle.get_attribute("aria-orientation") == "vertical":
        key = "ArrowDown" if now >= top else "ArrowUp"
    handle.focus()
    handle.press(key)
    return f"moved {'down' if now >= top else 'up'} one step from {now:g}"


def _edit_text(control) -> str:
    box = control.locator("input, textarea").first
    kind = box.get_attribute("type") or "text"
    old = box.input_value()
    if kind == "number":
        top = box.get_attribute("max")
        step_text = box.get_attribute("step") or "any"
        step = 1.0 if step_text == "any" else float(step_text)
        value = float(old or 0)
        new = value - step if top is not None and value + step > float(top) else value + step
        text = f"{new:g}"
    else:
        text = old + " x"
    box.fill(text)
    box.press("Enter")
    box.blur()
    return f"typed {text!r}"


# --- Voila: a widget served as a standalone web app ----------------------------------------------

class VoilaApp:
    """Voila serving one notebook on 127.0.0.1 (a free port), started and stopped by this object.

    Its config and runtime dirs live under ``home``. ``stop()`` signals the server by its pid,
    then every kernel it started, by pid.
    """

    def __init__(self, notebook: Path, home: Path):
        self.notebook, self.home = notebook.resolve(), home
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = home / f"voila-{notebook.stem}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> VoilaApp:
        env = {**os.environ,
               "JUPYTER_CONFIG_DIR": str(self.home / "config"),
               "JUPYTER_RUNTIME_DIR": str(self.home / "runtime"),
               "IPYTHONDIR": str(self.home / "ipython")}
        command = [str(Path(sys.executable).parent / "voila"), str(self.notebook),
                   "--no-browser", "--Voila.ip=127.0.0.1", f"--port={self.port}",
                   "--Voila.port_retries=0", "--show_tracebacks=True"]
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=self.notebook.parent, env=env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + SERVER_START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Voila exited with code {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"Voila did not listen within {SERVER_START_S} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        children = _child_pids(self.process.pid)
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for pid in children:  # the kernels it started
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# Every eda-control under the widget: a label a learner can read (its description, its own
# text, the options' texts, or a title) and an element the Tab key reaches (enabled, not
# tabindex=-1). What "usable from the keyboard" needs before any key is pressed.
_LABELS_AND_FOCUS = """(root) => {
  const problems = [];
  for (const control of document.querySelectorAll('.' + root + ' .eda-control')) {
    const name = Array.from(control.classList).filter(c => c.startsWith(root + '-')).join(' ');
    // a button may say its word through CSS (the Play widget's icon buttons do)
    const words = Array.from(control.querySelectorAll('button')).map(
      b => getComputedStyle(b, '::after').content.replace(/^(none|normal)$/, '')).join('');
    const label = (control.querySelector('.widget-label')?.textContent || '').trim()
      || (control.innerText || '').trim() || control.getAttribute('title') || words;
    if (!label) problems.push(name + ': no label');
    const focusable = Array.from(control.matches('button, select, input') ? [control]
        : control.querySelectorAll('button, select, input, [tabindex]'))
      .filter(e => !e.disabled && e.tabIndex >= 0);
    if (!focusable.length && !control.matches(':disabled') && !control.querySelector(':disabled'))
      problems.push(name + ': nothing the keyboard can reach');
  }
  return problems;
}"""


class VoilaPage(LabPage):
    """One chromium page showing a Voila app: every ``eda-control`` used, a view must change.

    The same rules as :class:`LabPage` (the same retries, the same way of using each kind of
    control); what differs is how the page is found and when a use has settled: Voila has no
    notebook panel, so the page's body is the panel, and a use has settled when the views
    stopped changing for a moment.
    """

    SETTLE_MS = 400

    def __init__(self, page, app: VoilaApp, artifacts: Path):
        self.page, self.lab, self.artifacts = page, app, artifacts
        self.console_errors: list[str] = []
        self.panel = "body"
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text))

    def check_app(self, root_class: str, name: str) -> NotebookReport:
        """Open the app, wait for its widget, use every control; the report."""
        report = NotebookReport(name)
        self.page.goto(self.lab.url, timeout=RUN_ALL_TIMEOUT_MS)
        try:
            self.page.wait_for_selector(f".{root_class}", timeout=RUN_ALL_TIMEOUT_MS)
        except PlaywrightTimeout:
            report.problems.append(f"no .{root_class} on the page within "
                                   f"{RUN_ALL_TIMEOUT_MS} ms:\n{self.lab.log_tail()}")
            return report
        self.page.evaluate("() => { window.__eda = {panel: {node: document.body}, "
                           "problems: []}; }")
        self._wait_still()
        self._screenshot(report, "rendered", f".{root_class}")
        self._use_controls(report)
        report.write_json(self.artifacts / f"{name}.json")
        return report

    def check_keyboard(self, root_class: str, keys: Sequence[tuple[str, str]]) -> list[str]:
        """Every control has a label and something the keyboard can reach; each ``(control
        class, key)`` of ``keys`` is then used with the keyboard alone (focused, the key
        pressed) and must change a view. Call after :meth:`check_app`; the problems."""
        problems = list(self.page.evaluate(_LABELS_AND_FOCUS, root_class))
        for name, key in keys:
            control = self.page.locator(f".{name}").first
            if "widget-toggle-buttons" in control.evaluate("e => e.className"):
                target = control.locator("button:not(.mod-active)").first   # another option
            elif control.evaluate("e => e.matches('button, select, input')"):
                target = control
            else:   # a slider's handle, a Play's first button
                target = control.locator(".noUi-handle, button, select, input").first
            self.page.evaluate(f"() => {{ window.__eda.before = ({_VIEWS})(); }}")
            target.focus()
            self.page.keyboard.press(key)
            try:
                self.page.wait_for_function(_VIEWS_CHANGED, timeout=KERNEL_REPLY_TIMEOUT_MS)
            except PlaywrightTimeout:
                problems.append(f"{name}: {key} pressed on it, no eda-view changed")
            self._wait_still()
        return problems

    def _wait_still(self) -> None:
        """Until no view changed for SETTLE_MS (or 10 s passed)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.page.evaluate(f"() => {{ window.__eda.before = ({_VIEWS})(); }}")
            self.page.wait_for_timeout(self.SETTLE_MS)
            if not self.page.evaluate(_VIEWS_CHANGED):
                return

    def _put_back(self, toggle) -> None:
        act_on(toggle)
        self._wait_still()

    def _settle(self) -> None:
        self._wait_still()

    def _use_control(self, name: str, control) -> ControlOutcome:
        outcome = ControlOutcome(name)
        if control.evaluate(_DISABLED):
            outcome.action, outcome.problem = "left alone", "disabled"
            return outcome
        self.page.evaluate(f"() => {{ window.__eda.before = ({_VIEWS})(); }}")
        started = time.perf_counter()
        try:
            outcome.action = act_on(control)
        except UnsupportedControl as error:
            outcome.problem = str(error)
            return outcome
        try:
            self.page.wait_for_function(_VIEWS_CHANGED, timeout=KERNEL_REPLY_TIMEOUT_MS)
            outcome.redraw_ms = round((time.perf_counter() - started) * 1000, 1)
        except PlaywrightTimeout:
            outcome.problem = "no eda-view changed"
        self._wait_still()
        return outcome

    def _screenshot(self, report: NotebookReport, step: str, selector: str) -> None:
        if selector.startswith(".jp-OutputArea-output"):
            selector = ".jp-OutputArea-output"   # the app's one output
        super()._screenshot(report, step, selector)


@contextmanager
def voila_session(notebook: Path, home: Path, artifacts: Path) -> Iterator[VoilaPage]:
    """Voila serving ``notebook`` and chromium showing it, both stopped on exit."""
    from playwright.sync_api import expect

    app = VoilaApp(notebook, home)
    playwright = context = None
    try:
        app.start()
        playwright = _acquire_playwright()
        expect.set_options(timeout=UI_TIMEOUT_MS)
        context = launch_chromium(playwright, home / f"chromium-{notebook.stem}")
        context.set_default_timeout(UI_TIMEOUT_MS)
        # Voila's page template links Font Awesome from a CDN: no network here, and none needed
        # (only the icons are missing), so the request is refused at once instead of tried.
        context.route(lambda url: not url.startswith(app.url), lambda route: route.abort())
        page = context.pages[0] if context.pages else context.new_page()
        yield VoilaPage(page, app, artifacts)
    finally:
        if context is not None:
            context.close()
        if playwright is not None:
            _release_playwright()
        app.stop()
