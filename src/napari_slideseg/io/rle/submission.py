"""Kaggle submission CSV files: an id column and an RLE column, order and shape not recorded."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .checks import RLEError, check_base, check_order, check_shape, is_empty_rle
from .csvfiles import atomic_text, big_fields, check_alloc, csv_rows, find_column, open_csv
from .kaggle import rle_encode
from .runs import paint, runs_from_rle, union_runs


def write_submission_csv(
    path: str | os.PathLike,
    items: Iterable[tuple[str, Any]],
    *,
    order: str,
    base: int = 1,
    id_column: str = "id",
    rle_column: str = "rle",
) -> Path:
    """Write a Kaggle submission CSV: one ``id,rle`` row per item.

    Parameters
    ----------
    path
        Output file; replaced atomically (no partial file on error).
    items
        ``(id, mask)`` pairs; a mask is a 2D NumPy or dask array (nonzero =
        foreground) or an RLE string written as is (after validation).
        Repeated ids are allowed (Airbus: one row per ship).
    order
        ``"col"`` or ``"row"``, as the competition wants.
    base
        Index of the first pixel, 1 or 0.
    id_column, rle_column
        Header names, e.g. ``"id", "predicted"`` for HuBMAP.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    RLEError
        A bad ``order`` or ``base``, an item that is not an ``(id, mask)``
        pair, or a malformed RLE string or mask (naming the file, the 1-based
        row and the id); the file is then left as it was.
    """
    check_order(order)
    base = check_base(base)
    path = Path(path)
    with atomic_text(path) as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow([id_column, rle_column])
        for row, item in enumerate(items, 1):
            try:
                ident, mask = item
            except (TypeError, ValueError):
                raise RLEError("an item is not an (id, mask) pair", source=path, row=row) from None
            ident = str(ident)
            try:
                if is_empty_rle(mask):
                    text = ""
                elif isinstance(mask, str | bytes):
                    text = mask.decode("ascii") if isinstance(mask, bytes) else mask
                    text = " ".join(text.split())
                    runs_from_rle(text, 1, sys.maxsize // 4, base)
                else:
                    text = rle_encode(mask, order=order, base=base)
            except RLEError as err:
                raise err.located(path, row, ident) from None
            wr.writerow([ident, text])
    return path


def read_submission_csv(
    path: str | os.PathLike,
    *,
    order: str,
    base: int = 1,
    shapes: Mapping[str, tuple[int, int]] | tuple[int, int],
    id_column: str | None = None,
    rle_column: str | None = None,
) -> dict[str, np.ndarray]:
    """Decode a Kaggle submission-style CSV into one binary mask per id.

    Parameters
    ----------
    path
        CSV with an id column and an RLE column.
    order
        ``"col"`` or ``"row"``; the file does not record it.
    base
        Index of the first pixel, 1 or 0.
    shapes
        ``(height, width)`` for every image, or ``{id: (height, width)}``.
    id_column, rle_column
        Header names; by default the first and the second column.

    Returns
    -------
    dict
        ``{id: uint8 mask}``; rows repeating an id are merged (union).

    Raises
    ------
    RLEError
        A bad argument, an empty file, missing columns, an id without a
        shape, an image too large for memory, or a malformed row (naming the
        file, the 1-based row and the id).
    """
    check_order(order)
    base = check_base(base)
    path = Path(path)
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    shape_of: dict[str, tuple[int, int]] = {}
    fixed = None if isinstance(shapes, Mapping) else check_shape(shapes)
    shape_map = shapes if isinstance(shapes, Mapping) else {}  # {id: shape}; unused when fixed
    with big_fields(), open_csv(path) as fh:
        rd = csv_rows(fh, path)
        header = next(rd, None)
        if not header:
            raise RLEError("empty file: expected a header row", source=path)
        if len(header) < 2 and (id_column is None or rle_column is None):
            raise RLEError(f"expected an id and an RLE column, found {header!r}", source=path)
        ci = 0 if id_column is None else find_column(header, [id_column.lower()])
        cr = 1 if rle_column is None else find_column(header, [rle_column.lower()])
        if ci is None:
            raise RLEError(f"no column {id_column!r} in the header {header!r}", source=path)
        if cr is None:
            raise RLEError(f"no column {rle_column!r} in the header {header!r}", source=path)
        for row, rec in enumerate(rd, 1):
            if not rec:
                continue
            ident = rec[ci] if ci < len(rec) else ""
            if len(rec) != len(header):
                raise RLEError(
                    f"{len(rec)} fields but the header has {len(header)}",
                    source=path,
                    row=row,
                    row_id=ident,
                )
            if fixed is not None:
                shape = fixed
            else:
                if ident not in shape_map:
                    raise RLEError("no shape given for this id", source=path, row=row, row_id=ident)
                shape = check_shape(shape_map[ident])
            try:
                if ident not in shape_of:
                    check_alloc(*shape, 1)
                s, e = runs_from_rle(rec[cr], *shape, base)
            except RLEError as err:
                raise err.located(path, row, ident) from None
            runs.setdefault(ident, []).append((s, e))
            shape_of[ident] = shape
    out = {}
    for ident, parts in runs.items():
        h, w = shape_of[ident]
        s = np.concatenate([p[0] for p in parts])
        e = np.concatenate([p[1] for p in parts])
        if len(parts) > 1:
            s, e = union_runs(s, e)
        out[ident] = paint(s, e, 1, h, w, order, np.uint8)
    return out
