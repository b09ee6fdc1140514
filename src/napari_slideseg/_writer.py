"""npe2 writer glue for Labels layers (thin: the core writers do the work).

Each writer takes level 0 of what napari passes (a NumPy, dask or zarr
array; for multiscale layers a list or napari's ``MultiScaleData``, of which
level 0 is written), the layer's class map from its metadata (set by this
plugin's readers, widgets and inference) or a default one, and writes
atomically. Errors (a layer a format can't hold, a bad class map, a disk
error) become one error notification naming the file, and the writer
reports no file; napari then adds its own "did not return any written
paths" warning.

Two kinds of layers: **class labels** (values are class indices: semantic
predictions, nucleus types, masks) and **instance labels** (values are
object ids: HoVer nuclei, marked ``metadata["slideseg"]["instances"]``, or
carrying a features table with ``index`` and ``type`` columns; a layer
without a class map whose values exceed 255 is taken as instances too).
Instance layers are written as ids, never through a palette: PNG as a 16-bit
id image (ids above 65535, such as HoVer's, are refused with a message
naming .tif/.csv/.zarr/.geojson), TIFF as a uint16/uint32 id image, RLE CSV
in the instance layout (one row per object, with its type), OME-Zarr labels
with per-object properties, GeoJSON one polygon per object.

Resolution and place: the layer's ``metadata["slideseg"]["placement"]``
(set on prediction layers: the pyramid level and the factors to level-0
pixels) or else its scale, when its units are micrometres, is what the
writers record: GeoJSON in level-0 pixels of the slide, PNG ``pHYs``, TIFF
resolution tags, OME-Zarr scale, RLE CSV placement columns. A layer with
neither is written in its pixels as they are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: Largest value a layer without a class map may hold and still be written as classes.
MAX_UNNAMED_CLASS = 255


def _level0(data: Any) -> Any:
    """Level 0 of a multiscale layer's data (a list, a tuple or napari's ``MultiScaleData``).

    NumPy and dask arrays pass as they are; other arrays (zarr, tensorstore,
    anything with shape, dtype and slicing) are wrapped in dask by their
    chunks, so every writer streams them.
    """
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        data = data[0]
    import dask.array as da
    import numpy as np

    if isinstance(data, np.ndarray | da.Array):
        return data
    if hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__"):
        chunks = getattr(data, "chunks", None)
        ok = isinstance(chunks, tuple) and len(chunks) == len(data.shape)
        return da.from_array(data, chunks=chunks if ok else "auto", asarray=True)
    return np.asarray(data)


def _placement(labels: Any, attributes: dict[str, Any]) -> Any:
    """Where the layer's level-0 data sits on its slide (None: pixels as they are)."""
    from dataclasses import replace

    from .io.placement import Placement

    where = Placement.from_layer(attributes)
    if where == Placement():
        return None
    return replace(where, shape=(int(labels.shape[-2]), int(labels.shape[-1])))


@dataclass
class _Layer:
    """What the writers need from a Labels layer."""

    labels: Any
    classmap: Any  # the label values' classes, or for instances the objects' types (or None)
    instances: bool
    placement: Any
    instance_classes: dict[int, int] | None
    properties: dict[int, dict[str, Any]] | None
    name: str


def _features(attributes: dict[str, Any]) -> Any:
    features = attributes.get("features")
    if features is None or not len(features) or not hasattr(features, "columns"):
        return None
    return features


