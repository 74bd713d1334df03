"""The environment check of notebook 00: is everything the course needs here, and new enough?

``ipywidgets`` is the kernel's half of the widgets; ``jupyterlab_widgets`` is JupyterLab's half
(the front-end extension that draws them). Without the second, every widget shows "Loading
widget..." for ever, the usual way they break, so both are checked.
"""

from __future__ import annotations

import sys
from importlib import metadata

import pandas as pd

# distribution -> minimum version the course is tested with (kept in step with pyproject.toml)
REQUIRED = {
    "jupyterlab": "4", "jupyterlab_widgets": "3", "ipykernel": "6", "ipywidgets": "8",
    "pandas": "2", "matplotlib": "3.7",
    "sqlite-utils": "4", "simpy": "4",
}


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_environment() -> pd.DataFrame:
    """One row per requirement: what is installed and whether it is new enough."""
    rows = [{"component": "python", "needed": ">= 3.11",
             "installed": ".".join(map(str, sys.version_info[:3])),
             "ok": sys.version_info >= (3, 11)}]
    for name, minimum in REQUIRED.items():
        try:
            installed = metadata.version(name)
            ok = _version_tuple(installed) >= _version_tuple(minimum)
        except metadata.PackageNotFoundError:
            installed, ok = "missing", False
        rows.append({"component": name, "needed": f">= {minimum}", "installed": installed,
                     "ok": ok})
    return pd.DataFrame(rows)


def environment_ok() -> bool:
    """True when every requirement is installed and new enough."""
    return bool(check_environment()["ok"].all())
