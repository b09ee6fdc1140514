"""Reading label images in any of the forms users bring them.

:func:`read_labels` returns ``(labels, classmap, info)`` for a colour mask
(PNG/TIFF, one RGB colour per class), an index mask (grey PNG/TIFF of class
indices or instance ids), an RLE CSV (Kaggle or slideseg layouts), or a zarr
/ OME-Zarr label image (read lazily, block by block).

The resolution a file records comes back in ``info["mpp"]`` (µm per pixel
of the labels, ``(y, x)``) and, where the file says where it sits on its
slide, ``info["placement"]`` (:meth:`Placement.to_dict`): PNG ``pHYs`` and
the ``slideseg:placement`` text chunk, TIFF resolution tags, OME
PhysicalSize or the slideseg description, OME-Zarr scale and axis units,
RLE CSV placement columns, a prediction zarr's attributes.

Modules
-------
``read``
    the dispatcher, :func:`read_labels`.
``image``, ``rle_csv``, ``zarr_labels``, ``instances``
    one reader per format: mask images, RLE CSVs, zarr / NGFF labels,
    instance (id) maps.
``metadata``, ``classmaps``, ``prediction``
    what a file records (placement, class map), class maps from arguments
    and layer metadata, prediction folders (finished or not, their box).
"""

from __future__ import annotations

from .classmaps import classmap_from_metadata, resolve_classmap
from .image import BIG_MASK_PIXELS
from .instances import (
    ID_MAP_MIN_SAME,
    ID_MAP_SNIFF_PIXELS,
    instance_marker,
    looks_like_id_map,
    read_id_map,
    read_instance_map,
    sniff_id_map,
)
from .metadata import file_placement, png_classmap
from .prediction import (
    IncompletePredictionError,
    PartialPredictionWarning,
    check_prediction,
    missing_blocks,
    predicted_box,
    prediction_root,
)
from .read import read_labels
from .zarr_labels import ngff_label_names

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
