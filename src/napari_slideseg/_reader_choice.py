"""Which of the plugin's three npe2 readers takes a file: the hooks' decisions.

:mod:`napari_slideseg._reader`'s hooks ask :func:`slide_claim`,
:func:`mask_claim` and :func:`geojson_claim` for every file dropped on
napari; they decide from the file's name, header and metadata with the
checks of :mod:`napari_slideseg._reader_claims`. Only the standard library
and the light :mod:`napari_slideseg.io.sniff` load at import time; nothing
here decodes a slide.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from ._reader_claims import (
    MASK_SNIFF_MAX_PIXELS,
    csv_has_rle,
    is_id_map,
    is_label_store,
    looks_like_prediction,
    tiff_may_be_mask,
    written_by_slideseg,
)
from .io.sniff import (
    RASTER_SUFFIXES,
    TIFF_SUFFIXES,
    VENDOR_SUFFIXES,
    is_dicom_file,
    is_vendor_folder,
    raster_header,
    sniff_kind,
    special_file_kind,
)

#: PNG/JPEG files smaller than this are left to napari's builtin reader.
RASTER_MIN_PIXELS = 4096 * 4096


def one_path(path: Any) -> str | None:
    """``path`` (or the single path of a one-item list) as a str.

    Parameters
    ----------
    path : Any
        What napari passes to a reader hook.

    Returns
    -------
    str or None
        The path; None for a list of several paths, an empty path or
        anything that is not a path.
    """
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | os.PathLike):
        return None
    path = os.fspath(path)
    return path if isinstance(path, str) and path else None


def slide_claim(target: str) -> Literal["slide", "prediction"] | None:
    """Whether the slide reader or the prediction reader takes ``target`` (fast; nothing decoded).

    Slides (TIFF family, zarr directories, DICOM files and DICOM WSI
    folders, MIRAX/VMS slides and their folders, other vendor formats
    OpenSlide reads) and PNG/JPEG images larger than
    :data:`RASTER_MIN_PIXELS` are claimed; colour-mask TIFFs this plugin
    wrote, instance maps and NGFF label stores are left to the mask reader
    (npe2 tries a plugin's readers in no fixed order). Files with a slide
    extension are claimed even when their header is broken, so the user
    gets a clear message instead of "no reader found".

    Parameters
    ----------
    target : str
        The file or folder (:func:`one_path` of what napari passes).

    Returns
    -------
    str or None
        ``"slide"``, ``"prediction"`` (a ``slideseg predict`` zarr folder),
        or None: the file is left to other readers.
    """
    lower = target.lower().rstrip("/\\")
    if special_file_kind(target) is not None:
        # A FIFO/socket/device is never opened (it would block); claim slide names so
        # the slide reader reports it, leave the rest alone.
        names = (*TIFF_SUFFIXES, *VENDOR_SUFFIXES, ".zarr", *RASTER_SUFFIXES)
        return "slide" if lower.endswith(names) else None
    if lower.endswith(VENDOR_SUFFIXES) or is_dicom_file(target):
        return "slide"  # a .mrxs is a JPEG preview: never left to the raster check
    kind = sniff_kind(target)
    if kind is None and is_vendor_folder(target):
        return "slide"  # a DICOM WSI series, or a MIRAX / VMS slide's folder
    if (
        kind == "tiff"
        and tiff_may_be_mask(target)
        and (written_by_slideseg(target, kind) or is_id_map(target))
    ):
        return None  # a mask or instance map: the mask reader opens it as Labels
    if kind == "zarr" and is_label_store(target):
        return None  # NGFF labels: the mask reader opens them as Labels
    if kind == "zarr" and looks_like_prediction(target):
        return "prediction"  # Labels, or a notification when its metadata is broken
    if kind in ("tiff", "zarr"):
        return "slide"
    if kind in ("png", "jpeg"):
        try:
            header = raster_header(target)
        except (OSError, ValueError):
            return "slide"
        if header.pixels <= RASTER_MIN_PIXELS:
            return None
        if kind == "png" and header.channels == 1 and header.bits == 16 and is_id_map(target):
            return None
        return "slide"
    if lower.endswith(TIFF_SUFFIXES) or lower.endswith(".zarr"):
        return "slide"  # broken or missing: the slide reader reports why
    if lower.endswith(RASTER_SUFFIXES) and not os.path.exists(target):
        return None
    return None


def mask_claim(target: str) -> bool:
    """Whether the mask reader takes ``target``: a mask, instance map, RLE CSV or NGFF labels.

    A PNG/TIFF is a mask when this plugin wrote it (its class map is
    recorded in the file) or when every colour in it belongs to one preset
    palette (``biopsy6``, ``wsi3``, ``binary``); TIFFs with lossy
    compression (JPEG, JPEG 2000: slides, never masks) are not read.
    An instance map (object ids) is a 16-bit single-channel PNG, a
    single-channel 16/32-bit integer TIFF or a 2-D integer ``.npy`` of at
    most :data:`MASK_SNIFF_MAX_PIXELS` whose content is ids on a 0
    background (:func:`~napari_slideseg.io.masks.looks_like_id_map`: almost
    all neighbouring object pixels share their value, unlike a grey
    image's), or an id PNG/TIFF this plugin wrote. A CSV is claimed when its
    header has an RLE column; a zarr store when it holds NGFF labels.

    Parameters
    ----------
    target : str
        The file or folder (:func:`one_path` of what napari passes).

    Returns
    -------
    bool
        False leaves the file to other readers.
    """
    lower = target.lower().rstrip("/\\")
    if special_file_kind(target) is not None:
        # Never opened (a FIFO would block): the mask reader reports mask-only names,
        # the slide reader the others.
        return lower.endswith((".csv", ".npy"))
    if lower.endswith(".csv"):
        return csv_has_rle(target)
    if lower.endswith(".npy"):
        return is_id_map(target)
    kind = sniff_kind(target)
    if kind == "zarr":
        return is_label_store(target)
    if kind == "png":
        try:
            header = raster_header(target)
        except (OSError, ValueError):
            return False
        if header.pixels > MASK_SNIFF_MAX_PIXELS:
            return False
        if header.channels == 1 and header.bits == 16:
            return is_id_map(target)
    elif kind == "tiff":
        if not tiff_may_be_mask(target):
            return False
    else:
        return False
    if written_by_slideseg(target, kind):
        return True
    if kind == "tiff" and is_id_map(target):
        return True
    from .io.palette import is_color_mask

    return is_color_mask(target, max_pixels=MASK_SNIFF_MAX_PIXELS) is not None


def geojson_claim(target: str) -> bool:
    """Whether the GeoJSON reader takes ``target`` (QuPath annotations/detections, our exports).

    ``.geojson`` and ``.geojson.gz`` are claimed when they start like
    GeoJSON; ``.json`` only when its first 4 kB hold a GeoJSON ``type``.

    Parameters
    ----------
    target : str
        The file or folder (:func:`one_path` of what napari passes).

    Returns
    -------
    bool
        False leaves the file to other readers.
    """
    if not target.lower().endswith((".geojson", ".geojson.gz", ".json", ".json.gz")):
        return False
    if not os.path.isfile(target):
        return False
    from .io.geojson import sniff_geojson

    return sniff_geojson(target)
