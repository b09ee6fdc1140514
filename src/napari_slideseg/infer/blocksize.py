"""Block sizes that put every tile on one grid, so no tile is computed twice.

A block reads its core plus a halo and cuts that into tiles spaced
``tile - overlap`` apart (:func:`~napari_slideseg.infer.tiles.tile_starts`).
With the default halo (half the overlap) a core that is a whole number of
strides long is covered by exactly that many tiles, and its tiles continue
the grid of the block beside it: a block border is one more tile border, and
the slide costs what one pass of the tile grid over it costs. A block of any
other length needs one more tile row and column than its area does; those
tiles are the ones that neighbouring blocks compute again.

:func:`auto_block` picks that length near :data:`AUTO_BLOCK` (and a multiple
of :data:`BLOCK_ALIGN`, so the label pyramid has levels);
:func:`block_overhead` says what a given block costs against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .tiles import tile_starts

#: The block side (level pixels) ``block=None`` aims at.
AUTO_BLOCK = 2048
#: The block sides ``block=None`` chooses from.
AUTO_BLOCK_RANGE = (1536, 2304)
#: Auto blocks are multiples of this, so the pyramid's factors (2, 4, ... 32) divide them.
BLOCK_ALIGN = 64
#: An explicit block costing more than this (tiles per pixel, relative) warns.
OVERHEAD_WARN = 1.05


@dataclass(frozen=True)
class TileGrid:
    """What decides how many tiles a block needs.

    Attributes
    ----------
    tile, overlap, halo : int
        Model pixels (``halo`` is what a block reads around its extent).
    zoom : float
        Model pixels per level pixel.
    margin : int
        Level pixels the task predicts around each core (HoVer's instance halo).
    """

    tile: int
    overlap: int
    halo: int
    zoom: float = 1.0
    margin: int = 0

    def tiles_per_side(self, block: int) -> int:
        """Tiles along one side of an interior block of ``block`` level pixels."""
        read = block + 2 * self.margin + 2 * math.ceil(self.halo / self.zoom)
        return len(tile_starts(round(read * self.zoom), self.tile, self.overlap))

    def cost(self, block: int) -> float:
        """Tiles per level pixel of an interior block of side ``block``."""
        return (self.tiles_per_side(block) / block) ** 2


def auto_block(grid: TileGrid, near: int | None = None) -> int:
    """The block side with the fewest tiles per pixel in :data:`AUTO_BLOCK_RANGE`.

    Ties go to the side nearest :data:`AUTO_BLOCK`. For the defaults (tile 512,
    overlap 128, zoom 1) that is 1920: five strides of 384.

    Parameters
    ----------
    grid : TileGrid
        Tile, overlap, halo, zoom and margin.
    near : int or None
        Choose within a quarter of this side instead (what a given block is
        compared with).

    Returns
    -------
    int
        Level pixels; a multiple of :data:`BLOCK_ALIGN` unless ``near`` is small.
    """
    aim = AUTO_BLOCK if near is None else near
    lo, hi = AUTO_BLOCK_RANGE if near is None else (near * 3 // 4, near * 5 // 4)
    step = BLOCK_ALIGN if lo >= 4 * BLOCK_ALIGN else max(1, lo // 8)
    sides = range(max(step, lo // step * step), hi + 1, step)
    return min(sides, key=lambda b: (round(grid.cost(b), 15), abs(b - aim), b))


def block_overhead(block: int, grid: TileGrid) -> tuple[float, int]:
    """Tiles per pixel of ``block`` over those of the best block near it, and that block.

    Parameters
    ----------
    block : int
        Level pixels.
    grid : TileGrid

    Returns
    -------
    tuple of (float, int)
    """
    best = auto_block(grid, near=block)
    return grid.cost(block) / grid.cost(best), best
