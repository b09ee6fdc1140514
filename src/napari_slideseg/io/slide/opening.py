"""Opening a slide: :func:`open_slide`, path checks and backend dispatch."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Callable, Generator
from typing import Any

from ...progress import Progress, ProgressCallback, drain
from ..errors import SlideError, SlideNotFoundError
from ..sniff import INDEX_SUFFIXES, sniff_kind, special_file_kind
from .backends import Choice, check_backend, choose_backend, target_for
from .model import Slide
from .raster import MEMORY_FRACTION, open_raster


class BackendWarning(UserWarning):
    """The backend chosen by content could not open a file and another one did."""


def open_slide(
    path: str | os.PathLike,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    memory_fraction: float = MEMORY_FRACTION,
    mpp: float | None = None,
    jpeg_check: str = "full",
    backend: str | None = None,
    focal_plane: float | None = None,
    optical_path: str | None = None,
) -> Slide:
    """Open a whole-slide image lazily.

    Parameters
    ----------
    path
        A TIFF-family file (SVS, OME-TIFF, NDPI, BigTIFF, Ventana BIF,
        Philips TIFF...), a vendor slide OpenSlide reads (MIRAX ``.mrxs``,
        Hamamatsu ``.vms``/``.vmu``, ...; or the folder holding it), a DICOM
        WSI (a folder of instances or one file), a zarr / OME-Zarr
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
        Only the tifffile backend checks tiles itself.
    backend
        ``"tifffile"``, ``"openslide"``, ``"wsidicom"``, ``"zarr"`` or
        ``"raster"`` to force one; None or ``"auto"`` (default) chooses from
        the content (:mod:`~napari_slideseg.io.slide.backends` says which and
        why). The choice and its reason are in ``slide.backend`` and
        ``slide.metadata["backend_reason"]``.
    focal_plane, optical_path
        Which focal plane (µm) and optical path a DICOM WSI with several is
        read at (it is refused without them).

    Returns
    -------
    Slide

    Raises
    ------
    SlideError
        With the file name and the problem, for anything that is not a
        readable slide (missing, empty, truncated, corrupt, unsupported
        compression, not an image, too big to decode, a vendor format the
        backend cannot open: its message is included).
    ValueError
        For an unknown ``backend`` or ``jpeg_check``.
    """
    slide = drain(
        open_slide_steps(
            path,
            cache_dir=cache_dir,
            memory_fraction=memory_fraction,
            jpeg_check=jpeg_check,
            backend=backend,
            focal_plane=focal_plane,
            optical_path=optical_path,
        ),
        progress,
    )
    return slide if mpp is None else slide.with_mpp(mpp)


def as_slide(slide: Any, *, error: Callable[[str], Exception]) -> Slide:
    """``slide`` itself, or the slide a path names (opened); anything else refused by name.

    What every core entry point that takes "a Slide or a path" calls.

    Parameters
    ----------
    slide : Slide, str or os.PathLike
        The slide, or its path.
    error : callable
        The caller's exception class (one message), raised for anything else.

    Returns
    -------
    Slide

    Raises
    ------
    Exception
        ``error``, when ``slide`` is neither; :class:`SlideError` when the
        path does not open as a slide.
    """
    if isinstance(slide, str | os.PathLike):
        return open_slide(slide)
    if not hasattr(slide, "levels") or not hasattr(slide, "check_level"):
        raise error(
            f"slide must be a Slide (napari_slideseg.open_slide(path)) or a path, "
            f"not {type(slide).__name__}"
        )
    return slide


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
    backend: str | None = None,
    focal_plane: float | None = None,
    optical_path: str | None = None,
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
    backend : str or None
        See :func:`open_slide`.
    focal_plane : float or None
        See :func:`open_slide`.
    optical_path : str or None
        See :func:`open_slide`.

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
        When ``jpeg_check`` is neither ``"full"`` nor ``"markers"``, or
        ``backend`` is not a backend.
    """
    forced = check_backend(backend)
    spath = _checked_path(path, jpeg_check)
    dicom = {"focal_plane": focal_plane, "optical_path": optical_path}
    if forced is not None:
        choice = Choice(forced, target_for(forced, spath), f"backend={forced!r} was asked for")
    else:
        found = choose_backend(spath)
        if found is None:
            raise SlideError(spath, _unreadable(spath))
        choice = found
    if choice.backend != "wsidicom" and (focal_plane is not None or optical_path is not None):
        raise ValueError(
            f"focal_plane / optical_path choose a plane of a DICOM WSI; {spath} is read "
            f"with {choice.backend}"
        )
    try:
        slide = yield from _open_with(choice, spath, cache_dir, memory_fraction, jpeg_check, dicom)
    except SlideError as exc:
        chosen_plane = focal_plane is not None or optical_path is not None
        if forced is not None or choice.backend != "wsidicom" or chosen_plane:
            raise
        slide = _dicom_by_openslide(spath, exc)
        choice = Choice("openslide", slide.path, f"wsidicom failed ({exc.problem})")
    return _recorded(slide, spath, choice)


