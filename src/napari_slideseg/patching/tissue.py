"""Tissue detection on a low-resolution level: Otsu on HSV saturation."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np

from ..io.slide import Slide
from .config import BLACK_LEVEL


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of 8-bit values (NumPy only)."""
    hist = np.bincount(values.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    levels = np.arange(256)
    w0 = np.cumsum(hist)
    w1 = total - w0
    m0 = np.cumsum(hist * levels)
    mu0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mu1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(np.argmax(between))


def tissue_mask(rgb: np.ndarray, min_saturation: int = 20) -> np.ndarray:
    """Boolean tissue mask of a low-resolution RGB image.

    Otsu's threshold on HSV saturation (stained tissue is saturated, glass is
    not), never below ``min_saturation`` so an empty slide is not split in
    two, and very dark pixels (value < 30: pen, black scanner borders) are
    excluded.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb < otsu_threshold(rgb)
    rgb = rgb[..., :3].astype(np.int16)
    mx = rgb.max(-1)
    mn = rgb.min(-1)
    sat = np.where(mx > 0, (mx - mn) * 255 // np.maximum(mx, 1), 0).astype(np.uint8)
    thr = max(otsu_threshold(sat), min_saturation)
    return (sat > thr) & (mx >= BLACK_LEVEL)


def _tissue_level(slide: Slide, wanted: int | None) -> int:
    if wanted is not None:
        return wanted
    for i in range(slide.n_levels - 1, -1, -1):
        if max(slide.levels[i].shape[:2]) >= 512:
            return i
    return 0


def slide_tissue_mask(
    slide: Slide, level: int | None = None, max_size: int = 1024
) -> tuple[np.ndarray, tuple[float, float]]:
    """Tissue mask of a slide, computed once on a low level.

    The level is the smallest one at least 512 px on its longest side (or
    ``level``); if that is still larger than ``max_size``, it is box-averaged
    down block by block first, so a single-level slide is never read whole
    at full resolution into one array.

    Returns
    -------
    tuple
        ``(mask, (fy, fx))``: the boolean mask and the level-0 pixels per
        mask pixel along y and x.
    """
    lvl = _tissue_level(slide, level)
    arr = slide.levels[lvl]
    h, w = arr.shape[:2]
    f = max(1, math.ceil(max(h, w) / max_size))
    if f > 1:
        arr = arr[: h - h % f, : w - w % f]
        axes = {0: f, 1: f}
        arr = da.coarsen(np.mean, arr.astype(np.float32), axes, trim_excess=True).astype(np.uint8)
    low = np.asarray(arr.compute(scheduler="threads"))
    h0, w0 = slide.levels[0].shape[:2]
    return tissue_mask(low), (h0 / low.shape[0], w0 / low.shape[1])
