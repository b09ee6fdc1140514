"""Cheap format sniffing from a file's first bytes (standard library only).

This module is imported by the npe2 reader hook, which napari calls for every
file a user drops on the canvas, so it must stay import-light: no numpy, no
tifffile, no dask.
"""

from __future__ import annotations

import functools
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


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


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
        if code in _SOF_MARKERS:
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


# -----------------------------------------------------------------------------
# JPEG stream checks (damage the decoder would hide)
# -----------------------------------------------------------------------------
_SEQUENTIAL_HUFFMAN = {0xC0, 0xC1}
#: Markers that may stand between scans or before the end of image.
_BETWEEN_SCANS = {0xC4, 0xCC, 0xDB, 0xDD, 0xDC, 0xFE} | set(range(0xE0, 0xF0))


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _next_marker(data: bytes, pos: int) -> int | None:
    """Index of the next ``0xFF`` at or after ``pos`` that starts a marker, or ``None``.

    Inside entropy-coded data ``FF 00`` is a stuffed data byte and ``FF FF``
    fill; neither starts a marker.
    """
    n = len(data)
    while True:
        ff = data.find(b"\xff", pos)
        if ff < 0 or ff + 1 >= n:
            return None
        nxt = data[ff + 1]
        if nxt == 0x00:
            pos = ff + 2
        elif nxt == 0xFF:
            pos = ff + 1
        else:
            return ff


def jpeg_damage(data: bytes) -> str | None:
    """What is wrong with a JPEG stream's structure, or ``None`` when nothing is seen.

    libjpeg fills missing or undecodable data with grey and says so only as a
    warning nobody sees, so a few cheap checks run on the bytes first
    (markers only, the entropy-coded data is not Huffman-decoded):

    - the data ends before the end-of-image marker (truncated);
    - a marker that cannot occur inside or between scans, or restart markers
      out of order (overwritten bytes);
    - a sequential Huffman frame whose header promises more 8 x 8 blocks than
      its data can hold: every block costs at least 2 bits (a DC and an
      end-of-block code of at least one bit each), so a header saying
      5000 x 5000 over 3 kB of data is refused;
    - fewer restart markers than the restart interval requires.

    Works for a whole file and for a TIFF tile (tables may live elsewhere).
    """
    n = len(data)
    if n < 4 or data[:2] != b"\xff\xd8":
        return "it does not start with a JPEG start-of-image marker"
    pos = 2
    frame: tuple[int, int, int, list[tuple[int, int]]] | None = None
    interval = 0
    scans = 0
    entropy = 0
    restarts = 0
    while True:
        if pos >= n:
            return "the data ends before the end-of-image marker (truncated)"
        if data[pos] != 0xFF:
            return f"a marker is expected at byte {pos}, found {data[pos]:#04x} (corrupt)"
        while pos < n and data[pos] == 0xFF:
            pos += 1
        if pos >= n:
            return "the data ends before the end-of-image marker (truncated)"
        code = data[pos]
        pos += 1
        if code == 0xD9:
            break
        if code not in _BETWEEN_SCANS and code not in _SOF_MARKERS and code not in (0xDA, 0xDD):
            return f"unexpected marker 0xff{code:02x} at byte {pos - 2} (corrupt)"
        if pos + 2 > n:
            return "the data ends inside a segment header (truncated)"
        length = struct.unpack(">H", data[pos : pos + 2])[0]
        if length < 2 or pos + length > n:
            return "the data ends inside a segment (truncated)"
        seg = data[pos + 2 : pos + length]
        if code in _SOF_MARKERS:
            if frame is not None or len(seg) < 6:
                return "it has a second or broken frame header (corrupt)"
            height, width, ncomp = struct.unpack(">HHB", seg[1:6])
            comps = [(seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15) for i in range(ncomp)]
            if len(seg) < 6 + 3 * ncomp or not comps or any(h < 1 or v < 1 for h, v in comps):
                return "its frame header is broken (corrupt)"
            frame = (code, height, width, comps)
        elif code == 0xDD and len(seg) >= 2:
            interval = struct.unpack(">H", seg[:2])[0]
        pos += length
        if code != 0xDA:
            continue
        if frame is None:
            return "its scan comes before the frame header (corrupt)"
        scans += 1
        start = pos
        expect = 0
        while True:  # entropy-coded data: up to the next marker that is not stuffing or RSTn
            ff = _next_marker(data, pos)
            if ff is None:
                return "the data ends inside the image data, before the end-of-image marker (truncated)"
            nxt = data[ff + 1]
            if 0xD0 <= nxt <= 0xD7:
                if nxt - 0xD0 != expect:
                    return f"restart markers are out of order at byte {ff} (corrupt)"
                expect = (expect + 1) % 8
                restarts += 1
                pos = ff + 2
                continue
            entropy += ff - start
            pos = ff
            break
    if frame is None:
        return "it has no frame header"
    code, height, width, comps = frame
    if code in _SEQUENTIAL_HUFFMAN and scans == 1 and height > 0 and width > 0:
        hmax = max(h for h, _ in comps)
        vmax = max(v for _, v in comps)
        blocks = sum(
            _ceil(_ceil(width * h, hmax), 8) * _ceil(_ceil(height * v, vmax), 8) for h, v in comps
        )
        if entropy * 8 < 2 * blocks:
            return (
                f"its header promises {width} x {height} pixels ({blocks} blocks) but its "
                f"{entropy} bytes of image data can hold at most {entropy * 4} blocks "
                "(truncated or a forged header)"
            )
        if interval:
            mcus = _ceil(width, 8 * hmax) * _ceil(height, 8 * vmax)
            if len(comps) == 1:
                mcus = _ceil(width, 8) * _ceil(height, 8)
            need = _ceil(mcus, interval) - 1
            if restarts < need:
                return f"it has {restarts} of the {need} restart markers its size needs (truncated)"
    return None


