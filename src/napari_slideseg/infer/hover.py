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
``instances.csv`` holds level-0 pixels of the slide whatever level was
predicted (centroids as pixel indices, bounding boxes as pixel edges, area
in level-0 pixels), plus ``centroid_y_um``, ``centroid_x_um`` and
``area_um2`` when the slide's mpp is known.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..instances.postproc import HoverParams, hover_instances
from ..io.ngff import write_window_levels
from .writes import fault

TABLE_COLUMNS = (
    "id",
    "centroid_y",
    "centroid_x",
    "bbox_y0",
    "bbox_x0",
    "bbox_y1",
    "bbox_x1",
    "area",
    "type",
    "type_name",
    "type_prob",
)
#: Columns the merged table adds: micrometres (empty when the mpp is unknown).
UM_COLUMNS = ("centroid_y_um", "centroid_x_um", "area_um2")


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
    path = d / f"{index:07d}.csv"
    tmp = d / f".{index:07d}.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TABLE_COLUMNS)
        w.writerows(rows)
    os.replace(tmp, path)


def _placement(out: Path) -> Any:
    """The prediction's placement (level, factors, mpp) from its zarr attributes."""
    import zarr

    from ..io.placement import Placement

    try:
        attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    except Exception:  # no zarr there (tables written by hand): level 0, no mpp
        return Placement()
    return Placement.from_attrs(attrs) or Placement()


def _level0_row(row: list[str], where: Any) -> list[Any]:
    """A block-table row (level pixels) in level-0 pixels, with the µm columns."""
    fy, fx = where.factors
    r = dict(zip(TABLE_COLUMNS, row, strict=True))
    cy, cx = where.index_to_level0(float(r["centroid_y"]), float(r["centroid_x"]))
    area = int(r["area"])
    if not where.is_level0:
        r["centroid_y"], r["centroid_x"] = round(cy, 2), round(cx, 2)
        r["bbox_y0"], r["bbox_y1"] = round(int(r["bbox_y0"]) * fy), round(int(r["bbox_y1"]) * fy)
        r["bbox_x0"], r["bbox_x1"] = round(int(r["bbox_x0"]) * fx), round(int(r["bbox_x1"]) * fx)
        r["area"] = round(area * fy * fx)
    if where.mpp:
        my, mx = where.mpp
        um = [round(cy * my, 3), round(cx * mx, 3), round(area * fy * fx * my * mx, 3)]
    else:
        um = ["", "", ""]
    return [r[c] for c in TABLE_COLUMNS] + um


def merge_tables(out: Path, target: str | os.PathLike | None = None) -> tuple[Path, int]:
    """Concatenate the block tables into ``instances.csv`` (streamed, atomic); returns (path, rows).

    Rows are converted from level pixels to level-0 pixels of the slide
    (the prediction's ``level_factors``) and get micrometre columns when its
    ``mpp`` is known (:data:`UM_COLUMNS`).

    A nucleus whose pixels all went to smaller ids of a neighbour is kept in
    the table (it is rare and its centroid is still a detection).

    ``target`` (default ``out/instances.csv``) writes the table elsewhere.
    """
    out = Path(out)
    where = _placement(out)
    target = out / "instances.csv" if target is None else Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    n = 0
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TABLE_COLUMNS + UM_COLUMNS)
        for f in sorted((out / "tables").glob("*.csv")) if (out / "tables").exists() else []:
            with open(f, newline="") as src:
                r = csv.reader(src)
                next(r, None)
                for row in r:
                    w.writerow(_level0_row(row, where))
                    n += 1
    os.replace(tmp, target)
    return target, n


def read_instance_table(path: str | os.PathLike, *, partial: bool = False) -> dict[str, np.ndarray]:
    """``instances.csv`` (or a prediction folder) as a column dict of arrays.

    Coordinates are level-0 pixels of the slide; the µm columns
    (:data:`UM_COLUMNS`) are present when the table has them, NaN where empty.
    A prediction folder whose run has not finished is refused
    (:class:`~napari_slideseg.io.masks.IncompletePredictionError`) unless
    ``partial``: then the table holds the nuclei of the finished blocks.
    """
    from ..io.masks import check_prediction

    p = Path(path)
    if p.is_dir():
        if check_prediction(p, partial):
            import tempfile

            with tempfile.TemporaryDirectory() as d:
                merged, _ = merge_tables(p, Path(d) / "instances.csv")
                return read_instance_table(merged)
        p = p / "instances.csv"
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    cols: dict[str, np.ndarray] = {}
    for c in TABLE_COLUMNS:
        vals = [r[c] for r in rows]
        if c == "type_name":
            cols[c] = np.asarray(vals, dtype=object)
        elif c in ("centroid_y", "centroid_x", "type_prob"):
            cols[c] = np.asarray(vals, np.float64)
        else:
            cols[c] = np.asarray(vals, np.int64)
    for c in UM_COLUMNS:
        if c in header:
            cols[c] = np.asarray([float(r[c]) if r[c] else np.nan for r in rows], np.float64)
    return cols


