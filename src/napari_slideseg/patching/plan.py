"""The plan: which grid windows to take, from the region and tissue filters.

Runs before any full-resolution pixel is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io.slide import Slide
from .config import PatchConfig, PatchError
from .grid import patch_grid
from .tissue import slide_tissue_mask


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Which points lie inside ``polygon`` (:func:`skimage.measure.points_in_poly`).

    Points on an edge or a vertex count as inside, as in the package's
    other polygon tests (``skimage.draw.polygon`` for inference ROIs,
    ``points_in_poly`` for nucleus centroids).

    Parameters
    ----------
    points : numpy.ndarray
        ``(n, 2)`` points, ``(y, x)``.
    polygon : numpy.ndarray
        ``(m, 2)`` vertices, ``(y, x)``, in either orientation; the first may
        be repeated at the end.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` boolean.
    """
    from skimage.measure import points_in_poly

    pts = np.asarray(points, float).reshape(-1, 2)
    poly = np.asarray(polygon, float).reshape(-1, 2)
    return points_in_poly(pts, poly)


@dataclass
class PatchPlan:
    """Grid positions that survived the cheap filters, and the counts so far."""

    level: int
    positions: np.ndarray  # (n, 2) y, x in (zoomed) level coordinates
    factor: tuple[float, float]  # (zoomed) level -> level 0
    summary: dict[str, int] = field(default_factory=dict)


def patch_resolution(slide: Slide, level: int, zoom: float = 1.0) -> float | None:
    """µm/px of patches cut at ``level`` and ``zoom`` (slide mpp x downsample / zoom), if known.

    Parameters
    ----------
    slide : Slide
        The slide.
    level : int
        The level cut.
    zoom : float
        The resampling factor.

    Returns
    -------
    float or None
        Rounded to 6 decimals; ``None`` when the slide states no resolution.
    """
    lm = slide.level_mpp(level)
    return None if lm is None else round(float(lm[0]) / float(zoom), 6)


def choose_level(slide: Slide, level: int = 0, mpp: float | None = None) -> int:
    """The level for ``mpp`` when given, else ``level`` (checked).

    Parameters
    ----------
    slide : Slide
        The slide.
    level : int
        The level asked for.
    mpp : float or None
        A target resolution; wins over ``level``.

    Returns
    -------
    int
        The level to cut.

    Raises
    ------
    PatchError
        ``level`` is not a level of the slide.
    """
    if mpp is not None:
        return slide.level_for_mpp(mpp)
    return slide.check_level(level, error=PatchError)


def _region_window(
    slide: Slide,
    region: tuple[int, int, int, int],
    factor: tuple[float, float],
    hw: tuple[int, int],
) -> tuple[tuple[int, int], tuple[int, int]]:
    """``(origin, extent)`` in (zoomed) level pixels of a level-0 ``region`` box."""
    (fy, fx), (h, w) = factor, hw
    y0, x0, y1, x1 = region
    if y1 <= y0 or x1 <= x0:
        raise PatchError(
            f"region {tuple(region)} is empty: it is (y0, x0, y1, x1) with y1 > y0 and x1 > x0"
        )
    ly0, lx0 = max(0, int(y0 / fy)), max(0, int(x0 / fx))
    ly1, lx1 = min(h, math.ceil(y1 / fy)), min(w, math.ceil(x1 / fx))
    if ly1 <= ly0 or lx1 <= lx0:
        raise PatchError(f"{slide.path}: region {region} lies outside the slide")
    return (ly0, lx0), (ly1 - ly0, lx1 - lx0)


def _in_polygons(
    positions: np.ndarray, size: int, factor: tuple[float, float], polygons: Any
) -> np.ndarray:
    """Which windows have their centre (in level-0 pixels) inside one of ``polygons``."""
    centres = (positions + size / 2) * np.array(factor)
    keep = np.zeros(len(positions), bool)
    for poly in polygons:
        keep |= points_in_polygon(centres, np.asarray(poly))
    return keep


def _tissue_fractions(
    slide: Slide, positions: np.ndarray, config: PatchConfig, factor: tuple[float, float]
) -> np.ndarray:
    """Tissue fraction of each window, from the slide's low-resolution tissue mask."""
    tmask, (f0y, f0x) = slide_tissue_mask(slide, config.tissue_level)
    ty, tx = f0y / factor[0], f0x / factor[1]  # level pixels per tissue pixel
    s = config.size
    return np.array(
        [
            tmask[
                int(y / ty) : max(int(y / ty) + 1, math.ceil((y + s) / ty)),
                int(x / tx) : max(int(x / tx) + 1, math.ceil((x + s) / tx)),
            ].mean()
            if tmask.size
            else 0.0
            for y, x in positions
        ]
    )


def plan_patches(slide: Slide, config: PatchConfig) -> PatchPlan:
    """Grid positions after the region and tissue filters (reads only a low level).

    Parameters
    ----------
    slide : Slide
        The slide.
    config : PatchConfig
        The patch settings (level or mpp, zoom, grid, region, polygons,
        ``min_tissue``).

    Returns
    -------
    PatchPlan
        The kept positions and the counts ``grid``, ``outside_region``
        (with polygons) and ``low_tissue`` (with ``min_tissue``).

    Raises
    ------
    PatchError
        The level does not exist, the region is empty or outside the slide,
        or no window fits.
    """
    level = choose_level(slide, config.level, config.mpp)
    z = config.zoom
    fy, fx = (f / z for f in slide.level_factors(level))
    h, w = (max(1, round(n * z)) for n in slide.levels[level].shape[:2])
    origin = (0, 0)
    extent = (h, w)
    summary: dict[str, int] = {}
    if config.region is not None:
        origin, extent = _region_window(slide, config.region, (fy, fx), (h, w))
    positions = patch_grid(extent, config.size, config.stride, config.grid, origin)
    summary["grid"] = len(positions)
    if not len(positions):
        where = f"level {level}" + ("" if z == 1 else f" at zoom {z:g}")
        raise PatchError(
            f"{slide.path}: no {config.size} x {config.size} patch fits the "
            f"{extent[1]} x {extent[0]} px {'region' if config.region else 'image'} "
            f"({where}) with grid '{config.grid}': use grid 'pad' (--grid pad) to pad "
            "the edges, or a smaller size"
        )
    if config.polygons:
        keep = _in_polygons(positions, config.size, (fy, fx), config.polygons)
        summary["outside_region"] = int((~keep).sum())
        positions = positions[keep]
    plan = PatchPlan(level, positions, (fy, fx), summary)
    if config.min_tissue > 0:
        keep = _tissue_fractions(slide, positions, config, (fy, fx)) >= config.min_tissue
        summary["low_tissue"] = int((~keep).sum())
        plan.positions = positions[keep]
    return plan
