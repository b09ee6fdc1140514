"""Run-length encoded (RLE) masks: Kaggle strings, COCO RLE and RLE CSV files.

Conventions
-----------
A *Kaggle RLE* is a string of space-separated ``start length`` pairs over the
flattened mask: ``"3 2 10 4"`` marks pixels 3-4 and 10-13. Two things are not
written in the string and differ between competitions, so every function here
takes them explicitly and never guesses:

``order``
    How the 2D mask is flattened.

    * ``"col"``: column-major (Fortran) order, pixel ``k = x * height + y``;
      numbered top to bottom, then left to right. Used by the 2018 Data Science
      Bowl, Airbus Ship Detection (``ImageId,EncodedPixels``, one row per ship)
      and HuBMAP "Hacking the Kidney" (``id,predicted``).
    * ``"row"``: row-major (C) order, pixel ``k = y * width + x``; numbered left
      to right, then top to bottom. Used by Carvana Image Masking
      (``img,rle_mask``) and Sartorius Cell Instance Segmentation
      (``id,annotation``, one row per cell).

    :func:`guess_order` compares both orders with a reference mask when a
    file's order is unknown; the decoders never call it.
``base``
    Index of the first pixel: ``1`` (the Kaggle convention, the default) or
    ``0``.

Runs must be sorted and must not overlap; a run's length is positive; an empty
string (or ``NaN`` / ``None`` from a data frame) is an empty mask.

*COCO RLE* (pycocotools, ``maskApi.c``) always uses column-major order and
stores alternating run lengths that ALWAYS start with a background run, which
is ``0`` when the first pixel is foreground: a 2 x 3 mask of ones is
``{"size": [2, 3], "counts": [0, 6]}``. Its compressed form packs each count
(after the first two, as the difference to the count two places earlier) into
6-bit ASCII characters, 5 data bits each; :func:`coco_compress` and
:func:`coco_decompress` implement it without pycocotools.

CSV layouts
-----------
* Kaggle submission: two columns ``id,rle`` (names configurable, e.g. HuBMAP's
  ``id,predicted``); order and shape are not recorded.
* Semantic (:func:`write_rle_csv`): one row per class,
  ``image_id,class_index,class_name,height,width,order,base,rle``.
* Instance: one row per object,
  ``image_id,instance_id,class_index,class_name,height,width,order,base,rle``.

Files we write record order, base and shape in every row, so
:func:`read_rle_csv` reads them without arguments. When the mask's place on
its slide is known (a prediction made on pyramid level ``L``), every row
also states ``level``, the slide's level-0 ``slide_height``/``slide_width``
and the mask pixels' ``mpp_y``/``mpp_x`` (µm per pixel, empty when
unknown), placed before the ``rle`` column (:data:`PLACEMENT_COLUMNS`);
readers that look columns up by name read these files unchanged. Writers are atomic: a
temporary file in the target folder is renamed over the target at the end and
removed on any error. Malformed input raises :class:`RLEError`, whose message
names the file, the 1-based data row (and the row's id) and the problem.

Slide-sized masks are encoded band by band from a dask array
(:func:`rle_encode_dask`, :func:`iter_rle_text_dask`) and decoded band by band
(:func:`rle_decode_rows`), so memory stays proportional to one band plus the
runs.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import SlideSegError

__all__ = [
    "ORDERS",
    "RLEError",
    "coco_area",
    "coco_compress",
    "coco_counts_to_rle",
    "coco_decode",
    "coco_decompress",
    "coco_encode",
    "coco_encode_compressed",
    "decode_labels",
    "encode_labels",
    "guess_order",
    "iter_rle_text_dask",
    "read_rle_csv",
    "read_rle_csv_rows",
    "read_submission_csv",
    "rle_decode",
    "rle_decode_rows",
    "rle_encode",
    "rle_encode_dask",
    "rle_to_coco_counts",
    "write_rle_csv",
    "write_rle_text",
    "write_submission_csv",
]

#: The two pixel orders: column-major (``"col"``) and row-major (``"row"``).
ORDERS = ("col", "row")

#: Columns of the semantic layout (one row per class).
SEMANTIC_COLUMNS = (
    "image_id",
    "class_index",
    "class_name",
    "height",
    "width",
    "order",
    "base",
    "rle",
)
#: Columns of the instance layout (one row per object).
INSTANCE_COLUMNS = (
    "image_id",
    "instance_id",
    "class_index",
    "class_name",
    "height",
    "width",
    "order",
    "base",
    "rle",
)

#: Columns stating where the mask sits on its slide (written when known, before ``rle``).
PLACEMENT_COLUMNS = ("level", "slide_height", "slide_width", "mpp_y", "mpp_x")

#: Dice margin (best minus other) above which :func:`guess_order` is confident.
GUESS_MARGIN = 0.2
#: Lowest best Dice for which :func:`guess_order` is confident.
GUESS_MIN_DICE = 0.5

# Column-major painting uses a per-row prefix sum (fast for wide images); narrow
# images are painted flat and transposed instead.
_PREFIX_MIN_WIDTH = 64
# Pixels per band when a plain (non-dask) array is streamed.
_DEFAULT_BAND_PIXELS = 1 << 24
# Integers formatted per vectorised batch.
_FORMAT_BATCH = 1 << 20
# Pixels compared per chunk when looking for run boundaries.
_CHUNK = 1 << 20
# Tokens longer than this many characters cannot be int64 pixel indices.
_MAX_TOKEN_CHARS = 18


class RLEError(SlideSegError, ValueError):
    """An RLE string, COCO RLE or RLE CSV file is malformed or ambiguous.

    Parameters
    ----------
    problem
        What is wrong, as a sentence fragment (no file name or row in it).
    source
        The file the problem is about, if any.
    row
        1-based data row of a CSV file (the header is not counted), if any.
    row_id
        The row's image or object id, if known.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str | os.PathLike | None = None,
        row: int | None = None,
        row_id: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = os.fspath(source) if source is not None else None
        self.row = row
        self.row_id = row_id
        parts = []
        if self.source:
            parts.append(self.source)
        where = f"row {row}" if row is not None else ""
        if row_id not in (None, ""):
            where = f"{where} (id {row_id!r})" if where else f"id {row_id!r}"
        if where:
            parts.append(where)
        parts.append(problem)
        super().__init__(": ".join(parts))

    def located(
        self,
        source: str | os.PathLike | None = None,
        row: int | None = None,
        row_id: str | None = None,
    ) -> RLEError:
        """A copy of this error that also names ``source``, ``row`` and ``row_id``."""
        return RLEError(
            self.problem,
            source=source if source is not None else self.source,
            row=row if row is not None else self.row,
            row_id=row_id if row_id is not None else self.row_id,
        )


# -----------------------------------------------------------------------------
# argument checks
# -----------------------------------------------------------------------------
def _check_order(order: Any) -> str:
    if order is None:
        raise RLEError(
            "the pixel order is not known: pass order='col' (column-major: HuBMAP, Airbus) "
            "or order='row' (row-major: Carvana); guess_order() compares both with a "
            "reference mask"
        )
    if order not in ORDERS:
        raise RLEError(f"order must be 'col' or 'row', got {order!r}")
    return order


def _check_base(base: Any) -> int:
    if isinstance(base, bool) or base not in (0, 1):
        raise RLEError(f"base must be 0 or 1, got {base!r}")
    return int(base)


