"""Which of the plugin's readers claims a file, from its name and metadata alone.

The npe2 hooks in :mod:`napari_slideseg._reader` ask these (through
:mod:`napari_slideseg._reader_choice`) for every file dropped on napari,
so this module imports only the standard library at import time;
tifffile and the mask sniffers load inside the checks that need them, and
nothing here decodes a slide.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import stat
import struct
from typing import Any

logger = logging.getLogger(__name__)


#: Largest mask the sniffer decodes to check its palette.
MASK_SNIFF_MAX_PIXELS = 50_000_000


def looks_like_prediction(path: str) -> bool:
    """Whether a zarr folder is (or was meant to be) a ``slideseg predict`` output (metadata only).

    True when its attributes name ``slideseg_inference`` (whatever their
    value), when it holds ``done`` marks, or a root ``labels`` array beside
    a ``pyramid`` group (the engine's layout) and no image ``multiscales``.

    Parameters
    ----------
    path : str
        A zarr folder.

    Returns
    -------
    bool
        Whether the prediction reader should take it.
    """
    path = os.fspath(path).rstrip("/\\")
    attrs = _zarr_attrs(path)
    if attrs is not None and "slideseg_inference" in attrs:
        return True
    if os.path.isdir(os.path.join(path, "done")):
        return True
    labels = os.path.join(path, "labels")
    is_array = os.path.isfile(os.path.join(labels, ".zarray")) or _zarr_node_type(labels) == "array"
    return (
        is_array
        and os.path.isdir(os.path.join(path, "pyramid"))
        and not (attrs and "multiscales" in attrs)
    )


def _zarr_node_type(path: str) -> str | None:
    """``node_type`` of a zarr v3 node (``"array"``, ``"group"``), from its ``zarr.json``."""
    try:
        with open(os.path.join(path, "zarr.json"), encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    return doc.get("node_type") if isinstance(doc, dict) else None


def _zarr_attrs(path: str) -> dict[str, Any] | None:
    """A zarr group's attributes from its metadata file (v2 ``.zattrs`` or v3 ``zarr.json``)."""
    for name, key in (("zarr.json", "attributes"), (".zattrs", None)):
        meta = os.path.join(path, name)
        if os.path.isfile(meta):
            try:
                with open(meta, encoding="utf-8") as fh:
                    doc = json.load(fh)
            except (OSError, ValueError):
                return None
            attrs = doc.get(key, {}) if key else doc
            if not isinstance(attrs, dict):
                return None
            ome = attrs.get("ome")
            return {**attrs, **ome} if isinstance(ome, dict) else attrs
    return None


def is_label_store(path: str) -> bool:
    """Whether a zarr directory holds NGFF labels rather than an image (metadata files only).

    True for a root whose ``labels`` group lists label images and that is
    not itself an image (what this plugin's OME-Zarr writer makes), for a
    ``labels`` group, and for a label image group (``image-label``: also
    this plugin's earlier layout). An OME-Zarr image with labels beside it
    stays a slide.

    Parameters
    ----------
    path : str
        A zarr folder.

    Returns
    -------
    bool
        Whether the mask reader should take it.
    """
    path = os.fspath(path).rstrip("/\\")
    attrs = _zarr_attrs(path)
    if attrs is None:
        return False
    if "image-label" in attrs:
        return True
    if "multiscales" in attrs:
        return False
    if isinstance(attrs.get("labels"), list):
        return True
    sub = _zarr_attrs(os.path.join(path, "labels"))
    return sub is not None and isinstance(sub.get("labels"), list)


def csv_has_rle(path: str) -> bool:
    """Whether a CSV's header names an RLE column (``rle``, ``EncodedPixels``, ...).

    Parameters
    ----------
    path : str
        A ``.csv`` file.

    Returns
    -------
    bool
        ``False`` also when the file cannot be read.
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().lower()
    except OSError:
        return False
    cols = {c.strip().strip('"') for c in header.split(",")}
    return bool(cols & {"rle", "encodedpixels", "predicted", "annotation"})


def written_by_slideseg(path: str, kind: str) -> bool:
    """Whether a PNG/TIFF records a slideseg class map (PNG text chunk, TIFF description).

    Parameters
    ----------
    path : str
        The file.
    kind : str
        ``"png"``, or anything else for a TIFF (what ``sniff_kind`` said).

    Returns
    -------
    bool
        ``False`` also when the file cannot be read.
    """
    try:
        if kind == "png":
            return _png_records_slideseg(path)
        return _tiff_records_slideseg(path)
    except Exception as err:
        logger.debug("%s: not read as a slideseg mask (%s: %s)", path, type(err).__name__, err)
        return False


def _png_records_slideseg(path: str) -> bool:
    """Whether a PNG has a ``slideseg:classmap``/``slideseg:instances`` text chunk before IDAT."""
    with open(path, "rb") as fh:
        fh.read(8)
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return False
            n, tag = struct.unpack(">I4s", head)
            if tag in (b"IDAT", b"IEND"):
                return False
            if tag == b"tEXt" and n < 1 << 20:
                key = fh.read(n).split(b"\x00", 1)[0]
                if key in (b"slideseg:classmap", b"slideseg:instances"):
                    return True
                fh.seek(4, 1)
            else:
                fh.seek(n + 4, 1)


def _tiff_records_slideseg(path: str) -> bool:
    """Whether a TIFF's first description is slideseg JSON with a class map or instances."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        desc = tif.pages.first.description or ""
    return desc.startswith('{"slideseg"') and ('"classmap"' in desc or '"instances"' in desc)


def tiff_may_be_mask(path: str) -> bool:
    """Whether a TIFF could be a mask: losslessly compressed and small enough to sniff.

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    bool
        ``False`` for JPEG/JPEG 2000 compression (slides, never masks),
        more than :data:`MASK_SNIFF_MAX_PIXELS` pixels, or a file
        tifffile cannot read.
    """
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            lossy = int(page.compression) in (6, 7, 33003, 33004, 33005, 34712, 50001, 50002)
            return not lossy and page.imagewidth * page.imagelength <= MASK_SNIFF_MAX_PIXELS
    except Exception as err:
        logger.debug("%s: not read as a TIFF mask (%s: %s)", path, type(err).__name__, err)
        return False


def is_id_map(path: str) -> bool:
    """Whether ``path`` is an instance map (cached by path, size and modification time).

    Parameters
    ----------
    path : str
        A PNG, TIFF or ``.npy`` file.

    Returns
    -------
    bool
        What :func:`~napari_slideseg.io.masks.sniff_id_map` says; ``False``
        for anything that is not a regular file.
    """
    try:
        st = os.stat(path)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    return _is_id_map_cached(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _is_id_map_cached(path: str, size: int, mtime_ns: int) -> bool:
    from .io.masks import sniff_id_map

    return sniff_id_map(path, MASK_SNIFF_MAX_PIXELS)
