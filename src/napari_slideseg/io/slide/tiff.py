"""The tifffile backend: SVS, OME-TIFF, NDPI, SCN, BigTIFF and other tiled TIFF series."""

from __future__ import annotations

import math
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ...progress import Progress
from .. import pyramid as _pyr
from ..errors import SlideError
from .jpeg_tiles import JpegTileCheck
from .levels import check_decodes, display_range, file_token, lazy_array, make_slide, to_yxc
from .model import AssociatedImage, Slide
from .mpp import tiff_mpp
from .zarr_store import zarr_levels

#: Most bytes of a dask chunk made of level-wide stripes.
_STRIPE_CHUNK_BYTES = 16 * 1024 * 1024


def _pick_series(tif: Any) -> Any:
    """The main image series: the first one for SVS/OME/NDPI, else the largest 2D image."""
    series = list(tif.series)
    if not series:
        return None
    if tif.is_svs or tif.is_ome or tif.is_ndpi or tif.is_scn:
        return series[0]
    return max(
        series,
        key=lambda s: int(np.prod([n for a, n in zip(s.axes, s.shape, strict=False) if a in "YX"])),
    )


def _check_segments(path: str, page: Any, filesize: int) -> None:
    """Refuse a level whose tiles point past the end of the file (truncated file)."""
    offsets = np.asarray(page.dataoffsets, dtype=np.int64)
    counts = np.asarray(page.databytecounts, dtype=np.int64)
    if offsets.size == 0:
        return
    ends = offsets + counts
    bad = int((ends > filesize).sum())
    if bad:
        raise SlideError(
            path,
            f"is truncated: {bad} of {offsets.size} tiles/strips of a {page.shape} image lie past "
            f"the end of the file ({filesize} bytes)",
        )


def open_tiff(
    path: str, cache_dir: Any, jpeg_check: str = "full"
) -> Generator[Progress, None, Slide]:
    """Open a TIFF-family file as a :class:`~.model.Slide` (a generator of progress events).

    Parameters
    ----------
    path : str
        A TIFF, BigTIFF, SVS, OME-TIFF, NDPI, SCN... file.
    cache_dir : str, os.PathLike or None
        Where the reduced levels of a large single-level TIFF are cached.
    jpeg_check : str
        ``"full"`` or ``"markers"``: how JPEG tiles are checked when first
        read (see :func:`~napari_slideseg.io.slide.open_slide`).

    Yields
    ------
    Progress
        Only while reduced levels are built into the cache.

    Returns
    -------
    Slide
        The opened slide (its TIFF file stays open for the lazy reads).

    Raises
    ------
    SlideError
        When the file is not a readable TIFF, is truncated or corrupt, or
        uses a compression this installation cannot decode.
    """
    filesize = os.path.getsize(path)
    tif, series = _open_series(path)
    levels, compression, bits = _read_levels(path, tif, series, filesize, jpeg_check)
    page0 = series.levels[0].keyframe
    mpp, mpp_source = tiff_mpp(tif, page0)
    kinds = [
        k
        for k in ("svs", "ome", "ndpi", "scn", "bigtiff", "qpi", "philips")
        if getattr(tif, f"is_{k}", False)
    ]
    metadata: dict[str, Any] = {
        "format": kinds[0] if kinds else "tiff",
        "flags": kinds,
        "series": series.name,
        "axes": series.axes,
        "compression": getattr(compression, "name", str(compression)),
        "bits_per_sample": bits,
        "display_range": display_range(levels[0].dtype, bits),
        "mpp_source": mpp_source,
        "file_size": filesize,
        "description": (page0.description or "")[:2000],
    }

    check_decodes(levels)

    if needs_reductions(levels):
        reduced = yield from cached_reductions(path, levels[0], mpp, cache_dir, metadata)
        levels.extend(reduced)
        metadata["pyramid"] = "reduced levels built into the cache"
    else:
        metadata["pyramid"] = "from file"
    return make_slide(path, levels, mpp, "tifffile", metadata, _associated(tif, series))


#: Series names of vendor TIFFs that are pictures beside the pyramid (SVS, NDPI).
_ASSOCIATED = ("label", "macro", "thumbnail")


def _associated(tif: Any, main: Any) -> list[AssociatedImage]:
    """The label / macro / thumbnail series of an SVS or NDPI (read on demand)."""
    if not (tif.is_svs or tif.is_ndpi):
        return []
    images = []
    for s in tif.series:
        name = (s.name or "").lower()
        if s is main or name not in _ASSOCIATED or len(s.shape) < 2:
            continue
        yx = [n for a, n in zip(s.axes, s.shape, strict=False) if a in "YX"]
        if len(yx) != 2:
            continue

        def read(s: Any = s) -> np.ndarray:
            arr = np.asarray(s.asarray())
            return arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=2)

        images.append(AssociatedImage(name, (int(yx[1]), int(yx[0])), read))
    return images


