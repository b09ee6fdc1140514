"""The patch manifest (``manifest.csv``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from .config import PatchError


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a ``manifest.csv`` (a folder holding one is accepted too)."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.csv"
    if not p.exists():
        raise PatchError(f"{p}: no manifest (is the patch run complete?)")
    with open(p, newline="") as fh:
        return list(csv.DictReader(fh))
