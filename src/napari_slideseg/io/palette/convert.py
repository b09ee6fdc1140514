"""Colour masks <-> class-index labels, NumPy at once or dask chunk by chunk."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .blocks import (
    grey_block,
    grey_values,
    index_block,
    is_grey_map,
    labels_block_to_rgb,
    rgb_block,
    unknown_message,
)
from .common import MaskError, is_dask, where
from .keys import check_tolerance, color_lut, grey_lut, pack
from .scan import blockwise_counts, opaque_rgb, unique_counts

if TYPE_CHECKING:
    from .classmap import ClassMap


def rgb_to_labels(
    rgb: Any,
    classmap: ClassMap,
    *,
    tolerance: float | None = None,
    source: str | os.PathLike | None = None,
) -> Any:
    """Class-index labels of a colour mask (NumPy at once, dask chunk by chunk).

    Parameters
    ----------
    rgb
        ``(H, W, 3)`` uint8 colour mask, or ``(H, W, 4)`` RGBA whose alpha is
        255 everywhere. A 2D grey mask is accepted too: with a class map of
        grey colours (like ``binary``) grey value ``v`` is the class of colour
        ``(v, v, v)``, so a 0/255 mask gives 0 -> 0 and 255 -> 1; with any
        other class map its values are class indices (range-checked).
    classmap
        The colours to map from.
    tolerance
        Explicit opt-in for JPEG-compressed masks: a colour that is not in
        the map takes the class of the nearest class colour (Euclidean RGB)
        if that lies within ``tolerance``; farther colours are unknown.
    source
        File name for error messages.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        ``(H, W)`` labels in ``classmap.label_dtype``.

    Raises
    ------
    MaskError
        Listing each unknown colour with its pixel count (top 10 by count,
        and the total). For dask input this happens at compute time and
        counts one chunk; :func:`check_colors` scans a whole mask first.
    """
    tol = check_tolerance(tolerance)
    ndim = rgb.ndim
    if ndim == 3 and rgb.shape[-1] == 1:
        rgb = rgb[..., 0]
        ndim = 2
    dask_in = is_dask(rgb)
    if ndim == 2:
        if is_grey_map(classmap):
            func, args = grey_block, (classmap, tol, source)
        else:
            if dask_in:
                return rgb.map_blocks(index_block, classmap, source, dtype=classmap.label_dtype)
            return index_block(rgb, classmap, source)
        if dask_in:
            return rgb.map_blocks(func, *args, dtype=classmap.label_dtype)
        return func(np.asarray(rgb), *args)
    if ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise MaskError(
            f"{where(source)}expected an (H, W, 3) colour mask, got shape {tuple(rgb.shape)}"
        )
    if dask_in:
        return rgb.rechunk({2: -1}).map_blocks(
            rgb_block, classmap, tol, source, drop_axis=2, dtype=classmap.label_dtype
        )
    return rgb_block(np.asarray(rgb), classmap, tol, source)


def check_colors(
    rgb: Any,
    classmap: ClassMap,
    source: str | os.PathLike | None = None,
    *,
    tolerance: float | None = None,
) -> None:
    """Scan a colour mask chunk by chunk and report every colour not in ``classmap``.

    Parameters
    ----------
    rgb
        As for :func:`rgb_to_labels` (NumPy or dask; dask is scanned a few
        chunks at a time, never materialised whole).
    classmap
        The colours that are allowed.
    source
        File name for error messages.
    tolerance
        As for :func:`rgb_to_labels`.

    Raises
    ------
    MaskError
        Listing the unknown colours of the whole mask with their pixel counts.
    """
    tol = check_tolerance(tolerance)
    if rgb.ndim == 3 and rgb.shape[-1] == 1:
        rgb = rgb[..., 0]
    grey = rgb.ndim == 2
    if grey and not is_grey_map(classmap):
        if is_dask(rgb):
            lo, hi = (int(v) for v in _dask_minmax(rgb))
            bad = [v for v in (lo, hi) if not 0 <= v < classmap.n_classes]
            if bad:
                raise MaskError(
                    f"{where(source)}label values {bad} have no class in the class map "
                    f"({classmap.n_classes} classes)"
                )
            return
        index_block(rgb, classmap, source)
        return
    if not grey and (rgb.ndim != 3 or rgb.shape[-1] not in (3, 4)):
        raise MaskError(
            f"{where(source)}expected an (H, W, 3) colour mask, got shape {tuple(rgb.shape)}"
        )

    def unknown(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = np.asarray(b)
        if grey:
            g = grey_values(b, source)
            lut = grey_lut(classmap.colors, tol)
            miss = np.iinfo(lut.dtype).max
            inside = (g >= 0) & (g <= 255)
            out = np.full(g.shape, miss, lut.dtype)
            out[inside] = lut[g[inside].astype(np.intp)]
            return unique_counts(g[out == miss])
        keys = pack(opaque_rgb(b, source))
        lut = color_lut(classmap.colors, tol)
        return unique_counts(keys[lut[keys] == np.iinfo(lut.dtype).max])

    if is_dask(rgb):
        keys, counts = blockwise_counts(rgb if grey else rgb.rechunk({2: -1}), unknown)
    else:
        keys, counts = unknown(np.asarray(rgb))
    if len(keys):
        raise MaskError(unknown_message(keys, counts, classmap, source, grey=grey, tolerance=tol))


def _dask_minmax(arr: Any) -> tuple[int, int]:
    import dask

    lo, hi = dask.compute(arr.min(), arr.max())
    return int(lo), int(hi)


def labels_to_rgb(labels: Any, classmap: ClassMap) -> Any:
    """``(H, W, 3)`` uint8 colour mask of class-index labels.

    Parameters
    ----------
    labels
        Integer (or boolean) labels, NumPy or dask (coloured chunk by chunk).
    classmap
        The colours of the classes.

    Returns
    -------
    numpy.ndarray or dask.array.Array
        ``classmap.lut()[labels]``.

    Raises
    ------
    MaskError
        If a label value has no class (the message lists the values); for
        dask input at compute time.
    """
    if is_dask(labels):
        return labels.map_blocks(
            labels_block_to_rgb,
            classmap,
            new_axis=labels.ndim,
            chunks=(*labels.chunks, (3,)),
            dtype=np.uint8,
        )
    return labels_block_to_rgb(np.asarray(labels), classmap)
