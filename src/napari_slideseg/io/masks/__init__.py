"""Reading label images in any of the forms users bring them; see :mod:`.zarr_labels`."""

from __future__ import annotations

from .zarr_labels import (
    BIG_MASK_PIXELS,
    ID_MAP_MIN_SAME,
    ID_MAP_SNIFF_PIXELS,
    IncompletePredictionError,
    PartialPredictionWarning,
    check_prediction,
    classmap_from_metadata,
    file_placement,
    instance_marker,
    looks_like_id_map,
    missing_blocks,
    ngff_label_names,
    png_classmap,
    predicted_box,
    prediction_root,
    read_id_map,
    read_instance_map,
    read_labels,
    resolve_classmap,
    sniff_id_map,
)

__all__ = [
    "BIG_MASK_PIXELS",
    "ID_MAP_MIN_SAME",
    "ID_MAP_SNIFF_PIXELS",
    "IncompletePredictionError",
    "PartialPredictionWarning",
    "check_prediction",
    "classmap_from_metadata",
    "file_placement",
    "instance_marker",
    "looks_like_id_map",
    "missing_blocks",
    "ngff_label_names",
    "png_classmap",
    "predicted_box",
    "prediction_root",
    "read_id_map",
    "read_instance_map",
    "read_labels",
    "resolve_classmap",
    "sniff_id_map",
]
