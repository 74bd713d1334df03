"""Where the course's data files are, however eda_lab was installed.

The repository's top-level ``data/`` folder is the source of the data: learners read it, and
the notebooks name ``data/services.csv``. pyproject.toml maps that folder onto the package
``eda_lab.data``, so every install carries it inside eda_lab: a wheel or ``pip install .``
copies it to ``site-packages/eda_lab/data/``; an editable install (``make lab``) reads the
repository's ``data/`` itself, so an edit there shows up at once.

A path built from ``__file__`` (``../data``) is right only in a checkout: from a wheel it
points at ``site-packages/data``, which does not exist. :mod:`importlib.resources` asks the
import system where ``eda_lab.data`` really is, which is right for every kind of install.

With a non-editable install (Binder), the loaders read the installed copy: to try an edited
file, pass its path, e.g. ``load_services("../data/services.csv")``.

One case has no install to ask: eda_lab imported straight from a checkout (the repository
root on ``sys.path``, e.g. a clone without ``pip install``, or Python started in the root
beside a non-editable install). There ``eda_lab.data`` is not importable, and the folder is
the checkout's ``data/``, beside the package.
"""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

PACKAGE = "eda_lab.data"


def data_file(name: str = "") -> Path | Traversable:
    """The shipped data file ``name`` (``"services.csv"``); the data folder itself without one.

    A :class:`pathlib.Path` whenever eda_lab is installed in a folder, which is every pip
    install; only an import from a zip file would give another ``Traversable``.
    """
    try:
        folder = files(PACKAGE)
    except ModuleNotFoundError:  # a checkout that was not installed: see the module docstring
        folder = Path(__file__).resolve().parent.parent / "data"
    return folder / name if name else folder
