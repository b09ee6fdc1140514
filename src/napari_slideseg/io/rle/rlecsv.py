"""The package's own RLE CSV files: semantic and instance layouts, placement and colour columns."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checks import (
    ORDERS,
    RLEError,
    check_base,
    check_label_dtype,
    check_order,
    check_shape,
    is_dask,
)
from .csvfiles import atomic_text, big_fields, check_alloc, csv_rows, find_column, open_csv
from .kaggle import encode_labels
from .runs import paint, paint_into, runs_from_rle
from .stream import rle_encode_dask

#: Columns of the semantic layout (one row per class).
SEMANTIC_COLUMNS = (
    "image_id",
    "class_index",
    "class_name",
    "height",
    "width",
    "order",
    "base",
    "rle",
)
#: Columns of the instance layout (one row per object).
INSTANCE_COLUMNS = (
    "image_id",
    "instance_id",
    "class_index",
    "class_name",
    "height",
    "width",
    "order",
    "base",
    "rle",
)

#: Columns stating where the mask sits on its slide (written when known, before ``rle``).
PLACEMENT_COLUMNS = ("level", "slide_height", "slide_width", "mpp_y", "mpp_x")


def _label_dtype(maxval: int, minimum: Any = np.uint8) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if np.dtype(dt).itemsize >= np.dtype(minimum).itemsize and maxval <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise RLEError(f"label value {maxval} is too large")


_COLS = {
    "rle": ("rle", "predicted", "encodedpixels", "encoded_pixels", "annotation", "segmentation"),
    "id": ("image_id", "id", "imageid", "img_id", "img", "image"),
    "instance": ("instance_id", "object_id"),
    "class": ("class_index", "class_id", "classid"),
    "class_name": ("class_name",),
    "class_color": ("class_color",),
    "height": ("height",),
    "width": ("width",),
    "order": ("order",),
    "base": ("base",),
    "level": ("level",),
    "slide_height": ("slide_height",),
    "slide_width": ("slide_width",),
    "mpp_y": ("mpp_y",),
    "mpp_x": ("mpp_x",),
}


_UINT64_MAX = 2**64 - 1
#: Largest height or width a row may state (also bounded by memory, see _check_alloc).
_MAX_SIDE = 2**31 - 1


def _int_field(text: str, what: str, minimum: int = 0, maximum: int = _MAX_SIDE) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise RLEError(f"{what} {text!r} is not an integer") from None
    if v < minimum:
        raise RLEError(f"{what} {v} is below {minimum}")
    if v > maximum:
        raise RLEError(f"{what} {v} is above the largest allowed value {maximum}")
    return v


def _placement_info(
    fields: Mapping[str, str], shape: tuple[int, int], path: Path
) -> dict[str, Any]:
    """``level``, ``slide_shape`` and ``mpp`` (µm per mask pixel or None) from the placement columns."""
    try:
        level = _int_field(fields["level"], "level")
        sh, sw = fields["slide_height"], fields["slide_width"]
        slide = (
            (_int_field(sh, "slide height", 1), _int_field(sw, "slide width", 1))
            if sh and sw
            else None
        )
        my, mx = fields["mpp_y"], fields["mpp_x"]
        mpp = (float(my), float(mx)) if my and mx else None
    except (RLEError, ValueError) as err:
        raise RLEError(f"unreadable placement columns ({err})", source=path) from None
    return {"level": level, "slide_shape": slide, "mpp": mpp}


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
    fixed_shape = None if shape is None else check_shape(shape)
    with big_fields(), open_csv(path) as fh:
        rd = csv_rows(fh, path)
        header = next(rd, None)
        if not header:
            raise RLEError("empty file: expected a header row", source=path)
        col = {k: find_column(header, names) for k, names in _COLS.items()}
        if col["rle"] is None and len(header) == 2:
            col["rle"] = 1
        if col["id"] is None and len(header) == 2:
            col["id"] = 0
        if col["rle"] is None:
            raise RLEError(f"no RLE column in the header {header!r}", source=path)
        if col["order"] is None and order is None:
            raise RLEError(
                "the file does not record the pixel order: pass order='col' (column-major: "
                "HuBMAP, Airbus) or order='row' (row-major: Carvana); guess_order() compares "
                "both with a reference mask",
                source=path,
            )
        if (col["height"] is None or col["width"] is None) and fixed_shape is None:
            raise RLEError(
                "the file does not record the image shape (height, width columns): pass "
                "shape=(height, width)",
                source=path,
            )
        layout = (
            "instance"
            if col["instance"] is not None
            else "semantic"
            if col["class"] is not None
            else "kaggle"
        )
        chosen = image_id
        file_shape: tuple[int, int] | None = None
        file_order: str | None = None
        ss: list[np.ndarray] = []
        es: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        names: dict[int, str] = {}
        colors: dict[int, tuple[int, int, int]] = {}
        instance_classes: dict[int, int] = {}
        placed: dict[str, str] | None = None
        n_rows = 0
        for row, rec in enumerate(rd, 1):
            if not rec:
                continue
            ident = rec[col["id"]] if col["id"] is not None and col["id"] < len(rec) else None
            try:
                if len(rec) != len(header):
                    raise RLEError(f"{len(rec)} fields but the header has {len(header)}")
                if col["id"] is not None:
                    if chosen is None:
                        chosen = ident
                    elif ident != chosen:
                        if image_id is not None:
                            continue
                        raise RLEError(
                            f"the file holds more than one image ({chosen!r}, {ident!r}, ...): "
                            "pass image_id to choose one"
                        )

                def field(key: str, rec: list[str] = rec) -> str:
                    c = col[key]
                    return "" if c is None else rec[c].strip()

                r_order = field("order") or order
                if r_order is None:
                    raise RLEError("the row does not record its pixel order; pass order=")
                if r_order not in ORDERS:
                    raise RLEError(f"order must be 'col' or 'row', found {r_order!r}")
                if order is not None and r_order != order:
                    raise RLEError(
                        f"the row records order {r_order!r} but order={order!r} was passed"
                    )
                if file_order is None:
                    file_order = r_order
                elif r_order != file_order:
                    raise RLEError(
                        f"the row uses order {r_order!r} but earlier rows use {file_order!r}"
                    )
                b = field("base")
                r_base = check_base(_int_field(b, "base")) if b else (1 if base is None else base)
                if base is not None and b and r_base != base:
                    raise RLEError(f"the row records base {r_base} but base={base} was passed")
                hh, ww = field("height"), field("width")
                if hh and ww:
                    r_shape = (_int_field(hh, "height"), _int_field(ww, "width"))
                elif fixed_shape is not None:
                    r_shape = fixed_shape
                else:
                    raise RLEError("the row does not record height and width; pass shape=")
                if file_shape is None:
                    check_alloc(*r_shape, 1)
                    file_shape = r_shape
                elif r_shape != file_shape:
                    raise RLEError(
                        f"the row's shape {r_shape} differs from earlier rows' {file_shape}"
                    )
                if placed is None and field("level"):
                    placed = {k: field(k) for k in PLACEMENT_COLUMNS}
                text = rec[col["rle"]]
                s, e = runs_from_rle(text, *r_shape, r_base)
                ci_text = field("class")
                ci = _int_field(ci_text, "class index") if ci_text else None
                if ci is not None and field("class_name"):
                    names[ci] = field("class_name")
                if ci is not None and field("class_color"):
                    colors[ci] = _parse_color(field("class_color"))
                if layout == "instance":
                    value = _int_field(field("instance"), "instance id", maximum=_UINT64_MAX)
                    if ci is not None:
                        instance_classes[value] = ci
                elif layout == "semantic":
                    if ci is None:
                        raise RLEError("the class index is empty")
                    value = ci
                else:
                    if s.size == 0:
                        n_rows += 1
                        continue
                    value = len(ss) + 1
            except RLEError as err:
                raise err.located(path, row, ident) from None
            n_rows += 1
            ss.append(s)
            es.append(e)
            vs.append(np.full(s.size, value, np.uint64))
    if n_rows == 0 and image_id is not None:
        raise RLEError(f"no rows for image {image_id!r}", source=path)
    shape_out = file_shape or fixed_shape
    if shape_out is None:
        raise RLEError("no rows for the image and no shape given", source=path)
    h, w = shape_out
    order_out = file_order or order
    info: dict[str, Any] = {
        "layout": layout,
        "image_id": chosen,
        "order": order_out,
        "shape": (h, w),
        "n_rows": n_rows,
        "class_names": None,
        "class_colors": None,
        "instance_classes": instance_classes if layout == "instance" else None,
        "overlaps": False,
    }
    if placed is not None:
        info.update(_placement_info(placed, (h, w), path))
    if names:
        top = max(names)
        info["class_names"] = ["background"] + [
            names.get(i, f"class {i}") for i in range(1, top + 1)
        ]
        if 0 in names:
            info["class_names"][0] = names[0]
    if colors:
        top = max(max(colors), len(info["class_names"] or [None]) - 1)
        info["class_colors"] = [colors.get(i) for i in range(top + 1)]
    if not ss:
        return np.zeros((h, w), _label_dtype(0)), info
    s, e, v = np.concatenate(ss), np.concatenate(es), np.concatenate(vs)
    dtype = _label_dtype(
        int(v.max()) if v.size else 0, np.uint32 if layout != "semantic" else np.uint8
    )
    if layout == "kaggle" and len(ss) == 1:
        dtype = np.dtype(np.uint8)
    try:
        check_alloc(h, w, dtype.itemsize)
    except RLEError as err:
        raise err.located(path) from None
    idx = np.argsort(s, kind="stable")
    ssorted, esorted = s[idx], e[idx]
    if not np.any(ssorted[1:] < esorted[:-1]):
        return paint(ssorted, esorted, v[idx], h, w, order_out, dtype), info
    info["overlaps"] = True
    out = np.zeros((h, w), dtype)
    for rs, re_, rv in zip(ss, es, vs, strict=True):
        if rs.size:
            paint_into(out, rs, re_, dtype.type(rv[0]), order_out)
    return out, info


def _format_color(colors: Sequence[Sequence[int]], index: Any) -> str:
    if index == "" or index is None or not 0 <= int(index) < len(colors):
        return ""
    r, g, b = (int(v) for v in colors[int(index)][:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _parse_color(text: str) -> tuple[int, int, int]:
    t = text.strip().lstrip("#")
    if len(t) != 6:
        raise RLEError(f"class colour {text!r} is not #rrggbb")
    try:
        return (int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16))
    except ValueError:
        raise RLEError(f"class colour {text!r} is not #rrggbb") from None


def _placement_fields(placement: Any, shape: tuple[int, int]) -> list[Any]:
    slide = placement.slide_shape
    if slide is None:
        fy, fx = placement.factors
        slide = (round(shape[0] * fy), round(shape[1] * fx))
    mpp = placement.pixel_mpp
    return [
        int(placement.level),
        int(slide[0]),
        int(slide[1]),
        "" if mpp is None else repr(float(mpp[0])),
        "" if mpp is None else repr(float(mpp[1])),
    ]


def write_rle_csv(
    path: str | os.PathLike,
    labels: Any,
    *,
    layout: str = "semantic",
    order: str = "col",
    base: int = 1,
    image_id: str | None = None,
    class_names: Sequence[str] | None = None,
    instance_classes: Mapping[int, int] | None = None,
    band: int | None = None,
    placement: Any = None,
    class_colors: Sequence[Sequence[int]] | None = None,
) -> Path:
    """Write a label image as an RLE CSV (semantic or instance layout).

    Every row records ``height``, ``width``, ``order`` and ``base``, so
    :func:`read_rle_csv` needs no arguments to read the file back.

    Parameters
    ----------
    path
        Output file; replaced atomically (no partial file on error).
    labels
        2D integer or bool NumPy or dask array (dask arrays are encoded band
        by band with :func:`rle_encode_dask`). Values must be non-negative.
    layout
        ``"semantic"``: one row per class (pixel values are class indices;
        0 is background and gets no row). ``"instance"``: one row per object
        (pixel values are instance ids).
    order
        ``"col"`` (default, HuBMAP/Airbus/COCO) or ``"row"``.
    base
        Index of the first pixel, 1 or 0.
    image_id
        Value of the ``image_id`` column; the file name stem by default.
    class_names
        Name of each class index (index 0 = background). In the semantic
        layout every named class gets a row, with an empty RLE when absent.
    instance_classes
        ``{instance id: class index}`` for the instance layout.
    band
        Band size for dask input (see :func:`rle_encode_dask`).
    placement
        A :class:`~napari_slideseg.io.placement.Placement`: every row then
        states the pyramid ``level`` the mask's pixels are on, the slide's
        level-0 ``slide_height``/``slide_width`` and the mask pixels'
        ``mpp_y``/``mpp_x`` (:data:`PLACEMENT_COLUMNS`, before ``rle``).
    class_colors
        RGB colour of each class index (with ``class_names``): a
        ``class_color`` column (``#rrggbb``) after ``class_name``, so the
        file reopens in the class map's colours. Readers that look columns
        up by name are unaffected.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    if layout not in ("semantic", "instance"):
        raise RLEError(f"layout must be 'semantic' or 'instance', got {layout!r}", source=path)
    try:
        check_order(order)
        base = check_base(base)
        if len(labels.shape) != 2:
            raise RLEError(f"labels must be a 2D array, got shape {tuple(labels.shape)}")
        check_label_dtype(labels.dtype)
        h, w = (int(v) for v in labels.shape)
        if is_dask(labels):
            rles = rle_encode_dask(labels, order=order, base=base, band=band)
        else:
            rles = encode_labels(labels, order=order, base=base)
        negative = [v for v in rles if v < 0]
        if negative:
            raise RLEError(
                f"label value {negative[0]} cannot be written: class indices and instance ids "
                "must be non-negative"
            )
        names = list(class_names) if class_names is not None else None
        ident = image_id if image_id is not None else path.stem
        rows: list[list[Any]] = []
        if layout == "semantic":
            classes = set(rles)
            if names is not None:
                over = sorted(c for c in classes if c >= len(names))
                if over:
                    raise RLEError(
                        f"label value {over[0]} has no name: class_names has {len(names)} entries"
                    )
                classes |= set(range(1, len(names)))
            for c in sorted(classes):
                name = names[c] if names is not None else ""
                rows.append([ident, c, name, h, w, order, base, rles.get(c, "")])
            header = list(SEMANTIC_COLUMNS)
        else:
            for iid in sorted(rles):
                ci = None if instance_classes is None else instance_classes.get(iid)
                name = names[ci] if names is not None and ci is not None and ci < len(names) else ""
                rows.append(
                    [ident, iid, "" if ci is None else int(ci), name, h, w, order, base, rles[iid]]
                )
            header = list(INSTANCE_COLUMNS)
        if class_colors is not None:
            at = header.index("class_name") + 1
            ci_col = header.index("class_index")
            header = [*header[:at], "class_color", *header[at:]]
            rows = [[*r[:at], _format_color(class_colors, r[ci_col]), *r[at:]] for r in rows]
        if placement is not None:
            extra = _placement_fields(placement, (h, w))
            header = header[:-1] + list(PLACEMENT_COLUMNS) + header[-1:]
            rows = [r[:-1] + extra + r[-1:] for r in rows]
    except RLEError as err:
        raise err.located(source=path) from None
    with atomic_text(path) as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(header)
        wr.writerows(rows)
    return path
