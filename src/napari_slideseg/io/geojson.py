"""Reading GeoJSON polygons: QuPath annotations and detections, and this plugin's exports.

:func:`read_geojson` returns the shapes in napari's conventions (vertices
``(y, x)`` in pixel-centre coordinates) with one record per shape (object
id, QuPath object type, class name and colour, scalar measurements), so the
npe2 glue only has to build the Shapes layer.

Coordinates: GeoJSON from QuPath and from this plugin's writers is in
level-0 pixels of the slide with pixel ``(x, y)`` covering ``[x, x + 1) x
[y, y + 1)``; napari centres pixel ``(y, x)`` on the integer point, so a
vertex ``(x, y)`` becomes ``(y - 0.5, x - 0.5)`` and the polygons sit
exactly on the pixels they came from. The µm per pixel comes from the
FeatureCollection's ``slideseg`` member when this plugin wrote the file;
QuPath files don't state it (the shapes are then in pixels).
"""

from __future__ import annotations

import gzip
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .geojson_doc import (
    GeoJSONError,
    feature_class_name,
    feature_color,
    feature_object_type,
    geojson_features,
    load_geojson,
)

logger = logging.getLogger(__name__)

#: Colour of shapes whose class states none (QuPath's default yellow-ish grey).
DEFAULT_COLOR = (255, 200, 0)
#: Geometry types read (others, e.g. GeometryCollection, are skipped).
_KINDS = ("Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point", "MultiPoint")


@dataclass
class GeoJSONShapes:
    """Shapes read from a GeoJSON file, in napari's conventions.

    Parameters
    ----------
    shapes : list of numpy.ndarray
        ``(n, 2)`` arrays of ``(y, x)`` vertices.
    shape_types : list of str
        ``"polygon"`` or ``"path"``, one per shape.
    records : list of dict
        Each shape's properties (``id``, ``object_type``, ``class_name``,
        measurements).
    colors : list of tuple of int
        Each shape's class colour (RGB 0-255).
    points : list of tuple of float
        ``(y, x)`` of the Point geometries.
    point_records : list of dict
        Each point's properties.
    point_colors : list of tuple of int
        Each point's class colour.
    mpp : tuple of float, optional
        The µm per pixel the file states (None when it does not).
    holes : int
        Interior rings left out (napari polygons have none).
    coordinates : dict
        The file's ``slideseg.coordinates`` record, when this plugin wrote it.
    """

    shapes: list[np.ndarray] = field(default_factory=list)
    shape_types: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    colors: list[tuple[int, int, int]] = field(default_factory=list)
    points: list[tuple[float, float]] = field(default_factory=list)
    point_records: list[dict[str, Any]] = field(default_factory=list)
    point_colors: list[tuple[int, int, int]] = field(default_factory=list)
    mpp: tuple[float, float] | None = None
    holes: int = 0
    coordinates: dict[str, Any] = field(default_factory=dict)