def _layer(
    path: str, data: Any, attributes: dict[str, Any] | None, *, zarr: bool = False
) -> _Layer:
    """Level 0, class map, kind and per-object data of the layer napari passes.

    Checks what is refused before anything is written (:class:`MaskError`
    naming ``path``): an output file name that is a directory (an OME-Zarr
    target, ``zarr=True``, that is not an earlier labels export), a layer
    without pixels, class labels with negative values.
    """
    from .io.export import (
        as_label_image,
        check_class_values,
        check_file_target,
        check_not_empty,
        check_zarr_target,
        value_range,
    )
    from .io.masks import classmap_from_metadata
    from .io.palette import ClassMap

    if not isinstance(attributes, dict):
        logger.debug("%s: layer attributes are %s, not a dict: ignored", path, type(attributes))
        attributes = {}
    if zarr:
        check_zarr_target(path)
    else:
        check_file_target(path)
    labels = as_label_image(_level0(data), "a Labels layer to save")
    check_not_empty(labels, path)
    meta = attributes.get("metadata") or {}
    slideseg = meta.get("slideseg") or {} if isinstance(meta, dict) else {}
    cm = classmap_from_metadata(meta if isinstance(meta, dict) else None)
    features = _features(attributes)
    cols = set(features.columns) if features is not None else set()
    instances = bool(
        slideseg.get("instances")
        or slideseg.get("kind") == "instances"
        or {"index", "type"} <= cols
    )
    if not instances:  # class labels: negative values are no class in any format
        lo, top = value_range(labels)
        check_class_values(lo, path)
        if cm is None and top > MAX_UNNAMED_CLASS:
            logger.info(
                "%s: a layer without a class map holds values up to %d: written as instances",
                path,
                top,
            )
            instances = True
        elif cm is None:
            logger.info(
                "%s: the layer has no class map; a default one of %d classes", path, top + 1
            )
            cm = ClassMap.default(top + 1)
    inst = slideseg.get("instance_classes")
    inst = {int(k): int(v) for k, v in inst.items()} if inst else None
    props = None
    if features is not None and "index" in cols:
        ids = features["index"].astype("int64")
        if "type" in cols:
            inst = dict(zip(ids.tolist(), features["type"].astype("int64").tolist(), strict=True))
        keep = [c for c in features.columns if c != "index"]
        props = {
            int(i): {k: r[k] for k in keep}
            for i, r in zip(ids.tolist(), features[keep].to_dict("records"), strict=True)
        }
    elif features is not None and "label" in cols:  # OME-Zarr style properties
        keep = [c for c in features.columns if c != "label"]
        props = {int(r["label"]): {k: r[k] for k in keep} for r in features.to_dict("records")}
    return _Layer(
        labels=labels,
        classmap=cm,
        instances=instances,
        placement=_placement(labels, attributes),
        instance_classes=inst,
        properties=props,
        name=str(attributes.get("name") or "labels"),
    )


def _run(
    path: str,
    data: Any,
    attributes: dict[str, Any] | None,
    write: Callable[[_Layer], None],
    *,
    zarr: bool = False,
) -> list[str]:
    """Check the layer napari passes and ``write`` it to ``path``; errors become a notification.

    A SlideSegError or OSError (from :func:`_layer`'s checks or the writing)
    becomes one error notification naming ``path``.
    """
    from .io.errors import SlideSegError

    try:
        write(_layer(path, data, attributes, zarr=zarr))
    except (SlideSegError, OSError) as err:
        message = str(err)
        if os.path.basename(os.fspath(path)) not in message:
            message = f"{os.fspath(path)}: {message}"
        _notify_error(f"Not saved. {message}")
        return []
    return [os.fspath(path)]


def _notify_error(message: str) -> None:
    try:
        from napari.utils.notifications import show_error
    except ImportError:  # pragma: no cover - napari is there when napari calls a writer
        raise RuntimeError(message) from None
    show_error(message)


def write_labels_png(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Colour-map PNG in the layer's class colours; instance layers as 16-bit ids (<= 65535).

    Parameters
    ----------
    path : str
        The file napari asks for.
    data : array or list of arrays
        The layer's data (level 0 of a multiscale layer is written).
    attributes : dict
        The layer's attributes (metadata with the class map and placement,
        features, scale, units, name).

    Returns
    -------
    list of str
        ``[path]`` when written; ``[]`` after an error notification.
    """
    from .io.export import PNG_MAX_ID, id_refusal, write_color_png, write_id_png

    def write(layer: _Layer) -> None:
        if not layer.instances:
            write_color_png(path, layer.labels, layer.classmap, placement=layer.placement)
            return
        if layer.instance_classes:  # known ids: refuse before reading any pixel
            top = max(layer.instance_classes)
            if top > PNG_MAX_ID:
                from pathlib import Path

                raise id_refusal(Path(path), top, PNG_MAX_ID, "16-bit PNG")
        write_id_png(path, layer.labels, classmap=layer.classmap, placement=layer.placement)

    return _run(path, data, attributes, write)


def write_labels_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Colour-map TIFF (tiled, deflate); instance layers as uint16/uint32 id TIFFs.

    Parameters
    ----------
    path : str
        The file napari asks for.
    data : array or list of arrays
        The layer's data (level 0 of a multiscale layer is written).
    attributes : dict
        The layer's attributes (metadata with the class map and placement,
        features, scale, units, name).

    Returns
    -------
    list of str
        ``[path]`` when written; ``[]`` after an error notification.
    """
    from .io.export import write_color_tiff, write_id_tiff

    def write(layer: _Layer) -> None:
        if layer.instances:
            write_id_tiff(path, layer.labels, classmap=layer.classmap, placement=layer.placement)
        else:
            write_color_tiff(path, layer.labels, layer.classmap, placement=layer.placement)

    return _run(path, data, attributes, write)


