"""QuPath GeoJSON annotations as class masks: holes kept, rasterised block by block.

:func:`read_annotations` reads the classed polygons of a GeoJSON export
(FeatureCollection, QuPath's list of Features, one Feature; ``.geojson.gz``)
and maps their class names to a :class:`~napari_slideseg.io.palette.ClassMap`
(without case). :func:`rasterize_window` paints a level-0 window (at a
downsample) into ``uint8`` class ids, and :func:`annotation_labels` is the
same as a lazy dask array over a slide, chunk by chunk.

Pixel convention: level-0 pixel ``(x, y)`` covers ``[x, x + 1) x [y, y +
1)`` and is inside a polygon when its centre ``(x + 0.5, y + 0.5)`` is;
holes are unpainted, later features paint over earlier ones, and pixels
outside every annotation get the background class or, with
``unannotated="ignore"``, :data:`IGNORE_INDEX` (see :mod:`.raster`).

Modules
-------
``read``    the file: :class:`Annotations`, :func:`read_annotations`.
``raster``  the masks: :func:`rasterize_window`, :func:`annotation_labels`.

This package is core: it never imports Qt, napari or magicgui.
"""

from __future__ import annotations

from .raster import (
    ANNOTATION_CHUNK,
    IGNORE_INDEX,
    UNANNOTATED,
    annotation_labels,
    rasterize_grid,
    rasterize_window,
    scan_spans,
    unannotated_value,
)
from .read import (
    MAX_CLASS_ID,
    OBJECT_TYPES,
    AnnotationError,
    AnnotationFeature,
    Annotations,
    class_ids_by_name,
    read_annotations,
)

#: File name endings read as GeoJSON annotations where a mask is expected.
ANNOTATION_SUFFIXES = (".geojson", ".geojson.gz")


def is_annotation_file(path: object) -> bool:
    """Whether a mask path names GeoJSON annotations (by its ending, any case).

    Parameters
    ----------
    path : object
        A path (str or os.PathLike); anything else is not one.

    Returns
    -------
    bool
        True for ``.geojson`` and ``.geojson.gz``.
    """
    import os

    if not isinstance(path, str | os.PathLike):
        return False
    return os.fspath(path).lower().endswith(ANNOTATION_SUFFIXES)


__all__ = [
    "ANNOTATION_CHUNK",
    "ANNOTATION_SUFFIXES",
    "IGNORE_INDEX",
    "MAX_CLASS_ID",
    "OBJECT_TYPES",
    "UNANNOTATED",
    "AnnotationError",
    "AnnotationFeature",
    "Annotations",
    "annotation_labels",
    "class_ids_by_name",
    "is_annotation_file",
    "rasterize_grid",
    "rasterize_window",
    "read_annotations",
    "scan_spans",
    "unannotated_value",
]
