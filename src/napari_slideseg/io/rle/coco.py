"""COCO RLE (pycocotools' ``maskApi.c`` format): counts, compressed strings and Kaggle RLE.

COCO RLE always uses column-major order and stores alternating run lengths
that ALWAYS start with a background run, which is ``0`` when the first pixel
is foreground: a 2 x 3 mask of ones is ``{"size": [2, 3], "counts": [0, 6]}``.
Its compressed form packs each count (after the first two, as the difference
to the count two places earlier) into 6-bit ASCII characters, 5 data bits
each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .checks import RLEError, as_2d, check_base, check_shape
from .runs import binary_runs, paint, runs_from_rle
from .tokens import format_runs


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
    return check_shape(size)


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
    a = as_2d(mask, "mask")
    h, w = a.shape
    s, e = binary_runs(a, "col")
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
    return paint(s, e, 1, h, w, "col", np.uint8)


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
    base = check_base(base)
    c = np.asarray(counts, np.int64)
    s, e = _runs_from_counts(c, int(c.sum()))
    return format_runs(s, e, base)


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
    base = check_base(base)
    h, w = check_shape(shape)
    s, e = runs_from_rle(rle, h, w, base)
    return _counts_from_runs(s, e, h * w).tolist()
