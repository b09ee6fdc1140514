"""Lazy whole-slide images: :class:`Slide` and :func:`open_slide`.

A :class:`Slide` is a frozen description of a pyramid: one dask array per level
(largest first, shape ``(y, x, c)`` or ``(y, x)`` for grey), chunked on the
file's own tiles, plus downsample factors, microns per pixel and a JSON-able
metadata dict. Nothing is decoded until a region is computed, so opening a
100k x 100k slide costs a few milliseconds and a few megabytes.

Backends
--------
``tifffile``
    Pyramidal and BigTIFF, Aperio SVS (JPEG, JPEG 2000), OME-TIFF (SubIFD
    pyramids), NDPI, SCN and anything else tifffile reads as a tiled series.
    A single-level TIFF larger than ``LOWEST_LEVEL_MAX`` keeps its level 0 in
    the TIFF and gets reduced levels built once into the pyramid cache.
``zarr``
    OME-Zarr (NGFF 0.4 and 0.5 multiscales) and plain zarr arrays or groups.
``raster``
    PNG and JPEG. Small ones are decoded into memory; large ones are decoded
    once (refused if they would not fit in available memory) and written as
    an OME-Zarr pyramid into the cache, which is what is then opened.

How pixels are shown
--------------------
RGB stays RGB. RGBA whose alpha is opaque everywhere (checked on the smallest
level) is returned as RGB; real transparency keeps 4 channels. Grey slides
are ``(y, x)`` and shown with a grey colormap. 16-bit slides keep their dtype;
their display range is the full range of the stored bit depth (e.g. 0-4095
for 12-bit), never computed from the pixels.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import numbers
import os
import threading
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ...progress import Progress, ProgressCallback, drain
from .. import pyramid as _pyr
from ..errors import SlideError, SlideNotFoundError, SlideTooLargeError
from ..sniff import jpeg_damage, jpeg_problem, raster_header, sniff_kind, special_file_kind

#: Raster (PNG/JPEG) images up to this many pixels are decoded into memory
#: directly; larger ones go through the pyramid cache.
RASTER_IN_MEMORY_MAX_PIXELS = 4096 * 4096
#: Fraction of the available memory a one-time decode may use.
MEMORY_FRACTION = 0.7
#: Smallest level read eagerly to check an alpha channel is opaque.
_ALPHA_CHECK_MAX_PIXELS = 4096 * 4096


@dataclass(frozen=True, eq=False)
class Slide:
    """A lazily read image pyramid.

    Attributes
    ----------
    path
        The file or directory the slide was opened from.
    levels
        One dask array per level, largest first; shape ``(y, x, c)`` for colour
        or ``(y, x)`` for grey. Chunks are the file's native tiles.
    downsamples
        Downsample factor of each level relative to level 0 (level 0 is 1.0),
        the mean of the y and x factors.
    mpp
        Microns per pixel of level 0 as ``(y, x)``, or ``None`` when the file
        does not say.
    backend
        ``"tifffile"``, ``"zarr"`` or ``"raster"``.
    tile_size
        Native tile ``(height, width)`` of level 0.
    """

    path: str
    levels: tuple[da.Array, ...]
    downsamples: tuple[float, ...]
    mpp: tuple[float, float] | None
    backend: str
    tile_size: tuple[int, int]
    _metadata_json: str = field(default="{}", repr=False)

    def __post_init__(self) -> None:
        if not self.levels:
            raise SlideError(self.path, "has no image levels")
        if len(self.downsamples) != len(self.levels):
            raise ValueError("one downsample factor per level is required")
        shapes = [lvl.shape[:2] for lvl in self.levels]
        if any(b[0] > a[0] or b[1] > a[1] for a, b in itertools.pairwise(shapes)):
            raise ValueError(f"levels must be in decreasing size, got {shapes}")

    # -- descriptive properties -------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-able metadata (a fresh copy on every access)."""
        return json.loads(self._metadata_json)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of level 0."""
        return tuple(self.levels[0].shape)

    @property
    def dtype(self) -> np.dtype:
        return self.levels[0].dtype

    @property
    def is_rgb(self) -> bool:
        return self.levels[0].ndim == 3 and self.levels[0].shape[2] in (3, 4)

    @property
    def channels(self) -> int:
        return 1 if self.levels[0].ndim == 2 else int(self.levels[0].shape[2])

    @property
    def dimensions(self) -> tuple[tuple[int, int], ...]:
        """``(width, height)`` of every level (OpenSlide's order)."""
        return tuple((int(lv.shape[1]), int(lv.shape[0])) for lv in self.levels)

    @property
    def name(self) -> str:
        return Path(self.path.rstrip("/\\")).name

    def level_mpp(self, level: int) -> tuple[float, float] | None:
        """Microns per pixel ``(y, x)`` of ``level``, from exact shape ratios."""
        if self.mpp is None:
            return None
        fy, fx = self.level_factors(level)
        return (self.mpp[0] * fy, self.mpp[1] * fx)

    def with_mpp(self, mpp: float | tuple[float, float]) -> Slide:
        """This slide with level-0 microns per pixel ``mpp`` (for files that do not say).

        A single number is used for both axes. The metadata records
        ``mpp_source: "user"``.
        """
        pair = (mpp, mpp) if isinstance(mpp, int | float) else tuple(mpp)
        vals = []
        for v in pair:
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise SlideError(self.path, f"mpp must be a number, not {v!r}") from None
            if not (math.isfinite(f) and 0.01 <= f <= 1000):
                raise SlideError(
                    self.path, f"mpp {v!r} µm/px is not a plausible pixel size (0.01-1000)"
                )
            vals.append(f)
        meta = self.metadata
        meta["mpp"] = vals
        meta["mpp_source"] = "user"
        return dataclasses.replace(
            self, mpp=(vals[0], vals[1]), _metadata_json=json.dumps(meta, default=str)
        )

    def check_level(
        self,
        level: Any,
        *,
        option: str = "level",
        error: Callable[[str], Exception] | None = None,
    ) -> int:
        """``level`` if the slide has it, else an error naming ``option`` and the levels there are.

        Parameters
        ----------
        level
            The level index asked for.
        option
            How the caller's user names it (``--level``, ``level``).
        error
            Exception class taking one message (default: :class:`SlideError`).
        """
        n = self.n_levels
        ok = isinstance(level, numbers.Integral) and not isinstance(level, bool)
        if not ok or not 0 <= int(level) < n:
            problem = (
                f"{option} {level!r} does not exist (the slide has {n} level"
                f"{'s' if n > 1 else ''}: {'0' if n == 1 else f'0-{n - 1}'})"
            )
            if error is None:
                raise SlideError(self.path, problem)
            raise error(f"{self.path}: {problem}")
        return int(level)

    def level_factors(self, level: int) -> tuple[float, float]:
        """Exact ``(y, x)`` downsample of ``level`` from the level shapes."""
        level = self.check_level(level)
        h0, w0 = self.levels[0].shape[:2]
        h, w = self.levels[level].shape[:2]
        return (h0 / h, w0 / w)

    def level_for_mpp(self, mpp: float, tolerance: float = 0.1) -> int:
        """Highest-resolution level whose resolution is at most ``mpp`` (coarser is never chosen).

        Parameters
        ----------
        mpp
            Wanted microns per pixel.
        tolerance
            Relative slack: a level within ``tolerance`` of ``mpp`` counts as a match.

        Raises
        ------
        SlideError
            If the slide has no microns-per-pixel information.
        """
        if self.mpp is None:
            raise SlideError(self.path, "has no microns-per-pixel in its metadata; choose a level")
        best = 0
        for i in range(self.n_levels):
            lm = self.level_mpp(i)
            assert lm is not None
            if min(lm) <= mpp * (1 + tolerance):
                best = i
        return best

    def read_region(self, level: int, y: int, x: int, height: int, width: int) -> np.ndarray:
        """Read a region of ``level`` as a NumPy array (clipped to the level's bounds)."""
        arr = self.levels[self.check_level(level)]
        return np.asarray(arr[y : y + height, x : x + width].compute(scheduler="threads"))

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """The smallest level that is at least ``max_size`` on its longest side, or level -1.

        Only one level is read, and it is never level 0 unless the slide has one level.
        """
        chosen = self.n_levels - 1
        for i in range(self.n_levels - 1, -1, -1):
            if max(self.levels[i].shape[:2]) >= max_size:
                chosen = i
                break
        return np.asarray(self.levels[chosen].compute(scheduler="threads"))

    def info(self) -> dict[str, Any]:
        """A JSON-able summary (what ``slideseg info --json`` prints)."""
        return {
            "path": self.path,
            "backend": self.backend,
            "levels": [
                {
                    "level": i,
                    "width": int(lv.shape[1]),
                    "height": int(lv.shape[0]),
                    "downsample": round(self.downsamples[i], 4),
                    "chunks": [int(lv.chunksize[0]), int(lv.chunksize[1])],
                }
                for i, lv in enumerate(self.levels)
            ],
            "channels": self.channels,
            "dtype": str(self.dtype),
            "tile_size": list(self.tile_size),
            "mpp": list(self.mpp) if self.mpp else None,
            "metadata": self.metadata,
        }

    def __repr__(self) -> str:
        dims = " / ".join(f"{w}x{h}" for w, h in self.dimensions)
        mpp = f"{self.mpp[1]:.4g} µm/px" if self.mpp else "mpp unknown"
        return f"Slide({self.name!r}, {self.backend}, {dims}, {mpp})"


def slide_from_arrays(
    levels: Sequence[Any],
    *,
    name: str = "array",
    mpp: tuple[float, float] | None = None,
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
        Microns per pixel ``(y, x)`` of the first level, if known.
    chunk
        Chunk edge for NumPy inputs (dask inputs keep their chunks).
    """
    arrs = []
    for lv in levels:
        if isinstance(lv, da.Array):
            arrs.append(lv)
        else:
            a = lv if hasattr(lv, "shape") and hasattr(lv, "__getitem__") else np.asarray(lv)
            arrs.append(da.from_array(a, chunks=(chunk, chunk, *a.shape[2:])))
    meta = {"format": "array", "display_range": _display_range(arrs[0].dtype, None)}
    return _make_slide(name, arrs, mpp, "array", meta)


# -----------------------------------------------------------------------------
# entry point
# -----------------------------------------------------------------------------
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
    """:func:`open_slide` as a generator of progress events (for widgets); returns the Slide."""
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
    kind = sniff_kind(spath)
    if kind == "tiff":
        return (yield from _open_tiff(spath, cache_dir, jpeg_check))
    if kind == "zarr":
        return _open_zarr(spath)
    if kind in ("png", "jpeg"):
        return (yield from _open_raster(spath, cache_dir, memory_fraction))
    if os.path.isdir(spath):
        raise SlideError(
            spath, "is a directory but not a zarr store (no zarr.json/.zgroup/.zarray)"
        )
    raise SlideError(
        spath,
        "is not a supported slide image (expected TIFF/SVS/NDPI/OME-TIFF, OME-Zarr, PNG or JPEG; "
        "the file's first bytes match none of them)",
    )


# -----------------------------------------------------------------------------
# helpers shared by backends
# -----------------------------------------------------------------------------
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


def _lazy(arr: Any, path: str, chunks: Sequence[int], name: str, check: Any = None) -> da.Array:
    return da.from_array(
        _NamedArray(arr, path, check), chunks=tuple(chunks), name=name, asarray=False, fancy=False
    )


class _JpegTileCheck:
    """Checks the JPEG tiles a read will decode (:func:`jpeg_problem`) and names a damaged one.

    Only the tiles' bytes are read (``os.pread``; they are in the OS cache
    for the decode that follows), scanned for markers and Huffman-decoded
    (no pixels): damage libjpeg would hide or only warn about is an error
    naming the tile. Each tile is checked once per open slide.
    """

    def __init__(self, path: str, page: Any, axes: str, level: int, full: bool = True) -> None:
        self.path = path
        self.level = level
        self.full = full
        self.offsets = [int(o) for o in page.dataoffsets]
        self.counts = [int(c) for c in page.databytecounts]
        self.tables = bytes(getattr(page, "jpegtables", None) or b"")
        # NDPI: each "tile" is one restart interval of a single JPEG stream (no SOI of its
        # own); tifffile decodes it behind the stream's header, sized to the tile.
        self.header = _ndpi_tile_header(page)
        self.th, self.tw = int(page.tilelength), int(page.tilewidth)
        self.nx = -(-int(page.imagewidth) // self.tw)
        self.ny = -(-int(page.imagelength) // self.th)
        axes = axes.upper()
        self.yi, self.xi = axes.index("Y"), axes.index("X")
        self.done: set[int] = set()
        self.lock = threading.Lock()

    def _range(self, key: Any, axis: int, size: int, n: int) -> range:
        k = key[axis] if isinstance(key, tuple) and axis < len(key) else slice(None)
        if isinstance(k, slice):
            start, stop, _ = k.indices(n * size)
        else:
            start, stop = int(k), int(k) + 1
        return range(start // size, min(n, -(-stop // size)))

    def __call__(self, key: Any) -> None:
        tiles = [
            ty * self.nx + tx
            for ty in self._range(key, self.yi, self.th, self.ny)
            for tx in self._range(key, self.xi, self.tw, self.nx)
        ]
        with self.lock:
            todo = [t for t in tiles if t not in self.done and t < len(self.offsets)]
        if not todo:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for t in todo:
                if self.counts[t] == 0:
                    continue
                data = os.pread(fd, self.counts[t], self.offsets[t])
                if self.header:
                    if len(data) >= 2 and data[-2] == 0xFF and 0xD0 <= data[-1] <= 0xD7:
                        data = data[:-2]  # the interval's restart marker ends it
                    if not data.endswith(b"\xff\xd9"):
                        data += b"\xff\xd9"
                    data = self.header + data
                problem = jpeg_problem(data, self.tables) if self.full else jpeg_damage(data)
                if problem:
                    raise SlideError(
                        self.path,
                        f"reading pixels failed: JPEG tile {t} (row {t // self.nx}, column "
                        f"{t % self.nx}) of level "
                        f"{self.level} is damaged: {problem}",
                    )
        finally:
            os.close(fd)
        with self.lock:
            self.done.update(todo)


def _ndpi_tile_header(page: Any) -> bytes:
    """The JPEG header an NDPI tile (one restart interval) decodes behind, or ``b""``.

    It is the stream's own header (tables, restart interval, scan header)
    with the frame size set to the tile's, as tifffile decodes it.
    """
    header = getattr(page, "jpegheader", None) if getattr(page, "is_ndpi", False) else None
    if not header:
        return b""
    import re
    import struct

    sof = re.search(rb"\xff[\xc0\xc1]", header)
    if sof is None:
        return b""
    out = bytearray(header)
    i = sof.start()
    out[i + 5 : i + 9] = struct.pack(">HH", int(page.tilelength), int(page.tilewidth))
    return bytes(out)


def _to_yxc(arr: da.Array, axes: str, path: str) -> da.Array:
    """Reorder an array with tifffile/NGFF axis letters to ``(y, x[, c])``.

    Singleton axes other than y, x and the channel axis are dropped; a non-
    singleton extra axis (time, z, series) is refused.
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
        return levels, False
    alpha = np.asarray(small[..., 3].compute(scheduler="threads"))
    full = np.iinfo(alpha.dtype).max if np.issubdtype(alpha.dtype, np.integer) else 1.0
    if alpha.size and alpha.min() >= full:
        return [lv[..., :3] for lv in levels], True
    return levels, False


def _downsamples(levels: Sequence[da.Array]) -> tuple[float, ...]:
    h0, w0 = levels[0].shape[:2]
    return tuple(float((h0 / lv.shape[0] + w0 / lv.shape[1]) / 2) for lv in levels)


def _plausible_mpp(value: float | None) -> float | None:
    """Keep microns-per-pixel values a microscope could produce (0.01-100 µm)."""
    if value is None or not math.isfinite(value) or not 0.01 <= value <= 100:
        return None
    return float(value)


def _make_slide(
    path: str,
    levels: list[da.Array],
    mpp: tuple[float, float] | None,
    backend: str,
    metadata: dict[str, Any],
) -> Slide:
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


def _display_range(dtype: np.dtype, bits: int | None) -> list[float]:
    if np.issubdtype(dtype, np.integer):
        top = (1 << bits) - 1 if bits and bits < np.iinfo(dtype).bits else np.iinfo(dtype).max
        return [0.0, float(top)]
    return [0.0, 1.0]


# -----------------------------------------------------------------------------
# TIFF family (tifffile)
# -----------------------------------------------------------------------------
def tiff_mpp(tif: Any, page: Any) -> tuple[tuple[float, float] | None, str | None]:
    """Microns per pixel from SVS description, OME pixels, NDPI or resolution tags."""
    import tifffile

    try:
        if tif.is_svs:
            from tifffile.tifffile import svs_description_metadata

            meta = svs_description_metadata(page.description)
            v = _plausible_mpp(float(meta["MPP"])) if "MPP" in meta else None
            if v:
                return (v, v), "svs:MPP"
        if tif.is_ome and tif.ome_metadata:
            ome = tifffile.xml2dict(tif.ome_metadata)["OME"]
            image = ome["Image"][0] if isinstance(ome["Image"], list) else ome["Image"]
            px = image["Pixels"]
            to_um = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}
            if "PhysicalSizeX" in px:
                fx = to_um.get(str(px.get("PhysicalSizeXUnit", "µm")))
                fy = to_um.get(str(px.get("PhysicalSizeYUnit", "µm")))
                x = _plausible_mpp(float(px["PhysicalSizeX"]) * fx) if fx else None
                y = (
                    _plausible_mpp(float(px.get("PhysicalSizeY", px["PhysicalSizeX"])) * fy)
                    if fy
                    else None
                )
                if x and y:
                    return (y, x), "ome:PhysicalSize"
    except (KeyError, ValueError, TypeError, IndexError):
        pass
    tags = page.tags
    unit = tags.get("ResolutionUnit")
    xr, yr = tags.get("XResolution"), tags.get("YResolution")
    if unit is not None and xr is not None and yr is not None:
        per_um = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}.get(int(unit.value))
        try:
            rx = xr.value[0] / xr.value[1]
            ry = yr.value[0] / yr.value[1]
            if per_um and rx > 0 and ry > 0:
                x, y = _plausible_mpp(per_um / rx), _plausible_mpp(per_um / ry)
                if x and y:
                    return (y, x), "tiff:resolution"
        except (ZeroDivisionError, TypeError, IndexError):
            pass
    return None, None


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