# -----------------------------------------------------------------------------
# JPEG entropy-coded data check (what libjpeg only warns about)
# -----------------------------------------------------------------------------
#: Bytes of entropy-coded data decoded per window list (bounds the check's memory).
_WINDOW_BYTES = 1 << 20


@functools.lru_cache(maxsize=32)
def _huffman_lut(seg: bytes) -> dict[tuple[int, int], list[int]]:
    """``(class, id) -> 65536-entry lookup`` from one DHT segment's tables.

    An entry is ``length << 8 | symbol`` for every 16-bit value starting with
    that code, 0 where no code matches. Cached: every tile of a TIFF page
    shares the page's tables (callers copy the dict's items, never change them).
    """
    out = {}
    pos = 0
    while pos + 17 <= len(seg):
        tc, th = seg[pos] >> 4, seg[pos] & 15
        counts = seg[pos + 1 : pos + 17]
        total = sum(counts)
        symbols = seg[pos + 17 : pos + 17 + total]
        if len(symbols) < total:
            raise ValueError("its Huffman table is cut short (corrupt)")
        lut = [0] * 65536
        code = k = 0
        for length in range(1, 17):
            for _ in range(counts[length - 1]):
                if code >= 1 << length:
                    raise ValueError("its Huffman table is over-full (corrupt)")
                lo = code << (16 - length)
                hi = (code + 1) << (16 - length)
                lut[lo:hi] = [length << 8 | symbols[k]] * (hi - lo)
                code += 1
                k += 1
            code <<= 1
        out[(tc, th)] = lut
        pos += 17 + total
    return out


