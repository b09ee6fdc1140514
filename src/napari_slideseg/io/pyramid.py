"""Pyramid building into a chunked OME-Zarr cache.

Slides that come without a pyramid (a single-level tiled TIFF, a very large PNG
or JPEG) are turned into one once, streaming block by block, and cached in a
user cache directory keyed by the file's path, size and modification time. The
cache is a valid OME-Zarr (NGFF 0.4, zarr format 2, axes ``c, y, x``) so the
zarr backend of :func:`~napari_slideseg.io.slide.open_slide` opens it like any
other OME-Zarr.

The cache is written to a temporary directory and renamed into place when
complete, so a cancelled or killed build never leaves something that looks
like a finished pyramid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..progress import Progress
from .files import atomic_path
from .ngff import create_level, multiscales

#: Reduced levels are added until the smallest side is at most this many pixels.
LOWEST_LEVEL_MAX = 1024
#: Chunk edge of cached levels.
CACHE_CHUNK = 512
_FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Folder holding cached pyramids.

    ``cache_dir`` wins, then the ``SLIDESEG_CACHE_DIR`` environment variable, then
    the platform's user cache directory (``~/.cache/napari-slideseg`` on Linux).

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        An explicit cache folder.

    Returns
    -------
    Path
        The folder (not created here).
    """
    if cache_dir is not None:
        return Path(cache_dir)
    env = os.environ.get("SLIDESEG_CACHE_DIR")
    if env:
        return Path(env)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-slideseg")) / "pyramids"


def cache_key(path: str | os.PathLike, extra: str = "") -> str:
    """Key of a file's cached pyramid: absolute path + size + mtime (+ ``extra``).

    Parameters
    ----------
    path : str or os.PathLike
        The source image file (it must exist).
    extra : str
        What else the cache depends on (the slide reader passes the kind of
        cache: ``"reduced"`` levels of a TIFF, or a whole ``"raster"`` image).

    Returns
    -------
    str
        ``<file name>-<20 hex digits>.ome.zarr``; a changed file gets a new key.
    """
    p = Path(path).resolve()
    st = p.stat()
    raw = f"{_FORMAT_VERSION}|{p}|{st.st_size}|{st.st_mtime_ns}|{extra}"
    digest = hashlib.sha256(raw.encode()).hexdigest()[:20]
    return f"{p.name}-{digest}.ome.zarr"


def n_reduced_levels(shape_yx: tuple[int, int], lowest_max: int = LOWEST_LEVEL_MAX) -> int:
    """How many 2x reductions bring the longest side to ``lowest_max`` or below.

    Never more than keep the shortest side at least 1 pixel: a 40 x 100000
    strip gets 5 reductions (down to 1 x 3125), a 1 x N line none.

    Parameters
    ----------
    shape_yx : tuple of (int, int)
        Level-0 ``(h, w)``.
    lowest_max : int
        Longest side of the smallest level, at most (when the shortest side allows).

    Returns
    -------
    int
        The number of reduced levels.
    """
    longest, shortest = max(shape_yx), min(shape_yx)
    if longest <= lowest_max or shortest < 2:
        return 0
    return min(math.ceil(math.log2(longest / lowest_max)), int(math.log2(shortest)))


