"""PNG files of patches: fast lossless encoding and the atomic write of one patch file.

Used by :class:`~.writers.PngPatchWriter` on its encoder threads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.files import write_bytes_atomic


def encode_png(arr: np.ndarray) -> bytes:
    """PNG bytes of a patch, tuned for speed at the same size as zlib level 6.

    zlib's RLE strategy with the Paeth filter encodes a 512 x 512 H&E patch
    about 4x faster than Pillow's default (13 ms vs 56 ms here) into a file of
    the same size; the pixels are lossless either way.

    Parameters
    ----------
    arr : numpy.ndarray
        A 2D (grey or labels) or 3D (colour) patch, uint8 or uint16; a
        boolean patch is written as 0 and 255.

    Returns
    -------
    bytes
        The PNG file.
    """
    import imagecodecs

    if arr.dtype == bool:  # a 1-bit image: 0 and 255, as it displays
        arr = arr.astype(np.uint8) * 255
    data = imagecodecs.png_encode(
        np.ascontiguousarray(arr),
        level=1,
        strategy=imagecodecs.PNG.STRATEGY.RLE,
        filter=imagecodecs.PNG.FILTER.PAETH,
    )
    return bytes(data)  # typed bytes | bytearray; bytes(b) is b itself for bytes


def write_png(path: Path, arr: np.ndarray) -> None:
    """Encode ``arr`` (:func:`encode_png`) and write it to ``path`` atomically.

    Parameters
    ----------
    path : Path
        The output file; its folder exists.
    arr : numpy.ndarray
        The patch.
    """
    write_bytes_atomic(path, encode_png(arr))
