"""eda_lab works after a real, non-editable install: its data travels inside the package.

`make` installs the repository in editable mode, which would hide data left outside the
package (it did: notebooks 01, 05, 06 and 07 failed after `pip install .`). So this builds the
sdist and, from it, the wheel, without build isolation (nothing to download), installs the
wheel with `pip install --target` into a temporary folder, and uses it from a directory
outside the repository. Python runs there with `-S`: site-packages comes in through
PYTHONPATH for the dependencies, but its .pth files, among them the editable install's, are
not read, so the repository's own eda_lab cannot be imported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("01_sync_failure.ipynb", "05_saga_orchestration.ipynb")
KERNEL = "eda-lab-wheel"
# Not part of a source tree: never copied into the one the sdist is built from.
LEFT_OVERS = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".hypothesis", ".ipynb_checkpoints",
                                    "artifacts", "*.db", "*.db-*", "*.sqlite")


def not_source(folder: str, names: list[str]) -> set[str]:
    """What copytree skips: left-overs, and sockets or pipes a crashed kernel may leave."""
    special = {n for n in names if not (os.path.isdir(os.path.join(folder, n))
                                        or os.path.isfile(os.path.join(folder, n)))}
    return set(LEFT_OVERS(folder, names)) | special

DATA_FILES = sorted(p.name for p in (ROOT / "data").iterdir() if p.suffix in (".csv", ".json"))


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, (
        f"{' '.join(map(str, command))} exited {done.returncode}\n"
        f"--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-6000:]}")
    return done


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel built from it, out of a copy of the repository."""
    home = tmp_path_factory.mktemp("dists")
    source = home / "source"
    shutil.copytree(ROOT, source, ignore=not_source)
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(home / "dist"),
          str(source)])
    (sdist,) = (home / "dist").glob("*.tar.gz")
    (wheel,) = (home / "dist").glob("*.whl")
    return {"sdist": sdist, "wheel": wheel}


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory) -> dict:
    """The wheel installed into a temporary folder, and how to use only it from elsewhere."""
    home = tmp_path_factory.mktemp("installed")
    site = home / "site"
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
          "--target", str(site), str(dists["wheel"])])
    dependencies = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    pythonpath = os.pathsep.join([str(site), *dependencies])
    # A kernel that imports like `python -S` above, for nbconvert to run the notebooks with.
    kernel = home / "jupyter" / "kernels" / KERNEL
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-S", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "eda_lab from its wheel", "language": "python",
        "env": {"PYTHONPATH": pythonpath}, "metadata": {"supported_encryption": ["curve"]},
    }))
    run = home / "run"  # outside the repository: no eda_lab/ or data/ folder to fall back on
    run.mkdir()
    env = {**os.environ, "PYTHONPATH": pythonpath, "JUPYTER_PATH": str(home / "jupyter")}
    return {"site": site, "run": run, "env": env}


def test_the_sdist_carries_the_data_the_notebooks_and_the_test_helpers(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    wanted = {"tests/conftest.py", "tests/browser_support.py", "tests/saga_helpers.py",
              "LICENSE", "constraints.txt", "environment.yml", "postBuild",
              *(f"data/{name}" for name in DATA_FILES),
              *(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")),
              *(f"apps/{p.name}" for p in (ROOT / "apps").glob("*.ipynb"))}
    assert not wanted - names, f"missing from the sdist: {sorted(wanted - names)}"


def test_the_wheel_carries_the_data_inside_the_package_and_the_license(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
    assert {f"eda_lab/data/{name}" for name in DATA_FILES} <= names
    assert not [n for n in names if n.startswith("data/")], "data/ must not land at the top"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_every_data_loader_works_from_the_installed_wheel(installed):
    """The repository's data/ is not reachable; the loaders find the copy in the package."""
    code = """
import json
import eda_lab
from eda_lab.saga import (ChoreographyRunner, SagaRunner, SagaStepperModel, create_order_saga,
                          load_saga_definition)
from eda_lab.shop import run_chaos
from eda_lab.sync import load_services
from eda_lab.saga.definition import CREATE_ORDER_SAGA
from eda_lab.sync.chain import SERVICES_CSV

print(json.dumps({
    "eda_lab": eda_lab.__file__,
    "paths": [str(SERVICES_CSV), str(CREATE_ORDER_SAGA)],
    "services": list(load_services()),
    "saga": create_order_saga().step_names,
    "saga_from_its_path": load_saga_definition(CREATE_ORDER_SAGA).name,
    "default_definitions": [SagaRunner().definition.name, ChoreographyRunner().definition.name,
                            SagaStepperModel().definition.name],
    "chaos_ok": run_chaos(30, seed=1).ok,
    "data_files": sorted(p.name for p in SERVICES_CSV.parent.iterdir() if p.suffix in (".csv", ".json")),
}))
"""
    done = _run([sys.executable, "-S", "-c", code], cwd=installed["run"], env=installed["env"])
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    site = str(installed["site"])
    assert seen["eda_lab"].startswith(site), f"imported {seen['eda_lab']}, not the wheel in {site}"
    assert all(p.startswith(site) for p in seen["paths"]), seen["paths"]
    assert seen["data_files"] == DATA_FILES
    assert seen["services"][:3] == ["order", "payment", "inventory"]
    assert seen["saga"][0] == "create_order" and seen["saga_from_its_path"] == "create_order"
    assert seen["default_definitions"] == ["create_order"] * 3
    assert seen["chaos_ok"]


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_notebook_runs_on_the_installed_wheel_from_another_directory(installed, notebook):
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import eda_lab\nprint(eda_lab.__file__)"))
    copy = installed["run"] / notebook
    nbformat.write(nb, copy)
    _run([sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--inplace",
          f"--ExecutePreprocessor.kernel_name={KERNEL}", "--ExecutePreprocessor.timeout=300",
          "--KernelManager.transport_encryption=auto", str(copy)], cwd=installed["run"], env=installed["env"])
    ran = nbformat.read(copy, as_version=4)
    imported = "".join(o.get("text", "") for o in ran.cells[-1].outputs).strip()
    assert imported.startswith(str(installed["site"])), f"the kernel imported {imported}"
