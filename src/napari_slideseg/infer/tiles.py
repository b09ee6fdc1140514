"""Block and tile grids and the blending window (pure NumPy).

Guarantees:

* :func:`tile_starts` covers ``[0, length)`` with tiles of ``tile`` pixels
  spaced at most ``tile - overlap`` apart; the last tile ends exactly at
  ``length`` (when ``length >= tile``), so no tile hangs over the edge.
* :func:`blend_window` is strictly positive (a floor of ``1e-3``), so every
  covered pixel gets a finite weighted mean, and falls smoothly towards the
  tile edge, so tile borders do not show as seams.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length`` pixels with at least ``overlap`` overlap."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    n = math.ceil((length - tile) / step) + 1
    starts = [min(i * step, length - tile) for i in range(n)]
    return sorted(set(starts))


def blend_window(size: int, kind: str = "gaussian", sigma_scale: float = 0.125) -> np.ndarray:
    """A ``(size, size)`` float32 weight map for blending overlapping tiles.

    ``gaussian``: exp(-d^2 / 2 sigma^2) per axis with ``sigma = sigma_scale * size``
    (MONAI's and nnU-Net's choice); ``cosine``: a Hann window; ``flat``: ones.
    """
    if kind == "flat":
        return np.ones((size, size), np.float32)
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    if kind == "gaussian":
        sigma = max(sigma_scale * size, 1e-6)
        w1 = np.exp(-(x**2) / (2 * sigma**2))
    elif kind == "cosine":
        w1 = 0.5 * (1 + np.cos(np.pi * x / (size / 2 + 1)))
    else:
        raise ValueError(f"window must be gaussian, cosine or flat, not {kind!r}")
    w = np.outer(w1, w1)
    w = w / w.max()
    return np.maximum(w, 1e-3).astype(np.float32)


def block_grid(
    shape: tuple[int, int], block: int, origin: tuple[int, int] = (0, 0)
) -> list[tuple[int, int, int, int]]:
    """Non-overlapping block cores ``(y0, x0, y1, x1)`` tiling ``shape`` (row-major order)."""
    h, w = shape
    oy, ox = origin
    return [
        (oy + y, ox + x, oy + min(y + block, h), ox + min(x + block, w))
        for y in range(0, h, block)
        for x in range(0, w, block)
    ]


def region_blocks(region: tuple[int, int, int, int], block: int) -> list[tuple[int, int, int, int]]:
    """Block cores covering ``region`` on the slide-wide grid of ``block`` pixels.

    Cores are the grid cells ``[k * block, (k + 1) * block)`` clipped to the
    region, so every core lies inside one output chunk of ``block`` pixels:
    two blocks never write to the same chunk, which is what makes parallel
    writers (threads or dask workers) safe without locks.
    """
    y0, x0, y1, x1 = region
    return [
        (max(y0, by), max(x0, bx), min(y1, by + block), min(x1, bx + block))
        for by in range(y0 // block * block, y1, block)
        for bx in range(x0 // block * block, x1, block)
    ]


def pyramid_factors(shape: tuple[int, int], block: int, smallest: int = 512) -> list[int]:
    """Down-sampling factors (2, 4, ...) for a label pyramid aligned to the block grid.

    A factor must divide ``block`` (so each block owns whole chunks at every
    level) and leave the level larger than ``smallest`` pixels on its long side.
    """
    out = []
    f = 2
    while block % f == 0 and block // f >= 32 and max(shape) // f >= smallest:
        out.append(f)
        f *= 2
    return out


def roi_mask(roi: Sequence[Sequence[float]], core: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean mask of the polygon ``roi`` over the block ``core``.

    Parameters
    ----------
    roi : sequence of (y, x)
        Polygon vertices, level pixels.
    core : tuple of int
        ``(y0, x0, y1, x1)``.

    Returns
    -------
    numpy.ndarray
        ``(y1 - y0, x1 - x0)`` bool, True inside the polygon.
    """
    from skimage.draw import polygon as draw_polygon

    y0, x0, y1, x1 = core
    pts = np.asarray(roi, np.float64)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    rr, cc = draw_polygon(pts[:, 0] - y0, pts[:, 1] - x0, mask.shape)
    mask[rr, cc] = True
    return mask
