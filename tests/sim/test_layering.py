"""The simulator's place in the house: the sim imports only the broker facts below it,
and no production stage imports the sim (only the simulator service and the CLI do)."""

from __future__ import annotations

import ast
from pathlib import Path

import fastflow

SRC = Path(fastflow.__file__).parent
#: What the sim may import from fastflow (besides itself).
SIM_MAY_IMPORT = ("fastflow.brokers", "fastflow.reference", "fastflow.instruments", "fastflow.errors",
                  "fastflow.config")
#: Who may import the sim.
SIM_USERS = ("cli.py", "services/simulator.py")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "fastflow" or name.startswith("fastflow.")}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_sim_imports_only_broker_facts() -> None:
    bad = {
        f"{path.relative_to(SRC)}: {name}"
        for path in (SRC / "sim").rglob("*.py")
        for name in _imports(path)
        if not _within(name, "fastflow.sim") and not any(_within(name, p) for p in SIM_MAY_IMPORT)
    }
    assert not bad


def test_no_production_stage_imports_the_sim() -> None:
    bad = {
        f"{path.relative_to(SRC)}: {name}"
        for path in SRC.rglob("*.py")
        if path.relative_to(SRC).parts[0] != "sim" and path.relative_to(SRC).as_posix() not in SIM_USERS
        for name in _imports(path)
        if _within(name, "fastflow.sim")
    }
    assert not bad
