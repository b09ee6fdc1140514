"""The nucleus table of a HoVer prediction: merged from the blocks, read as columns.

Block tables (``tables/*.csv``) hold level pixels; the merged
``instances.csv`` holds level-0 pixels of the slide whatever level was
predicted (centroids as pixel indices, bounding boxes as pixel edges, area
in level-0 pixels), plus ``centroid_y_um``, ``centroid_x_um`` and
``area_um2`` when the slide's mpp is known. It is read back as one NumPy
array per column, in chunks of rows (no Python object per nucleus but the
``type_name`` strings, and those only when asked for).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..io.files import atomic_path

TABLE_COLUMNS = (
    "id",
    "centroid_y",
    "centroid_x",
    "bbox_y0",
    "bbox_x0",
    "bbox_y1",
    "bbox_x1",
    "area",
    "type",
    "type_name",
    "type_prob",
)
#: Columns the merged table adds: micrometres (empty when the mpp is unknown).
UM_COLUMNS = ("centroid_y_um", "centroid_x_um", "area_um2")


def _placement(out: Path) -> Any:
    """The prediction's placement (level, factors, mpp) from its zarr attributes."""
    import zarr

    from ..io.placement import Placement

    try:
        attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    except Exception:  # no zarr there (tables written by hand): level 0, no mpp
        return Placement()
    return Placement.from_attrs(attrs) or Placement()


def _level0_row(row: list[str], where: Any) -> list[Any]:
    """A block-table row (level pixels) in level-0 pixels, with the µm columns."""
    fy, fx = where.factors
    r = dict(zip(TABLE_COLUMNS, row, strict=True))
    cy, cx = where.index_to_level0(float(r["centroid_y"]), float(r["centroid_x"]))
    area = int(r["area"])
    if not where.is_level0:
        r["centroid_y"], r["centroid_x"] = round(cy, 2), round(cx, 2)
        r["bbox_y0"], r["bbox_y1"] = round(int(r["bbox_y0"]) * fy), round(int(r["bbox_y1"]) * fy)
        r["bbox_x0"], r["bbox_x1"] = round(int(r["bbox_x0"]) * fx), round(int(r["bbox_x1"]) * fx)
        r["area"] = round(area * fy * fx)
    if where.mpp:
        my, mx = where.mpp
        um = [round(cy * my, 3), round(cx * mx, 3), round(area * fy * fx * my * mx, 3)]
    else:
        um = ["", "", ""]
    return [r[c] for c in TABLE_COLUMNS] + um


def merge_tables(out: Path, target: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Concatenate the block tables into ``instances.csv`` (streamed, atomic); returns (path, rows).

    Rows are converted from level pixels to level-0 pixels of the slide
    (the prediction's ``level_factors``) and get micrometre columns when its
    ``mpp`` is known (:data:`UM_COLUMNS`).

    A nucleus whose pixels all went to smaller ids of a neighbour is kept in
    the table (it is rare and its centroid is still a detection).

    ``target`` (default ``out/instances.csv``) writes the table elsewhere.
    """
    out = Path(out)
    where = _placement(out)
    target = out / "instances.csv" if target is None else Path(target)
    n = 0
    with atomic_path(target) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TABLE_COLUMNS + UM_COLUMNS)
        for f in sorted((out / "tables").glob("*.csv")) if (out / "tables").exists() else []:
            with open(f, newline="") as src:
                r = csv.reader(src)
                next(r, None)
                for row in r:
                    w.writerow(_level0_row(row, where))
                    n += 1
    return target, n


def read_instance_table(
    path: str | os.PathLike,
    *,
    partial: bool = False,
    columns: Sequence[str] | None = None,
    chunk_rows: int = 1 << 20,
) -> dict[str, np.ndarray]:
    """``instances.csv`` (or a prediction folder) as a column dict of arrays.

    Coordinates are level-0 pixels of the slide; the µm columns
    (:data:`UM_COLUMNS`) are present when the table has them, NaN where empty.
    The file is parsed ``chunk_rows`` rows at a time into one array per
    column (numbers parsed as Python's ``float`` does), so memory is the
    columns asked for and one chunk.

    Parameters
    ----------
    path : str or os.PathLike
        ``instances.csv``, or a prediction folder holding it.
    partial : bool
        Take an unfinished prediction folder as it is: the table then holds
        the nuclei of the finished blocks (merged into a temporary file).
    columns : sequence of str, optional
        Read only these columns (those of :data:`UM_COLUMNS` only when the
        table has them); by default all.
    chunk_rows : int
        Rows parsed at a time.

    Returns
    -------
    dict of str to numpy.ndarray
        ``id``, ``bbox_*``, ``area`` and ``type`` as int64, ``centroid_*``,
        ``type_prob`` and the µm columns as float64, ``type_name`` as an
        object array of str.

    Raises
    ------
    IncompletePredictionError
        ``path`` is an unfinished prediction and not ``partial``.
    KeyError
        The table lacks one of :data:`TABLE_COLUMNS` asked for.
    """
    from ..io.masks import check_prediction

    p = Path(path)
    if p.is_dir():
        if check_prediction(p, partial):
            import tempfile

            with tempfile.TemporaryDirectory() as d:
                merged, _ = merge_tables(p, Path(d) / "instances.csv")
                return read_instance_table(merged, columns=columns, chunk_rows=chunk_rows)
        p = p / "instances.csv"
    with open(p, newline="") as fh:
        header = next(csv.reader(fh), [])
    wanted = list(TABLE_COLUMNS + UM_COLUMNS) if columns is None else list(columns)
    for c in wanted:
        if c in TABLE_COLUMNS and c not in header:
            raise KeyError(c)
    wanted = [c for c in wanted if c in header]
    return _read_columns(p, wanted, chunk_rows)


def _dtype(column: str) -> Any:
    """The NumPy type of an instance-table column."""
    if column == "type_name":
        return object
    if column in ("centroid_y", "centroid_x", "type_prob") or column in UM_COLUMNS:
        return np.float64
    return np.int64


def _read_columns(path: Path, columns: list[str], chunk_rows: int) -> dict[str, np.ndarray]:
    """The ``columns`` of a table file, parsed a chunk of rows at a time (pandas)."""
    import pandas as pd

    dtypes = {c: (str if _dtype(c) is object else _dtype(c)) for c in columns}
    parts: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    reader = pd.read_csv(
        path,
        usecols=columns,
        dtype=dtypes,
        keep_default_na=False,
        na_values={c: [""] for c in columns if c in UM_COLUMNS},
        float_precision="round_trip",
        chunksize=max(1, int(chunk_rows)),
    )
    with reader:
        for chunk in reader:
            for c in columns:
                parts[c].append(chunk[c].to_numpy(dtype=_dtype(c)))
    out: dict[str, np.ndarray] = {}
    for c in columns:
        arrays = parts.pop(c)
        out[c] = np.concatenate(arrays) if arrays else np.zeros(0, _dtype(c))
    return out
