"""Corrections of a prediction: a user's edits saved beside it, never over it.

>>> from napari_slideseg.corrections import open_corrections  # doctest: +SKIP
>>> store = open_corrections("slide.pred.zarr")  # doctest: +SKIP
>>> store.record("labels", 100, 200, fixed_block)  # doctest: +SKIP
>>> store.corrected("labels")  # doctest: +SKIP

See :mod:`napari_slideseg.corrections.store` for the layout and its crash safety.
"""

from .grid import ATTRS, GROUP, PYRAMIDS, CorrectionsError, chunk_windows
from .lazy import (
    corrected_array,
    corrected_levels,
    corrected_window,
    edited_regions,
    merge_boxes,
)
from .store import Corrections, open_corrections, prediction_identity
from .view import layer_array, region_shapes, regions_layer, with_corrections

__all__ = [
    "ATTRS",
    "GROUP",
    "PYRAMIDS",
    "Corrections",
    "CorrectionsError",
    "chunk_windows",
    "corrected_array",
    "corrected_levels",
    "corrected_window",
    "edited_regions",
    "layer_array",
    "merge_boxes",
    "open_corrections",
    "prediction_identity",
    "region_shapes",
    "regions_layer",
    "with_corrections",
]
