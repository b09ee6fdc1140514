"""Levels read region by region: a pool of library handles and a dask-ready array over it.

The OpenSlide and DICOM backends do not expose a zarr store; they read a
rectangle at a time. :class:`RegionArray` turns such a reader into an
array-like that :func:`~.levels.lazy_array` wraps in dask, one read per
chunk, and :class:`HandlePool` lends each reading thread its own handle
(libraries keep per-handle decoder state and caches; a pool lets dask's
threads read in parallel without sharing one).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

#: Side of a dask chunk when the format's tiles are stripes or absent.
CHUNK = 512
#: Tiles from this size up to :data:`_TILE_MAX` are used as the chunk grid.
_TILE_MIN, _TILE_MAX = 64, 2048


class HandlePool:
    """Up to ``size`` handles on one slide, opened on demand and lent one per thread at a time.

    Parameters
    ----------
    opener : callable
        Opens a new handle (e.g. ``lambda: openslide.OpenSlide(path)``).
    size : int
        Most handles kept open (readers beyond it wait for one).
    first : object, optional
        A handle already open (the one the backend read the metadata from).
    """

    def __init__(self, opener: Callable[[], Any], size: int = 4, first: Any = None) -> None:
        self._opener = opener
        self._size = max(1, int(size))
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        self._lock = threading.Lock()
        self._opened = 0
        if first is not None:
            self._idle.put(first)
            self._opened = 1

    @property
    def opened(self) -> int:
        """How many handles have been opened so far."""
        return self._opened

    @contextmanager
    def handle(self) -> Iterator[Any]:
        """Lend a handle for the duration of the ``with`` block.

        Yields
        ------
        object
            A handle no other thread holds meanwhile.
        """
        h = None
        try:
            h = self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                grow = self._opened < self._size
                if grow:
                    self._opened += 1
            if grow:
                try:
                    h = self._opener()
                except BaseException:
                    with self._lock:
                        self._opened -= 1
                    raise
            else:
                h = self._idle.get()
        try:
            yield h
        finally:
            self._idle.put(h)

    def __getstate__(self) -> dict[str, Any]:
        # Handles do not pickle: a copy in another process opens its own.
        return {"_opener": self._opener, "_size": self._size}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["_opener"], state["_size"])  # type: ignore[misc]


class RegionArray:
    """An array-like ``(y, x, c)`` level whose reads call ``read(y, x, height, width)``.

    Parameters
    ----------
    read : callable
        Returns the ``(height, width, c)`` pixels at ``(y, x)`` of this level.
    shape : tuple of int
        ``(height, width, channels)``.
    dtype : numpy.dtype
        The pixels' dtype.
    """

    def __init__(
        self, read: Callable[[int, int, int, int], np.ndarray], shape: tuple[int, ...], dtype: Any
    ) -> None:
        self._read = read
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        (y0, y1, ys), (x0, x1, xs) = (
            k.indices(n) for k, n in zip(key[:2], self.shape[:2], strict=False)
        )
        if y1 <= y0 or x1 <= x0:
            return np.zeros((max(0, y1 - y0), max(0, x1 - x0), *self.shape[2:]), self.dtype)[
                (slice(None), slice(None), *key[2:])
            ]
        out = np.asarray(self._read(y0, x0, y1 - y0, x1 - x0), dtype=self.dtype)
        return out[(slice(None, None, ys), slice(None, None, xs), *key[2:])]


def chunk_side(tile: int | None, extent: int) -> int:
    """The dask chunk side for a level with tiles ``tile`` px along an axis of ``extent`` px.

    Whole tiles nearest :data:`CHUNK` (at least one) when the tile is between
    64 and 2048 px; :data:`CHUNK` when the format has no tiles or stores
    stripes (e.g. NDPI's 8-row JPEG restart intervals, as wide as the
    level); never more than the level.

    Parameters
    ----------
    tile : int or None
        The format's tile side along this axis, if it has one.
    extent : int
        The level's size along this axis.

    Returns
    -------
    int
        At least 1.
    """
    side = tile * max(1, round(CHUNK / tile)) if tile and _TILE_MIN <= tile <= _TILE_MAX else CHUNK
    return max(1, min(side, extent))


def composite_rgba(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """RGB of ``rgba`` (non-premultiplied, uint8) over an opaque ``background`` colour.

    Parameters
    ----------
    rgba : numpy.ndarray
        ``(y, x, 4)`` uint8.
    background : tuple of int
        The RGB shown where the file has no pixels (alpha 0).

    Returns
    -------
    numpy.ndarray
        ``(y, x, 3)`` uint8; opaque pixels are unchanged.
    """
    rgb = rgba[..., :3]
    alpha = rgba[..., 3]
    if alpha.size == 0 or int(alpha.min()) == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.uint16)
    bg = np.asarray(background, dtype=np.uint16)
    out = (rgb.astype(np.uint16) * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def parse_colour(text: str | None, default: tuple[int, int, int] = (255, 255, 255)) -> tuple:
    """An ``"RRGGBB"`` hex colour (OpenSlide's ``background-color``) as an RGB tuple.

    Parameters
    ----------
    text : str or None
        Six hex digits, with or without ``#``.
    default : tuple of int
        Returned when ``text`` is missing or not a colour.

    Returns
    -------
    tuple of int
    """
    t = (text or "").strip().lstrip("#")
    if len(t) == 6:
        try:
            return tuple(int(t[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            pass
    return default


def path_token(path: str) -> str:
    """A short hash of a file or folder's absolute path and its files' sizes and times.

    For a folder (DICOM series, MIRAX data) every file directly inside
    counts, so rewriting any of them gives new dask names.

    Parameters
    ----------
    path : str
        An existing file or folder.

    Returns
    -------
    str
        12 hex digits.
    """
    h = hashlib.sha1(os.path.abspath(path).encode())
    entries = [path]
    if os.path.isdir(path):
        entries = sorted(os.path.join(path, n) for n in os.listdir(path))
    for e in entries:
        try:
            st = os.stat(e)
        except OSError:
            continue
        h.update(f"|{os.path.basename(e)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]
