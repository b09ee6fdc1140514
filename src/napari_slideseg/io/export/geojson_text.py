"""Polygons of many objects traced and written as GeoJSON text, a block of objects at a time.

The outlines are those of :func:`~napari_slideseg.io.export.outlines.mask_polygons`
(OpenCV on the mask upsampled 2x and padded, index ``k`` mapped to pixel
edge ``ceil(k / 2)``), point for point; only the work around them is
batched. Each object is traced on its own crop (one OpenCV call); the
points of all of a block's rings are then mapped to edges, de-duplicated
and closed in one vectorised pass, and written as bytes in one gather from
token tables made once per export (``[x,`` and ``y]`` for every pixel edge,
the numbers written as the export always has: level-0 values rounded to
1/1000 pixel, integers without a decimal point, else JSON's float repr).
No per-object dicts, no Python number formatting, no ``json.dumps`` per
object unless its classes or properties are given as per-object mappings
(columns are formatted per block: :mod:`.geojson_props`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..palette import ClassMap
from .common import jsonable

#: Contour indices of one object: one list per connected part, outer ring first, then holes.
Parts = list[list[int]]


def coordinate_number(v: float) -> float | int:
    """A coordinate as the export writes it: an int when whole, else rounded to 1/1000 pixel.

    Parameters
    ----------
    v : float
        A level-0 coordinate.

    Returns
    -------
    int or float
        ``v`` rounded to three decimals, as an int when that is whole.
    """
    r = round(v, 3)
    return int(r) if r == int(r) else r


def feature_properties(
    label_id: int,
    class_index: int | None,
    classmap: ClassMap | None,
    object_type: str,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A feature's ``properties``: QuPath's object type, the id, classification, measurements.

    Parameters
    ----------
    label_id : int
        The object's label.
    class_index : int or None
        Its class, named and coloured from ``classmap`` when both are given
        and the index is one of the map's.
    classmap : ClassMap or None
        The classes.
    object_type : str
        QuPath's ``objectType``.
    extra : mapping or None
        More members (measurements), made JSON-safe.

    Returns
    -------
    dict
        The members, in the order they are written.
    """
    props: dict[str, Any] = {"objectType": object_type, "id": int(label_id)}
    if class_index is not None and classmap is not None and 0 <= class_index < classmap.n_classes:
        props["classification"] = {
            "name": classmap.names[class_index],
            "color": list(classmap.colors[class_index]),
        }
        props["class_index"] = int(class_index)
    if extra:
        props.update({k: jsonable(v) for k, v in extra.items()})
    return props


@dataclass
class Traced:
    """Contours of a batch of objects, flat, for :func:`features_text`.

    ``contours[k]`` was traced on a mask whose padded origin is edge
    ``origins[k]`` ``(x, y)``; object ``j`` (``ids[j]``) has the next
    ``counts[j]`` contours, grouped by ``parts[j]`` (None: one ring).
    """

    ids: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    parts: list[Parts | None] = field(default_factory=list)
    contours: list[np.ndarray] = field(default_factory=list)
    origins: list[tuple[int, int]] = field(default_factory=list)


