"""The :class:`Slide` model: a frozen, lazily read image pyramid and its level maths.

Nothing here opens a file: the backends (:mod:`.tiff`, :mod:`.zarr_store`,
:mod:`.raster`) build a :class:`Slide` through
:func:`~napari_slideseg.io.slide.levels.make_slide`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..errors import SlideError


@dataclass(frozen=True)
class AssociatedImage:
    """A picture stored beside the pyramid (label, macro, thumbnail), read on demand.

    Attributes
    ----------
    name
        The name the file gives it (``"label"``, ``"macro"``, ``"thumbnail"``...).
    size
        ``(width, height)`` when the file states it without decoding, else None.
    read
        Returns the pixels as a ``(y, x, 3)`` uint8 array.
    """

    name: str
    size: tuple[int, int] | None
    read: Callable[[], np.ndarray] = field(repr=False)


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
        ``"tifffile"``, ``"openslide"``, ``"wsidicom"``, ``"zarr"``, ``"raster"``
        or ``"array"`` (:func:`~.levels.slide_from_arrays`).
    tile_size
        Dask chunk ``(height, width)`` of level 0: the file's tiles, or whole
        tiles near 512 px for backends that read regions (OpenSlide, DICOM).
    """

    path: str
    levels: tuple[da.Array, ...]
    downsamples: tuple[float, ...]
    mpp: tuple[float, float] | None
    backend: str
    tile_size: tuple[int, int]
    _metadata_json: str = field(default="{}", repr=False)
    _associated: tuple[AssociatedImage, ...] = field(default=(), repr=False)

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
    def associated_images(self) -> dict[str, tuple[int, int] | None]:
        """Names of the pictures stored beside the pyramid, with ``(width, height)`` when known.

        They are never shown or read unless asked for by name
        (:meth:`associated_image`): a slide label can carry patient data.
        """
        return {a.name: a.size for a in self._associated}

    def associated_image(self, name: str) -> np.ndarray:
        """The pixels of the associated image ``name`` (label, macro, thumbnail...).

        Parameters
        ----------
        name : str
            One of :attr:`associated_images`.

        Returns
        -------
        numpy.ndarray
            ``(y, x, 3)`` uint8.

        Raises
        ------
        SlideError
            If the slide has no such image, or it cannot be decoded.
        """
        for a in self._associated:
            if a.name == name:
                try:
                    return np.asarray(a.read())
                except SlideError:
                    raise
                except Exception as exc:
                    raise SlideError(
                        self.path,
                        f"its {name!r} image could not be read ({type(exc).__name__}: {exc})",
                    ) from exc
        have = ", ".join(a.name for a in self._associated) or "none"
        raise SlideError(self.path, f"has no associated image {name!r} (it has: {have})")

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
        """Microns per pixel ``(y, x)`` of ``level``, from exact shape ratios.

        Parameters
        ----------
        level : int
            A level of this slide.

        Returns
        -------
        tuple of float or None
            ``(y, x)`` µm per pixel, or ``None`` when the slide's mpp is unknown.

        Raises
        ------
        SlideError
            If the slide has no such level.
        """
        if self.mpp is None:
            return None
        fy, fx = self.level_factors(level)
        return (self.mpp[0] * fy, self.mpp[1] * fx)

    def with_mpp(self, mpp: float | tuple[float, float]) -> Slide:
        """This slide with level-0 microns per pixel ``mpp`` (for files that do not say).

        A single number is used for both axes. The metadata records
        ``mpp_source: "user"``.

        Parameters
        ----------
        mpp : float or tuple of float
            µm per pixel of level 0, one number or ``(y, x)``.

        Returns
        -------
        Slide
            A copy with that mpp (the levels are shared).

        Raises
        ------
        SlideError
            If a value is not a number or not a plausible pixel size (0.01-1000 µm).
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

        Returns
        -------
        int
            ``level`` as an int.

        Raises
        ------
        SlideError
            (or ``error``) If ``level`` is not an integer index of an existing level.
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
        """Exact ``(y, x)`` downsample of ``level`` from the level shapes.

        Parameters
        ----------
        level : int
            A level of this slide.

        Returns
        -------
        tuple of float
            Level-0 height and width over the level's.

        Raises
        ------
        SlideError
            If the slide has no such level.
        """
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

        Returns
        -------
        int
            The level (0 when even level 0 is coarser than ``mpp``).

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
        """Read a region of ``level`` as a NumPy array (clipped to the level's bounds).

        Parameters
        ----------
        level : int
            A level of this slide.
        y, x : int
            Top-left corner, in the level's pixels.
        height, width : int
            Size of the region.

        Returns
        -------
        numpy.ndarray
            ``(h, w[, c])`` pixels.

        Raises
        ------
        SlideError
            If the slide has no such level, or its pixels cannot be read.
        """
        arr = self.levels[self.check_level(level)]
        return np.asarray(arr[y : y + height, x : x + width].compute(scheduler="threads"))

    def thumbnail(self, max_size: int = 1024) -> np.ndarray:
        """The smallest level that is at least ``max_size`` on its longest side, or level -1.

        Only one level is read, and it is never level 0 unless the slide has one level.

        Parameters
        ----------
        max_size : int
            Smallest wanted length of the longest side.

        Returns
        -------
        numpy.ndarray
            The chosen level's pixels.
        """
        chosen = self.n_levels - 1
        for i in range(self.n_levels - 1, -1, -1):
            if max(self.levels[i].shape[:2]) >= max_size:
                chosen = i
                break
        return np.asarray(self.levels[chosen].compute(scheduler="threads"))

    def info(self) -> dict[str, Any]:
        """A JSON-able summary (what ``slideseg info --json`` prints).

        Returns
        -------
        dict
            Path, backend, levels (size, downsample, chunks), channels, dtype,
            tile size, mpp, associated image names and sizes, and metadata.
        """
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
            "associated_images": {
                k: list(v) if v else None for k, v in self.associated_images.items()
            },
            "metadata": self.metadata,
        }

    def __repr__(self) -> str:
        dims = " / ".join(f"{w}x{h}" for w, h in self.dimensions)
        mpp = f"{self.mpp[1]:.4g} µm/px" if self.mpp else "mpp unknown"
        return f"Slide({self.name!r}, {self.backend}, {dims}, {mpp})"