def sniff_geojson(path: str | os.PathLike) -> bool:
    """Whether a ``.geojson``/``.json`` file (gzipped or not) starts like GeoJSON; never raises.

    Only the first 4 kB are read: a FeatureCollection, a Feature, a list of
    Features (QuPath's "export as array") or a bare geometry.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    bool
        True when its start names a GeoJSON type; False too when it cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            text = fh.read(4096).decode("utf-8", errors="replace")
    except (OSError, EOFError):
        return False
    text = text.lstrip("\ufeff \t\r\n")
    if not text.startswith(("{", "[")):
        return False
    compact = text.replace(" ", "").replace("\n", "").replace("\r", "").replace("\t", "")
    return any(
        f'"type":"{kind}"' in compact
        for kind in ("FeatureCollection", "Feature", "Polygon", "MultiPolygon")
    )


def _record(feature: dict[str, Any], props: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": props.get("id", feature.get("id", "")),
        "object_type": feature_object_type(props),
        "class_name": feature_class_name(props),
    }
    skip = {"classification", "objectType", "object_type", "id", "color", "colorRGB", "isLocked"}
    for k, v in props.items():
        if k in skip or k in rec:
            continue
        if isinstance(v, bool | int | float | str) or v is None:
            rec[k] = v
    meas = props.get("measurements")
    if isinstance(meas, dict):
        rec.update({str(k): v for k, v in meas.items() if isinstance(v, int | float)})
    elif isinstance(meas, list):  # older QuPath: [{"name": ..., "value": ...}]
        for m in meas:
            if isinstance(m, dict) and "name" in m and isinstance(m.get("value"), int | float):
                rec[str(m["name"])] = m["value"]
    rec.pop("measurements", None)
    return rec


def _ring_to_napari(ring: Any) -> np.ndarray:
    pts = np.asarray(ring, dtype=float)
    if pts.ndim != 2 or pts.shape[1] < 2:
        raise GeoJSONError(f"a ring is not a list of [x, y] positions (shape {pts.shape})")
    pts = pts[:, :2]
    if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]
    return pts[:, ::-1] - 0.5  # (x, y) on pixel edges -> (y, x) on pixel centres


def _read_coordinates(doc: Any, p: Path, out: GeoJSONShapes) -> None:
    """The ``slideseg.coordinates`` record this plugin writes, and its µm per pixel, into ``out``."""
    if not isinstance(doc, dict):
        return
    coords = (doc.get("slideseg") or {}).get("coordinates") or {}
    if not isinstance(coords, dict):
        return
    out.coordinates = coords
    mpp = coords.get("mpp")
    if isinstance(mpp, list) and len(mpp) == 2:
        try:
            out.mpp = (float(mpp[0]), float(mpp[1]))
        except (TypeError, ValueError):
            warnings.warn(
                f"{p}: its µm per pixel {mpp!r} are not numbers; the shapes are in pixels",
                UserWarning,
                stacklevel=3,  # read_geojson's caller
            )
            out.mpp = None


def _add_geometry(
    out: GeoJSONShapes, kind: Any, where: Any, rec: dict[str, Any], color: tuple[int, int, int]
) -> None:
    """Append one feature's shapes or points to ``out``.

    ``where`` is the geometry's ``coordinates`` (nested JSON lists); malformed
    ones raise ``TypeError``, ``ValueError`` or ``IndexError``.
    """
    if kind == "Polygon":
        polys = [where]
    elif kind == "MultiPolygon":
        polys = list(where)
    else:
        polys = []
    for poly in polys:
        if not poly:
            continue
        out.shapes.append(_ring_to_napari(poly[0]))
        out.shape_types.append("polygon")
        out.records.append(rec)
        out.colors.append(color)
        out.holes += max(0, len(poly) - 1)
    if kind in ("LineString", "MultiLineString"):
        for line in [where] if kind == "LineString" else list(where):
            pts = np.asarray(line, dtype=float)[:, :2]
            out.shapes.append(pts[:, ::-1] - 0.5)
            out.shape_types.append("path")
            out.records.append(rec)
            out.colors.append(color)
    if kind in ("Point", "MultiPoint"):
        for pt in [where] if kind == "Point" else list(where):
            out.points.append((float(pt[1]) - 0.5, float(pt[0]) - 0.5))
            out.point_records.append(rec)
            out.point_colors.append(color)


def read_geojson(path: str | os.PathLike) -> GeoJSONShapes:
    """Read a GeoJSON file's polygons, lines and points (see :class:`GeoJSONShapes`).

    Accepts a FeatureCollection, a Feature, a list of Features (QuPath) or
    a bare geometry, gzipped or not. Polygons keep their outer ring (holes
    are counted in ``holes``), MultiPolygons give one shape per part (all
    with the feature's record), LineStrings become paths, Points points.
    Features without such a geometry are skipped (logged).

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    GeoJSONShapes
        The shapes, their records and colours, and the stated µm per pixel.

    Raises
    ------
    GeoJSONError
        Naming the file: unreadable JSON, not GeoJSON, a malformed geometry.

    Warns
    -----
    UserWarning
        When the file's µm per pixel are not numbers (the shapes stay in pixels).
    """
    p = Path(path)
    doc = load_geojson(p)
    out = GeoJSONShapes()
    _read_coordinates(doc, p, out)
    skipped = 0
    for i, feat in enumerate(geojson_features(doc, p)):
        geom = feat.get("geometry")
        if not isinstance(geom, dict):
            skipped += 1
            continue
        props = feat.get("properties") or {}
        props = props if isinstance(props, dict) else {}
        rec = _record(feat, props)
        color = feature_color(props) or DEFAULT_COLOR
        kind = geom.get("type")
        if kind not in _KINDS:
            skipped += 1
        try:
            _add_geometry(out, kind, geom.get("coordinates"), rec, color)
        except (TypeError, ValueError, IndexError) as exc:
            raise GeoJSONError(
                f"{p}: feature {i + 1} ({rec.get('id') or 'no id'}) has a malformed {kind} "
                f"geometry ({exc})"
            ) from exc
    if skipped:
        logger.info(
            "%s: %d feature(s) without a polygon, line or point geometry skipped", p, skipped
        )
    return out
