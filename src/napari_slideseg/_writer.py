"""npe2 writer glue for Labels layers (thin: the core writers do the work).

Each writer takes the layer's class map from its metadata (set by this
plugin's readers, widgets and inference) or builds a default one, streams
level 0 of the (possibly dask-backed, multiscale) data, and writes
atomically. Errors become notifications and the writer reports no file.
"""

from __future__ import annotations

import os
from typing import Any


def _level0(data: Any) -> Any:
    if isinstance(data, list | tuple):
        return data[0]
    return data


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
    return _run(path, lambda: write_color_png(path, labels, _classmap(labels, attributes)))


def write_labels_rle(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """RLE CSV, Kaggle defaults: column-major order, 1-based starts, one row per class.

    The order and base are recorded in every row of the file.
    """
    from .io.export import export_labels

    labels = _level0(data)
    cm = _classmap(labels, attributes)
    return _run(path, lambda: export_labels(labels, path, classmap=cm, rle_order="col"))


def write_labels_zarr(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """OME-Zarr label image with class colours and names as per-label properties."""
    from .io.export import write_ome_zarr_labels

    labels = _level0(data)
    scale = attributes.get("scale")
    units = [str(u) for u in (attributes.get("units") or [])]
    mpp = (
        tuple(float(s) for s in scale[-2:])
        if scale is not None and units[-2:] == ["micrometer"] * 2
        else None
    )
    cm = _classmap(labels, attributes)
    props = None
    features = attributes.get("features")
    if features is not None and len(features) and "label" in getattr(features, "columns", []):
        props = {
            int(r["label"]): {k: v for k, v in r.items() if k != "label"}
            for r in features.to_dict("records")
        }
    return _run(
        path, lambda: write_ome_zarr_labels(path, labels, classmap=cm, properties=props, mpp=mpp)
    )


def write_labels_geojson(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """GeoJSON polygons, one per label id (instances), as QuPath detections with classes."""
    from .io.export import write_geojson
    from .io.masks import classmap_from_metadata

    labels = _level0(data)
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
        ),
    )
