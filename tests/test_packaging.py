"""The repository launches the same way everywhere: pyproject, environment.yml, Makefile, CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# What Binder's environment.yml installs from pyproject: the runtime dependencies, the `lab`
# extra and, from the `test` extra, nbval (so a teacher can check the notebooks there too).
# `lab` names `eda_lab[engines]`, a requirement on eda_lab itself, which _specs leaves out:
# Binder gets JupyterLab without notebook 08's engines.
CONDA_FROM_TEST_EXTRA = {"nbval"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _specs(requirements) -> dict[str, str]:
    """name -> the whole requirement, without spaces (``"pandas>=2.2.2"``)."""
    return {_name(r): r.replace(" ", "") for r in requirements if _name(r) != "eda-lab"}


def conda_dependencies() -> dict[str, str]:
    """name -> requirement, from environment.yml's ``dependencies`` list (parsed as YAML)."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert all(isinstance(d, str) for d in env["dependencies"]), "environment.yml: no pip: list"
    return {_name(d): d.replace(" ", "") for d in env["dependencies"]}


def binder_requirements() -> dict[str, str]:
    """What pyproject says environment.yml must hold, name -> requirement."""
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    wanted = _specs(project["dependencies"]) | _specs(extras["lab"])
    wanted |= {n: r for n, r in _specs(extras["test"]).items() if n in CONDA_FROM_TEST_EXTRA}
    return wanted


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    conda = set(conda_dependencies()) - {"python", "pip"}
    wanted = set(binder_requirements())
    assert conda == wanted, f"only in environment.yml: {conda - wanted}; only in pyproject: {wanted - conda}"


def test_environment_yml_asks_for_the_same_minimum_versions_as_pyproject():
    conda = conda_dependencies()
    for name, requirement in binder_requirements().items():
        assert conda.get(name) == requirement, f"environment.yml has {conda.get(name)!r}, pyproject {requirement!r}"


def test_every_conda_dependency_says_which_notebook_uses_it():
    # YAML drops comments, so the comments are read from the lines that YAML parsed.
    lines = (ROOT / "environment.yml").read_text().splitlines()
    for name in set(conda_dependencies()) - {"python", "pip"}:
        line = next(li for li in lines if re.match(rf"\s*-\s*{re.escape(name)}\b", li, re.I))
        comment = line.partition("#")[2]
        assert re.search(r"\b0\d\b|every notebook", comment), f"{name}: comment names no notebook"


