"""GeoJSON export: one polygon per object (QuPath annotations or detections), streamed.

The instance mode walks the label image block by block, twice, in time
O(pixels + objects) and memory of a block: pass 1 finds the ids present
in more than one block, pass 2 emits every object once, an id of one block
from that block, an id crossing block borders from the last of its blocks
with its pieces joined (:mod:`.geojson_scan`); the text is written
straight from the traced contours (:mod:`.geojson_text`), one line per
feature, compressed in a thread. Features come block by block: the ids of
that block only, ascending, then those whose last piece it held. The
semantic mode (connected components per class) needs the whole array and
is refused above
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
import queue
import threading
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import dask.array as da
import numpy as np

from ...progress import Progress, drain
from ..files import atomic_path
from ..palette import ClassMap, MaskError
from ..placement import Placement
from .common import checked_output
from .geojson_props import ObjectColumns, check_classes, properties_text
from .geojson_scan import iter_block_objects, shared_ids
from .geojson_text import (
    CoordinateText,
    Traced,
    coordinate_number,
    feature_properties,
    features_text,
    trace_objects,
)
from .outlines import mask_polygons

#: The semantic GeoJSON mode needs the whole label array: refused above this size.
GEOJSON_SEMANTIC_MAX_PIXELS = 20000 * 20000
#: gzip level of ``.geojson.gz``. Polygon text compresses at ~165 MB/s at level 1, ~26 at
#: 6 and ~4 at 9 (the old default: ~9 minutes for 5 M nuclei), to a file ~1.3x the size of
#: level 9's. QuPath reads any level.
GZIP_LEVEL = 1
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
    num = coordinate_number
    shifted = [
        [[[num((x + ox) * sx), num((y + oy) * sy)] for x, y in ring] for ring in poly]
        for poly in polys
    ]
    geom = (
        {"type": "Polygon", "coordinates": shifted[0]}
        if len(shifted) == 1
        else {"type": "MultiPolygon", "coordinates": shifted}
    )
    props = feature_properties(label_id, class_index, classmap, object_type, extra)
    return {"type": "Feature", "id": str(label_id), "geometry": geom, "properties": props}


def _scale_pair(scale: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(scale, int | float):
        return (float(scale), float(scale))
    sy, sx = (float(v) for v in scale)
    return (sy, sx)


def _instance_features(
    labels: Any,
    *,
    block: int,
    scale: tuple[float, float],
    classmap: ClassMap | None,
    instance_classes: Mapping[int, int] | None,
    properties: Mapping[int, Mapping[str, Any]] | ObjectColumns | None,
    object_type: str,
) -> Generator[bytes | Progress, None, None]:
    """Feature lines of an instance map, a block of objects at a time.

    Pass 1 finds the ids present in more than one block; pass 2 walks the
    blocks again and emits each object once: an id of one block from that
    block, an id crossing block borders from the last of its blocks, its
    pieces joined (:mod:`.geojson_scan`). Each yielded chunk is the
    ``,\\n``-separated lines of one block's objects (:mod:`.geojson_text`).
    """
    shared: dict[str, np.ndarray] = {}
    yield from shared_ids(labels, block, shared)
    h, w = labels.shape
    n_blocks = -(-h // block) * -(-w // block)
    coords = CoordinateText(labels.shape, scale)
    props = properties_text(classmap, instance_classes, properties, object_type)
    for objs in iter_block_objects(labels, block, shared):
        traced = Traced()
        trace_objects(traced, objs.block, objs.origin, objs.ids, objs.boxes)
        for lid, y0, x0, mask in objs.joined:
            trace_objects(traced, mask, (y0, x0), [True], [[0, 0, *mask.shape]], [lid])
        text = features_text(coords, traced, props)
        if text:
            yield text
        yield Progress("geojson: polygons", objs.index + 1, n_blocks)


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


def _open(path: Path, compress: bool) -> BinaryIO | gzip.GzipFile:
    """``path`` for binary writing, gzipped at :data:`GZIP_LEVEL` when ``compress``."""
    if compress:
        return gzip.GzipFile(path, "wb", compresslevel=GZIP_LEVEL)
    return open(path, "wb")


class _Sink:
    """Writes byte chunks to a file from a thread, so compression overlaps the tracing.

    zlib releases the GIL while it compresses. At most a few chunks (a
    block's text each) wait in the queue; an error of the writer is raised
    in the caller at its next write or at the end.
    """

    def __init__(self, fh: BinaryIO | gzip.GzipFile) -> None:
        self._fh = fh
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="geojson-writer", daemon=True)

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._fh.write(chunk)
                except BaseException as exc:  # re-raised in the caller
                    self._error = exc

    def write(self, chunk: bytes) -> None:
        """Queue ``chunk`` (raising the writer's error, if it had one)."""
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def __enter__(self) -> _Sink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._error is not None and exc[0] is None:
            raise self._error


def write_geojson_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    mode: str = "instances",
    classmap: ClassMap | None = None,
    instance_classes: Mapping[int, int] | None = None,
    properties: Mapping[int, Mapping[str, Any]] | ObjectColumns | None = None,
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
        An unknown ``mode`` or ``object_type``, or ``instance_classes`` given
        with :class:`~napari_slideseg.io.export.geojson_props.ObjectColumns`
        ``properties``.
    """
    path, labels = checked_output(path, labels)
    if scale is None:
        scale = placement.factors if placement is not None else (1.0, 1.0)
    scale = _scale_pair(scale)
    _check_options(path, labels, mode, object_type)
    check_classes(instance_classes, properties)
    compress = str(path).endswith(".gz") if compress is None else compress
    with atomic_path(path) as tmp, _open(tmp, compress) as fh, _Sink(fh) as sink:
        sink.write(b'{"type": "FeatureCollection", "slideseg": ')
        sink.write(json.dumps({"coordinates": _coordinates(labels, scale, placement)}).encode())
        sink.write(b', "features": [\n')
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
            items = (
                json.dumps(f, separators=(",", ":")).encode()
                for f in _semantic_features(
                    labels, scale=scale, classmap=classmap, object_type=object_type
                )
            )
        for item in items:
            if isinstance(item, Progress):
                yield item
                continue
            if not first:
                sink.write(b",\n")
            sink.write(item)
            first = False
        sink.write(b"\n]}\n")
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
        ``properties`` adds per-id measurements (``{id: {name: value}}``),
        or is an :class:`~napari_slideseg.io.export.geojson_props.ObjectColumns`
        holding classes and measurements as arrays over sorted ids (for
        millions of objects: formatted a block at a time, no dict per
        object; ``instance_classes`` is then None); ``object_type`` is QuPath's
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