def write_labels_rle(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """RLE CSV, Kaggle defaults: column-major order, 1-based starts.

    Class layers: one row per class. Instance layers: one row per object
    (``instance_id``, and its type's ``class_index``/``class_name`` when the
    layer knows them). The order and base are recorded in every row.

    Parameters
    ----------
    path : str
        The file napari asks for.
    data : array or list of arrays
        The layer's data (level 0 of a multiscale layer is written).
    attributes : dict
        The layer's attributes (metadata with the class map and placement,
        features, scale, units, name).

    Returns
    -------
    list of str
        ``[path]`` when written; ``[]`` after an error notification.
    """
    from .io.export import export_labels

    def write(layer: _Layer) -> None:
        export_labels(
            layer.labels,
            path,
            classmap=layer.classmap,
            rle_order="col",
            placement=layer.placement,
            instances=layer.instances,
            instance_classes=layer.instance_classes if layer.instances else None,
        )

    return _run(path, data, attributes, write)


def write_labels_zarr(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """OME-Zarr (NGFF 0.4) labels: ``labels/<layer name>/`` with colours and properties.

    Parameters
    ----------
    path : str
        The file napari asks for.
    data : array or list of arrays
        The layer's data (level 0 of a multiscale layer is written).
    attributes : dict
        The layer's attributes (metadata with the class map and placement,
        features, scale, units, name).

    Returns
    -------
    list of str
        ``[path]`` when written; ``[]`` after an error notification.
    """
    from .io.export import write_ome_zarr_labels

    def write(layer: _Layer) -> None:
        props = layer.properties
        if layer.instances and layer.instance_classes and layer.classmap is not None:
            names = layer.classmap.names
            props = {k: dict(v) for k, v in (props or {}).items()}
            for lid, t in layer.instance_classes.items():
                if 0 <= t < len(names):
                    props.setdefault(lid, {})["class"] = names[t]
        write_ome_zarr_labels(
            path,
            layer.labels,
            classmap=layer.classmap,
            properties=props,
            placement=layer.placement,
            instances=layer.instances,
            name=layer.name,
        )

    return _run(path, data, attributes, write, zarr=True)


def write_labels_geojson(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """GeoJSON polygons: instance layers one detection per object, class layers one per region.

    Coordinates are level-0 pixels of the slide when the layer's placement is
    known (prediction layers), else the layer's pixels as they are.

    Parameters
    ----------
    path : str
        The file napari asks for.
    data : array or list of arrays
        The layer's data (level 0 of a multiscale layer is written).
    attributes : dict
        The layer's attributes (metadata with the class map and placement,
        features, scale, units, name).

    Returns
    -------
    list of str
        ``[path]`` when written; ``[]`` after an error notification.
    """
    from .io.export import write_geojson

    def write(layer: _Layer) -> None:
        props = None
        if layer.instances and layer.properties:
            extra = ("type_prob", "area", "area_um2")
            props = {k: {c: v[c] for c in extra if c in v} for k, v in layer.properties.items()}
        write_geojson(
            path,
            layer.labels,
            mode="instances" if layer.instances else "semantic",
            classmap=layer.classmap,
            instance_classes=layer.instance_classes if layer.instances else None,
            properties=props,
            object_type="detection" if layer.instances else "annotation",
            placement=layer.placement,
        )

    return _run(path, data, attributes, write)
