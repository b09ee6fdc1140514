"""Project checks that the README's test command covers: manifest, layering, lint."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    exe = BIN / name
    return str(exe) if exe.exists() else (shutil.which(name) or name)


def test_npe2_validate():
    out = subprocess.run(
        [_tool("npe2"), "validate", "napari-slideseg", "--imports"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_layers_acyclic_and_qt_only_in_the_glue():
    """import-linter contracts from pyproject.toml ([tool.importlinter])."""
    out = subprocess.run([_tool("lint-imports")], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_clean():
    out = subprocess.run(
        [_tool("ruff"), "check", "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_private_names_cross_modules():
    """``from .x import _name`` means a helper is used outside its module: make it public."""
    found = []
    for path in sorted((ROOT / "src" / "napari_slideseg").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not found, found


def test_benchmarks_import_names_that_exist():
    """Every ``from napari_slideseg... import name`` in benchmarks/ resolves (they run
    rarely, so a renamed function would otherwise only show when someone measures)."""
    import importlib.util

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    missing = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "napari_slideseg"
            ):
                mod = importlib.import_module(node.module)
                missing += [
                    f"{path.name}: {node.module}.{a.name}"
                    for a in node.names
                    if not hasattr(mod, a.name)
                    and importlib.util.find_spec(f"{node.module}.{a.name}") is None
                ]
    assert not missing, missing
