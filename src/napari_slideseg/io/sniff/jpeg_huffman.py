"""Huffman-decoding check of a JPEG's entropy-coded data (what libjpeg only warns about).

Standard library only at import time (numpy is imported on the first
window of data decoded), so the npe2 hook that imports
:mod:`napari_slideseg.io.sniff` stays light.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

from .formats import SOF_MARKERS
from .jpeg_structure import SEQUENTIAL_HUFFMAN, ceil_div, jpeg_damage, next_marker

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
    coding = _Coding()
    try:
        for stream in (tables, data):
            stop, problem = _check_stream(stream, coding)
            if stop:
                return problem
    except ValueError as err:
        return str(err)
    except (IndexError, struct.error):
        return None  # a broken structure: jpeg_damage names it
    return None


#: A baseline frame: ``(precision, height, width, {component id: (h, v) sampling})``.
Frame = tuple[int, int, int, dict[int, tuple[int, int]]]


@dataclass
class _Coding:
    """The tables, frame and restart interval seen so far (tables stream, then data)."""

    luts: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    frame: Frame | None = None
    interval: int = 0


def _check_stream(stream: bytes, coding: _Coding) -> tuple[bool, str | None]:
    """Walk one stream's segments, decoding its scans; returns (stop, problem).

    ``stop`` ends the whole check: a problem was found, or the stream is not
    one this check decodes (``problem`` is then ``None``).
    """
    n = len(stream)
    pos = 2 if stream[:2] == b"\xff\xd8" else 0
    while pos + 4 <= n:
        if stream[pos] != 0xFF:
            return True, None  # structure problems are jpeg_damage's to name
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
        stop, problem, pos = _use_segment(stream, pos, code, seg, coding)
        if stop:
            return True, problem
    return False, None


def _use_segment(
    stream: bytes, pos: int, code: int, seg: bytes, coding: _Coding
) -> tuple[bool, str | None, int]:
    """Take in one segment (tables, interval, frame) or decode its scan; (stop, problem, pos)."""
    if code == 0xC4:
        coding.luts.update(_huffman_lut(seg))
    elif code == 0xDD and len(seg) >= 2:
        coding.interval = struct.unpack(">H", seg[:2])[0]
    elif code in SOF_MARKERS:
        if code not in SEQUENTIAL_HUFFMAN:
            return True, None, pos
        height, width, ncomp = struct.unpack(">HHB", seg[1:6])
        comps = {seg[6 + 3 * i]: (seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15) for i in range(ncomp)}
        coding.frame = (seg[0], height, width, comps)
    elif code == 0xDA:
        if coding.frame is None or coding.frame[1] == 0:
            return True, None, pos
        problem, pos = _check_scan(stream, pos, seg, coding.frame, coding.luts, coding.interval)
        if problem:
            return True, problem, pos
    return False, None, pos


def _check_scan(
    stream: bytes,
    pos: int,
    header: bytes,
    frame: Frame,
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
        total = ceil_div(ceil_div(width * h, hmax), 8) * ceil_div(ceil_div(height * v, vmax), 8)
        plan = [(units[0][0], units[0][1], 1)]
    else:
        total = ceil_div(width, 8 * hmax) * ceil_div(height, 8 * vmax)
        plan = [(dc, ac, nb) for dc, ac, nb, _, _ in units]
    per = interval or total
    n = len(stream)
    left = total
    while left > 0:
        ff = next_marker(stream, pos)  # this interval's data ends at the next marker
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

    Parameters
    ----------
    data : bytes
        A JPEG stream (a whole file or one TIFF tile).
    tables : bytes
        The abbreviated stream with the Huffman tables of a TIFF tile
        (``JPEGTables``), or empty.

    Returns
    -------
    str or None
        The problem (:func:`jpeg_damage`'s, else
        :func:`jpeg_entropy_damage`'s); ``None`` when nothing is wrong.
    """
    return jpeg_damage(data) or jpeg_entropy_damage(data, tables)
