"""Layer data for the plugin's readers: predictions, masks and GeoJSON as napari layer tuples.

No napari here: :mod:`napari_slideseg._reader` calls these and turns their
errors into notifications. Standard library only at import time (the npe2
hook module imports this one).
"""

from __future__ import annotations

import os
from typing import Any

from ._reader_claims import is_id_map

#: Arrays a prediction of each model kind holds besides ``labels`` and its pyramid
#: (what :class:`~napari_slideseg.infer.task.Task` ``arrays`` create; this module
#: stays free of the engine's imports).
KIND_ARRAYS: dict[str, tuple[str, ...]] = {"hover": ("instances",)}


def zarr_arrays(path: str) -> dict[str, tuple[int, ...]] | None:
    """Every array of a zarr group (name -> shape), or None if it is not a readable group.

    Parameters
    ----------
    path : str
        A zarr folder.

    Returns
    -------
    dict or None
        Array paths inside the group and their shapes.
    """
    try:
        import zarr

        root = zarr.open_group(path, mode="r")
        return {
            k: tuple(v.shape) for k, v in root.members(max_depth=None) if isinstance(v, zarr.Array)
        }
    except Exception:
        return None


def slide_error_message(path: str, message: str) -> str:
    """What to tell the user when a path does not open as a slide.

    A folder that holds no 2-D array is said to be neither a slide nor a
    prediction, listing the arrays it has; anything else keeps ``message``
    (the :class:`~napari_slideseg.io.errors.SlideError`'s text).

    Parameters
    ----------
    path : str
        The path napari asked for.
    message : str
        The error's text.

    Returns
    -------
    str
        The notification text.
    """
    if os.path.isdir(path):
        arrays = zarr_arrays(path)
        if arrays is not None and not any(len(shape) >= 2 for shape in arrays.values()):
            found = ", ".join(f"{k} ({len(v)}-D)" for k, v in arrays.items()) or "none"
            message = (
                f"{path}: is not a slide or prediction: it holds no 2-D image array "
                f"(arrays: {found})"
            )
    return message


#: Keys of ``slideseg_inference`` a prediction folder needs to open.
PREDICTION_KEYS = ("kind", "level", "level_shape", "pyramid")


def prediction_problem(path: str) -> tuple[bool, str] | None:
    """What keeps a prediction folder from opening, or None when it opens.

    Returns ``(broken, problem)``: ``broken`` is whether it is a prediction
    with broken metadata (its ``slideseg_inference`` attributes or its
    labels are there), not only prediction parts (e.g. ``done`` marks).

    Parameters
    ----------
    path : str
        A zarr folder that :func:`~napari_slideseg._reader_claims.looks_like_prediction`.

    Returns
    -------
    tuple of (bool, str) or None
        ``(broken, problem)``, or ``None`` when the folder opens.
    """
    import zarr

    try:
        root = zarr.open_group(path, mode="r")
        attrs = dict(root.attrs)
    except Exception as err:  # unreadable metadata files
        return False, f"its zarr metadata cannot be read ({type(err).__name__}: {err})"
    info = attrs.get("slideseg_inference")
    has = "slideseg_inference" in attrs
    arrays = zarr_arrays(path) or {}
    if info is None and not has and "labels" not in arrays:
        found = ", ".join(f"{k} ({len(v)}-D)" for k, v in arrays.items()) or "none"
        return False, f"it has no 'slideseg_inference' attributes and no labels (arrays: {found})"
    if info is None:
        return True, "its 'slideseg_inference' attributes are missing"
    if not isinstance(info, dict):
        return True, f"its 'slideseg_inference' attributes are {_shown(info)}, not a mapping"
    missing = [k for k in PREDICTION_KEYS if k not in info]
    if missing:
        return True, f"'slideseg_inference' lacks {', '.join(missing)}"
    pyramid, shape = info["pyramid"], info["level_shape"]
    if not isinstance(pyramid, list) or not all(isinstance(f, int) for f in pyramid):
        return True, f"'slideseg_inference' pyramid is {_shown(pyramid)}, not a list of factors"
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) for n in shape)):
        return True, f"'slideseg_inference' level_shape is {_shown(shape)}, not [height, width]"
    meta = attrs.get("slideseg")
    if not isinstance(meta, dict):
        what = "missing" if meta is None else f"{_shown(meta)}, not a mapping"
        return True, f"its 'slideseg' attributes (class map, models) are {what}"
    if not isinstance(meta.get("classmap"), dict):
        return True, "its 'slideseg' attributes have no class map"
    try:
        from .io.palette import ClassMap

        ClassMap.from_dict(meta["classmap"])
    except Exception as err:
        return True, f"its class map is unusable ({err})"
    needed = ["labels"] + [f"pyramid/{f}" for f in pyramid]
    needed += KIND_ARRAYS.get(str(info.get("kind")), ())
    gone = [k for k in needed if k not in arrays]
    if gone:
        return True, f"the arrays {', '.join(gone)} are missing"
    if arrays["labels"] != tuple(shape):
        return True, f"'labels' is {arrays['labels']} but level_shape says {tuple(shape)}"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return f"a {type(value).__name__} ({text[:40] + '...' if len(text) > 40 else text})"


