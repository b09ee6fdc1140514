"""Runs of pixels, the NumPy core of every RLE format: reading and painting them.

Finding the runs of a mask is in :mod:`.mask_runs`. A run is a half-open range ``[start, end)`` of 0-based indices into the mask
flattened in ``order`` (``"col"``: ``k = x * height + y``; ``"row"``:
``k = y * width + x``); runs come as two int64 arrays ``starts, ends``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .checks import RLEError, is_empty_rle
from .tokens import parse_ints

# Column-major painting uses a per-row prefix sum (fast for wide images); narrow
# images are painted flat and transposed instead.
_PREFIX_MIN_WIDTH = 64

_NO_RUNS = (np.empty(0, np.int64), np.empty(0, np.int64))


# -----------------------------------------------------------------------------
# reading and validating runs
# -----------------------------------------------------------------------------
def runs_from_rle(rle: Any, h: int, w: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated 0-based ``(starts, ends)`` of a Kaggle RLE over an ``h x w`` image.

    Parameters
    ----------
    rle
        ``start length`` pairs as str or bytes; None, NaN or blank text are
        no runs.
    h, w
        Image height and width.
    base
        Index of the first pixel in the text, 0 or 1.

    Returns
    -------
    tuple of numpy.ndarray
        Sorted, disjoint int64 ``starts`` and ``ends``.

    Raises
    ------
    RLEError
        Not a string, an odd token count, a non-integer token, a start before
        the first pixel, a length below 1, unsorted or overlapping runs, or a
        run past the end of the image.
    """
    if is_empty_rle(rle):
        return _NO_RUNS
    if isinstance(rle, bytes):
        rle = rle.decode("ascii", errors="replace")
    if not isinstance(rle, str):
        raise RLEError(f"an RLE must be a string, got {type(rle).__name__}")
    t = parse_ints(rle)
    if t.size % 2:
        raise RLEError(f"odd number of tokens ({t.size}); an RLE is a list of 'start length' pairs")
    s = t[0::2] - base
    e = s + t[1::2]
    _validate_runs(s, t[1::2], e, h, w, base)
    return s, e


def _validate_runs(
    s: np.ndarray, lengths: np.ndarray, e: np.ndarray, h: int, w: int, base: int
) -> None:
    if s.size == 0:
        return
    bad = np.flatnonzero(s < 0)
    if bad.size:
        i = int(bad[0])
        raise RLEError(
            f"run {i + 1} starts at pixel {s[i] + base}, before the first pixel ({base}; "
            f"base={base})"
        )
    bad = np.flatnonzero(lengths <= 0)
    if bad.size:
        i = int(bad[0])
        raise RLEError(
            f"run {i + 1} (start {s[i] + base}) has length {lengths[i]}; lengths must be positive"
        )
    bad = np.flatnonzero(s[1:] < e[:-1])
    if bad.size:
        i = int(bad[0]) + 1
        if s[i] < s[i - 1]:
            raise RLEError(
                f"runs are not sorted: run {i + 1} starts at pixel {s[i] + base}, before "
                f"run {i} (start {s[i - 1] + base})"
            )
        raise RLEError(
            f"run {i + 1} (start {s[i] + base}) overlaps run {i} (pixels {s[i - 1] + base} "
            f"to {e[i - 1] - 1 + base}); runs must not overlap"
        )
    n = h * w
    if e[-1] > n:
        i = int(np.flatnonzero(e > n)[0])
        raise RLEError(
            f"run {i + 1} (start {s[i] + base}, length {lengths[i]}) runs past the end of the "
            f"image: it ends at pixel {e[i] - 1 + base} but a {h} x {w} (height x width) image "
            f"has pixels {base} to {n - 1 + base}"
        )


