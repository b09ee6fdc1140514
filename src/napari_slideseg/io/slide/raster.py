"""The raster backend: PNG and JPEG, in memory when small, else through the pyramid cache."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ...progress import Progress
from .. import pyramid as _pyr
from ..errors import SlideError, SlideTooLargeError
from ..sniff import RasterHeader, jpeg_problem, raster_header, sniff_kind
from .levels import display_range, file_token, make_slide
from .model import Slide
from .zarr_store import zarr_levels

logger = logging.getLogger(__name__)


#: Raster (PNG/JPEG) images up to this many pixels are decoded into memory
#: directly; larger ones go through the pyramid cache.
RASTER_IN_MEMORY_MAX_PIXELS = 4096 * 4096


#: Fraction of the available memory a one-time decode may use.
MEMORY_FRACTION = 0.7


_PIL_LOCK = threading.Lock()


@contextmanager
def pil_pixel_limit(pixels: int):
    """Allow Pillow to open one image of ``pixels`` pixels, then restore the limit.

    Pillow's ``Image.MAX_IMAGE_PIXELS`` is a process-wide guard against
    decompression bombs. It is raised only for the duration of the ``with``
    block and only as far as the one file needs, under a lock so no other
    thread opens a file while the guard is lowered.
    """
    from PIL import Image

    with _PIL_LOCK:
        old = Image.MAX_IMAGE_PIXELS
        if old is not None:
            Image.MAX_IMAGE_PIXELS = max(old, pixels + 1)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _decode_raster(path: str, pixels: int, fmt: str = "") -> np.ndarray:
    """Decode a PNG/JPEG fully with its own codec (Pillow, pixel limit scoped, as fallback).

    A JPEG is checked first (:func:`~napari_slideseg.io.sniff.jpeg_problem`):
    libjpeg fills truncated or missing data with grey and decodes damaged
    data into garbage without an error.
    Only the codec of the sniffed format is tried, so a damaged file gets
    one line, not one failure per codec imagecodecs knows.
    """
    import imagecodecs

    fmt = fmt or (sniff_kind(path) or "")
    with open(path, "rb") as fh:
        data = fh.read()
    if fmt == "jpeg":
        problem = jpeg_problem(data)
        if problem:
            raise SlideError(path, f"is a damaged JPEG: {problem}")
    decode = {"jpeg": imagecodecs.jpeg8_decode, "png": imagecodecs.png_decode}.get(
        fmt, imagecodecs.imread
    )
    try:
        return np.asarray(decode(data))
    except Exception as first:
        from PIL import Image

        logger.debug(
            "%s: the %s codec failed (%s); trying Pillow",
            path,
            fmt or "image",
            type(first).__name__,
        )

        try:
            with pil_pixel_limit(pixels), Image.open(path) as im:
                im.load()
                return np.asarray(im)
        except Exception as exc:
            raise SlideError(
                path,
                f"is a damaged {fmt.upper() or 'image'} file and could not be decoded "
                f"({type(first).__name__}: {str(first).splitlines()[0] if str(first) else ''}; "
                f"Pillow: {exc})",
            ) from exc


def _available_memory() -> int:
    """Bytes of memory available now (psutil)."""
    import psutil

    return int(psutil.virtual_memory().available)


def open_raster(
    path: str, cache_dir: Any, memory_fraction: float
) -> Generator[Progress, None, Slide]:
    """Open a PNG or JPEG as a :class:`~.model.Slide` (a generator of progress events).

    Up to :data:`RASTER_IN_MEMORY_MAX_PIXELS` it is decoded into memory;
    a larger one is decoded once and written as an OME-Zarr pyramid into
    the cache, which is what is then opened.

    Parameters
    ----------
    path : str
        A PNG or JPEG file.
    cache_dir : str, os.PathLike or None
        Where the pyramid of a large image is cached.
    memory_fraction : float
        Largest fraction of the available memory the one-time decode may use.

    Yields
    ------
    Progress
        While a large image is decoded and its pyramid built.

    Returns
    -------
    Slide
        The slide (backend ``"raster"``).

    Raises
    ------
    SlideError
        When the header is broken, the size is empty or the data is damaged.
    SlideTooLargeError
        When decoding would need more than ``memory_fraction`` of the
        available memory.
    """
    try:
        header = raster_header(path)
    except (ValueError, OSError) as exc:
        raise SlideError(path, f"has a broken image header ({exc})") from exc
    if header.width == 0 or header.height == 0:
        raise SlideError(path, f"has an empty size {header.width} x {header.height}")
    meta: dict[str, Any] = {
        "format": header.format,
        "bits_per_sample": header.bits,
        "file_size": os.path.getsize(path),
    }
    if header.pixels <= RASTER_IN_MEMORY_MAX_PIXELS:
        data = _decode_raster(path, header.pixels, header.format)
        chunk = min(1024, max(data.shape[:2]))
        level0 = da.from_array(
            data, chunks=(chunk, chunk, *data.shape[2:]), name=f"raster-{file_token(path)}"
        )
        meta["pyramid"] = "single level, in memory"
        meta["display_range"] = display_range(data.dtype, header.bits)
        return make_slide(path, [level0], None, "raster", meta)

    out = _pyr.cache_root(cache_dir) / _pyr.cache_key(path, "raster")
    if _pyr.read_cache_info(out) is None:
        yield from _build_cache(path, header, out, memory_fraction)
    levels, _, _zmeta = zarr_levels(str(out), path)
    meta["cache"] = str(out)
    meta["pyramid"] = "built into the cache"
    meta["display_range"] = display_range(levels[0].dtype, header.bits)
    return make_slide(path, levels, None, "raster", meta)


def _build_cache(
    path: str, header: RasterHeader, out: Path, memory_fraction: float
) -> Generator[Progress, None, None]:
    """Decode a large PNG/JPEG once and write its pyramid to ``out`` (refused if it cannot fit)."""
    need = int(header.nbytes * 1.1)
    avail = _available_memory()
    if need > memory_fraction * avail:
        raise SlideTooLargeError(
            path,
            f"decoding this {header.width} x {header.height} {header.format.upper()} needs "
            f"{need / 2**30:.1f} GiB but only {avail / 2**30:.1f} GiB of memory is available; "
            "convert it to a tiled pyramidal TIFF (e.g. `vips tiffsave in.png out.tif --tile "
            "--pyramid --compression jpeg`) and open that instead",
        )
    yield Progress("decode", 0, 1, f"decoding {Path(path).name} ({header.width} x {header.height})")
    data = _decode_raster(path, header.pixels, header.format)
    yield Progress("decode", 1, 1, "decoded")
    if data.ndim == 2:
        data = data[..., None]
    level0 = da.from_array(data, chunks=(_pyr.CACHE_CHUNK, _pyr.CACHE_CHUNK, data.shape[2]))
    try:
        yield from _pyr.build_pyramid_cache(
            level0,
            out,
            name=Path(path).name,
            source={"path": os.path.abspath(path), "format": header.format},
        )
    finally:
        del data, level0
