"""JPEG stream structure checks: damage the decoder would hide (markers only).

Standard library only: the npe2 hook imports :mod:`napari_slideseg.io.sniff`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .formats import SOF_MARKERS

#: Frame markers of sequential Huffman coding (baseline and extended).
SEQUENTIAL_HUFFMAN = {0xC0, 0xC1}
#: Markers that may stand between scans or before the end of image.
_BETWEEN_SCANS = {0xC4, 0xCC, 0xDB, 0xDD, 0xDC, 0xFE} | set(range(0xE0, 0xF0))

_TRUNCATED = "the data ends before the end-of-image marker (truncated)"

#: A frame header: ``(SOF code, height, width, [(h, v) sampling per component])``.
Frame = tuple[int, int, int, list[tuple[int, int]]]


def ceil_div(a: int, b: int) -> int:
    """``a / b`` rounded up, in integers.

    Parameters
    ----------
    a, b : int
        Numerator and (positive) denominator.

    Returns
    -------
    int
        The smallest integer at least ``a / b``.
    """
    return -(-a // b)


def next_marker(data: bytes, pos: int) -> int | None:
    """Index of the next ``0xFF`` at or after ``pos`` that starts a marker, or ``None``.

    Inside entropy-coded data ``FF 00`` is a stuffed data byte and ``FF FF``
    fill; neither starts a marker.

    Parameters
    ----------
    data : bytes
        A JPEG stream.
    pos : int
        Where to start looking.

    Returns
    -------
    int or None
        The index of the marker's ``0xFF``; ``None`` when the data ends first.
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


@dataclass
class _Walk:
    """What the marker walk has seen so far."""

    frame: Frame | None = None
    interval: int = 0
    scans: int = 0
    entropy: int = 0
    restarts: int = 0


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

    Parameters
    ----------
    data : bytes
        A JPEG stream (a whole file or one TIFF tile).

    Returns
    -------
    str or None
        The problem, or ``None`` when the structure looks whole.
    """
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        return "it does not start with a JPEG start-of-image marker"
    walk = _Walk()
    problem = _walk_markers(data, walk)
    if problem:
        return problem
    if walk.frame is None:
        return "it has no frame header"
    return _size_problem(walk)


def _walk_markers(data: bytes, walk: _Walk) -> str | None:
    """Walk every segment and scan up to the end-of-image marker, filling ``walk``."""
    pos = 2
    while True:
        problem, code, pos = _marker_at(data, pos)
        if problem:
            return problem
        if code == 0xD9:
            return None
        problem, pos = _read_segment(data, pos, code, walk)
        if problem:
            return problem
        if code == 0xDA:
            problem, pos = _skip_scan_data(data, pos, walk)
            if problem:
                return problem


def _marker_at(data: bytes, pos: int) -> tuple[str | None, int, int]:
    """``(problem, code, position after the code)`` of the marker expected at ``pos``."""
    n = len(data)
    if pos >= n:
        return _TRUNCATED, 0, pos
    if data[pos] != 0xFF:
        return f"a marker is expected at byte {pos}, found {data[pos]:#04x} (corrupt)", 0, pos
    while pos < n and data[pos] == 0xFF:
        pos += 1
    if pos >= n:
        return _TRUNCATED, 0, pos
    return None, data[pos], pos + 1


def _read_segment(data: bytes, pos: int, code: int, walk: _Walk) -> tuple[str | None, int]:
    """Check the segment of marker ``code`` starting at ``pos``; returns (problem, its end)."""
    n = len(data)
    if code not in _BETWEEN_SCANS and code not in SOF_MARKERS and code not in (0xDA, 0xDD):
        return f"unexpected marker 0xff{code:02x} at byte {pos - 2} (corrupt)", pos
    if pos + 2 > n:
        return "the data ends inside a segment header (truncated)", pos
    length = struct.unpack(">H", data[pos : pos + 2])[0]
    if length < 2 or pos + length > n:
        return "the data ends inside a segment (truncated)", pos
    seg = data[pos + 2 : pos + length]
    if code in SOF_MARKERS:
        problem = _read_frame(code, seg, walk)
        if problem:
            return problem, pos
    elif code == 0xDD and len(seg) >= 2:
        walk.interval = struct.unpack(">H", seg[:2])[0]
    return None, pos + length


def _read_frame(code: int, seg: bytes, walk: _Walk) -> str | None:
    """Record the frame header ``seg`` in ``walk``; a problem when it is a second or broken one."""
    if walk.frame is not None or len(seg) < 6:
        return "it has a second or broken frame header (corrupt)"
    height, width, ncomp = struct.unpack(">HHB", seg[1:6])
    if len(seg) < 6 + 3 * ncomp:  # claims more components than the segment holds
        return "its frame header is broken (corrupt)"
    comps = [(seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15) for i in range(ncomp)]
    if not comps or any(h < 1 or v < 1 for h, v in comps):
        return "its frame header is broken (corrupt)"
    walk.frame = (code, height, width, comps)
    return None


def _skip_scan_data(data: bytes, pos: int, walk: _Walk) -> tuple[str | None, int]:
    """Skip a scan's entropy-coded data (up to the next marker that is not stuffing or RSTn).

    Counts its bytes and restart markers in ``walk``; returns (problem,
    position of the marker that ends it).
    """
    if walk.frame is None:
        return "its scan comes before the frame header (corrupt)", pos
    walk.scans += 1
    start = pos
    expect = 0
    while True:
        ff = next_marker(data, pos)
        if ff is None:
            return (
                "the data ends inside the image data, before the end-of-image marker (truncated)",
                pos,
            )
        nxt = data[ff + 1]
        if not 0xD0 <= nxt <= 0xD7:
            walk.entropy += ff - start
            return None, ff
        if nxt - 0xD0 != expect:
            return f"restart markers are out of order at byte {ff} (corrupt)", pos
        expect = (expect + 1) % 8
        walk.restarts += 1
        pos = ff + 2


def _size_problem(walk: _Walk) -> str | None:
    """Whether a one-scan sequential Huffman frame's data can hold what its header promises."""
    assert walk.frame is not None
    code, height, width, comps = walk.frame
    if not (code in SEQUENTIAL_HUFFMAN and walk.scans == 1 and height > 0 and width > 0):
        return None
    hmax = max(h for h, _ in comps)
    vmax = max(v for _, v in comps)
    blocks = sum(
        ceil_div(ceil_div(width * h, hmax), 8) * ceil_div(ceil_div(height * v, vmax), 8)
        for h, v in comps
    )
    entropy = walk.entropy
    if entropy * 8 < 2 * blocks:
        return (
            f"its header promises {width} x {height} pixels ({blocks} blocks) but its "
            f"{entropy} bytes of image data can hold at most {entropy * 4} blocks "
            "(truncated or a forged header)"
        )
    if walk.interval:
        return _restart_problem(walk, hmax, vmax)
    return None


def _restart_problem(walk: _Walk, hmax: int, vmax: int) -> str | None:
    """Whether the scan has as many restart markers as its size and interval need."""
    assert walk.frame is not None
    _, height, width, comps = walk.frame
    mcus = ceil_div(width, 8 * hmax) * ceil_div(height, 8 * vmax)
    if len(comps) == 1:
        mcus = ceil_div(width, 8) * ceil_div(height, 8)
    need = ceil_div(mcus, walk.interval) - 1
    if walk.restarts < need:
        return f"it has {walk.restarts} of the {need} restart markers its size needs (truncated)"
    return None
