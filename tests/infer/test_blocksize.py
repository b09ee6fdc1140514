"""Block sizes: with the defaults every tile is computed once (counted through the engine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr

from napari_slideseg.infer import InferConfig, predict_slide, tile_starts
from napari_slideseg.infer import block as block_mod
from napari_slideseg.infer.blocksize import TileGrid, auto_block, block_overhead
from napari_slideseg.infer.config import BlockSizeWarning
from napari_slideseg.io.slide import slide_from_arrays

CM = {"name": "", "names": ["a", "b"], "colors": [[0, 0, 0], [255, 0, 0]], "background": 0}


class _Red(torch.nn.Module):
    """Class 1 where the (normalised) red channel is high: cheap and position-free."""

    def forward(self, x):
        return torch.cat([-x[:, :1], x[:, :1]], 1) * 4


def test_auto_block_is_whole_strides_for_the_defaults():
    cfg = InferConfig()
    assert cfg.halo_px == cfg.overlap // 2
    grid = TileGrid(cfg.tile, cfg.overlap, cfg.halo_px)
    b = auto_block(grid)
    assert b == 1920 and b % (cfg.tile - cfg.overlap) == 0 and b % 64 == 0
    assert grid.tiles_per_side(b) == b // (cfg.tile - cfg.overlap)
    cost, best = block_overhead(2048, grid)  # the old default: 6 tiles for 5.33 strides
    assert best == 1920 and cost == pytest.approx((6 / 2048 * 1920 / 5) ** 2)
    # at zoom 2 (a 0.25 µm/px model on a 0.5 µm/px slide) the block is in slide pixels
    g2 = TileGrid(512, 128, 64, zoom=2.0)
    b2 = auto_block(g2)
    assert (b2 * 2) % 384 == 0 and g2.tiles_per_side(b2) == b2 * 2 // 384


def _count_tiles(monkeypatch):
    seen = []
    real = block_mod.forward

    def counting(models, x, tta, use_amp):
        seen.append(int(x.shape[0]))
        return real(models, x, tta, use_amp)

    monkeypatch.setattr(block_mod, "forward", counting)
    return seen


def test_aligned_blocks_compute_no_more_tiles_than_one_grid(tmp_path, monkeypatch, make_card):
    """4 x 4 blocks of 5 strides: the tiles run equal one pass of the tile grid, and
    the labels equal a whole-image prediction in one block."""
    rng = np.random.default_rng(0)
    img = (rng.random((960, 960, 3)) * 255).astype(np.uint8)
    slide = slide_from_arrays([img], name="noise", mpp=0.5)
    model = (_Red().eval(), make_card(CM, patch_size=64))
    seen = _count_tiles(monkeypatch)
    cfg = InferConfig(tile=64, overlap=16, block=240, device="cpu", zoom=1.0)
    out = predict_slide(slide, [model], tmp_path / "a.zarr", cfg)
    floor = len(tile_starts(960, 64, 16)) ** 2
    assert sum(seen) <= floor, (sum(seen), floor)
    tiled = zarr.open_group(str(out), mode="r")["labels"][:]

    seen.clear()
    with pytest.warns(BlockSizeWarning, match="use 240"):
        predict_slide(
            slide, [model], tmp_path / "b.zarr", InferConfig(**{**cfg.to_dict(), "block": 256})
        )
    assert sum(seen) > 1.1 * floor  # a block that is not whole strides recomputes its borders

    whole = predict_slide(
        slide, [model], tmp_path / "c.zarr", InferConfig(**{**cfg.to_dict(), "block": 960})
    )
    agree = (zarr.open_group(str(whole), mode="r")["labels"][:] == tiled).mean()
    assert agree >= 0.999, agree


def test_the_auto_block_is_recorded_and_resumes(tmp_path, make_card):
    slide = slide_from_arrays([np.zeros((300, 300, 3), np.uint8)], name="flat", mpp=0.5)
    cfg = InferConfig(tile=64, overlap=16, device="cpu", zoom=1.0)
    out = predict_slide(
        slide, [(_Red().eval(), make_card(CM, patch_size=64))], tmp_path / "p.zarr", cfg
    )
    meta = zarr.open_group(str(out), mode="r").attrs["slideseg_inference"]
    block = meta["config"]["block"]
    assert block == auto_block(TileGrid(64, 16, 8)) and block % 48 == 0
    assert zarr.open_group(str(out), mode="r")["labels"].chunks == (block, block)
    # resuming with block unset finds the same prediction (the resolved block is its identity)
    predict_slide(slide, [(_Red().eval(), make_card(CM, patch_size=64))], out, cfg, resume=True)


def test_batch_size_unset_is_chosen_for_the_device(monkeypatch):
    from types import SimpleNamespace

    from napari_slideseg.infer.block import auto_batch_size

    assert InferConfig().batch_size is None
    assert auto_batch_size("cpu", 512) == 4 == auto_batch_size(torch.device("cpu"), 128)
    big = SimpleNamespace(total_memory=80 * 1024**3)
    small = SimpleNamespace(total_memory=8 * 1024**3)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda dev: big)
    assert auto_batch_size("cuda:0", 512) == 16
    assert auto_batch_size("cuda", 256) == 64 and auto_batch_size("cuda", 2048) == 1
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda dev: small)
    assert auto_batch_size("cuda", 512) == 8
    with pytest.raises(Exception, match="batch_size"):
        InferConfig(batch_size=0)
