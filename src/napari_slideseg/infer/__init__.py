"""Tiled whole-slide inference (no Qt): blocks with a halo, blended tiles, zarr output."""

from .engine import InferConfig, predict_block, predict_slide, predict_slide_steps
from .tiles import blend_window, block_grid, tile_starts

__all__ = [
    "InferConfig",
    "blend_window",
    "block_grid",
    "predict_block",
    "predict_slide",
    "predict_slide_steps",
    "tile_starts",
]
