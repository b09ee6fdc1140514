"""GPU throughput at the defaults: tiles/s for Unet-resnet34 at 512², HoVer s/mm² at 0.25 µm/px.

Run (on a machine with CUDA; elsewhere it says so and exits 0)::

    python benchmarks/bench_gpu.py
    python benchmarks/bench_gpu.py --size 12288 --hover-size 8192

``semantic``
    ``predict_slide`` with every default on CUDA (tile 512, overlap 128,
    block auto, batch auto, AMP) over a ``size``² real H&E image with a
    random-init Unet/resnet34; reported as tiles of 512 per second (the
    tiles the engine ran, from the block plan) and as the forward-only floor
    over the same number of tiles in batches of the same size.
``hover``
    The bundled ``hover-nuclei`` model with every default (zoom 1: the image
    is given 0.25 µm/px, the model's resolution; post-processing workers
    auto) over a ``hover-size``² image: seconds per mm² of tissue.

Medians of ``--repeats`` runs after one warm-up each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _bench import sample_image


def main(argv: list[str] | None = None) -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--hover-size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured (this benchmark needs a GPU)")
        return

    from bench_infer_defaults import _engine_tiles
    from napari_slideseg.infer import InferConfig, predict_slide
    from napari_slideseg.infer.block import auto_batch_size
    from napari_slideseg.infer.config import resolved_block
    from napari_slideseg.io.slide import slide_from_arrays
    from napari_slideseg.models import build_model, resolve_model
    from napari_slideseg.models.card import new_card
    from napari_slideseg.models.checkpoint import load_model

    med = statistics.median
    cm = {"name": "", "names": ["a", "b"], "colors": [[0, 0, 0], [255, 255, 255]], "background": 0}
    card = new_card(
        kind="semantic",
        arch="Unet",
        encoder="resnet34",
        in_channels=3,
        classes=2,
        classmap=cm,
        patch_size=512,
    )
    model = build_model("Unet", "resnet34", classes=2).eval()
    slide = slide_from_arrays([sample_image(args.size)], name="bench")
    cfg = InferConfig(device="cuda")
    tiles = _engine_tiles(args.size, resolved_block(InferConfig(zoom=1.0)))
    batch = auto_batch_size("cuda", cfg.tile)

    def timed(fn) -> float:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            timed(lambda k=k: predict_slide(slide, [(model, card)], Path(tmp) / f"s{k}.zarr", cfg))
            for k in range(args.repeats + 1)
        ][1:]
        gpu = model.cuda()
        x = torch.randn(batch, 3, 512, 512, device="cuda")

        def floor() -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
                for _ in range(-(-tiles // batch)):
                    gpu(x)

        floors = [timed(floor) for _ in range(args.repeats + 1)][1:]
        print(f"{torch.cuda.get_device_name()}, Unet/resnet34, {args.size}^2, batch {batch}, AMP")
        print(
            f"predict_slide  {tiles / med(runs):8.1f} tiles/s ({med(runs):.2f} s, {tiles} tiles); "
            f"forward floor {tiles / med(floors):8.1f} tiles/s"
        )

        hover = load_model(resolve_model("hover-nuclei"))
        hslide = slide_from_arrays([sample_image(args.hover_size)], name="bench", mpp=0.25)
        hcfg = InferConfig(device="cuda")
        hruns = [
            timed(lambda k=k: predict_slide(hslide, [hover], Path(tmp) / f"h{k}.zarr", hcfg))
            for k in range(args.repeats + 1)
        ][1:]
        mm2 = (args.hover_size * 0.25 / 1000) ** 2
        print(f"hover-nuclei   {med(hruns) / mm2:8.2f} s/mm² ({mm2:.2f} mm² at 0.25 µm/px)")


if __name__ == "__main__":
    main()
