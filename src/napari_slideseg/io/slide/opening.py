"""Opening a slide: :func:`open_slide`, path checks, vendor formats refused, backend dispatch."""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path

from ...progress import Progress, ProgressCallback, drain
from ..errors import SlideError, SlideNotFoundError
from ..sniff import sniff_kind, special_file_kind
from .model import Slide
from .raster import MEMORY_FRACTION, open_raster
from .tiff import open_tiff
from .zarr_store import open_zarr


def open_slide(
    path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    memory_fraction: float = MEMORY_FRACTION,
    mpp: float | None = None,
    jpeg_check: str = "full",
) -> Slide:
    """Open a whole-slide image lazily.

    Parameters
    ----------
    path
        A TIFF-family file (SVS, OME-TIFF, NDPI, BigTIFF...), a zarr / OME-Zarr
        directory, or a PNG/JPEG.
    cache_dir
        Where pyramids of non-pyramidal inputs are cached (default: the user
        cache directory, or ``$SLIDESEG_CACHE_DIR``).
    progress
        Called with :class:`~napari_slideseg.progress.Progress` events while a
        pyramid is being built (only ever on the first open of such a file).
    memory_fraction
        Largest fraction of the available memory a one-time decode of a PNG or
        JPEG may use before it is refused.
    mpp
        Microns per pixel of level 0, for files that do not state it (JPEG/PNG
        tiles) or to override what they state (:meth:`Slide.with_mpp`).
    jpeg_check
        How JPEG tiles of a TIFF are checked when first read: ``"full"``
        (default) Huffman-decodes each tile's codes once, so damaged image
        data is an error naming the tile instead of garbage pixels (about
        10 ms per 240 x 240 tile, in the reading thread); ``"markers"`` only
        checks the marker structure (truncation, overwritten markers; about
        1 µs per kB). The napari reader uses ``"markers"`` so panning stays
        fast (the pixels are in front of the user); every processing path
        (predict, patch, the widgets) reopens the file with ``"full"``.

    Returns
    -------
    Slide

    Raises
    ------
    SlideError
        With the file name and the problem, for anything that is not a
        readable slide (missing, empty, truncated, corrupt, unsupported
        compression, not an image, too big to decode).
    """
    slide = drain(
        open_slide_steps(
            path, cache_dir=cache_dir, memory_fraction=memory_fraction, jpeg_check=jpeg_check
        ),
        progress,
    )
    return slide if mpp is None else slide.with_mpp(mpp)


def _unsupported_vendor(path: str) -> str | None:
    """Why a vendor format this reader does not open is refused, or ``None``.

    A MIRAX ``.mrxs`` is itself only a JPEG preview of the slide (the pixels
    are in the sibling folder), so opening it as a JPEG would show the wrong
    image; VMS/VMU are text indexes of JPEG tiles; a folder of DICOM files is
    a DICOM WSI.
    """
    p = Path(path)
    name = p.name.lower()
    later = "not supported yet (an OpenSlide / wsidicom backend is planned)"
    if name.endswith(".mrxs"):
        return (
            f"is a 3DHISTECH MIRAX slide: {later}; the .mrxs file itself is only a preview "
            "image, so it is not opened as one"
        )
    if name.endswith((".vms", ".vmu")):
        return f"is a Hamamatsu {name[-3:].upper()} slide index: {later}"
    if p.is_dir() and sniff_kind(path) != "zarr":
        for child in sorted(p.iterdir())[:50]:
            if _is_dicom(child):
                return f"is a DICOM folder ({child.name} is DICOM): DICOM WSI is {later}"
            if child.suffix.lower() in (".vms", ".vmu", ".mrxs"):
                return f"holds a {child.suffix} vendor slide ({child.name}): {later}"
    elif _is_dicom(p):
        return f"is a DICOM file: DICOM WSI is {later}"
    return None


def _is_dicom(path: Path) -> bool:
    """Whether ``path`` is a file with the DICOM preamble (``DICM`` at byte 128)."""
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        return fh.read(132)[128:132] == b"DICM"


def _missing_reason(path: str) -> str:
    """Why ``path`` cannot be found: missing, a dangling link, or a loop of links."""
    import errno

    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "is a loop of symbolic links"
        if os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)!r}, which does not exist"
    return "no such file or directory"


def open_slide_steps(
    path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    memory_fraction: float = MEMORY_FRACTION,
    jpeg_check: str = "full",
) -> Generator[Progress, None, Slide]:
    """:func:`open_slide` as a generator of progress events (for widgets); returns the Slide.

    Parameters
    ----------
    path : str or os.PathLike
        See :func:`open_slide`.
    cache_dir : str, os.PathLike or None
        See :func:`open_slide`.
    memory_fraction : float
        See :func:`open_slide`.
    jpeg_check : str
        ``"full"`` or ``"markers"``; see :func:`open_slide`.

    Yields
    ------
    Progress
        Only while a pyramid is built into the cache (first open of a large
        PNG/JPEG or single-level TIFF).

    Returns
    -------
    Slide
        The opened slide (the generator's return value).

    Raises
    ------
    SlideNotFoundError
        When the path is empty or names nothing.
    SlideError
        For anything that is not a readable slide.
    ValueError
        When ``jpeg_check`` is neither ``"full"`` nor ``"markers"``.
    """
    spath = _checked_path(path, jpeg_check)
    kind = sniff_kind(spath)
    if kind == "tiff":
        return (yield from open_tiff(spath, cache_dir, jpeg_check))
    if kind == "zarr":
        return open_zarr(spath)
    if kind in ("png", "jpeg"):
        return (yield from open_raster(spath, cache_dir, memory_fraction))
    if os.path.isdir(spath):
        raise SlideError(
            spath, "is a directory but not a zarr store (no zarr.json/.zgroup/.zarray)"
        )
    raise SlideError(
        spath,
        "is not a supported slide image (expected TIFF/SVS/NDPI/OME-TIFF, OME-Zarr, PNG or JPEG; "
        "the file's first bytes match none of them)",
    )


def _checked_path(path: object, jpeg_check: str) -> str:
    """``path`` as a str once it names an existing, non-empty file or folder this reader opens."""
    if not isinstance(path, str | os.PathLike) or isinstance(path, bytes):
        raise SlideError(
            repr(path), f"a slide is a file or folder path, not a {type(path).__name__}"
        )
    spath = os.fspath(path)
    if not spath:
        raise SlideNotFoundError("''", "an empty path names no file")
    if jpeg_check not in ("full", "markers"):
        raise ValueError(f"jpeg_check must be 'full' or 'markers', not {jpeg_check!r}")
    if not os.path.exists(spath):
        raise SlideNotFoundError(spath, _missing_reason(spath))
    special = special_file_kind(spath)
    if special is not None:
        raise SlideError(
            spath, f"is a {special}, not a regular file or directory; it is not opened"
        )
    if os.path.isfile(spath) and os.path.getsize(spath) == 0:
        raise SlideError(spath, "the file is empty (0 bytes)")
    vendor = _unsupported_vendor(spath)
    if vendor:
        raise SlideError(spath, vendor)
    return spath
