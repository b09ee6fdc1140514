"""HoVer ``predict_slide``: the pipeline vs the sum and the max of its stages.

Run::

    python benchmarks/bench_hover_pipeline.py               # 3 x 3 blocks of 768 px
    python benchmarks/bench_hover_pipeline.py --blocks 4 --block 1024 --repeats 1

The bundled ``hover-nuclei`` model on a real H&E image (the bundled sample,
tiled to ``blocks * block`` pixels a side, given 0.25 µm/px so the model runs
at zoom 1), tile 256 (the model's patch size), overlap 64, one torch thread,
on this machine's cores. Alternating, in one process:

``serial``
    Every stage in the calling thread, one after the other
    (``napari_slideseg.infer.pipeline.SERIAL``), each stage timed: read
    (block pixels), forward (tiles through the model, blended), post
    (instances from the maps: watershed, table) and write (zarr chunks,
    pyramid, the block's table).
``pipeline``
    ``predict_slide(..., InferConfig(threads=1, workers=1))``: reads ahead
    on a thread, the model here, post-processing in one process, writes on
    a thread.

Prints the stage sums, the serial and pipelined wall times (medians) and the
ratios pipeline / sum(stages) and pipeline / max(stages). With the stages on
separate cores the pipeline approaches the slowest stage plus one block of
the others (the first block's forward, the last block's post-processing).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> None:
    import torch

    from napari_slideseg._sample_data import sample_slide_path
    from napari_slideseg.infer import InferConfig, pipeline, predict_slide, runners
    from napari_slideseg.infer.task import HoverTask
    from napari_slideseg.io.slide import open_slide, slide_from_arrays
    from napari_slideseg.models import resolve_model
    from napari_slideseg.models.checkpoint import load_model

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=3, help="blocks per side")
    parser.add_argument("--block", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    size = args.blocks * args.block
    src = open_slide(sample_slide_path())
    h0, w0 = src.levels[0].shape[:2]
    base = src.read_region(0, 0, 0, h0, w0)
    img = np.tile(base, (size // h0 + 1, size // w0 + 1, 1))[:size, :size]
    slide = slide_from_arrays([img], name="bench", mpp=0.25)
    model = load_model(resolve_model("hover-nuclei"))
    common = {"tile": 256, "overlap": 64, "block": args.block, "device": "cpu", "threads": 1}

    times: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                times[name] += time.perf_counter() - t0

        return wrapper

    real = (runners.read_for, pipeline.predict_block, HoverTask.compute, HoverTask.write)

    def run_serial(out: Path) -> float:
        pipeline.SERIAL = True
        runners.read_for = timed("read", real[0])
        pipeline.predict_block = timed("forward", real[1])
        HoverTask.compute = timed("post", real[2])
        HoverTask.write = timed("write", real[3])
        try:
            t0 = time.perf_counter()
            predict_slide(slide, [model], out, InferConfig(**common, workers=0))
            return time.perf_counter() - t0
        finally:
            pipeline.SERIAL = False
            runners.read_for, pipeline.predict_block, HoverTask.compute, HoverTask.write = real

    def run_pipeline(out: Path) -> float:
        t0 = time.perf_counter()
        predict_slide(slide, [model], out, InferConfig(**common, workers=1))
        return time.perf_counter() - t0

    stages: dict[str, list[float]] = defaultdict(list)
    serial, piped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeats):
            times.clear()
            serial.append(run_serial(Path(tmp) / f"s{k}.zarr"))
            for name, v in times.items():
                stages[name].append(v)
            piped.append(run_pipeline(Path(tmp) / f"p{k}.zarr"))
    med = statistics.median
    st = {name: med(v) for name, v in stages.items()}
    biggest = max(st["forward"], st["post"], st["write"])
    total = sum(st.values())
    print(
        f"hover-nuclei, {size}^2 px ({args.blocks} x {args.blocks} blocks of {args.block}), "
        f"tile 256, overlap 64, zoom 1, 1 torch thread, medians of {args.repeats}"
    )
    for name in ("read", "forward", "post", "write"):
        print(f"  stage {name:8s} {st.get(name, 0.0):7.2f} s")
    print(f"serial    {med(serial):7.2f} s   (stage sum {total:.2f} s)")
    print(
        f"pipeline  {med(piped):7.2f} s   ratio pipeline/sum {med(piped) / total:.3f}   "
        f"pipeline/max(forward, post, write) {med(piped) / biggest:.3f}"
    )


if __name__ == "__main__":
    main()
