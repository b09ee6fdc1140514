"""Finding the runs of a mask: where runs of equal values start, their values, grouping.

The encoding side of :mod:`.runs` (same run convention: half-open ``[start,
end)`` int64 flat indices in ``order``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Pixels compared per chunk when looking for run boundaries.
_CHUNK = 1 << 20


def change_starts(a: np.ndarray, order: str) -> np.ndarray:
    """Sorted flat indices (in ``order``) where a run of equal values starts; 0 first.

    Pixels are compared in cache-sized chunks, so the comparison never
    allocates a mask-sized temporary.

    Parameters
    ----------
    a
        2D array.
    order
        ``"col"`` or ``"row"``.

    Returns
    -------
    numpy.ndarray
        int64 indices; empty for an image without pixels.
    """
    h, w = a.shape
    n = h * w
    if n == 0:
        return np.empty(0, np.int64)
    if order == "col" and a.flags.f_contiguous and not a.flags.c_contiguous:
        a, order = a.T, "row"
        h, w = a.shape
    parts = [np.zeros(1, np.int64)]
    if order == "row":
        flat = a.reshape(-1)
        buf = np.empty(min(_CHUNK, n - 1), bool)
        for i0 in range(0, n - 1, _CHUNK):
            i1 = min(i0 + _CHUNK, n - 1)
            d = buf[: i1 - i0]
            np.not_equal(flat[i0 + 1 : i1 + 1], flat[i0:i1], out=d)
            idx = np.flatnonzero(d)
            if idx.size:
                idx += i0 + 1
                parts.append(idx)
        return np.concatenate(parts)
    # column-major runs of a row-major array: vertical changes plus column wraps
    rows = max(1, _CHUNK // w)
    buf = np.empty((min(rows, h - 1), w), bool)
    for y0 in range(0, h - 1, rows):
        y1 = min(y0 + rows, h - 1)
        d = buf[: y1 - y0]
        np.not_equal(a[y0 + 1 : y1 + 1], a[y0:y1], out=d)
        idx = np.flatnonzero(d)
        if idx.size:
            y, x = np.divmod(idx, w)
            y += y0 + 1
            x *= h
            x += y
            parts.append(x)
    wrap = np.flatnonzero(a[-1, :-1] != a[0, 1:])
    parts.append((wrap + 1) * h)
    ks = np.concatenate(parts)
    ks.sort()
    return ks


def values_at(a: np.ndarray, ks: np.ndarray, order: str) -> np.ndarray:
    """The pixels of ``a`` at flat indices ``ks`` (in ``order``).

    Parameters
    ----------
    a
        2D array.
    ks
        Flat indices.
    order
        ``"col"`` or ``"row"``.

    Returns
    -------
    numpy.ndarray
        ``a``'s values there.
    """
    h, w = a.shape
    if order == "row":
        y, x = np.divmod(ks, w)
    else:
        x, y = np.divmod(ks, h)
    return a[y, x]


def value_runs(a: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, values)`` of the runs of equal nonzero values of ``a``.

    Parameters
    ----------
    a
        2D array.
    order
        ``"col"`` or ``"row"``.

    Returns
    -------
    tuple of numpy.ndarray
        Sorted, disjoint runs and the value of each.
    """
    ks = change_starts(a, order)
    if ks.size == 0:
        return ks, ks, np.empty(0, a.dtype)
    vals = values_at(a, ks, order)
    ends = np.append(ks[1:], a.size)
    sel = vals != 0
    return ks[sel], ends[sel], vals[sel]


def binary_runs(a: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the runs of nonzero pixels of ``a``.

    Runs of equal values are found on the raw array (no bool copy) and
    touching runs of different nonzero values are then merged.

    Parameters
    ----------
    a
        2D array; nonzero pixels are foreground.
    order
        ``"col"`` or ``"row"``.

    Returns
    -------
    tuple of numpy.ndarray
        Sorted, disjoint foreground runs.
    """
    s, e, _ = value_runs(a, order)
    if s.size < 2 or a.dtype == np.bool_:
        return s, e
    gap = s[1:] != e[:-1]
    return s[np.append(True, gap)], e[np.append(gap, True)]


def group_by_value(
    s: np.ndarray, e: np.ndarray, v: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(value, starts, ends)`` per distinct value; runs keep their order.

    Parameters
    ----------
    s, e, v
        Runs and their values.

    Yields
    ------
    tuple
        ``(value, starts, ends)``, by increasing value.
    """
    if s.size == 0:
        return
    idx = np.argsort(v, kind="stable")
    vs = v[idx]
    cut = np.flatnonzero(vs[1:] != vs[:-1]) + 1
    for a, b in zip(np.append(0, cut).tolist(), np.append(cut, vs.size).tolist(), strict=True):
        sel = idx[a:b]
        yield int(vs[a]), s[sel], e[sel]
