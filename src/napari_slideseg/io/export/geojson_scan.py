"""Each object of an instance map once, with its whole mask, in two reads of the blocks.

Pass 1 (:func:`shared_ids`) finds the ids present in more than one block,
and in how many: one vectorised unique per block, then one sort of all the
blocks' ids (memory: one id per object and block it touches).

Pass 2 (:func:`iter_block_objects`) reads each block once more and finds
its ids' boxes from its row runs (vectorised). An id found in that block
only is cut from the block; a shared id's piece (a boolean crop) is kept
until the last of its blocks, where the pieces are joined into its whole
mask. Nothing is read twice in pass 2 and no object's box is scanned per
block: time is O(pixels + objects), memory a block plus the pieces of the
objects crossing the borders of the blocks not yet read.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...progress import Progress
from ..blocks import iter_blocks


def prefetched_blocks(labels: Any, block: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """:func:`~napari_slideseg.io.blocks.iter_blocks`, the next block read in a thread meanwhile.

    Reading a block (dask computing or decompressing it, mostly without the
    GIL) overlaps the work on the one before; memory is one block more.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        The array.
    block : int
        Block edge.

    Yields
    ------
    tuple of (int, int, numpy.ndarray)
        As :func:`~napari_slideseg.io.blocks.iter_blocks`.

    Raises
    ------
    Exception
        Whatever reading a block raised, re-raised here.
    """
    q: queue.Queue[tuple[int, int, np.ndarray] | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: tuple[int, int, np.ndarray] | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in iter_blocks(labels, block):
                if not put(item):
                    return
        except BaseException as exc:  # re-raised by the consumer
            put(exc)
            return
        put(None)

    thread = threading.Thread(target=read, name="geojson-read", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def block_ids(b: np.ndarray) -> np.ndarray:
    """The sorted nonzero ids of a block (a unique of its runs, not of its pixels).

    Parameters
    ----------
    b : numpy.ndarray
        A 2D block of labels.

    Returns
    -------
    numpy.ndarray
        Its distinct nonzero values, ascending.
    """
    flat = b.ravel()
    if not flat.size:
        return flat[:0]
    start = np.empty(flat.size, bool)
    start[0] = True
    np.not_equal(flat[1:], flat[:-1], out=start[1:])
    ids = np.unique(flat[start])
    return ids[ids != 0]


def block_boxes(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted nonzero ids of a block and each one's box in it, from its row runs.

    Parameters
    ----------
    b : numpy.ndarray
        A 2D block of labels.

    Returns
    -------
    tuple of numpy.ndarray
        The ids (ascending) and an ``(n, 4)`` int64 array of their boxes
        ``(y0, x0, y1, x1)`` in the block (ends exclusive).
    """
    nz = b != 0
    diff = b[:, 1:] != b[:, :-1]
    start = nz.copy()
    start[:, 1:] &= diff
    nz[:, :-1] &= diff  # now: the last pixel of each run
    ys, xs = np.nonzero(start)
    xe = np.nonzero(nz)[1]
    vals = b[ys, xs]
    order = np.argsort(vals, kind="stable")  # stable: each id's runs stay in row order
    vals, ys, xs, xe = vals[order], ys[order], xs[order], xe[order]
    if not vals.size:
        return vals, np.zeros((0, 4), np.int64)
    first = np.flatnonzero(np.append(True, vals[1:] != vals[:-1]))
    last = np.append(first[1:], vals.size) - 1
    boxes = np.stack(
        [
            ys[first],
            np.minimum.reduceat(xs, first),
            ys[last] + 1,
            np.maximum.reduceat(xe, first) + 1,
        ],
        1,
    ).astype(np.int64)
    return vals[first], boxes


def shared_ids(
    labels: Any, block: int, found: dict[str, np.ndarray]
) -> Generator[Progress, None, None]:
    """Pass 1: the ids in more than one block, and in how many, into ``found``.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        The instance map.
    block : int
        Block edge.
    found : dict
        Receives ``"ids"`` (ascending) and ``"blocks"`` (how many blocks hold each).

    Yields
    ------
    Progress
        One event per block.
    """
    h, w = labels.shape
    n_blocks = -(-h // block) * -(-w // block)
    per_block = []
    for i, (_y0, _x0, b) in enumerate(prefetched_blocks(labels, block)):
        per_block.append(block_ids(b))
        yield Progress("geojson: find objects", i + 1, n_blocks)
    every = np.sort(np.concatenate(per_block)) if per_block else np.zeros(0, np.int64)
    del per_block
    twice = every[1:][every[1:] == every[:-1]]
    ids, extra = np.unique(twice, return_counts=True)
    found["ids"], found["blocks"] = ids, extra + 1


@dataclass
class _Pieces:
    """A shared object's pieces so far, and how many of its blocks are still to come."""

    left: int
    pieces: list[tuple[int, int, np.ndarray]] = field(default_factory=list)

    def mask(self) -> tuple[int, int, np.ndarray]:
        """The whole object: its box's top-left pixel and its mask over the box."""
        y0 = min(p[0] for p in self.pieces)
        x0 = min(p[1] for p in self.pieces)
        y1 = max(p[0] + p[2].shape[0] for p in self.pieces)
        x1 = max(p[1] + p[2].shape[1] for p in self.pieces)
        mask = np.zeros((y1 - y0, x1 - x0), bool)
        for py, px, m in self.pieces:
            mask[py - y0 : py - y0 + m.shape[0], px - x0 : px - x0 + m.shape[1]] |= m
        return y0, x0, mask


#: An object joined from its pieces: id, the top-left pixel of its mask, the mask.
Object = tuple[int, int, int, np.ndarray]


@dataclass
class BlockObjects:
    """The objects whose last block is one block: each object of the map is in one.

    ``ids`` and ``boxes`` (``(y0, x0, y1, x1)`` in the block, ends
    exclusive) are the ids found in this block only, ascending, to cut from
    ``block`` (whose top-left pixel is ``origin``); ``joined`` are the ids
    crossing block borders whose last piece was in this block.
    """

    index: int
    origin: tuple[int, int]
    block: np.ndarray
    ids: list[int]
    boxes: list[list[int]]
    joined: list[Object]


def iter_block_objects(
    labels: Any, block: int, shared: dict[str, np.ndarray]
) -> Iterator[BlockObjects]:
    """Pass 2: for each block, the objects complete in it, each object once overall.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        The instance map.
    block : int
        Block edge (as in pass 1).
    shared : dict
        :func:`shared_ids`'s result.

    Yields
    ------
    BlockObjects
        One per block, row by row.
    """
    sids, sblocks = shared["ids"], shared["blocks"]
    pending: dict[int, _Pieces] = {}
    for i, (y0, x0, b) in enumerate(prefetched_blocks(labels, block)):
        ids, boxes = block_boxes(b)
        pos = np.minimum(np.searchsorted(sids, ids), max(len(sids) - 1, 0))
        is_shared = sids[pos] == ids if len(sids) else np.zeros(len(ids), bool)
        single = ~is_shared
        joined: list[Object] = []
        for lid, (by0, bx0, by1, bx1), k in zip(
            ids[is_shared].tolist(), boxes[is_shared].tolist(), pos[is_shared].tolist(), strict=True
        ):
            p = pending.setdefault(lid, _Pieces(int(sblocks[k])))
            p.pieces.append((by0 + y0, bx0 + x0, b[by0:by1, bx0:bx1] == lid))
            p.left -= 1
            if not p.left:
                del pending[lid]
                joined.append((lid, *p.mask()))
        yield BlockObjects(i, (y0, x0), b, ids[single].tolist(), boxes[single].tolist(), joined)