def export_instances_steps(
    pred: str | os.PathLike,
    out: str | os.PathLike,
    *,
    what: str | None = None,
    image_id: str | None = None,
    partial: bool = False,
) -> Any:
    """Export a HoVer prediction's nuclei (a generator of progress events; returns the path).

    A prediction whose run has not finished is refused
    (:class:`~napari_slideseg.io.masks.IncompletePredictionError`, naming the
    folder and the missing blocks) unless ``partial``: then the finished
    blocks' nuclei are exported, with a warning.

    ``what`` (default: from the suffix of ``out``):

    ``geojson``
        ``.geojson`` / ``.geojson.gz``: one polygon per nucleus as a QuPath
        *detection* with its type's name and ClassMap colour and the type
        probability and area as measurements, streamed block by block, in
        level-0 pixels of the slide whatever level was predicted.
    ``rle``
        ``.csv``: instance RLE CSV, one row per nucleus (id, class, RLE) in
        the prediction's pixels; every row states the level, the slide's
        level-0 size and the µm per pixel.
    ``table``
        ``.csv``: the instance table (id, centroid, bbox, area, type,
        probability, in level-0 pixels, and µm columns when the mpp is
        known), copied atomically.
    """
    import shutil

    import dask.array as da
    import zarr

    from ..io.masks import check_prediction
    from ..io.palette import ClassMap
    from ..progress import Progress

    pred, out = Path(pred), Path(out)
    missing = check_prediction(pred, partial)
    root = zarr.open_group(str(pred), mode="r")
    if "instances" not in root:
        from ..io.errors import SlideSegError

        raise SlideSegError(f"{pred}: not a HoVer prediction (no 'instances' array)")
    name = out.name.lower()
    is_geojson = name.endswith((".geojson", ".geojson.gz", ".json"))
    if what is None:
        what = "geojson" if is_geojson else "rle"
    fits = {"geojson": is_geojson, "rle": name.endswith(".csv"), "table": name.endswith(".csv")}
    if what not in fits:
        raise ValueError(f"what must be 'geojson', 'rle' or 'table', not {what!r}")
    if not fits[what]:
        from ..io.errors import SlideSegError

        wants = ".geojson or .geojson.gz" if what == "geojson" else ".csv"
        other = (
            "; for an id image (PNG/TIFF/OME-Zarr) export the prediction's instance map "
            "without --instances"
            if what == "rle"
            else ""
        )
        raise SlideSegError(
            f"{out}: the nuclei {'table' if what == 'table' else 'export'} is written as "
            f"{wants}, not {out.suffix or 'a file without extension'}{other}"
        )
    attrs: dict[str, Any] = dict(root.attrs)
    meta = attrs.get("slideseg") or {}
    classmap = ClassMap.from_dict(meta["classmap"]) if meta.get("classmap") else None
    if what == "table":
        if missing:
            merge_tables(pred, out)  # the finished blocks' nuclei (no instances.csv yet)
        else:
            tmp = out.with_name(f".{out.name}.tmp")
            shutil.copyfile(pred / "instances.csv", tmp)
            os.replace(tmp, out)
        yield Progress("export", 1, 1, f"wrote {out}")
        return out
    from dataclasses import replace

    from ..io.placement import Placement

    tab = read_instance_table(pred, partial=True) if missing else read_instance_table(pred)
    classes = dict(zip(tab["id"].tolist(), tab["type"].tolist(), strict=True))
    labels = da.from_zarr(root["instances"])
    where = replace(
        Placement.from_attrs(dict(root.attrs)) or Placement(), shape=tuple(labels.shape)
    )
    if what == "geojson":
        from ..io.export import write_geojson_steps

        um2 = tab.get("area_um2")
        props = {
            int(i): {"type_probability": float(p), "area_px": int(a)}
            for i, p, a in zip(tab["id"], tab["type_prob"], tab["area"], strict=True)
        }
        if um2 is not None:
            for i, v in zip(tab["id"], um2, strict=True):
                if np.isfinite(v):
                    props[int(i)]["area_um2"] = float(v)
        return (
            yield from write_geojson_steps(
                out,
                labels,
                mode="instances",
                classmap=classmap,
                instance_classes=classes,
                properties=props,
                object_type="detection",
                placement=where,
            )
        )
    from ..io.rle import write_rle_csv

    write_rle_csv(
        out,
        labels,
        layout="instance",
        image_id=image_id or pred.name.split(".")[0],
        class_names=list(classmap.names) if classmap else None,
        instance_classes=classes,
        placement=where,
    )
    yield Progress("export", 1, 1, f"wrote {out}")
    return out
