"""GeoJSON annotations as a napari Labels layer tuple over their slide, built without napari.

The reader opens a GeoJSON file as Shapes (napari polygons have no holes:
the layer's metadata counts the holes left out). For the classes as pixels,
holes kept, use :func:`annotation_labels_layer` from the console::

    from napari_slideseg import open_slide
    from napari_slideseg.annotation_layers import annotation_labels_layer
    slide = open_slide("slide.svs")
    viewer.add_labels(*annotation_labels_layer("slide.geojson", "classes.json", slide=slide)[:2])

The labels are a lazy dask array at level 0 (rasterised chunk by chunk
when napari shows them) with the slide's µm per pixel as scale, so they lie
on the slide layer of :func:`~napari_slideseg.layers.slide_layer`.
"""

from __future__ import annotations

import os
from typing import Any

from .io.annotations import (
    ANNOTATION_CHUNK,
    IGNORE_INDEX,
    Annotations,
    annotation_labels,
    read_annotations,
)
from .io.errors import SlideSegError
from .io.slide import Slide
from .layers import labels_layer


def _annotations(source: Any, classmap: Any, skip_unknown: bool) -> Annotations:
    """``source`` if already read, else the file read with ``classmap`` (required then)."""
    from .io.masks import resolve_classmap

    cm = resolve_classmap(classmap)
    if isinstance(source, Annotations):
        if cm is not None and cm != source.classmap:
            raise SlideSegError(
                f"{source.path}: the annotations were read with another class map than classmap"
            )
        return source
    if cm is None:
        raise SlideSegError(
            f"{source}: rasterising annotations needs a class map (a ClassMap, a preset "
            "name or a class map JSON) naming their classes"
        )
    return read_annotations(source, cm, skip_unknown=skip_unknown)


def _geometry(
    slide: Slide | None, shape: tuple[int, int] | None, mpp: tuple[float, float] | None
) -> tuple[tuple[int, int], tuple[float, float] | None]:
    """The labels' level-0 shape and µm per pixel, from the slide or as given."""
    if slide is not None:
        h, w = slide.levels[0].shape[:2]
        shape = (int(h), int(w))
        if mpp is None and slide.mpp:
            mpp = (float(slide.mpp[0]), float(slide.mpp[1]))
    if shape is None:
        raise SlideSegError("annotation labels need the slide (slide=...) or its shape (shape=...)")
    return shape, mpp


def annotation_labels_layer(
    annotations: str | os.PathLike | Annotations,
    classmap: Any | None = None,
    *,
    slide: Slide | None = None,
    shape: tuple[int, int] | None = None,
    mpp: tuple[float, float] | None = None,
    unannotated: str = "background",
    skip_unknown: bool = False,
    chunks: int = ANNOTATION_CHUNK,
    name: str | None = None,
) -> tuple[Any, dict[str, Any], str]:
    """A Labels layer tuple of the classes of GeoJSON annotations, holes kept, over the slide.

    Parameters
    ----------
    annotations : str or os.PathLike or Annotations
        A QuPath ``.geojson`` / ``.geojson.gz`` export (level-0 pixel
        coordinates), or annotations already read.
    classmap : ClassMap or str or os.PathLike, optional
        The classes (a map, a preset name or a class map JSON); needed for a
        file. Gives the layer its colours.
    slide : Slide, optional
        The slide the annotations were drawn on: its level-0 shape and µm
        per pixel.
    shape : tuple of int, optional
        ``(height, width)`` of level 0 without a slide.
    mpp : tuple of float, optional
        ``(y, x)`` µm per pixel (default: the slide's).
    unannotated : str
        ``"background"`` (transparent) or ``"ignore"``
        (:data:`~napari_slideseg.io.annotations.IGNORE_INDEX`, also transparent:
        it is no class of the map) outside every annotation.
    skip_unknown : bool
        Skip features whose class is not in the map (with a warning) instead
        of refusing the file.
    chunks : int
        Chunk edge of the lazy labels.
    name : str, optional
        Layer name (default: the file name without ``.geojson(.gz)``).

    Returns
    -------
    tuple
        ``(labels, kwargs, "labels")``: a ``uint8`` dask array of the level-0
        shape; ``kwargs`` with the class colours, the scale and units
        (micrometres when the µm per pixel are known) and the annotations'
        summary in ``metadata["slideseg"]["annotations"]``.

    Raises
    ------
    SlideSegError
        No class map for a file, neither slide nor shape, an unreadable
        file, a class not in the map
        (:class:`~napari_slideseg.io.annotations.AnnotationError`), a bad
        ``unannotated``.
    """
    ann = _annotations(annotations, classmap, skip_unknown)
    size, scale = _geometry(slide, shape, mpp)
    data = annotation_labels(ann, size, chunks=chunks, unannotated=unannotated)
    if name is None:
        name = os.path.basename(ann.path)
        for suffix in (".gz", ".geojson", ".json"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
        name = f"{name} classes"
    record = {
        **ann.summary(),
        "unannotated": unannotated,
        "ignore_index": IGNORE_INDEX if unannotated == "ignore" else None,
    }
    return labels_layer(
        data,
        ann.classmap,
        name=name,
        scale=scale,
        units=("micrometer", "micrometer") if scale else None,
        metadata={"path": ann.path, "slideseg": {"annotations": record}},
    )
