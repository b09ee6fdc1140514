"""The plan of a prediction: which block cores of which level, and which to skip."""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import InferConfig, InferError
from .tiles import region_blocks, roi_mask


def plan_blocks(
    slide: Any, config: InferConfig
) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
    """Level shape and block cores (row-major) of a prediction over ``slide``.

    Parameters
    ----------
    slide : Slide
    config : InferConfig
        ``level``, ``block``, ``region`` and ``roi`` decide the blocks.

    Returns
    -------
    tuple
        ``(H, W)`` of the level and the list of ``(y0, x0, y1, x1)`` cores.

    Raises
    ------
    InferError
        A level the slide lacks, or a region/ROI outside the level.
    """
    slide.check_level(config.level, error=InferError)
    H, W = slide.levels[config.level].shape[:2]
    ry0, rx0, ry1, rx1 = 0, 0, H, W
    if config.region is not None:
        a, b, c, d = (int(v) for v in config.region)
        ry0, rx0, ry1, rx1 = max(0, a), max(0, b), min(H, c), min(W, d)
    if config.roi:
        pts = np.asarray(config.roi, np.float64)
        ry0 = max(ry0, int(np.floor(pts[:, 0].min())))
        rx0 = max(rx0, int(np.floor(pts[:, 1].min())))
        ry1 = min(ry1, int(np.ceil(pts[:, 0].max())) + 1)
        rx1 = min(rx1, int(np.ceil(pts[:, 1].max())) + 1)
    if ry1 <= ry0 or rx1 <= rx0:
        raise InferError(
            f"{slide.path}: the region {config.region or config.roi} lies outside the slide "
            f"level {config.level} ({H} x {W} px)"
        )
    return (H, W), region_blocks((ry0, rx0, ry1, rx1), config.block_px)


def skip_blocks(slide: Any, config: InferConfig, blocks: list, done: np.ndarray) -> int:
    """Mark (2) in ``done`` the blocks below ``min_tissue`` or outside the ROI.

    Parameters
    ----------
    slide : Slide
    config : InferConfig
        ``min_tissue``, ``roi`` and ``level``.
    blocks : list of tuple of int
        The plan's cores.
    done : numpy.ndarray
        The per-block marks, changed in place.

    Returns
    -------
    int
        How many blocks were marked.
    """
    skipped = 0
    if config.min_tissue > 0:
        # Background blocks: the tissue mask is computed once on a low level; a block
        # whose tissue fraction is below min_tissue is left as background (label 0).
        from ..patching import slide_tissue_mask

        tmask, (f0y, f0x) = slide_tissue_mask(slide)
        fy, fx = slide.level_factors(config.level)
        for i, (y0, x0, y1, x1) in enumerate(blocks):
            ty0, tx0 = int(y0 * fy / f0y), int(x0 * fx / f0x)
            ty1 = max(ty0 + 1, int(np.ceil(y1 * fy / f0y)))
            tx1 = max(tx0 + 1, int(np.ceil(x1 * fx / f0x)))
            if not done[i] and tmask[ty0:ty1, tx0:tx1].mean() < config.min_tissue:
                done[i] = 2
                skipped += 1
    if config.roi:
        for i, core in enumerate(blocks):
            if not done[i] and not roi_mask(config.roi, core).any():
                done[i] = 2
                skipped += 1
    return skipped
