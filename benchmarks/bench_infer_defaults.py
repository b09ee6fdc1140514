"""``predict_slide`` with its defaults vs the floor: one pass of the tile grid over the slide.

Run::

    python benchmarks/bench_infer_defaults.py              # 8000 x 8000 px: 4 x 4 blocks and a rim
    python benchmarks/bench_infer_defaults.py --size 8192 --repeats 1

In one process, alternating, on the same random-init Unet/resnet18 (eval,
inference mode) and the same image (a real H&E region tiled from the bundled
sample, held in memory):

``floor``
    The minimal tile grid over the whole image with the default tile (512)
    and overlap (128), ``tile_starts(size, 512, 128)`` per axis, cut up front
    (not timed) and run through the model in batches of the default size (4).
``predict_slide``
    ``predict_slide(slide, [(model, card)], out, InferConfig(device="cpu"))``:
    every default (block unset = auto, halo unset, gaussian window, zoom
    auto at 1, batch 4, torch's default threads); block reads, tiling,
    blending, argmax, zarr writes and resume flags included.

Prints medians, the ratio predict_slide / floor, the tiles each ran, and how
the tile-count ratio varies with the slide size (a block grid pays at most one
extra tile row and column per slide, depending on the size modulo the stride).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _bench import normalised, random_unet, sample_image


def _engine_tiles(size: int, cfg) -> int:
    """Tiles ``predict_slide`` runs on a ``size`` x ``size`` level with ``cfg`` (block resolved)."""
    from napari_slideseg.infer import tile_starts
    from napari_slideseg.infer.block import _window
    from napari_slideseg.infer.tiles import region_blocks

    blocks = region_blocks((0, 0, size, size), cfg.block)
    per_axis = {}
    for y0, _, y1, _ in blocks:
        lo, hi = _window(y0, y1, cfg.halo_px, cfg.tile, size)
        per_axis[(y0, y1)] = len(tile_starts(hi - lo, cfg.tile, cfg.overlap))
    side = sum(per_axis.values())
    return side * side


def main(argv: list[str] | None = None) -> None:
    import torch

    from napari_slideseg.infer import InferConfig, predict_slide, tile_starts
    from napari_slideseg.infer.block import auto_batch_size
    from napari_slideseg.infer.config import resolved_block
    from napari_slideseg.io.slide import slide_from_arrays

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    cfg = InferConfig(device="cpu")
    t, ov = cfg.tile, cfg.overlap
    bs = cfg.batch_size or auto_batch_size("cpu", t)  # what predict_slide uses on the CPU
    img = sample_image(args.size)
    slide = slide_from_arrays([img], name="bench")  # no mpp: zoom auto runs at 1
    model, card = random_unet(t)
    x = normalised(img, card)
    starts = tile_starts(args.size, t, ov)
    coords = [(y, xx) for y in starts for xx in starts]

    def run_floor() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(coords), bs):
                batch = torch.stack([x[:, y : y + t, c : c + t] for y, c in coords[i : i + bs]])
                model(batch)
        return time.perf_counter() - t0

    def run_ours(tmp: Path, k: int) -> float:
        t0 = time.perf_counter()
        predict_slide(slide, [(model, card)], tmp / f"p{k}.zarr", cfg)
        return time.perf_counter() - t0

    floor, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            floor.append(run_floor())
            ours.append(run_ours(Path(tmp), k))
    med = statistics.median
    resolved = resolved_block(cfg.__class__(**{**cfg.to_dict(), "zoom": 1.0}))
    ours_tiles = _engine_tiles(args.size, resolved)
    nb = -(-args.size // resolved.block_px)
    print(
        f"{args.size}^2 image, defaults: tile {t}, overlap {ov}, batch {bs}, block auto = "
        f"{resolved.block_px} ({nb} x {nb} blocks), halo {resolved.halo_px}, "
        f"{torch.get_num_threads()} torch threads, Unet/resnet18, medians of {args.repeats}"
    )
    print(f"floor          {med(floor):7.2f} s   {len(coords)} tiles")
    print(
        f"predict_slide  {med(ours):7.2f} s   {ours_tiles} tiles   "
        f"ratio predict_slide/floor {med(ours) / med(floor):.3f}"
    )
    ratios = [
        _engine_tiles(s, resolved) / len(tile_starts(s, t, ov)) ** 2
        for s in range(7680, 8448 + 1, 64)
    ]
    print(
        f"tile-count ratio engine/floor for sizes 7680-8448 (step 64): "
        f"median {med(ratios):.3f}, max {max(ratios):.3f}"
    )


if __name__ == "__main__":
    main()
