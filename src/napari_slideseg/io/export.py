"""Writers for label images: colour-map PNG, RLE CSV, OME-Zarr labels, GeoJSON.

Every writer streams: a NumPy or dask label array is walked in bands or
blocks, so exporting a 50k x 50k dask-backed labels layer never materialises
it. Every writer writes to a temporary name and renames the file (or folder)
into place when complete; a failed or cancelled export leaves nothing that
looks finished.

Formats that cannot stream say so and refuse above a documented size: the
semantic GeoJSON mode (connected components per class) needs the whole array
and refuses above :data:`GEOJSON_SEMANTIC_MAX_PIXELS`.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import uuid
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from ..progress import Progress, drain
from .palette import ClassMap, MaskError, _check_label_range
from .pngstream import PngStreamWriter

#: Rows per band when streaming a PNG (bounded memory: band x width x 3 bytes).
PNG_BAND_ROWS = 512
#: The semantic GeoJSON mode needs the whole label array: refused above this size.
GEOJSON_SEMANTIC_MAX_PIXELS = 20000 * 20000
#: tEXt key under which PNG writers record the class map (JSON).
PNG_CLASSMAP_KEY = "slideseg:classmap"


def _as_2d(labels: Any, what: str = "labels") -> Any:
    if labels.ndim != 2:
        raise MaskError(f"{what} must be a 2D label image, got shape {tuple(labels.shape)}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise MaskError(f"{what} must have an integer dtype, got {labels.dtype}")
    return labels


def iter_bands(labels: Any, rows: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(y0, band)`` row bands of a NumPy or dask array as NumPy arrays.

    A dask array is computed one row of chunks at a time (each chunk once,
    however small ``rows`` is), then cut into bands of ``rows``.
    """
    if isinstance(labels, da.Array):
        y = 0
        for ch in labels.chunks[0]:
            strip = np.asarray(labels[y : y + ch].compute(scheduler="threads"))
            for r in range(0, ch, rows):
                yield y + r, strip[r : r + rows]
            y += ch
        return
    for y0 in range(0, labels.shape[0], rows):
        yield y0, np.asarray(labels[y0 : y0 + rows])


