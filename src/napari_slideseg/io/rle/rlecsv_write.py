"""Writing label images as the package's own RLE CSV files (semantic or instance layout)."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checks import RLEError, check_base, check_label_dtype, check_order, is_dask
from .columns import (
    INSTANCE_COLUMNS,
    PLACEMENT_COLUMNS,
    SEMANTIC_COLUMNS,
    format_color,
    placement_fields,
)
from .csvfiles import atomic_text
from .kaggle import encode_labels
from .stream import iter_instance_rles_dask, rle_encode_dask


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
        by band with :func:`rle_encode_dask`; in the instance layout the
        rows are written a band of finished objects at a time, with
        :func:`~napari_slideseg.io.rle.stream.iter_instance_rles_dask`, so
        memory does not grow with the number of objects: rows then come
        by the band each object ends in, ids ascending within one, instead
        of all ids ascending). Values must be non-negative.
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

    Raises
    ------
    RLEError
        A bad ``layout``, ``order`` or ``base``, labels that are not a 2D
        integer or bool array, a negative label value, or a class index
        without a name (naming the file); the file is then left as it was.
    """
    path = Path(path)
    if layout not in ("semantic", "instance"):
        raise RLEError(f"layout must be 'semantic' or 'instance', got {layout!r}", source=path)
    names = list(class_names) if class_names is not None else None
    ident = image_id if image_id is not None else path.stem
    try:
        check_order(order)
        base = check_base(base)
        if layout == "instance" and is_dask(labels):
            h, w = _checked_shape(labels)
            where = (ident, h, w, order, base)
            options = (names, instance_classes, class_colors, placement)
            return _write_instances_streamed(path, labels, where, band, options)
        h, w, rles = _encode(labels, order, base, band)
        where = (ident, h, w, order, base)
        if layout == "semantic":
            header, rows = list(SEMANTIC_COLUMNS), _semantic_rows(rles, names, where)
        else:
            header = list(INSTANCE_COLUMNS)
            rows = _instance_rows(rles, names, instance_classes, where)
        if class_colors is not None:
            header, rows = _with_colors(header, rows, class_colors)
        if placement is not None:
            extra = placement_fields(placement, (h, w))
            header = header[:-1] + list(PLACEMENT_COLUMNS) + header[-1:]
            rows = [r[:-1] + extra + r[-1:] for r in rows]
    except RLEError as err:
        raise err.located(source=path) from None
    with atomic_text(path) as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(header)
        wr.writerows(rows)
    return path


def _checked_shape(labels: Any) -> tuple[int, int]:
    """``(height, width)`` of a 2D integer or bool label image."""
    if len(labels.shape) != 2:
        raise RLEError(f"labels must be a 2D array, got shape {tuple(labels.shape)}")
    check_label_dtype(labels.dtype)
    h, w = (int(v) for v in labels.shape)
    return h, w


def _negative(value: int) -> RLEError:
    return RLEError(
        f"label value {value} cannot be written: class indices and instance ids "
        "must be non-negative"
    )


def _encode(
    labels: Any, order: str, base: int, band: int | None
) -> tuple[int, int, dict[int, str]]:
    """``(height, width, {value: rle})`` of a 2D label image with non-negative values."""
    h, w = _checked_shape(labels)
    if is_dask(labels):
        rles = rle_encode_dask(labels, order=order, base=base, band=band)
    else:
        rles = encode_labels(labels, order=order, base=base)
    negative = [v for v in rles if v < 0]
    if negative:
        raise _negative(negative[0])
    return h, w, rles


def _write_instances_streamed(
    path: Path, labels: Any, where: tuple[Any, ...], band: int | None, options: tuple[Any, ...]
) -> Path:
    """The instance layout of a dask label image, written a band of finished objects at a time.

    Rows come by the band (of ``order``) each object ends in, ascending ids
    within one (:func:`~napari_slideseg.io.rle.stream.iter_instance_rles_dask`);
    memory is a band and the objects crossing it, not every object's RLE.
    ``options`` is ``(names, instance_classes, class_colors, placement)``.
    """
    names, instance_classes, class_colors, placement = options
    _, h, w, order, base = where
    if np.issubdtype(labels.dtype, np.signedinteger):
        low = int(labels.min().compute())
        if low < 0:
            raise _negative(low)
    header = list(INSTANCE_COLUMNS)
    if class_colors is not None:
        header, _ = _with_colors(header, [], class_colors)
    extra = placement_fields(placement, (h, w)) if placement is not None else None
    if extra is not None:
        header = header[:-1] + list(PLACEMENT_COLUMNS) + header[-1:]
    with atomic_text(path) as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(header)
        for ids, texts in iter_instance_rles_dask(labels, order=order, base=base, band=band):
            rows = _instance_rows(
                dict(zip(ids.tolist(), texts, strict=True)), names, instance_classes, where
            )
            if class_colors is not None:
                _, rows = _with_colors(list(INSTANCE_COLUMNS), rows, class_colors)
            if extra is not None:
                rows = [r[:-1] + extra + r[-1:] for r in rows]
            wr.writerows(rows)
    return path


def _semantic_rows(
    rles: Mapping[int, str], names: list[str] | None, where: tuple[Any, ...]
) -> list[list[Any]]:
    """One row per class present or named; ``where`` is ``(id, height, width, order, base)``."""
    ident, *fields = where
    classes = set(rles)
    if names is not None:
        over = sorted(c for c in classes if c >= len(names))
        if over:
            raise RLEError(
                f"label value {over[0]} has no name: class_names has {len(names)} entries"
            )
        classes |= set(range(1, len(names)))
    rows: list[list[Any]] = []
    for c in sorted(classes):
        name = names[c] if names is not None else ""
        rows.append([ident, c, name, *fields, rles.get(c, "")])
    return rows


def _instance_rows(
    rles: Mapping[int, str],
    names: list[str] | None,
    instance_classes: Mapping[int, int] | None,
    where: tuple[Any, ...],
) -> list[list[Any]]:
    """One row per instance id; ``where`` is ``(id, height, width, order, base)``."""
    ident, *fields = where
    rows: list[list[Any]] = []
    for iid in sorted(rles):
        ci = None if instance_classes is None else instance_classes.get(iid)
        name = names[ci] if names is not None and ci is not None and ci < len(names) else ""
        rows.append([ident, iid, "" if ci is None else int(ci), name, *fields, rles[iid]])
    return rows


def _with_colors(
    header: list[str], rows: list[list[Any]], class_colors: Sequence[Sequence[int]]
) -> tuple[list[str], list[list[Any]]]:
    """``header`` and ``rows`` with a ``class_color`` column after ``class_name``."""
    at = header.index("class_name") + 1
    ci_col = header.index("class_index")
    header = [*header[:at], "class_color", *header[at:]]
    rows = [[*r[:at], format_color(class_colors, r[ci_col]), *r[at:]] for r in rows]
    return header, rows
