"""Slide-sized masks encoded band by band (dask or NumPy), and RLE text streamed to a file."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import IO, Any

import numpy as np

from .checks import RLEError, check_base, check_label_dtype, check_order, is_dask
from .mask_runs import change_starts, group_by_value, values_at
from .tokens import format_runs

# Pixels per band when a plain (non-dask) array is streamed.
_DEFAULT_BAND_PIXELS = 1 << 24


def _band_edges(arr: Any, axis: int, band: int | None) -> list[int]:
    size = int(arr.shape[axis])
    if band is None:
        chunks = getattr(arr, "chunks", None)
        if chunks is not None and is_dask(arr):
            edges = np.concatenate([[0], np.cumsum(chunks[axis])]).astype(int).tolist()
            return edges if len(edges) > 1 else [0, size]
        other = max(1, int(arr.shape[1 - axis]))
        band = max(1, _DEFAULT_BAND_PIXELS // other)
    band = int(band)
    if band < 1:
        raise RLEError(f"band must be at least 1, got {band}")
    return [*range(0, size, band), size] if size else [0, 0]


def _iter_bands(arr: Any, order: str, band: int | None) -> Iterator[tuple[int, np.ndarray]]:
    """``(flat offset, block)`` bands contiguous in ``order``, as NumPy arrays."""
    h, w = (int(v) for v in arr.shape)
    axis = 0 if order == "row" else 1
    edges = _band_edges(arr, axis, band)
    for a0, a1 in itertools.pairwise(edges):
        if a1 <= a0:
            continue
        blk = arr[a0:a1] if axis == 0 else arr[:, a0:a1]
        if is_dask(blk):
            blk = blk.compute(scheduler="threads")
        yield (a0 * w if axis == 0 else a0 * h), np.asarray(blk)


def _iter_stream_runs(
    arr: Any, order: str, band: int | None, binary: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Finished nonzero runs ``(starts, ends, values)`` band by band.

    The last run of a band stays open and is merged with the first run of the
    next band when the values agree, so runs cross band boundaries.
    """
    for _, s, e, v in _iter_band_runs(arr, order, band, binary):
        yield s, e, v