def trace_objects(
    traced: Traced,
    block: np.ndarray,
    origin: tuple[int, int],
    ids: Sequence[int],
    boxes: Sequence[Sequence[int]],
    record: Sequence[int] | None = None,
) -> None:
    """OpenCV contours of objects cut from a block (or given whole), grouped as ``mask_polygons``.

    Each mask is padded by one pixel and upsampled 2x (its pixels as 2 x 2
    blocks), as :func:`~napari_slideseg.io.export.outlines.mask_polygons`
    traces it, in one tight loop (one OpenCV call per object).

    Parameters
    ----------
    traced : Traced
        Receives the contours.
    block : numpy.ndarray
        The labels the objects are cut from, or one object's boolean mask.
    origin : (int, int)
        ``block``'s top-left pixel in the label image.
    ids : sequence of int
        The objects' values in ``block`` (``[True]`` for a mask).
    boxes : sequence of (int, int, int, int)
        Their boxes ``(y0, x0, y1, x1)`` in ``block``, ends exclusive.
    record : sequence of int, optional
        The ids to record for them, when not ``ids`` (a mask's object's id).
    """
    import cv2

    find, mode, method = cv2.findContours, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE
    zeros, u8 = np.zeros, np.uint8
    t_ids, t_counts, t_parts = traced.ids.append, traced.counts.append, traced.parts.append
    t_contours, t_origins = traced.contours, traced.origins
    oy, ox = origin[0] - 1, origin[1] - 1
    for lid, rid, (y0, x0, y1, x1) in zip(ids, record or ids, boxes, strict=True):
        up = zeros((2 * (y1 - y0) + 4, 2 * (x1 - x0) + 4), u8)
        up[2:-2, 2:-2] = (block[y0:y1, x0:x1] == lid).repeat(2, 0).repeat(2, 1)
        contours, hierarchy = find(up, mode, method)
        n = len(contours)
        if not n:
            continue
        t_ids(int(rid))
        t_counts(n)
        t_parts(None if n == 1 else _parts(hierarchy[0]))
        t_contours.extend(contours)
        t_origins.extend([(x0 + ox, y0 + oy)] * n)


def _parts(hier: np.ndarray) -> Parts:
    """Contour indices per connected part (outer ring, then its holes) from OpenCV's hierarchy."""
    parts: Parts = []
    for i in range(len(hier)):
        if hier[i][3] != -1:
            continue  # a hole: attached to its parent below
        rings = [i]
        child = hier[i][2]
        while child != -1:
            rings.append(int(child))
            child = hier[child][0]
        parts.append(rings)
    return parts


class CoordinateText:
    """JSON text of rings of pixel-edge points, in level-0 coordinates.

    Four token tables cover every edge of the label image: an x opening a
    ring (``[[x,``), any other x (``[x,``), a y ending a point (``y],``) and
    one ending the ring (``y]]``), as rows of one fixed-width byte table.
    The text of a block's rings is one gather of rows and one selection of
    their characters.

    Parameters
    ----------
    shape : tuple of int
        ``(height, width)`` of the label image (edges ``0..height``, ``0..width``).
    scale : (float, float)
        ``(sy, sx)`` factors from label pixels to level-0 pixels.
    """

    def __init__(self, shape: Sequence[int], scale: tuple[float, float]) -> None:
        sy, sx = scale
        xs = [json.dumps(coordinate_number(float(e) * sx)) for e in range(int(shape[1]) + 1)]
        ys = [json.dumps(coordinate_number(float(e) * sy)) for e in range(int(shape[0]) + 1)]
        tokens = (
            [f"[[{x},".encode() for x in xs]
            + [f"[{x},".encode() for x in xs]
            + [f"{y}],".encode() for y in ys]
            + [f"{y}]]".encode() for y in ys]
        )
        width = max(len(t) for t in tokens)
        self._rows = np.frombuffer(b"".join(t.ljust(width) for t in tokens), np.uint8).reshape(
            -1, width
        )
        self._lens = np.fromiter((len(t) for t in tokens), np.int64, len(tokens))
        self._x_open, self._x = 0, len(xs)
        self._y, self._y_close = 2 * len(xs), 2 * len(xs) + len(ys)

    def rings(
        self, contours: Sequence[np.ndarray], offsets: np.ndarray
    ) -> tuple[bytes, np.ndarray]:
        """The text of traced rings, shifted to the label image's edges.

        Parameters
        ----------
        contours : sequence of numpy.ndarray
            OpenCV contours traced by :func:`trace_objects`.
        offsets : numpy.ndarray
            ``(n, 2)`` ``(x, y)`` edge of each contour's mask origin (the
            crop's top-left pixel minus one, for the padding).

        Returns
        -------
        tuple of (bytes, numpy.ndarray)
            The rings' texts (``[[x,y],...]``, each closed) one after the
            other, and ``n + 1`` offsets: ring ``i`` is ``text[o[i]:o[i + 1]]``.
        """
        x, y, first, last = _ring_points(contours, offsets)
        pairs = np.empty((len(x), 2), np.int64)  # each point's x token, then its y token
        pairs[:, 0] = np.where(first, self._x_open, self._x) + x
        pairs[:, 1] = np.where(last, self._y_close, self._y) + y
        tokens = pairs.ravel()
        lens = self._lens[tokens]
        chars = self._rows[tokens]
        text = chars[np.arange(chars.shape[1]) < lens[:, None]].tobytes()
        point_ends = np.cumsum(lens)[1::2]
        offs = np.zeros(len(contours) + 1, np.int64)
        offs[1:] = point_ends[last]
        return text, offs


