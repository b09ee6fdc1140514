"""Synthetic but realistic big slides, streamed to disk (for tests and benchmarks).

A slide of any size is tiled from a handful of real H&E tiles (cut from the
bundled CC0 sample) laid out on a coarse "tissue map" of elliptical tissue
islands on a white background, like a glass slide. Each distinct tile is JPEG
encoded once and the encoded bytes are streamed into a pyramidal BigTIFF, so a
100k x 100k pyramid takes seconds to minutes and a few MB of RAM.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def tissue_map(rows: int, cols: int, seed: int = 0, islands: int = 5) -> np.ndarray:
    """A boolean ``(rows, cols)`` map of elliptical tissue islands (about 30-45 % cover).

    Parameters
    ----------
    rows, cols : int
        Map size (one cell per tile).
    seed : int
        Seeds the islands' places and sizes.
    islands : int
        Number of ellipses.

    Returns
    -------
    numpy.ndarray
        True where there is tissue.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    out = np.zeros((rows, cols), bool)
    for _ in range(islands):
        cy, cx = rng.uniform(0.2, 0.8) * rows, rng.uniform(0.2, 0.8) * cols
        ry, rx = rng.uniform(0.12, 0.3) * rows, rng.uniform(0.12, 0.3) * cols
        out |= ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1
    return out


def _source_tiles(tile: int, n: int, seed: int) -> list[np.ndarray]:
    from .sample import sample_slide_path
    from .slide import open_slide

    slide = open_slide(sample_slide_path())
    h, w = slide.levels[0].shape[:2]
    rng = np.random.default_rng(seed)
    tiles = []
    for _ in range(n):
        y = int(rng.integers(0, max(1, h - tile)))
        x = int(rng.integers(0, max(1, w - tile)))
        t = slide.read_region(0, y, x, tile, tile)
        if t.shape[:2] != (tile, tile):
            t = np.pad(t, ((0, tile - t.shape[0]), (0, tile - t.shape[1]), (0, 0)), mode="reflect")
        tiles.append(np.ascontiguousarray(t))
    return tiles


def write_synthetic_slide(
    path: str | os.PathLike,
    height: int,
    width: int,
    *,
    tile: int = 512,
    n_levels: int | None = None,
    quality: int = 85,
    mpp: float = 0.5,
    seed: int = 0,
    n_source_tiles: int = 8,
) -> Path:
    """Stream a pyramidal JPEG BigTIFF of ``height x width`` RGB pixels to ``path``.

    Parameters
    ----------
    path : str or os.PathLike
        Output file (``.tif``); written to a temporary name and renamed when complete.
    height, width : int
        Level-0 size in pixels.
    tile : int
        Tile edge in pixels (multiple of 16).
    n_levels : int, optional
        Pyramid levels (default: halve until the longest side is at most 1024).
    quality : int
        JPEG quality.
    mpp : float
        Microns per pixel written as the TIFF resolution (centimetre unit).
    seed : int
        Seeds the tissue layout and the choice of source tiles.
    n_source_tiles : int
        How many distinct tissue tiles to cut from the sample.

    Returns
    -------
    Path
        ``path``.
    """
    import imagecodecs
    import tifffile

    from .files import atomic_path

    path = Path(path)
    if n_levels is None:
        n_levels = 1 + max(0, math.ceil(math.log2(max(height, width) / 1024)))
    tissue_tiles = _source_tiles(tile, n_source_tiles, seed)
    white = np.full((tile, tile, 3), 243, np.uint8)
    # (bytes() is the encoder's own result: it returns bytes unless given an output buffer)
    encoded_tissue = [bytes(imagecodecs.jpeg8_encode(t, level=quality)) for t in tissue_tiles]
    encoded_white = bytes(imagecodecs.jpeg8_encode(white, level=quality))

    rows0, cols0 = math.ceil(height / tile), math.ceil(width / tile)
    tmap0 = tissue_map(rows0, cols0, seed)

    def level_tiles(level: int, rows: int, cols: int) -> Iterator[bytes]:
        f = 2**level
        for r in range(rows):
            for c in range(cols):
                block = tmap0[r * f : (r + 1) * f, c * f : (c + 1) * f]
                if block.any():
                    yield encoded_tissue[(r * 7 + c * 13 + level) % len(encoded_tissue)]
                else:
                    yield encoded_white

    resolution = (1e4 / mpp, 1e4 / mpp)
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        for level in range(n_levels):
            h = max(1, height >> level)
            w = max(1, width >> level)
            rows, cols = math.ceil(h / tile), math.ceil(w / tile)
            tw.write(
                level_tiles(level, rows, cols),
                shape=(h, w, 3),
                dtype=np.uint8,
                tile=(tile, tile),
                compression="jpeg",
                photometric="rgb",
                resolution=(resolution[0] / 2**level, resolution[1] / 2**level),
                resolutionunit="CENTIMETER",
                subifds=n_levels - 1 if level == 0 else None,
                subfiletype=1 if level else 0,
                metadata=None,
                software="napari-slideseg synthetic",
            )
    return path