def mask_layers(path: str) -> list[tuple[Any, dict[str, Any], str]]:
    """Labels layer data for a mask, RLE CSV, instance map or NGFF labels store.

    An instance map (object ids) is one layer; an NGFF store gives one
    layer per label image; anything else is read by
    :func:`~napari_slideseg.io.masks.read_labels`.

    Parameters
    ----------
    path : str
        The file or folder.

    Returns
    -------
    list of tuple
        ``(data, kwargs, "labels")`` per layer.

    Raises
    ------
    SlideSegError
        When the file cannot be read as a mask (the caller notifies).
    """
    from .io.masks import ngff_label_names, read_id_map, read_labels

    if os.path.isfile(path) and not path.lower().endswith(".csv") and is_id_map(path):
        return [mask_layer(path, *read_id_map(path), None)]
    names = ngff_label_names(path) if os.path.isdir(path) else []
    layers = []
    choices: list[str | None] = list(names) if names else [None]
    for name in choices:
        labels, classmap, info = read_labels(path, label=name)
        layers.append(mask_layer(path, labels, classmap, info, name if len(names) > 1 else None))
    return layers


#: ``info`` entries of read_labels that stay out of layer metadata (big or not JSON).
_INFO_LEFT_OUT = ("attrs", "levels", "properties", "type_classmap", "instance_classes")


def mask_layer(
    path: str, labels: Any, classmap: Any, info: dict[str, Any], label_name: str | None
) -> tuple[Any, dict[str, Any], str]:
    """One Labels layer tuple for labels read from ``path`` (class colours or instance ids).

    Parameters
    ----------
    path : str
        The file or folder read (names the layer; kept in its metadata).
    labels : array-like
        The label image (level 0).
    classmap : ClassMap or None
        Class colours and names; ignored for instance maps.
    info : dict
        What the reader found (``mpp``, ``levels``, ``placement``,
        ``instances``, ``properties``, ``type_classmap``...).
    label_name : str or None
        The NGFF label image's name, added to the layer name when a store
        holds several.

    Returns
    -------
    tuple
        ``(data, kwargs, "labels")``; ``data`` is a list of levels (and
        ``kwargs["multiscale"]`` true) when the file holds a pyramid.
    """
    from pathlib import Path

    from .layers import labels_layer

    stem = Path(path.rstrip("/\\")).name.split(".")[0] or Path(path).stem
    meta: dict[str, Any] = {
        "path": path,
        "slideseg": {"source": {k: v for k, v in info.items() if k not in _INFO_LEFT_OUT}},
    }
    if info.get("placement"):
        meta["slideseg"]["placement"] = info["placement"]
    mpp = info.get("mpp")
    levels = info.get("levels") or []
    data = levels if len(levels) > 1 else labels
    features = None
    if info.get("instances"):
        meta["slideseg"]["instances"] = True
        types = info.get("type_classmap")
        if types is not None:
            meta["slideseg"]["classmap"] = types.to_dict()
        features = _instance_table(info, types)
        classmap = None
    data, kwargs, kind = labels_layer(
        data,
        classmap,
        name=f"{stem} {label_name}" if label_name else stem,
        metadata=meta,
        scale=tuple(mpp) if mpp else None,
        units=("micrometer", "micrometer") if mpp else None,
        features=features,
    )
    if isinstance(data, list):
        kwargs["multiscale"] = True
    return data, kwargs, kind


