"""Reading QuPath GeoJSON annotations as classed polygons, holes kept.

:func:`read_annotations` keeps every Polygon and MultiPolygon with its
interior rings, the QuPath object type and class of each feature, and maps
the class names to class ids with a :class:`~napari_slideseg.io.palette.ClassMap`.
The polygons are stored flat (every ring edge of every part in one array,
with the offsets of each part and its bounding box) so that a block of a
mask only looks at the parts whose box overlaps it.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..geojson_doc import (
    GeoJSONError,
    feature_class_name,
    feature_object_type,
    geojson_features,
    load_geojson,
)
from ..palette import ClassMap

logger = logging.getLogger(__name__)

#: QuPath object types (a feature without ``objectType`` is an annotation).
OBJECT_TYPES = ("annotation", "detection", "cell", "tile")
#: The largest class id a ``uint8`` annotation mask holds besides the ignore value.
MAX_CLASS_ID = 254


class AnnotationError(GeoJSONError):
    """GeoJSON annotations that cannot be used as class masks (the message says why)."""


@dataclass(frozen=True)
class AnnotationFeature:
    """One feature of an annotation file.

    Attributes
    ----------
    id : str
        QuPath's object id (``""`` when the file has none).
    object_type : str
        ``"annotation"``, ``"detection"``, ``"cell"`` or ``"tile"``.
    class_name : str
        The classification's name (``""``: unclassified).
    class_id : int
        Its class in the class map.
    parts : int
        Polygons it holds (a MultiPolygon's parts).
    holes : int
        Interior rings over its parts.
    """

    id: str
    object_type: str
    class_name: str
    class_id: int
    parts: int
    holes: int


@dataclass(frozen=True)
class Annotations:
    """Classed polygons of an annotation file, flat, in file order.

    Coordinates are level-0 pixels of the slide where pixel ``(x, y)``
    covers ``[x, x + 1) x [y, y + 1)`` (QuPath's and this plugin's GeoJSON).

    Attributes
    ----------
    path : str
        The file.
    classmap : ClassMap
        The classes the ids refer to.
    edges : numpy.ndarray
        ``(E, 4)`` float64 ring edges ``x1, y1, x2, y2`` of every part.
    starts : numpy.ndarray
        ``(n + 1,)`` int64: part ``i``'s edges are ``edges[starts[i]:starts[i + 1]]``.
    boxes : numpy.ndarray
        ``(n, 4)`` float64 part bounding boxes ``ymin, xmin, ymax, xmax``.
    class_ids : numpy.ndarray
        ``(n,)`` uint8 class id of each part.
    features : list of AnnotationFeature
        The features kept, in file order.
    skipped : dict
        Features left out, by reason: ``"unknown_class"``, ``"object_type"``,
        ``"geometry"`` (no polygon).
    """

    path: str
    classmap: ClassMap
    edges: np.ndarray
    starts: np.ndarray
    boxes: np.ndarray
    class_ids: np.ndarray
    features: list[AnnotationFeature] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def n_parts(self) -> int:
        """Polygons (MultiPolygon parts counted one by one)."""
        return len(self.class_ids)

    @property
    def holes(self) -> int:
        """Interior rings over all features."""
        return sum(f.holes for f in self.features)

    def part_edges(self, i: int) -> np.ndarray:
        """The ring edges of part ``i``.

        Parameters
        ----------
        i : int
            The part's index (file order).

        Returns
        -------
        numpy.ndarray
            ``(e, 4)`` edges ``x1, y1, x2, y2``.
        """
        return self.edges[self.starts[i] : self.starts[i + 1]]

    def summary(self) -> dict[str, Any]:
        """What the file held, JSON-able (for run records and layer metadata).

        Returns
        -------
        dict
            ``path``, ``features``, ``parts``, ``holes``, ``skipped`` and the
            feature count of each class name.
        """
        return {
            "path": self.path,
            "features": len(self.features),
            "parts": self.n_parts,
            "holes": self.holes,
            "skipped": dict(self.skipped),
            "classes": dict(Counter(f.class_name for f in self.features)),
        }


def class_ids_by_name(classmap: ClassMap) -> dict[str, int]:
    """Class ids of a map by lower-cased, stripped name (the matching annotations use).

    Parameters
    ----------
    classmap : ClassMap
        The classes.

    Returns
    -------
    dict
        ``{name.strip().lower(): index}``.

    Raises
    ------
    AnnotationError
        Two names differ only in case, or the map has more classes than a
        ``uint8`` mask holds besides the ignore value (255).
    """
    if classmap.n_classes > MAX_CLASS_ID + 1:
        raise AnnotationError(
            f"annotation masks are uint8 with 255 as the ignore value: a class map of at most "
            f"{MAX_CLASS_ID + 1} classes, not {classmap.n_classes}"
        )
    ids: dict[str, int] = {}
    for i, name in enumerate(classmap.names):
        key = name.strip().lower()
        if key in ids:
            raise AnnotationError(
                f"class map names {classmap.names[ids[key]]!r} and {name!r} differ only in "
                "case; annotation classes are matched without case"
            )
        ids[key] = i
    return ids


def _object_type(props: dict[str, Any]) -> str:
    """The feature's object type, lower case; a feature that states none is an annotation."""
    return (feature_object_type(props) or "annotation").strip().lower()


def _ring_edges(ring: Any) -> np.ndarray:
    """``(n, 4)`` edges of a ring (closed whether or not its last point repeats the first)."""
    pts = np.asarray(ring, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] < 2 or len(pts) == 0:
        raise ValueError(f"a ring is not a list of [x, y] positions (shape {pts.shape})")
    if not np.isfinite(pts[:, :2]).all():
        raise ValueError("a ring has a coordinate that is not a finite number")
    pts = pts[:, :2]
    edges = np.empty((len(pts), 4))
    edges[:, :2] = pts
    edges[:-1, 2:] = pts[1:]
    edges[-1, 2:] = pts[0]
    return edges


def _polygons(geom: dict[str, Any]) -> list[list[np.ndarray]] | None:
    """The parts of a Polygon or MultiPolygon, each a list of ring edge arrays (outer first)."""
    kind = geom.get("type")
    where = geom.get("coordinates")
    if kind == "Polygon":
        polys = [where]
    elif kind == "MultiPolygon":
        polys = list(where or [])
    else:
        return None
    return [[_ring_edges(r) for r in poly] for poly in polys if poly]


@dataclass
class _Collect:
    """The parts gathered while reading, before they are made flat arrays."""

    edges: list[np.ndarray] = field(default_factory=list)
    class_ids: list[int] = field(default_factory=list)
    features: list[AnnotationFeature] = field(default_factory=list)
    unknown: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    def add(self, feat: dict[str, Any], parts: list, kind: str, name: str, cid: int) -> None:
        for rings in parts:
            self.edges.append(np.concatenate(rings, axis=0))
            self.class_ids.append(cid)
        holes = sum(len(rings) - 1 for rings in parts)
        props = feat.get("properties") or {}
        fid = str(feat.get("id") or (props.get("id") if isinstance(props, dict) else "") or "")
        self.features.append(AnnotationFeature(fid, kind, name, cid, len(parts), holes))


def _unknown_message(path: Path, unknown: Counter, classmap: ClassMap) -> str:
    shown = ", ".join(f"{n or '(unclassified)'!r} ({k} feature(s))" for n, k in unknown.items())
    which = f" {classmap.name!r}" if classmap.name else ""
    return (
        f"{path}: class(es) {shown} not in the class map{which} (classes: "
        f"{', '.join(classmap.names)}); rename them in QuPath or in a class map JSON, or skip "
        "those features (skip_unknown=True, --skip-unknown-classes)"
    )


def _flat(path: Path, classmap: ClassMap, got: _Collect) -> Annotations:
    starts = np.zeros(len(got.edges) + 1, np.int64)
    starts[1:] = np.cumsum([len(e) for e in got.edges])
    edges = np.concatenate(got.edges, axis=0) if got.edges else np.zeros((0, 4))
    boxes = np.zeros((len(got.edges), 4))
    if got.edges:  # every part has edges: reduceat over the part offsets
        boxes[:, 0] = np.minimum.reduceat(edges[:, 1], starts[:-1])
        boxes[:, 1] = np.minimum.reduceat(edges[:, 0], starts[:-1])
        boxes[:, 2] = np.maximum.reduceat(edges[:, 1], starts[:-1])
        boxes[:, 3] = np.maximum.reduceat(edges[:, 0], starts[:-1])
    skipped = dict(got.skipped)
    if got.unknown:
        skipped["unknown_class"] = sum(got.unknown.values())
    return Annotations(
        str(path),
        classmap,
        edges.astype(np.float64),
        starts,
        boxes,
        np.asarray(got.class_ids, np.uint8),
        got.features,
        skipped,
    )


def read_annotations(
    path: str | os.PathLike,
    classmap: ClassMap,
    *,
    skip_unknown: bool = False,
    object_types: tuple[str, ...] | None = None,
) -> Annotations:
    """Read the classed polygons of a QuPath GeoJSON export, holes kept.

    Accepts a FeatureCollection, a list of Features (as QuPath writes), a
    single Feature, gzipped or not (``.geojson.gz``). Polygons and
    MultiPolygons are kept with their interior rings; other geometries
    (points, lines) are skipped (logged). A feature's class is its
    ``properties.classification`` (``{"name": ..., "color": [r, g, b]}``,
    older ``{"name": ..., "colorRGB": int}``, or a plain string), matched to
    the class map's names without case; its ``objectType`` (absent:
    ``"annotation"``) is kept.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.geojson`` / ``.geojson.gz`` / ``.json`` file.
    classmap : ClassMap
        The classes; a feature's class name must be one of its names.
    skip_unknown : bool
        Skip features whose class is not in the map (and unclassified ones),
        with a warning saying how many, instead of refusing the file.
    object_types : tuple of str, optional
        Keep only features of these QuPath object types (e.g.
        ``("annotation",)``); all by default.

    Returns
    -------
    Annotations
        The polygons, their class ids and the features, in file order.

    Raises
    ------
    GeoJSONError
        Naming the file: unreadable, not GeoJSON, a malformed polygon.
    AnnotationError
        Naming the file, the unknown classes and the classes of the map, when
        a feature's class is not in the map and ``skip_unknown`` is false; an
        unknown object type in ``object_types``.

    Warns
    -----
    UserWarning
        With ``skip_unknown``, how many features were skipped and their classes.
    """
    p = Path(path)
    ids = class_ids_by_name(classmap)
    wanted = _checked_types(object_types)
    got = _Collect()
    for i, feat in enumerate(geojson_features(load_geojson(p), p)):
        props = feat.get("properties")
        props = props if isinstance(props, dict) else {}
        geom = feat.get("geometry")
        kind = _object_type(props)
        if wanted is not None and kind not in wanted:
            got.skipped["object_type"] += 1
            continue
        try:
            parts = _polygons(geom) if isinstance(geom, dict) else None
        except (TypeError, ValueError, IndexError) as exc:
            gtype = geom.get("type") if isinstance(geom, dict) else None
            raise GeoJSONError(
                f"{p}: feature {i + 1} ({feat.get('id') or 'no id'}) has a malformed {gtype} "
                f"geometry ({exc})"
            ) from exc
        if not parts:
            got.skipped["geometry"] += 1
            continue
        name = feature_class_name(props).strip()
        cid = ids.get(name.lower())
        if cid is None:
            got.unknown[name] += 1
            continue
        got.add(feat, parts, kind, name, cid)
    _report(p, classmap, got, skip_unknown)
    return _flat(p, classmap, got)


def _checked_types(object_types: tuple[str, ...] | None) -> set[str] | None:
    if object_types is None:
        return None
    if isinstance(object_types, str):
        object_types = (object_types,)
    wanted = {str(t).strip().lower() for t in object_types}
    bad = sorted(wanted - set(OBJECT_TYPES))
    if bad:
        raise AnnotationError(
            f"object_types must be among {', '.join(OBJECT_TYPES)}, not {', '.join(bad)}"
        )
    return wanted


def _report(path: Path, classmap: ClassMap, got: _Collect, skip_unknown: bool) -> None:
    """Refuse or warn about unknown classes; log the features without a polygon."""
    if got.unknown and not skip_unknown:
        raise AnnotationError(_unknown_message(path, got.unknown, classmap))
    if got.unknown:
        n = sum(got.unknown.values())
        names = ", ".join(repr(k or "(unclassified)") for k in got.unknown)
        warnings.warn(
            f"{path}: {n} feature(s) skipped: their class ({names}) is not in the class map "
            f"(classes: {', '.join(classmap.names)})",
            UserWarning,
            stacklevel=3,  # read_annotations' caller
        )
    for reason, n in got.skipped.items():
        logger.info("%s: %d feature(s) skipped (%s)", path, n, reason)
