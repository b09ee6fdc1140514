"""PNG label writers: colour-map PNG (RGB or palette), class-index PNG, 16-bit instance-id PNG.

Rows are encoded in bands (:data:`PNG_BAND_ROWS`) by
:class:`~napari_slideseg.io.pngstream.PngStreamWriter`, which writes a
temporary file and renames it into place when complete. The class map, the
placement and the instance mark go into ``tEXt`` chunks, the labels' µm per
pixel into ``pHYs``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ...progress import Progress, drain
from ..blocks import iter_bands
from ..palette import ClassMap, MaskError
from ..placement import Placement, mpp_to_ppm
from ..pngstream import PngStreamWriter
from .common import (
    check_class_range,
    check_ids,
    checked_output,
    resolve_placement,
)

#: Rows per band when streaming a PNG (bounded memory: band x width x 3 bytes).
PNG_BAND_ROWS = 512
#: tEXt key under which PNG writers record the class map (JSON).
PNG_CLASSMAP_KEY = "slideseg:classmap"
#: tEXt key under which PNG writers record the placement (JSON, :meth:`Placement.to_dict`).
PNG_PLACEMENT_KEY = "slideseg:placement"
#: tEXt key under which the id PNG writer marks an instance map (JSON: type class map).
PNG_INSTANCES_KEY = "slideseg:instances"
#: Largest id a 16-bit id PNG holds.
PNG_MAX_ID = 2**16 - 1


def _add_placement(
    text: dict[str, str], placement: Placement | None, mpp: tuple[float, float] | None, shape
) -> tuple[int, int] | None:
    """Record the placement in ``text``; the ``pHYs`` pixels per metre (None when unknown)."""
    where = resolve_placement(placement, mpp, shape)
    if where is None:
        return None
    text[PNG_PLACEMENT_KEY] = json.dumps(where.to_dict())
    return mpp_to_ppm(where.pixel_mpp) if where.pixel_mpp is not None else None


def _drop_png_temp(writer: PngStreamWriter) -> None:
    """Remove a PNG writer's temporary file if it is still there (its final rename failed)."""
    tmp = getattr(writer, "_tmp", None)
    if tmp is not None:
        Path(tmp).unlink(missing_ok=True)


