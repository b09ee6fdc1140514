"""A class map from what a caller gives: a map, a preset name, a JSON file, layer metadata."""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import SlideSegError
from ..palette import ClassMap


def resolve_classmap(classmap: ClassMap | str | os.PathLike | None) -> ClassMap | None:
    """A ClassMap from an instance, a preset name or a JSON file path (``None`` passes).

    Parameters
    ----------
    classmap : ClassMap or str or os.PathLike or None
        A map, a preset name (``wsi3``), or a path: one ending in ``.json``
        or one that exists is read as a JSON class map.

    Returns
    -------
    ClassMap or None
        The map; ``None`` for ``None``.

    Raises
    ------
    MaskError
        If the file cannot be read as a class map, or the name is no preset.
    """
    if classmap is None or isinstance(classmap, ClassMap):
        return classmap
    s = os.fspath(classmap)
    if s.lower().endswith(".json") or os.path.exists(s):
        return ClassMap.load_json(s)
    return ClassMap.preset(s)


def classmap_from_metadata(metadata: dict[str, Any] | None) -> ClassMap | None:
    """The ClassMap stored in napari layer metadata (``metadata["slideseg"]["classmap"]``).

    Parameters
    ----------
    metadata : dict or None
        A layer's metadata; a top-level ``"classmap"`` is read too. The map
        may be a :class:`ClassMap`, its dict form or that as a JSON string.

    Returns
    -------
    ClassMap or None
        The map, or ``None`` when there is none.

    Raises
    ------
    SlideSegError
        If the stored map is unreadable JSON or not a class map
        (:class:`~napari_slideseg.io.palette.MaskError`).
    """
    if not metadata:
        return None
    cm = (metadata.get("slideseg") or {}).get("classmap") or metadata.get("classmap")
    if cm is None:
        return None
    if isinstance(cm, ClassMap):
        return cm
    if isinstance(cm, str):
        try:
            cm = json.loads(cm)
        except json.JSONDecodeError as exc:
            raise SlideSegError(f"layer metadata holds an unreadable class map ({exc})") from exc
    return ClassMap.from_dict(cm)
