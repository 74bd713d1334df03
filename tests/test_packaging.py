"""The repository launches the same way everywhere: pyproject, environment.yml, Makefile, CI."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def conda_dependencies() -> dict[str, str]:
    """name -> the comment that says which notebook uses it, from environment.yml."""
    deps = {}
    in_deps = False
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if line.startswith("dependencies:"):
            in_deps = True
            continue
        if in_deps and line.strip().startswith("- "):
            spec, _, comment = line.strip()[2:].partition("#")
            deps[_name(spec)] = comment.strip()
        elif in_deps and line and not line.startswith(" "):
            in_deps = False
    return deps


def test_environment_yml_names_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    conda = set(conda_dependencies()) - {"python", "pip"}
    assert conda == runtime, f"only in environment.yml: {conda - runtime}; only in pyproject: {runtime - conda}"


def test_every_conda_dependency_says_which_notebook_uses_it():
    for name, comment in conda_dependencies().items():
        if name in ("python", "pip"):
            continue
        assert re.search(r"\b0\d\b|every notebook", comment), f"{name}: comment names no notebook"


def test_environment_yml_does_not_install_the_repository_itself():
    # `-e .` in environment.yml disables Binder's cached environment build; postBuild does it.
    assert "-e ." not in (ROOT / "environment.yml").read_text()
    post_build = (ROOT / "postBuild").read_text()
    assert post_build.startswith("#!/bin/bash") and "pip install --no-deps -e ." in post_build


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
