"""Plain layer-data tuples for napari, built without importing napari.

napari's reader and sample-data contributions (and console users) take
``(data, kwargs, layer_type)`` tuples. Building them here keeps the npe2 glue
thin and lets scripts do ``viewer.add_image(*slide_layer(slide)[:2])``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .io.slide import Slide

logger = logging.getLogger(__name__)


def slide_layer(slide: Slide, name: str | None = None) -> tuple[list, dict[str, Any], str]:
    """A multiscale Image layer tuple for ``slide``.

    Contrast limits are fixed from the stored bit depth (never computed over
    the slide). Scale and units come from the microns per pixel when known.

    Parameters
    ----------
    slide
        An opened slide.
    name
        Layer name (default: the file name).

    Returns
    -------
    tuple
        ``(levels, kwargs, "image")``.
    """
    meta = slide.metadata
    display = meta.get("display_range")
    if not display:
        logger.debug("%s: no display range in its metadata; contrast limits 0-255", slide.name)
        display = [0.0, 255.0]
    kwargs: dict[str, Any] = {
        "name": name or slide.name,
        "multiscale": True,
        "rgb": slide.is_rgb,
        "contrast_limits": [float(display[0]), float(display[1])],
        "metadata": {
            "slideseg": {
                "path": slide.path,
                "backend": slide.backend,
                "levels": [list(lv.shape) for lv in slide.levels],
                "downsamples": list(slide.downsamples),
                "mpp": list(slide.mpp) if slide.mpp else None,
                "tile_size": list(slide.tile_size),
            },
            "path": slide.path,
            "file_metadata": meta,
        },
    }
    if slide.mpp:
        kwargs["scale"] = tuple(slide.mpp)
        kwargs["units"] = ("micrometer", "micrometer")
    if not slide.is_rgb:
        kwargs["colormap"] = "gray"
        if slide.channels > 1:
            kwargs["channel_axis"] = 2
            kwargs.pop("rgb")
            kwargs["contrast_limits"] = [kwargs["contrast_limits"]] * slide.channels
    return list(slide.levels), kwargs, "image"


def labels_layer(
    labels: Any,
    classmap: Any | None = None,
    *,
    name: str = "labels",
    scale: tuple[float, float] | None = None,
    metadata: dict[str, Any] | None = None,
    features: Any | None = None,
    units: tuple[str, str] | None = None,
) -> tuple[Any, dict[str, Any], str]:
    """A Labels layer tuple whose colours are the class map's (background transparent).

    The class map travels in ``metadata["slideseg"]["classmap"]`` so writers
    and widgets get it back from the layer. ``scale`` (µm per pixel when
    ``units`` are ``("micrometer", "micrometer")``) is the scale of the
    first (level-0) array of multiscale data, as napari takes it.

    Parameters
    ----------
    labels : array or list of arrays
        The label image, or its pyramid (level 0 first).
    classmap : ClassMap, optional
        The classes of the label values; None leaves napari's colours.
    name : str
        Layer name.
    scale : tuple of float, optional
        ``(y, x)`` scale of the first array.
    metadata : dict, optional
        Layer metadata; its ``"slideseg"`` entry is kept and gets the class map.
    features : pandas.DataFrame, optional
        Per-label table (napari ``features``).
    units : tuple of str, optional
        ``(y, x)`` units of ``scale``.

    Returns
    -------
    tuple
        ``(labels, kwargs, "labels")``.
    """
    meta = dict(metadata or {})
    slideseg = dict(meta.get("slideseg") or {})
    kwargs: dict[str, Any] = {"name": name}
    if classmap is not None:
        slideseg["classmap"] = classmap.to_dict()
        # napari turns a {label: rgba} dict (None = default) into a DirectLabelColormap.
        kwargs["colormap"] = classmap.to_napari_colormap_dict()
    meta["slideseg"] = slideseg
    kwargs["metadata"] = meta
    if scale is not None:
        kwargs["scale"] = tuple(scale)
    if units is not None:
        kwargs["units"] = tuple(units)
    if features is not None:
        kwargs["features"] = features
    return labels, kwargs, "labels"


def _prediction_grid(
    info: dict[str, Any], base_scale: tuple[float, float] | None
) -> tuple[Any, tuple[float, float], tuple[float, float], dict[str, Any]]:
    """``(placement, base scale, level scale, units kwargs)`` of a prediction.

    The base (slide layer, level 0) scale is ``base_scale`` when given, else
    the slide's level-0 mpp recorded in the prediction, else 1; units are
    micrometres when the prediction knows the mpp.
    """
    from .io.placement import MICROMETER, Placement

    where = Placement.from_dict(info)
    if where is None:
        logger.debug("the prediction records no placement: taken as level 0, µm/px unknown")
        where = Placement()
    if base_scale is None:
        if where.mpp is None:
            logger.debug("no slide scale given and no µm/px recorded: scale 1 (pixels)")
        base_scale = where.mpp or (1.0, 1.0)
    base = (float(base_scale[-2]), float(base_scale[-1]))
    fy, fx = where.factors
    units = {"units": (MICROMETER, MICROMETER)} if where.mpp else {}
    return where, base, (base[0] * fy, base[1] * fx), units


def prediction_layers(
    out: Any, *, base_scale: tuple[float, float] | None = None, name: str | None = None
) -> list[tuple[Any, dict[str, Any], str]]:
    """Layer tuples for a ``predict_slide`` output folder (read live from the zarr).

    The Labels layer is multiscale over the output's label pyramid, coloured by
    the model's ClassMap, scaled to sit on the slide layer (``base_scale`` is
    the slide layer's level-0 scale; by default the slide's level-0 µm per
    pixel recorded in the prediction), in micrometres when the slide's mpp
    is known, and carries the provenance (model cards, options, versions)
    and its ``placement`` (level, factors to level 0, mpp) in
    ``metadata["slideseg"]``, so it saves in level-0 coordinates. napari
    takes ``scale`` as that of the first array: a level-``L`` prediction's
    scale is the slide's times the level's downsample. The arrays are zarr
    arrays, not cached copies: ``layer.refresh()`` shows newly written blocks.

    Parameters
    ----------
    out : str or os.PathLike
        The prediction folder (``.zarr``).
    base_scale : tuple of float, optional
        The slide layer's level-0 ``(y, x)`` scale.
    name : str, optional
        Layer name (default: ``prediction (<folder stem>)``; HoVer:
        ``nucleus types (...)``).

    Returns
    -------
    list of tuple
        ``(data, kwargs, "labels")``: the class (HoVer: nucleus type) labels,
        then for a HoVer prediction the nuclei of :func:`instance_layer`;
        where corrections were saved (:mod:`napari_slideseg.corrections`)
        the layer shows them and a ``"shapes"`` outline of them follows it.
    """
    import zarr

    from .infer.output import output_levels
    from .io.palette import ClassMap

    root = zarr.open_group(str(out), mode="r")
    attrs: dict[str, Any] = dict(root.attrs)  # JSON the engine wrote (see the reader's checks)
    info = attrs.get("slideseg_inference") or {}
    meta = attrs.get("slideseg") or {}
    classmap = ClassMap.from_dict(meta["classmap"]) if meta.get("classmap") else None
    if classmap is None:
        logger.debug("%s: no class map recorded; the labels get napari's colours", out)
    where, _base, scale, units = _prediction_grid(info, base_scale)
    levels = output_levels(root)
    layer_name = name or f"prediction ({Path(str(out)).stem})"
    provenance = {
        "prediction": str(out),
        "models": meta.get("models", []),
        "options": info.get("config", {}),
        "versions": info.get("versions", {}),
        "slide": info.get("slide"),
        "complete": info.get("complete", False),
        "placement": where.to_dict(),
    }
    data, kwargs, kind = labels_layer(
        levels if len(levels) > 1 else levels[0],
        classmap,
        name=layer_name,
        scale=scale,
        metadata={"slideseg": provenance},
        **units,
    )
    kwargs["multiscale"] = len(levels) > 1
    layers = [(data, kwargs, kind)]
    if "instances" in root:  # a task that writes nuclei (HoVer) wrote them beside the labels
        kwargs["name"] = name or f"nucleus types ({Path(str(out)).stem})"
        layers.append(instance_layer(out, base_scale=_base))
    from .corrections.view import with_corrections

    return with_corrections(out, layers)  # saved corrections shown, and outlined


def instance_layer(
    out: Any,
    *,
    scale: tuple[float, float] | None = None,
    name: str | None = None,
    base_scale: tuple[float, float] | None = None,
) -> tuple[Any, dict[str, Any], str]:
    """An instance Labels layer of a HoVer prediction, with one ``features`` row per nucleus.

    ``features`` (:func:`instance_features`) holds ``index`` (the label
    id), ``id``, ``type_name``, ``type_prob``, ``area``, ``type`` and the
    centroid (level-0 pixels) as plain ints and rounded floats, so hovering
    a nucleus in napari shows ``id: 1717987014, type_name: epithelial,
    type_prob: 0.87, area: 1930, ...``. Rows appear once the prediction is
    complete (the table is assembled at the end); the pixels show live.

    Parameters
    ----------
    out : str or os.PathLike
        The HoVer prediction folder.
    scale : tuple of float, optional
        The layer's own ``(y, x)`` scale (the prediction level's); by default
        derived from ``base_scale`` and the level's downsample.
    name : str, optional
        Layer name (default: ``nuclei (<folder stem>)``).
    base_scale : tuple of float, optional
        The slide layer's scale (default: the slide's mpp).

    Returns
    -------
    tuple
        ``(instances, kwargs, "labels")``; ``instances`` is the zarr id array,
        or its pyramid.
    """
    import zarr

    root = zarr.open_group(str(out), mode="r")
    attrs: dict[str, Any] = dict(root.attrs)  # JSON the engine wrote
    info = attrs.get("slideseg_inference") or {}
    where, _base, level_scale, units = _prediction_grid(info, base_scale)
    levels = [root["instances"]] + [root[f"pyramid_instances/{f}"] for f in info.get("pyramid", [])]
    classmap = (attrs.get("slideseg") or {}).get("classmap")
    kwargs: dict[str, Any] = {
        "name": name or f"nuclei ({Path(str(out)).stem})",
        "scale": tuple(scale) if scale is not None else level_scale,
        "multiscale": len(levels) > 1,
        "metadata": {
            "slideseg": {
                "prediction": str(out),
                "instances": True,
                "classmap": classmap,
                "placement": where.to_dict(),
            }
        },
        **units,
    }
    table = Path(str(out)) / "instances.csv"
    if table.exists():
        kwargs["features"] = instance_features(table)
    return (levels if len(levels) > 1 else levels[0]), kwargs, "labels"


def instance_features(table: Any) -> Any:
    """The instance table as a pandas DataFrame for a Labels layer, in tooltip form.

    napari shows every column but ``index`` (the label id it looks rows up
    by) when the cursor is on a nucleus, formatting floats with 3
    significant digits, so the columns are plain ``int64`` where the
    quantity is whole and rounded floats where it is not: ``id`` (the label
    id, shown), ``type_name``, ``type_prob`` (2 decimals), ``area`` (level-0
    pixels), ``area_um2`` (1 decimal, NaN and so not shown when the mpp is
    unknown), ``type`` (the ClassMap index) and ``centroid_y``,
    ``centroid_x`` (level-0 pixel indices, rounded to the nearest pixel).
    Hovering a nucleus shows e.g. ``id: 1717987014, type_name: epithelial,
    type_prob: 0.87, area: 1930``. The exact values (centroids to 0.01 px,
    probabilities to 4 decimals, µm centroids) are in ``instances.csv``
    (:func:`~napari_slideseg.infer.hover.read_instance_table`); the cursor
    position napari shows is already in µm when the slide's mpp is known.

    Parameters
    ----------
    table : str or os.PathLike
        An ``instances.csv`` (or a prediction folder holding one).

    Returns
    -------
    pandas.DataFrame
        One row per nucleus, the columns above.
    """
    import numpy as np
    import pandas as pd

    from .infer.hover import read_instance_table

    t = read_instance_table(table)
    ids = t["id"].astype(np.int64)
    cols = {
        "index": ids,
        "id": ids.copy(),
        "type_name": np.asarray([str(v) for v in t["type_name"]], dtype=object),
        "type_prob": np.round(t["type_prob"].astype(np.float64), 2),
        "area": t["area"].astype(np.int64),
    }
    if "area_um2" in t:
        cols["area_um2"] = np.round(t["area_um2"].astype(np.float64), 1)
    cols["type"] = t["type"].astype(np.int64)
    cols["centroid_y"] = np.rint(t["centroid_y"]).astype(np.int64)
    cols["centroid_x"] = np.rint(t["centroid_x"]).astype(np.int64)
    return pd.DataFrame(cols)


def centroid_points(
    out: Any,
    *,
    scale: tuple[float, float] | None = None,
    name: str | None = None,
    features: Any | None = None,
    base_scale: tuple[float, float] | None = None,
) -> tuple[Any, dict[str, Any], str]:
    """A Points layer of nucleus centroids coloured by type (ClassMap colours).

    Each point has its type's ClassMap colour; a nucleus typed background
    (tables made before nuclei were always given a type) or with a type the
    ClassMap lacks is white, never the background's (black) colour.

    The points are level-0 pixel indices of the slide (the table's centroids,
    rounded to the nearest pixel as in :func:`instance_features`) and the
    layer's scale is the slide layer's; units are micrometres when the mpp
    is known.

    Parameters
    ----------
    out : str or os.PathLike
        The HoVer prediction folder.
    scale : tuple of float, optional
        The prediction layer's scale (the level's), divided by the level's
        downsample when ``base_scale`` is not given.
    name : str, optional
        Layer name (default: ``nucleus centroids (<folder stem>)``).
    features : pandas.DataFrame, optional
        The table from :func:`instance_features` when the caller already has
        it (it is not read again).
    base_scale : tuple of float, optional
        The slide layer's scale (default: from ``scale``, else the slide's mpp).

    Returns
    -------
    tuple
        ``(points, kwargs, "points")``: ``(n, 2)`` float64 ``(y, x)`` points.
    """
    import numpy as np
    import zarr

    from .io.palette import ClassMap

    root = zarr.open_group(str(out), mode="r")
    attrs: dict[str, Any] = dict(root.attrs)  # JSON the engine wrote
    meta = attrs.get("slideseg") or {}
    info = attrs.get("slideseg_inference") or {}
    if base_scale is None and scale is not None:
        from .io.placement import Placement

        fy, fx = (Placement.from_dict(info) or Placement()).factors
        base_scale = (float(scale[-2]) / fy, float(scale[-1]) / fx)
    _where, base, _level_scale, units = _prediction_grid(info, base_scale)
    cm = ClassMap.from_dict(meta["classmap"]) if meta.get("classmap") else None
    df = features if features is not None else instance_features(Path(str(out)) / "instances.csv")
    colors = np.ones((len(df), 4), np.float32)  # white unless the type has a colour
    if cm is not None and len(df):
        pal = np.asarray(cm.colors, np.float32) / 255
        t = df["type"].to_numpy().astype(np.int64)
        typed = (t >= 0) & (t < len(pal)) & (t != int(cm.background))
        colors[typed, :3] = pal[t[typed]]
    kwargs = {
        "name": name or f"nucleus centroids ({Path(str(out)).stem})",
        "scale": base,
        "face_color": colors,
        "border_width": 0,
        "size": 6,
        "features": df,
        **units,
    }
    return df[["centroid_y", "centroid_x"]].to_numpy(np.float64), kwargs, "points"
