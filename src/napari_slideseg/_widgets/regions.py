"""Where the Inference widget predicts: the whole slide, the view, a box or a Shapes ROI."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from ..infer.config import InferError

logger = logging.getLogger(__name__)

#: The region choices of the Inference widget.
REGIONS = ("whole slide", "current view", "box", "shapes layer")


def region_args(
    kind: str,
    box: str,
    view: Callable[[], tuple[np.ndarray, np.ndarray]],
    shapes: Any,
    to_px: np.ndarray,
) -> dict[str, Any]:
    """``region`` / ``roi`` for :class:`~napari_slideseg.infer.InferConfig`, in level pixels.

    Parameters
    ----------
    kind : str
        One of :data:`REGIONS`.
    box : str
        The box field's text, ``"y0 x0 y1 x1"`` (level pixels).
    view : callable
        Returns the world-coordinate corners of the canvas (``current view``).
    shapes : napari.layers.Shapes or None
        The chosen Shapes layer (``shapes layer``).
    to_px : numpy.ndarray
        World units per level pixel, (y, x).

    Returns
    -------
    dict
        ``{}`` (whole slide), ``{"region": (y0, x0, y1, x1)}`` or ``{"roi": polygon}``.

    Raises
    ------
    InferError
        For a box that is not four numbers, or no Shapes layer with a shape.
    """
    if kind == "whole slide":
        return {}
    if kind == "box":
        try:
            vals = [int(float(v)) for v in box.replace(",", " ").split()]
        except ValueError:
            vals = []
        if len(vals) != 4:
            raise InferError(f"box must be four numbers 'y0 x0 y1 x1', not {box!r}")
        return {"region": tuple(vals)}
    if kind == "current view":
        lo, hi = view()
        y0, x0 = np.maximum(np.floor(lo / to_px), 0).astype(int)  # the view may pass the edge
        y1, x1 = np.ceil(hi / to_px).astype(int)
        return {"region": (int(y0), int(x0), max(int(y1), int(y0) + 1), max(int(x1), int(x0) + 1))}
    if shapes is None or not len(shapes.data):
        raise InferError("region 'shapes layer': choose a Shapes layer with a polygon or box")
    if len(shapes.data) > 1:
        from ._common import notify_info

        notify_info(f"{shapes.name}: using its first shape as the ROI")
    poly = np.asarray(shapes.data[0])[:, -2:] * np.asarray(shapes.scale[-2:]) / to_px
    return {"roi": tuple((float(y), float(x)) for y, x in poly)}


def view_box(viewer: Any) -> tuple[np.ndarray, np.ndarray]:
    """World-coordinate corners (y, x) of what the viewer's canvas shows now.

    Parameters
    ----------
    viewer : napari.Viewer

    Returns
    -------
    tuple of numpy.ndarray
        The top-left and bottom-right corners.
    """
    scene = getattr(viewer, "scene", None)  # napari >= 0.9 moved the camera there
    camera = scene.camera if scene is not None else viewer.camera
    center = np.asarray(camera.center[-2:], float)
    zoom = float(camera.zoom)  # screen pixels per world unit
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9: the canvas model
    if canvas is not None and hasattr(canvas, "size"):
        size = np.asarray(canvas.size, float)  # (h, w) screen pixels
    else:  # older napari: the Qt canvas
        qt = getattr(viewer.window, "qt_viewer", None)
        if qt is None:
            logger.debug("no canvas size available: the view is taken as 512 x 512 px")
        size = np.asarray(qt.canvas.size if qt is not None else (512, 512), float)
    half = size / zoom / 2
    return center - half, center + half
