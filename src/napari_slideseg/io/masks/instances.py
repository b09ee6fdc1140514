"""Instance (id) maps: 16-bit PNG, uint16/uint32 TIFF, ``.npy``, ``.mat``, HoVer predictions.

An instance map holds object ids (0 = background), not classes: it is read
as it is, never through a colour palette.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SlideSegError
from ..palette import LOSSY_TIFF_COMPRESSIONS, ClassMap
from .metadata import file_placement, png_header_text, with_placement
from .prediction import check_prediction


def read_instance_map(
    path: str | os.PathLike, key: str = "inst_map", *, partial: bool = False
) -> np.ndarray:
    """An instance map (0 = background, ids > 0) from ``.npy``, ``.mat``, PNG/TIFF or a prediction zarr.

    PNG/TIFF values are taken as ids as they are (16-bit PNGs hold up to
    65535 nuclei), never through a colour palette. A prediction folder gives
    its ``instances`` array; one whose run has not finished is refused
    (:class:`IncompletePredictionError`) unless ``partial``. The whole map is
    read: meant for tiles and regions, as instance metrics need.

    Parameters
    ----------
    path : str or os.PathLike
        The file or prediction folder.
    key : str
        The variable of a ``.mat`` file.
    partial : bool
        Take an unfinished prediction as it is.

    Returns
    -------
    numpy.ndarray
        The 2-D ids.

    Raises
    ------
    SlideSegError
        If the file is missing, holds no such variable or array, is not 2-D,
        or holds negative or non-integer ids.
    IncompletePredictionError
        For an unfinished prediction without ``partial``.
    """
    p = Path(path)
    if not p.exists():
        raise SlideSegError(f"{p}: no such file")
    name = p.name.lower()
    if p.is_dir():
        import zarr

        check_prediction(p, partial)
        root = zarr.open_group(str(p), mode="r")
        if "instances" not in root:
            raise SlideSegError(f"{p}: not a HoVer prediction (no 'instances' array)")
        instances = root["instances"]
        if not isinstance(instances, zarr.Array):
            raise SlideSegError(
                f"{p}: not a HoVer prediction ('instances' is a group, not an array)"
            )
        return np.asarray(instances[:])
    if name.endswith(".npy"):
        arr = np.load(p, allow_pickle=False)
    elif name.endswith(".mat"):
        from scipy.io import loadmat

        m = loadmat(p)
        if key not in m:
            raise SlideSegError(
                f"{p}: no {key!r} in this .mat (has {sorted(k for k in m if not k.startswith('__'))})"
            )
        arr = m[key]
    elif name.endswith((".tif", ".tiff")):
        import tifffile

        arr = tifffile.imread(p)
    else:
        from PIL import Image

        with Image.open(p) as im:
            arr = np.asarray(im)
    if arr.ndim != 2:
        raise SlideSegError(
            f"{p}: an instance map must be 2-D (one id per pixel), not shape {arr.shape}"
        )
    if arr.dtype.kind == "f" or (arr.dtype.kind == "i" and arr.min() < 0):
        raise SlideSegError(f"{p}: instance ids must be non-negative integers (dtype {arr.dtype})")
    return arr


#: Share of neighbouring object pixels (both non-zero) that must hold the same id.
ID_MAP_MIN_SAME = 0.8
#: Pixels an id-map sniff looks at (whole rows, evenly spaced).
ID_MAP_SNIFF_PIXELS = 4_000_000


def instance_marker(path: str | os.PathLike) -> dict[str, Any] | None:
    """What an id PNG/TIFF this plugin wrote records (``{"instances": True, ...}``), else None.

    Parameters
    ----------
    path : str or os.PathLike
        A PNG or TIFF file.

    Returns
    -------
    dict or None
        The slideseg record (its ``classmap`` names the types), or ``None``.
    """
    from ..sniff import sniff_kind

    p = Path(path)
    kind = sniff_kind(str(p))
    try:
        if kind == "png":
            from ..export import PNG_INSTANCES_KEY

            raw, _ = png_header_text(p, PNG_INSTANCES_KEY)
            found = json.loads(raw) if raw else None
        elif kind == "tiff":
            import tifffile

            with tifffile.TiffFile(p) as tif:
                desc = tif.pages.first.description or ""
            if not (desc.startswith('{"slideseg"') and '"instances"' in desc):
                return None
            found = json.loads(desc).get("slideseg")
        else:
            return None
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return found if isinstance(found, dict) and found.get("instances") else None


def looks_like_id_map(arr: Any) -> bool:
    """Whether a 2-D integer array is an instance map rather than a grey image.

    An instance map has a background of 0 and objects of one id each, so
    almost all horizontally neighbouring object pixels hold the same value
    (at least :data:`ID_MAP_MIN_SAME`); a grey image's neighbours differ by
    noise. Whole rows, evenly spaced, up to :data:`ID_MAP_SNIFF_PIXELS`, are
    looked at.

    Parameters
    ----------
    arr : array-like
        A 2-D array (NumPy, memory-mapped, or anything sliceable with ``ndim``).

    Returns
    -------
    bool
        True for an instance map.
    """
    if getattr(arr, "ndim", 0) != 2 or np.dtype(arr.dtype).kind not in "ui":
        return False
    h, w = arr.shape
    if h == 0 or w < 2:
        return False
    step = max(1, -(-(h * w) // ID_MAP_SNIFF_PIXELS))
    rows = np.asarray(arr[::step])
    if rows.min() < 0:
        return False
    nz = rows != 0
    if nz.all() or not nz.any():
        return False
    both = nz[:, :-1] & nz[:, 1:]
    n = int(both.sum())
    if n == 0:
        return False
    same = int(((rows[:, :-1] == rows[:, 1:]) & both).sum())
    return same >= ID_MAP_MIN_SAME * n


def sniff_id_map(path: str | os.PathLike, max_pixels: int) -> bool:
    """Whether ``path`` is an instance map the reader should open as Labels; never raises.

    Claimed: id PNGs/TIFFs this plugin wrote; 16-bit single-channel PNGs,
    single-channel 16/32-bit integer TIFFs (lossless) and 2-D integer
    ``.npy`` files of at most ``max_pixels`` whose content
    :func:`looks_like_id_map`. 8-bit images, colour images, and 16-bit grey
    images with noise (slides, photos) are not.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    max_pixels : int
        Larger images are not decoded (``False``).

    Returns
    -------
    bool
        True when the reader should open it as instance Labels.
    """
    from ..sniff import raster_header, sniff_kind

    p = Path(path)
    try:
        if not p.is_file():
            return False
        if p.name.lower().endswith(".npy"):
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
            return arr.ndim == 2 and arr.size <= max_pixels and looks_like_id_map(arr)
        kind = sniff_kind(str(p))
        if kind == "png":
            head = raster_header(str(p))
            if head.channels != 1 or head.bits != 16 or head.pixels > max_pixels:
                return False
            if instance_marker(p) is not None:
                return True
            import imagecodecs

            return looks_like_id_map(np.asarray(imagecodecs.imread(str(p))))
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(p) as tif:
                page = tif.pages.first
                lossy = int(page.compression) in LOSSY_TIFF_COMPRESSIONS
                if (
                    lossy
                    or page.samplesperpixel != 1
                    or page.bitspersample not in (16, 32)
                    or int(page.sampleformat) not in (1, 2)
                    or int(page.photometric) == 3  # palette
                    or page.imagewidth * page.imagelength > max_pixels
                ):
                    return False
                desc = page.description or ""
                if desc.startswith('{"slideseg"') and '"instances"' in desc:
                    return True
                return looks_like_id_map(page.asarray())
    except Exception:
        return False
    return False


def read_id_map(path: str | os.PathLike) -> tuple[np.ndarray, None, dict[str, Any]]:
    """An instance map (ids as they are) with what the file records about it.

    Returns ``(ids, None, info)``: ``info["instances"]`` is True,
    ``info["type_classmap"]`` the type class map an id file this plugin
    wrote records (else None), and placement/mpp as for masks.

    Parameters
    ----------
    path : str or os.PathLike
        The id file (see :func:`read_instance_map`).

    Returns
    -------
    tuple
        ``(ids, None, info)``.

    Raises
    ------
    SlideSegError
        As for :func:`read_instance_map`, or if the recorded type class map
        is unusable.
    """
    p = Path(path)
    ids = read_instance_map(p)
    marker = instance_marker(p) or {}
    types = marker.get("classmap")
    info: dict[str, Any] = {
        "format": "instance-map",
        "instances": True,
        "type_classmap": ClassMap.from_dict(types, source=str(p)) if types else None,
    }
    where = None if p.name.lower().endswith(".npy") else file_placement(p)
    return ids, None, with_placement(info, where)
