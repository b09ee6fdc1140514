"""Microns per pixel from slide metadata: SVS, OME-TIFF, TIFF resolution tags, NGFF scales."""

from __future__ import annotations

import logging
import math
from typing import Any

logger = logging.getLogger(__name__)


def plausible_mpp(value: float | None) -> float | None:
    """Keep microns-per-pixel values a microscope could produce (0.01-100 µm).

    Parameters
    ----------
    value : float or None
        A pixel size in µm read from metadata.

    Returns
    -------
    float or None
        ``value``, or ``None`` when it is missing, not finite or implausible.
    """
    if value is None or not math.isfinite(value) or not 0.01 <= value <= 100:
        return None
    return float(value)


def tiff_mpp(tif: Any, page: Any) -> tuple[tuple[float, float] | None, str | None]:
    """Microns per pixel from SVS description, OME pixels, NDPI or resolution tags.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file (its SVS/OME metadata are tried first).
    page : tifffile.TiffPage
        The level-0 page (its description and resolution tags).

    Returns
    -------
    tuple
        ``((y, x), source)`` with ``source`` one of ``"svs:MPP"``,
        ``"ome:PhysicalSize"``, ``"tiff:resolution"``; ``(None, None)``
        when the file states no plausible pixel size.
    """
    found = _vendor_mpp(tif, page)
    if found[0] is not None:
        return found
    return _resolution_tag_mpp(page)


def _vendor_mpp(tif: Any, page: Any) -> tuple[tuple[float, float] | None, str | None]:
    """Microns per pixel from the SVS description or the OME-XML pixels, if they state it."""
    import tifffile

    try:
        if tif.is_svs:
            from tifffile.tifffile import svs_description_metadata

            meta = svs_description_metadata(page.description)
            v = plausible_mpp(float(meta["MPP"])) if "MPP" in meta else None
            if v:
                return (v, v), "svs:MPP"
        if tif.is_ome and tif.ome_metadata:
            ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
            image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
            px = image["Pixels"]
            to_um = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
            if "PhysicalSizeX" in px:
                fx = to_um.get(str(px.get("PhysicalSizeXUnit", "µm")))
                fy = to_um.get(str(px.get("PhysicalSizeYUnit", "µm")))
                x = plausible_mpp(float(px["PhysicalSizeX"]) * fx) if fx else None
                y = (
                    plausible_mpp(float(px.get("PhysicalSizeY", px["PhysicalSizeX"])) * fy)
                    if fy
                    else None
                )
                if x and y:
                    return (y, x), "ome:PhysicalSize"
    except (KeyError, ValueError, TypeError, IndexError) as err:
        logger.debug(
            "SVS/OME pixel size unreadable (%s: %s); trying the resolution tags",
            type(err).__name__,
            err,
        )
    return None, None


def _resolution_tag_mpp(page: Any) -> tuple[tuple[float, float] | None, str | None]:
    """Microns per pixel from a page's ResolutionUnit and X/YResolution tags."""
    tags = page.tags
    unit = tags.get("ResolutionUnit")
    xr, yr = tags.get("XResolution"), tags.get("YResolution")
    if unit is not None and xr is not None and yr is not None:
        per_um = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}.get(int(unit.value))
        try:
            rx = xr.value[0] / xr.value[1]
            ry = yr.value[0] / yr.value[1]
            if per_um and rx > 0 and ry > 0:
                x, y = plausible_mpp(per_um / rx), plausible_mpp(per_um / ry)
                if x and y:
                    return (y, x), "tiff:resolution"
        except (ZeroDivisionError, TypeError, IndexError):
            logger.debug("TIFF resolution tags unusable: %r, %r", xr.value, yr.value)
    return None, None


def ngff_mpp(ms0: dict, names: list[str]) -> tuple[float, float] | None:
    """Microns per pixel of an NGFF multiscale's first dataset (its scale transform).

    Parameters
    ----------
    ms0 : dict
        The first entry of the ``multiscales`` attribute.
    names : list of str
        Its axis names, in order.

    Returns
    -------
    tuple of float or None
        ``(y, x)`` in µm, or ``None`` when the units are not lengths or the
        metadata do not state a plausible scale.
    """
    try:
        axes = ms0["axes"]
        units = {a["name"]: a.get("unit") for a in axes if isinstance(a, dict)}
        scale = next(
            t["scale"]
            for t in ms0["datasets"][0].get("coordinateTransformations", [])
            if t.get("type") == "scale"
        )
        factor = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3}
        yi, xi = names.index("y"), names.index("x")
        fy, fx = factor.get(units.get("y") or ""), factor.get(units.get("x") or "")
        if fy is None or fx is None:
            return None
        y, x = plausible_mpp(scale[yi] * fy), plausible_mpp(scale[xi] * fx)
        return (y, x) if x and y else None
    except (KeyError, ValueError, StopIteration, TypeError, IndexError):
        logger.debug("NGFF multiscales state no usable scale transform")
        return None