def union_runs(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of possibly overlapping runs as sorted, disjoint runs.

    Parameters
    ----------
    s, e
        Run starts and ends, in any order.

    Returns
    -------
    tuple of numpy.ndarray
        Sorted, disjoint ``(starts, ends)`` covering the same pixels.
    """
    if s.size == 0:
        return s, e
    idx = np.argsort(s, kind="stable")
    s, e = s[idx], e[idx]
    reach = np.maximum.accumulate(e)
    new = np.ones(s.size, bool)
    new[1:] = s[1:] > reach[:-1]
    first = np.flatnonzero(new)
    last = np.append(first[1:], s.size) - 1
    return s[first], reach[last]


# -----------------------------------------------------------------------------
# painting runs
# -----------------------------------------------------------------------------
def _repeat_fill(s: np.ndarray, e: np.ndarray, vals: np.ndarray, n: int, dtype: Any) -> np.ndarray:
    """Flat array of ``n`` pixels, ``vals`` on runs ``[s, e)`` and 0 elsewhere."""
    m = s.size
    if m == 0:
        return np.zeros(n, dtype)
    counts = np.empty(2 * m + 1, np.int64)
    counts[0] = s[0]
    counts[2:-1:2] = s[1:] - e[:-1]
    counts[-1] = n - e[-1]
    counts[1::2] = e - s
    v = np.zeros(2 * m + 1, dtype)
    v[1::2] = vals
    return np.repeat(v, counts)


def paint(
    s: np.ndarray, e: np.ndarray, vals: Any, h: int, w: int, order: str, dtype: Any
) -> np.ndarray:
    """A C-contiguous ``(h, w)`` array with ``vals`` on sorted, disjoint runs ``[s, e)``.

    Parameters
    ----------
    s, e
        Sorted, disjoint run starts and ends in ``order``.
    vals
        One value per run, or one value for all.
    h, w
        Image height and width.
    order
        ``"col"`` or ``"row"``.
    dtype
        dtype of the result.

    Returns
    -------
    numpy.ndarray
        The painted image, 0 off the runs.
    """
    dtype = np.dtype(dtype)
    vals = np.broadcast_to(np.asarray(vals, dtype), s.shape)
    n = h * w
    if order == "row":
        return _repeat_fill(s, e, vals, n, dtype).reshape(h, w)
    if w < _PREFIX_MIN_WIDTH or h < 2 or dtype.kind not in "biu" or s.size == 0:
        flat = _repeat_fill(s, e, vals, n, dtype)
        return np.ascontiguousarray(flat.reshape(w, h).T)
    # Column-major runs into a row-major array without a transpose: store each
    # column's first value in row 0 and value changes below it, then take a
    # prefix sum down the columns one row at a time (modular integer arithmetic).
    work = np.uint8 if dtype == np.bool_ else dtype
    vw = vals.astype(work)
    out = np.zeros((h, w), work)
    tops = np.arange(w, dtype=np.int64) * h
    i = np.searchsorted(s, tops, side="right") - 1
    ic = np.maximum(i, 0)
    inside = (i >= 0) & (e[ic] > tops)
    out[0] = np.where(inside, vw[ic], 0)
    ys, xs = s % h, s // h
    sel = ys != 0
    out[ys[sel], xs[sel]] += vw[sel]
    ye, xe = e % h, e // h
    sel = (ye != 0) & (e < n)
    out[ye[sel], xe[sel]] -= vw[sel]
    for y in range(1, h):
        np.add(out[y], out[y - 1], out=out[y])
    return out.view(np.bool_) if dtype == np.bool_ else out


def paint_into(out: np.ndarray, s: np.ndarray, e: np.ndarray, value: Any, order: str) -> None:
    """Set ``out`` to ``value`` on the runs ``[s, e)``; other pixels are left alone.

    Parameters
    ----------
    out
        2D array to paint into (C or Fortran order).
    s, e
        Sorted, disjoint run starts and ends in ``order``.
    value
        The value painted.
    order
        ``"col"`` or ``"row"``.
    """
    if s.size == 0:
        return
    h, w = out.shape
    n = h * w
    flat = None
    if order == "row" and out.flags.c_contiguous:
        flat = out.reshape(-1)
    elif order == "col" and out.flags.f_contiguous:
        flat = out.T.reshape(-1)
    if flat is not None and s.size * 64 < n:
        for a, b in zip(s.tolist(), e.tolist(), strict=True):
            flat[a:b] = value
        return
    if order == "col" and flat is None and h and int(((e - 1) // h - s // h + 1).sum()) * 64 < n:
        for a, b in zip(s.tolist(), e.tolist(), strict=True):
            while a < b:
                x, y0 = divmod(a, h)
                y1 = min(h, y0 + b - a)
                out[y0:y1, x] = value
                a += y1 - y0
        return
    m = paint(s, e, 1, h, w, order, np.uint8)
    np.copyto(out, value, where=m.view(np.bool_))
