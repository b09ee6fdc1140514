"""Reading RLE CSV files (the package's own layouts and Kaggle ones) into a label image.

:func:`read_rle_csv` runs in four steps: the header names the columns
(:func:`_header_columns`), each row is checked against the file so far and
decoded to runs (:func:`_decode_row`, with :class:`_Image` keeping what the
rows agree on), the rows' metadata becomes ``info`` (:func:`_image_info`) and
the runs are painted into one label image (:func:`_paint_labels`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .checks import ORDERS, RLEError, check_base, check_order, check_shape
from .columns import (
    COLUMN_NAMES,
    PLACEMENT_COLUMNS,
    UINT64_MAX,
    int_field,
    parse_color,
    placement_info,
)
from .csvfiles import big_fields, check_alloc, csv_rows, find_column, open_csv
from .runs import paint, paint_into, runs_from_rle

logger = logging.getLogger(__name__)

_Columns = dict[str, int | None]
_Runs = tuple[np.ndarray, np.ndarray, int]


@dataclasses.dataclass(frozen=True)
class _Request:
    """What the caller of :func:`read_rle_csv` fixed (None: the file says)."""

    order: str | None
    base: int | None
    shape: tuple[int, int] | None
    image_id: str | None


@dataclasses.dataclass
class _Image:
    """What the rows read so far say about the image, and their runs."""

    layout: str
    chosen: str | None
    shape: tuple[int, int] | None = None
    order: str | None = None
    ss: list[np.ndarray] = dataclasses.field(default_factory=list)
    es: list[np.ndarray] = dataclasses.field(default_factory=list)
    vs: list[np.ndarray] = dataclasses.field(default_factory=list)
    names: dict[int, str] = dataclasses.field(default_factory=dict)
    colors: dict[int, tuple[int, int, int]] = dataclasses.field(default_factory=dict)
    instance_classes: dict[int, int] = dataclasses.field(default_factory=dict)
    placed: dict[str, str] | None = None
    n_rows: int = 0

    def add(self, runs: _Runs | None) -> None:
        """Count a row; keep its runs (None: a Kaggle row without runs)."""
        self.n_rows += 1
        if runs is not None:
            s, e, value = runs
            self.ss.append(s)
            self.es.append(e)
            self.vs.append(np.full(s.size, value, np.uint64))


def read_rle_csv(
    path: str | os.PathLike,
    *,
    order: str | None = None,
    base: int | None = None,
    shape: tuple[int, int] | None = None,
    image_id: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an RLE CSV (semantic, instance or Kaggle layout) into a label image.

    Layouts are told apart by their header: an ``instance_id`` column means
    one row per object (pixels get the instance id), a ``class_index`` (or
    ``ClassId``) column one row per class (pixels get the class index);
    otherwise it is a Kaggle file (``id,rle``-like: ``predicted``,
    ``EncodedPixels``, ``annotation``...), decoded as a binary mask when the
    image has one row and as instances numbered 1, 2, ... in row order when
    it has several. Where rows overlap (instances in some Kaggle data), the
    later row wins and ``info["overlaps"]`` is True.

    Parameters
    ----------
    path
        The CSV file.
    order
        Pixel order for files without an ``order`` column; required for those
        (see :func:`guess_order`). A recorded order that differs is an error.
    base
        First pixel index for files without a ``base`` column (default 1).
    shape
        ``(height, width)`` for files without ``height``/``width`` columns; a
        recorded shape takes precedence.
    image_id
        Which image to read when the file holds several.

    Returns
    -------
    tuple
        ``(labels, info)``: a C-contiguous unsigned label image and
        ``{"layout", "image_id", "order", "shape", "n_rows", "class_names",
        "class_colors", "instance_classes", "overlaps"}`` (``class_names[i]``
        names class ``i``, index 0 is ``"background"``; None when the file
        names no class; ``class_colors[i]`` its RGB from a ``class_color``
        column, None where the file states none), plus ``level``, ``slide_shape`` and ``mpp`` (µm per mask
        pixel) when the file has the :data:`PLACEMENT_COLUMNS`.

    Raises
    ------
    RLEError
        Unknown order or shape, several images without ``image_id``, or a
        malformed row (naming the file and the 1-based data row).
    """
    path = Path(path)
    if order is not None:
        check_order(order)
    if base is not None:
        base = check_base(base)
    req = _Request(order, base, None if shape is None else check_shape(shape), image_id)
    with big_fields(), open_csv(path) as fh:
        rd = csv_rows(fh, path)
        header = next(rd, None)
        if not header:
            raise RLEError("empty file: expected a header row", source=path)
        col = _header_columns(header, path, req)
        img = _read_rows(rd, header, col, req, path)
    info = _image_info(img, req, path)
    return _paint_labels(img, info, path), info


