"""The package's layering contract, read from the import statements of every module.

Foundation (the flat modules) <- ``sync``, ``outbox``, ``saga`` (independent of each other)
<- ``shop`` <- ``widgets``. A module imports only from its own part and the layers below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "eda_lab"
# part -> the parts it may import (besides itself)
ALLOWED = {
    "foundation": set(),
    "sync": {"foundation"},
    "outbox": {"foundation"},
    "saga": {"foundation", "outbox"},   # its services speak through outboxes
    "engines": {"foundation", "outbox"},
    "shop": {"foundation", "sync", "outbox", "saga"},
    "widgets": {"foundation", "sync", "outbox", "saga", "shop"},
    "exercises": {"foundation", "sync", "outbox", "saga", "shop"},
}


def part_of(module: str) -> str:
    """``eda_lab.outbox.relay`` -> ``outbox``; a flat module -> ``foundation``."""
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() and parts[1] != "data":
        return parts[1]
    return "foundation"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every eda_lab module ``path`` imports, absolute."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("eda_lab"):
                found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("eda_lab"))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "data" not in p.relative_to(PACKAGE).parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_each_module_imports_only_its_own_part_and_the_layers_below(path):
    if path.name == "__init__.py" and path.parent == PACKAGE:
        return  # the top level re-exports one entry point per package
    mine = part_of(module_name(path))
    for target in imports_of(path):
        theirs = part_of(target)
        assert theirs == mine or theirs in ALLOWED[mine], (
            f"{module_name(path)} ({mine}) imports {target} ({theirs}); {mine} may import "
            f"{sorted(ALLOWED[mine]) or 'only itself'}")


def test_the_contract_names_every_package():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - {"data"} <= set(ALLOWED), f"add {packages - set(ALLOWED)} to ALLOWED"


def test_the_top_level_exports_the_foundation_and_one_entry_point_per_package():
    import eda_lab

    assert len(eda_lab.__all__) <= 30
    assert {"OrderPipeline", "SagaRunner", "Shop", "SyncChain"} <= set(eda_lab.__all__)
