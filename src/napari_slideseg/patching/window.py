"""Reading windows of images and masks, padded past the edges and resampled.

The same functions cut images and masks, which is what keeps a mask patch
aligned with its image patch pixel for pixel.
"""

from __future__ import annotations

import math
from typing import Any

import dask.array as da
import numpy as np


def read_window(
    arr: Any, y: int, x: int, size: int, pad_mode: str = "reflect", pad_value: int = 0
) -> np.ndarray:
    """Read a ``size`` x ``size`` window at ``(y, x)`` of a 2D/3D array, padding past the edges.

    The same function cuts images and masks, which is what keeps them aligned.

    Parameters
    ----------
    arr : array
        numpy or dask, ``(h, w)`` or ``(h, w, c)``.
    y, x : int
        The window's top-left corner (may lie outside the array).
    size : int
        The window edge.
    pad_mode : str
        ``"reflect"`` or ``"constant"``; see :func:`read_window_rect`.
    pad_value : int
        The fill of ``constant`` padding.

    Returns
    -------
    numpy.ndarray
        ``(size, size[, c])``, the dtype of ``arr``.
    """
    return read_window_rect(arr, y, x, size, size, pad_mode, pad_value)


def read_patch_window(
    arr: Any,
    pos: np.ndarray,
    size: int,
    pad_mode: str,
    pad_value: int,
    zoom: float = 1.0,
    labels: bool = False,
) -> tuple:
    """The window covering ``size`` patches at ``pos`` (n x 2, y x in zoomed level pixels).

    Returns ``((y0, x0), pixels)``: the window's origin and its pixels, read at
    ``zoom`` (labels by nearest neighbour). Extraction and
    :meth:`~napari_slideseg.dataset.PatchDataset.from_slide` both cut patches
    through it, so they see the same pixels.

    Parameters
    ----------
    arr : array
        The level (numpy or dask).
    pos : numpy.ndarray
        ``(n, 2)`` patch corners.
    size : int
        The patch edge.
    pad_mode, pad_value
        See :func:`read_window_rect`.
    zoom : float
        Resampling factor; see :func:`read_window_zoomed`.
    labels : bool
        ``arr`` holds labels (nearest-neighbour resampling).

    Returns
    -------
    tuple
        ``((y0, x0), pixels)``.
    """
    y0, x0 = int(pos[:, 0].min()), int(pos[:, 1].min())
    y1, x1 = int(pos[:, 0].max()) + size, int(pos[:, 1].max()) + size
    if zoom == 1:
        return (y0, x0), read_window_rect(arr, y0, x0, y1 - y0, x1 - x0, pad_mode, pad_value)
    return (y0, x0), read_window_zoomed(
        arr, y0, x0, y1 - y0, x1 - x0, zoom, pad_mode, pad_value, labels
    )


