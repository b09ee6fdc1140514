"""RLE CSV export of a label image: the class map's names and colours in every row.

The encoding itself is :func:`napari_slideseg.io.rle.write_rle_csv`; this
module maps an export's options (class map, semantic or instance layout,
placement) onto it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..palette import ClassMap
from ..placement import Placement
from .common import check_file_target


def write_labels_csv(
    path: str | os.PathLike,
    labels: Any,
    *,
    classmap: ClassMap | None = None,
    layout: str = "semantic",
    order: str = "col",
    image_id: str | None = None,
    instance_classes: Mapping[int, int] | None = None,
    placement: Placement | None = None,
    **kwargs: Any,
) -> Path:
    """Write labels as an RLE CSV (:func:`~napari_slideseg.io.rle.write_rle_csv`).

    Parameters
    ----------
    path : str or os.PathLike
        Output ``.csv``.
    labels : numpy.ndarray or dask.array.Array
        2D integer label image.
    classmap : ClassMap, optional
        Class names (and, unless ``class_colors`` is given, colours)
        recorded in the rows.
    layout : str
        ``"semantic"`` (one row per class) or ``"instance"`` (one row per object).
    order : str
        ``"col"`` or ``"row"`` pixel order of the runs.
    image_id : str, optional
        The ``image_id`` column; the file name stem by default.
    instance_classes : mapping of int to int, optional
        ``{instance id: class index}`` for the instance layout.
    placement : Placement, optional
        The labels' level, the slide's level-0 size and the mpp, stated in the rows.
    **kwargs
        More options of :func:`~napari_slideseg.io.rle.write_rle_csv`
        (``base``, ``band``, ``class_colors``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    MaskError
        ``path`` is a directory (before anything is written).
    """
    from ..rle import write_rle_csv

    out = check_file_target(path)
    class_names = list(classmap.names) if classmap is not None else None
    kwargs.setdefault("class_colors", list(classmap.colors) if classmap is not None else None)
    write_rle_csv(
        out,
        labels,
        layout=layout,
        order=order,
        image_id=image_id or out.stem,
        class_names=class_names,
        instance_classes=instance_classes,
        placement=placement,
        **kwargs,
    )
    return out
