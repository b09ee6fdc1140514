"""Peak memory of ``predict_slide`` does not grow with the slide: 10k x 10k vs 50k x 50k.

Run::

    python benchmarks/bench_infer_memory.py            # 10000 and 50000 px squares
    python benchmarks/bench_infer_memory.py --sizes 10000 30000

Each size runs in a fresh process (so peak RSS is that run's own) over a
generated pyramidal JPEG BigTIFF of real H&E tiles (cached in
``benchmarks/.cache``). The model is a 1x1 convolution, so the run measures
the engine (block reads with halo, tiling, batching, Gaussian blending,
argmax, zarr writes of labels and the display pyramid), not a network's
activations, and 2.5 gigapixels finish in minutes on a laptop CPU. Tissue
skipping is off: every block is predicted. Prints peak RSS per size and the
ratio largest/smallest (the bar is <= 1.25).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(__file__).parent / ".cache"


def child(size: int, block: int, tile: int, overlap: int) -> None:
    import torch

    from napari_slideseg.infer import InferConfig, predict_slide
    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.io.synthetic import write_synthetic_slide
    from napari_slideseg.models.card import new_card

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"synthetic_{size}.tif"
    if not path.exists():
        write_synthetic_slide(path, size, size, tile=512, mpp=0.5)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = torch.nn.Conv2d(3, 2, 1).eval()
    cm = {"name": "", "names": ["a", "b"], "colors": [[0, 0, 0], [255, 255, 255]], "background": 0}
    card = new_card(
        kind="semantic",
        arch="Unet",
        encoder="none",
        in_channels=3,
        classes=2,
        classmap=cm,
        patch_size=tile,
    )
    slide = open_slide(path)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cfg = InferConfig(tile=tile, overlap=overlap, batch_size=8, block=block, device="cpu")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        predict_slide(slide, [(model, card)], Path(tmp) / "p.zarr", cfg)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"size": size, "peak_mb": peak, "before_mb": base, "wall_s": wall}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 50000])
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.block, args.tile, args.overlap)
        return
    rows = []
    for size in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--child",
            str(size),
            "--block",
            str(args.block),
            "--tile",
            str(args.tile),
            "--overlap",
            str(args.overlap),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"{size:>6} x {size:<6} peak RSS {r['peak_mb']:7.0f} MB "
            f"(after imports and open {r['before_mb']:.0f} MB), {r['wall_s']:.0f} s, "
            f"{size * size / r['wall_s'] / 1e6:.1f} Mpx/s"
        )
    ratio = rows[-1]["peak_mb"] / rows[0]["peak_mb"]
    print(f"peak RSS ratio {rows[-1]['size']}^2 / {rows[0]['size']}^2: {ratio:.3f} (bar <= 1.25)")


if __name__ == "__main__":
    main()
