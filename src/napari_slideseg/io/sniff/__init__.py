"""Cheap format sniffing and JPEG damage checks (see :mod:`.formats`; standard library only)."""

from __future__ import annotations

from .formats import (
    RASTER_SUFFIXES,
    TIFF_SUFFIXES,
    ZARR_SUFFIXES,
    RasterHeader,
    is_zarr_path,
    jpeg_damage,
    jpeg_entropy_damage,
    jpeg_problem,
    raster_header,
    sniff_kind,
    special_file_kind,
)

__all__ = [
    "RASTER_SUFFIXES",
    "TIFF_SUFFIXES",
    "ZARR_SUFFIXES",
    "RasterHeader",
    "is_zarr_path",
    "jpeg_damage",
    "jpeg_entropy_damage",
    "jpeg_problem",
    "raster_header",
    "sniff_kind",
    "special_file_kind",
]
