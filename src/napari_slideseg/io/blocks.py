"""Walking a NumPy or dask array in row bands or square blocks, as NumPy arrays.

Every streaming writer of the package (PNG, TIFF, GeoJSON, the NGFF label
pyramid) reads its labels through these two generators, so memory stays
bounded by a band or a block however large a dask-backed array is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dask.array as da
import numpy as np


def iter_bands(labels: Any, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(y0, band)`` row bands of a NumPy or dask array as NumPy arrays.

    Every band has ``rows`` rows but the last (tiled writers rely on it). A
    dask array is computed one row of chunks at a time (each chunk once,
    however small ``rows`` is), and its strips are cut and joined into
    bands of ``rows``: memory is one row of chunks plus one band.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        The array; bands are cut along its first axis.
    rows : int
        Rows per band.

    Yields
    ------
    tuple of (int, numpy.ndarray)
        The band's first row and the band.
    """
    if isinstance(labels, da.Array):
        yield from _dask_bands(labels, rows)
        return
    for y0 in range(0, labels.shape[0], rows):
        yield y0, np.asarray(labels[y0 : y0 + rows])


def _dask_bands(labels: da.Array, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`iter_bands` of a dask array: one row of chunks computed at a time."""
    y = y_out = 0
    pending: list[np.ndarray] = []
    have = 0
    for ch in labels.chunks[0]:
        strip = np.asarray(labels[y : y + ch].compute(scheduler="threads"))
        y += ch
        pending.append(strip)
        have += ch
        while have >= rows:
            buf = pending[0] if len(pending) == 1 else np.concatenate(pending)
            yield y_out, buf[:rows]
            y_out += rows
            rest = buf[rows:]
            pending = [rest] if len(rest) else []
            have = len(rest)
    if have:
        yield y_out, pending[0] if len(pending) == 1 else np.concatenate(pending)


def iter_blocks(labels: Any, block: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(y0, x0, block)`` square blocks of a NumPy or dask array as NumPy arrays.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        An array of at least two dimensions; blocks are cut along the first two.
    block : int
        Block edge (the last blocks of a row or column are smaller).

    Yields
    ------
    tuple of (int, int, numpy.ndarray)
        The block's first row and column, and the block, row by row.
    """
    h, w = labels.shape[:2]
    for y0 in range(0, h, block):
        for x0 in range(0, w, block):
            b = labels[y0 : y0 + block, x0 : x0 + block]
            if isinstance(b, da.Array):
                b = b.compute(scheduler="threads")
            yield y0, x0, np.asarray(b)
