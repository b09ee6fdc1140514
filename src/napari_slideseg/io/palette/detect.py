"""Is this image a colour mask? A cheap sniff for the napari reader, which never raises."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .classmap import PRESETS, ClassMap
from .common import MIN_CLASS_SHARE
from .keys import color_lut, pack
from .maskfile import read_image

#: ``is_color_mask`` decodes images up to this many pixels.
SNIFF_MAX_PIXELS = 50_000_000

#: TIFF compressions that lose colours (JPEG, JPEG 2000, WebP, JPEG XL ...).
LOSSY_TIFF_COMPRESSIONS = (6, 7, 33003, 33004, 33005, 34712, 50001, 50002)


def is_color_mask(
    path: str | os.PathLike, max_colors: int = 16, max_pixels: int = SNIFF_MAX_PIXELS
) -> ClassMap | None:
    """The preset that ``path`` is a colour mask of, else ``None``; never raises.

    A cheap sniff for readers: images above ``max_pixels`` are not decoded,
    JPEGs and lossy TIFFs are never masks (their colours are not exact), and
    unreadable files give ``None``. An RGB image is a mask when all its
    colours (at least 2, at most ``max_colors``) belong to one preset, but
    for stray pixels of other colours under :data:`MIN_CLASS_SHARE` (reading
    such a mask then lists them as an error instead of it opening as a
    photo); a grey
    image when its values are exactly {0, 255} (``binary``).

    Parameters
    ----------
    path
        The image file.
    max_colors
        Most distinct colours a mask may have.
    max_pixels
        Larger images are not read (``None``).

    Returns
    -------
    ClassMap or None
        The smallest matching preset.
    """
    try:
        p = Path(path)
        if not p.is_file() or _not_a_mask_header(p, max_pixels):
            return None
        arr = _opaque_uint8(read_image(p))
        if arr is None:
            return None
        if arr.ndim == 2:
            values = set(np.flatnonzero(np.bincount(arr.ravel(), minlength=256)).tolist())
            return PRESETS["binary"] if values == {0, 255} else None
        if arr.ndim != 3 or arr.shape[-1] != 3:
            return None
        return _preset_of_colors(arr, max_colors)
    except Exception:
        return None


def _not_a_mask_header(p: Path, max_pixels: int) -> bool:
    """From the header only: a JPEG, a lossy TIFF, or more than ``max_pixels`` pixels."""
    from ..sniff import raster_header, sniff_kind

    kind = sniff_kind(str(p))
    if kind == "jpeg":
        return True
    if kind == "png":
        return raster_header(str(p)).pixels > max_pixels
    if kind == "tiff":
        import tifffile

        with tifffile.TiffFile(p) as tif:
            page = tif.pages.first
            lossy = int(page.compression) in LOSSY_TIFF_COMPRESSIONS
            return lossy or page.imagewidth * page.imagelength > max_pixels
    from PIL import Image

    with Image.open(p) as im:  # header only
        return im.format == "JPEG" or im.size[0] * im.size[1] > max_pixels


def _opaque_uint8(arr: np.ndarray) -> np.ndarray | None:
    """2D grey or ``(H, W, 3)`` 8-bit pixels, opaque alpha dropped; None when not that."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        return None
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        if (arr[..., -1] != 255).any():
            return None
        arr = arr[..., 0] if arr.shape[-1] == 2 else arr[..., :3]
    return arr


def _preset_of_colors(arr: np.ndarray, max_colors: int) -> ClassMap | None:
    """The smallest preset holding the colours of ``(H, W, 3)`` pixels, stray pixels aside."""
    palette = tuple(sorted({c for cm in PRESETS.values() for c in cm.colors}))
    lut = color_lut(palette, None)
    miss = np.iinfo(lut.dtype).max
    if (lut[pack(arr[::7, ::7])] == miss).mean() > MIN_CLASS_SHARE:  # photos fail here
        return None
    idx = lut[pack(arr)]
    stray = idx == miss
    if stray.any():
        # A few stray pixels in a preset's mask: claim it, so that reading it says
        # which colours are not in the palette instead of showing it as a photo.
        if stray.mean() >= MIN_CLASS_SHARE:
            return None
        idx = idx[~stray]
    present = np.flatnonzero(np.bincount(idx.ravel(), minlength=len(palette)))
    if not 2 <= len(present) <= max_colors:
        return None
    return ClassMap.match_preset([palette[i] for i in present])