# -----------------------------------------------------------------------------
# step 1: the header
# -----------------------------------------------------------------------------
def _header_columns(header: list[str], path: Path, req: _Request) -> _Columns:
    """Column index of each field of :data:`COLUMN_NAMES` (None: absent), checked."""
    col = {k: find_column(header, names) for k, names in COLUMN_NAMES.items()}
    if col["rle"] is None and len(header) == 2:
        logger.debug(
            "%s: no known RLE column name in %r; reading column 2 as the RLE", path, header
        )
        col["rle"] = 1
    if col["id"] is None and len(header) == 2:
        logger.debug("%s: no known id column name in %r; reading column 1 as the id", path, header)
        col["id"] = 0
    if col["rle"] is None:
        raise RLEError(f"no RLE column in the header {header!r}", source=path)
    if col["order"] is None and req.order is None:
        raise RLEError(
            "the file does not record the pixel order: pass order='col' (column-major: "
            "HuBMAP, Airbus) or order='row' (row-major: Carvana); guess_order() compares "
            "both with a reference mask",
            source=path,
        )
    if (col["height"] is None or col["width"] is None) and req.shape is None:
        raise RLEError(
            "the file does not record the image shape (height, width columns): pass "
            "shape=(height, width)",
            source=path,
        )
    if col["base"] is None and req.base is None:
        logger.debug("%s: no base column and no base= given: the first pixel is 1", path)
    return col


def _layout(col: _Columns) -> str:
    if col["instance"] is not None:
        return "instance"
    return "semantic" if col["class"] is not None else "kaggle"


# -----------------------------------------------------------------------------
# step 2: the rows
# -----------------------------------------------------------------------------
def _read_rows(
    rd: Iterator[list[str]], header: list[str], col: _Columns, req: _Request, path: Path
) -> _Image:
    """Every data row of the chosen image decoded into ``img`` (errors name the row)."""
    img = _Image(layout=_layout(col), chosen=req.image_id)
    for row, rec in enumerate(rd, 1):
        if not rec:
            continue
        ident = rec[col["id"]] if col["id"] is not None and col["id"] < len(rec) else None
        try:
            if len(rec) != len(header):
                raise RLEError(f"{len(rec)} fields but the header has {len(header)}")
            if col["id"] is not None and not _take_id(img, ident, req):
                continue
            runs = _decode_row(rec, col, img, req)
        except RLEError as err:
            raise err.located(path, row, ident) from None
        img.add(runs)
    return img


def _take_id(img: _Image, ident: str | None, req: _Request) -> bool:
    """Whether a row with id ``ident`` is of the image read (the first one by default)."""
    if img.chosen is None:
        img.chosen = ident
    elif ident != img.chosen:
        if req.image_id is not None:
            return False
        raise RLEError(
            f"the file holds more than one image ({img.chosen!r}, {ident!r}, ...): "
            "pass image_id to choose one"
        )
    return True


def _decode_row(rec: list[str], col: _Columns, img: _Image, req: _Request) -> _Runs | None:
    """The row's runs and pixel value, after checking it agrees with the earlier rows."""

    def field(key: str) -> str:
        c = col[key]
        return "" if c is None else rec[c].strip()

    _row_order(field("order"), img, req)
    r_base = _row_base(field("base"), req)
    r_shape = _row_shape(field("height"), field("width"), img, req)
    if img.placed is None and field("level"):
        img.placed = {k: field(k) for k in PLACEMENT_COLUMNS}
    rle_col = col["rle"]
    assert rle_col is not None  # _header_columns raises when the RLE column is absent
    s, e = runs_from_rle(rec[rle_col], *r_shape, r_base)
    value = _row_value(field, img, s)
    return None if value is None else (s, e, value)


def _row_order(text: str, img: _Image, req: _Request) -> str:
    r_order = text or req.order
    if r_order is None:
        raise RLEError("the row does not record its pixel order; pass order=")
    if r_order not in ORDERS:
        raise RLEError(f"order must be 'col' or 'row', found {r_order!r}")
    if req.order is not None and r_order != req.order:
        raise RLEError(f"the row records order {r_order!r} but order={req.order!r} was passed")
    if img.order is None:
        img.order = r_order
    elif r_order != img.order:
        raise RLEError(f"the row uses order {r_order!r} but earlier rows use {img.order!r}")
    return r_order


