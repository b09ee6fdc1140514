"""Project checks that the README's test command covers: manifest, layering, lint."""

from __future__ import annotations

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


def test_core_never_imports_qt_or_napari():
    """import-linter contract from pyproject.toml ([tool.importlinter])."""
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