def _ring_points(
    contours: Sequence[np.ndarray], offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every ring's edge points as ``outlines._ring`` makes them: de-duplicated, then closed.

    Returns ``x``, ``y`` and whether each point opens / closes its ring.
    """
    n = len(contours)
    lens = np.fromiter((len(c) for c in contours), np.int64, n)
    pts = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    pts += 1
    pts >>= 1  # upsampled index k -> pixel edge ceil(k / 2)
    rid = np.repeat(np.arange(n), lens)
    pts += offsets[rid]
    starts = np.cumsum(lens) - lens
    keep = np.ones(len(pts), bool)
    keep[1:] = (pts[1:] != pts[:-1]).any(1)
    keep[starts] = True
    kept = np.flatnonzero(keep)
    ns = np.searchsorted(rid[kept], np.arange(n))
    last_kept = kept[np.append(ns[1:], len(kept)) - 1]
    first_kept = kept[ns]
    drop = (last_kept != first_kept) & (pts[last_kept] == pts[first_kept]).all(1)
    keep[last_kept[drop]] = False
    kept = np.flatnonzero(keep)
    ns = np.searchsorted(rid[kept], np.arange(n))
    ne = np.append(ns[1:], len(kept))
    idx = np.insert(kept, ne, kept[ns])  # close each ring on its first point
    first = np.zeros(len(idx), bool)
    last = np.zeros(len(idx), bool)
    first[ns + np.arange(n)] = True
    last[ne + np.arange(n)] = True
    return pts[idx, 0], pts[idx, 1], first, last


def features_text(
    coords: CoordinateText,
    traced: Traced,
    properties: Callable[[Sequence[int]], list[bytes]] | bytes,
) -> bytes:
    """The feature lines of a batch of traced objects, ``,\\n``-separated.

    Parameters
    ----------
    coords : CoordinateText
        The export's coordinate tables.
    traced : Traced
        The objects' contours.
    properties : Callable[[Sequence[int]], list[bytes]] or bytes
        ``properties(ids)`` returns the features' ``properties`` JSON texts,
        one per id (made for the whole batch at once); or bytes with one
        ``%d`` (the id) when that is all that varies.

    Returns
    -------
    bytes
        One feature per line, in the order traced.
    """
    if not traced.contours:
        return b""
    text, offs = coords.rings(traced.contours, np.asarray(traced.origins, np.int64))
    o = offs.tolist()
    props = (
        [properties % lid for lid in traced.ids]
        if isinstance(properties, bytes)
        else properties(traced.ids)
    )
    simple = b'{"type":"Feature","id":"%d","geometry":{"type":"Polygon","coordinates":[%b]}'
    lines = []
    r = 0
    for lid, n, parts, prop in zip(traced.ids, traced.counts, traced.parts, props, strict=True):
        if parts is None:
            line = simple % (lid, text[o[r] : o[r + 1]])
        else:
            polys = [
                b"[" + b",".join(text[o[r + i] : o[r + i + 1]] for i in p) + b"]" for p in parts
            ]
            geom = (
                b'{"type":"Polygon","coordinates":' + polys[0] + b"}"
                if len(polys) == 1
                else b'{"type":"MultiPolygon","coordinates":[' + b",".join(polys) + b"]}"
            )
            line = b'{"type":"Feature","id":"%d","geometry":%b' % (lid, geom)
        r += n
        lines.append(line + b',"properties":' + prop + b"}")
    return b",\n".join(lines)
