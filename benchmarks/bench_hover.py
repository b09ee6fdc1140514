"""HoVer post-processing: ours vs MONAI's on identical NP/HV maps (speed and PQ agreement).

Run::

    python benchmarks/bench_hover.py              # the MoNuSeg tiles (../shared/data or tests/data)
    python benchmarks/bench_hover.py --repeats 7

Maps: each MoNuSeg tile's ground-truth instances turned into HoVer targets,
then made prediction-like (NP: the binary mask blurred, so it is a soft
probability; HV: plus Gaussian noise and a blur), identical for both. Both
sides run the same recipe with the same parameters (NP >= 0.5, 21 px Sobel,
marker threshold 0.4, 5 px opening / radius-2 disk, objects < 10 px
removed) and produce an instance map plus per-instance bbox and centroid:

``ours``
    :func:`napari_slideseg.instances.postproc.hover_instances` (default
    ``normalize="fixed"``, tile independent).
``ours-tile``
    the same with the reference's min-max normalisation and marker-less
    components dropped (``normalize="tile", keep_unmarked=False``): the mode
    that should reproduce the reference recipe.
``monai``
    ``monai.apps.pathology.transforms.post.array.HoVerNetInstanceMapPostProcessing``
    (benchmark-only dependency: ``pip install monai``).

Prints median wall time per tile, Mpx/s, ours/monai speed ratios, each
method's PQ against the ground truth, and PQ agreement (MONAI's instances
as the reference).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def _tiles() -> list[tuple[str, np.ndarray]]:
    from PIL import Image

    here = Path(__file__).resolve().parent
    for d in (
        here.parent.parent / "shared" / "data" / "monuseg",
        here.parent / "tests" / "data" / "monuseg",
    ):
        files = sorted((d / "inst_maps").glob("*.png"))
        if files:
            return [
                (f.name.split("_")[0], np.asarray(Image.open(f)).astype(np.int32)) for f in files
            ]
    raise SystemExit("no MoNuSeg instance maps found")


def _prediction_like(inst: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    from napari_slideseg.instances.targets import hover_targets

    t = hover_targets(inst)
    rng = np.random.default_rng(seed)
    npm = cv2.GaussianBlur(t["np"].astype(np.float32), (5, 5), 1.5)
    hv = t["hv"] + rng.normal(0, 0.1, t["hv"].shape).astype(np.float32)
    hv = np.stack([cv2.GaussianBlur(c, (5, 5), 1.0) for c in hv]).astype(np.float32)
    return npm, hv


def main(argv: list[str] | None = None) -> None:
    import torch

    from napari_slideseg.instances.postproc import HoverParams, hover_instances
    from napari_slideseg.metrics import panoptic_quality

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        from monai.apps.pathology.transforms.post.array import HoVerNetInstanceMapPostProcessing
    except ImportError:
        raise SystemExit("MONAI is not installed: pip install monai") from None

    monai_pp = HoVerNetInstanceMapPostProcessing(
        activation="softmax",  # fed log-probabilities, so softmax gives the NP map back
        sobel_kernel_size=21,
        marker_threshold=0.4,
        marker_radius=2,
        min_object_size=10,
    )

    def run_monai(npm, hv):
        p = np.clip(npm, 1e-6, 1 - 1e-6)
        two = torch.from_numpy(np.log(np.stack([1 - p, p])).astype(np.float32))
        _info, inst = monai_pp(two, torch.from_numpy(hv))
        return np.asarray(inst)[0].astype(np.int64)

    methods = {
        "ours": lambda npm, hv: hover_instances(npm, hv)[0],
        "ours-tile": lambda npm, hv: hover_instances(
            npm, hv, params=HoverParams(normalize="tile", keep_unmarked=False)
        )[0],
        "monai": run_monai,
    }
    times = {k: [] for k in methods}
    pq_gt = {k: [] for k in methods}
    agree = {k: [] for k in methods if k != "monai"}
    mpx = 0.0
    for i, (name, inst) in enumerate(_tiles()):
        npm, hv = _prediction_like(inst, i)
        mpx += inst.size / 1e6
        outs = {}
        per = {k: [] for k in methods}
        for _ in range(args.repeats):
            for k, fn in methods.items():  # alternating, side by side
                t0 = time.perf_counter()
                outs[k] = fn(npm, hv)
                per[k].append(time.perf_counter() - t0)
        for k in methods:
            times[k].append(statistics.median(per[k]))
            pq_gt[k].append(panoptic_quality(inst, outs[k])["pq"])
        for k in agree:
            agree[k].append(panoptic_quality(outs["monai"], outs[k])["pq"])
        print(
            f"{name}: {len(np.unique(inst)) - 1} nuclei; "
            + ", ".join(f"{k} {statistics.median(per[k]):.3f} s" for k in methods)
        )
    tot = {k: sum(v) for k, v in times.items()}
    print(f"\n{len(times['ours'])} tiles, {mpx:.1f} Mpx, medians of {args.repeats} runs per tile")
    for k in methods:
        print(
            f"{k:<10} {tot[k]:7.3f} s  {mpx / tot[k]:6.2f} Mpx/s  PQ vs truth {np.mean(pq_gt[k]):.4f}"
            + (f"  PQ agreement with MONAI {np.mean(agree[k]):.4f}" if k in agree else "")
        )
    print(
        f"speed ratio monai/ours {tot['monai'] / tot['ours']:.2f}x, monai/ours-tile {tot['monai'] / tot['ours-tile']:.2f}x"
    )


if __name__ == "__main__":
    main()