def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
        ok = all(int(v) == v for v in shape)
    except (TypeError, ValueError):
        ok = False
    if not ok or h < 0 or w < 0:
        raise RLEError(f"shape must be (height, width) with non-negative integers, got {shape!r}")
    return h, w


def _check_value(value: Any, dtype: Any) -> Any:
    dtype = np.dtype(dtype)
    try:
        v = np.asarray(value).astype(dtype)
        ok = v.ndim == 0 and v == value
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise RLEError(f"value {value!r} cannot be stored in a {dtype} array")
    return v[()]


def _is_dask(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "compute")


def _is_empty_rle(rle: Any) -> bool:
    if rle is None:
        return True
    if isinstance(rle, float):
        return bool(np.isnan(rle))
    if isinstance(rle, bytes):
        rle = rle.decode("ascii", errors="replace")
    if isinstance(rle, str):
        s = rle.strip()
        return s == "" or s.lower() == "nan"
    return False


def _as_2d(a: Any, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise RLEError(f"{what} must be a 2D array, got shape {a.shape}")
    return a


# -----------------------------------------------------------------------------
# parsing and formatting integers
# -----------------------------------------------------------------------------
_SPACE = np.zeros(256, bool)
_SPACE[[9, 10, 11, 12, 13, 32]] = True
_DIGIT = np.zeros(256, bool)
_DIGIT[48:58] = True
_ALLOWED = _SPACE | _DIGIT
_ALLOWED[45] = True  # '-', reported later as a bad start or length
_POW10 = 10 ** np.arange(1, 19, dtype=np.int64)
_INT64_MAX = 2**63 - 1


def _bad_token(tokens: list[str]) -> RLEError:
    for i, tok in enumerate(tokens, 1):
        body = tok[1:] if tok.startswith("-") else tok
        if not (body.isascii() and body.isdigit()):
            return RLEError(f"token {i} ({tok[:40]!r}) is not an integer")
        if len(tok) > _MAX_TOKEN_CHARS and abs(int(tok)) > _INT64_MAX:
            return RLEError(
                f"token {i} ({tok[:40]!r}) is larger than any pixel index (at most {_INT64_MAX})"
            )
    return RLEError("the RLE string could not be read as integers")


def _parse_ints(text: str) -> np.ndarray:
    """Whitespace-separated integers of ``text`` as int64 (vectorised, strict)."""
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise _bad_token(text.split()) from None
    b = np.frombuffer(raw, np.uint8)
    if b.size == 0:
        return np.empty(0, np.int64)
    if not _ALLOWED[b].all():
        raise _bad_token(text.split())
    sp = _SPACE[b]
    word = ~sp
    first = word.copy()
    first[1:] &= sp[:-1]
    last = word.copy()
    last[:-1] &= sp[1:]
    starts = np.flatnonzero(first)
    lengths = np.flatnonzero(last) - starts + 1
    minus = np.flatnonzero(b == 45)
    if minus.size:
        nxt = np.minimum(minus + 1, b.size - 1)
        if not (first[minus].all() and (minus + 1 < b.size).all() and _DIGIT[b[nxt]].all()):
            raise _bad_token(text.split())
    if lengths.size and lengths.max() > _MAX_TOKEN_CHARS:
        # Long tokens (leading zeros, or really too large): exact Python integers.
        toks = text.split()
        vals = [int(t) for t in toks]
        if any(abs(v) > _INT64_MAX for v in vals):
            raise _bad_token(toks)
        return np.array(vals, np.int64)
    try:
        out = np.fromstring(text, dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning):  # pragma: no cover - guarded above
        out = np.array(text.split(), dtype=np.int64)
    if out.size != starts.size:  # pragma: no cover - guarded above
        raise _bad_token(text.split())
    return out


def _join_ints(a: np.ndarray) -> str:
    """``" ".join(map(str, a))`` for non-negative integers, vectorised.

    Digits are written into a ``(digits + 1, n)`` byte table (one row per
    decimal place, so every step is a contiguous vector operation), then each
    number's significant digits and a space are picked in order.
    """
    if a.size == 0:
        return ""
    if a.size > _FORMAT_BATCH:
        return " ".join(
            _join_ints(a[i : i + _FORMAT_BATCH]) for i in range(0, a.size, _FORMAT_BATCH)
        )
    top = int(a.max())
    d = len(str(top))
    x = np.asarray(a).astype(np.uint32 if top < 2**32 else np.uint64)
    nd = np.ones(a.size, np.int8)
    for p in _POW10[: d - 1]:
        nd += x >= p
    table = np.empty((d + 1, a.size), np.uint8)
    table[d] = 32
    for j in range(d - 1, -1, -1):
        q = x // 10  # division by a constant: much faster than np.divmod
        np.subtract(x, q * 10, out=x)
        table[j] = x
        x = q
    table[:d] += 48
    keep = np.arange(d + 1, dtype=np.int8)[:, None] >= (d - nd)[None, :]
    chars = np.ascontiguousarray(table.T)[np.ascontiguousarray(keep.T)]
    return chars[:-1].tobytes().decode("ascii")


def _format_runs(starts: np.ndarray, ends: np.ndarray, base: int) -> str:
    """Kaggle RLE text of 0-based runs ``[starts, ends)``."""
    pairs = np.empty(2 * starts.size, np.int64)
    pairs[0::2] = starts
    pairs[0::2] += base
    pairs[1::2] = ends - starts
    return _join_ints(pairs)


# -----------------------------------------------------------------------------
# runs: parsing, validation, painting
# -----------------------------------------------------------------------------
_NO_RUNS = (np.empty(0, np.int64), np.empty(0, np.int64))


def _runs_from_rle(rle: Any, h: int, w: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated 0-based ``(starts, ends)`` of a Kaggle RLE over an ``h x w`` image."""
    if _is_empty_rle(rle):
        return _NO_RUNS
    if isinstance(rle, bytes):
        rle = rle.decode("ascii", errors="replace")
    if not isinstance(rle, str):
        raise RLEError(f"an RLE must be a string, got {type(rle).__name__}")
    t = _parse_ints(rle)
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


def _paint(
    s: np.ndarray, e: np.ndarray, vals: Any, h: int, w: int, order: str, dtype: Any
) -> np.ndarray:
    """A C-contiguous ``(h, w)`` array with ``vals`` on sorted, disjoint runs ``[s, e)``."""
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


def _paint_into(out: np.ndarray, s: np.ndarray, e: np.ndarray, value: Any, order: str) -> None:
    """Set ``out`` to ``value`` on the runs ``[s, e)``; other pixels are left alone."""
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
    m = _paint(s, e, 1, h, w, order, np.uint8)
    np.copyto(out, value, where=m.view(np.bool_))


def _union_runs(s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of possibly overlapping runs as sorted, disjoint runs."""
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
# run detection
# -----------------------------------------------------------------------------
def _change_starts(a: np.ndarray, order: str) -> np.ndarray:
    """Sorted flat indices (in ``order``) where a run of equal values starts; 0 first.

    Pixels are compared in cache-sized chunks, so the comparison never
    allocates a mask-sized temporary.
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


def _values_at(a: np.ndarray, ks: np.ndarray, order: str) -> np.ndarray:
    h, w = a.shape
    if order == "row":
        y, x = np.divmod(ks, w)
    else:
        x, y = np.divmod(ks, h)
    return a[y, x]


def _runs(a: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, values)`` of the runs of equal nonzero values of ``a``."""
    ks = _change_starts(a, order)
    if ks.size == 0:
        return ks, ks, np.empty(0, a.dtype)
    vals = _values_at(a, ks, order)
    ends = np.append(ks[1:], a.size)
    sel = vals != 0
    return ks[sel], ends[sel], vals[sel]


def _binary_runs(a: np.ndarray, order: str) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the runs of nonzero pixels of ``a``.

    Runs of equal values are found on the raw array (no bool copy) and
    touching runs of different nonzero values are then merged.
    """
    s, e, _ = _runs(a, order)
    if s.size < 2 or a.dtype == np.bool_:
        return s, e
    gap = s[1:] != e[:-1]
    return s[np.append(True, gap)], e[np.append(gap, True)]


def _group_by_value(
    s: np.ndarray, e: np.ndarray, v: np.ndarray
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(value, starts, ends)`` per distinct value; runs keep their order."""
    if s.size == 0:
        return
    idx = np.argsort(v, kind="stable")
    vs = v[idx]
    cut = np.flatnonzero(vs[1:] != vs[:-1]) + 1
    for a, b in zip(np.append(0, cut).tolist(), np.append(cut, vs.size).tolist(), strict=True):
        sel = idx[a:b]
        yield int(vs[a]), s[sel], e[sel]


def _check_label_dtype(dtype: Any, what: str = "labels") -> None:
    if np.dtype(dtype).kind not in "biu":
        raise RLEError(f"{what} must be an integer or bool array, got dtype {np.dtype(dtype)}")


# -----------------------------------------------------------------------------
# Kaggle RLE: binary masks
# -----------------------------------------------------------------------------
def rle_encode(mask: Any, *, order: str, base: int = 1) -> str:
    """Encode a binary mask as a Kaggle RLE string.

    Parameters
    ----------
    mask
        2D array; nonzero pixels are foreground. A dask array is encoded band
        by band (see :func:`iter_rle_text_dask`).
    order
        ``"col"`` (column-major: HuBMAP, Airbus) or ``"row"`` (row-major:
        Carvana). Required: the string does not record it.
    base
        Index of the first pixel, 1 (Kaggle) or 0.

    Returns
    -------
    str
        Space-separated ``start length`` pairs; ``""`` for an empty mask.
    """
    _check_order(order)
    base = _check_base(base)
    if _is_dask(mask):
        return " ".join(iter_rle_text_dask(mask, order=order, base=base))
    s, e = _binary_runs(_as_2d(mask, "mask"), order)
    return _format_runs(s, e, base)


def rle_decode(
    rle: str | None,
    shape: tuple[int, int],
    *,
    order: str,
    base: int = 1,
    value: Any = 1,
    dtype: Any = np.uint8,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode a Kaggle RLE string into a mask.

    Parameters
    ----------
    rle
        Space-separated ``start length`` pairs. ``""``, ``None`` and ``NaN``
        are an empty mask.
    shape
        ``(height, width)`` of the image.
    order
        ``"col"`` or ``"row"``, as the string was written.
    base
        Index of the first pixel, 1 (Kaggle) or 0.
    value
        Value painted on the runs.
    dtype
        dtype of the returned array when ``out`` is not given.
    out
        An existing ``(height, width)`` array to paint ``value`` into; other
        pixels are left alone, so several classes or instances can be painted
        into one label image.

    Returns
    -------
    numpy.ndarray
        ``out``, or a new C-contiguous ``(height, width)`` array of ``dtype``.

    Raises
    ------
    RLEError
        Odd token count, non-integer tokens, a start before the first pixel, a
        length below 1, unsorted or overlapping runs, or a run past the end.
    """
    _check_order(order)
    base = _check_base(base)
    h, w = _check_shape(shape)
    s, e = _runs_from_rle(rle, h, w, base)
    if out is None:
        v = _check_value(value, dtype)
        return _paint(s, e, v, h, w, order, dtype)
    if tuple(out.shape) != (h, w):
        raise RLEError(f"out has shape {tuple(out.shape)} but shape is {(h, w)}")
    v = _check_value(value, out.dtype)
    _paint_into(out, s, e, v, order)
    return out


def rle_decode_rows(
    rle: str | None,
    shape: tuple[int, int],
    *,
    order: str,
    base: int = 1,
    band_rows: int = 1024,
    value: Any = 1,
    dtype: Any = np.uint8,
) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a Kaggle RLE string band by band, for streaming writers.

    The string is validated in full before the first band is yielded.

    Parameters
    ----------
    rle, shape, order, base, value, dtype
        As for :func:`rle_decode`.
    band_rows
        Band size: rows per band for ``order="row"``, columns per band for
        ``order="col"`` (the bands that are contiguous in the flattened mask).

    Yields
    ------
    tuple
        ``(y0, band)`` with ``band = mask[y0:y0 + band_rows]`` for
        ``order="row"``; ``(x0, band)`` with
        ``band = mask[:, x0:x0 + band_rows]`` for ``order="col"``.
    """
    _check_order(order)
    base = _check_base(base)
    h, w = _check_shape(shape)
    if int(band_rows) < 1:
        raise RLEError(f"band_rows must be at least 1, got {band_rows!r}")
    v = _check_value(value, dtype)
    s, e = _runs_from_rle(rle, h, w, base)
    total, other = (h, w) if order == "row" else (w, h)
    for a0 in range(0, total, int(band_rows)):
        a1 = min(a0 + int(band_rows), total)
        lo, hi = a0 * other, a1 * other
        i0 = int(np.searchsorted(e, lo, side="right"))
        i1 = int(np.searchsorted(s, hi, side="left"))
        bs = np.clip(s[i0:i1], lo, hi) - lo
        be = np.clip(e[i0:i1], lo, hi) - lo
        bh, bw = (a1 - a0, w) if order == "row" else (h, a1 - a0)
        yield a0, _paint(bs, be, v, bh, bw, order, dtype)


# -----------------------------------------------------------------------------
# Kaggle RLE: label images
# -----------------------------------------------------------------------------
def encode_labels(
    labels: Any,
    *,
    order: str,
    base: int = 1,
    values: Iterable[int] | None = None,
) -> dict[int, str]:
    """Encode each value of a label image as its own Kaggle RLE string.

    The image is scanned once for runs of equal values; the runs (not the
    pixels) are then grouped by value.

    Parameters
    ----------
    labels
        2D integer or bool array (a dask array is streamed, see
        :func:`rle_encode_dask`).
    order
        ``"col"`` or ``"row"``.
    base
        Index of the first pixel, 1 or 0.
    values
        Values to encode; every one gets an entry (``""`` when absent). By
        default every nonzero value present.

    Returns
    -------
    dict
        ``{value: rle}``, sorted by value.
    """
    if _is_dask(labels):
        return rle_encode_dask(labels, order=order, base=base, values=values)
    _check_order(order)
    base = _check_base(base)
    a = _as_2d(labels, "labels")
    _check_label_dtype(a.dtype)
    s, e, v = _runs(a, order)
    wanted = None if values is None else sorted({int(x) for x in values})
    if wanted is not None:
        sel = np.isin(v, np.asarray(wanted, dtype=np.int64))
        s, e, v = s[sel], e[sel], v[sel]
    out = {value: _format_runs(vs, ve, base) for value, vs, ve in _group_by_value(s, e, v)}
    if wanted is not None:
        return {k: out.get(k, "") for k in wanted}
    return out


def decode_labels(
    rles: Mapping[int, str | None],
    shape: tuple[int, int],
    *,
    order: str,
    base: int = 1,
    dtype: Any = np.uint32,
) -> np.ndarray:
    """Decode ``{value: rle}`` into one label image.

    Parameters
    ----------
    rles
        RLE string per label value.
    shape
        ``(height, width)``.
    order
        ``"col"`` or ``"row"``.
    base
        Index of the first pixel, 1 or 0.
    dtype
        Integer dtype of the label image.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` label image, 0 where no run covers a pixel.

    Raises
    ------
    RLEError
        A malformed string (naming its value), a value that does not fit
        ``dtype``, or runs of two values that overlap.
    """
    _check_order(order)
    base = _check_base(base)
    h, w = _check_shape(shape)
    _check_label_dtype(dtype, "dtype")
    ss, es, vs = [], [], []
    for value, rle in rles.items():
        v = _check_value(value, dtype)
        try:
            s, e = _runs_from_rle(rle, h, w, base)
        except RLEError as err:
            raise RLEError(f"value {value}: {err.problem}") from None
        ss.append(s)
        es.append(e)
        vs.append(np.full(s.size, v, dtype))
    if not ss:
        return np.zeros((h, w), dtype)
    s, e, v = np.concatenate(ss), np.concatenate(es), np.concatenate(vs)
    idx = np.argsort(s, kind="stable")
    s, e, v = s[idx], e[idx], v[idx]
    bad = np.flatnonzero(s[1:] < e[:-1])
    if bad.size:
        i = int(bad[0]) + 1
        raise RLEError(
            f"runs of values {v[i - 1]} and {v[i]} overlap at pixel {s[i] + base}; a label "
            "image holds one value per pixel"
        )
    return _paint(s, e, v, h, w, order, dtype)


# -----------------------------------------------------------------------------
# streaming (dask)
# -----------------------------------------------------------------------------
def _band_edges(arr: Any, axis: int, band: int | None) -> list[int]:
    size = int(arr.shape[axis])
    if band is None:
        chunks = getattr(arr, "chunks", None)
        if chunks is not None and _is_dask(arr):
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
        if _is_dask(blk):
            blk = blk.compute(scheduler="threads")
        yield (a0 * w if axis == 0 else a0 * h), np.asarray(blk)


def _iter_stream_runs(
    arr: Any, order: str, band: int | None, binary: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Finished nonzero runs ``(starts, ends, values)`` band by band.

    The last run of a band stays open and is merged with the first run of the
    next band when the values agree, so runs cross band boundaries.
    """
    n = int(arr.shape[0]) * int(arr.shape[1])
    pend_s: int | None = None
    pend_v: Any = None
    for off, blk in _iter_bands(arr, order, band):
        if binary and blk.dtype != np.bool_:
            blk = blk != 0
        ks = _change_starts(blk, order)
        if ks.size == 0:
            continue
        vals = _values_at(blk, ks, order)
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
            yield fs[sel], fe[sel], fv[sel]
    if pend_s is not None and pend_v != 0:
        yield (
            np.array([pend_s], np.int64),
            np.array([n], np.int64),
            np.array([pend_v]),
        )


def _check_stream_input(arr: Any, order: str, base: int) -> int:
    _check_order(order)
    base = _check_base(base)
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
    """
    base = _check_stream_input(arr, order, base)
    _check_label_dtype(arr.dtype)
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
        for value, gs, ge in _group_by_value(s, e, v):
            out[value] = _format_runs(gs, ge, base)
    if wanted is not None:
        return {k: out.get(k, "") for k in wanted}
    return out


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
    """
    base = _check_stream_input(arr, order, base)
    for s, e, _ in _iter_stream_runs(arr, order, band, binary=True):
        yield _format_runs(s, e, base)


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


# -----------------------------------------------------------------------------
# COCO RLE
# -----------------------------------------------------------------------------
def _counts_from_runs(s: np.ndarray, e: np.ndarray, n: int) -> np.ndarray:
    m = s.size
    if m == 0:
        return np.array([n], np.int64)
    c = np.empty(2 * m + 1, np.int64)
    c[0] = s[0]
    c[2:-1:2] = s[1:] - e[:-1]
    c[-1] = n - e[-1]
    c[1::2] = e - s
    return c[:-1] if c[-1] == 0 else c


def _runs_from_counts(counts: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(counts, dtype=np.int64).reshape(-1)
    if c.size and c.min() < 0:
        i = int(np.flatnonzero(c < 0)[0])
        raise RLEError(f"COCO count {i + 1} is negative ({c[i]})")
    total = int(c.sum())
    if total != n:
        raise RLEError(f"COCO counts add up to {total} pixels but the image has {n}")
    b = np.cumsum(c)
    s = b[0:-1:2]
    e = b[1::2]
    keep = e > s
    return s[keep], e[keep]


def _coco_size(rle: Mapping[str, Any]) -> tuple[int, int]:
    try:
        size = rle["size"]
    except (KeyError, TypeError):
        raise RLEError("a COCO RLE needs a 'size': [height, width] entry") from None
    return _check_shape(size)


def coco_encode(mask: Any) -> dict[str, Any]:
    """Encode a binary mask as uncompressed COCO RLE.

    Parameters
    ----------
    mask
        2D array; nonzero pixels are foreground.

    Returns
    -------
    dict
        ``{"size": [h, w], "counts": [...]}``: column-major run lengths that
        start with a background run (0 when the first pixel is foreground),
        as ``pycocotools.mask.frPyObjects`` accepts.
    """
    a = _as_2d(mask, "mask")
    h, w = a.shape
    s, e = _binary_runs(a, "col")
    return {"size": [h, w], "counts": _counts_from_runs(s, e, h * w).tolist()}


def coco_compress(counts: Sequence[int] | np.ndarray) -> str:
    """Compress COCO counts into pycocotools' string form (``rleToString``).

    Each count (from the fourth on, as the difference to the count two places
    earlier) is written as little-endian 5-bit groups with a continuation bit
    (``0x20``), each group offset by 48 to printable ASCII; the last group of a
    number is sign-extended from its ``0x10`` bit.

    Parameters
    ----------
    counts
        Run lengths, background first.

    Returns
    -------
    str
        The ASCII string pycocotools stores as ``counts`` bytes.
    """
    c = np.asarray(counts, dtype=np.int64).reshape(-1)
    if c.size == 0:
        return ""
    x = c.copy()
    x[3:] -= c[1:-2]
    v = np.where(x < 0, ~x, x)
    k = np.ones(x.size, np.int64)
    for j in range(1, 13):
        k += v >= (1 << (5 * j - 1))
    kmax = int(k.max())
    j = np.arange(kmax)
    chars = (x[:, None] >> (5 * j)) & 0x1F
    chars |= np.where(j < (k - 1)[:, None], 0x20, 0)
    chars += 48
    return chars[j < k[:, None]].astype(np.uint8).tobytes().decode("ascii")


def coco_decompress(s: str | bytes) -> list[int]:
    """Decompress pycocotools' string form into counts (``rleFrString``).

    Parameters
    ----------
    s
        The compressed ``counts`` string or bytes.

    Returns
    -------
    list of int
        Run lengths, background first.

    Raises
    ------
    RLEError
        Characters outside ``'0'``..``'o'`` or a truncated last number.
    """
    raw = s.encode("ascii", errors="replace") if isinstance(s, str) else bytes(s)
    b = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if b.size == 0:
        return []
    bad = np.flatnonzero((b < 0) | (b > 63))
    if bad.size:
        i = int(bad[0])
        raise RLEError(
            f"compressed COCO counts: character {i + 1} ({chr(raw[i])!r}) is outside '0'..'o'"
        )
    more = (b & 0x20) != 0
    if more[-1]:
        raise RLEError("compressed COCO counts: the last number is truncated")
    ends = np.flatnonzero(~more)
    starts = np.append(0, ends[:-1] + 1)
    gid = np.repeat(np.arange(ends.size), ends - starts + 1)
    pos = np.arange(b.size) - starts[gid]
    if pos.max() > 12:
        raise RLEError("compressed COCO counts: a number is too long")
    x = np.add.reduceat((b & 0x1F) << (5 * pos), starts)
    k = ends - starts + 1
    neg = (b[ends] & 0x10) != 0
    x[neg] -= np.left_shift(1, 5 * k[neg])
    c = x.copy()
    c[1::2] = np.cumsum(x[1::2])
    c[2::2] = np.cumsum(x[2::2])
    return c.tolist()


def coco_encode_compressed(mask: Any) -> dict[str, Any]:
    """Encode a binary mask as compressed COCO RLE.

    Parameters
    ----------
    mask
        2D array; nonzero pixels are foreground.

    Returns
    -------
    dict
        ``{"size": [h, w], "counts": str}``, equal to
        ``pycocotools.mask.encode(np.asfortranarray(mask))`` with the
        ``counts`` bytes decoded as ASCII.
    """
    rle = coco_encode(mask)
    return {"size": rle["size"], "counts": coco_compress(rle["counts"])}


def coco_decode(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed or not) into a mask.

    Parameters
    ----------
    rle
        ``{"size": [h, w], "counts": list | str | bytes}``.

    Returns
    -------
    numpy.ndarray
        C-contiguous ``(h, w)`` uint8 mask of 0 and 1.

    Raises
    ------
    RLEError
        Missing keys, a malformed string, or counts that do not add up to
        ``h * w``.
    """
    h, w = _coco_size(rle)
    counts = rle.get("counts")
    if counts is None:
        raise RLEError("a COCO RLE needs a 'counts' entry")
    if isinstance(counts, str | bytes):
        counts = coco_decompress(counts)
    s, e = _runs_from_counts(counts, h * w)
    return _paint(s, e, 1, h, w, "col", np.uint8)


def coco_area(rle: Mapping[str, Any]) -> int:
    """Foreground pixel count of a COCO RLE (compressed or not).

    Parameters
    ----------
    rle
        ``{"size": [h, w], "counts": list | str | bytes}``.

    Returns
    -------
    int
        Sum of the foreground (odd-position) counts.
    """
    counts = rle.get("counts")
    if isinstance(counts, str | bytes):
        counts = coco_decompress(counts)
    return int(np.asarray(counts, np.int64)[1::2].sum())


def coco_counts_to_rle(counts: Sequence[int] | np.ndarray, *, base: int = 1) -> str:
    """Convert COCO counts to the equivalent Kaggle RLE (``order="col"``).

    Parameters
    ----------
    counts
        COCO run lengths, background first.
    base
        Index of the first pixel of the Kaggle string, 1 or 0.

    Returns
    -------
    str
        Column-major Kaggle RLE of the same mask.
    """
    base = _check_base(base)
    c = np.asarray(counts, np.int64)
    s, e = _runs_from_counts(c, int(c.sum()))
    return _format_runs(s, e, base)


def rle_to_coco_counts(rle: str | None, shape: tuple[int, int], *, base: int = 1) -> list[int]:
    """Convert a column-major Kaggle RLE to COCO counts without decoding it.

    Parameters
    ----------
    rle
        Kaggle RLE written with ``order="col"``.
    shape
        ``(height, width)``.
    base
        Index of the first pixel, 1 or 0.

    Returns
    -------
    list of int
        COCO counts (background first) of the same mask.
    """
    base = _check_base(base)
    h, w = _check_shape(shape)
    s, e = _runs_from_rle(rle, h, w, base)
    return _counts_from_runs(s, e, h * w).tolist()


# -----------------------------------------------------------------------------
# guessing the order (never used by the decoders)
# -----------------------------------------------------------------------------
def guess_order(rle: str | None, reference: Any, *, base: int = 1) -> dict[str, Any]:
    """Say which pixel order makes an RLE string match a reference mask.

    The string is decoded both ways at the reference's shape and each result
    is compared with the reference's foreground (nonzero pixels) by Dice.

    Parameters
    ----------
    rle
        The Kaggle RLE string.
    reference
        2D mask or label image of the same object (nonzero = foreground).
    base
        Index of the first pixel, 1 or 0.

    Returns
    -------
    dict
        ``{"order": "col" | "row" | None, "dice": {"col": d, "row": d},
        "margin": best - other, "confident": bool}``. ``order`` is None when
        both orders score the same (e.g. a symmetric mask). ``confident`` is
        True when the best Dice is at least ``GUESS_MIN_DICE`` (0.5) and beats
        the other order by at least ``GUESS_MARGIN`` (0.2).
    """
    ref = _as_2d(reference, "reference")
    fg = ref != 0 if ref.dtype != np.bool_ else ref
    nref = int(np.count_nonzero(fg))
    dice: dict[str, float] = {}
    for order in ORDERS:
        m = rle_decode(rle, fg.shape, order=order, base=base, dtype=np.bool_)
        total = int(np.count_nonzero(m)) + nref
        inter = int(np.count_nonzero(m & fg))
        dice[order] = 1.0 if total == 0 else 2.0 * inter / total
    margin = abs(dice["col"] - dice["row"])
    best = None if margin == 0 else max(ORDERS, key=lambda o: dice[o])
    confident = best is not None and dice[best] >= GUESS_MIN_DICE and margin >= GUESS_MARGIN
    return {"order": best, "dice": dice, "margin": margin, "confident": bool(confident)}


# -----------------------------------------------------------------------------
# CSV files
# -----------------------------------------------------------------------------
@contextlib.contextmanager
def _big_fields() -> Iterator[None]:
    """Let the csv module read fields as long as a slide's RLE string."""
    old = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


@contextlib.contextmanager
def _atomic_text(path: Path) -> Iterator[IO[str]]:
    """A text file that replaces ``path`` only if the block succeeds."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _open_csv(path: Path) -> IO[str]:
    if not path.exists():
        raise RLEError("no such file", source=path)
    if not path.is_file():
        raise RLEError("is not a regular file (a directory, pipe or device)", source=path)
    return open(path, newline="", encoding="utf-8-sig")


#: Fraction of the available memory one decoded RLE label image may take.
MEMORY_FRACTION = 0.7


def _available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def _check_alloc(h: int, w: int, itemsize: int) -> None:
    """Refuse a ``(h, w)`` label image that would not fit in memory (before allocating it)."""
    need = h * w * itemsize
    avail = _available_memory()
    if need > MEMORY_FRACTION * avail:
        raise RLEError(
            f"a {h} x {w} label image needs {need / 2**30:.1f} GiB, more than "
            f"{MEMORY_FRACTION:.0%} of the {avail / 2**30:.1f} GiB of memory available; "
            "check the height and width columns"
        )


def _decode_error_row(path: Path) -> tuple[int, str]:
    """1-based data row (0: the header) and the bytes where ``path`` stops being UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        return data.count(b"\n", 0, start), data[start : start + 4].hex(" ")
    return 0, ""


def _csv_rows(fh: IO[str], path: Path) -> Iterator[list[str]]:
    """``csv.reader`` rows whose decoding errors become :class:`RLEError` naming the row."""
    rd = csv.reader(fh)
    while True:
        try:
            rec = next(rd)
        except StopIteration:
            return
        except UnicodeDecodeError:
            row, raw = _decode_error_row(path)
            raise RLEError(
                f"is not UTF-8 text (bytes {raw} cannot be decoded; save the file as UTF-8)",
                source=path,
                row=row or None,
            ) from None
        except csv.Error as exc:
            raise RLEError(f"is not a readable CSV ({exc})", source=path, row=rd.line_num) from None
        yield rec


def write_submission_csv(
    path: str | os.PathLike,
    items: Iterable[tuple[str, Any]],
    *,
    order: str,
    base: int = 1,
    id_column: str = "id",
    rle_column: str = "rle",
) -> Path:
    """Write a Kaggle submission CSV: one ``id,rle`` row per item.

    Parameters
    ----------
    path
        Output file; replaced atomically (no partial file on error).
    items
        ``(id, mask)`` pairs; a mask is a 2D NumPy or dask array (nonzero =
        foreground) or an RLE string written as is (after validation).
        Repeated ids are allowed (Airbus: one row per ship).
    order
        ``"col"`` or ``"row"``, as the competition wants.
    base
        Index of the first pixel, 1 or 0.
    id_column, rle_column
        Header names, e.g. ``"id", "predicted"`` for HuBMAP.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    _check_order(order)
    base = _check_base(base)
    path = Path(path)
    with _atomic_text(path) as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow([id_column, rle_column])
        for row, item in enumerate(items, 1):
            try:
                ident, mask = item
            except (TypeError, ValueError):
                raise RLEError("an item is not an (id, mask) pair", source=path, row=row) from None
            ident = str(ident)
            try:
                if _is_empty_rle(mask):
                    text = ""
                elif isinstance(mask, str | bytes):
                    text = mask.decode("ascii") if isinstance(mask, bytes) else mask
                    text = " ".join(text.split())
                    _runs_from_rle(text, 1, sys.maxsize // 4, base)
                else:
                    text = rle_encode(mask, order=order, base=base)
            except RLEError as err:
                raise err.located(path, row, ident) from None
            wr.writerow([ident, text])
    return path


def _find_column(header: list[str], names: Sequence[str]) -> int | None:
    low = [h.strip().lower() for h in header]
    for name in names:
        if name in low:
            return low.index(name)
    return None


def read_rle_csv_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """Read an RLE CSV's rows as raw strings, without decoding anything.

    Parameters
    ----------
    path
        Any CSV file with a header row.

    Returns
    -------
    list of dict
        One ``{column: text}`` per data row.
    """
    path = Path(path)
    with _big_fields(), _open_csv(path) as fh:
        rows = _csv_rows(fh, path)
        header = next(rows, None)
        if not header:
            return []
        return [dict(zip(header, r, strict=False)) for r in rows if r]


def read_submission_csv(
    path: str | os.PathLike,
    *,
    order: str,
    base: int = 1,
    shapes: Mapping[str, tuple[int, int]] | tuple[int, int],
    id_column: str | None = None,
    rle_column: str | None = None,
) -> dict[str, np.ndarray]:
    """Decode a Kaggle submission-style CSV into one binary mask per id.

    Parameters
    ----------
    path
        CSV with an id column and an RLE column.
    order
        ``"col"`` or ``"row"``; the file does not record it.
    base
        Index of the first pixel, 1 or 0.
    shapes
        ``(height, width)`` for every image, or ``{id: (height, width)}``.
    id_column, rle_column
        Header names; by default the first and the second column.

    Returns
    -------
    dict
        ``{id: uint8 mask}``; rows repeating an id are merged (union).
    """
    _check_order(order)
    base = _check_base(base)
    path = Path(path)
    runs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    shape_of: dict[str, tuple[int, int]] = {}
    fixed = None if isinstance(shapes, Mapping) else _check_shape(shapes)
    with _big_fields(), _open_csv(path) as fh:
        rd = _csv_rows(fh, path)
        header = next(rd, None)
        if not header:
            raise RLEError("empty file: expected a header row", source=path)
        if len(header) < 2 and (id_column is None or rle_column is None):
            raise RLEError(f"expected an id and an RLE column, found {header!r}", source=path)
        ci = 0 if id_column is None else _find_column(header, [id_column.lower()])
        cr = 1 if rle_column is None else _find_column(header, [rle_column.lower()])
        for name, col in ((id_column, ci), (rle_column, cr)):
            if col is None:
                raise RLEError(f"no column {name!r} in the header {header!r}", source=path)
        for row, rec in enumerate(rd, 1):
            if not rec:
                continue
            ident = rec[ci] if ci < len(rec) else ""
            if len(rec) != len(header):
                raise RLEError(
                    f"{len(rec)} fields but the header has {len(header)}",
                    source=path,
                    row=row,
                    row_id=ident,
                )
            if fixed is not None:
                shape = fixed
            else:
                if ident not in shapes:
                    raise RLEError("no shape given for this id", source=path, row=row, row_id=ident)
                shape = _check_shape(shapes[ident])
            try:
                if ident not in shape_of:
                    _check_alloc(*shape, 1)
                s, e = _runs_from_rle(rec[cr], *shape, base)
            except RLEError as err:
                raise err.located(path, row, ident) from None
            runs.setdefault(ident, []).append((s, e))
            shape_of[ident] = shape
    out = {}
    for ident, parts in runs.items():
        h, w = shape_of[ident]
        s = np.concatenate([p[0] for p in parts])
        e = np.concatenate([p[1] for p in parts])
        if len(parts) > 1:
            s, e = _union_runs(s, e)
        out[ident] = _paint(s, e, 1, h, w, order, np.uint8)
    return out


def _label_dtype(maxval: int, minimum: Any = np.uint8) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        if np.dtype(dt).itemsize >= np.dtype(minimum).itemsize and maxval <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise RLEError(f"label value {maxval} is too large")


_COLS = {
    "rle": ("rle", "predicted", "encodedpixels", "encoded_pixels", "annotation", "segmentation"),
    "id": ("image_id", "id", "imageid", "img_id", "img", "image"),
    "instance": ("instance_id", "object_id"),
    "class": ("class_index", "class_id", "classid"),
    "class_name": ("class_name",),
    "class_color": ("class_color",),
    "height": ("height",),
    "width": ("width",),
    "order": ("order",),
    "base": ("base",),
    "level": ("level",),
    "slide_height": ("slide_height",),
    "slide_width": ("slide_width",),
    "mpp_y": ("mpp_y",),
    "mpp_x": ("mpp_x",),
}


_UINT64_MAX = 2**64 - 1
#: Largest height or width a row may state (also bounded by memory, see _check_alloc).
_MAX_SIDE = 2**31 - 1


def _int_field(text: str, what: str, minimum: int = 0, maximum: int = _MAX_SIDE) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise RLEError(f"{what} {text!r} is not an integer") from None
    if v < minimum:
        raise RLEError(f"{what} {v} is below {minimum}")
    if v > maximum:
        raise RLEError(f"{what} {v} is above the largest allowed value {maximum}")
    return v


def _placement_info(
    fields: Mapping[str, str], shape: tuple[int, int], path: Path
) -> dict[str, Any]:
    """``level``, ``slide_shape`` and ``mpp`` (µm per mask pixel or None) from the placement columns."""
    try:
        level = _int_field(fields["level"], "level")
        sh, sw = fields["slide_height"], fields["slide_width"]
        slide = (
            (_int_field(sh, "slide height", 1), _int_field(sw, "slide width", 1))
            if sh and sw
            else None
        )
        my, mx = fields["mpp_y"], fields["mpp_x"]
        mpp = (float(my), float(mx)) if my and mx else None
    except (RLEError, ValueError) as err:
        raise RLEError(f"unreadable placement columns ({err})", source=path) from None
    return {"level": level, "slide_shape": slide, "mpp": mpp}


def read_rle_csv(
    path: str | os.PathLike,
    *,
    order: str | None = None,
    base: int | None = None,
    shape: tuple[int, int] | None = None,
    image_id: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read an RLE CSV (semantic, instance or Kaggle layout) into a label image.

    Layouts are told apart by their header: an ``instance_id`` column means
    one row per object (pixels get the instance id), a ``class_index`` (or
    ``ClassId``) column one row per class (pixels get the class index);
    otherwise it is a Kaggle file (``id,rle``-like: ``predicted``,
    ``EncodedPixels``, ``annotation``...), decoded as a binary mask when the
    image has one row and as instances numbered 1, 2, ... in row order when
    it has several. Where rows overlap (instances in some Kaggle data), the
    later row wins and ``info["overlaps"]`` is True.

    Parameters
    ----------
    path
        The CSV file.
    order
        Pixel order for files without an ``order`` column; required for those
        (see :func:`guess_order`). A recorded order that differs is an error.
    base
        First pixel index for files without a ``base`` column (default 1).
    shape
        ``(height, width)`` for files without ``height``/``width`` columns; a
        recorded shape takes precedence.
    image_id
        Which image to read when the file holds several.

    Returns
    -------
    tuple
        ``(labels, info)``: a C-contiguous unsigned label image and
        ``{"layout", "image_id", "order", "shape", "n_rows", "class_names",
        "class_colors", "instance_classes", "overlaps"}`` (``class_names[i]``
        names class ``i``, index 0 is ``"background"``; None when the file
        names no class; ``class_colors[i]`` its RGB from a ``class_color``
        column, None where the file states none), plus ``level``, ``slide_shape`` and ``mpp`` (µm per mask
        pixel) when the file has the :data:`PLACEMENT_COLUMNS`.

    Raises
    ------
    RLEError
        Unknown order or shape, several images without ``image_id``, or a
        malformed row (naming the file and the 1-based data row).
    """
    path = Path(path)
    if order is not None:
        _check_order(order)
    if base is not None:
        base = _check_base(base)
    fixed_shape = None if shape is None else _check_shape(shape)
    with _big_fields(), _open_csv(path) as fh:
        rd = _csv_rows(fh, path)
        header = next(rd, None)
        if not header:
            raise RLEError("empty file: expected a header row", source=path)
        col = {k: _find_column(header, names) for k, names in _COLS.items()}
        if col["rle"] is None and len(header) == 2:
            col["rle"] = 1
        if col["id"] is None and len(header) == 2:
            col["id"] = 0
        if col["rle"] is None:
            raise RLEError(f"no RLE column in the header {header!r}", source=path)
        if col["order"] is None and order is None:
            raise RLEError(
                "the file does not record the pixel order: pass order='col' (column-major: "
                "HuBMAP, Airbus) or order='row' (row-major: Carvana); guess_order() compares "
                "both with a reference mask",
                source=path,
            )
        if (col["height"] is None or col["width"] is None) and fixed_shape is None:
            raise RLEError(
                "the file does not record the image shape (height, width columns): pass "
                "shape=(height, width)",
                source=path,
            )
        layout = (
            "instance"
            if col["instance"] is not None
            else "semantic"
            if col["class"] is not None
            else "kaggle"
        )
        chosen = image_id
        file_shape: tuple[int, int] | None = None
        file_order: str | None = None
        ss: list[np.ndarray] = []
        es: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        names: dict[int, str] = {}
        colors: dict[int, tuple[int, int, int]] = {}
        instance_classes: dict[int, int] = {}
        placed: dict[str, str] | None = None
        n_rows = 0
        for row, rec in enumerate(rd, 1):
            if not rec:
                continue
            ident = rec[col["id"]] if col["id"] is not None and col["id"] < len(rec) else None
            try:
                if len(rec) != len(header):
                    raise RLEError(f"{len(rec)} fields but the header has {len(header)}")
                if col["id"] is not None:
                    if chosen is None:
                        chosen = ident
                    elif ident != chosen:
                        if image_id is not None:
                            continue
                        raise RLEError(
                            f"the file holds more than one image ({chosen!r}, {ident!r}, ...): "
                            "pass image_id to choose one"
                        )

                def field(key: str, rec: list[str] = rec) -> str:
                    c = col[key]
                    return "" if c is None else rec[c].strip()

                r_order = field("order") or order
                if r_order is None:
                    raise RLEError("the row does not record its pixel order; pass order=")
                if r_order not in ORDERS:
                    raise RLEError(f"order must be 'col' or 'row', found {r_order!r}")
                if order is not None and r_order != order:
                    raise RLEError(
                        f"the row records order {r_order!r} but order={order!r} was passed"
                    )
                if file_order is None:
                    file_order = r_order
                elif r_order != file_order:
                    raise RLEError(
                        f"the row uses order {r_order!r} but earlier rows use {file_order!r}"
                    )
                b = field("base")
                r_base = _check_base(_int_field(b, "base")) if b else (1 if base is None else base)
                if base is not None and b and r_base != base:
                    raise RLEError(f"the row records base {r_base} but base={base} was passed")
                hh, ww = field("height"), field("width")
                if hh and ww:
                    r_shape = (_int_field(hh, "height"), _int_field(ww, "width"))
                elif fixed_shape is not None:
                    r_shape = fixed_shape
                else:
                    raise RLEError("the row does not record height and width; pass shape=")
                if file_shape is None:
                    _check_alloc(*r_shape, 1)
                    file_shape = r_shape
                elif r_shape != file_shape:
                    raise RLEError(
                        f"the row's shape {r_shape} differs from earlier rows' {file_shape}"
                    )
                if placed is None and field("level"):
                    placed = {k: field(k) for k in PLACEMENT_COLUMNS}
                text = rec[col["rle"]]
                s, e = _runs_from_rle(text, *r_shape, r_base)
                ci_text = field("class")
                ci = _int_field(ci_text, "class index") if ci_text else None
                if ci is not None and field("class_name"):
                    names[ci] = field("class_name")
                if ci is not None and field("class_color"):
                    colors[ci] = _parse_color(field("class_color"))
                if layout == "instance":
                    value = _int_field(field("instance"), "instance id", maximum=_UINT64_MAX)
                    if ci is not None:
                        instance_classes[value] = ci
                elif layout == "semantic":
                    if ci is None:
                        raise RLEError("the class index is empty")
                    value = ci
                else:
                    if s.size == 0:
                        n_rows += 1
                        continue
                    value = len(ss) + 1
            except RLEError as err:
                raise err.located(path, row, ident) from None
            n_rows += 1
            ss.append(s)
            es.append(e)
            vs.append(np.full(s.size, value, np.uint64))
    if n_rows == 0 and image_id is not None:
        raise RLEError(f"no rows for image {image_id!r}", source=path)
    shape_out = file_shape or fixed_shape
    if shape_out is None:
        raise RLEError("no rows for the image and no shape given", source=path)
    h, w = shape_out
    order_out = file_order or order
    info: dict[str, Any] = {
        "layout": layout,
        "image_id": chosen,
        "order": order_out,
        "shape": (h, w),
        "n_rows": n_rows,
        "class_names": None,
        "class_colors": None,
        "instance_classes": instance_classes if layout == "instance" else None,
        "overlaps": False,
    }
    if placed is not None:
        info.update(_placement_info(placed, (h, w), path))
    if names:
        top = max(names)
        info["class_names"] = ["background"] + [
            names.get(i, f"class {i}") for i in range(1, top + 1)
        ]
        if 0 in names:
            info["class_names"][0] = names[0]
    if colors:
        top = max(max(colors), len(info["class_names"] or [None]) - 1)
        info["class_colors"] = [colors.get(i) for i in range(top + 1)]
    if not ss:
        return np.zeros((h, w), _label_dtype(0)), info
    s, e, v = np.concatenate(ss), np.concatenate(es), np.concatenate(vs)
    dtype = _label_dtype(
        int(v.max()) if v.size else 0, np.uint32 if layout != "semantic" else np.uint8
    )
    if layout == "kaggle" and len(ss) == 1:
        dtype = np.dtype(np.uint8)
    try:
        _check_alloc(h, w, dtype.itemsize)
    except RLEError as err:
        raise err.located(path) from None
    idx = np.argsort(s, kind="stable")
    ssorted, esorted = s[idx], e[idx]
    if not np.any(ssorted[1:] < esorted[:-1]):
        return _paint(ssorted, esorted, v[idx], h, w, order_out, dtype), info
    info["overlaps"] = True
    out = np.zeros((h, w), dtype)
    for rs, re_, rv in zip(ss, es, vs, strict=True):
        if rs.size:
            _paint_into(out, rs, re_, dtype.type(rv[0]), order_out)
    return out, info


def _format_color(colors: Sequence[Sequence[int]], index: Any) -> str:
    if index == "" or index is None or not 0 <= int(index) < len(colors):
        return ""
    r, g, b = (int(v) for v in colors[int(index)][:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _parse_color(text: str) -> tuple[int, int, int]:
    t = text.strip().lstrip("#")
    if len(t) != 6:
        raise RLEError(f"class colour {text!r} is not #rrggbb")
    try:
        return (int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16))
    except ValueError:
        raise RLEError(f"class colour {text!r} is not #rrggbb") from None


def _placement_fields(placement: Any, shape: tuple[int, int]) -> list[Any]:
    slide = placement.slide_shape
    if slide is None:
        fy, fx = placement.factors
        slide = (round(shape[0] * fy), round(shape[1] * fx))
    mpp = placement.pixel_mpp
    return [
        int(placement.level),
        int(slide[0]),
        int(slide[1]),
        "" if mpp is None else repr(float(mpp[0])),
        "" if mpp is None else repr(float(mpp[1])),
    ]


def write_rle_csv(
    path: str | os.PathLike,
    labels: Any,
    *,
    layout: str = "semantic",
    order: str = "col",
    base: int = 1,
    image_id: str | None = None,
    class_names: Sequence[str] | None = None,
    instance_classes: Mapping[int, int] | None = None,
    band: int | None = None,
    placement: Any = None,
    class_colors: Sequence[Sequence[int]] | None = None,
) -> Path:
    """Write a label image as an RLE CSV (semantic or instance layout).

    Every row records ``height``, ``width``, ``order`` and ``base``, so
    :func:`read_rle_csv` needs no arguments to read the file back.

    Parameters
    ----------
    path
        Output file; replaced atomically (no partial file on error).
    labels
        2D integer or bool NumPy or dask array (dask arrays are encoded band
        by band with :func:`rle_encode_dask`). Values must be non-negative.
    layout
        ``"semantic"``: one row per class (pixel values are class indices;
        0 is background and gets no row). ``"instance"``: one row per object
        (pixel values are instance ids).
    order
        ``"col"`` (default, HuBMAP/Airbus/COCO) or ``"row"``.
    base
        Index of the first pixel, 1 or 0.
    image_id
        Value of the ``image_id`` column; the file name stem by default.
    class_names
        Name of each class index (index 0 = background). In the semantic
        layout every named class gets a row, with an empty RLE when absent.
    instance_classes
        ``{instance id: class index}`` for the instance layout.
    band
        Band size for dask input (see :func:`rle_encode_dask`).
    placement
        A :class:`~napari_slideseg.io.placement.Placement`: every row then
        states the pyramid ``level`` the mask's pixels are on, the slide's
        level-0 ``slide_height``/``slide_width`` and the mask pixels'
        ``mpp_y``/``mpp_x`` (:data:`PLACEMENT_COLUMNS`, before ``rle``).
    class_colors
        RGB colour of each class index (with ``class_names``): a
        ``class_color`` column (``#rrggbb``) after ``class_name``, so the
        file reopens in the class map's colours. Readers that look columns
        up by name are unaffected.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    if layout not in ("semantic", "instance"):
        raise RLEError(f"layout must be 'semantic' or 'instance', got {layout!r}", source=path)
    try:
        _check_order(order)
        base = _check_base(base)
        if len(labels.shape) != 2:
            raise RLEError(f"labels must be a 2D array, got shape {tuple(labels.shape)}")
        _check_label_dtype(labels.dtype)
        h, w = (int(v) for v in labels.shape)
        if _is_dask(labels):
            rles = rle_encode_dask(labels, order=order, base=base, band=band)
        else:
            rles = encode_labels(labels, order=order, base=base)
        negative = [v for v in rles if v < 0]
        if negative:
            raise RLEError(
                f"label value {negative[0]} cannot be written: class indices and instance ids "
                "must be non-negative"
            )
        names = list(class_names) if class_names is not None else None
        ident = image_id if image_id is not None else path.stem
        rows: list[list[Any]] = []
        if layout == "semantic":
            classes = set(rles)
            if names is not None:
                over = sorted(c for c in classes if c >= len(names))
                if over:
                    raise RLEError(
                        f"label value {over[0]} has no name: class_names has {len(names)} entries"
                    )
                classes |= set(range(1, len(names)))
            for c in sorted(classes):
                name = names[c] if names is not None else ""
                rows.append([ident, c, name, h, w, order, base, rles.get(c, "")])
            header = list(SEMANTIC_COLUMNS)
        else:
            for iid in sorted(rles):
                ci = None if instance_classes is None else instance_classes.get(iid)
                name = names[ci] if names is not None and ci is not None and ci < len(names) else ""
                rows.append(
                    [ident, iid, "" if ci is None else int(ci), name, h, w, order, base, rles[iid]]
                )
            header = list(INSTANCE_COLUMNS)
        if class_colors is not None:
            at = header.index("class_name") + 1
            ci_col = header.index("class_index")
            header = [*header[:at], "class_color", *header[at:]]
            rows = [[*r[:at], _format_color(class_colors, r[ci_col]), *r[at:]] for r in rows]
        if placement is not None:
            extra = _placement_fields(placement, (h, w))
            header = header[:-1] + list(PLACEMENT_COLUMNS) + header[-1:]
            rows = [r[:-1] + extra + r[-1:] for r in rows]
    except RLEError as err:
        raise err.located(source=path) from None
    with _atomic_text(path) as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(header)
        wr.writerows(rows)
    return path
