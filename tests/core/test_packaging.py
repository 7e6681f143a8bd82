"""pyproject.toml is the single source of dependencies; environment.yml mirrors it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
#: pip names (per platform, chosen by an environment marker) -> the one conda-forge package.
CONDA_NAMES = {"xgboost-cpu": "py-xgboost-cpu", "xgboost": "py-xgboost-cpu"}
CORE_PACKAGES = ["data", "eda", "models", "training", "inference", "storage", "scale", "monitoring"]


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    out = {}
    for r in reqs:
        spec = re.sub(r"\[.*?\]", "", r.split(";")[0]).replace(" ", "")
        name = CONDA_NAMES.get(_name(r), _name(r))
        out[name] = spec.replace(_name(r), name, 1) if name != _name(r) else spec
    return out


def _conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str) and _name(dep) not in {"python", "pip"}:
            out[_name(dep)] = dep.replace(" ", "")
    return out


def test_environment_yml_lists_the_same_packages_as_pyproject() -> None:
    py, conda = _pyproject_requirements(), _conda_requirements()
    assert sorted(set(py) - set(conda)) == [], "in pyproject.toml but not environment.yml"
    assert sorted(set(conda) - set(py)) == [], "in environment.yml but not pyproject.toml"
    mismatched = {name: (py[name], conda[name]) for name in py if py[name] != conda[name]}
    assert mismatched == {}, "version specifiers differ"


def test_python_and_panel_floor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert "panel>=1.9.4" in project["dependencies"]


@pytest.mark.parametrize("package", CORE_PACKAGES)
def test_core_package_never_imports_panel(package: str) -> None:
    """Importing any core module must not pull in panel (or bokeh), checked in a clean interpreter."""
    modules = sorted(
        "fraud_app." + ".".join(p.relative_to(ROOT / "fraud_app").with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "fraud_app" / package).rglob("*.py")
        if p.relative_to(ROOT / "fraud_app").parts[-2:] != ("migrations", "env.py")  # a script Alembic runs
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('panel', 'bokeh'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"fraud_app.{package} imports {out.stdout.strip()}"


def test_core_sources_have_no_panel_import_statement() -> None:
    offenders = []
    for package in CORE_PACKAGES:
        for path in (ROOT / "fraud_app" / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module:
                    names = [node.module]
                if any(n.split(".")[0] in {"panel", "bokeh"} for n in names):
                    offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
