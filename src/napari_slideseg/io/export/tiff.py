"""TIFF label writers: tiled colour TIFF in the class colours, tiled grey TIFF of instance ids.

Tiles are streamed a row of tiles at a time into a zlib-compressed tiled
TIFF (BigTIFF above 2 GiB), written under a temporary name and renamed into
place when complete (:func:`~napari_slideseg.io.files.atomic_path`). The
class map, the placement and the instance mark go into the image
description as JSON (``{"slideseg": {...}}``), the labels' µm per pixel
into the resolution tags (pixels per centimetre).
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ...progress import Progress, drain
from ..blocks import iter_bands
from ..files import atomic_path
from ..palette import ClassMap
from ..placement import Placement
from .common import (
    check_class_range,
    check_ids,
    checked_output,
    resolve_placement,
)

#: Tile edge of colour TIFF masks.
TIFF_TILE = 512


def _write_tiled_tiff(
    path: Path,
    tiles: Iterator[np.ndarray],
    shape: tuple[int, ...],
    dtype: np.dtype,
    photometric: str,
    tile: int,
    desc: dict[str, Any],
    where: Placement | None,
) -> None:
    """Stream ``tiles`` into a zlib-tiled TIFF at ``path`` (temporary name, then rename).

    The slideseg description (class map, placement) goes into the image
    description, the pixel size (when known) into the resolution tags.
    """
    import tifffile

    kwargs: dict[str, Any] = {}
    if where is not None and where.pixel_mpp is not None:
        my, mx = where.pixel_mpp
        kwargs = {"resolution": (1e4 / mx, 1e4 / my), "resolutionunit": "CENTIMETER"}
    nbytes = int(np.prod(shape)) * dtype.itemsize
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=nbytes > 2**31) as tw:
        tw.write(
            tiles,
            shape=shape,
            dtype=dtype,
            tile=(tile, tile),
            photometric=photometric,
            compression="zlib",
            description=json.dumps({"slideseg": desc}),
            metadata=None,
            software="napari-slideseg",
            **kwargs,
        )


def _band_tiles(band: np.ndarray, tile: int) -> Iterator[np.ndarray]:
    """The ``tile`` x ``tile`` tiles of a band of rows, left to right, zero-padded at the edges."""
    for x0 in range(0, band.shape[1], tile):
        t = np.zeros((tile, tile, *band.shape[2:]), band.dtype)
        part = band[:, x0 : x0 + tile]
        t[: part.shape[0], : part.shape[1]] = part
        yield t


def _row_progress(i: int, n_rows: int, h: int, tile: int) -> Progress:
    return Progress("tiff", i + 1, n_rows, f"TIFF rows {min(h, (i + 1) * tile)}/{h}")


def write_color_tiff_steps(
    path: str | os.PathLike,
    labels: Any,
    classmap: ClassMap,
    *,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
    tile: int = TIFF_TILE,
) -> Generator[Progress, None, Path]:
    """:func:`write_color_tiff` as a generator of progress events.

    The file is complete before the events are given (one per row of tiles).

    Parameters
    ----------
    path, labels, classmap, placement, mpp, tile
        See :func:`write_color_tiff`.

    Yields
    ------
    Progress
        One event per row of tiles.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        ``path`` is a directory, the labels are empty or not 2D integers,
        or hold a value the class map lacks (nothing is left at ``path``).
    """
    path, labels = checked_output(path, labels)
    h, w = labels.shape
    colors = np.asarray(classmap.colors, np.uint8)
    where = resolve_placement(placement, mpp, (h, w))
    desc: dict[str, Any] = {"classmap": classmap.to_dict()}
    if where is not None:
        desc["placement"] = where.to_dict()
    n_rows = -(-h // tile)
    progress: list[Progress] = []

    def tiles() -> Iterator[np.ndarray]:
        for i, (_, band) in enumerate(iter_bands(labels, tile)):
            check_class_range(band, classmap, path)
            yield from _band_tiles(colors[band], tile)
            progress.append(_row_progress(i, n_rows, h, tile))

    _write_tiled_tiff(path, tiles(), (h, w, 3), np.dtype(np.uint8), "rgb", tile, desc, where)
    yield from progress
    return path


def write_color_tiff(
    path: str | os.PathLike, labels: Any, classmap: ClassMap, **kwargs: Any
) -> Path:
    """Write labels as a tiled, deflate-compressed colour TIFF in the class map's colours.

    ``placement`` (or ``mpp``, µm per pixel of the labels) is recorded as
    ``XResolution``/``YResolution`` in pixels per centimetre (``ResolutionUnit``
    centimetre), and with the class map as JSON in ``ImageDescription``
    (``{"slideseg": {"classmap": ..., "placement": ...}}``); ``tile`` is the
    tile edge. Streams a row of tiles at a time.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.tif``.
    labels : numpy.ndarray or dask.array.Array
        2D integer label image, values are class indices.
    classmap : ClassMap
        Gives each class index its RGB colour.
    **kwargs
        ``placement``, ``mpp``, ``tile`` (default :data:`TIFF_TILE`).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        See :func:`write_color_tiff_steps`.
    """
    return drain(write_color_tiff_steps(path, labels, classmap, **kwargs))


def write_id_tiff_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    classmap: ClassMap | None = None,
    placement: Placement | None = None,
    mpp: tuple[float, float] | None = None,
    tile: int = TIFF_TILE,
) -> Generator[Progress, None, Path]:
    """:func:`write_id_tiff` as a generator of progress events.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.tif``.
    labels : numpy.ndarray or dask.array.Array
        2D integer instance map.
    classmap : ClassMap, optional
        The objects' type class map, recorded in the description.
    placement : Placement, optional
        Recorded as for :func:`write_color_tiff`.
    mpp : (float, float), optional
        ``(y, x)`` µm per pixel of the labels, when there is no ``placement``.
    tile : int
        Tile edge.

    Yields
    ------
    Progress
        One event per row of tiles (the file is complete before the first).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        ``path`` is a directory, the labels are empty or not 2D integers,
        or an id is negative or does not fit the TIFF's dtype.
    """
    path, labels = checked_output(path, labels)
    h, w = labels.shape
    small = labels.dtype.kind == "u" and labels.dtype.itemsize <= 2
    dtype = np.dtype(np.uint16) if small else np.dtype(np.uint32)
    limit = int(np.iinfo(dtype).max)
    where = resolve_placement(placement, mpp, (h, w))
    desc: dict[str, Any] = {"instances": True}
    if classmap is not None:
        desc["classmap"] = classmap.to_dict()
    if where is not None:
        desc["placement"] = where.to_dict()
    n_rows = -(-h // tile)
    progress: list[Progress] = []

    def tiles() -> Iterator[np.ndarray]:
        for i, (_, band) in enumerate(iter_bands(labels, tile)):
            check_ids(band, path, limit, f"{dtype.itemsize * 8}-bit TIFF")
            yield from _band_tiles(band.astype(dtype), tile)
            progress.append(_row_progress(i, n_rows, h, tile))

    _write_tiled_tiff(path, tiles(), (h, w), dtype, "minisblack", tile, desc, where)
    yield from progress
    return path


def write_id_tiff(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write an instance map as a tiled grey TIFF of its ids (uint16, or uint32 for wider input).

    Ids are kept as they are (HoVer ids reach about 4e9: uint32); deflate
    compressed, tiles of ``tile``; ``placement``/``mpp`` become resolution
    tags and, with the type class map (``classmap``), the slideseg JSON
    description (``{"slideseg": {"instances": true, ...}}``) that marks the
    file as an instance map for the reader.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.tif``.
    labels : numpy.ndarray or dask.array.Array
        2D integer instance map.
    **kwargs
        ``classmap``, ``placement``, ``mpp``, ``tile``: see
        :func:`write_id_tiff_steps`.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        See :func:`write_id_tiff_steps`.
    """
    return drain(write_id_tiff_steps(path, labels, **kwargs))
