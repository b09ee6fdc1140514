"""Checking the JPEG tiles of a TIFF level before they are decoded (damage libjpeg hides)."""

from __future__ import annotations

import os
import threading
from typing import Any

from ..errors import SlideError
from ..sniff import jpeg_damage, jpeg_problem


class JpegTileCheck:
    """Checks the JPEG tiles a read will decode (:func:`jpeg_problem`) and names a damaged one.

    Only the tiles' bytes are read (``os.pread``; they are in the OS cache
    for the decode that follows), scanned for markers and Huffman-decoded
    (no pixels): damage libjpeg would hide or only warn about is an error
    naming the tile. Each tile is checked once per open slide.

    Parameters
    ----------
    path : str
        The TIFF file.
    page : tifffile.TiffPage
        The level's page (tile offsets, byte counts, JPEG tables).
    axes : str
        The level's axis letters (where Y and X are in a read's index).
    level : int
        The level, named in errors.
    full : bool
        Huffman-decode each tile (:func:`~napari_slideseg.io.sniff.jpeg_problem`);
        ``False`` checks the markers only (:func:`~napari_slideseg.io.sniff.jpeg_damage`).

    Raises
    ------
    SlideError
        From a call, when a tile the read needs is damaged.
    """

    def __init__(self, path: str, page: Any, axes: str, level: int, full: bool = True) -> None:
        self.path = path
        self.level = level
        self.full = full
        self.offsets = [int(o) for o in page.dataoffsets]
        self.counts = [int(c) for c in page.databytecounts]
        self.tables = bytes(getattr(page, "jpegtables", None) or b"")
        # NDPI: each "tile" is one restart interval of a single JPEG stream (no SOI of its
        # own); tifffile decodes it behind the stream's header, sized to the tile.
        self.header = _ndpi_tile_header(page)
        self.th, self.tw = int(page.tilelength), int(page.tilewidth)
        self.nx = -(-int(page.imagewidth) // self.tw)
        self.ny = -(-int(page.imagelength) // self.th)
        axes = axes.upper()
        self.yi, self.xi = axes.index("Y"), axes.index("X")
        self.done: set[int] = set()
        self.lock = threading.Lock()

    def _range(self, key: Any, axis: int, size: int, n: int) -> range:
        k = key[axis] if isinstance(key, tuple) and axis < len(key) else slice(None)
        if isinstance(k, slice):
            start, stop, _ = k.indices(n * size)
        else:
            start, stop = int(k), int(k) + 1
        return range(start // size, min(n, -(-stop // size)))

    def __call__(self, key: Any) -> None:
        tiles = [
            ty * self.nx + tx
            for ty in self._range(key, self.yi, self.th, self.ny)
            for tx in self._range(key, self.xi, self.tw, self.nx)
        ]
        with self.lock:
            todo = [t for t in tiles if t not in self.done and t < len(self.offsets)]
        if not todo:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for t in todo:
                if self.counts[t] == 0:
                    continue
                data = os.pread(fd, self.counts[t], self.offsets[t])
                if self.header:
                    if len(data) >= 2 and data[-2] == 0xFF and 0xD0 <= data[-1] <= 0xD7:
                        data = data[:-2]  # the interval's restart marker ends it
                    if not data.endswith(b"\xff\xd9"):
                        data += b"\xff\xd9"
                    data = self.header + data
                problem = jpeg_problem(data, self.tables) if self.full else jpeg_damage(data)
                if problem:
                    raise SlideError(
                        self.path,
                        f"reading pixels failed: JPEG tile {t} (row {t // self.nx}, column "
                        f"{t % self.nx}) of level "
                        f"{self.level} is damaged: {problem}",
                    )
        finally:
            os.close(fd)
        with self.lock:
            self.done.update(todo)


def _ndpi_tile_header(page: Any) -> bytes:
    """The JPEG header an NDPI tile (one restart interval) decodes behind, or ``b""``.

    It is the stream's own header (tables, restart interval, scan header)
    with the frame size set to the tile's, as tifffile decodes it.
    """
    header = getattr(page, "jpegheader", None) if getattr(page, "is_ndpi", False) else None
    if not header:
        return b""
    import re
    import struct

    sof = re.search(rb"\xff[\xc0\xc1]", header)
    if sof is None:
        return b""
    out = bytearray(header)
    i = sof.start()
    out[i + 5 : i + 9] = struct.pack(">HH", int(page.tilelength), int(page.tilewidth))
    return bytes(out)
