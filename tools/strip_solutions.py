"""Clear the outputs of the solution cells of executed notebooks, in place.

``make notebooks`` executes every notebook (so each solution is checked to run), then runs this:
a cell tagged ``solution`` keeps its source, hidden (``"jupyter": {"source_hidden": true,
"outputs_hidden": true}``) and its execution count (it did run), and loses its outputs, which would give the answer away on GitHub,
nbviewer or VS Code, where ``source_hidden`` is ignored.

    python tools/strip_solutions.py notebooks/*.ipynb
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def strip(path: Path) -> int:
    """Clear the solution cells of one notebook; how many were changed."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    changed = 0
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code" or "solution" not in cell.get("metadata", {}).get("tags", []):
            continue
        if not "".join(cell["source"]).startswith("# Solution"):
            raise SystemExit(f"{path}: a cell tagged 'solution' must start with '# Solution'")
        hidden = {"source_hidden": True, "outputs_hidden": True}
        tags = cell["metadata"]["tags"]
        if cell["outputs"] or cell["metadata"].get("jupyter") != hidden or \
                "nbval-ignore-output" not in tags:
            cell["outputs"] = []   # (its execution count stays: the record that it ran)
            cell["metadata"]["jupyter"] = hidden
            if "nbval-ignore-output" not in tags:   # nothing stored for nbval to compare
                tags.append("nbval-ignore-output")
            changed += 1
    if changed:
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
                        encoding="utf-8")
    return changed


def main(paths: list[str]) -> None:
    for name in paths:
        count = strip(Path(name))
        if count:
            print(f"{name}: cleared {count} solution cell(s)")


if __name__ == "__main__":
    main(sys.argv[1:])
