"""npe2 writer glue for Labels layers (thin: the core writers do the work).

Each writer takes the layer's class map from its metadata (set by this
plugin's readers, widgets and inference) or builds a default one, streams
level 0 of the (possibly dask-backed, multiscale) data, and writes
atomically. Errors become notifications and the writer reports no file.

Resolution and place: the layer's ``metadata["slideseg"]["placement"]``
(set on prediction layers: the pyramid level and the factors to level-0
pixels) or else its scale, when its units are micrometres, is what the
writers record: GeoJSON in level-0 pixels of the slide, PNG ``pHYs``, TIFF
resolution tags, OME-Zarr scale, RLE CSV placement columns. A layer with
neither is written in its pixels as they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any


def _level0(data: Any) -> Any:
    """Level 0 of a multiscale layer's data (a list, a tuple or napari's ``MultiScaleData``)."""
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return data[0]
    return data


def _placement(labels: Any, attributes: dict[str, Any]) -> Any:
    """Where the layer's level-0 data sits on its slide (None: pixels as they are)."""
    from dataclasses import replace

    from .io.placement import Placement

    where = Placement.from_layer(attributes)
    if where == Placement():
        return None
    return replace(where, shape=(int(labels.shape[-2]), int(labels.shape[-1])))


def _classmap(data: Any, attributes: dict[str, Any]) -> Any:
    from .io.masks import classmap_from_metadata
    from .io.palette import ClassMap

    cm = classmap_from_metadata(attributes.get("metadata"))
    if cm is not None:
        return cm
    top = data.max()
    top = int(top.compute() if hasattr(top, "compute") else top)
    return ClassMap.default(top + 1)


def _run(path: str, fn: Any) -> list[str]:
    from .io.errors import SlideSegError

    try:
        fn()
    except SlideSegError as err:
        try:
            from napari.utils.notifications import show_error
        except ImportError:  # pragma: no cover
            raise
        show_error(str(err))
        return []
    return [os.fspath(path)]


def write_labels_png(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Colour-map PNG in the layer's class colours (streamed by rows)."""
    from .io.export import write_color_png

    labels = _level0(data)
    cm = _classmap(labels, attributes)
    where = _placement(labels, attributes)
    return _run(path, lambda: write_color_png(path, labels, cm, placement=where))


def write_labels_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Colour-map TIFF (tiled, deflate) with resolution tags from the layer's scale."""
    from .io.export import write_color_tiff

    labels = _level0(data)
    cm = _classmap(labels, attributes)
    where = _placement(labels, attributes)
    return _run(path, lambda: write_color_tiff(path, labels, cm, placement=where))


def write_labels_rle(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """RLE CSV, Kaggle defaults: column-major order, 1-based starts, one row per class.

    The order and base are recorded in every row of the file.
    """
    from .io.export import export_labels

    labels = _level0(data)
    cm = _classmap(labels, attributes)
    where = _placement(labels, attributes)
    return _run(
        path,
        lambda: export_labels(labels, path, classmap=cm, rle_order="col", placement=where),
    )


def write_labels_zarr(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """OME-Zarr label image with class colours and names as per-label properties."""
    from .io.export import write_ome_zarr_labels

    labels = _level0(data)
    where = _placement(labels, attributes)
    cm = _classmap(labels, attributes)
    props = None
    features = attributes.get("features")
    if features is not None and len(features) and "label" in getattr(features, "columns", []):
        props = {
            int(r["label"]): {k: v for k, v in r.items() if k != "label"}
            for r in features.to_dict("records")
        }
    return _run(
        path,
        lambda: write_ome_zarr_labels(path, labels, classmap=cm, properties=props, placement=where),
    )


def write_labels_geojson(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """GeoJSON polygons, one per label id (instances), as QuPath detections with classes.

    Coordinates are level-0 pixels of the slide when the layer's placement is
    known (prediction layers), else the layer's pixels as they are.
    """
    from .io.export import write_geojson
    from .io.masks import classmap_from_metadata

    labels = _level0(data)
    where = _placement(labels, attributes)
    meta = attributes.get("metadata") or {}
    slideseg = meta.get("slideseg") or {}
    cm = classmap_from_metadata(meta)
    inst = slideseg.get("instance_classes")
    inst = {int(k): int(v) for k, v in inst.items()} if inst else None
    props = None
    features = attributes.get("features")
    cols = set(getattr(features, "columns", []))
    if features is not None and len(features) and {"index", "type"} <= cols:
        # a HoVer instance layer: each nucleus's type (and measurements) from its features row
        inst = dict(zip(features["index"].astype(int), features["type"].astype(int), strict=True))
        extra = [c for c in ("type_prob", "area") if c in cols]
        props = {
            int(r["index"]): {k: r[k] for k in extra}
            for r in features[["index", *extra]].to_dict("records")
        }
    mode = (
        "instances"
        if slideseg.get("kind") == "instances" or slideseg.get("instances") or inst
        else "semantic"
    )
    return _run(
        path,
        lambda: write_geojson(
            path,
            labels,
            mode=mode,
            classmap=cm,
            instance_classes=inst,
            properties=props,
            object_type="detection" if mode == "instances" else "annotation",
            placement=where,
        ),
    )
