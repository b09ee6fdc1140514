"""RLE CSV labels (Kaggle or slideseg layouts), with the classes and placement they name."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import SlideSegError
from ..palette import PRESETS, ClassMap
from ..placement import Placement
from .metadata import with_placement

logger = logging.getLogger(__name__)


def read_rle_labels(
    p: Path,
    cm: ClassMap | None,
    rle_order: str | None,
    shape: tuple[int, int] | None,
) -> tuple[Any, ClassMap | None, dict[str, Any]]:
    """The labels of an RLE CSV, as :func:`~napari_slideseg.io.masks.read_labels` returns them.

    Parameters
    ----------
    p : Path
        The CSV file.
    cm : ClassMap or None
        The class map the caller gave; else the classes the file names.
    rle_order : str or None
        ``"col"`` or ``"row"`` for files that don't record their order.
    shape : tuple of int or None
        ``(height, width)`` for files without shape columns.

    Returns
    -------
    tuple
        ``(labels, classmap, info)``; ``info["format"]`` is ``"rle-csv"``. An
        instance-layout file gives ``cm`` as the class map, sets
        ``info["instances"]`` and names the types in ``info["type_classmap"]``.
    """
    from ..rle import read_rle_csv

    labels, info = read_rle_csv(p, order=rle_order, shape=shape)
    names = info.get("class_names")
    found = cm
    if found is None and names:
        found = _named_classmap(names, info.get("class_colors"))
    info = {"format": "rle-csv", **info}
    if "level" in info:
        info = with_placement(info, _rle_placement(info))
    if info.get("layout") == "instance":
        info["instances"] = True
        info["type_classmap"] = found
        return labels, cm, info
    return labels, found, info


def _named_classmap(names: list[str], colors: list[Any] | None = None) -> ClassMap:
    """The classes an RLE CSV names: its colours when it states them, else a preset.

    A ``class_color`` column (what this plugin writes) gives the colours;
    class 0 without a row is black. Otherwise a preset with exactly these
    names, else a default map with them.
    """
    if colors:
        stated = list(colors) + [None] * (len(names) - len(colors))
        if stated[0] is None:
            stated[0] = (0, 0, 0)
        if all(c is not None for c in stated[: len(names)]):
            same = [
                cm
                for cm in PRESETS.values()
                if list(cm.names) == list(names)
                and [list(c) for c in cm.colors] == [list(c) for c in stated[: len(names)]]
            ]
            if same:
                return same[0]
            try:
                return ClassMap(tuple(names), tuple(tuple(c) for c in stated[: len(names)]))
            except SlideSegError as exc:
                logger.debug("the colours the RLE CSV states are not used (%s)", exc)
    same = [cm for cm in PRESETS.values() if list(cm.names) == list(names)]
    return same[0] if same else ClassMap.default(len(names), names=names)


def _rle_placement(info: dict[str, Any]) -> Placement:
    h, w = info["shape"]
    slide = info.get("slide_shape") or (h, w)
    fy, fx = slide[0] / h, slide[1] / w
    mpp = info.get("mpp")
    return Placement(
        level=int(info.get("level") or 0),
        factors=(fy, fx),
        slide_shape=tuple(slide),
        mpp=(mpp[0] / fy, mpp[1] / fx) if mpp else None,
        shape=(h, w),
    )