def iter_blocks(labels: Any, block: int) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(y0, x0, block)`` square blocks of a NumPy or dask array as NumPy arrays."""
    h, w = labels.shape[:2]
    for y0 in range(0, h, block):
        for x0 in range(0, w, block):
            b = labels[y0 : y0 + block, x0 : x0 + block]
            if isinstance(b, da.Array):
                b = b.compute(scheduler="threads")
            yield y0, x0, np.asarray(b)


def _check_range(band: np.ndarray, classmap: ClassMap, path: Path) -> None:
    try:
        _check_label_range(band, classmap)
    except MaskError as err:
        raise MaskError(f"{path}: {err} ({', '.join(classmap.names)})") from err


# -----------------------------------------------------------------------------
# PNG
# -----------------------------------------------------------------------------
def write_color_png_steps(
    path: str | os.PathLike,
    labels: Any,
    classmap: ClassMap,
    *,
    indexed: bool = False,
    band_rows: int = PNG_BAND_ROWS,
    level: int = 6,
) -> Generator[Progress, None, Path]:
    """:func:`write_color_png` as a generator of progress events."""
    path = Path(path)
    labels = _as_2d(labels)
    h, w = labels.shape
    colors = np.asarray(classmap.colors, np.uint8)
    text = {PNG_CLASSMAP_KEY: json.dumps(classmap.to_dict())}
    if indexed:
        if classmap.n_classes > 256:
            raise MaskError(
                f"{path}: an indexed PNG holds at most 256 classes, not {classmap.n_classes}"
            )
        writer = PngStreamWriter(path, w, h, "P", palette=colors, level=level, text=text)
    else:
        writer = PngStreamWriter(path, w, h, "RGB", level=level, text=text)
    n = -(-h // band_rows)
    with writer:
        for i, (_, band) in enumerate(iter_bands(labels, band_rows)):
            _check_range(band, classmap, path)
            writer.write_rows(band.astype(np.uint8) if indexed else colors[band])
            yield Progress("png", i + 1, n, f"PNG rows {min(h, (i + 1) * band_rows)}/{h}")
    return path


def write_color_png(
    path: str | os.PathLike,
    labels: Any,
    classmap: ClassMap,
    *,
    indexed: bool = False,
    band_rows: int = PNG_BAND_ROWS,
    level: int = 6,
) -> Path:
    """Write labels as a colour-map PNG using the class map's RGB colours.

    Parameters
    ----------
    path
        Output ``.png``.
    labels
        2D integer label image (NumPy or dask), values are class indices.
    classmap
        Gives each class index its RGB colour.
    indexed
        Write a palette (indexed-colour) PNG whose pixel values are the class
        indices and whose palette is the class colours: decoded as RGB it is
        identical to the RGB PNG, and it is 3x smaller before compression.
    band_rows
        Rows encoded per step (memory: ``band_rows x width x 3`` bytes).
    level
        zlib level.

    Returns
    -------
    Path
        ``path``. The class map is recorded in a ``tEXt`` chunk
        (``slideseg:classmap``) so the PNG reads back with its class names.
    """
    return drain(
        write_color_png_steps(
            path, labels, classmap, indexed=indexed, band_rows=band_rows, level=level
        )
    )


def write_index_png(
    path: str | os.PathLike, labels: Any, *, band_rows: int = PNG_BAND_ROWS
) -> Path:
    """Write labels as a single-channel PNG of class indices (8-bit, or 16-bit above 255)."""
    path = Path(path)
    labels = _as_2d(labels)
    h, w = labels.shape
    top = (
        int(labels.max().compute() if isinstance(labels, da.Array) else labels.max())
        if labels.size
        else 0
    )
    if top >= 2**16 or (labels.size and int(labels.min()) < 0):
        raise MaskError(f"{path}: a PNG index mask holds values 0..65535")
    depth = 8 if top < 256 else 16
    with PngStreamWriter(path, w, h, "L", bit_depth=depth) as png:
        for _, band in iter_bands(labels, band_rows):
            png.write_rows(band)
    return path


# -----------------------------------------------------------------------------
# OME-Zarr labels
# -----------------------------------------------------------------------------
def write_ome_zarr_labels_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    classmap: ClassMap | None = None,
    properties: Mapping[int, Mapping[str, Any]] | None = None,
    name: str = "labels",
    mpp: tuple[float, float] | None = None,
    chunk: int = 1024,
    lowest_max: int = 1024,
    source: Mapping[str, Any] | None = None,
) -> Generator[Progress, None, Path]:
    """:func:`write_ome_zarr_labels` as a generator of progress events."""
    import zarr

    path = Path(path)
    labels = _as_2d(labels)
    if not isinstance(labels, da.Array):
        labels = da.from_array(labels, chunks=chunk)
    h, w = labels.shape
    shapes = [(h, w)]
    while max(shapes[-1]) > lowest_max:
        shapes.append(((shapes[-1][0] + 1) // 2, (shapes[-1][1] + 1) // 2))
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    sy, sx = mpp if mpp else (1.0, 1.0)
    unit = {"unit": "micrometer"} if mpp else {}
    label_meta: dict[str, Any] = {"version": "0.4"}
    if classmap is not None:
        label_meta["colors"] = [
            {"label-value": i, "rgba": [*c, 0 if i == classmap.background else 255]}
            for i, c in enumerate(classmap.colors)
        ]
        props = [{"label-value": i, "class": n} for i, n in enumerate(classmap.names)]
    else:
        props = []
    if properties:
        by_value = {p["label-value"]: p for p in props}
        for value, extra in properties.items():
            by_value.setdefault(int(value), {"label-value": int(value)}).update(
                {k: _jsonable(v) for k, v in extra.items()}
            )
        props = [by_value[k] for k in sorted(by_value)]
    if props:
        label_meta["properties"] = props
    if source:
        label_meta["source"] = dict(source)
    attrs = {
        "multiscales": [
            {
                "version": "0.4",
                "name": name,
                "axes": [
                    {"name": "y", "type": "space", **unit},
                    {"name": "x", "type": "space", **unit},
                ],
                "datasets": [
                    {
                        "path": str(i),
                        "coordinateTransformations": [
                            {"type": "scale", "scale": [sy * h / lv[0], sx * w / lv[1]]}
                        ],
                    }
                    for i, lv in enumerate(shapes)
                ],
            }
        ],
        "image-label": label_meta,
    }
    if classmap is not None:
        attrs["slideseg"] = {"classmap": classmap.to_dict()}
    dtype = labels.dtype
    try:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=2)
        root.attrs.update(attrs)
        blocks_total = sum(-(-s[0] // chunk) * -(-s[1] // chunk) for s in shapes)
        done = 0
        lv = labels
        for i, shape in enumerate(shapes):
            if i:
                # Each level is subsampled (nearest: labels are never averaged) from the
                # level just written, so the source graph (e.g. inference) runs once.
                lv = da.from_zarr(root[str(i - 1)])[::2, ::2]
            arr = root.create_array(
                str(i),
                shape=shape,
                chunks=(min(chunk, shape[0]), min(chunk, shape[1])),
                dtype=dtype,
                chunk_key_encoding={"name": "v2", "separator": "/"},
                fill_value=0,
            )
            for y0, x0, block in iter_blocks(lv, chunk):
                arr[y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = block
                done += 1
                yield Progress(
                    "ome-zarr", done, blocks_total, f"level {i}: block {done}/{blocks_total}"
                )
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def write_ome_zarr_labels(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write labels as an OME-Zarr (NGFF 0.4) label image with colours and per-label properties.

    Parameters
    ----------
    path
        Output ``.ome.zarr`` directory (replaced atomically when complete).
    labels
        2D integer label image (NumPy or dask), written block by block.
    **kwargs
        ``classmap`` (colours and class names per value), ``properties``
        (``{value: {key: value}}``, e.g. instance type and area), ``name``,
        ``mpp`` (``(y, x)`` µm/px, recorded as the scale), ``chunk``,
        ``lowest_max`` (reduced levels by nearest sampling down to this size),
        ``source`` (provenance dict).

    Returns
    -------
    Path
        ``path``.
    """
    return drain(write_ome_zarr_labels_steps(path, labels, **kwargs))


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


