"""Colour keys and lookup tables: one gather per pixel maps a colour to its class.

A colour is packed into a ``uint32`` key ``r << 16 | g << 8 | b`` and looked
up in a 2**24-entry table (16 MiB for up to 255 classes, built once per
palette and tolerance and cached). ``tolerance`` (an explicit opt-in for
JPEG-compressed masks) maps a colour to the nearest class colour within that
Euclidean RGB distance.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .common import RGB, MaskError


def pack(rgb: np.ndarray) -> np.ndarray:
    """``uint32`` keys ``r << 16 | g << 8 | b`` of an ``(..., 3)`` uint8 array.

    Parameters
    ----------
    rgb : numpy.ndarray
        Colours along the last axis.

    Returns
    -------
    numpy.ndarray
        ``uint32`` keys, the shape of ``rgb`` without its last axis.
    """
    rgb = np.asarray(rgb)
    key = rgb[..., 0].astype(np.uint32)
    key <<= 16
    g = rgb[..., 1].astype(np.uint32)
    g <<= 8
    key |= g
    key |= rgb[..., 2].astype(np.uint32)
    return key


def unpack(keys: np.ndarray) -> np.ndarray:
    """The colours of packed keys (the inverse of :func:`pack`).

    Parameters
    ----------
    keys : numpy.ndarray
        ``r << 16 | g << 8 | b`` keys.

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` uint8 colours.
    """
    keys = np.asarray(keys, np.uint32)
    return np.stack([(keys >> 16) & 255, (keys >> 8) & 255, keys & 255], -1).astype(np.uint8)


def _lut_dtype(n: int) -> np.dtype:
    """Smallest dtype holding 0..n-1 plus a 'no class' marker (its maximum)."""
    return np.dtype(np.uint8 if n <= 255 else np.uint16 if n <= 65535 else np.uint32)


def check_tolerance(tolerance: float | None) -> float | None:
    """The nearest-colour tolerance to map with, validated.

    Parameters
    ----------
    tolerance : float or None
        Euclidean distance in RGB units, or ``None`` for exact colours.

    Returns
    -------
    float or None
        ``tolerance`` as a float, or ``None`` when it is ``None`` or below 1
        (distinct integer colours are at least 1 apart, so it changes nothing).

    Raises
    ------
    MaskError
        If ``tolerance`` is negative or not finite.
    """
    if tolerance is None:
        return None
    t = float(tolerance)
    if not math.isfinite(t) or t < 0:
        raise MaskError(f"tolerance must be a distance >= 0 in RGB units, not {tolerance!r}")
    return t if t >= 1 else None  # distinct integer colours are >= 1 apart


@functools.lru_cache(maxsize=4)
def color_lut(colors: tuple[RGB, ...], tolerance: float | None) -> np.ndarray:
    """2**24-entry table: packed colour -> class index, or the dtype's max for 'no class'.

    With ``tolerance``, every colour whose nearest class colour (Euclidean,
    lowest index on ties) lies within ``tolerance`` maps to that class.
    Cached for the last few palettes and tolerances.

    Parameters
    ----------
    colors : tuple of RGB
        The class colours; index ``i`` is class ``i``.
    tolerance : float or None
        As returned by :func:`check_tolerance`.

    Returns
    -------
    numpy.ndarray
        Read-only table indexed by :func:`pack` keys.
    """
    n = len(colors)
    dt = _lut_dtype(n)
    lut = np.full(1 << 24, np.iinfo(dt).max, dt)
    pal = np.asarray(colors, np.int32).reshape(-1, 3)
    if tolerance is None:
        lut[pack(pal.astype(np.uint8))] = np.arange(n, dtype=dt)
    else:
        t = math.floor(tolerance)
        t2 = tolerance * tolerance
        if n * (2 * t + 1) ** 3 <= 1 << 22:  # enumerate balls around the class colours
            off = np.arange(-t, t + 1, dtype=np.int32)
            cube = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
            ball = cube[(cube**2).sum(1) <= t2]
            cand = (pal[:, None, :] + ball[None]).reshape(-1, 3)
            cand = cand[((cand >= 0) & (cand <= 255)).all(1)]
            keys = np.unique(pack(cand.astype(np.uint8)))
            parts = (keys[i : i + (1 << 20)] for i in range(0, len(keys), 1 << 20))
        else:  # every colour, a million at a time
            parts = (
                np.arange(s, s + (1 << 20), dtype=np.uint32) for s in range(0, 1 << 24, 1 << 20)
            )
        # nearest class (lowest index on ties), on contiguous channel columns
        for keys in parts:
            r, g, b = (((keys >> sh) & 255).astype(np.int32) for sh in (16, 8, 0))
            best = np.full(len(keys), np.iinfo(np.int32).max, np.int32)
            best_i = np.zeros(len(keys), dt)
            for i, (cr, cg, cb) in enumerate(pal.tolist()):
                d = r - cr
                d *= d
                e = g - cg
                e *= e
                d += e
                e = b - cb
                e *= e
                d += e
                closer = d < best
                np.minimum(best, d, out=best)
                np.putmask(best_i, closer, i)
            ok = best <= t2
            lut[keys[ok]] = best_i[ok]
    lut.flags.writeable = False
    return lut


def grey_lut(colors: tuple[RGB, ...], tolerance: float | None) -> np.ndarray:
    """256-entry table: grey value v -> class of colour (v, v, v) (within tolerance).

    Parameters
    ----------
    colors : tuple of RGB
        The class colours.
    tolerance : float or None
        As for :func:`color_lut`.

    Returns
    -------
    numpy.ndarray
        Class index per grey value, the dtype's maximum for 'no class'.
    """
    return color_lut(colors, tolerance)[np.arange(256, dtype=np.uint32) * 0x010101]