class _Bits:
    """Peek 16 bits at any position of unstuffed entropy data (1-bit padded at the end)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.nbits = 8 * len(data)
        self.base = -1
        self.words: list[int] = []

    def peek(self, pos: int) -> int:
        i = pos >> 3
        j = i - self.base
        if self.base < 0 or j < 0 or j >= _WINDOW_BYTES:
            import numpy as np

            self.base, j = i, 0
            chunk = self.data[i : i + _WINDOW_BYTES + 4] + b"\xff\xff\xff\xff"
            b = np.frombuffer(chunk, np.uint8).astype(np.uint32)
            self.words = (b[:-3] << 24 | b[1:-2] << 16 | b[2:-1] << 8 | b[3:]).tolist()
        return (self.words[j] >> (16 - (pos & 7))) & 0xFFFF


def _decode_interval(
    bits: _Bits, units: list[tuple[list[int], list[int], int]], mcus: int, precision: int = 8
) -> str | None:
    """Huffman-decode ``mcus`` MCUs (each: per component, DC/AC lookups and block count)."""
    pos, end = 0, bits.nbits
    dc_max, ac_max = precision + 3, precision + 2
    for _ in range(mcus):
        for dc, ac, nblocks in units:
            for _ in range(nblocks):
                e = dc[bits.peek(pos)]
                if not e:
                    return "a Huffman code in its image data is invalid (corrupt)"
                s = e & 255
                if s > dc_max:
                    return "a DC difference in its image data is out of range (corrupt)"
                pos += (e >> 8) + s
                k = 1
                while k < 64:
                    e = ac[bits.peek(pos)]
                    if not e:
                        return "a Huffman code in its image data is invalid (corrupt)"
                    pos += e >> 8
                    rs = e & 255
                    r, s = rs >> 4, rs & 15
                    if s == 0:
                        if r != 15:
                            break
                        k += 16
                        continue
                    k += r
                    if k > 63 or s > ac_max:
                        return "a coefficient in its image data is out of range (corrupt)"
                    pos += s
                    k += 1
                if k > 64:
                    return "a run of zeros in its image data passes the block end (corrupt)"
                if pos > end:
                    return "its image data ends before the last block (corrupt or truncated)"
    if end - pos >= 8:
        return (
            f"{(end - pos) // 8} byte(s) of its image data are left over after the last "
            "block (corrupt)"
        )
    return None


def jpeg_entropy_damage(data: bytes, tables: bytes = b"") -> str | None:
    """Huffman-decode a baseline JPEG's image data and say what is wrong, or ``None``.

    libjpeg decodes damaged image data (flipped or overwritten bytes with the
    markers intact) into garbage, or fills the rest with grey, and reports it
    only as a warning ("Corrupt JPEG data: bad Huffman code", "premature end
    of data segment", "N extraneous bytes before marker") that neither
    imagecodecs nor Pillow passes on. This decodes every block's Huffman
    codes (not the pixels) and checks what libjpeg checks: every code is
    valid, every restart interval and scan holds exactly its blocks, no
    coefficient runs past its block.

    Parameters
    ----------
    data
        A JPEG stream (a whole file or one TIFF tile).
    tables
        An abbreviated JPEG holding the Huffman tables (TIFF ``JPEGTables``)
        when the stream has none of its own.

    Returns
    -------
    str or None
        The problem, or ``None`` when the data decodes cleanly or the frame
        is not baseline sequential Huffman (progressive and arithmetic
        coding are not checked).

    Notes
    -----
    About 0.5 µs per Huffman code in CPython: ~10 ms for a 256 x 256 tile.
    Run :func:`jpeg_damage` first (marker structure, truncation).
    """
    luts: dict[tuple[int, int], list[int]] = {}
    frame = None
    interval = 0
    try:
        for stream in (tables, data):
            n = len(stream)
            pos = 2 if stream[:2] == b"\xff\xd8" else 0
            while pos + 4 <= n:
                if stream[pos] != 0xFF:
                    return None  # structure problems are jpeg_damage's to name
                code = stream[pos + 1]
                if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
                    pos += 2
                    continue
                if code == 0xFF:
                    pos += 1
                    continue
                if code == 0xD9:
                    break
                length = struct.unpack(">H", stream[pos + 2 : pos + 4])[0]
                seg = stream[pos + 4 : pos + 2 + length]
                pos += 2 + length
                if code == 0xC4:
                    luts.update(_huffman_lut(seg))
                elif code == 0xDD and len(seg) >= 2:
                    interval = struct.unpack(">H", seg[:2])[0]
                elif code in _SOF_MARKERS:
                    if code not in _SEQUENTIAL_HUFFMAN:
                        return None
                    height, width, ncomp = struct.unpack(">HHB", seg[1:6])
                    frame = (
                        seg[0],
                        height,
                        width,
                        {
                            seg[6 + 3 * i]: (seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15)
                            for i in range(ncomp)
                        },
                    )
                elif code == 0xDA:
                    if frame is None or frame[1] == 0:
                        return None
                    problem, pos = _check_scan(stream, pos, seg, frame, luts, interval)
                    if problem:
                        return problem
    except ValueError as err:
        return str(err)
    except (IndexError, struct.error):
        return None  # a broken structure: jpeg_damage names it
    return None


def _check_scan(
    stream: bytes,
    pos: int,
    header: bytes,
    frame: tuple[int, int, int, dict[int, tuple[int, int]]],
    luts: dict[tuple[int, int], list[int]],
    interval: int,
) -> tuple[str | None, int]:
    """Decode one scan's intervals; returns (problem, position after its data)."""
    precision, height, width, comps = frame
    hmax = max(h for h, _ in comps.values())
    vmax = max(v for _, v in comps.values())
    units = []
    for i in range(header[0]):
        cid, sel = header[1 + 2 * i], header[2 + 2 * i]
        if cid not in comps:
            raise ValueError("its scan names a component the frame does not have (corrupt)")
        dc, ac = luts.get((0, sel >> 4)), luts.get((1, sel & 15))
        if dc is None or ac is None:
            raise ValueError("its scan uses a Huffman table it does not define (corrupt)")
        h, v = comps[cid]
        units.append((dc, ac, h * v, h, v))
    if len(units) == 1:
        _, _, _, h, v = units[0]
        total = _ceil(_ceil(width * h, hmax), 8) * _ceil(_ceil(height * v, vmax), 8)
        plan = [(units[0][0], units[0][1], 1)]
    else:
        total = _ceil(width, 8 * hmax) * _ceil(height, 8 * vmax)
        plan = [(dc, ac, nb) for dc, ac, nb, _, _ in units]
    per = interval or total
    n = len(stream)
    left = total
    while left > 0:
        ff = _next_marker(stream, pos)  # this interval's data ends at the next marker
        if ff is None:
            return None, n  # truncated: jpeg_damage names it
        chunk = stream[pos:ff].replace(b"\xff\x00", b"\xff")
        problem = _decode_interval(_Bits(chunk), plan, min(per, left), precision)
        if problem:
            at = total - left
            where = f" (restart interval from MCU {at})" if interval else ""
            return problem + where, ff
        left -= min(per, left)
        pos = ff + 2 if 0xD0 <= stream[ff + 1] <= 0xD7 else ff
    return None, pos


def jpeg_problem(data: bytes, tables: bytes = b"") -> str | None:
    """What is wrong with a JPEG stream: its markers (:func:`jpeg_damage`), then its codes.

    ``tables`` is the abbreviated stream with the Huffman tables of a TIFF
    tile (``JPEGTables``). ``None`` when nothing is wrong.
    """
    return jpeg_damage(data) or jpeg_entropy_damage(data, tables)
