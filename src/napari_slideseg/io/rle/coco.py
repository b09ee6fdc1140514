"""COCO RLE (pycocotools' ``maskApi.c`` format): counts, compressed strings and Kaggle RLE.

COCO RLE always uses column-major order and stores alternating run lengths
that ALWAYS start with a background run, which is ``0`` when the first pixel
is foreground: a 2 x 3 mask of ones is ``{"size": [2, 3], "counts": [0, 6]}``.
Its compressed form packs each count (after the first two, as the difference
to the count two places earlier) into 6-bit ASCII characters, 5 data bits
each.

The functions check their input here (so bad input gets the same
:class:`RLEError` messages) and leave compressing, encoding, decoding and
areas to :mod:`pycocotools.mask`. pycocotools has no call that returns
uncompressed counts, so :func:`coco_encode`, :func:`coco_decompress` and the
Kaggle conversions stay NumPy. pycocotools keeps counts in 32 bits, so
masks of more than ``2**31 - 1`` pixels (and counts that large) are done in
NumPy too, logged at debug level.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as cocomask

from .checks import RLEError, as_2d, check_base, check_shape
from .mask_runs import binary_runs
from .runs import paint, runs_from_rle
from .tokens import format_runs

logger = logging.getLogger(__name__)

# Largest count and pixel total handed to pycocotools: its counts are uint32
# and rleToString works on C longs (32-bit on Windows).
_COCO_MAX = 2**31 - 1


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


def _groups(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numbers ``rleToString`` writes (a count, or its difference to the one two
    places earlier) and how many 6-bit characters each takes."""
    x = c.copy()
    x[3:] -= c[1:-2]
    v = np.where(x < 0, ~x, x)
    k = np.ones(x.size, np.int64)
    for j in range(1, 13):
        k += v >= (1 << (5 * j - 1))
    return x, k


def _np_compress(c: np.ndarray) -> str:
    """pycocotools' ``rleToString`` in NumPy, for counts pycocotools cannot hold."""
    x, k = _groups(c)
    kmax = int(k.max())
    pos = np.arange(kmax)
    chars = (x[:, None] >> (5 * pos)) & 0x1F
    chars |= np.where(pos < (k - 1)[:, None], 0x20, 0)
    chars += 48
    return chars[pos < k[:, None]].astype(np.uint8).tobytes().decode("ascii")


#: Masks of fewer pixels than this have no count long enough to overrun rleToString.
_SHORT_COUNTS_PIXELS = 1 << 24


def _coco_compress(c: np.ndarray) -> bytes:
    """Validated counts (non-negative, total at most ``_COCO_MAX``) in pycocotools' string form.

    pycocotools' ``rleToString`` writes into a buffer of 6 characters per
    count plus a NUL; counts that need more (one near 2**31, or every one of
    a few at 2**24 or more) would write past it and corrupt the heap (a
    later, unrelated abort). Those are compressed in NumPy, byte-identical.
    """
    if int(_groups(c)[1].sum()) + 1 > 6 * c.size:
        logger.debug("COCO counts longer than pycocotools' buffer: compressed in NumPy")
        return _np_compress(c).encode("ascii")
    return _pycocotools_compress(c)


def _pycocotools_compress(c: np.ndarray) -> bytes:
    """``rleToString`` by pycocotools, for counts :func:`_coco_compress` found short enough."""
    rle: dict[str, Any] = {"size": [int(c.sum()), 1], "counts": c.astype(np.uint32)}
    return cocomask.frPyObjects(rle, rle["size"][0], 1)["counts"]


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
    if c.min() < 0 or c.max() > _COCO_MAX or int(c.sum()) > _COCO_MAX:
        logger.debug("COCO counts beyond pycocotools' 32-bit range: compressed in NumPy")
        return _np_compress(c)
    return _coco_compress(c).decode("ascii")