def _open_tiff(
    path: str, cache_dir: Any, jpeg_check: str = "full"
) -> Generator[Progress, None, Slide]:
    import tifffile
    import zarr
    from tifffile import TIFF

    filesize = os.path.getsize(path)
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

    levels: list[da.Array] = []
    compression = None
    bits = None
    try:
        for i, level in enumerate(series.levels):
            page = level.keyframe
            if i == 0:
                compression = page.compression
                bits = int(page.bitspersample)
                if compression not in TIFF.DECOMPRESSORS:
                    name = getattr(compression, "name", str(compression))
                    raise SlideError(
                        path,
                        f"uses TIFF compression {name} ({int(compression)}), which this "
                        "installation cannot decode (tifffile + imagecodecs have no codec for it)",
                    )
            for p in level.pages:
                if p is not None:
                    _check_segments(path, p, filesize)
            store = series.aszarr(level=i)
            z = zarr.open(store, mode="r")
            chunks = list(z.chunks)
            # Strip-based TIFFs can have 1-row strips: group rows so dask chunks stay sane.
            yi = level.axes.upper().index("Y")
            if not page.is_tiled and chunks[yi] < 256:
                chunks[yi] = min(z.shape[yi], chunks[yi] * math.ceil(256 / chunks[yi]))
            check = None
            name = f"slide-{_token(path)}-L{i}"
            if int(page.compression) == 7 and page.is_tiled and len(level.pages) == 1:
                check = _JpegTileCheck(path, page, level.axes, i, full=jpeg_check == "full")
                name += f"-{jpeg_check}"  # the same name would share dask's results
            arr = _lazy(z, path, chunks, name=name, check=check)
            levels.append(_to_yxc(arr, level.axes, path))
    except SlideError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise SlideError(
            path, f"could not be read as a tiled TIFF series ({type(exc).__name__}: {exc})"
        ) from exc

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
        "display_range": _display_range(levels[0].dtype, bits),
        "mpp_source": mpp_source,
        "file_size": filesize,
        "description": (page0.description or "")[:2000],
    }

    # Check one tile of the smallest level decodes: catches broken codecs and
    # corrupt data at open time rather than at the first pan.
    small = levels[-1]
    small[: min(64, small.shape[0]), : min(64, small.shape[1])].compute(scheduler="sync")

    if (
        len(levels) == 1
        and max(levels[0].shape[:2]) > _pyr.LOWEST_LEVEL_MAX * 4
        and _pyr.n_reduced_levels(levels[0].shape[:2]) > 0
    ):
        reduced = yield from _cached_reductions(path, levels[0], mpp, cache_dir, metadata)
        levels.extend(reduced)
        metadata["pyramid"] = "reduced levels built into the cache"
    else:
        metadata["pyramid"] = "from file"
    return _make_slide(path, levels, mpp, "tifffile", metadata)