def _iter_band_runs(
    arr: Any, order: str, band: int | None, binary: bool
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`_iter_stream_runs` with the index of the band each batch was found in.

    A batch of band ``j`` holds every run that ended before band ``j``'s
    last run (that one is pending); so once it is yielded, every run of
    the pixels of bands ``< j`` has been yielded. The final pending run
    comes with index = the number of bands.
    """
    n = int(arr.shape[0]) * int(arr.shape[1])
    pend_s: int | None = None
    pend_v: Any = None
    j = -1
    for j, (off, blk) in enumerate(_iter_bands(arr, order, band)):
        if binary and blk.dtype != np.bool_:
            blk = blk != 0
        ks = change_starts(blk, order)
        if ks.size == 0:
            continue
        vals = values_at(blk, ks, order)
        ks += off
        if pend_s is not None:
            if vals[0] == pend_v:
                ks, vals = ks[1:], vals[1:]
            ks = np.concatenate([np.array([pend_s], np.int64), ks])
            vals = np.concatenate([np.array([pend_v], vals.dtype), vals])
        pend_s, pend_v = int(ks[-1]), vals[-1]
        fs, fe, fv = ks[:-1], ks[1:], vals[:-1]
        sel = fv != 0
        if sel.any():
            yield j, fs[sel], fe[sel], fv[sel]
    if pend_s is not None and pend_v != 0:
        yield (
            j + 1,
            np.array([pend_s], np.int64),
            np.array([n], np.int64),
            np.array([pend_v]),
        )


def _check_stream_input(arr: Any, order: str, base: int) -> int:
    check_order(order)
    base = check_base(base)
    if len(arr.shape) != 2:
        raise RLEError(f"the array must be 2D, got shape {tuple(arr.shape)}")
    return base


def rle_encode_dask(
    arr: Any,
    *,
    order: str,
    base: int = 1,
    values: Iterable[int] | None = None,
    band: int | None = None,
) -> dict[int, str]:
    """Encode a slide-sized label image band by band, one RLE per value.

    Bands are whole rows (``order="row"``) or whole columns (``order="col"``),
    computed one at a time; a run still open at the end of a band continues
    into the next. Peak memory is one band plus the runs found.

    Parameters
    ----------
    arr
        2D integer or bool dask array (a NumPy array also works).
    order
        ``"col"`` or ``"row"``.
    base
        Index of the first pixel, 1 or 0.
    values
        Values to encode (each gets an entry, ``""`` when absent); by default
        every nonzero value present. For a binary mask of a label image pass
        ``arr != 0``.
    band
        Rows (``"row"``) or columns (``"col"``) per band; by default the dask
        chunks along that axis.

    Returns
    -------
    dict
        ``{value: rle}``, sorted by value; ``{1: rle}`` for a bool array.

    Raises
    ------
    RLEError
        A bad ``order``, ``base`` or ``band``, an array that is not 2D, or
        one that is not integer or bool.
    """
    base = _check_stream_input(arr, order, base)
    check_label_dtype(arr.dtype)
    wanted = None if values is None else sorted({int(x) for x in values})
    wanted_arr = None if wanted is None else np.asarray(wanted, np.int64)
    ss, es, vs = [], [], []
    for s, e, v in _iter_stream_runs(arr, order, band, binary=False):
        if wanted_arr is not None:
            sel = np.isin(v, wanted_arr)
            s, e, v = s[sel], e[sel], v[sel]
        ss.append(s)
        es.append(e)
        vs.append(v.astype(np.int64))
    out: dict[int, str] = {}
    if ss:
        s, e, v = np.concatenate(ss), np.concatenate(es), np.concatenate(vs)
        del ss, es, vs
        for value, gs, ge in group_by_value(s, e, v):
            out[value] = format_runs(gs, ge, base)
    if wanted is not None:
        return {k: out.get(k, "") for k in wanted}
    return out


def _last_bands(arr: Any, order: str, band: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Sorted nonzero values of ``arr`` and the last band each has a run in (pass 1)."""
    vals, bands = [], []
    for j, _, _, v in _iter_band_runs(arr, order, band, binary=False):
        u = np.unique(v).astype(np.int64)
        vals.append(u)
        bands.append(np.full(len(u), j, np.int64))
    if not vals:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    v, b = np.concatenate(vals), np.concatenate(bands)
    del vals, bands
    idx = np.argsort(v, kind="stable")  # bands ascend within a value: its last is its latest
    v, b = v[idx], b[idx]
    last = np.ones(len(v), bool)
    last[:-1] = v[1:] != v[:-1]
    return v[last], b[last]


def iter_instance_rles_dask(
    arr: Any, *, order: str, base: int = 1, band: int | None = None
) -> Iterator[tuple[np.ndarray, list[str]]]:
    """Each value's RLE of a slide-sized label image, a band of finished values at a time.

    Two reads of the bands: the first finds the last band each value has
    pixels in, the second collects runs and hands out the values whose last
    band is behind. Memory: one band, one int per value, and the runs of the
    values not finished yet (those crossing the band being read); not the
    runs or the RLE text of the whole image (:func:`rle_encode_dask`).

    Parameters
    ----------
    arr
        2D integer dask (or NumPy) array.
    order
        ``"col"`` or ``"row"``.
    base
        Index of the first pixel, 1 or 0.
    band
        Rows (``"row"``) or columns (``"col"``) per band; by default the dask
        chunks along that axis.

    Yields
    ------
    tuple of (numpy.ndarray, list of str)
        Values (ascending within a batch; batches by the band they end in)
        and their RLEs, every nonzero value once.

    Raises
    ------
    RLEError
        A bad ``order``, ``base`` or ``band``, or an array that is not 2D
        integers.
    """
    base = _check_stream_input(arr, order, base)
    check_label_dtype(arr.dtype)
    values, last = _last_bands(arr, order, band)
    held: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for j, s, e, v in _iter_band_runs(arr, order, band, binary=False):
        held.append((s, e, v.astype(np.int64)))
        s, e, v = (np.concatenate(a) for a in zip(*held, strict=True))
        done = last[np.searchsorted(values, v)] < j
        held = [(s[~done], e[~done], v[~done])]
        if done.any():
            yield _rles(s[done], e[done], v[done], base)
    if held and len(held[0][0]):
        yield _rles(*held[0], base)


def _rles(s: np.ndarray, e: np.ndarray, v: np.ndarray, base: int) -> tuple[np.ndarray, list[str]]:
    """The values of runs ``(s, e, v)`` and each one's RLE text."""
    ids, texts = [], []
    for value, gs, ge in group_by_value(s, e, v):
        ids.append(value)
        texts.append(format_runs(gs, ge, base))
    return np.asarray(ids, np.int64), texts


def iter_rle_text_dask(
    arr: Any, *, order: str, base: int = 1, band: int | None = None
) -> Iterator[str]:
    """Stream the Kaggle RLE text of a binary mask, band by band.

    Parameters
    ----------
    arr
        2D dask (or NumPy) array; nonzero pixels are foreground.
    order
        ``"col"`` or ``"row"``.
    base
        Index of the first pixel, 1 or 0.
    band
        Rows (``"row"``) or columns (``"col"``) per band; by default the dask
        chunks along that axis.

    Yields
    ------
    str
        Non-empty pieces of ``start length`` pairs; ``" ".join(pieces)`` is the
        whole string (see :func:`write_rle_text`).

    Raises
    ------
    RLEError
        A bad ``order``, ``base`` or ``band``, or an array that is not 2D.
    """
    base = _check_stream_input(arr, order, base)
    for s, e, _ in _iter_stream_runs(arr, order, band, binary=True):
        yield format_runs(s, e, base)


def write_rle_text(fh: IO[str], pieces: Iterable[str]) -> int:
    """Write RLE text pieces to ``fh`` separated by single spaces.

    Parameters
    ----------
    fh
        A text file open for writing.
    pieces
        Pieces of ``start length`` pairs, e.g. from :func:`iter_rle_text_dask`.

    Returns
    -------
    int
        Number of characters written.
    """
    n = 0
    for piece in pieces:
        if not piece:
            continue
        if n:
            fh.write(" ")
            n += 1
        fh.write(piece)
        n += len(piece)
    return n
