"""GeoJSON export: one polygon per object (QuPath annotations or detections), streamed.

The instance mode walks the label image block by block, twice: pass 1
records each id's bounding box, pass 2 emits every object once, from the
block holding the top-left corner of its box. The semantic mode (connected
components per class) needs the whole array and is refused above
:data:`GEOJSON_SEMANTIC_MAX_PIXELS`.

Coordinates are level-0 pixels of the slide (the labels' pixels times the
placement's factors), along pixel edges; the collection's ``slideseg``
member records them. The file is written under a temporary name and
renamed into place when complete.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ...progress import Progress, drain
from ..blocks import iter_blocks
from ..files import atomic_path
from ..palette import ClassMap, MaskError
from ..placement import Placement
from .common import checked_output, jsonable
from .outlines import mask_polygons

#: The semantic GeoJSON mode needs the whole label array: refused above this size.
GEOJSON_SEMANTIC_MAX_PIXELS = 20000 * 20000
#: QuPath object types a feature may have.
_OBJECT_TYPES = ("annotation", "detection", "cell", "tile")


def _feature(
    label_id: int,
    polys: list,
    offset: tuple[int, int],
    scale: tuple[float, float],
    class_index: int | None,
    classmap: ClassMap | None,
    object_type: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    oy, ox = offset
    sy, sx = scale
    shifted = [
        [[[_num((x + ox) * sx), _num((y + oy) * sy)] for x, y in ring] for ring in poly]
        for poly in polys
    ]
    geom = (
        {"type": "Polygon", "coordinates": shifted[0]}
        if len(shifted) == 1
        else {"type": "MultiPolygon", "coordinates": shifted}
    )
    props: dict[str, Any] = {"objectType": object_type, "id": int(label_id)}
    if class_index is not None and classmap is not None and 0 <= class_index < classmap.n_classes:
        props["classification"] = {
            "name": classmap.names[class_index],
            "color": list(classmap.colors[class_index]),
        }
        props["class_index"] = int(class_index)
    if extra:
        props.update({k: jsonable(v) for k, v in extra.items()})
    return {"type": "Feature", "id": str(label_id), "geometry": geom, "properties": props}


def _num(v: float) -> float | int:
    """A coordinate: an int when whole (compact JSON), else rounded to 1/1000 pixel."""
    r = round(v, 3)
    return int(r) if r == int(r) else r


def _scale_pair(scale: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(scale, int | float):
        return (float(scale), float(scale))
    sy, sx = (float(v) for v in scale)
    return (sy, sx)


def _object_boxes(
    labels: Any, block: int, boxes: dict[int, list[int]]
) -> Generator[Progress, None, None]:
    """Pass 1 of the instance mode: each id's global bounding box into ``boxes``."""
    from scipy import ndimage

    h, w = labels.shape
    n_blocks = -(-h // block) * -(-w // block)
    for i, (y0, x0, b) in enumerate(iter_blocks(labels, block)):
        ids, inv = np.unique(b, return_inverse=True)
        # compact labels 1..n for the ids present (ids can be ~2**32: no dense table)
        compact = inv.reshape(b.shape) + (0 if ids[0] == 0 else 1)
        ids = ids[ids > 0]
        if ids.size == 0:
            continue
        for k, sl in enumerate(ndimage.find_objects(compact)):
            if sl is None:
                continue
            lid = int(ids[k])
            box = [sl[0].start + y0, sl[1].start + x0, sl[0].stop + y0, sl[1].stop + x0]
            old = boxes.get(lid)
            boxes[lid] = (
                box
                if old is None
                else [
                    min(old[0], box[0]),
                    min(old[1], box[1]),
                    max(old[2], box[2]),
                    max(old[3], box[3]),
                ]
            )
        yield Progress("geojson: find objects", i + 1, n_blocks)


def _instance_features(
    labels: Any,
    *,
    block: int,
    scale: tuple[float, float],
    classmap: ClassMap | None,
    instance_classes: Mapping[int, int] | None,
    properties: Mapping[int, Mapping[str, Any]] | None,
    object_type: str,
) -> Generator[dict[str, Any] | Progress, None, None]:
    """Features of an instance map, block by block.

    Pass 1 records each id's global bounding box (memory: one box per object).
    Pass 2 walks the blocks again; an object is emitted by the block holding
    the top-left corner of its box, reading a crop of the full array when the
    object reaches past that block. Each object is emitted exactly once.
    """
    boxes: dict[int, list[int]] = {}
    yield from _object_boxes(labels, block, boxes)
    h, w = labels.shape
    n_blocks = -(-h // block) * -(-w // block)
    for i, (y0, x0, b) in enumerate(iter_blocks(labels, block)):
        owned = [
            lid
            for lid, bx in boxes.items()
            if y0 <= bx[0] < y0 + block and x0 <= bx[1] < x0 + block
        ]
        for lid in sorted(owned):
            by0, bx0, by1, bx1 = boxes[lid]
            if by1 <= y0 + b.shape[0] and bx1 <= x0 + b.shape[1]:
                crop = b[by0 - y0 : by1 - y0, bx0 - x0 : bx1 - x0]
            else:
                crop = labels[by0:by1, bx0:bx1]
                crop = np.asarray(crop.compute() if isinstance(crop, da.Array) else crop)
            mask = np.pad(crop == lid, 1)
            polys = mask_polygons(mask)
            if not polys:
                continue
            cls = instance_classes.get(lid) if instance_classes else None
            extra = properties.get(lid) if properties else None
            yield _feature(lid, polys, (by0 - 1, bx0 - 1), scale, cls, classmap, object_type, extra)
        yield Progress("geojson: polygons", i + 1, n_blocks)


def _semantic_features(
    labels: Any, *, scale: tuple[float, float], classmap: ClassMap | None, object_type: str
) -> Iterator[dict[str, Any]]:
    from scipy import ndimage

    arr = np.asarray(labels.compute() if isinstance(labels, da.Array) else labels)
    background = classmap.background if classmap is not None else 0
    next_id = 1
    for cls in np.unique(arr):
        if cls == background:
            continue
        comp, _ = ndimage.label(arr == cls)
        for k, sl in enumerate(ndimage.find_objects(comp)):
            if sl is None:
                continue
            mask = np.pad(comp[sl] == k + 1, 1)
            polys = mask_polygons(mask)
            if polys:
                off = (sl[0].start - 1, sl[1].start - 1)
                yield _feature(next_id, polys, off, scale, int(cls), classmap, object_type, None)
                next_id += 1


def _check_options(path: Path, labels: Any, mode: str, object_type: str) -> None:
    """Refuse an unknown ``mode`` or ``object_type``, and a semantic export too large."""
    if object_type not in _OBJECT_TYPES:
        raise ValueError(
            f"object_type must be annotation, detection, cell or tile, not {object_type!r}"
        )
    if mode not in ("instances", "semantic"):
        raise ValueError(f"mode must be 'instances' or 'semantic', not {mode!r}")
    if mode == "semantic" and labels.shape[0] * labels.shape[1] > GEOJSON_SEMANTIC_MAX_PIXELS:
        raise MaskError(
            f"{path}: semantic GeoJSON export needs the whole {labels.shape[1]} x {labels.shape[0]} "
            f"label image in memory (limit {GEOJSON_SEMANTIC_MAX_PIXELS:,} pixels); export a smaller "
            "region, or export instances (mode='instances'), which streams"
        )


def _coordinates(
    labels: Any, scale: tuple[float, float], placement: Placement | None
) -> dict[str, Any]:
    """The collection's ``slideseg.coordinates`` member: units, levels, scale, convention."""
    coords: dict[str, Any] = {
        "units": "pixels",
        "level": 0,
        "source_level": placement.level if placement is not None else 0,
        "source_shape": [int(labels.shape[0]), int(labels.shape[1])],
        "scale": list(scale),
        "convention": "pixel edges: pixel (x, y) covers [x, x+1) x [y, y+1)",
    }
    if placement is not None and placement.slide_shape:
        coords["slide_shape"] = list(placement.slide_shape)
    if placement is not None and placement.mpp:
        coords["mpp"] = list(placement.mpp)
    return coords


def write_geojson_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    mode: str = "instances",
    classmap: ClassMap | None = None,
    instance_classes: Mapping[int, int] | None = None,
    properties: Mapping[int, Mapping[str, Any]] | None = None,
    object_type: str = "annotation",
    scale: float | tuple[float, float] | None = None,
    placement: Placement | None = None,
    block: int = 2048,
    compress: bool | None = None,
) -> Generator[Progress, None, Path]:
    """:func:`write_geojson` as a generator of progress events.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.geojson`` (or ``.geojson.gz``).
    labels : numpy.ndarray or dask.array.Array
        2D integer label image.
    mode, classmap, instance_classes, properties, object_type, scale, placement, block
        See :func:`write_geojson`.
    compress : bool, optional
        gzip the file; by default when ``path`` ends with ``.gz``.

    Yields
    ------
    Progress
        One event per block and pass (instance mode).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        ``path`` is a directory, the labels are empty or not 2D integers, or
        a semantic export is larger than :data:`GEOJSON_SEMANTIC_MAX_PIXELS`.
    ValueError
        An unknown ``mode`` or ``object_type``.
    """
    path, labels = checked_output(path, labels)
    if scale is None:
        scale = placement.factors if placement is not None else (1.0, 1.0)
    scale = _scale_pair(scale)
    _check_options(path, labels, mode, object_type)
    compress = str(path).endswith(".gz") if compress is None else compress
    opener = gzip.open if compress else open
    with atomic_path(path) as tmp, opener(tmp, "wt", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", "slideseg": ')
        fh.write(json.dumps({"coordinates": _coordinates(labels, scale, placement)}))
        fh.write(', "features": [\n')
        first = True
        if mode == "instances":
            items: Iterator[Any] = _instance_features(
                labels,
                block=block,
                scale=scale,
                classmap=classmap,
                instance_classes=instance_classes,
                properties=properties,
                object_type=object_type,
            )
        else:
            items = _semantic_features(
                labels, scale=scale, classmap=classmap, object_type=object_type
            )
        for item in items:
            if isinstance(item, Progress):
                yield item
                continue
            if not first:
                fh.write(",\n")
            fh.write(json.dumps(item, separators=(",", ":")))
            first = False
        fh.write("\n]}\n")
    return path


def write_geojson(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write labels as GeoJSON polygons (QuPath imports them), streamed to disk.

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.geojson`` (or ``.geojson.gz``, gzipped).
    labels : numpy.ndarray or dask.array.Array
        2D integer label image.
    **kwargs
        ``mode``: ``"instances"`` (default; every label id is one object,
        streamed block by block, each object emitted once) or ``"semantic"``
        (connected components of each class; needs the array in memory,
        refused above :data:`GEOJSON_SEMANTIC_MAX_PIXELS`).
        ``classmap`` and ``instance_classes`` (``{id: class index}``) give
        each object a QuPath ``classification`` (name and colour);
        ``properties`` adds per-id measurements; ``object_type`` is QuPath's
        ``"annotation"`` or ``"detection"`` (use detections for millions of
        nuclei); ``placement`` (the labels' level, factors and mpp) writes
        level-0 pixel coordinates of the slide, QuPath's, whatever level the
        labels hold, and records them in the collection's ``slideseg``
        member; ``scale`` (a number or ``(sy, sx)``) overrides the factors;
        ``block`` is the block edge. Polygons follow pixel edges (pixel
        ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError, ValueError
        See :func:`write_geojson_steps`.
    """
    return drain(write_geojson_steps(path, labels, **kwargs))
