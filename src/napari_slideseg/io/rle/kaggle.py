"""Kaggle RLE strings of binary masks and label images, and telling the two pixel orders apart."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .checks import (
    ORDERS,
    RLEError,
    as_2d,
    check_base,
    check_label_dtype,
    check_order,
    check_shape,
    check_value,
    is_dask,
)
from .mask_runs import binary_runs, group_by_value, value_runs
from .runs import paint, paint_into, runs_from_rle
from .stream import iter_rle_text_dask, rle_encode_dask
from .tokens import format_runs

#: Dice margin (best minus other) above which :func:`guess_order` is confident.
GUESS_MARGIN = 0.2
#: Lowest best Dice for which :func:`guess_order` is confident.
GUESS_MIN_DICE = 0.5


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

    Raises
    ------
    RLEError
        A bad ``order`` or ``base``, or a mask that is not 2D.
    """
    check_order(order)
    base = check_base(base)
    if is_dask(mask):
        return " ".join(iter_rle_text_dask(mask, order=order, base=base))
    s, e = binary_runs(as_2d(mask, "mask"), order)
    return format_runs(s, e, base)


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
    check_order(order)
    base = check_base(base)
    h, w = check_shape(shape)
    s, e = runs_from_rle(rle, h, w, base)
    if out is None:
        v = check_value(value, dtype)
        return paint(s, e, v, h, w, order, dtype)
    if tuple(out.shape) != (h, w):
        raise RLEError(f"out has shape {tuple(out.shape)} but shape is {(h, w)}")
    v = check_value(value, out.dtype)
    paint_into(out, s, e, v, order)
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

    Raises
    ------
    RLEError
        As for :func:`rle_decode`, and a ``band_rows`` below 1.
    """
    check_order(order)
    base = check_base(base)
    h, w = check_shape(shape)
    if int(band_rows) < 1:
        raise RLEError(f"band_rows must be at least 1, got {band_rows!r}")
    v = check_value(value, dtype)
    s, e = runs_from_rle(rle, h, w, base)
    total, other = (h, w) if order == "row" else (w, h)
    for a0 in range(0, total, int(band_rows)):
        a1 = min(a0 + int(band_rows), total)
        lo, hi = a0 * other, a1 * other
        i0 = int(np.searchsorted(e, lo, side="right"))
        i1 = int(np.searchsorted(s, hi, side="left"))
        bs = np.clip(s[i0:i1], lo, hi) - lo
        be = np.clip(e[i0:i1], lo, hi) - lo
        bh, bw = (a1 - a0, w) if order == "row" else (h, a1 - a0)
        yield a0, paint(bs, be, v, bh, bw, order, dtype)


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

    Raises
    ------
    RLEError
        A bad ``order`` or ``base``, or labels that are not a 2D integer or
        bool array.
    """
    if is_dask(labels):
        return rle_encode_dask(labels, order=order, base=base, values=values)
    check_order(order)
    base = check_base(base)
    a = as_2d(labels, "labels")
    check_label_dtype(a.dtype)
    s, e, v = value_runs(a, order)
    wanted = None if values is None else sorted({int(x) for x in values})
    if wanted is not None:
        sel = np.isin(v, np.asarray(wanted, dtype=np.int64))
        s, e, v = s[sel], e[sel], v[sel]
    out = {value: format_runs(vs, ve, base) for value, vs, ve in group_by_value(s, e, v)}
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
    check_order(order)
    base = check_base(base)
    h, w = check_shape(shape)
    check_label_dtype(dtype, "dtype")
    ss, es, vs = [], [], []
    for value, rle in rles.items():
        v = check_value(value, dtype)
        try:
            s, e = runs_from_rle(rle, h, w, base)
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
    return paint(s, e, v, h, w, order, dtype)


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

    Raises
    ------
    RLEError
        A reference that is not 2D, a bad ``base``, or a string that is
        malformed in both orders.
    """
    ref = as_2d(reference, "reference")
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
