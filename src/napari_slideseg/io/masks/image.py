"""Colour and grey mask images (PNG, TIFF, ...); slide-sized ones are read lazily."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..palette import ClassMap, read_color_mask, rgb_to_labels, unique_colors
from .metadata import file_placement, png_classmap, with_placement


def read_mask_image(
    p: Path, cm: ClassMap | None, tolerance: float | None, min_share: float
) -> tuple[Any, ClassMap, dict[str, Any]]:
    """The labels of a mask image, as :func:`~napari_slideseg.io.masks.read_labels` returns them.

    Parameters
    ----------
    p : Path
        The image.
    cm : ClassMap or None
        The class map; else the one the file records, else presets or
        inference (:func:`~napari_slideseg.io.palette.read_color_mask`).
    tolerance : float or None
        Opt-in nearest-colour tolerance for JPEG-compressed masks.
    min_share : float
        Colours under this share are refused when the map is inferred.

    Returns
    -------
    tuple
        ``(labels, classmap, info)``, ``info["format"]`` ``"mask"``, with the
        placement the file records; images over :data:`BIG_MASK_PIXELS`
        come back as dask (``info["lazy"]``).

    Raises
    ------
    MaskError
        Naming the file: unreadable, transparent, unknown colours, ...
    """
    if cm is None:
        cm = png_classmap(p)
    where = file_placement(p)
    if _is_big_image(p):
        labels, found, info = _read_big_mask(p, cm, tolerance, min_share)
        return labels, found, with_placement(info, where)
    labels, found = read_color_mask(p, cm, tolerance=tolerance, min_share=min_share)
    return labels, found, with_placement({"format": "mask"}, where)


#: Masks above this many pixels are read lazily (through the slide reader's cache).
BIG_MASK_PIXELS = 4096 * 4096


def _is_big_image(p: Path) -> bool:
    from ..sniff import raster_header, sniff_kind

    kind = sniff_kind(str(p))
    try:
        if kind in ("png", "jpeg"):
            return raster_header(str(p)).pixels > BIG_MASK_PIXELS
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(p) as tif:
                s = tif.series[0]
                return int(np.prod(s.shape[:2])) > BIG_MASK_PIXELS and s.keyframe.is_tiled
    except (OSError, ValueError, IndexError):
        return False
    return False


def _read_big_mask(
    p: Path, cm: ClassMap | None, tolerance: float | None, min_share: float
) -> tuple[Any, ClassMap, dict[str, Any]]:
    """A slide-sized mask as lazy labels: decoded once into the tiled cache, mapped chunk-wise."""
    from ..slide import open_slide

    level0 = open_slide(p).levels[0]
    if level0.ndim == 2:
        colors, _ = unique_colors(da.stack([level0] * 3, axis=-1))
        if cm is None and {tuple(c) for c in colors.tolist()} <= {(0, 0, 0), (255, 255, 255)}:
            cm = ClassMap.preset("binary")
        if cm is None:
            return (
                level0,
                ClassMap.default(int(level0.max().compute()) + 1),
                {"format": "mask", "lazy": True},
            )
        return rgb_to_labels(level0, cm, source=str(p)), cm, {"format": "mask", "lazy": True}
    cm = cm or ClassMap.infer(level0, source=str(p), tolerance=tolerance, min_share=min_share)
    return (
        rgb_to_labels(level0, cm, tolerance=tolerance, source=str(p)),
        cm,
        {"format": "mask", "lazy": True},
    )
