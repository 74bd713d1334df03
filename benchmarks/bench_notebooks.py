"""Each notebook's run time from a fresh kernel: the course's time budget, measured.

The standard: every notebook runs top to bottom from a fresh kernel in at most 15 s on a 2-core
machine, all of them together in at most 90 s. This runs each numbered notebook as
``make notebooks`` does (nbclient, a fresh ``python3`` kernel started in ``notebooks/``), in
memory (nothing is written back), and prints one line per notebook: the seconds from asking
for the kernel to the end of the last cell, so kernel start and imports count, as they do for
a learner. The baseline, measured in the same run: a fresh kernel that only runs
``import eda_lab`` (what every notebook pays before its first lesson); the ratio says how many
times that fixed cost the notebook takes. The target is the budget in seconds (lower is
better). A last line gives the total against 90 s.

Not a timed test: a busy machine makes every line slower, and nothing fails on it. Notebook 08
needs its engines (``pip install -e '.[engines]'``); without them it skips its cells quickly.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from jupyter_client import KernelManager
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).parent))

from _common import report  # noqa: E402

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
BUDGET_S = 15.0        # one notebook, fresh kernel, 2 cores
TOTAL_BUDGET_S = 90.0  # all of them
TIMEOUT_S = 120        # per cell, as `make notebooks`


def run_seconds(notebook: nbformat.NotebookNode) -> float:
    """Seconds to run ``notebook`` in a fresh kernel, kernel start and shutdown included."""
    # CurveZMQ keys, as `make notebooks` asks for: the same run, without ipykernel's warning
    # that TCP is unencrypted.
    kernel = KernelManager(kernel_name="python3", transport_encryption="auto")
    client = NotebookClient(notebook, km=kernel, timeout=TIMEOUT_S,
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    start = time.perf_counter()
    try:
        client.execute()
    finally:
        kernel.shutdown_kernel()   # a kernel it was given, nbclient leaves running
    return time.perf_counter() - start


def import_only() -> nbformat.NotebookNode:
    """The fixed cost of every notebook: a kernel that imports the package and stops."""
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import eda_lab")])


if __name__ == "__main__":
    baseline = run_seconds(import_only())
    total = 0.0
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        seconds = run_seconds(nbformat.read(path, as_version=4))
        total += seconds
        report(f"notebook {path.stem} from a fresh kernel", seconds, "s",
               "a fresh kernel running only `import eda_lab`", baseline, BUDGET_S,
               better="lower")
    report("all notebooks from fresh kernels", total, "s",
           "a fresh kernel running only `import eda_lab`", baseline, TOTAL_BUDGET_S,
           better="lower")
