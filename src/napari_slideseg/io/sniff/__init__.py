"""Cheap format sniffing and JPEG damage checks (standard library only).

This package is imported by the npe2 reader hook, which napari calls for
every file a user drops on the canvas, so it must stay import-light: no
numpy, no tifffile, no dask at import time.

- :mod:`.formats`: which kind a file is, a PNG's or JPEG's header;
- :mod:`.vendor`: DICOM files and folders, MIRAX and VMS slide folders;
- :mod:`.jpeg_structure`: a JPEG's marker structure (truncation, overwritten markers);
- :mod:`.jpeg_huffman`: a baseline JPEG's Huffman-coded data, decoded without the pixels.
"""

from __future__ import annotations

from .formats import (
    RASTER_SUFFIXES,
    SOF_MARKERS,
    TIFF_SUFFIXES,
    ZARR_SUFFIXES,
    RasterHeader,
    is_zarr_path,
    raster_header,
    sniff_kind,
    special_file_kind,
)
from .jpeg_huffman import jpeg_entropy_damage, jpeg_problem
from .jpeg_structure import jpeg_damage
from .vendor import (
    INDEX_SUFFIXES,
    VENDOR_SUFFIXES,
    dicom_files,
    folder_index,
    is_dicom_file,
    is_vendor_folder,
)

__all__ = [
    "INDEX_SUFFIXES",
    "RASTER_SUFFIXES",
    "SOF_MARKERS",
    "TIFF_SUFFIXES",
    "VENDOR_SUFFIXES",
    "ZARR_SUFFIXES",
    "RasterHeader",
    "dicom_files",
    "folder_index",
    "is_dicom_file",
    "is_vendor_folder",
    "is_zarr_path",
    "jpeg_damage",
    "jpeg_entropy_damage",
    "jpeg_problem",
    "raster_header",
    "sniff_kind",
    "special_file_kind",
]
