"""Training throughput: ``train()`` vs a bare PyTorch loop on the same model, batch and data.

Run::

    python benchmarks/bench_train.py            # GlaS patches from tests/data, Unet/resnet18
    python benchmarks/bench_train.py --steps 20 --batch-size 8 --size 256

Both paths run the same number of optimisation steps of the same smp model
(same seed, same batch size, AdamW, CE+Dice) on the same patches:

``bare``
    The patches are decoded once into memory tensors up front (not timed);
    the loop is forward, loss, backward, step. Nothing else.
``train()``
    Our loop with everything it does: PNG decoding and ``flips``
    augmentation per item through a DataLoader, progress events, the epoch's
    checkpoints (``last``, ``best``: safetensors + card), training state,
    metrics.csv and the curves plot.

The ratio ``train() / bare`` (patches/s) is the overhead of our loop, data
loading and augmentation. Medians of ``--repeats`` runs, alternated.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_patches(out: Path, size: int) -> list[str]:
    from PIL import Image

    from napari_slideseg import open_slide
    from napari_slideseg.patching import PatchConfig, extract_patches

    manifests = []
    for name in ("train_1", "train_2", "testA_1"):
        slide = open_slide(ROOT / "tests" / "data" / "glas" / f"{name}.png")
        mask = (
            np.asarray(Image.open(ROOT / "tests" / "data" / "glas" / f"{name}_mask.png")) > 0
        ).astype(np.uint8)
        extract_patches(
            slide, out / name, PatchConfig(size=size, stride=size // 2, grid="pad"), mask=mask
        )
        manifests.append(str(out / name))
    return manifests


def bare_loop(manifests: list[str], steps: int, batch: int, threads: int) -> float:
    import torch

    from napari_slideseg.dataset import PatchDataset
    from napari_slideseg.models import build_model
    from napari_slideseg.models.losses import build_loss

    torch.set_num_threads(threads)
    ds = PatchDataset.from_manifest(manifests)
    xs, ys = zip(*(ds[i] for i in range(len(ds))), strict=True)
    X, Y = torch.stack(xs), torch.stack(ys)
    torch.manual_seed(0)
    model = build_model("Unet", "resnet18", classes=2)
    loss_fn = build_loss("ce+dice", classes=2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model.train()
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, len(X), (batch,), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(X[idx]), Y[idx])
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def our_loop(manifests: list[str], steps: int, batch: int, threads: int, out: Path) -> float:
    from napari_slideseg.train import TrainConfig, train

    cfg = TrainConfig(
        manifests=manifests,
        out=str(out),
        val_fraction=0.0,
        epochs=1,
        batch_size=batch,
        max_steps=steps,
        encoder="resnet18",
        loss="ce+dice",
        augment="flips",
        scheduler="none",
        threads=threads,
        seed=0,
        bn_recalibrate=0,  # the bare loop has no BN re-estimation pass; compare like with like
    )
    t0 = time.perf_counter()
    train(cfg)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        manifests = make_patches(Path(tmp) / "patches", args.size)
        bare, ours = [], []
        for r in range(args.repeats):
            bare.append(bare_loop(manifests, args.steps, args.batch_size, args.threads))
            ours.append(
                our_loop(
                    manifests, args.steps, args.batch_size, args.threads, Path(tmp) / f"run{r}"
                )
            )
    n = args.steps * args.batch_size
    b, o = statistics.median(bare), statistics.median(ours)
    print(
        f"Unet/resnet18, {args.steps} steps x batch {args.batch_size} of {args.size}^2 GlaS patches, "
        f"{args.threads} threads, medians of {args.repeats}"
    )
    print(f"{'loop':<10} {'seconds':>8} {'patches/s':>10}")
    print(f"{'bare':<10} {b:>8.2f} {n / b:>10.2f}")
    print(f"{'train()':<10} {o:>8.2f} {n / o:>10.2f}")
    print(f"overhead train()/bare (wall time): {o / b:.3f}x")


if __name__ == "__main__":
    main()
