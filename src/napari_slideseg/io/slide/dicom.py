"""The DICOM WSI backend (wsidicom): a folder of VL Whole Slide Microscopy instances, or one file.

wsidicom groups the instances of a folder into pyramids, levels, labels
and overviews. Each level becomes a dask array chunked on whole DICOM
tiles near 512 px (:func:`~.regions.chunk_side`), read with wsidicom's
``read_region`` on a pool of handles. A slide with several focal planes
or optical paths (fluorescence channels, z-stacks) is refused unless the
plane and path are chosen (``focal_plane=``, ``optical_path=``): showing
one of them silently would be a wrong answer.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

from ..errors import SlideError
from .levels import display_range, lazy_array, make_slide
from .model import AssociatedImage, Slide
from .regions import HandlePool, RegionArray, chunk_side, path_token

#: Handles kept open per slide.
POOL_SIZE = 4


def open_wsi(path: str) -> Any:
    """A new wsidicom handle on ``path`` (the pool's opener; picklable by name).

    Parameters
    ----------
    path : str
        A DICOM folder or file.

    Returns
    -------
    wsidicom.WsiDicom
    """
    import wsidicom

    with warnings.catch_warnings():
        # pydicom warns on mild standard violations (e.g. a 66-character UID)
        # that wsidicom reads fine; they are not the user's to fix.
        warnings.simplefilter("ignore", UserWarning)
        return wsidicom.WsiDicom.open(path)


def _first_handle(path: str) -> Any:
    try:
        import wsidicom  # noqa: F401
    except ImportError as exc:  # pragma: no cover - a base dependency
        raise SlideError(path, f"the wsidicom backend is not installed ({exc})") from exc
    try:
        return open_wsi(path)
    except Exception as exc:
        raise SlideError(
            path,
            f"is not a DICOM whole-slide image wsidicom can open ({type(exc).__name__}: {exc})",
        ) from exc


def _choose(path: str, what: str, have: list, chosen: Any, option: str) -> Any:
    """The plane/path to read: the only one, or the one the user chose (checked)."""
    if chosen is None:
        if len(have) > 1:
            raise SlideError(
                path,
                f"has {len(have)} {what}s ({', '.join(map(str, have))}); choose one with "
                f"{option}= (showing one silently would hide the others)",
            )
        return have[0] if have else None
    match = [h for h in have if str(h) == str(chosen) or h == chosen]
    if not match:
        raise SlideError(
            path, f"{option}={chosen!r} is not one of its {what}s ({', '.join(map(str, have))})"
        )
    return match[0]


class _LevelReader:
    """``read(y, x, h, w)`` of one level at the chosen plane and path (picklable)."""

    def __init__(self, pool: HandlePool, level: int, z: Any, optical: Any) -> None:
        self.pool, self.level, self.z, self.optical = pool, level, z, optical

    def __call__(self, y: int, x: int, h: int, w: int) -> np.ndarray:
        with self.pool.handle() as wsi:
            arr = wsi.read_region(
                (x, y), self.level, (w, h), z=self.z, path=self.optical, as_array=True
            )
        arr = np.asarray(arr)
        return arr[..., :3] if arr.ndim == 3 and arr.shape[2] == 4 else arr


def _associated(pool: HandlePool, wsi: Any) -> list[AssociatedImage]:
    images = []
    for name, series, method in (
        ("label", wsi.labels, "read_label"),
        ("macro", wsi.overviews, "read_overview"),
    ):
        if not series:
            continue
        try:
            size = (int(series[0].size.width), int(series[0].size.height))
        except (AttributeError, IndexError, TypeError, ValueError):
            size = None

        def read(method: str = method) -> np.ndarray:
            with pool.handle() as h:
                return np.asarray(getattr(h, method)(as_array=True))[..., :3]

        images.append(AssociatedImage(name, size, read))
    return images


def _equipment(wsi: Any) -> dict[str, Any]:
    try:
        e = wsi.metadata.equipment
    except Exception:
        return {}
    out = {
        "manufacturer": getattr(e, "manufacturer", None),
        "model_name": getattr(e, "model_name", None),
        "software_versions": getattr(e, "software_versions", None),
    }
    return {k: v for k, v in out.items() if v not in (None, "Unknown", ["Unknown"])}


def open_wsidicom(
    path: str, *, focal_plane: float | None = None, optical_path: str | None = None
) -> Slide:
    """Open a DICOM WSI (a folder of instances, or one instance) as a :class:`~.model.Slide`.

    Parameters
    ----------
    path : str
        A folder holding the series' ``.dcm`` files, or one DICOM file.
    focal_plane : float, optional
        The focal plane (µm) to read when the slide has several.
    optical_path : str, optional
        The optical path identifier to read when the slide has several.

    Returns
    -------
    Slide
        Levels as wsidicom's pyramid lists them (largest first), mpp from
        the pixel spacing, ``label`` and ``macro`` as associated images.

    Raises
    ------
    SlideError
        When wsidicom cannot open it (with its message) or several focal
        planes / optical paths exist and none was chosen. A series without
        pixel spacing opens with ``mpp`` None (``mpp_source`` None).
    """
    wsi = _first_handle(path)
    pyramid = wsi.levels
    base = pyramid.base_level
    z = _choose(path, "focal plane", list(base.focal_planes), focal_plane, "focal_plane")
    optical = _choose(path, "optical path", list(base.optical_paths), optical_path, "optical_path")
    pool = HandlePool(functools.partial(open_wsi, path), POOL_SIZE, first=wsi)
    token = path_token(path)
    # one pixel of the smallest level: the series' samples and dtype (every level has
    # the same), and a decode at open time rather than at the first pan
    smallest = list(pyramid)[-1]
    probe = np.asarray(_LevelReader(pool, smallest.level, z, optical)(0, 0, 1, 1))
    colour = (3,) if probe.ndim == 3 else ()
    levels = []
    for lvl in pyramid:
        w, h = int(lvl.size.width), int(lvl.size.height)
        chunks = (
            chunk_side(int(lvl.tile_size.height), h),
            chunk_side(int(lvl.tile_size.width), w),
            *colour,
        )
        arr = RegionArray(_LevelReader(pool, lvl.level, z, optical), (h, w, *colour), probe.dtype)
        levels.append(lazy_array(arr, path, chunks, name=f"slide-{token}-dicom-L{lvl.level}"))
    try:
        spacing = base.mpp  # µm per pixel (width, height)
        mpp: tuple[float, float] | None = (float(spacing.height), float(spacing.width))
    except Exception:  # no pixel spacing: a slide without mpp, as a PNG tile is
        mpp = None
    metadata: dict[str, Any] = {
        "format": "dicom",
        "vendor": "dicom",
        "vendor_name": "DICOM WSI",
        "equipment": _equipment(wsi),
        "focal_plane": z,
        "optical_path": optical,
        "pyramids": len(wsi.pyramids),
        "files": [str(f) for f in (wsi.files or [])][:200],
        "display_range": display_range(levels[0].dtype, None),
        "mpp_source": "DICOM pixel spacing" if mpp else None,
        "pyramid": "from file",
    }
    if len(wsi.pyramids) > 1:
        warnings.warn(
            f"{path}: holds {len(wsi.pyramids)} pyramids (e.g. scans of the same slide); "
            "the first is opened",
            stacklevel=3,
        )
    return make_slide(path, levels, mpp, "wsidicom", metadata, _associated(pool, wsi))
