"""The documented install of the examples provides every module they import."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib", reason="tomllib (Python 3.11+) reads pyproject.toml")

ROOT = Path(__file__).resolve().parents[1]
# What the README's install line adds beside `pip install -e ".[examples]"`.
INTEGRATIONS = [ROOT / "integrations" / "langchain", ROOT / "integrations" / "llama-index"]


def _imports(script: Path) -> set[str]:
    """Every absolute module a script imports, at the top or inside a function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _requirements(pyproject: Path, extra: str | None = None) -> set[str]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = project.get("dependencies", [])
    if extra is not None:
        lines = [*lines, *project.get("optional-dependencies", {}).get(extra, [])]
    return {canonicalize_name(Requirement(line).name) for line in lines}


def _first_party(module: str) -> bool:
    """Modules this checkout provides: the package and the integrations' packages (not shared namespaces)."""
    for root in (ROOT / "src", *INTEGRATIONS):
        path = root.joinpath(*module.split("."))
        if (path / "__init__.py").is_file() or path.with_suffix(".py").is_file():
            return True
    return False


def _provided() -> set[str]:
    """Distributions the documented install brings: the package with [examples], the integrations and theirs."""
    provided = _requirements(ROOT / "pyproject.toml", "examples")
    for integration in INTEGRATIONS:
        provided |= _requirements(integration / "pyproject.toml")
    return provided


def test_the_examples_extra_covers_every_import_of_the_examples() -> None:
    provided = _provided()
    distributions = importlib.metadata.packages_distributions()
    scripts = sorted((ROOT / "examples").glob("*.py"))
    assert scripts, "no examples found"
    missing: list[str] = []
    for script in scripts:
        for module in sorted(_imports(script)):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top == "__future__" or _first_party(module):
                continue
            owners = {canonicalize_name(name) for name in distributions.get(top, [])}
            if not owners & provided:
                missing.append(f"{script.name} imports {module} (from {sorted(owners) or 'nothing installed'})")
    assert not missing, "not installed by `pip install -e '.[examples]'` and the integrations: " + "; ".join(missing)
