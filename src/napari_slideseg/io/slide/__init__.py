"""Lazy whole-slide images: :class:`Slide` and :func:`open_slide`.

A :class:`Slide` is a frozen description of a pyramid: one dask array per level
(largest first, shape ``(y, x, c)`` or ``(y, x)`` for grey), chunked on the
file's own tiles, plus downsample factors, microns per pixel and a JSON-able
metadata dict. Nothing is decoded until a region is computed, so opening a
100k x 100k slide costs a few milliseconds and a few megabytes.

Backends
--------
``tifffile``
    Pyramidal and BigTIFF, Aperio SVS (JPEG, JPEG 2000), OME-TIFF (SubIFD
    pyramids), NDPI, SCN and anything else tifffile reads as a tiled series.
    A single-level TIFF larger than ``LOWEST_LEVEL_MAX`` keeps its level 0 in
    the TIFF and gets reduced levels built once into the pyramid cache.
``openslide``
    NDPI (faster than tifffile's strips), Ventana, Philips, Leica, MIRAX,
    VMS/VMU and whatever else OpenSlide 4 detects: regions per chunk on a
    pool of handles.
``wsidicom``
    DICOM WSI folders and files.
``zarr``
    OME-Zarr (NGFF 0.4 and 0.5 multiscales) and plain zarr arrays or groups.
``raster``
    PNG and JPEG. Small ones are decoded into memory; large ones are decoded
    once (refused if they would not fit in available memory) and written as
    an OME-Zarr pyramid into the cache, which is what is then opened.

How pixels are shown
--------------------
RGB stays RGB. RGBA whose alpha is opaque everywhere (checked on the smallest
level) is returned as RGB; real transparency keeps 4 channels. Grey slides
are ``(y, x)`` and shown with a grey colormap. 16-bit slides keep their dtype;
their display range is the full range of the stored bit depth (e.g. 0-4095
for 12-bit), never computed from the pixels.

Modules
-------
:mod:`.model` (the :class:`Slide`), :mod:`.levels` (lazy level arrays,
axis order, building the Slide), :mod:`.mpp` (resolution metadata),
:mod:`.tiff`, :mod:`.openslide_slide`, :mod:`.dicom`, :mod:`.zarr_store`
and :mod:`.raster` (the backends, with :mod:`.jpeg_tiles` checking TIFF JPEG
tiles and :mod:`.regions` reading regions on a handle pool),
:mod:`.backends` (which backend reads a path, and why) and :mod:`.opening`
(:func:`open_slide`: path checks and dispatch).

The backend is chosen from the content (see :mod:`.backends`) or forced with
``open_slide(path, backend=...)``.
"""

from __future__ import annotations

from .levels import slide_from_arrays
from .model import AssociatedImage, Slide
from .mpp import tiff_mpp
from .opening import as_slide, open_slide, open_slide_steps
from .raster import MEMORY_FRACTION, RASTER_IN_MEMORY_MAX_PIXELS, pil_pixel_limit

__all__ = [
    "MEMORY_FRACTION",
    "RASTER_IN_MEMORY_MAX_PIXELS",
    "AssociatedImage",
    "Slide",
    "as_slide",
    "open_slide",
    "open_slide_steps",
    "pil_pixel_limit",
    "slide_from_arrays",
    "tiff_mpp",
]