def _token(path: str) -> str:
    import hashlib

    st = os.stat(path)
    return hashlib.sha1(
        f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}".encode()
    ).hexdigest()[:12]


def _cached_reductions(
    path: str, level0: da.Array, mpp: Any, cache_dir: Any, metadata: dict
) -> Generator[Progress, None, list[da.Array]]:
    """Reduced levels of a single-level slide, from the cache (built on first use)."""
    root = _pyr.cache_root(cache_dir)
    out = root / _pyr.cache_key(path, "reduced")
    if _pyr.read_cache_info(out) is None:
        src = level0 if level0.ndim == 3 else level0[..., None]
        yield from _pyr.build_pyramid_cache(
            src, out, name=Path(path).name, mpp=mpp, source={"path": path}, include_level0=False
        )
    metadata["cache"] = str(out)
    cached = _zarr_levels(str(out), path)[0]
    return cached


# -----------------------------------------------------------------------------
# zarr / OME-Zarr
# -----------------------------------------------------------------------------
def _zarr_levels(
    store_path: str, report_path: str
) -> tuple[list[da.Array], tuple[float, float] | None, dict[str, Any]]:
    import zarr

    try:
        node = zarr.open(store_path, mode="r")
    except Exception as exc:
        raise SlideError(
            report_path, f"is not a readable zarr store ({type(exc).__name__}: {exc})"
        ) from exc
    meta: dict[str, Any] = {"format": "zarr"}
    mpp = None
    if isinstance(node, zarr.Array):
        arrays = [node]
        axes = _guess_axes(node.shape)
    else:
        attrs = dict(node.attrs)
        ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if ms:
            ms0 = ms[0]
            meta["format"] = "ome-zarr"
            meta["ngff_version"] = ms0.get("version") or attrs.get("ome", {}).get("version")
            names = [a["name"] if isinstance(a, dict) else a for a in ms0.get("axes", [])]
            try:
                arrays = [node[d["path"]] for d in ms0["datasets"]]
            except KeyError as exc:
                raise SlideError(
                    report_path, f"OME-Zarr multiscales lists a missing dataset {exc}"
                ) from exc
            axes = "".join(n.upper() for n in names) if names else _guess_axes(arrays[0].shape)
            mpp = _ngff_mpp(ms0, names)
        else:
            arrays = [a for _, a in node.arrays()]
            if not arrays:
                raise SlideError(report_path, "is a zarr group with no arrays")
            arrays.sort(key=lambda a: -int(np.prod(a.shape)))
            arrays = [a for a in arrays if a.ndim == arrays[0].ndim]
            axes = _guess_axes(arrays[0].shape)
        if "slideseg" in attrs:
            meta["slideseg"] = attrs["slideseg"]
    levels = []
    for i, a in enumerate(arrays):
        arr = _lazy(a, report_path, a.chunks, name=f"zarr-{abs(hash((store_path, i)))}")
        levels.append(_to_yxc(arr, axes, report_path))
    meta["axes"] = axes
    return levels, mpp, meta


