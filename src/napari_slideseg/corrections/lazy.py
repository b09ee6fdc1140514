"""Corrected arrays of a prediction, read lazily chunk by chunk, and the edited regions.

The functions take a :class:`~napari_slideseg.corrections.store.Corrections`
(typed ``Any`` here so the two modules do not import each other). A dask
block reads the prediction's chunk, or the saved correction where the
chunk has one; pyramid level ``f`` (stride sampling: level-0 pixel
``(f * i, f * j)``, as the engine writes it) is sampled from the corrected
level 0 where a block touches a corrected chunk, so memory stays bounded by
a block's level-0 window.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from .grid import PYRAMIDS, chunk_windows


def corrected_window(
    store: Any,
    name: str,
    y0: int,
    x0: int,
    y1: int,
    x1: int,
    *,
    edited: bool = False,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """A level-0 window of the corrected array (or of its edited mask).

    Parameters
    ----------
    store : Corrections
        The prediction's corrections.
    name : str
        ``labels`` or ``instances``.
    y0, x0, y1, x1 : int
        The window, inside the array.
    edited : bool
        Return the edited mask (pixels that differ from the prediction).
    index : numpy.ndarray, optional
        The chunk index to read by (:meth:`Corrections.index`; default: as saved now).

    Returns
    -------
    numpy.ndarray
        ``(y1 - y0, x1 - x0)``: the array's dtype, or bool for ``edited``.
    """
    arr = store.original(name)
    index = store.index(name) if index is None else index
    out = np.zeros((y1 - y0, x1 - x0), bool if edited else arr.dtype)
    slots = store.slots(name) if index.any() else None
    for cy, cx, (wy0, wx0, wy1, wx1) in chunk_windows(arr.shape, arr.chunks, y0, x0, y1, x1):
        ay0, ax0, ay1, ax1 = max(y0, wy0), max(x0, wx0), min(y1, wy1), min(x1, wx1)
        dest = (slice(ay0 - y0, ay1 - y0), slice(ax0 - x0, ax1 - x0))
        code = int(index[cy, cx])
        if code and slots is not None:
            out[dest] = slots[1 if edited else 0][code & 1, ay0:ay1, ax0:ax1]
        elif not edited:
            out[dest] = arr[ay0:ay1, ax0:ax1]
    return out


def _level_base(store: Any, name: str, factor: int, edited: bool) -> Any:
    """The dask array a corrected level is mapped over (the prediction's, or zeros)."""
    import dask.array as da

    arr = store.original(name) if factor == 1 else store.root[f"{PYRAMIDS[name]}/{factor}"]
    if edited:
        return da.zeros(arr.shape, dtype=bool, chunks=arr.chunks)
    return da.from_zarr(arr)


def corrected_array(store: Any, name: str, factor: int = 1, *, edited: bool = False) -> Any:
    """The corrected array ``name`` at pyramid factor ``factor`` as a lazy dask array.

    Where no chunk is corrected it is the prediction's own array (read
    live from the zarr); the saved corrections are those at the call.

    Parameters
    ----------
    store : Corrections
        The prediction's corrections.
    name : str
        ``labels`` or ``instances``.
    factor : int
        1 for level 0, else a factor of the prediction's pyramid.
    edited : bool
        The edited mask instead of the labels.

    Returns
    -------
    dask.array.Array
        Chunked as the prediction's array of that level.
    """
    base = _level_base(store, name, factor, edited)
    index = store.index(name)
    if not index.any():
        return base
    ch, cw = store.original(name).chunks
    f = int(factor)

    def block(x: np.ndarray, block_info: Any = None) -> np.ndarray:
        (a0, a1), (b0, b1) = block_info[None]["array-location"]
        y0, x0, y1, x1 = f * a0, f * b0, f * (a1 - 1) + 1, f * (b1 - 1) + 1
        if not index[y0 // ch : -(-y1 // ch), x0 // cw : -(-x1 // cw)].any():
            return x
        win = corrected_window(store, name, y0, x0, y1, x1, edited=edited, index=index)
        return win[::f, ::f]

    tag = "edited" if edited else "corrected"
    return base.map_blocks(
        block, dtype=base.dtype, name=f"{tag}-{name}-{f}-{uuid.uuid4().hex[:12]}"
    )


def corrected_levels(store: Any, name: str) -> list[Any]:
    """The corrected pyramid of ``name``, level 0 first (dask arrays).

    Parameters
    ----------
    store : Corrections
        The prediction's corrections.
    name : str
        ``labels`` or ``instances``.

    Returns
    -------
    list of dask.array.Array
        Level 0, then one array per factor of the prediction's pyramid.
    """
    info = dict(store.root.attrs).get("slideseg_inference") or {}
    factors = [int(f) for f in info.get("pyramid", [])]
    return [corrected_array(store, name, f) for f in [1, *factors]]


def merge_boxes(
    boxes: list[tuple[int, int, int, int]], gap: int = 0
) -> list[tuple[int, int, int, int]]:
    """Boxes merged until none overlaps another or lies within ``gap`` pixels of it.

    Parameters
    ----------
    boxes : list of tuple of int
        ``(y0, x0, y1, x1)``, end exclusive.
    gap : int
        Boxes this close (pixels between them) are merged too.

    Returns
    -------
    list of tuple of int
        The merged boxes, sorted.
    """
    out = sorted(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                a, b = out[i], out[j]
                if (
                    a[0] <= b[2] + gap
                    and b[0] <= a[2] + gap
                    and a[1] <= b[3] + gap
                    and b[1] <= a[3] + gap
                ):
                    out[i] = (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(out)


def edited_regions(store: Any, name: str, gap: int = 2) -> list[tuple[int, int, int, int]]:
    """Bounding boxes of the edited areas of ``name``: 8-connected edited pixels, merged.

    A stroke over pixels that already had the painted label leaves them
    unedited, so its edited pixels may fall apart; boxes that overlap or
    lie within ``gap`` pixels of each other are merged (:func:`merge_boxes`).
    Only the saved chunks are read, one group of touching chunks at a time.

    Parameters
    ----------
    store : Corrections
        The prediction's corrections.
    name : str
        ``labels`` or ``instances``.
    gap : int
        See :func:`merge_boxes`.

    Returns
    -------
    list of tuple of int
        ``(y0, x0, y1, x1)`` level-0 pixel boxes (end exclusive), sorted.
    """
    from scipy import ndimage

    index = store.index(name)
    if not index.any():
        return []
    arr = store.original(name)
    ch, cw = arr.chunks
    H, W = arr.shape
    eight = np.ones((3, 3), bool)
    groups, _n = ndimage.label(index > 0, structure=eight)
    boxes = []
    for g, found in enumerate(ndimage.find_objects(groups), start=1):
        if found is None:
            continue
        gy, gx = found
        y0, x0 = gy.start * ch, gx.start * cw
        y1, x1 = min(H, gy.stop * ch), min(W, gx.stop * cw)
        mask = corrected_window(store, name, y0, x0, y1, x1, edited=True, index=index)
        mine = np.repeat(np.repeat(groups[gy, gx] == g, ch, 0), cw, 1)
        mask &= mine[: y1 - y0, : x1 - x0]
        lab, _m = ndimage.label(mask, structure=eight)
        for s in ndimage.find_objects(lab):
            if s is not None:
                boxes.append((y0 + s[0].start, x0 + s[1].start, y0 + s[0].stop, x0 + s[1].stop))
    return merge_boxes([(int(a), int(b), int(c), int(d)) for a, b, c, d in boxes], gap)