def _open_series(path: str) -> tuple[Any, Any]:
    """The open ``TiffFile`` and its main image series (the file is closed on error)."""
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:
        raise SlideError(path, f"is not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    try:
        series = _pick_series(tif)
    except Exception as exc:
        tif.close()
        raise SlideError(path, f"is a TIFF whose structure is corrupt ({exc})") from exc
    if series is None or not series.levels:
        tif.close()
        raise SlideError(
            path,
            "is a TIFF with no readable image (its directory is missing: the file is "
            "truncated or corrupt)",
        )
    return tif, series


def _read_levels(
    path: str, tif: Any, series: Any, filesize: int, jpeg_check: str
) -> tuple[list[da.Array], Any, int | None]:
    """Every level of ``series`` as a lazy array, with level 0's compression and bit depth.

    The file is closed when a level cannot be read.
    """
    levels: list[da.Array] = []
    compression = None
    bits = None
    try:
        for i, level in enumerate(series.levels):
            if i == 0:
                compression, bits = _level0_coding(path, level.keyframe)
            levels.append(_read_level(path, series, level, i, filesize, jpeg_check))
    except SlideError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise SlideError(
            path, f"could not be read as a tiled TIFF series ({type(exc).__name__}: {exc})"
        ) from exc
    return levels, compression, bits


def _level0_coding(path: str, page: Any) -> tuple[Any, int]:
    """Level 0's compression and bits per sample; refused when no codec can decode it."""
    from tifffile import TIFF

    compression = page.compression
    bits = int(page.bitspersample)
    if compression not in TIFF.DECOMPRESSORS:
        name = getattr(compression, "name", str(compression))
        raise SlideError(
            path,
            f"uses TIFF compression {name} ({int(compression)}), which this "
            "installation cannot decode (tifffile + imagecodecs have no codec for it)",
        )
    return compression, bits


def _read_level(
    path: str, series: Any, level: Any, i: int, filesize: int, jpeg_check: str
) -> da.Array:
    """Level ``i`` of ``series`` as a ``(y, x[, c])`` dask array on the file's tiles."""
    import zarr

    page = level.keyframe
    for p in level.pages:
        if p is not None:
            _check_segments(path, p, filesize)
    store = series.aszarr(level=i)
    z = zarr.open_array(store, mode="r")  # one level of a series: an array
    chunks = list(z.chunks)
    # Strip-based TIFFs can have 1-row strips: group rows so dask chunks stay sane.
    yi = level.axes.upper().index("Y")
    xi = level.axes.upper().index("X")
    if not page.is_tiled and chunks[yi] < 256:
        chunks[yi] = min(z.shape[yi], chunks[yi] * math.ceil(256 / chunks[yi]))
    elif chunks[yi] < 64 and chunks[xi] >= z.shape[xi]:
        # Level-wide stripes (NDPI's JPEG restart intervals, 8 rows): a chunk of
        # whole stripes up to 512 rows and about 16 MB, not one dask task per stripe.
        row_bytes = max(1, z.shape[xi] * z.dtype.itemsize * (z.size // (z.shape[xi] * z.shape[yi])))
        rows = max(chunks[yi], min(512, _STRIPE_CHUNK_BYTES // row_bytes))
        chunks[yi] = min(z.shape[yi], rows // chunks[yi] * chunks[yi])
    check = None
    name = f"slide-{file_token(path)}-L{i}"
    if int(page.compression) == 7 and page.is_tiled and len(level.pages) == 1:
        check = JpegTileCheck(path, page, level.axes, i, full=jpeg_check == "full")
        name += f"-{jpeg_check}"  # the same name would share dask's results
    arr = lazy_array(z, path, chunks, name=name, check=check)
    return to_yxc(arr, level.axes, path)


def needs_reductions(levels: list[da.Array]) -> bool:
    """Whether a slide of ``levels`` is one large level that needs reduced levels to be shown.

    Parameters
    ----------
    levels : list of dask.array.Array
        The levels the file has.

    Returns
    -------
    bool
        True for a single level over four times the lowest level's size.
    """
    return (
        len(levels) == 1
        and max(levels[0].shape[:2]) > _pyr.LOWEST_LEVEL_MAX * 4
        and _pyr.n_reduced_levels(levels[0].shape[:2]) > 0
    )


def cached_reductions(
    path: str, level0: da.Array, mpp: Any, cache_dir: Any, metadata: dict
) -> Generator[Progress, None, list[da.Array]]:
    """Reduced levels of a single-level slide, from the cache (built on first use).

    Parameters
    ----------
    path : str
        The slide's file or folder (the cache key).
    level0 : dask.array.Array
        Its only level.
    mpp : tuple of float or None
        Level-0 µm per pixel, recorded in the cache.
    cache_dir : str, os.PathLike or None
        The pyramid cache (default: the user's).
    metadata : dict
        Gets ``cache`` (the cached store's path).

    Yields
    ------
    Progress
        While the levels are built (first open only).

    Returns
    -------
    list of dask.array.Array
        The reduced levels, largest first.
    """
    root = _pyr.cache_root(cache_dir)
    out = root / _pyr.cache_key(path, "reduced")
    if _pyr.read_cache_info(out) is None:
        src = level0 if level0.ndim == 3 else level0[..., None]
        yield from _pyr.build_pyramid_cache(
            src, out, name=Path(path).name, mpp=mpp, source={"path": path}, include_level0=False
        )
    metadata["cache"] = str(out)
    cached = zarr_levels(str(out), path)[0]
    return cached
