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
    "is_complete",
    "output_levels",
    "region_blocks",
    "blend_window",
    "block_grid",
    "predict_block",
    "predict_slide",
    "predict_slide_steps",
    "tile_starts",
]
