"""Inference efficiency: pure forward vs ``predict_slide`` vs MONAI's sliding window, same model and tiles.

Run::

    python benchmarks/bench_infer.py                     # 2048 x 2048 region, tile 256, overlap 64
    python benchmarks/bench_infer.py --size 3072 --tile 512 --overlap 128

In one process, alternating, on the same random-init Unet/resnet18 (eval,
inference mode), the same image (a real H&E region tiled from the bundled
sample) and the same tile grid:

``forward``
    The tiles (cut up front, not timed) through the model in batches: the
    floor any tiled method pays.
``predict_slide``
    Everything: block reads with halo, tiling, batching, Gaussian blending,
    argmax, zarr writes, resume flags. Halo 0 and one block per image so the
    tiles are exactly those of ``forward``.
``monai``
    ``monai.inferers.sliding_window_inference`` with the same tile, overlap
    fraction and Gaussian blending on the image held in memory (MONAI is a
    benchmark-only dependency: ``pip install monai``).

Prints medians and the ratios predict_slide/forward and predict_slide/monai.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _bench import normalised, random_unet, sample_image


def main(argv: list[str] | None = None) -> None:
    import torch

    from napari_slideseg.infer import InferConfig, predict_slide, tile_starts
    from napari_slideseg.io.slide import slide_from_arrays

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    img = sample_image(args.size)
    slide = slide_from_arrays([img], name="bench")
    model, card = random_unet(args.tile)
    x = normalised(img, card)
    t = args.tile
    starts = tile_starts(args.size, t, args.overlap)
    tiles = torch.stack([x[:, y : y + t, xx : xx + t] for y in starts for xx in starts])

    def run_forward() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(tiles), args.batch_size):
                model(tiles[i : i + args.batch_size])
        return time.perf_counter() - t0

    def run_ours(tmp: Path, k: int) -> float:
        cfg = InferConfig(
            tile=t,
            overlap=args.overlap,
            batch_size=args.batch_size,
            block=args.size,
            halo=0,
            device="cpu",
        )
        t0 = time.perf_counter()
        predict_slide(slide, [(model, card)], tmp / f"p{k}.zarr", cfg)
        return time.perf_counter() - t0

    try:
        from monai.inferers import sliding_window_inference
    except ImportError:
        sliding_window_inference = None

    def run_monai() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = sliding_window_inference(
                x[None], (t, t), args.batch_size, model, overlap=args.overlap / t, mode="gaussian"
            )
            out.argmax(1)
        return time.perf_counter() - t0

    fw, ours, mon = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            fw.append(run_forward())
            ours.append(run_ours(Path(tmp), k))
            if sliding_window_inference is not None:
                mon.append(run_monai())
    med = statistics.median
    print(
        f"{args.size}^2 image, {len(tiles)} tiles of {t} (overlap {args.overlap}), batch {args.batch_size}, "
        f"{args.threads} threads, Unet/resnet18, medians of {args.repeats}"
    )
    print(f"forward        {med(fw):7.2f} s")
    print(
        f"predict_slide  {med(ours):7.2f} s   ratio predict_slide/forward {med(ours) / med(fw):.3f}"
    )
    if mon:
        print(
            f"monai          {med(mon):7.2f} s   ratio predict_slide/monai {med(ours) / med(mon):.3f}"
        )
    else:
        print("monai not installed: pip install monai")


if __name__ == "__main__":
    main()
