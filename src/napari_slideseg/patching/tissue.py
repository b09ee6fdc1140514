"""Tissue detection on a low-resolution level: Otsu on HSV saturation."""

from __future__ import annotations

import logging
import math

import dask.array as da
import numpy as np

from ..io.slide import Slide
from .config import BLACK_LEVEL

log = logging.getLogger(__name__)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of 8-bit values (:func:`skimage.filters.threshold_otsu`).

    Values are taken as uint8 and counted into a 256-bin histogram; the
    threshold ``t`` splits them into ``<= t`` and ``> t``.

    Parameters
    ----------
    values : numpy.ndarray
        Any shape; cast to uint8.

    Returns
    -------
    float
        The threshold, an integer level; ``0.0`` when the values hold fewer
        than two distinct levels (nothing to split).
    """
    from skimage.filters import threshold_otsu

    hist = np.bincount(np.asarray(values).astype(np.uint8).ravel(), minlength=256)
    if np.count_nonzero(hist) < 2:
        return 0.0
    # the histogram, not the image: no RGB-shape warning, no constant-image shortcut
    return float(threshold_otsu(hist=(hist, np.arange(256))))


def tissue_mask(rgb: np.ndarray, min_saturation: int = 20) -> np.ndarray:
    """Boolean tissue mask of a low-resolution RGB image.

    Otsu's threshold on HSV saturation (stained tissue is saturated, glass is
    not), never below ``min_saturation`` so an empty slide is not split in
    two, and very dark pixels (value < 30: pen, black scanner borders) are
    excluded.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``(h, w, 3+)`` colour image, or ``(h, w)`` grey (tissue is then what
        is darker than Otsu's threshold).
    min_saturation : int
        The lowest saturation threshold (0-255).

    Returns
    -------
    numpy.ndarray
        ``(h, w)`` boolean, true on tissue.
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
    """``wanted``, else the smallest level at least 512 px on its longest side."""
    if wanted is not None:
        return wanted
    for i in range(slide.n_levels - 1, -1, -1):
        if max(slide.levels[i].shape[:2]) >= 512:
            return i
    log.debug("%s: no level is 512 px on its longest side; tissue mask on level 0", slide.path)
    return 0


def slide_tissue_mask(
    slide: Slide, level: int | None = None, max_size: int = 1024
) -> tuple[np.ndarray, tuple[float, float]]:
    """Tissue mask of a slide, computed once on a low level.

    The level is the smallest one at least 512 px on its longest side (or
    ``level``); if that is still larger than ``max_size``, it is box-averaged
    down block by block first, so a single-level slide is never read whole
    at full resolution into one array.

    Parameters
    ----------
    slide : Slide
        The slide.
    level : int or None
        The level to compute on; ``None``: see above.
    max_size : int
        The longest side of the mask, at most.

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
