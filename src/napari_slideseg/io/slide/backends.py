"""Which backend opens a path: chosen from its content, or the one the caller names.

The choice looks at magic bytes and folder layout, never at the extension
alone: a TIFF is asked of OpenSlide which vendor wrote it (an NDPI is a
TIFF), a folder is a zarr store, a DICOM series (files with ``DICM`` at
byte 128), a MIRAX data folder beside its ``.mrxs``, or a folder holding
one ``.mrxs`` / ``.vms`` / ``.vmu`` index.

Defaults, and why:

=================  ==========  ===============================================
content            backend     why
=================  ==========  ===============================================
Aperio SVS, OME,   tifffile    native tiles as chunks, JPEG tiles checked;
generic TIFF                   pixel-identical to OpenSlide on the SVS files
NDPI (Hamamatsu)   openslide   tifffile exposes its JPEG restart strips
                               (8 rows, level-wide) as chunks; OpenSlide
                               decodes only the MCUs asked for: faster
                               (``benchmarks/bench_formats.py``)
Ventana, Philips,  openslide   vendor tiling (overlaps, sparse tiles) that
Leica, Trestle                 only OpenSlide lays out
MIRAX, VMS, VMU,   openslide   only OpenSlide reads them
Sakura, Zeiss...
DICOM              wsidicom    focal planes / optical paths, folders; OpenSlide
                               is used (with a warning) if wsidicom fails
zarr folder        zarr
PNG / JPEG         raster
=================  ==========  ===============================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..sniff import INDEX_SUFFIXES, dicom_files, folder_index, is_dicom_file, sniff_kind
from .openslide_slide import detect_vendor

#: Every backend ``open_slide(backend=...)`` accepts.
BACKENDS = ("tifffile", "openslide", "wsidicom", "zarr", "raster")
#: What ``--backend`` and the widgets offer: ``"auto"`` (chosen by content) and the backends.
BACKEND_CHOICES = ("auto", *BACKENDS)
#: TIFF vendors OpenSlide lays out better than tifffile (see the module table).
OPENSLIDE_TIFF_VENDORS = ("hamamatsu", "ventana", "philips", "leica", "trestle")


@dataclass(frozen=True)
class Choice:
    """A backend for a path.

    Attributes
    ----------
    backend
        One of :data:`BACKENDS`.
    target
        What the backend opens: the path itself, or the index file of a
        folder (the ``.mrxs`` of a MIRAX folder, a DICOM file for OpenSlide).
    reason
        Why this backend (recorded in the slide's metadata).
    """

    backend: str
    target: str
    reason: str


def check_backend(backend: object) -> str | None:
    """``backend`` if it is one of :data:`BACKENDS` (or None / ``"auto"``: choose), else an error.

    Parameters
    ----------
    backend : object
        What the caller passed as ``backend``.

    Returns
    -------
    str or None
        The backend, or None for the automatic choice.

    Raises
    ------
    ValueError
        Naming the ``backend`` option and the backends there are.
    """
    if backend is None or backend == "auto":
        return None
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)} or 'auto', not {backend!r}")
    return backend


def choose_backend(path: str) -> Choice | None:
    """The backend that opens ``path`` by default, from its content (None: no backend reads it).

    Parameters
    ----------
    path : str
        An existing file or folder.

    Returns
    -------
    Choice or None
    """
    p = Path(path)
    if p.is_dir():
        return _choose_folder(p)
    lower = p.name.lower()
    if lower.endswith(INDEX_SUFFIXES):
        # A .mrxs is itself a JPEG preview; its pixels are in the sibling folder.
        return Choice("openslide", path, f"{p.suffix} slide index: OpenSlide reads it")
    if is_dicom_file(p):
        return Choice("wsidicom", path, "DICOM file: wsidicom reads DICOM WSI")
    kind = sniff_kind(path)
    if kind == "tiff":
        vendor = detect_vendor(path)
        if vendor in OPENSLIDE_TIFF_VENDORS:
            return Choice(
                "openslide",
                path,
                f"{vendor} TIFF: OpenSlide reads its tiling (faster and exact for NDPI)",
            )
        return Choice("tifffile", path, "TIFF: tifffile reads its native tiles")
    if kind in ("png", "jpeg"):
        return Choice("raster", path, f"{kind.upper()} image")
    vendor = detect_vendor(path)
    if vendor:
        return Choice("openslide", path, f"OpenSlide recognises it as {vendor!r}")
    return None


def _choose_folder(p: Path) -> Choice | None:
    if sniff_kind(str(p)) == "zarr":
        return Choice("zarr", str(p), "zarr store")
    if dicom_files(p):
        return Choice("wsidicom", str(p), "folder of DICOM files: wsidicom reads the series")
    index = folder_index(p)
    if index is not None:
        return Choice(
            "openslide",
            str(index),
            f"folder of a {index.suffix} slide: OpenSlide reads {index.name}",
        )
    return None


def target_for(backend: str, path: str) -> str:
    """What ``backend`` opens for ``path`` when the caller forces it (a folder's index file...).

    Parameters
    ----------
    backend : str
        One of :data:`BACKENDS`.
    path : str
        The file or folder the user named.

    Returns
    -------
    str
        ``path``, or the file inside it the backend needs.
    """
    p = Path(path)
    if backend == "openslide" and p.is_dir():
        files = dicom_files(p)
        if files:
            return str(files[0])  # OpenSlide finds the series' other files beside it
        index = folder_index(p)
        if index is not None:
            return str(index)
    return os.fspath(path)
