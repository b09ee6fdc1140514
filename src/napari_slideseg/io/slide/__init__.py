"""Lazy whole-slide images: :class:`Slide` and :func:`open_slide` (see :mod:`.model`)."""

from __future__ import annotations

from .model import (
    MEMORY_FRACTION,
    RASTER_IN_MEMORY_MAX_PIXELS,
    Slide,
    open_slide,
    open_slide_steps,
    pil_pixel_limit,
    slide_from_arrays,
    tiff_mpp,
)

__all__ = [
    "MEMORY_FRACTION",
    "RASTER_IN_MEMORY_MAX_PIXELS",
    "Slide",
    "open_slide",
    "open_slide_steps",
    "pil_pixel_limit",
    "slide_from_arrays",
    "tiff_mpp",
]
