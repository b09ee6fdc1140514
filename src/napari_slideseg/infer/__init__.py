"""Tiled whole-slide inference (no Qt): blocks with a halo, blended tiles, zarr output."""

from .engine import (
    InferConfig,
    InferError,
    is_complete,
    output_levels,
    predict_block,
    predict_slide,
    predict_slide_steps,
)
from .tiles import blend_window, block_grid, region_blocks, tile_starts

__all__ = [
    "InferConfig",
    "InferError",
    "blend_window",
    "block_grid",
    "is_complete",
    "output_levels",
    "predict_block",
    "predict_slide",
    "predict_slide_steps",
    "region_blocks",
    "tile_starts",
]
