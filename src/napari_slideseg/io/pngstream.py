"""A row-streaming PNG encoder (standard library zlib, no Pillow).

Pillow and imageio need the whole image in memory to write a PNG, which is
what makes exporting a 50k x 50k label layer impossible on a laptop. PNG
itself is a zlib stream of filtered rows, so it can be written band by band:
:class:`PngStreamWriter` takes row bands of any height and keeps only the
compressor state and one band in memory.

Supported: 8-bit grey (``L``), RGB and indexed-colour (``P``, with a
palette) images, and 16-bit grey, with optional ``tEXt`` and ``pHYs``
(physical resolution) chunks. Rows use filter type 0 (none) so the pixel
bytes are exactly what was given (what "byte-identical in pixels" needs).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from types import TracebackType

import numpy as np

from .files import temp_name

_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Bytes of compressed data gathered before an IDAT chunk is written.
_IDAT_SIZE = 1 << 20


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


class PngStreamWriter:
    """Write a PNG band by band; the file appears under its name only when complete.

    Parameters
    ----------
    path
        Output file. Data goes to a temporary sibling first and is renamed on
        :meth:`close` once every row has been written; an error or an early
        exit removes the temporary file.
    width, height
        Image size in pixels.
    mode
        ``"L"`` (grey), ``"RGB"`` or ``"P"`` (indexed colour).
    palette
        ``(n, 3)`` uint8 RGB entries for mode ``"P"`` (at most 256).
    bit_depth
        8, or 16 for mode ``"L"``.
    level
        zlib compression level (1 fast ... 9 small).
    text
        ``tEXt`` key/value pairs to record (e.g. the class map).
    ppm
        ``(x, y)`` pixels per metre, recorded in a ``pHYs`` chunk (the
        physical resolution; see :func:`~napari_slideseg.io.placement.mpp_to_ppm`).

    Examples
    --------
    >>> with PngStreamWriter("out.png", 1000, 800, "RGB") as png:  # doctest: +SKIP
    ...     for band in bands:          # (rows, 1000, 3) uint8 each
    ...         png.write_rows(band)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        mode: str = "RGB",
        *,
        palette: np.ndarray | None = None,
        bit_depth: int = 8,
        level: int = 6,
        text: dict[str, str] | None = None,
        ppm: tuple[int, int] | None = None,
    ) -> None:
        if mode not in ("L", "RGB", "P"):
            raise ValueError(f"PNG mode must be L, RGB or P, not {mode!r}")
        if bit_depth not in (8, 16) or (bit_depth == 16 and mode != "L"):
            raise ValueError("bit_depth 16 is supported for mode 'L' only")
        if width <= 0 or height <= 0 or width >= 2**31 or height >= 2**31:
            raise ValueError(f"PNG size {width} x {height} is out of range")
        phys = None
        if ppm is not None:
            px, py = (int(v) for v in ppm)
            if not (0 < px < 2**31 and 0 < py < 2**31):
                raise ValueError(f"pixels per metre {ppm} out of range")
            phys = _chunk(b"pHYs", struct.pack(">IIB", px, py, 1))  # unit 1: metre
        self.path = Path(path)
        self.width, self.height, self.mode, self.bit_depth = width, height, mode, bit_depth
        self._channels = 3 if mode == "RGB" else 1
        self._dtype = np.dtype(">u2") if bit_depth == 16 else np.dtype(np.uint8)
        self._rows = 0
        self._buf = bytearray()
        self._zlib = zlib.compressobj(level)
        self._tmp = temp_name(self.path)
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        colour_type = {"L": 0, "RGB": 2, "P": 3}[mode]
        self._fh.write(_MAGIC)
        self._fh.write(
            _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0))
        )
        if phys is not None:
            self._fh.write(phys)
        for key, value in (text or {}).items():
            self._fh.write(
                _chunk(b"tEXt", key.encode("latin-1") + b"\x00" + value.encode("latin-1"))
            )
        if mode == "P":
            if palette is None:
                raise ValueError("mode 'P' needs a palette")
            pal = np.asarray(palette, np.uint8).reshape(-1, 3)
            if not 1 <= len(pal) <= 256:
                raise ValueError(f"a PNG palette has 1 to 256 entries, not {len(pal)}")
            self._fh.write(_chunk(b"PLTE", pal.tobytes()))

    @property
    def rows_written(self) -> int:
        """Rows written so far."""
        return self._rows

    def write_rows(self, band: np.ndarray) -> None:
        """Append ``band`` below the rows so far.

        Parameters
        ----------
        band : numpy.ndarray
            ``(rows, width)`` (modes ``L`` and ``P``) or ``(rows, width, 3)``
            (``RGB``) pixels; converted to the PNG's bit depth.

        Raises
        ------
        ValueError
            For a band of another width or channel count, or rows past the height.
        """
        band = np.asarray(band)
        expected = (self.width, self._channels) if self._channels == 3 else (self.width,)
        if band.shape[1:] != expected:
            raise ValueError(
                f"band shape {band.shape} does not match a {self.mode} PNG of width {self.width}"
            )
        if self._rows + band.shape[0] > self.height:
            raise ValueError(f"more than {self.height} rows written")
        rows = np.ascontiguousarray(band.astype(self._dtype, copy=False)).reshape(band.shape[0], -1)
        filtered = np.empty((rows.shape[0], rows.shape[1] * rows.itemsize + 1), np.uint8)
        filtered[:, 0] = 0  # filter type none
        filtered[:, 1:] = rows.view(np.uint8).reshape(rows.shape[0], -1)
        self._buf += self._zlib.compress(filtered.tobytes())
        self._rows += band.shape[0]
        if len(self._buf) >= _IDAT_SIZE:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._fh.write(_chunk(b"IDAT", bytes(self._buf)))
            self._buf.clear()

    def close(self) -> Path:
        """Finish the file and move it into place; every row must have been written.

        Returns
        -------
        Path
            The PNG's path (also when it was already closed).

        Raises
        ------
        ValueError
            When fewer rows than the height were written (nothing is left on disk).
        """
        if self._fh.closed:
            return self.path
        if self._rows != self.height:
            self.abort()
            raise ValueError(
                f"PNG closed after {self._rows} of {self.height} rows; nothing written"
            )
        self._buf += self._zlib.flush()
        self._flush()
        self._fh.write(_chunk(b"IEND", b""))
        self._fh.close()
        try:
            os.replace(self._tmp, self.path)
        except BaseException:
            self._tmp.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        """Drop the partial file."""
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> PngStreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
