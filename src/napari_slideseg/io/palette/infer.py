"""A class map from the distinct colours of a colour mask (:meth:`ClassMap.infer`).

Colours covering less than ``min_share`` of the pixels are not made classes
silently: they are dropped when the other colours fit a preset or lie within
the tolerance of them, else refused with their pixel counts.

This module does not import :mod:`.classmap` (which calls it): the class is
passed in.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .common import RGB, MaskError, is_dask, where
from .keys import check_tolerance, pack
from .scan import unique_colors


def infer_classmap(
    cls: Any,
    rgb: Any,
    max_classes: int,
    background: RGB | None,
    source: str | os.PathLike | None,
    *,
    match_presets: bool,
    min_share: float,
    tolerance: float | None,
) -> Any:
    """The body of :meth:`ClassMap.infer`; see there for the parameters.

    Parameters
    ----------
    cls : type[ClassMap]
        The class to build (its ``match_preset`` picks presets).
    rgb, max_classes, background, source, match_presets, min_share, tolerance
        As for :meth:`ClassMap.infer`.

    Returns
    -------
    ClassMap
        A preset, or the inferred map (``name="inferred"``).

    Raises
    ------
    MaskError
        If the mask is empty, has more than ``max_classes`` colours, or has
        colours under ``min_share`` that would become classes of their own.
    """
    colors, counts = unique_colors(rgb, limit=max_classes, source=source)
    if len(colors) > max_classes:
        many = f"{len(colors)}" if not is_dask(rgb) else f"at least {len(colors)}"
        raise MaskError(
            f"{where(source)}mask has {many} distinct colours (limit {max_classes}); "
            "it looks like a photo or a JPEG-compressed mask, not a colour mask: "
            "give a preset or class map, with a tolerance for JPEG noise"
        )
    if not len(colors):
        raise MaskError(f"{where(source)}mask is empty")
    if match_presets:
        preset = cls.match_preset(colors)
        if preset is not None:
            return preset
    counts = np.asarray(counts, np.int64)
    rare = counts < float(min_share) * int(counts.sum())
    if rare.any() and (~rare).any():
        preset = cls.match_preset(colors[~rare]) if match_presets else None
        if preset is not None:
            # The palette the mask's real colours fit: mapping the mask with it lists
            # the stray colours and their counts (or the tolerance absorbs them).
            return preset
        colors, counts = _without_rare(
            colors, counts, rare, background, min_share, tolerance, source
        )
    names, cols = _ordered_classes(colors, counts, background)
    return cls(tuple(names), tuple(cols), 0, "inferred")


def _without_rare(
    colors: np.ndarray,
    counts: np.ndarray,
    rare: np.ndarray,
    background: RGB | None,
    min_share: float,
    tolerance: float | None,
    source: str | os.PathLike | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Drop rare colours within ``tolerance`` of a major one; refuse other rare colours.

    A rare background colour is kept as the background class.
    """
    major = colors[~rare]
    tol = check_tolerance(tolerance)
    if tol is not None:
        d2 = (colors[rare, None, :].astype(np.int64) - major[None].astype(np.int64)) ** 2
        near = d2.sum(-1).min(1) <= tol * tol
        rare_idx = np.flatnonzero(rare)
        keep = np.ones(len(colors), bool)
        keep[rare_idx[near]] = False
        colors, counts, rare = colors[keep], counts[keep], rare[keep]
    if rare.any():
        bg = tuple(int(v) for v in background) if background is not None else None
        rare &= np.array([tuple(int(v) for v in c) != bg for c in colors])
    if rare.any():
        raise MaskError(_rare_message(colors, counts, rare, min_share, source))
    return colors, counts


def _ordered_classes(
    colors: np.ndarray, counts: np.ndarray, background: RGB | None
) -> tuple[list[str], list[RGB]]:
    """Names and colours: the background first, the others by decreasing pixel count."""
    order = np.lexsort((pack(colors), -counts))
    cols = [tuple(int(v) for v in colors[i]) for i in order]
    bg = tuple(int(v) for v in background) if background is not None else None
    bg = bg if bg in cols else cols[0]
    cols.remove(bg)
    cols.insert(0, bg)
    names = ["background"] + [
        f"class_{i}_rgb{c[0]}_{c[1]}_{c[2]}" for i, c in enumerate(cols[1:], 1)
    ]
    return names, cols  # type: ignore[return-value]


def _rare_message(
    colors: np.ndarray,
    counts: np.ndarray,
    rare: np.ndarray,
    min_share: float,
    source: str | os.PathLike | None,
) -> str:
    """'N colour(s) cover less than x % each ...' with the rare colours and their counts."""
    idx = np.flatnonzero(rare)
    idx = idx[np.lexsort((pack(colors[idx]), -counts[idx]))]
    items = [f"{tuple(int(v) for v in colors[i])}: {int(counts[i])} px" for i in idx[:10]]
    more = f", and {len(idx) - 10} more" if len(idx) > 10 else ""
    return (
        f"{where(source)}{len(idx)} colour(s) cover less than {min_share:.1%} of the mask each "
        f"and would silently become classes of their own: {', '.join(items)}{more}; the other "
        f"{int((~rare).sum())} colour(s) cover {int(counts[~rare].sum())} px. Give the class map "
        "or preset (with a tolerance for JPEG noise), clean the mask, or pass min_share=0 "
        "(--min-class-share 0) to make every colour a class"
    )