def _guess_axes(shape: Sequence[int]) -> str:
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        return "YXC" if shape[2] <= 4 else "CYX"
    return "".join("TZCYX"[-len(shape) :])


def _ngff_mpp(ms0: dict, names: list[str]) -> tuple[float, float] | None:
    try:
        axes = ms0["axes"]
        units = {a["name"]: a.get("unit") for a in axes if isinstance(a, dict)}
        scale = next(
            t["scale"]
            for t in ms0["datasets"][0].get("coordinateTransformations", [])
            if t.get("type") == "scale"
        )
        factor = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3}
        yi, xi = names.index("y"), names.index("x")
        fy, fx = factor.get(units.get("y") or ""), factor.get(units.get("x") or "")
        if fy is None or fx is None:
            return None
        y, x = _plausible_mpp(scale[yi] * fy), _plausible_mpp(scale[xi] * fx)
        return (y, x) if x and y else None
    except (KeyError, ValueError, StopIteration, TypeError, IndexError):
        return None


def _open_zarr(path: str) -> Slide:
    levels, mpp, meta = _zarr_levels(path, path)
    meta["display_range"] = _display_range(levels[0].dtype, None)
    return _make_slide(path, levels, mpp, "zarr", meta)


# -----------------------------------------------------------------------------
# PNG / JPEG
# -----------------------------------------------------------------------------
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
    import psutil

    return int(psutil.virtual_memory().available)


def _open_raster(
    path: str, cache_dir: Any, memory_fraction: float
) -> Generator[Progress, None, Slide]:
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
            data, chunks=(chunk, chunk, *data.shape[2:]), name=f"raster-{_token(path)}"
        )
        meta["pyramid"] = "single level, in memory"
        meta["display_range"] = _display_range(data.dtype, header.bits)
        return _make_slide(path, [level0], None, "raster", meta)

    out = _pyr.cache_root(cache_dir) / _pyr.cache_key(path, "raster")
    if _pyr.read_cache_info(out) is None:
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
        yield Progress(
            "decode", 0, 1, f"decoding {Path(path).name} ({header.width} x {header.height})"
        )
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
    levels, _, _zmeta = _zarr_levels(str(out), path)
    meta["cache"] = str(out)
    meta["pyramid"] = "built into the cache"
    meta["display_range"] = _display_range(levels[0].dtype, header.bits)
    return _make_slide(path, levels, None, "raster", meta)


__all__ = ["Slide", "open_slide", "open_slide_steps", "pil_pixel_limit", "slide_from_arrays"]
