"""Cheap format sniffing from a file's first bytes (standard library only).

Which kind a path is (TIFF, PNG, JPEG, zarr store, or a FIFO/socket/device
never to be opened) and a PNG's or JPEG's size from its header alone.

This module is imported by the npe2 reader hook, which napari calls for every
file a user drops on the canvas, so it must stay import-light: no numpy, no
tifffile, no dask.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass

TIFF_SUFFIXES = (".tif", ".tiff", ".svs", ".ndpi", ".scn", ".btf", ".tf2", ".tf8", ".qptiff")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
ZARR_SUFFIXES = (".zarr", ".ome.zarr")

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class RasterHeader:
    """Size and layout of a PNG or JPEG read from its header alone."""

    format: str  # "png" or "jpeg"
    width: int
    height: int
    channels: int
    bits: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded image (8 or 16 bit per sample)."""
        return self.pixels * self.channels * (2 if self.bits > 8 else 1)


def special_file_kind(path: str | os.PathLike) -> str | None:
    """``"FIFO"``, ``"socket"``, ``"device"`` (etc.) for a path that is neither a file nor a directory.

    ``None`` for a regular file, a directory and a path that does not exist.
    Opening a FIFO for reading blocks until someone writes to it (a
    drag-and-drop would freeze napari), so every reader asks this first,
    from ``os.stat`` alone, before any ``open()``.
    """
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def is_zarr_path(path: str) -> bool:
    """Whether ``path`` looks like a zarr store (directory with zarr metadata)."""
    p = path.rstrip("/\\")
    if not os.path.isdir(p):
        return False
    return any(
        os.path.exists(os.path.join(p, name)) for name in ("zarr.json", ".zgroup", ".zarray")
    )


def sniff_kind(path: str) -> str | None:
    """Return ``"tiff"``, ``"png"``, ``"jpeg"``, ``"zarr"`` or ``None`` from magic bytes.

    Only the first 8 bytes are read; nothing is decoded.
    """
    if os.path.isdir(path):
        return "zarr" if is_zarr_path(path) else None
    if special_file_kind(path) is not None:
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    if head[:4] in _TIFF_MAGICS:
        return "tiff"
    if head == _PNG_MAGIC:
        return "png"
    if head[:3] == _JPEG_MAGIC:
        return "jpeg"
    return None


def _png_header(fh) -> RasterHeader:
    head = fh.read(33)
    if len(head) < 33 or head[:8] != _PNG_MAGIC or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file or its IHDR header is truncated")
    width, height, bits, colour = struct.unpack(">IIBB", head[16:26])
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour)
    if channels is None:
        raise ValueError(f"PNG colour type {colour} is invalid")
    if colour == 3:
        bits = 8  # palette entries expand to 8-bit RGB
    return RasterHeader("png", width, height, channels, bits)


#: Start-of-frame marker codes (every JPEG coding process).
SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(fh) -> RasterHeader:
    if fh.read(2) != b"\xff\xd8":
        raise ValueError("not a JPEG file")
    while True:
        byte = fh.read(1)
        if not byte:
            raise ValueError("JPEG file ends before its frame header (SOF)")
        if byte != b"\xff":
            continue
        marker = fh.read(1)
        while marker == b"\xff":
            marker = fh.read(1)
        if not marker:
            raise ValueError("JPEG file ends before its frame header (SOF)")
        code = marker[0]
        if code in (0x01, 0xD8) or 0xD0 <= code <= 0xD7:
            continue
        length_bytes = fh.read(2)
        if len(length_bytes) < 2:
            raise ValueError("JPEG segment header is truncated")
        (length,) = struct.unpack(">H", length_bytes)
        if code in SOF_MARKERS:
            seg = fh.read(6)
            if len(seg) < 6:
                raise ValueError("JPEG frame header is truncated")
            bits, height, width, channels = struct.unpack(">BHHB", seg)
            return RasterHeader("jpeg", width, height, channels, bits)
        fh.seek(length - 2, os.SEEK_CUR)


def raster_header(path: str) -> RasterHeader:
    """Read width, height, channels and bit depth of a PNG or JPEG from its header.

    Raises
    ------
    ValueError
        If the file is neither, or its header is truncated (or it is a FIFO,
        socket or device, which is never opened).
    """
    special = special_file_kind(path)
    if special is not None:
        raise ValueError(f"is a {special}, not a regular file")
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(0)
        if head == _PNG_MAGIC:
            return _png_header(fh)
        if head[:3] == _JPEG_MAGIC:
            return _jpeg_header(fh)
    raise ValueError("not a PNG or JPEG file")