def test_learners_get_no_test_or_browser_tools():
    """`make lab` installs the `lab` extra only; `dev` is everything, for `make test`."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    runtime = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert "jupyterlab" not in runtime, "a kernel environment should not get a JupyterLab server"
    assert not runtime & {_name(r) for r in extras["test"] + extras["browser"]}
    assert extras["dev"] == ["eda_lab[lab,test,browser]"]


def test_learners_get_notebook_08s_engines_which_stay_an_extra_of_their_own():
    """`lab` pulls in `engines` (notebook 08 runs after `make lab`); a kernel environment can ask
    for `engines` alone; Binder's environment.yml has runtime and JupyterLab only (notebook 08
    says there what is missing), so no engine package is in it."""
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(r.startswith("eda_lab[engines]") for r in extras["lab"])
    engines = {_name(r) for r in extras["engines"]}
    assert {"psycopg2-binary", "confluent-kafka", "redis"} <= engines
    assert not engines & {_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert not engines & set(conda_dependencies())


def test_make_lab_installs_the_lab_extra_and_make_test_everything():
    makefile = (ROOT / "Makefile").read_text().replace('"', "'")
    assert "$(PIP_INSTALL) -e '.[lab]'" in makefile
    assert "$(PIP_INSTALL) -e '.[dev,engines]'" in makefile
    assert "PIP_INSTALL := " in makefile and "-c $(CONSTRAINTS)" in makefile
    assert "lab: $(LAB_STAMP)" in makefile and "lint: $(DEV_STAMP)" in makefile


def test_constraints_pin_every_package_pyproject_names():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version.strip(), f"constraints.txt: {line!r} is not name==version"
            pins[_name(name)] = version
    project = PYPROJECT["project"]
    named = {_name(r) for r in project["dependencies"]}
    named |= {_name(r) for extra in project["optional-dependencies"].values() for r in extra}
    named |= {_name(r) for r in PYPROJECT["build-system"]["requires"]}
    missing = named - set(pins) - {"eda-lab"}
    assert not missing, f"not pinned in constraints.txt (run make constraints): {sorted(missing)}"
    assert "eda-lab" not in pins


def test_every_package_of_eda_lab_is_in_the_wheel():
    """pyproject lists the packages (data/ is mapped onto eda_lab.data, so find cannot be used)."""
    setuptools = PYPROJECT["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "eda_lab").rglob("__init__.py")}
    listed = set(setuptools["packages"])
    assert on_disk | {"eda_lab.data"} == listed, (
        f"add to [tool.setuptools] packages in pyproject.toml: {sorted(on_disk - listed)}; "
        f"listed but gone: {sorted(listed - on_disk - {'eda_lab.data'})}")
    assert setuptools["package-dir"] == {"eda_lab.data": "data"}
    data = {p.name for p in (ROOT / "data").iterdir() if p.suffix in (".csv", ".json")}
    patterns = setuptools["package-data"]["eda_lab.data"]
    assert all(any(Path(name).match(pat) for pat in patterns) for name in data), (
        f"data files no package-data pattern ships: {sorted(data)} vs {patterns}")
    assert (ROOT / "data" / "__init__.py").is_file(), "data/ must stay a package (eda_lab.data)"


def test_the_data_is_found_through_the_package_eda_lab_data():
    from importlib.resources import files

    from eda_lab.data_files import data_file

    shipped = {p.name for p in files("eda_lab.data").iterdir() if p.suffix in (".csv", ".json")}
    source = {p.name for p in (ROOT / "data").iterdir() if p.suffix in (".csv", ".json")}
    assert shipped == source
    for name in source:
        assert data_file(name).read_bytes() == (ROOT / "data" / name).read_bytes()


def test_a_checkout_that_was_not_installed_still_finds_its_data(tmp_path):
    """The repository root on sys.path and no install: data_file() falls back to data/."""
    site = os.pathsep.join(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    code = ("import eda_lab; from eda_lab.sync.chain import SERVICES_CSV; "
            "from eda_lab.sync import load_services; from eda_lab.saga import create_order_saga; "
            "print(eda_lab.__file__, SERVICES_CSV, len(load_services()), "
            "create_order_saga().name)")
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{site}"})
    assert done.returncode == 0, done.stderr[-2000:]
    module, services_csv, count, saga = done.stdout.split()
    assert module == str(ROOT / "eda_lab" / "__init__.py")
    assert services_csv == str(ROOT / "data" / "services.csv") and int(count) > 0
    assert saga == "create_order"


def test_environment_yml_does_not_install_the_repository_itself():
    # `-e .` in environment.yml disables Binder's cached environment build; postBuild does it.
    assert "-e ." not in (ROOT / "environment.yml").read_text()
    post_build = (ROOT / "postBuild").read_text()
    # A normal (not editable) install: the data travels inside the package (eda_lab.data).
    assert post_build.startswith("#!/bin/bash") and "set -e" in post_build
    assert "pip install --no-deps ." in post_build and " -e " not in post_build


def test_readme_leads_with_the_two_commands_and_a_binder_badge():
    readme = (ROOT / "README.md").read_text()
    first_code = readme.index("```")
    assert "make lab" in readme[first_code:first_code + 300]
    assert "make test" in readme[first_code:first_code + 300]
    assert "mybinder.org" in readme and "urlpath=lab/tree/notebooks/00_start_here.ipynb" in readme


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "chromium" in ci


def test_notebooks_are_numbered_and_listed_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks, "no notebooks"
    for stem in notebooks:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+", stem), f"{stem}: not NN_snake_case"
        assert f"`{stem}`" in readme, f"{stem} is missing from the README's notebook map"
