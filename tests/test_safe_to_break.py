"""Safe to break: every experiment cell survives the values a curious learner tries.

A notebook marks each cell that invites the learner to change something with the tag
``experiment`` and says what to vary in the cell's metadata::

    "tags": ["experiment"],
    "eda_lab": {"experiment": {
        "vary": {"faults": "fault_plan",          # each point of the dict set to True, 1.0, 0.0
                 "more": {"fault_plan": ["broker.drop"]},  # ... and these points added too
                 "broker_refuses": "probability",  # 0.0 and 1.0
                 "retries": [0, 20]},              # these values (extreme sizes within a bound)
        "refuse": {"retries": [21]}}}              # values that must be refused, limit named

The test reads those cells from the notebooks themselves (no copy to fall out of step), runs
the notebook's code cells in order in one namespace (no kernel: fast, and a hang can be
interrupted), and for each variant runs the experiment cell with the variable's assignment
replaced. A variant must end within ``BOUND_S`` and print, as its last line, a sentence (ending
in a full stop) that says what happened: a crash loop, nothing ever delivered, stopped after N
steps. A refused value must raise a ValueError or TypeError that names the limit. Notebooks
01-07 are tagged (00 has nothing to vary; 08's cells need its servers).
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob(
    "[0-9][0-9]_*.ipynb"))
BOUND_S = 20.0          # one experiment cell, whatever the values
FAULT_VALUES = (True, 1.0, 0.0)
PROBABILITIES = (0.0, 1.0)


def code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
            if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def experiment_of(cell: dict) -> dict | None:
    if "experiment" not in cell.get("metadata", {}).get("tags", []):
        return None
    spec = cell["metadata"].get("eda_lab", {}).get("experiment")
    assert spec, "a cell tagged 'experiment' needs metadata eda_lab.experiment (vary/refuse)"
    return spec


def assigned_value(code: str, name: str):
    """The literal a cell assigns to ``name`` at top level (plain or in a tuple assignment)."""
    for node in ast.parse(code).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    return ast.literal_eval(node.value)
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for element, value in zip(target.elts, node.value.elts, strict=True):
                        if isinstance(element, ast.Name) and element.id == name:
                            return ast.literal_eval(value)
    raise AssertionError(f"the cell does not assign {name!r} at top level")


def with_value(code: str, name: str, value) -> str:
    """``code`` with its top-level assignment of ``name`` replaced by ``value``."""
    tree = ast.parse(code)
    new = ast.parse(repr(value), mode="eval").body
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    node.value = new
                    return ast.unparse(tree)
                if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for i, element in enumerate(target.elts):
                        if isinstance(element, ast.Name) and element.id == name:
                            node.value.elts[i] = new
                            return ast.unparse(tree)
    raise AssertionError(f"the cell does not assign {name!r} at top level")


def variants(code: str, spec: dict):
    """(variable, value, must_refuse) for one experiment cell."""
    for name, kind in spec.get("vary", {}).items():
        if kind == "fault_plan" or isinstance(kind, dict):
            plan = assigned_value(code, name)
            assert isinstance(plan, dict), f"{name} must be a dict of fault points"
            extra = [p for p in (kind.get("fault_plan", []) if isinstance(kind, dict) else [])
                     if p not in plan]
            assert plan or extra, f"{name}: no fault point to vary"
            for point in [*plan, *extra]:
                for value in FAULT_VALUES:
                    yield name, {**plan, point: value}, False
        elif kind == "probability":
            for value in PROBABILITIES:
                yield name, value, False
        else:
            assert isinstance(kind, list), f"vary[{name!r}]: 'fault_plan', 'probability' or a list"
            for value in kind:
                yield name, value, False
    for name, values in spec.get("refuse", {}).items():
        for value in values:
            yield name, value, True


def cases():
    for path in NOTEBOOKS:
        for index, cell in enumerate(code_cells(path)):
            spec = experiment_of(cell)
            if spec is None:
                continue
            for name, value, refuse in variants(source(cell), spec):
                label = f"{path.stem}-cell{index}-{name}={value!r}"[:120]
                yield pytest.param(path, index, name, value, refuse, id=label)


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_bound(seconds: float):
    """Interrupt the code inside after ``seconds`` (a hang fails instead of stalling CI)."""
    def alarm(_signum, _frame):
        raise _Timeout(f"still running after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class NotebookRun:
    """A notebook's code cells run in order in one namespace, a snapshot kept before each
    experiment cell (so every variant of a cell starts from the same state)."""

    def __init__(self, path: Path):
        self.cells = code_cells(path)
        self.namespace: dict = {"__name__": "__notebook__"}
        self.next = 0
        self.snapshots: dict[int, dict] = {}

    def before(self, index: int) -> dict:
        import matplotlib.pyplot as plt

        while self.next < index:
            i, cell = self.next, self.cells[self.next]
            if experiment_of(cell) is not None:
                self.snapshots.setdefault(i, dict(self.namespace))
            tags = cell.get("metadata", {}).get("tags", [])
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    exec(compile(source(cell), f"cell {i}", "exec"), self.namespace)
                except Exception:
                    if "raises-exception" not in tags:
                        raise
            plt.close("all")
            self.next += 1
        self.snapshots.setdefault(index, dict(self.namespace))
        return dict(self.snapshots[index])


_RUNS: dict[Path, NotebookRun] = {}


def prepared(path: Path, index: int) -> dict:
    run = _RUNS.get(path)
    if run is None or (run.next > index and index not in run.snapshots):  # gone back (-k)
        run = _RUNS[path] = NotebookRun(path)
    return run.before(index)


@pytest.mark.parametrize(("path", "index", "name", "value", "refuse"), list(cases()))
def test_an_experiment_cell_ends_with_a_sentence_whatever_the_learner_tries(
        path, index, name, value, refuse):
    import matplotlib.pyplot as plt

    namespace = prepared(path, index)
    code = with_value(source(code_cells(path)[index]), name, value)
    out = io.StringIO()
    started = time.perf_counter()
    error = None
    try:
        with time_bound(BOUND_S), contextlib.redirect_stdout(out):
            exec(compile(code, f"{path.stem} cell {index}", "exec"), namespace)
    except (ValueError, TypeError) as exc:
        error = exc
    finally:
        plt.close("all")
    took = time.perf_counter() - started
    if refuse:
        assert error is not None, f"{name}={value!r} was accepted; it should be refused"
        assert re.search(r"must|needs|limit|at most|MAX_", str(error)), (
            f"the refusal does not name the limit: {error}")
        return
    assert error is None, f"{name}={value!r} raised {type(error).__name__}: {error}"
    lines = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
    assert lines, f"{name}={value!r} printed nothing"
    assert lines[-1].endswith("."), (
        f"{name}={value!r}: the last line should be a sentence saying what happened, got "
        f"{lines[-1]!r}")
    assert took < BOUND_S


def test_every_notebook_that_invites_changes_has_experiment_cells():
    """Notebooks 01-07 invite the learner to change failures, rates and sizes: their cells
    are tagged."""
    for path in NOTEBOOKS:
        if "01" <= path.stem[:2] <= "07":
            assert any(experiment_of(c) for c in code_cells(path)), path.stem


def test_every_cell_of_01_to_07_that_writes_a_fault_plan_is_tagged():
    """A cell that assigns ``faults`` (or ``faults_1``, ...) at top level is an invitation to
    change it, so the harness must try it."""
    for path in NOTEBOOKS:
        if not "01" <= path.stem[:2] <= "07":
            continue
        for index, cell in enumerate(code_cells(path)):
            assigned = [target.id for node in ast.parse(source(cell)).body
                        if isinstance(node, ast.Assign) for target in node.targets
                        if isinstance(target, ast.Name)]
            if any(name.startswith("faults") for name in assigned):
                assert experiment_of(cell) is not None, f"{path.stem} code cell {index}"


def test_a_replaced_assignment_is_the_only_change():
    code = "faults = {'broker.drop': 0.2}  # try 1.0\nx, n = 1, 2\nprint(faults, n)\n"
    assert assigned_value(code, "n") == 2
    assert "faults = {'broker.drop': True}" in with_value(code, "faults", {"broker.drop": True})
    assert "x, n = (1, 99)" in with_value(code, "n", 99)
    assert list(variants(code, {"vary": {"faults": "fault_plan"}})) == [
        ("faults", {"broker.drop": v}, False) for v in FAULT_VALUES]