def _row_base(text: str, req: _Request) -> int:
    r_base = check_base(int_field(text, "base")) if text else (1 if req.base is None else req.base)
    if req.base is not None and text and r_base != req.base:
        raise RLEError(f"the row records base {r_base} but base={req.base} was passed")
    return r_base


def _row_shape(hh: str, ww: str, img: _Image, req: _Request) -> tuple[int, int]:
    if hh and ww:
        r_shape = (int_field(hh, "height"), int_field(ww, "width"))
    elif req.shape is not None:
        r_shape = req.shape
    else:
        raise RLEError("the row does not record height and width; pass shape=")
    if img.shape is None:
        check_alloc(*r_shape, 1)
        img.shape = r_shape
    elif r_shape != img.shape:
        raise RLEError(f"the row's shape {r_shape} differs from earlier rows' {img.shape}")
    return r_shape


def _row_value(field: Callable[[str], str], img: _Image, s: np.ndarray) -> int | None:
    """The pixel value of the row's runs (None: a Kaggle row without runs); notes its class."""
    ci_text = field("class")
    ci = int_field(ci_text, "class index") if ci_text else None
    if ci is not None and field("class_name"):
        img.names[ci] = field("class_name")
    if ci is not None and field("class_color"):
        img.colors[ci] = parse_color(field("class_color"))
    if img.layout == "instance":
        value = int_field(field("instance"), "instance id", maximum=UINT64_MAX)
        if ci is not None:
            img.instance_classes[value] = ci
        return value
    if img.layout == "semantic":
        if ci is None:
            raise RLEError("the class index is empty")
        return ci
    return None if s.size == 0 else len(img.ss) + 1


# -----------------------------------------------------------------------------
# step 3: info
# -----------------------------------------------------------------------------
def _image_info(img: _Image, req: _Request, path: Path) -> dict[str, Any]:
    """The ``info`` dict of :func:`read_rle_csv` (``"overlaps"`` set when painting)."""
    if img.n_rows == 0 and req.image_id is not None:
        raise RLEError(f"no rows for image {req.image_id!r}", source=path)
    shape_out = img.shape or req.shape
    if shape_out is None:
        raise RLEError("no rows for the image and no shape given", source=path)
    h, w = shape_out
    info: dict[str, Any] = {
        "layout": img.layout,
        "image_id": img.chosen,
        "order": img.order or req.order,
        "shape": (h, w),
        "n_rows": img.n_rows,
        "class_names": None,
        "class_colors": None,
        "instance_classes": img.instance_classes if img.layout == "instance" else None,
        "overlaps": False,
    }
    if img.placed is not None:
        info.update(placement_info(img.placed, (h, w), path))
    if img.names:
        top = max(img.names)
        info["class_names"] = ["background"] + [
            img.names.get(i, f"class {i}") for i in range(1, top + 1)
        ]
        if 0 in img.names:
            info["class_names"][0] = img.names[0]
    if img.colors:
        top = max(max(img.colors), len(info["class_names"] or [None]) - 1)
        info["class_colors"] = [img.colors.get(i) for i in range(top + 1)]
    return info


# -----------------------------------------------------------------------------
# step 4: the label image
# -----------------------------------------------------------------------------
def _label_dtype(maxval: int, minimum: Any = np.uint8) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if np.dtype(dt).itemsize >= np.dtype(minimum).itemsize and maxval <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise RLEError(f"label value {maxval} is too large")


def _paint_labels(img: _Image, info: dict[str, Any], path: Path) -> np.ndarray:
    """The rows' runs painted into one label image; sets ``info["overlaps"]``."""
    h, w = info["shape"]
    order = info["order"]
    if not img.ss:
        return np.zeros((h, w), _label_dtype(0))
    s, e, v = np.concatenate(img.ss), np.concatenate(img.es), np.concatenate(img.vs)
    dtype = _label_dtype(
        int(v.max()) if v.size else 0, np.uint32 if img.layout != "semantic" else np.uint8
    )
    if img.layout == "kaggle" and len(img.ss) == 1:
        dtype = np.dtype(np.uint8)
    try:
        check_alloc(h, w, dtype.itemsize)
    except RLEError as err:
        raise err.located(path) from None
    idx = np.argsort(s, kind="stable")
    ssorted, esorted = s[idx], e[idx]
    if not np.any(ssorted[1:] < esorted[:-1]):
        return paint(ssorted, esorted, v[idx], h, w, order, dtype)
    info["overlaps"] = True
    out = np.zeros((h, w), dtype)
    for rs, re_, rv in zip(img.ss, img.es, img.vs, strict=True):
        if rs.size:
            paint_into(out, rs, re_, dtype.type(rv[0]), order)
    return out