def _stream_rows(
    writer: PngStreamWriter,
    labels: Any,
    band_rows: int,
    rows: Callable[[np.ndarray], np.ndarray],
) -> Generator[Progress, None, None]:
    """Write ``rows(band)`` of each band of ``labels`` with ``writer``; one event per band.

    The writer's temporary file is removed if the final rename did not happen.
    """
    h = labels.shape[0]
    n = -(-h // band_rows)
    try:
        with writer:
            for i, (_, band) in enumerate(iter_bands(labels, band_rows)):
                writer.write_rows(rows(band))
                yield Progress("png", i + 1, n, f"PNG rows {min(h, (i + 1) * band_rows)}/{h}")
    finally:
        _drop_png_temp(writer)


def write_color_png_steps(
    path: str | os.PathLike,
    labels: Any,
    classmap: ClassMap,
    *,
    indexed: bool = False,
    band_rows: int = PNG_BAND_ROWS,
    level: int = 6,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
) -> Generator[Progress, None, Path]:
    """:func:`write_color_png` as a generator of progress events.

    Parameters
    ----------
    path, labels, classmap, indexed, band_rows, level, placement, mpp
        See :func:`write_color_png`.

    Yields
    ------
    Progress
        One event per band of rows.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        Before anything is written: ``path`` is a directory, the labels are
        not a non-empty 2D integer image, or an indexed PNG would need more
        than 256 classes; while writing: a value the class map lacks.
    """
    path, labels = checked_output(path, labels)
    h, w = labels.shape
    colors = np.asarray(classmap.colors, np.uint8)
    text = {PNG_CLASSMAP_KEY: json.dumps(classmap.to_dict())}
    ppm = _add_placement(text, placement, mpp, (h, w))
    if indexed:
        if classmap.n_classes > 256:
            raise MaskError(
                f"{path}: an indexed PNG holds at most 256 classes, not {classmap.n_classes}"
            )
        writer = PngStreamWriter(path, w, h, "P", palette=colors, level=level, text=text, ppm=ppm)
    else:
        writer = PngStreamWriter(path, w, h, "RGB", level=level, text=text, ppm=ppm)

    def rows(band: np.ndarray) -> np.ndarray:
        check_class_range(band, classmap, path)
        return band.astype(np.uint8) if indexed else colors[band]

    yield from _stream_rows(writer, labels, band_rows, rows)
    return path


def write_color_png(
    path: str | os.PathLike,
    labels: Any,
    classmap: ClassMap,
    *,
    indexed: bool = False,
    band_rows: int = PNG_BAND_ROWS,
    level: int = 6,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
) -> Path:
    """Write labels as a colour-map PNG using the class map's RGB colours.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.png``.
    labels : numpy.ndarray or dask.array.Array
        2D integer label image, values are class indices.
    classmap : ClassMap
        Gives each class index its RGB colour.
    indexed : bool
        Write a palette (indexed-colour) PNG whose pixel values are the class
        indices and whose palette is the class colours: decoded as RGB it is
        identical to the RGB PNG, and it is 3x smaller before compression.
    band_rows : int
        Rows encoded per step (memory: ``band_rows x width x 3`` bytes).
    level : int
        zlib level.
    placement : Placement, optional
        Where the labels sit on their slide (level, factors, level-0 mpp):
        recorded in a ``tEXt`` chunk (``slideseg:placement``), and the
        labels' own µm per pixel in the ``pHYs`` chunk.
    mpp : (float, float), optional
        ``(y, x)`` µm per pixel of the labels, when there is no ``placement``.

    Returns
    -------
    Path
        ``path``. The class map is recorded in a ``tEXt`` chunk
        (``slideseg:classmap``) so the PNG reads back with its class names.

    Raises
    ------
    MaskError
        See :func:`write_color_png_steps`; nothing is left at ``path``.
    """
    return drain(
        write_color_png_steps(
            path,
            labels,
            classmap,
            indexed=indexed,
            band_rows=band_rows,
            level=level,
            placement=placement,
            mpp=mpp,
        )
    )


def write_index_png(
    path: str | os.PathLike, labels: Any, *, band_rows: int = PNG_BAND_ROWS
) -> Path:
    """Write labels as a single-channel PNG of class indices (8-bit, or 16-bit above 255).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.png``.
    labels : numpy.ndarray or dask.array.Array
        2D integer label image.
    band_rows : int
        Rows encoded per step.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        ``path`` is a directory, the labels are empty or not 2D integers, or
        hold values outside ``0..65535``.
    """
    path, labels = checked_output(path, labels)
    h, w = labels.shape
    top = (
        int(labels.max().compute() if isinstance(labels, da.Array) else labels.max())
        if labels.size
        else 0
    )
    if top >= 2**16 or (labels.size and int(labels.min()) < 0):
        raise MaskError(f"{path}: a PNG index mask holds values 0..65535")
    depth = 8 if top < 256 else 16
    png = PngStreamWriter(path, w, h, "L", bit_depth=depth)
    drain(_stream_rows(png, labels, band_rows, lambda band: band))
    return path


def write_id_png_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    classmap: ClassMap | None = None,
    band_rows: int = PNG_BAND_ROWS,
    level: int = 6,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
) -> Generator[Progress, None, Path]:
    """:func:`write_id_png` as a generator of progress events.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.png``.
    labels : numpy.ndarray or dask.array.Array
        2D integer instance map (ids 0..65535).
    classmap : ClassMap, optional
        The objects' type class map, recorded with the instance mark.
    band_rows : int
        Rows encoded per step.
    level : int
        zlib level.
    placement : Placement, optional
        Recorded as for :func:`write_color_png`.
    mpp : (float, float), optional
        ``(y, x)`` µm per pixel of the labels, when there is no ``placement``.

    Yields
    ------
    Progress
        One event per band of rows.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        ``path`` is a directory, the labels are empty or not 2D integers,
        or an id is negative or above :data:`PNG_MAX_ID` (naming the formats
        that hold it).
    """
    path, labels = checked_output(path, labels)
    h, w = labels.shape
    meta: dict[str, Any] = {"instances": True}
    if classmap is not None:
        meta["classmap"] = classmap.to_dict()
    text = {PNG_INSTANCES_KEY: json.dumps(meta)}
    ppm = _add_placement(text, placement, mpp, (h, w))
    png = PngStreamWriter(path, w, h, "L", bit_depth=16, level=level, text=text, ppm=ppm)

    def rows(band: np.ndarray) -> np.ndarray:
        check_ids(band, path, PNG_MAX_ID, "16-bit PNG")
        return band.astype(np.uint16)

    yield from _stream_rows(png, labels, band_rows, rows)
    return path


def write_id_png(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write an instance map as a 16-bit grey PNG whose pixel values are the ids (0..65535).

    The ids are kept as they are (never renumbered, so they still match the
    instance table); an id above 65535 is refused with a message naming the
    formats that hold it (``.tif`` 32-bit ids, ``.csv``, ``.zarr``,
    ``.geojson``), and nothing is written. The file is marked as an instance
    map (``tEXt`` ``slideseg:instances``, with the type class map if given as
    ``classmap``) and records ``placement``/``mpp`` like the colour PNG.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.png``.
    labels : numpy.ndarray or dask.array.Array
        2D integer instance map.
    **kwargs
        ``classmap``, ``band_rows``, ``level``, ``placement``, ``mpp``: see
        :func:`write_id_png_steps`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        See :func:`write_id_png_steps`.
    """
    return drain(write_id_png_steps(path, labels, **kwargs))
