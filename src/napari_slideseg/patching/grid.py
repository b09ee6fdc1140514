"""Patch grid geometry: window corners along an axis, over an extent, in blocks.

The grid is computed once, in the coordinates of the chosen level, in one
of two modes:

``valid``
    Only windows that lie fully inside the image (or region):
    ``n = floor((L - size) / stride) + 1`` per axis, 0 if ``L < size``.
``pad``
    Windows cover the whole extent; the last ones hang over the edge and
    are padded: ``n = ceil(max(L - size, 0) / stride) + 1`` per axis.
"""

from __future__ import annotations

import math

import numpy as np

from .config import GRID_MODES, PatchError


def grid_starts(length: int, size: int, stride: int, grid: str = "valid") -> np.ndarray:
    """Window start positions along one axis (see the module docstring for counts).

    Parameters
    ----------
    length : int
        The axis length in pixels.
    size, stride : int
        Window edge and step.
    grid : str
        ``"valid"`` or ``"pad"``.

    Returns
    -------
    numpy.ndarray
        int64 starts ``0, stride, 2 * stride, ...``.

    Raises
    ------
    PatchError
        ``grid`` is not a grid mode.
    """
    if grid == "valid":
        if length < size:
            return np.zeros(0, np.int64)
        return np.arange(0, length - size + 1, stride, dtype=np.int64)
    if grid == "pad":
        if length <= 0:
            return np.zeros(0, np.int64)
        n = math.ceil(max(length - size, 0) / stride) + 1
        return np.arange(n, dtype=np.int64) * stride
    raise PatchError(f"grid must be one of {GRID_MODES}, not {grid!r}")


def patch_grid(
    shape: tuple[int, int],
    size: int,
    stride: int,
    grid: str = "valid",
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """``(n, 2)`` array of window ``(y, x)`` top-left corners over an extent of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        ``(height, width)`` of the extent.
    size, stride : int
        Window edge and step.
    grid : str
        ``"valid"`` or ``"pad"``.
    origin : tuple of int
        Added to every corner (a region's top-left).

    Returns
    -------
    numpy.ndarray
        int64 corners, row-major.
    """
    ys = grid_starts(shape[0], size, stride, grid) + origin[0]
    xs = grid_starts(shape[1], size, stride, grid) + origin[1]
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], 1)


def position_blocks(positions: np.ndarray, size: int, block: int) -> list[np.ndarray]:
    """Group positions into spatial blocks of about ``block`` pixels (row-major order).

    Parameters
    ----------
    positions : numpy.ndarray
        ``(n, 2)`` window corners ``(y, x)``.
    size : int
        The window edge (unused; blocks are keyed by corner).
    block : int
        The block edge in pixels.

    Returns
    -------
    list of numpy.ndarray
        One ``(k, 2)`` array of corners per block, blocks in row-major
        order and corners row-major within each.
    """
    if len(positions) == 0:
        return []
    key_y = positions[:, 0] // block
    key_x = positions[:, 1] // block
    order = np.lexsort((positions[:, 1], positions[:, 0], key_x, key_y))
    pos = positions[order]
    keys = np.stack([key_y[order], key_x[order]], 1)
    cuts = np.nonzero(np.any(np.diff(keys, axis=0) != 0, axis=1))[0] + 1
    return np.split(pos, cuts)
