"""Saving corrections: changed chunks into free slots, then the index, then the history.

See :mod:`napari_slideseg.corrections.store` for the layout and why this
order keeps a crash from counting a half-written chunk. The functions take
the :class:`~napari_slideseg.corrections.store.Corrections` (typed ``Any``
so the two modules do not import each other).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from .grid import ATTRS, FORMAT, GROUP, CorrectionsError, chunk_windows

#: Fault injection for tests: when set, called with the name of each save step
#: (``data``, ``edited``, ``index``, ``attrs``) just before it happens; raising
#: there simulates a crash at that point.
FAULT: Callable[[str], None] | None = None


def _fault(step: str) -> None:
    if FAULT is not None:
        FAULT(step)


def save_blocks(
    store: Any,
    name: str,
    blocks: Iterable[tuple[int, int, np.ndarray]],
    meta: dict[str, Any],
    note: str | None = None,
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Save corrected windows of ``name`` as one new version.

    Parameters
    ----------
    store : Corrections
        Open for writing.
    name : str
        ``labels`` or ``instances``.
    blocks : iterable of (int, int, numpy.ndarray)
        ``(y0, x0, block)`` windows; later ones win where they overlap.
    meta : dict
        The store's attributes (format, identity, version, history).
    note : str, optional
        Kept in the history entry.

    Returns
    -------
    tuple
        ``(entry, meta)``: the new version's history entry (None when no
        pixel changed) and the attributes as saved.

    Raises
    ------
    CorrectionsError
        When the array cannot be corrected or a block is not 2-D.
    """
    arr = store.original(name)
    index = store.index(name)
    changed = changed_chunks(store, name, arr, index, blocks)
    if not changed:
        return None, meta
    ensure_arrays(store, name)
    version = store.version + 1
    new_index = write_chunks(store, name, index, changed, version)
    _fault("index")
    store.root[f"{GROUP}/{name}/index"][...] = new_index
    entry = history_entry(version, name, changed, note)
    _fault("attrs")
    meta = {
        "format": FORMAT,
        "identity": store.identity,
        "version": version,
        "history": [*meta.get("history", []), entry],
    }
    store.root[GROUP].attrs[ATTRS] = meta
    return entry, meta


def ensure_arrays(store: Any, name: str) -> None:
    """Create the group and ``name``'s slot arrays and (last) its empty index."""
    arr = store.original(name)
    group = store._group()
    if group is None:
        group = store.root.create_group(GROUP)
    sub = group[name] if name in group else group.create_group(name)
    if "index" in sub:
        return
    shape, chunks = (2, *arr.shape), (1, *arr.chunks)
    sub.create_array("data", shape=shape, chunks=chunks, dtype=arr.dtype, overwrite=True)
    sub.create_array("edited", shape=shape, chunks=chunks, dtype=bool, overwrite=True)
    grid = tuple(-(-s // c) for s, c in zip(arr.shape, arr.chunks, strict=True))
    sub.create_array("index", shape=grid, chunks=grid, dtype=np.int64, fill_value=0)


def changed_chunks(
    store: Any,
    name: str,
    arr: Any,
    index: np.ndarray,
    blocks: Iterable[tuple[int, int, np.ndarray]],
) -> dict[tuple[int, int], dict[str, Any]]:
    """The chunks whose corrected content differs from what is saved."""
    new: dict[tuple[int, int], np.ndarray] = {}
    wins: dict[tuple[int, int], tuple[int, int, int, int]] = {}
    saved: dict[tuple[int, int], np.ndarray] = {}
    for y0, x0, block in blocks:
        block = np.asarray(block)
        if block.ndim != 2:
            raise CorrectionsError(f"{store.path}: a correction of {name} must be 2-D")
        y1, x1 = y0 + block.shape[0], x0 + block.shape[1]
        for cy, cx, win in chunk_windows(arr.shape, arr.chunks, y0, x0, y1, x1):
            key = (cy, cx)
            if key not in new:
                saved[key] = store.read_chunk(name, cy, cx, index)
                new[key] = saved[key].copy()
                wins[key] = win
            wy0, wx0, wy1, wx1 = win
            ay0, ax0 = max(y0, wy0), max(x0, wx0)
            ay1, ax1 = min(y1, wy1), min(x1, wx1)
            new[key][ay0 - wy0 : ay1 - wy0, ax0 - wx0 : ax1 - wx0] = block[
                ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0
            ]
    out = {}
    for key, chunk in new.items():
        diff = chunk != saved[key]
        if diff.any():
            wy0, wx0, wy1, wx1 = wins[key]
            edited = chunk != np.asarray(arr[wy0:wy1, wx0:wx1])
            out[key] = {"data": chunk, "edited": edited, "diff": diff, "window": wins[key]}
    return out


def write_chunks(
    store: Any,
    name: str,
    index: np.ndarray,
    changed: dict[tuple[int, int], dict[str, Any]],
    version: int,
) -> np.ndarray:
    """Write each changed chunk into its free slot; the index that makes them saved."""
    data, edited = store.slots(name)
    new_index = index.copy()
    for (cy, cx), chunk in changed.items():
        if not chunk["edited"].any():  # back to the prediction's pixels
            new_index[cy, cx] = 0
            continue
        old = int(index[cy, cx])
        slot = 1 - (old & 1) if old else 0
        wy0, wx0, wy1, wx1 = chunk["window"]
        _fault("data")
        data[slot, wy0:wy1, wx0:wx1] = chunk["data"]
        _fault("edited")
        edited[slot, wy0:wy1, wx0:wx1] = chunk["edited"]
        new_index[cy, cx] = 2 * version + slot
    return new_index


def history_entry(
    version: int, name: str, changed: dict[tuple[int, int], dict[str, Any]], note: str | None
) -> dict[str, Any]:
    """The history entry of a save: time, array, bbox and count of changed pixels, chunks.

    Parameters
    ----------
    version : int
        The new version.
    name : str
        The corrected array.
    changed : dict
        Per chunk ``(cy, cx)``: its ``diff`` mask and ``window``.
    note : str or None
        Kept as ``note``.

    Returns
    -------
    dict
        ``version``, ``time`` (UTC), ``array``, ``bbox``, ``pixels``, ``chunks``.
    """
    boxes = []
    pixels = 0
    for chunk in changed.values():
        ys, xs = np.nonzero(chunk["diff"])
        wy0, wx0 = chunk["window"][:2]
        boxes.append((wy0 + ys.min(), wx0 + xs.min(), wy0 + ys.max() + 1, wx0 + xs.max() + 1))
        pixels += len(ys)
    b = np.asarray(boxes)
    entry: dict[str, Any] = {
        "version": version,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "array": name,
        "bbox": [int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())],
        "pixels": int(pixels),
        "chunks": sorted([int(cy), int(cx)] for cy, cx in changed),
    }
    if note:
        entry["note"] = note
    return entry
