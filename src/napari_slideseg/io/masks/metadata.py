"""What a mask file records about itself: its place on the slide, its class map.

PNG ``pHYs`` and the ``slideseg:placement`` / ``slideseg:classmap`` text
chunks; TIFF resolution tags, OME PhysicalSize or the slideseg JSON
description.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import SlideSegError
from ..palette import ClassMap
from ..placement import Placement

logger = logging.getLogger(__name__)


def file_placement(path: str | os.PathLike) -> Placement | None:
    """What a PNG or TIFF mask records about its resolution and place (None if nothing).

    PNG: the ``slideseg:placement`` text chunk, else ``pHYs`` (pixels per
    metre). TIFF: the slideseg JSON description, else OME PhysicalSize or
    the resolution tags.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG or TIFF file (anything else gives ``None``).

    Returns
    -------
    Placement or None
        What the file records; ``None`` if nothing, or it cannot be read.
    """
    from ..sniff import sniff_kind

    p = Path(path)
    kind = sniff_kind(str(p))
    try:
        if kind == "png":
            from ..export import PNG_PLACEMENT_KEY
            from ..placement import ppm_to_mpp

            raw, size = png_header_text(p, PNG_PLACEMENT_KEY)
            if raw:
                found = Placement.from_dict(json.loads(raw))
                if found is not None:
                    return found
            phys = _png_phys(p)
            mpp = ppm_to_mpp(*phys) if phys is not None else None
            return Placement.from_pixel_mpp(mpp, size) if mpp else None
        if kind == "tiff":
            import tifffile

            from ..slide import tiff_mpp

            with tifffile.TiffFile(p) as tif:
                page = tif.pages.first
                desc = page.description or ""
                if desc.startswith("{") and "slideseg" in desc:
                    found = Placement.from_dict(
                        json.loads(desc).get("slideseg", {}).get("placement")
                    )
                    if found is not None:
                        return found
                mpp, _ = tiff_mpp(tif, page)
                return Placement.from_pixel_mpp(mpp, page.shape[:2]) if mpp else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, json.JSONDecodeError):
        return None
    return None


def png_header_text(path: Path, key: str) -> tuple[str | None, tuple[int, int]]:
    """A PNG's ``tEXt`` value under ``key`` and its ``(height, width)``, from its header.

    Our writers put their text chunks before the pixels, so only the header
    is read (text after the pixels is not looked at).

    Parameters
    ----------
    path : Path
        A PNG file.
    key : str
        The text chunk's keyword.

    Returns
    -------
    tuple
        ``(text or None, (height, width))``.

    Raises
    ------
    OSError
        If the file cannot be opened as an image.
    """
    from PIL import Image

    with Image.open(path) as im:
        return im.info.get(key), (im.size[1], im.size[0])


def _png_phys(path: Path) -> tuple[int, int] | None:
    """``pHYs`` pixels per metre ``(x, y)`` of a PNG when its unit is the metre."""
    import struct

    with open(path, "rb") as fh:
        fh.read(8)
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return None
            n, tag = struct.unpack(">I4s", head)
            if tag == b"pHYs" and n == 9:
                px, py, unit = struct.unpack(">IIB", fh.read(9))
                return (px, py) if unit == 1 else None
            if tag in (b"IDAT", b"IEND"):
                return None
            fh.seek(n + 4, 1)


def with_placement(info: dict[str, Any], where: Placement | None) -> dict[str, Any]:
    """``info`` with ``"placement"`` and ``"mpp"`` set from ``where`` (unchanged for None).

    Parameters
    ----------
    info : dict
        A reader's info dict; updated in place.
    where : Placement or None
        Where the labels sit and their resolution.

    Returns
    -------
    dict
        ``info``.
    """
    if where is not None:
        info["placement"] = where.to_dict()
        info["mpp"] = list(where.pixel_mpp) if where.pixel_mpp else None
    return info


def png_classmap(path: str | os.PathLike) -> ClassMap | None:
    """The class map a slideseg PNG or TIFF writer recorded in the file, if any.

    PNG: the ``slideseg:classmap`` ``tEXt`` chunk; TIFF: the slideseg JSON
    ``ImageDescription``.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG or TIFF file.

    Returns
    -------
    ClassMap or None
        The recorded map; ``None`` when there is none or it is unusable.
    """
    from ..sniff import sniff_kind

    raw: Any = None
    try:
        if sniff_kind(str(path)) == "tiff":
            import tifffile

            with tifffile.TiffFile(path) as tif:
                desc = tif.pages.first.description or ""
            if desc.startswith("{") and "slideseg" in desc:
                raw = json.loads(desc).get("slideseg", {}).get("classmap")
        else:
            from PIL import Image

            from ..export import PNG_CLASSMAP_KEY

            with Image.open(path) as im:
                raw = im.info.get(PNG_CLASSMAP_KEY)
                if raw is None and im.format == "PNG":
                    raw = (getattr(im, "text", {}) or {}).get(PNG_CLASSMAP_KEY)
            raw = json.loads(raw) if raw else None
    except Exception as exc:
        logger.debug("%s: no class map read from the file (%s)", path, exc)
        return None
    if not raw:
        return None
    try:
        return ClassMap.from_dict(raw, source=str(path))
    except SlideSegError as exc:
        logger.debug("%s: the class map it records is ignored (%s)", path, exc)
        return None