def _instance_table(info: dict[str, Any], types: Any) -> Any:
    """A features table (one row per object, ``index`` = id) from what the file records."""
    import pandas as pd

    props = info.get("properties")
    inst = info.get("instance_classes")
    if props:
        df = pd.DataFrame.from_dict(props, orient="index")
        df.index.name = "index"
        df = df.reset_index()
    elif inst:
        df = pd.DataFrame({"index": list(inst), "type": list(inst.values())})
    else:
        return None
    df["index"] = df["index"].astype("int64")
    if "type" in df and types is not None:
        names = list(types.names)
        t = pd.to_numeric(df["type"], errors="coerce")
        df["type"] = t.fillna(-1).astype("int64")
        if "type_name" not in df:
            df["type_name"] = [names[i] if 0 <= i < len(names) else "" for i in df["type"]]
    return df.sort_values("index").reset_index(drop=True)


#: Opacity of polygon faces (edges are opaque) in the class colour.
GEOJSON_FACE_ALPHA = 0.3


def geojson_layers(path: str) -> list[tuple[Any, dict[str, Any], str]]:
    """Shapes (and Points) layer data for GeoJSON polygons, lines and points.

    Each polygon (each part of a MultiPolygon) is one shape, edged and
    lightly filled in its class colour (:data:`GEOJSON_FACE_ALPHA`); lines
    are paths; points become a Points layer. When the file states its µm
    per pixel the layers get that scale in micrometres.

    Parameters
    ----------
    path : str
        A ``.geojson``, ``.geojson.gz`` or ``.json`` file.

    Returns
    -------
    list of tuple
        ``(data, kwargs, kind)`` per layer; empty when the file holds no
        polygon, line or point.

    Raises
    ------
    SlideSegError
        When the file is not readable GeoJSON (the caller notifies).
    """
    from pathlib import Path

    from .io.geojson import read_geojson

    found = read_geojson(path)
    name = Path(path).name
    for suffix in (".gz", ".geojson", ".json"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    common: dict[str, Any] = {}
    if found.mpp:
        common = {"scale": tuple(found.mpp), "units": ("micrometer", "micrometer")}
    meta = {
        "path": path,
        "slideseg": {"geojson": {"coordinates": found.coordinates, "holes_left_out": found.holes}},
    }
    layers: list[tuple[Any, dict[str, Any], str]] = []
    shapes = _shapes_layer(found, name, meta, common)
    if shapes is not None:
        layers.append(shapes)
    if found.points:
        layers.append(_points_layer(found, name, meta, common))
    return layers


def _shapes_layer(
    found: Any, name: str, meta: dict[str, Any], common: dict[str, Any]
) -> tuple[Any, dict[str, Any], str] | None:
    """The Shapes layer of the polygons and lines with enough vertices, or None."""
    import numpy as np

    keep = [
        i
        for i, (s, t) in enumerate(zip(found.shapes, found.shape_types, strict=True))
        if len(s) >= (3 if t == "polygon" else 2)
    ]
    if not keep:
        return None
    import pandas as pd

    edge = np.ones((len(keep), 4), np.float32)
    edge[:, :3] = np.asarray([found.colors[i] for i in keep], np.float32) / 255
    face = edge.copy()
    face[:, 3] = GEOJSON_FACE_ALPHA
    kwargs = {
        "name": name,
        "shape_type": [found.shape_types[i] for i in keep],
        "edge_color": edge,
        "face_color": face,
        "features": pd.DataFrame([found.records[i] for i in keep]),
        "metadata": meta,
        **common,
    }
    return [found.shapes[i] for i in keep], kwargs, "shapes"


def _points_layer(
    found: Any, name: str, meta: dict[str, Any], common: dict[str, Any]
) -> tuple[Any, dict[str, Any], str]:
    """The Points layer of the file's points, coloured by class."""
    import numpy as np
    import pandas as pd

    colors = np.ones((len(found.points), 4), np.float32)
    colors[:, :3] = np.asarray(found.point_colors, np.float32) / 255
    kwargs = {
        "name": f"{name} points",
        "face_color": colors,
        "features": pd.DataFrame(found.point_records),
        "metadata": meta,
        **common,
    }
    return np.asarray(found.points, np.float64), kwargs, "points"
