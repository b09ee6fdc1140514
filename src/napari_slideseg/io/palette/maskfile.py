"""Mask files: decode a PNG/TIFF/other raster and read it as class labels.

Colour masks map through the class map's colours; grey masks are 0/255
binary masks, class indices, or (with a grey class map) grey colours.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .blocks import index_block, is_grey_map
from .classmap import PRESETS, ClassMap
from .common import MAX_CLASSES, MIN_CLASS_SHARE, MaskError
from .convert import rgb_to_labels
from .scan import as_uint8

logger = logging.getLogger(__name__)


def read_image(path: Path) -> np.ndarray:
    """Decode a PNG/TIFF/other raster fully (tifffile for TIFF, imagecodecs, then Pillow).

    Parameters
    ----------
    path : Path
        The image file.

    Returns
    -------
    numpy.ndarray
        The pixels: 2D grey, or colours on the last axis (planar TIFFs are
        moved there; Pillow's palette images are expanded to RGB(A)).

    Raises
    ------
    MaskError
        If the file is empty, a zarr store, or cannot be decoded.
    """
    from ..sniff import raster_header, sniff_kind

    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise MaskError(f"{path}: the file is empty (0 bytes)")
    kind = sniff_kind(str(path))
    if kind == "zarr":
        raise MaskError(f"{path}: is a zarr store, not an image")
    if kind == "tiff":
        import tifffile

        try:
            arr = np.asarray(tifffile.imread(path))
        except Exception as exc:
            raise MaskError(
                f"{path}: cannot be read as a TIFF ({type(exc).__name__}: {exc})"
            ) from exc
        while arr.ndim > 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3 and arr.shape[0] in (3, 4) and arr.shape[-1] not in (3, 4):
            arr = np.moveaxis(arr, 0, -1)  # planar RGB(A)
        return arr
    import imagecodecs

    try:
        return np.asarray(imagecodecs.imread(str(path)))
    except Exception as first:
        from PIL import Image

        from ..slide import pil_pixel_limit

        logger.debug(
            "%s: imagecodecs cannot decode it (%s: %s); trying Pillow",
            path,
            type(first).__name__,
            first,
        )
        try:
            pixels = raster_header(str(path)).pixels if kind in ("png", "jpeg") else 0
        except (OSError, ValueError):
            pixels = 0
        try:
            with pil_pixel_limit(pixels), Image.open(path) as opened:
                im: Image.Image = opened
                if im.mode in ("P", "PA"):
                    im = im.convert(
                        "RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB"
                    )
                elif im.mode == "1":
                    im = im.convert("L")
                return np.asarray(im)
        except Exception as exc:
            raise MaskError(
                f"{path}: cannot be read as an image ({type(first).__name__}: {first}; "
                f"Pillow: {exc})"
            ) from exc


def _channels(arr: np.ndarray, source: str) -> np.ndarray:
    """2D grey or ``(H, W, 3)`` colours; opaque alpha dropped, transparency refused."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):
        alpha = arr[..., -1]
        opaque = np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.integer) else 1
        clear = int(np.count_nonzero(alpha != opaque))
        if clear:
            raise MaskError(
                f"{source}: mask has {clear} pixel(s) that are not fully opaque "
                "(alpha channel); save it without transparency"
            )
        arr = arr[..., 0] if arr.shape[-1] == 2 else arr[..., :3]
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3):
        return arr
    raise MaskError(f"{source}: a mask must be 2D (grey) or RGB, got shape {arr.shape}")


def read_color_mask(
    path: str | os.PathLike,
    classmap: ClassMap | None = None,
    *,
    tolerance: float | None = None,
    min_share: float = MIN_CLASS_SHARE,
) -> tuple[np.ndarray, ClassMap]:
    """Read a colour mask or a grey mask (PNG, TIFF, ...) as class labels.

    Parameters
    ----------
    path
        The image. TIFF is read with tifffile, other formats with imagecodecs
        (Pillow as a fallback, its pixel limit raised for this file only).
    classmap
        The colours to map from. When omitted: the smallest preset holding
        all the mask's colours, else a map inferred from them
        (:meth:`ClassMap.infer`).
    tolerance
        Opt-in nearest-colour tolerance for JPEG-compressed masks.
    min_share
        When the map is inferred: colours under this share of the pixels are
        refused rather than made classes (:meth:`ClassMap.infer`); ``0``
        makes every colour a class.

    Returns
    -------
    labels, classmap
        ``(H, W)`` labels in ``classmap.label_dtype`` (uint8 up to 256 classes)
        and the class map used.

    Notes
    -----
    Grey masks (2D):

    * values in {0, 255} without a class map: the ``binary`` preset
      (0 -> background, 255 -> foreground), like GlaS masks;
    * other small integers ``0..n`` without a class map: returned as labels
      with :meth:`ClassMap.default` ``(n + 1)``;
    * with a class map of grey colours (like ``binary``): grey value ``v`` is
      the class of colour ``(v, v, v)``, unless the values are not all such
      colours but all below ``n_classes``, when they are class indices;
    * with any other class map: class indices.

    Raises
    ------
    MaskError
        Naming the file: unreadable, transparent, wrong shape, unknown colours
        (listed with pixel counts) or label values without a class.
    """
    p = Path(path)
    src = str(p)
    if not p.exists():
        raise MaskError(f"{src}: no such file")
    if p.is_dir():
        raise MaskError(f"{src}: is a directory, not a mask image")
    from ..sniff import special_file_kind

    special = special_file_kind(p)
    if special is not None:
        raise MaskError(f"{src}: is a {special}, not a regular file; it is not opened")
    arr = _channels(read_image(p), src)
    if arr.ndim == 3:
        arr = as_uint8(arr, src)
        cm = (
            classmap
            if classmap is not None
            else ClassMap.infer(arr, source=src, tolerance=tolerance, min_share=min_share)
        )
        return rgb_to_labels(arr, cm, tolerance=tolerance, source=src), cm
    return _grey_mask_labels(arr, classmap, tolerance, src)


def _grey_mask_labels(
    arr: np.ndarray, classmap: ClassMap | None, tolerance: float | None, src: str
) -> tuple[np.ndarray, ClassMap]:
    """Labels of a 2D grey mask (see :func:`read_color_mask`'s notes)."""
    if arr.dtype == bool:
        arr = arr.view(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise MaskError(f"{src}: a grey mask holds integers, not {arr.dtype}")
    if arr.dtype == np.uint8:
        values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))
    else:
        values = np.unique(arr)
    if classmap is None:
        if set(values.tolist()) <= {0, 255}:
            cm = PRESETS["binary"]
            return (arr == 255).astype(cm.label_dtype), cm
        if values[0] < 0:
            raise MaskError(f"{src}: grey mask has negative values ({int(values[0])})")
        top = int(values[-1])
        if top >= MAX_CLASSES:
            raise MaskError(
                f"{src}: grey mask has values up to {top}; a class-index mask holds at most "
                f"{MAX_CLASSES} classes"
            )
        cm = ClassMap.default(top + 1)
        return arr.astype(cm.label_dtype), cm
    if is_grey_map(classmap):
        greys = {c[0] for c in classmap.colors}
        as_index = (
            tolerance is None
            and not set(values.tolist()) <= greys
            and values[0] >= 0
            and values[-1] < classmap.n_classes
        )
        if not as_index:
            return rgb_to_labels(arr, classmap, tolerance=tolerance, source=src), classmap
    return index_block(arr, classmap, src), classmap
