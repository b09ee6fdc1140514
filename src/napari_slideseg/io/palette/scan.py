"""Distinct colours of a mask and their pixel counts, NumPy at once or dask chunk by chunk.

Dask masks are scanned a few chunks at a time (in parallel), so only those
chunks are in memory at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .common import MaskError, is_dask, where
from .keys import pack, unpack


def unique_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of ``keys`` and how often each occurs.

    Parameters
    ----------
    keys : numpy.ndarray
        Any integer array (flattened).

    Returns
    -------
    values, counts
        Ascending distinct values and their ``int64`` counts.
    """
    u, c = np.unique(np.asarray(keys).ravel(), return_counts=True)
    return u, c.astype(np.int64)


def _merge_counts(
    parts: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    keys = [p[0] for p in parts if len(p[0])]
    if not keys:
        return np.zeros(0, np.uint32), np.zeros(0, np.int64)
    allk = np.concatenate(keys)
    allc = np.concatenate([p[1] for p in parts if len(p[0])])
    u, inv = np.unique(allk, return_inverse=True)
    counts = np.zeros(len(u), np.int64)
    np.add.at(counts, inv.ravel(), allc)
    return u, counts


def blockwise_counts(
    arr: Any,
    func: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    stop: Callable[[int], bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``func`` (block -> keys, counts) to each block of a dask array and merge.

    Blocks are computed a few at a time (in parallel), so only those blocks are
    in memory at once; ``stop(n_keys)`` ends the scan early.

    Parameters
    ----------
    arr : dask.array.Array
        The array to scan.
    func : callable
        NumPy block -> ``(keys, counts)``, like :func:`unique_counts`.
    stop : callable, optional
        Called with the number of distinct keys found so far; True ends the scan.

    Returns
    -------
    keys, counts
        Ascending distinct keys over the blocks scanned and their summed counts.
    """
    import dask

    tasks = [dask.delayed(func)(b) for b in arr.to_delayed().ravel()]
    step = max(4, 2 * (os.cpu_count() or 1))
    acc = (np.zeros(0, np.uint32), np.zeros(0, np.int64))
    for i in range(0, len(tasks), step):
        acc = _merge_counts([acc, *dask.compute(*tasks[i : i + step])])
        if stop is not None and stop(len(acc[0])):
            break
    return acc


def as_uint8(block: np.ndarray, source: str | os.PathLike | None) -> np.ndarray:
    """The values of a colour mask block as ``uint8``, refusing what does not fit.

    Parameters
    ----------
    block : numpy.ndarray
        Integer colour values.
    source : str or os.PathLike or None
        File name for error messages.

    Returns
    -------
    numpy.ndarray
        ``block`` itself when it is ``uint8``, else a ``uint8`` copy.

    Raises
    ------
    MaskError
        If the values are not integers or lie outside 0-255.
    """
    if block.dtype == np.uint8:
        return block
    if block.dtype == bool or not np.issubdtype(block.dtype, np.integer):
        raise MaskError(f"{where(source)}a colour mask holds 8-bit integers, not {block.dtype}")
    if block.size and (block.min() < 0 or block.max() > 255):
        raise MaskError(
            f"{where(source)}colour mask values must be 0-255 (8-bit); this {block.dtype} mask "
            f"holds {int(block.min())}..{int(block.max())}: convert it to 8-bit first"
        )
    return block.astype(np.uint8)


def opaque_rgb(block: np.ndarray, source: str | os.PathLike | None) -> np.ndarray:
    """``(..., 3)`` uint8 colours of an RGB or opaque RGBA block.

    Parameters
    ----------
    block : numpy.ndarray
        ``(..., 3)`` or ``(..., 4)`` colours.
    source : str or os.PathLike or None
        File name for error messages.

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` uint8 colours.

    Raises
    ------
    MaskError
        If a value does not fit 8 bits or a pixel is not fully opaque.
    """
    block = as_uint8(np.asarray(block), source)
    if block.shape[-1] == 4:
        clear = int(np.count_nonzero(block[..., 3] != 255))
        if clear:
            raise MaskError(
                f"{where(source)}RGBA mask has {clear} pixel(s) that are not fully opaque "
                "(alpha < 255); save the mask as RGB"
            )
        block = block[..., :3]
    return block


def unique_colors(
    rgb: Any, *, limit: int | None = None, source: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct colours of a colour mask and their pixel counts.

    Parameters
    ----------
    rgb
        ``(H, W, 3)`` or opaque ``(H, W, 4)`` mask, or a 2D grey mask (its
        values ``v`` are reported as ``(v, v, v)``); NumPy or dask (scanned
        chunk by chunk, a few chunks at a time).
    limit
        For dask input, stop scanning once more than ``limit`` colours were
        found (the counts are then partial).
    source
        File name for error messages.

    Returns
    -------
    colors, counts
        ``(k, 3)`` uint8 colours in ascending key order and ``(k,)`` int64 counts.

    Raises
    ------
    MaskError
        If the mask is not 2D or ``(H, W, 3|4)``, a value does not fit 8 bits,
        or a pixel is not fully opaque.
    """
    grey = rgb.ndim == 2
    if not grey and (rgb.ndim != 3 or rgb.shape[-1] not in (3, 4)):
        raise MaskError(
            f"{where(source)}expected an (H, W, 3) colour mask, got shape {tuple(rgb.shape)}"
        )

    def block_keys(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = np.asarray(b)
        if grey:
            g = as_uint8(b, source).astype(np.uint32)
            return unique_counts(g * 0x010101)
        return unique_counts(pack(opaque_rgb(b, source)))

    if is_dask(rgb):
        if not grey:
            rgb = rgb.rechunk({2: -1})
        stop = (lambda k: k > limit) if limit is not None else None
        keys, counts = blockwise_counts(rgb, block_keys, stop)
    else:
        keys, counts = block_keys(np.asarray(rgb))
    return unpack(keys).reshape(-1, 3), counts