def downsample2(arr: da.Array) -> da.Array:
    """Halve a ``(y, x[, c])`` dask array by 2x2 box averaging (edges: odd rows/cols dropped).

    The mean is truncated towards zero for integer types, so a channel that is
    constant at its maximum (opaque alpha) stays exactly at its maximum.

    Parameters
    ----------
    arr : dask.array.Array
        ``(y, x[, c])`` image.

    Returns
    -------
    dask.array.Array
        ``(y // 2, x // 2[, c])``, of ``arr``'s dtype.
    """
    h, w = arr.shape[:2]
    arr = arr[: h - h % 2, : w - w % 2]
    if any(c % 2 for c in arr.chunks[0] + arr.chunks[1]):
        arr = arr.rechunk(
            {0: 2 * max(1, arr.chunksize[0] // 2), 1: 2 * max(1, arr.chunksize[1] // 2)}
        )
    axes = {0: 2, 1: 2}
    if np.issubdtype(arr.dtype, np.integer):
        out = da.coarsen(
            np.sum, arr.astype(np.uint32 if arr.dtype.itemsize <= 2 else np.uint64), axes
        )
        return (out // 4).astype(arr.dtype)
    return da.coarsen(np.mean, arr, axes).astype(arr.dtype)


def build_pyramid_cache(
    level0: da.Array,
    out: str | os.PathLike,
    *,
    name: str,
    mpp: tuple[float, float] | None = None,
    source: dict | None = None,
    lowest_max: int = LOWEST_LEVEL_MAX,
    include_level0: bool = True,
) -> Generator[Progress, None, Path]:
    """Write ``level0`` and its 2x reductions as an OME-Zarr, block by block.

    Parameters
    ----------
    level0 : dask.array.Array
        ``(y, x, c)`` dask array of the full-resolution image. It is read block
        by block; memory stays bounded by a few chunks.
    out : str or os.PathLike
        Final path of the ``.ome.zarr`` directory. Work happens in a temporary
        sibling that is renamed to ``out`` only when every level is written
        (an existing cache there is replaced).
    name : str
        Name recorded in the multiscales metadata.
    mpp : (float, float), optional
        Microns per pixel (y, x) of level 0, recorded as the scale.
    source : dict, optional
        JSON-able description of where the pixels came from.
    lowest_max : int
        Longest side of the smallest level.
    include_level0 : bool
        When false, level 0 is not copied (the source stays readable lazily
        and only reduced levels are cached); the cache then starts at level 1
        and records ``"first_level": 1``.

    Yields
    ------
    Progress
        One event per written chunk row, per level.

    Returns
    -------
    Path
        ``out``.
    """
    import zarr

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    n_red = n_reduced_levels(level0.shape[:2], lowest_max)
    first = 0 if include_level0 else 1
    levels_to_write = list(range(first, n_red + 1))
    extra: dict[str, Any] = {
        "format_version": _FORMAT_VERSION,
        "first_level": first,
        "source": source or {},
        "complete": True,
    }
    with atomic_path(out) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        factors = [(2**i, 2**i) for i in range(len(levels_to_write))]
        root.attrs.update(
            {
                **multiscales(name, factors, _level_mpp(mpp, first), channel=True, kind="mean"),
                "slideseg": extra,
            }
        )
        current = level0
        out_idx = 0
        for lvl in range(n_red + 1):
            if lvl > 0:
                # Reduce from what was just written (already on disk, chunked),
                # not from the source: each level costs one read of the previous.
                current = downsample2(current)
            if lvl < first:
                continue
            h, w, c = current.shape
            chunk = min(CACHE_CHUNK, max(h, w))
            arr = create_level(root, str(out_idx), (c, h, w), (c, chunk, chunk), current.dtype)
            yield from _write_rows(current, arr, chunk, f"level {lvl}")
            current = da.from_zarr(arr).transpose(1, 2, 0)
            out_idx += 1
    return out


def _level_mpp(mpp: tuple[float, float] | None, first: int) -> tuple[float, float] | None:
    if mpp is None:
        return None
    return (mpp[0] * 2**first, mpp[1] * 2**first)


#: Blocks copied per step are at most this many chunks wide (memory bound per step).
_BLOCK_CHUNKS = 8


def _write_rows(src: da.Array, dst, chunk: int, stage: str) -> Generator[Progress, None, None]:
    """Copy ``src`` (y, x, c) into zarr ``dst`` (c, y, x), one block of chunks at a time."""
    h, w, _ = src.shape
    step = chunk * _BLOCK_CHUNKS
    blocks = [(y0, x0) for y0 in range(0, h, chunk) for x0 in range(0, w, step)]
    for i, (y0, x0) in enumerate(blocks):
        y1, x1 = min(h, y0 + chunk), min(w, x0 + step)
        block = np.asarray(src[y0:y1, x0:x1].compute(scheduler="threads"))
        dst[:, y0:y1, x0:x1] = np.moveaxis(block, -1, 0)
        yield Progress(stage, i + 1, len(blocks), f"{stage}: block {i + 1}/{len(blocks)}")


def read_cache_info(path: str | os.PathLike) -> dict | None:
    """The ``slideseg`` attributes of a cached pyramid, or ``None`` if it is not one.

    Parameters
    ----------
    path : str or os.PathLike
        A folder that may be a cache built by :func:`build_pyramid_cache`.

    Returns
    -------
    dict or None
        Its ``slideseg`` attributes when it is a complete cache; None when it
        is not (no or unreadable attributes, or an unfinished build).
    """
    p = Path(path) / ".zattrs"
    if not p.exists():
        return None
    try:
        attrs = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as err:
        logger.debug("%s: unreadable pyramid cache attributes (%s); not a cache", p, err)
        return None
    info = attrs.get("slideseg")
    return info if isinstance(info, dict) and info.get("complete") else None
