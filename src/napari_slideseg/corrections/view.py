"""Layer tuples of a corrected prediction: corrected labels and the corrected-regions outline.

No napari here (see :mod:`napari_slideseg.layers`): the reader and the
napari glue (:mod:`napari_slideseg._widgets.corrections`) build their
layers from these.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .grid import CorrectionsError

logger = logging.getLogger(__name__)

#: Outline colour of corrected regions (RGBA).
REGION_EDGE = (1.0, 0.85, 0.0, 1.0)


def layer_array(kwargs: dict[str, Any]) -> str:
    """Which prediction array a prediction layer shows (``instances`` or ``labels``).

    Parameters
    ----------
    kwargs : dict
        The layer's keyword arguments (its ``metadata``), or a layer's metadata
        under ``"metadata"``.

    Returns
    -------
    str
        ``instances`` for the nuclei of a HoVer prediction, else ``labels``.
    """
    meta = (kwargs.get("metadata") or {}).get("slideseg") or {}
    return "instances" if meta.get("instances") else "labels"


def region_shapes(boxes: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """Rectangles (4 corners, ``(y, x)``) around level pixels boxes, on the pixels' edges.

    Parameters
    ----------
    boxes : list of tuple of int
        ``(y0, x0, y1, x1)``, end exclusive.

    Returns
    -------
    list of numpy.ndarray
        ``(4, 2)`` float corners per box, in the layer's data coordinates
        (pixel centres are whole numbers, so the edges are at ``-0.5``).
    """
    out = []
    for y0, x0, y1, x1 in boxes:
        a, b, c, d = y0 - 0.5, x0 - 0.5, y1 - 0.5, x1 - 0.5
        out.append(np.array([[a, b], [a, d], [c, d], [c, b]], np.float64))
    return out


def regions_layer(
    boxes: list[tuple[int, int, int, int]], labels_kwargs: dict[str, Any], prediction: str
) -> tuple[list[np.ndarray], dict[str, Any], str]:
    """A Shapes layer tuple outlining corrected regions over a prediction layer.

    Parameters
    ----------
    boxes : list of tuple of int
        The regions (:meth:`Corrections.regions`).
    labels_kwargs : dict
        The prediction layer's keyword arguments: its ``name``, ``scale``
        and ``units`` are followed.
    prediction : str
        The prediction folder (kept in the metadata).

    Returns
    -------
    tuple
        ``(rectangles, kwargs, "shapes")``; the layer is named
        ``<prediction layer> corrected regions``.
    """
    kwargs: dict[str, Any] = {
        "name": f"{labels_kwargs.get('name', 'prediction')} corrected regions",
        "shape_type": "rectangle",
        "edge_color": [REGION_EDGE] * len(boxes) if boxes else REGION_EDGE,
        "face_color": [(0.0, 0.0, 0.0, 0.0)] * len(boxes) if boxes else "transparent",
        "edge_width": 2,
        "metadata": {
            "slideseg": {
                "prediction": prediction,
                "corrected_regions": layer_array(labels_kwargs),
                "boxes": [list(b) for b in boxes],
            }
        },
    }
    for key in ("scale", "units"):
        if key in labels_kwargs:
            kwargs[key] = labels_kwargs[key]
    return region_shapes(boxes), kwargs, "shapes"


def with_corrections(
    out: Any, layers: list[tuple[Any, dict[str, Any], str]]
) -> list[tuple[Any, dict[str, Any], str]]:
    """Prediction layer tuples showing their saved corrections, each with its outline layer.

    A layer whose array has corrections gets the corrected data (lazy; the
    pyramid too) and ``metadata["slideseg"]["corrections"]`` (version),
    followed by :func:`regions_layer`. Corrections of another prediction
    are left out with a warning in the log.

    Parameters
    ----------
    out : str or os.PathLike
        The prediction folder.
    layers : list of tuple
        Its layer tuples (:func:`~napari_slideseg.layers.prediction_layers`).

    Returns
    -------
    list of tuple
        The tuples, corrected, with the outlines after the layers they outline.
    """
    from .store import open_corrections

    try:
        store = open_corrections(out, writable=False)
        corrected = store.arrays()
    except CorrectionsError as err:
        logger.warning("%s", err)
        return layers
    if not corrected:
        return layers
    result = []
    for data, kwargs, kind in layers:
        name = layer_array(kwargs)
        if kind != "labels" or name not in corrected:
            result.append((data, kwargs, kind))
            continue
        levels = store.corrected_levels(name)
        data = levels if isinstance(data, list) else levels[0]
        meta = dict(kwargs.get("metadata") or {})
        meta["slideseg"] = {**(meta.get("slideseg") or {}), "corrections": store.version}
        kwargs = {**kwargs, "metadata": meta}
        result.append((data, kwargs, kind))
        result.append(regions_layer(store.regions(name), kwargs, str(out)))
    return result
