"""Slide-scale HoVer instances: per-block post-processing, ownership, order-free writes.

A block's maps are predicted over its core plus an *instance halo* wider
than the largest nucleus, post-processed there, and the block keeps only the
nuclei whose centroid lies in its core: each nucleus has exactly one owner,
so none is duplicated, and none is cut (its pixels reach into the halo).
Ids are ``block_index * id_stride + k`` (uint32), unique and the same on
every run, on threads or on a dask cluster.

Writing: a nucleus's pixels may fall into a neighbour's chunk, where the
neighbour's own nuclei may claim a few of the same pixels (their two
segmentations were made in different contexts). Each pixel keeps the
*smallest* id that claims it. That rule does not depend on the order blocks
finish in, so resumed and distributed runs equal a plain run bit for bit.
Writes happen in one process (the local loop or the dask driver), window by
window.

Coordinates: block tables (``tables/*.csv``) hold level pixels; the merged
``instances.csv`` holds level-0 pixels of the slide (:mod:`.hover_table`).
The nuclei's exports (GeoJSON, RLE CSV, the table) are :mod:`.hover_export`.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..instances.postproc import HoverParams, hover_instances
from ..io.files import atomic_path
from ..io.ngff import write_window_levels
from .hover_export import export_instances_steps
from .hover_table import TABLE_COLUMNS, UM_COLUMNS, merge_tables, read_instance_table
from .writes import fault

__all__ = [
    "TABLE_COLUMNS",
    "UM_COLUMNS",
    "export_instances_steps",
    "hover_block",
    "id_stride",
    "merge_tables",
    "read_instance_table",
    "write_hover",
    "write_table",
]


def id_stride(n_blocks: int) -> int:
    """Ids reserved per block so that every id fits in uint32."""
    return max(1, (2**32 - 1) // max(1, n_blocks + 1))


def hover_block(
    maps: np.ndarray,
    ext: tuple[int, int, int, int],
    core: tuple[int, int, int, int],
    params: HoverParams,
    id_base: int,
    stride: int,
    type_names: list[str],
    roi: Any = None,
) -> dict[str, Any]:
    """Instances owned by one block.

    Parameters
    ----------
    maps
        ``(3 + T, h, w)`` maps over ``ext``: NP probability, H, V, type
        probabilities (channel 3 background). Each nucleus's type is the
        argmax over the non-background types of its pixels' mean NC
        probabilities, never background, with that mean renormalised over
        the non-background types as ``type_prob``
        (:func:`~napari_slideseg.instances.postproc.instance_table`);
        without types (``T`` < 2) every nucleus is type 1 with probability 1.
    ext
        The extended window (core plus instance halo, clipped to the level) in level pixels.
    core
        The block core; a nucleus belongs here when its centroid does.

    Returns
    -------
    dict
        ``window`` (= ext), ``ids`` (uint32 map over the window: owned nuclei
        only), ``types`` (uint8 map over the window: each owned pixel's
        nucleus type, the table's), ``rows`` (table rows in level pixels).
    """
    ey0, ex0 = ext[:2]
    y0, x0, y1, x1 = core
    # an NC head needs a background channel and at least one type to type nuclei
    nc = maps[3:] if maps.shape[0] > 4 else None
    inst, table = hover_instances(maps[0], maps[1:3], nc, params)
    cy = table["centroid_y"] + ey0
    cx = table["centroid_x"] + ex0
    own = (cy >= y0) & (cy < y1) & (cx >= x0) & (cx < x1)
    if roi is not None and own.any():
        from skimage.measure import points_in_poly

        pts = np.asarray(roi, float)
        own &= points_in_poly(np.stack([cy, cx], 1), pts)
    local = table["id"][own]
    if len(local) >= stride:
        raise RuntimeError(f"block {core} has {len(local)} nuclei, more than its id range {stride}")
    lut = np.zeros(int(inst.max()) + 1, np.uint32)
    lut[local] = id_base + np.arange(1, len(local) + 1, dtype=np.uint32)
    ids = lut[inst]
    tlut = np.zeros(int(inst.max()) + 1, np.uint8)
    types = table["type"][own] if nc is not None else np.ones(len(local), np.int64)
    tlut[local] = types.astype(np.uint8)
    rows = []
    for k, r in enumerate(np.nonzero(own)[0]):
        t = int(types[k])
        rows.append(
            [
                int(lut[local[k]]),
                round(float(cy[r]), 2),
                round(float(cx[r]), 2),
                int(table["bbox_y0"][r] + ey0),
                int(table["bbox_x0"][r] + ex0),
                int(table["bbox_y1"][r] + ey0),
                int(table["bbox_x1"][r] + ex0),
                int(table["area"][r]),
                t,
                type_names[t] if t < len(type_names) else str(t),
                round(float(table["type_prob"][r]), 4) if nc is not None else 1.0,
            ]
        )
    return {"window": ext, "ids": ids, "types": tlut[inst], "rows": rows}


def write_hover(root: Any, res: dict[str, Any], factors: list[int]) -> None:
    """Merge one block's nuclei into ``instances`` and ``labels`` (smallest id wins), and pyramids.

    Idempotent, so a block whose write was interrupted (its ``instances``
    written, its ``labels`` or pyramids not) is simply written again on
    resume: a pixel already holding one of the block's own ids is claimed
    again (``ids <= old``), which rewrites its type and pyramid pixels, and
    a smaller id of a neighbour still wins whatever the order.
    """
    y0, x0, y1, x1 = res["window"]
    ids = res["ids"]
    old = np.asarray(root["instances"][y0:y1, x0:x1])
    take = (ids > 0) & ((old == 0) | (ids <= old))
    if not take.any():
        # none of this block's pixels is (or was) its own: a neighbour's smaller
        # ids won them all, and that neighbour wrote its types and pyramids
        return
    new = np.where(take, ids, old)
    fault("instances")
    root["instances"][y0:y1, x0:x1] = new
    lab = np.asarray(root["labels"][y0:y1, x0:x1])
    lab = np.where(take, res["types"], lab)
    fault("labels")
    root["labels"][y0:y1, x0:x1] = lab
    fault("instance_pyramid")
    write_window_levels(root, "pyramid_instances", y0, x0, new, factors)
    fault("pyramid")
    write_window_levels(root, "pyramid", y0, x0, lab, factors)


def write_table(out: Path, index: int, rows: list[list[Any]]) -> None:
    """One block's table rows as ``tables/<index>.csv`` (atomic)."""
    d = Path(out) / "tables"
    d.mkdir(exist_ok=True)
    with atomic_path(d / f"{index:07d}.csv") as tmp, open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TABLE_COLUMNS)
        w.writerows(rows)