def _open_with(
    choice: Choice,
    spath: str,
    cache_dir: Any,
    memory_fraction: float,
    jpeg_check: str,
    dicom: dict[str, Any],
) -> Generator[Progress, None, Slide]:
    """Open ``choice.target`` with ``choice.backend``; errors name the path the user gave."""
    target = choice.target
    name = choice.backend
    if name == "tifffile":
        from .tiff import open_tiff

        if sniff_kind(target) != "tiff":
            raise SlideError(spath, "backend 'tifffile' reads TIFF files; this is not one")
        return (yield from open_tiff(target, cache_dir, jpeg_check))
    if name == "zarr":
        from .zarr_store import open_zarr

        if sniff_kind(target) != "zarr":
            raise SlideError(spath, "backend 'zarr' reads zarr folders; this is not one")
        return open_zarr(target)
    if name == "raster":
        if sniff_kind(target) not in ("png", "jpeg") or target.lower().endswith(INDEX_SUFFIXES):
            raise SlideError(spath, "backend 'raster' reads PNG and JPEG files; this is not one")
        return (yield from open_raster(target, cache_dir, memory_fraction))
    if name == "openslide":
        from .openslide_slide import open_openslide

        slide = _named(open_openslide, target, spath)
    else:
        from .dicom import open_wsidicom

        slide = _named(lambda t: open_wsidicom(t, **dicom), target, spath)
    return (yield from _with_reductions(slide, cache_dir))


def _with_reductions(slide: Slide, cache_dir: Any) -> Generator[Progress, None, Slide]:
    """``slide``, with reduced levels from the cache when it is one large level."""
    from .levels import make_slide
    from .tiff import cached_reductions, needs_reductions

    if not needs_reductions(list(slide.levels)):
        return slide
    meta = slide.metadata
    level0 = slide.levels[0]
    reduced = yield from cached_reductions(slide.path, level0, slide.mpp, cache_dir, meta)
    meta["pyramid"] = "reduced levels built into the cache"
    return make_slide(
        slide.path, [level0, *reduced], slide.mpp, slide.backend, meta, slide._associated
    )


def _named(opener: Any, target: str, spath: str) -> Slide:
    """``opener(target)``; an error about an index file inside a folder names the folder too."""
    try:
        return opener(target)
    except SlideError as exc:
        if os.path.abspath(target) == os.path.abspath(spath):
            raise
        raise SlideError(spath, f"{os.path.basename(target)} {exc.problem}") from exc


def _dicom_by_openslide(spath: str, err: SlideError) -> Slide:
    """A DICOM WSI wsidicom refused, read by OpenSlide (with a :class:`BackendWarning`)."""
    from .openslide_slide import open_openslide

    target = target_for("openslide", spath)
    try:
        slide = open_openslide(target)
    except SlideError:
        raise err from None
    warnings.warn(
        f"{spath}: wsidicom could not open it ({err.problem}); read with OpenSlide instead "
        "(open_slide(..., backend='wsidicom') to get the error)",
        BackendWarning,
        stacklevel=5,
    )
    return slide


def _recorded(slide: Slide, spath: str, choice: Choice) -> Slide:
    """``slide`` with the path the user gave and the backend's reason in its metadata."""
    meta = slide.metadata
    meta["backend_reason"] = choice.reason
    if os.path.abspath(slide.path) != os.path.abspath(spath):
        meta["opened_file"] = slide.path
    return dataclasses.replace(slide, path=spath, _metadata_json=json.dumps(meta, default=str))


def _unreadable(spath: str) -> str:
    """Why no backend takes ``spath``."""
    if os.path.isdir(spath):
        return (
            "is a directory but not a zarr store (no zarr.json/.zgroup/.zarray), not a DICOM "
            "WSI folder (no DICOM files) and not a MIRAX/VMS slide folder (no .mrxs/.vms/.vmu)"
        )
    return (
        "is not a supported slide image (expected TIFF/SVS/NDPI/OME-TIFF, a vendor format "
        "OpenSlide reads, DICOM, OME-Zarr, PNG or JPEG; the file's first bytes match none of them)"
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
    return spath
