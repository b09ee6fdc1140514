"""Masks aligned to a level, and instance-map patches."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..io.slide import Slide
from .config import PatchError


def align_mask(mask: Any, slide: Slide, level: int, name: str = "mask") -> Any:
    """Return ``mask`` at the resolution of ``level``.

    A mask must have the (y, x) shape of level 0 or of ``level``; a level-0
    mask is subsampled with nearest-neighbour steps (labels are never
    averaged). Anything else is an error naming both shapes.

    Parameters
    ----------
    mask : array
        Labels (numpy or dask), ``(h, w)`` or ``(h, w, c)``.
    slide : Slide
        The slide the mask belongs to.
    level : int
        The level cut.
    name : str
        What the error calls the mask.

    Returns
    -------
    array
        ``mask`` itself, or its nearest-neighbour subsample (dask stays lazy).

    Raises
    ------
    PatchError
        The shape matches neither level 0 nor ``level``.
    """
    check_mask_shape(mask, slide, level, name)
    mh, mw = mask.shape[:2]
    lh, lw = slide.levels[level].shape[:2]
    h0, w0 = slide.levels[0].shape[:2]
    if (mh, mw) == (lh, lw):
        return mask
    if (mh, mw) == (h0, w0):
        ys = np.minimum((np.arange(lh) * (h0 / lh)).astype(np.int64), h0 - 1)
        xs = np.minimum((np.arange(lw) * (w0 / lw)).astype(np.int64), w0 - 1)
        if isinstance(mask, da.Array):
            return mask[ys][:, xs]
        return np.asarray(mask)[np.ix_(ys, xs)]
    raise AssertionError("unreachable: check_mask_shape passed")


def check_mask_shape(mask: Any, slide: Slide, level: int, name: str = "mask") -> None:
    """Refuse a mask whose (y, x) shape is neither level 0's nor ``level``'s, naming both.

    Parameters
    ----------
    mask : array
        The labels.
    slide : Slide
        The slide.
    level : int
        The level cut.
    name : str
        What the error calls the mask.

    Raises
    ------
    PatchError
        The shapes do not match.
    """
    mh, mw = mask.shape[:2]
    lh, lw = slide.levels[level].shape[:2]
    h0, w0 = slide.levels[0].shape[:2]
    if (mh, mw) in ((lh, lw), (h0, w0)):
        return
    sizes = f"{w0} x {h0} at level 0" + ("" if level == 0 else f" and {lw} x {lh} at level {level}")
    raise PatchError(
        f"{name} is {mw} x {mh} (width x height, shape {tuple(mask.shape)}) but slide "
        f"{slide.name} is {sizes}; a mask must have the size of level 0 or of the level cut"
    )


def instance_patch(m: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A patch of an instance map (plus optional type channel) as uint16 ids 1..N and uint8 types.

    Parameters
    ----------
    m : numpy.ndarray
        ``(s, s)`` instance ids, or ``(s, s, 2)`` ids and types.

    Returns
    -------
    tuple
        ``(ids, types)``: ids renumbered 1..N in uint16; types in uint8, or
        ``None`` without a type channel.

    Raises
    ------
    PatchError
        The patch holds more than 65535 instances.
    """
    from ..instances.targets import relabel_sequential

    inst = m[..., 0] if m.ndim == 3 else m
    inst = relabel_sequential(np.asarray(inst))
    if inst.max() > 65535:
        raise PatchError(f"a patch holds {inst.max()} instances; PNG masks hold at most 65535")
    types = np.asarray(m[..., 1]).astype(np.uint8) if m.ndim == 3 else None
    return inst.astype(np.uint16), types