def _check_compressed(s: str | bytes) -> tuple[bytes, np.ndarray]:
    """The bytes of a compressed ``counts`` string and their 6-bit values, checked."""
    raw = s.encode("ascii", errors="replace") if isinstance(s, str) else bytes(s)
    b = np.frombuffer(raw, np.uint8).astype(np.int64) - 48
    if b.size == 0:
        return raw, b
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
    if np.diff(ends, prepend=-1).max() > 13:
        raise RLEError("compressed COCO counts: a number is too long")
    return raw, b


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
        Characters outside ``'0'``..``'o'``, a truncated last number or a
        number longer than 13 characters.
    """
    return _decompress(s).tolist()


def _decompress(s: str | bytes) -> np.ndarray:
    """:func:`coco_decompress` as an int64 array."""
    _, b = _check_compressed(s)
    if b.size == 0:
        return np.empty(0, np.int64)
    more = (b & 0x20) != 0
    ends = np.flatnonzero(~more)
    starts = np.append(0, ends[:-1] + 1)
    gid = np.repeat(np.arange(ends.size), ends - starts + 1)
    pos = np.arange(b.size) - starts[gid]
    x = np.add.reduceat((b & 0x1F) << (5 * pos), starts)
    k = ends - starts + 1
    neg = (b[ends] & 0x10) != 0
    x[neg] -= np.left_shift(1, 5 * k[neg])
    c = x.copy()
    c[1::2] = np.cumsum(x[1::2])
    c[2::2] = np.cumsum(x[2::2])
    return c


def coco_encode_compressed(mask: Any) -> dict[str, Any]:
    """Encode a binary mask as compressed COCO RLE (``pycocotools.mask.encode``).

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

    Raises
    ------
    RLEError
        A mask that is not 2D.
    """
    a = as_2d(mask, "mask")
    h, w = a.shape
    if h * w > _COCO_MAX:
        logger.debug("a %d x %d mask is beyond pycocotools' 32-bit counts: encoded in NumPy", h, w)
        return {"size": [h, w], "counts": coco_compress(coco_encode(a)["counts"])}
    if h * w >= _SHORT_COUNTS_PIXELS:
        # a run this long may overrun pycocotools' string buffer (see _coco_compress):
        # the counts are made in NumPy and compressed where it is safe
        return {"size": [h, w], "counts": coco_compress(coco_encode(a)["counts"])}
    if a.dtype == np.bool_ and a.flags.f_contiguous:
        fg = a.view(np.uint8)
    else:
        fg = np.not_equal(a, 0, order="F").view(np.uint8)
    return {"size": [h, w], "counts": cocomask.encode(fg)["counts"].decode("ascii")}


def coco_decode(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed or not) into a mask (``pycocotools.mask.decode``).

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
        Missing keys, a malformed string, a negative count, or counts that do
        not add up to ``h * w``.
    """
    h, w = _coco_size(rle)
    counts = rle.get("counts")
    if counts is None:
        raise RLEError("a COCO RLE needs a 'counts' entry")
    if isinstance(counts, str | bytes):
        counts = _decompress(counts)
    c = np.asarray(counts, dtype=np.int64).reshape(-1)
    s, e = _runs_from_counts(c, h * w)
    if h * w > _COCO_MAX:
        logger.debug("a %d x %d mask is beyond pycocotools' 32-bit counts: decoded in NumPy", h, w)
        return paint(s, e, 1, h, w, "col", np.uint8)
    # pycocotools decodes the checked counts (recompressed), not the caller's string.
    checked = {"size": [h, w], "counts": _coco_compress(c)}
    with warnings.catch_warnings():
        # pycocotools 2.0.x under NumPy 2: its Masks.__array__ takes no copy keyword
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        m = cocomask.decode(checked)
    return _c_order(m)


def _c_order(f: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of pycocotools' Fortran-order mask, copied in cache-sized tiles.

    About 3x faster than ``np.ascontiguousarray`` on a 4000 x 4000 uint8 mask.
    """
    out = np.empty(f.shape, f.dtype)
    h, w = f.shape
    for y0 in range(0, h, 128):
        for x0 in range(0, w, 1024):
            out[y0 : y0 + 128, x0 : x0 + 1024] = f[y0 : y0 + 128, x0 : x0 + 1024]
    return out


def coco_area(rle: Mapping[str, Any]) -> int:
    """Foreground pixel count of a COCO RLE, compressed or not (``pycocotools.mask.area``).

    Parameters
    ----------
    rle
        ``{"size": [h, w], "counts": list | str | bytes}``; uncompressed
        counts need no ``size``.

    Returns
    -------
    int
        Sum of the foreground (odd-position) counts.

    Raises
    ------
    RLEError
        A malformed compressed string.
    """
    counts = rle.get("counts")
    if not isinstance(counts, str | bytes):
        # the sum itself; pycocotools' area takes compressed strings only
        return int(np.asarray(counts, np.int64)[1::2].sum())
    raw, _ = _check_compressed(counts)
    h: int | None
    w: int | None
    try:
        h, w = check_shape(rle.get("size"))
    except RLEError:
        h = w = None
    if h is None or w is None or h * w > _COCO_MAX:
        logger.debug("COCO RLE without a size pycocotools can hold: area in NumPy")
        return int(_decompress(raw)[1::2].sum())
    return int(cocomask.area({"size": [h, w], "counts": raw}))


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
