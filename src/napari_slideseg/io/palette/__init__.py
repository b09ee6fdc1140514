"""Class maps: class names, RGB colours and the background index, carried end to end.

One :class:`ClassMap` travels from the mask palette to patch manifests, model
cards, napari Labels colormaps and every writer, so a class never changes its
colour or index between steps. Label value ``i`` is class ``i``.

Colour masks and labels
-----------------------
A colour is packed into a ``uint32`` key ``r << 16 | g << 8 | b`` and looked
up in a 2**24-entry table (16 MiB for up to 255 classes, built once per
palette and tolerance and cached), so mapping a mask costs one gather per
pixel. NumPy arrays are mapped at once, dask arrays chunk by chunk. Colours
that are not in the class map are an error that lists each colour with its
pixel count; ``tolerance`` (an explicit opt-in for JPEG-compressed masks)
maps a colour to the nearest class colour within that Euclidean RGB distance.

Modules
-------
``common``
    limits, :class:`MaskError`, small shared helpers.
``fields``, ``json_io``, ``infer``, ``colors``, ``classmap``
    the :class:`ClassMap` model (its checks, its JSON form, inference from
    a mask's colours, the default colours) and the presets (:data:`PRESETS`, :data:`NUCLEUS_PRESETS`).
``keys``, ``scan``
    colour keys, lookup tables and colour counts.
``checks``, ``blocks``, ``convert``
    colour masks <-> labels (:func:`rgb_to_labels`, :func:`check_colors`,
    :func:`labels_to_rgb`).
``maskfile``, ``detect``
    mask files (:func:`read_color_mask`) and the reader's sniff
    (:func:`is_color_mask`).

This package is core: it never imports Qt, napari or magicgui, and imports
dask only when given a dask array.
"""

from __future__ import annotations

from .checks import check_label_range, check_same_shape
from .classmap import NUCLEUS_PRESETS, PRESETS, ClassMap
from .common import MAX_CLASSES, MIN_CLASS_SHARE, RGB, MaskError
from .convert import check_colors, labels_to_rgb, rgb_to_labels
from .detect import LOSSY_TIFF_COMPRESSIONS, SNIFF_MAX_PIXELS, is_color_mask
from .maskfile import read_color_mask
from .scan import unique_colors

__all__ = [
    "LOSSY_TIFF_COMPRESSIONS",
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