def read_window_zoomed(
    arr: Any,
    y: int,
    x: int,
    height: int,
    width: int,
    zoom: float,
    pad_mode: str,
    pad_value: int,
    labels: bool = False,
) -> np.ndarray:
    """A ``height x width`` window at ``(y, x)`` of ``arr`` resampled by ``zoom``.

    Coordinates are in resampled pixels: output pixel ``i`` samples the source
    at ``(y + i + 0.5) / zoom - 0.5``. Label maps (``labels=True``) take the
    source pixel containing that point (no mixing of ids); images are
    resampled with OpenCV (area averaging when shrinking, bilinear when
    enlarging) on the same grid, exactly when ``zoom`` or ``1 / zoom`` is an
    integer and within half an output pixel otherwise. Reads only the source
    rectangle the window covers (plus one pixel).

    Parameters
    ----------
    arr : array
        The source level (numpy or dask).
    y, x : int
        The window's corner in resampled pixels.
    height, width : int
        The window's size in resampled pixels.
    zoom : float
        Resampled pixels per source pixel.
    pad_mode, pad_value
        Padding past the source's edges; see :func:`read_window_rect`.
    labels : bool
        Nearest-neighbour sampling (label maps) instead of OpenCV resizing.

    Returns
    -------
    numpy.ndarray
        ``(height, width[, c])``, the dtype of ``arr``.
    """
    ly0, lx0 = math.floor(y / zoom), math.floor(x / zoom)
    ly1, lx1 = math.ceil((y + height) / zoom) + 1, math.ceil((x + width) / zoom) + 1
    part = read_window_rect(arr, ly0, lx0, ly1 - ly0, lx1 - lx0, pad_mode, pad_value)
    if labels:
        ry = np.clip(np.floor((np.arange(height) + y + 0.5) / zoom).astype(np.int64) - ly0, 0, None)
        rx = np.clip(np.floor((np.arange(width) + x + 0.5) / zoom).astype(np.int64) - lx0, 0, None)
        return part[np.ix_(np.minimum(ry, part.shape[0] - 1), np.minimum(rx, part.shape[1] - 1))]
    import cv2

    interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    src = np.ascontiguousarray(part)
    if src.dtype not in (np.uint8, np.uint16, np.float32):
        src = src.astype(np.float32)
    big = cv2.resize(src, None, fx=zoom, fy=zoom, interpolation=interp).astype(part.dtype)
    if big.ndim < part.ndim:
        big = big[..., None]
    oy, ox = round(y - ly0 * zoom), round(x - lx0 * zoom)
    out = big[oy : oy + height, ox : ox + width]
    if out.shape[:2] != (height, width):
        pads = [(0, height - out.shape[0]), (0, width - out.shape[1])]
        out = np.pad(out, pads + [(0, 0)] * (out.ndim - 2), mode="edge")
    return out


def read_window_rect(
    arr: Any, y: int, x: int, height: int, width: int, pad_mode: str, pad_value: int
) -> np.ndarray:
    """Like :func:`read_window` for a rectangle; padding past the edges.

    ``reflect`` mirrors the image about its edge (numpy's ``reflect`` applied to
    the whole image, repeated for pads wider than the image), so a pixel past
    the edge has the same value whatever window it is read in: a patch, a
    block of patches or an inference block. ``constant`` pads with
    ``pad_value``.

    Parameters
    ----------
    arr : array
        numpy or dask, ``(h, w)`` or ``(h, w, c)``.
    y, x : int
        The rectangle's top-left corner (may lie outside the array).
    height, width : int
        Its size.
    pad_mode : str
        ``"reflect"`` or ``"constant"``.
    pad_value : int
        The fill of ``constant`` padding.

    Returns
    -------
    numpy.ndarray
        ``(height, width[, c])``, the dtype of ``arr``.
    """
    h, w = arr.shape[:2]
    y0, x0 = max(y, 0), max(x, 0)
    y1, x1 = min(y + height, h), min(x + width, w)
    inside = y0 == y and x0 == x and y1 == y + height and x1 == x + width
    if pad_mode == "reflect" and not inside:
        rows = _reflect_index(np.arange(y, y + height), h)
        cols = _reflect_index(np.arange(x, x + width), w)
        r0, c0 = int(rows.min()), int(cols.min())
        part = _materialise(arr[r0 : int(rows.max()) + 1, c0 : int(cols.max()) + 1])
        return part[np.ix_(rows - r0, cols - c0)]
    part = _materialise(arr[y0:y1, x0:x1])
    if inside:
        return part
    pads = [(y0 - y, y + height - y1), (x0 - x, x + width - x1)] + [(0, 0)] * (part.ndim - 2)
    if part.size == 0:  # the window lies wholly outside the image
        shape = (height, width, *arr.shape[2:])
        return np.full(shape, pad_value, dtype=arr.dtype)
    return np.pad(part, pads, mode="constant", constant_values=pad_value)


def _materialise(part: Any) -> np.ndarray:
    if isinstance(part, da.Array):
        part = part.compute(scheduler="threads")
    return np.asarray(part)


def _reflect_index(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices into ``range(n)`` of positions ``idx`` mirrored about the edges (no edge repeat)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    m = np.mod(idx, period)
    return np.where(m >= n, period - m, m)
