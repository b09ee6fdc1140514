"""``export_labels``: one call that writes a label image in the format its file name asks for."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..palette import ClassMap, MaskError
from ..placement import Placement
from .common import as_label_image, check_file_target, check_not_empty, default_classmap
from .geojson import write_geojson
from .omezarr import write_ome_zarr_labels
from .png import write_color_png, write_id_png
from .rlecsv import write_labels_csv
from .tiff import write_color_tiff, write_id_tiff

logger = logging.getLogger(__name__)

#: File name endings of the raster formats (PNG, TIFF).
_RASTER_SUFFIXES = (".png", ".tif", ".tiff")
#: File name endings written as GeoJSON (``.json`` too).
_GEOJSON_SUFFIXES = (".geojson", ".geojson.gz", ".json")


def _export_raster(
    out: Path,
    labels: Any,
    classmap: ClassMap | None,
    placement: Placement | None,
    instances: bool,
    kwargs: dict[str, Any],
) -> Path:
    """PNG or TIFF: an id image for ``instances``, else colours (a default class map if none)."""
    png = out.name.lower().endswith(".png")
    if instances:
        write_ids = write_id_png if png else write_id_tiff
        return write_ids(out, labels, classmap=classmap, placement=placement, **kwargs)
    if classmap is None:
        check_file_target(out)
        classmap = default_classmap(labels, out)
        logger.debug(
            "%s: no class map given; default colours for %d classes", out, classmap.n_classes
        )
    write_colors = write_color_png if png else write_color_tiff
    return write_colors(out, labels, classmap, placement=placement, **kwargs)


def export_labels(
    labels: Any,
    out: str | os.PathLike,
    *,
    classmap: ClassMap | None = None,
    rle_order: str = "col",
    rle_layout: str = "semantic",
    image_id: str | None = None,
    placement: Placement | None = None,
    instances: bool = False,
    instance_classes: Mapping[int, int] | None = None,
    **kwargs: Any,
) -> Path:
    """Write ``labels`` in the format given by ``out``'s suffix.

    ``.png`` colour-map PNG (``indexed=True`` for a palette PNG), ``.tif``/
    ``.tiff`` colour TIFF, ``.csv`` RLE CSV (``rle_layout`` semantic or
    instance, ``rle_order`` col or row; the order and base are recorded in
    every row), ``.ome.zarr``/``.zarr`` OME-Zarr labels,
    ``.geojson``/``.geojson.gz`` polygons.

    ``instances=True``: the values are object ids (nuclei), not classes, and
    ``classmap`` (if any) names the objects' types, given per id by
    ``instance_classes``: PNG is a 16-bit id image (ids above 65535 are
    refused, naming the formats that hold them), TIFF a uint16/uint32 id
    image, CSV the instance layout (one row per object), OME-Zarr labels
    without class colours, GeoJSON one polygon per id.

    ``placement`` (the labels' level, factors to level 0 and level-0 mpp,
    e.g. :meth:`Placement.from_attrs` of a prediction zarr): GeoJSON is
    written in level-0 pixels; rasters record their resolution (PNG
    ``pHYs``, TIFF resolution tags, OME-Zarr scale) and placement; RLE CSV
    rows state the level, the slide's level-0 size and the mpp.

    Parameters
    ----------
    labels : numpy.ndarray or dask.array.Array
        2D integer label image.
    out : str or os.PathLike
        The output; its suffix chooses the format.
    classmap : ClassMap, optional
        Class names and colours (for ``instances``, the objects' types).
        PNG and TIFF class images without one get a default class map.
    rle_order, rle_layout, image_id : str
        RLE CSV pixel order, layout and ``image_id`` column
        (:func:`~napari_slideseg.io.export.rlecsv.write_labels_csv`).
    placement : Placement, optional
        Where the labels sit on their slide.
    instances : bool
        The values are object ids.
    instance_classes : mapping of int to int, optional
        ``{id: class index}`` of the objects (CSV, GeoJSON).
    **kwargs
        Options of the format's writer.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    MaskError
        The labels are not a non-empty 2D integer image, the suffix names no
        format, or the format's writer refuses (see each writer).
    """
    out = Path(out)
    name = out.name.lower()
    labels = as_label_image(labels)
    check_not_empty(labels, out)
    if name.endswith(_RASTER_SUFFIXES):
        return _export_raster(out, labels, classmap, placement, instances, kwargs)
    if name.endswith(".csv"):
        return write_labels_csv(
            out,
            labels,
            classmap=classmap,
            layout="instance" if instances else rle_layout,
            order=rle_order,
            image_id=image_id,
            instance_classes=instance_classes,
            placement=placement,
            **kwargs,
        )
    if name.endswith(".zarr"):
        return write_ome_zarr_labels(
            out, labels, classmap=classmap, placement=placement, instances=instances, **kwargs
        )
    if name.endswith(_GEOJSON_SUFFIXES):
        if name.endswith(".json"):
            logger.debug("%s: a .json output is written as GeoJSON", out)
        if instances:
            kwargs.setdefault("mode", "instances")
        return write_geojson(
            out,
            labels,
            classmap=classmap,
            placement=placement,
            instance_classes=instance_classes,
            **kwargs,
        )
    raise MaskError(
        f"{out}: unknown export format (use .png, .tif, .csv, .ome.zarr or .geojson[.gz])"
    )
