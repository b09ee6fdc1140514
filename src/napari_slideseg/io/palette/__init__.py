"""Class maps, colour masks and presets; see :mod:`.classmap`."""

from __future__ import annotations

from .classmap import (
    MAX_CLASSES,
    MIN_CLASS_SHARE,
    NUCLEUS_PRESETS,
    PRESETS,
    RGB,
    SNIFF_MAX_PIXELS,
    ClassMap,
    MaskError,
    check_colors,
    check_label_range,
    check_same_shape,
    is_color_mask,
    labels_to_rgb,
    read_color_mask,
    rgb_to_labels,
    unique_colors,
)

__all__ = [
    "MAX_CLASSES",
    "MIN_CLASS_SHARE",
    "NUCLEUS_PRESETS",
    "PRESETS",
    "RGB",
    "SNIFF_MAX_PIXELS",
    "ClassMap",
    "MaskError",
    "check_colors",
    "check_label_range",
    "check_same_shape",
    "is_color_mask",
    "labels_to_rgb",
    "read_color_mask",
    "rgb_to_labels",
    "unique_colors",
]