# -----------------------------------------------------------------------------
# GeoJSON
# -----------------------------------------------------------------------------
def _polygons(mask: np.ndarray) -> list[list[list[list[float]]]]:
    """Polygons (outer ring + holes, closed, (x, y) pixel coordinates) of a binary crop."""
    import cv2

    m = np.ascontiguousarray(mask.astype(np.uint8))
    contours, hierarchy = cv2.findContours(m, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None:
        return []
    hier = hierarchy[0]
    polys: list[list[list[list[float]]]] = []
    for i, c in enumerate(contours):
        if hier[i][3] != -1:
            continue  # a hole: attached to its parent below
        rings = [_ring(c)]
        child = hier[i][2]
        while child != -1:
            rings.append(_ring(contours[child]))
            child = hier[child][0]
        polys.append(rings)
    return polys


def _ring(contour: np.ndarray) -> list[list[float]]:
    pts = contour.reshape(-1, 2).astype(float)
    if len(pts) < 3:  # a 1-2 pixel object: outline its pixels' corners
        x0, y0 = pts.min(0) - 0.5
        x1, y1 = pts.max(0) + 0.5
        pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    ring = pts.tolist()
    ring.append(ring[0])
    return ring


def _feature(
    label_id: int,
    polys: list,
    offset: tuple[int, int],
    scale: float,
    class_index: int | None,
    classmap: ClassMap | None,
    object_type: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    oy, ox = offset
    shifted = [
        [[[(x + ox) * scale, (y + oy) * scale] for x, y in ring] for ring in poly] for poly in polys
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
        props.update({k: _jsonable(v) for k, v in extra.items()})
    return {"type": "Feature", "id": str(label_id), "geometry": geom, "properties": props}


def _instance_features(
    labels: Any,
    *,
    block: int,
    scale: float,
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
    from scipy import ndimage

    boxes: dict[int, list[int]] = {}
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
            polys = _polygons(mask)
            if not polys:
                continue
            cls = instance_classes.get(lid) if instance_classes else None
            extra = properties.get(lid) if properties else None
            yield _feature(lid, polys, (by0 - 1, bx0 - 1), scale, cls, classmap, object_type, extra)
        yield Progress("geojson: polygons", i + 1, n_blocks)


def _semantic_features(
    labels: Any, *, scale: float, classmap: ClassMap | None, object_type: str
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
            polys = _polygons(mask)
            if polys:
                off = (sl[0].start - 1, sl[1].start - 1)
                yield _feature(next_id, polys, off, scale, int(cls), classmap, object_type, None)
                next_id += 1


def write_geojson_steps(
    path: str | os.PathLike,
    labels: Any,
    *,
    mode: str = "instances",
    classmap: ClassMap | None = None,
    instance_classes: Mapping[int, int] | None = None,
    properties: Mapping[int, Mapping[str, Any]] | None = None,
    object_type: str = "annotation",
    scale: float = 1.0,
    block: int = 2048,
    compress: bool | None = None,
) -> Generator[Progress, None, Path]:
    """:func:`write_geojson` as a generator of progress events."""
    path = Path(path)
    labels = _as_2d(labels)
    if object_type not in ("annotation", "detection", "cell", "tile"):
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
    compress = str(path).endswith(".gz") if compress is None else compress
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    opener = gzip.open if compress else open
    try:
        with opener(tmp, "wt", encoding="utf-8") as fh:
            fh.write('{"type": "FeatureCollection", "features": [\n')
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
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_geojson(path: str | os.PathLike, labels: Any, **kwargs: Any) -> Path:
    """Write labels as GeoJSON polygons (QuPath imports them), streamed to disk.

    Parameters
    ----------
    path
        Output ``.geojson`` (or ``.geojson.gz``, gzipped).
    labels
        2D integer label image (NumPy or dask).
    **kwargs
        ``mode``: ``"instances"`` (default; every label id is one object,
        streamed block by block, each object emitted once) or ``"semantic"``
        (connected components of each class; needs the array in memory,
        refused above :data:`GEOJSON_SEMANTIC_MAX_PIXELS`).
        ``classmap`` and ``instance_classes`` (``{id: class index}``) give
        each object a QuPath ``classification`` (name and colour);
        ``properties`` adds per-id measurements; ``object_type`` is QuPath's
        ``"annotation"`` or ``"detection"`` (use detections for millions of
        nuclei); ``scale`` multiplies pixel coordinates (e.g. the level's
        downsample, to write level-0 coordinates); ``block`` is the block edge.

    Returns
    -------
    Path
        ``path``.
    """
    return drain(write_geojson_steps(path, labels, **kwargs))


# -----------------------------------------------------------------------------
# RLE CSV and dispatch
# -----------------------------------------------------------------------------
def export_labels(
    labels: Any,
    out: str | os.PathLike,
    *,
    classmap: ClassMap | None = None,
    rle_order: str = "col",
    rle_layout: str = "semantic",
    image_id: str | None = None,
    **kwargs: Any,
) -> Path:
    """Write ``labels`` in the format given by ``out``'s suffix.

    ``.png`` colour-map PNG (``indexed=True`` for a palette PNG), ``.csv`` RLE
    CSV (``rle_layout`` semantic or instance, ``rle_order`` col or row; the
    order and base are recorded in every row), ``.ome.zarr``/``.zarr`` OME-Zarr
    labels, ``.geojson``/``.geojson.gz`` polygons.
    """
    out = Path(out)
    name = out.name.lower()
    if name.endswith(".png"):
        if classmap is None:
            classmap = ClassMap.default(int(_max(labels)) + 1)
        return write_color_png(out, labels, classmap, **kwargs)
    if name.endswith(".csv"):
        from .rle import write_rle_csv

        class_names = list(classmap.names) if classmap is not None else None
        write_rle_csv(
            out,
            labels,
            layout=rle_layout,
            order=rle_order,
            image_id=image_id or out.stem,
            class_names=class_names,
            **kwargs,
        )
        return out
    if name.endswith(".zarr"):
        return write_ome_zarr_labels(out, labels, classmap=classmap, **kwargs)
    if name.endswith((".geojson", ".geojson.gz", ".json")):
        return write_geojson(out, labels, classmap=classmap, **kwargs)
    raise MaskError(f"{out}: unknown export format (use .png, .csv, .ome.zarr or .geojson[.gz])")


def _max(labels: Any) -> int:
    m = labels.max()
    return int(m.compute() if isinstance(m, da.Array) else m)
