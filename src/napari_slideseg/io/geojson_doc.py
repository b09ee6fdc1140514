"""The GeoJSON document: its text (gzipped or not), its features, their class names and colours.

Shared by :mod:`.geojson` (napari shapes) and :mod:`.annotations` (class
masks), so both read QuPath's exports the same way.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path
from typing import Any

from .errors import SlideSegError

logger = logging.getLogger(__name__)


class GeoJSONError(SlideSegError, ValueError):
    """A GeoJSON file that cannot be read as polygons."""


def geojson_text(path: Path) -> str:
    """The text of a GeoJSON file, gunzipped when it starts with gzip's magic bytes.

    Parameters
    ----------
    path : Path
        The file (``.geojson``, ``.geojson.gz``, ``.json``; the name's ending
        does not matter).

    Returns
    -------
    str
        The file's text, decoded as UTF-8.

    Raises
    ------
    OSError
        The file cannot be read (``FileNotFoundError`` when it is missing).
    EOFError
        A truncated gzip stream.
    UnicodeDecodeError
        The text is not UTF-8.
    """
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if gz:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return fh.read()
    return path.read_text(encoding="utf-8")


def load_geojson(path: str | os.PathLike) -> Any:
    """The parsed JSON of a GeoJSON file (gzipped or not).

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    object
        The document (see :func:`geojson_features` for the features in it).

    Raises
    ------
    GeoJSONError
        Naming the file: missing, unreadable, not UTF-8 or not JSON.
    """
    p = Path(path)
    try:
        return json.loads(geojson_text(p))
    except FileNotFoundError:
        raise GeoJSONError(f"{p}: no such file") from None
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GeoJSONError(f"{p}: not readable as JSON ({type(exc).__name__}: {exc})") from exc


def geojson_features(doc: Any, path: Path) -> list[dict[str, Any]]:
    """The features of a parsed GeoJSON document.

    Parameters
    ----------
    doc : object
        The parsed JSON: a FeatureCollection, a list of Features (QuPath's
        "export as array"), a single Feature or a bare geometry (made a
        Feature without properties).
    path : Path
        The file, for error messages.

    Returns
    -------
    list of dict
        The features (entries that are not JSON objects are left out).

    Raises
    ------
    GeoJSONError
        Naming the file, when the document is none of these.
    """
    if isinstance(doc, list):
        return [f for f in doc if isinstance(f, dict)]
    if not isinstance(doc, dict):
        raise GeoJSONError(f"{path}: not GeoJSON (top level is {type(doc).__name__})")
    kind = doc.get("type")
    if kind == "FeatureCollection":
        feats = doc.get("features")
        if not isinstance(feats, list):
            raise GeoJSONError(f"{path}: FeatureCollection without a features list")
        return [f for f in feats if isinstance(f, dict)]
    if kind == "Feature":
        return [doc]
    if kind in ("Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point", "MultiPoint"):
        return [{"type": "Feature", "geometry": doc, "properties": {}}]
    raise GeoJSONError(f"{path}: not GeoJSON (type {kind!r})")


def feature_color(props: dict[str, Any]) -> tuple[int, int, int] | None:
    """The RGB colour a feature's properties state (QuPath's classification colour), if any.

    Parameters
    ----------
    props : dict
        The feature's ``properties``: ``classification.color`` (``[r, g, b]``),
        ``classification.colorRGB`` (QuPath's packed int), or a top-level
        ``color``/``colorRGB``, also as ``"#rrggbb"``.

    Returns
    -------
    tuple of int or None
        ``(r, g, b)`` in 0-255, or None when no usable colour is stated.
    """
    cls = props.get("classification")
    candidates: list[Any] = []
    if isinstance(cls, dict):
        candidates += [cls.get("color"), cls.get("colorRGB")]
    candidates += [props.get("color"), props.get("colorRGB")]
    for c in candidates:
        if isinstance(c, list | tuple) and len(c) >= 3:
            try:
                r, g, b = (int(v) & 255 for v in c[:3])
            except (TypeError, ValueError):
                continue
            return (r, g, b)
        if isinstance(c, int) and not isinstance(c, bool):  # QuPath's packed (A)RGB int
            c &= 0xFFFFFF
            return ((c >> 16) & 255, (c >> 8) & 255, c & 255)
        if isinstance(c, str) and c.startswith("#") and len(c) == 7:
            try:
                return (int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16))
            except ValueError:
                continue
    stated = [c for c in candidates if c is not None]
    if stated:
        logger.debug("colour %r is not RGB: the default colour is used", stated[0])
    return None


def feature_object_type(props: dict[str, Any]) -> str:
    """The QuPath object type a feature states (``objectType``, or ``object_type``), or ``""``.

    Parameters
    ----------
    props : dict
        The feature's ``properties``.

    Returns
    -------
    str
        As written (``"annotation"``, ``"detection"``, ``"cell"``...); ``""`` when absent.
    """
    return str(props.get("objectType") or props.get("object_type") or "")


def feature_class_name(props: dict[str, Any]) -> str:
    """The class name of a feature: QuPath's ``classification`` (dict or string).

    Parameters
    ----------
    props : dict
        The feature's ``properties``. A ``classification`` dict gives its
        ``name`` (or its ``names`` joined by ``": "``, QuPath's derived
        classes); a string is the name itself; else ``class_name`` or
        ``classification_name``.

    Returns
    -------
    str
        The name; ``""`` for an unclassified feature.
    """
    cls = props.get("classification")
    if isinstance(cls, dict):
        name = cls.get("name")
        if name is None and isinstance(cls.get("names"), list):
            name = ": ".join(str(n) for n in cls["names"])
        return "" if name is None else str(name)
    if isinstance(cls, str):
        return cls
    return str(props.get("class_name") or props.get("classification_name") or "")
