"""Report tables: the CSV file written atomically, and the rounding of its floats."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..io.files import atomic_path
from .errors import MetricsError


def check_report(path: Path) -> None:
    """Refuse a report path that is a directory (before any work is done).

    Parameters
    ----------
    path : Path
        Where the CSV report is to be written.

    Raises
    ------
    MetricsError
        When ``path`` is a directory.
    """
    if path.is_dir():
        raise MetricsError(f"{path}: is a directory; give a file name for the report")


def round6(v: float) -> float:
    """``v`` rounded to 6 places (NaN and infinities become NaN).

    Parameters
    ----------
    v : float
        The value.

    Returns
    -------
    float
        The rounded value, or NaN when ``v`` is not finite.
    """
    return round(float(v), 6) if np.isfinite(v) else float("nan")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` atomically (the temporary file is removed on any failure).

    Parameters
    ----------
    path : Path
        The CSV file.
    rows : list of dict
        The rows; the first row's keys are the columns.

    Raises
    ------
    MetricsError
        When ``path`` is a directory or there are no rows.
    """
    check_report(path)
    if not rows:
        raise MetricsError(f"{path}: no image pairs to report")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
