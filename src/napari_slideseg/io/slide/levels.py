"""Level arrays of a slide: lazy reads that name the file, axis order, alpha, the Slide itself.

Shared by every backend: :func:`lazy_array` wraps a store so read errors
name the file, :func:`to_yxc` puts the axes in ``(y, x[, c])`` order and
:func:`make_slide` turns the levels into a :class:`~.model.Slide` (opaque
alpha dropped, largest level first, JSON-able metadata).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np

from ..errors import SlideError
from .model import AssociatedImage, Slide

logger = logging.getLogger(__name__)


#: Smallest level read eagerly to check an alpha channel is opaque.
_ALPHA_CHECK_MAX_PIXELS = 4096 * 4096


class _NamedArray:
    """Array-like that re-raises read errors as :class:`SlideError` naming the file.

    dask would otherwise surface a bare codec error from deep inside a worker
    thread, with no hint of which file was being read.
    """

    def __init__(self, arr: Any, path: str, check: Any = None) -> None:
        self._arr = arr
        self._path = path
        self._check = check
        self.shape = tuple(arr.shape)
        self.dtype = np.dtype(arr.dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        if self._check is not None:
            self._check(key)
        try:
            return np.asarray(self._arr[key])
        except SlideError:
            raise
        except Exception as exc:  # codec, I/O and truncation errors alike
            raise SlideError(
                self._path,
                f"reading pixels failed ({type(exc).__name__}: {exc}); "
                "the file may be truncated or corrupt",
            ) from exc


def lazy_array(
    arr: Any, path: str, chunks: Sequence[int], name: str, check: Any = None
) -> da.Array:
    """A dask array over ``arr`` whose read errors are :class:`SlideError` naming ``path``.

    Parameters
    ----------
    arr : array-like
        A zarr array or anything with ``shape``, ``dtype`` and ``__getitem__``.
    path : str
        The file named in read errors.
    chunks : sequence of int
        The dask chunk shape (the file's tiles).
    name : str
        The dask name (same name, same cached results).
    check : callable, optional
        Called with each read's index before reading (e.g.
        :class:`~.jpeg_tiles.JpegTileCheck`); it raises to refuse the read.

    Returns
    -------
    dask.array.Array
        The lazy array; nothing is read yet.
    """
    return da.from_array(
        _NamedArray(arr, path, check), chunks=tuple(chunks), name=name, asarray=False, fancy=False
    )


def to_yxc(arr: da.Array, axes: str, path: str) -> da.Array:
    """Reorder an array with tifffile/NGFF axis letters to ``(y, x[, c])``.

    Singleton axes other than y, x and the channel axis are dropped; a non-
    singleton extra axis (time, z, series) is refused.

    Parameters
    ----------
    arr : dask.array.Array
        The array as stored.
    axes : str
        One letter per dimension (``"YXS"``, ``"CYX"``, ``"TCZYX"``...).
    path : str
        The file named in errors.

    Returns
    -------
    dask.array.Array
        ``(y, x, c)``, or ``(y, x)`` for one channel.

    Raises
    ------
    SlideError
        When the axes do not match the array, lack Y or X, or an extra axis
        is longer than 1.
    """
    axes = axes.upper()
    if len(axes) != arr.ndim:
        raise SlideError(path, f"axes {axes!r} do not match the array's {arr.ndim} dimensions")
    if "Y" not in axes or "X" not in axes:
        raise SlideError(path, f"has no Y and X axes (axes {axes!r})")
    chan = [i for i, a in enumerate(axes) if a in "SC"]
    index: list[Any] = []
    kept = ""
    for i, a in enumerate(axes):
        if a in "YX" or (chan and i == chan[-1]):
            index.append(slice(None))
            kept += a
        elif arr.shape[i] == 1 or (a == "S" and chan and i != chan[-1] and arr.shape[i] == 1):
            index.append(0)
        else:
            raise SlideError(
                path,
                f"has a {arr.shape[i]}-long {a!r} axis (axes {axes!r}); "
                "only 2D images with channels are supported as slides",
            )
    arr = arr[tuple(index)]
    order = [kept.index("Y"), kept.index("X")]
    if len(kept) == 3:
        order.append(3 - sum(order))
    arr = arr.transpose(order)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    return arr


def _drop_opaque_alpha(levels: list[da.Array], path: str) -> tuple[list[da.Array], bool]:
    """Return RGB levels when the alpha channel is opaque on the smallest level."""
    if levels[0].ndim != 3 or levels[0].shape[2] != 4:
        return levels, False
    small = levels[-1]
    if small.shape[0] * small.shape[1] > _ALPHA_CHECK_MAX_PIXELS:
        logger.debug(
            "%s: smallest level is too large to check its alpha channel; kept as RGBA", path
        )
        return levels, False
    alpha = np.asarray(small[..., 3].compute(scheduler="threads"))
    full = np.iinfo(alpha.dtype).max if np.issubdtype(alpha.dtype, np.integer) else 1.0
    if alpha.size and alpha.min() >= full:
        return [lv[..., :3] for lv in levels], True
    return levels, False


def check_decodes(levels: Sequence[da.Array]) -> None:
    """Decode one corner (at most 64 x 64) of the smallest level, so a broken codec or
    corrupt data is an error when the slide is opened, not at the first pan.

    Parameters
    ----------
    levels : sequence of dask.array.Array
        The slide's levels, largest first.

    Raises
    ------
    SlideError
        From the level's reads (they name the file).
    """
    small = levels[-1]
    small[: min(64, small.shape[0]), : min(64, small.shape[1])].compute(scheduler="sync")


def _downsamples(levels: Sequence[da.Array]) -> tuple[float, ...]:
    h0, w0 = levels[0].shape[:2]
    return tuple(float((h0 / lv.shape[0] + w0 / lv.shape[1]) / 2) for lv in levels)


def make_slide(
    path: str,
    levels: list[da.Array],
    mpp: tuple[float, float] | None,
    backend: str,
    metadata: dict[str, Any],
    associated: Sequence[AssociatedImage] = (),
) -> Slide:
    """The :class:`~.model.Slide` over ``levels`` (what every backend returns).

    An alpha channel that is opaque on the smallest level is dropped, the
    levels are sorted largest first and ``metadata`` gets ``path``,
    ``levels`` and ``mpp`` (and ``alpha`` when it was dropped).

    Parameters
    ----------
    path : str
        The file or folder the slide was opened from.
    levels : list of dask.array.Array
        One ``(y, x[, c])`` array per level.
    mpp : tuple of float or None
        Microns per pixel ``(y, x)`` of level 0.
    backend : str
        ``"tifffile"``, ``"openslide"``, ``"wsidicom"``, ``"zarr"``, ``"raster"``
        or ``"array"``.
    metadata : dict
        What the backend found; changed in place, then stored as JSON.
    associated : sequence of AssociatedImage
        Label, macro and thumbnail pictures beside the pyramid (read on demand).

    Returns
    -------
    Slide
        The slide.
    """
    levels, dropped = _drop_opaque_alpha(levels, path)
    if dropped:
        metadata["alpha"] = "opaque alpha channel dropped (returned as RGB)"
    levels = sorted(levels, key=lambda a: -a.shape[0] * a.shape[1])
    tile = (int(levels[0].chunksize[0]), int(levels[0].chunksize[1]))
    metadata.setdefault("path", path)
    metadata["levels"] = [[int(s) for s in lv.shape] for lv in levels]
    metadata["mpp"] = list(mpp) if mpp else None
    return Slide(
        path=path,
        levels=tuple(levels),
        downsamples=_downsamples(levels),
        mpp=mpp,
        backend=backend,
        tile_size=tile,
        _metadata_json=json.dumps(_jsonable(metadata)),
        _associated=tuple(associated),
    )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if obj is None or isinstance(obj, bool | int | float | str):
        if isinstance(obj, float) and not math.isfinite(obj):
            return None
        return obj
    return str(obj)


def display_range(dtype: np.dtype, bits: int | None) -> list[float]:
    """The contrast range a slide is shown with: the full range of its stored bit depth.

    Parameters
    ----------
    dtype : numpy.dtype
        The pixels' dtype.
    bits : int or None
        Bits per sample the file states (e.g. 12 in a ``uint16``), if any.

    Returns
    -------
    list of float
        ``[0, 2**bits - 1]`` for integers (the dtype's maximum when ``bits``
        is unknown or fills it), ``[0, 1]`` for floats.
    """
    if np.issubdtype(dtype, np.integer):
        top = (1 << bits) - 1 if bits and bits < np.iinfo(dtype).bits else np.iinfo(dtype).max
        return [0.0, float(top)]
    return [0.0, 1.0]


def file_token(path: str) -> str:
    """A short hash of a file's absolute path, size and modification time (for dask names).

    Parameters
    ----------
    path : str
        An existing file.

    Returns
    -------
    str
        12 hex digits; it changes when the file is rewritten.
    """
    import hashlib

    st = os.stat(path)
    return hashlib.sha1(
        f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode()
    ).hexdigest()[:12]


def slide_from_arrays(
    levels: Sequence[Any],
    *,
    name: str = "array",
    mpp: float | tuple[float, float] | None = None,
    chunk: int = 1024,
) -> Slide:
    """A :class:`Slide` over in-memory or dask arrays (e.g. a napari layer's data).

    Parameters
    ----------
    levels
        One array per level, largest first, ``(y, x[, c])``.
    name
        Used as the slide's path/name in messages and manifests.
    mpp
        Microns per pixel of the first level, ``(y, x)`` or one number, if
        known (checked as :meth:`Slide.with_mpp` checks it).
    chunk
        Chunk edge for NumPy inputs (dask inputs keep their chunks).

    Returns
    -------
    Slide
        A slide with backend ``"array"``.
    """
    arrs = []
    for lv in levels:
        if isinstance(lv, da.Array):
            arrs.append(lv)
        else:
            a = lv if hasattr(lv, "shape") and hasattr(lv, "__getitem__") else np.asarray(lv)
            arrs.append(da.from_array(a, chunks=(chunk, chunk, *a.shape[2:])))
    meta = {"format": "array", "display_range": display_range(arrs[0].dtype, None)}
    slide = make_slide(name, arrs, None, "array", dict(meta))
    if mpp is None:
        return slide
    pair = slide.with_mpp(mpp).mpp  # checked as a user's mpp is; recorded as the arrays' own
    return make_slide(name, arrs, pair, "array", meta)
