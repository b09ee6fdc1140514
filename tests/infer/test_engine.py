"""Tiled inference: tiled == whole-image, no seams, exact resume, ensemble and TTA behave."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import zarr

from napari_slideseg import open_slide
from napari_slideseg.infer import (
    InferConfig,
    blend_window,
    predict_slide,
    predict_slide_steps,
    tile_starts,
)
from napari_slideseg.infer.block import forward
from napari_slideseg.infer.engine import InferError, is_complete
from napari_slideseg.models import build_model
from napari_slideseg.models.card import new_card

CM = {
    "name": "",
    "names": ["background", "a", "b"],
    "colors": [[0, 0, 0], [255, 0, 0], [0, 255, 0]],
    "background": 0,
}
TWO_CLASSES = {**CM, "names": ["a", "b"], "colors": [[0, 0, 0], [1, 1, 1]]}


def _model(seed=0, classes=3):
    torch.manual_seed(seed)
    m = build_model("Unet", "resnet18", classes=classes).eval()
    card = new_card(
        kind="semantic",
        arch="Unet",
        encoder="resnet18",
        in_channels=3,
        classes=classes,
        classmap=CM,
        patch_size=256,
    )
    return m, card


def test_tile_starts_cover_and_window_positive():
    for length, tile, ov in [(1000, 256, 64), (256, 256, 64), (100, 256, 64), (2048, 512, 128)]:
        s = tile_starts(length, tile, ov)
        assert s[0] == 0 and (length <= tile or s[-1] + tile == length)
        assert all(b - a <= tile - ov for a, b in itertools.pairwise(s))
    w = blend_window(64)
    assert w.min() > 0 and w[32, 32] == pytest.approx(1.0, abs=0.01) and w[0, 0] < 0.01


@pytest.fixture(scope="module")
def region_slide(tmp_path_factory, cmu_svs):
    """A 1024 x 1024 real H&E region as its own slide (keeps the whole-image pass small)."""
    from napari_slideseg.io.slide import slide_from_arrays

    s = open_slide(cmu_svs)
    return slide_from_arrays([s.read_region(0, 1200, 600, 1024, 1024)], name="cmu-region")


@pytest.fixture(scope="module")
def region_2k(cmu_svs):
    from napari_slideseg.io.slide import slide_from_arrays

    s = open_slide(cmu_svs)
    return slide_from_arrays([s.read_region(0, 0, 600, 2048, 2048)], name="cmu-2k")


@pytest.mark.slow
def test_tiled_equals_whole_image(tmp_path, region_2k):
    """2048 x 2048 real region: blocks of 1024, tiles of 512 vs one forward pass."""
    m, card = _model()
    cfg = InferConfig(tile=512, overlap=128, block=1024, batch_size=4, device="cpu")
    out = predict_slide(region_2k, [(m, card)], tmp_path / "p.zarr", cfg)
    tiled = zarr.open_group(str(out), mode="r")["labels"][:]
    img = region_2k.read_region(0, 0, 0, 2048, 2048).astype(np.float32) / 255
    x = (img - np.array(card.normalization.mean, np.float32)) / np.array(
        card.normalization.std, np.float32
    )
    with torch.inference_mode():
        whole = m(torch.from_numpy(x.transpose(2, 0, 1)[None].copy())).argmax(1)[0].numpy()
    agree = (tiled == whole).mean()
    assert agree >= 0.999, agree
    assert is_complete(out)


def test_no_seam_in_probabilities(tmp_path, region_slide):
    m, card = _model()
    cfg = InferConfig(tile=256, overlap=64, block=512, device="cpu", save_probs=True)
    out = predict_slide(region_slide, [(m, card)], tmp_path / "p.zarr", cfg)
    p = zarr.open_group(str(out), mode="r")["probs"][1].astype(np.float32)
    jump = np.abs(np.diff(p, axis=1)).mean(0)  # jump[c]: between columns c and c + 1
    # A block border (x = 512) is one more tile border: no larger a jump than where
    # tiles meet inside a block (an untrained model shows its tile edges plainly),
    # and a few times the typical jump between neighbouring columns at most.
    border = jump[511]
    inside = np.concatenate([jump[20:500], jump[524:1000]])
    assert border <= inside.max(), (border, inside.max())
    assert border <= 10 * np.median(inside) + 1e-3, (border, np.median(inside))


def test_resume_is_bit_identical(tmp_path, region_slide):
    m, card = _model()
    cfg = InferConfig(tile=256, overlap=64, block=256, device="cpu", save_probs=True)
    full = predict_slide(region_slide, [(m, card)], tmp_path / "full.zarr", cfg)
    gen = predict_slide_steps(region_slide, [(m, card)], tmp_path / "cut.zarr", cfg)
    for i, _ in enumerate(gen):
        if i == 5:
            break
    gen.close()
    assert not is_complete(tmp_path / "cut.zarr")
    with pytest.raises(InferError, match="resume"):
        predict_slide(region_slide, [(m, card)], tmp_path / "cut.zarr", cfg)
    predict_slide(region_slide, [(m, card)], tmp_path / "cut.zarr", cfg, resume=True)
    assert is_complete(tmp_path / "cut.zarr")
    a, b = (
        zarr.open_group(str(full), mode="r"),
        zarr.open_group(str(tmp_path / "cut.zarr"), mode="r"),
    )
    np.testing.assert_array_equal(a["labels"][:], b["labels"][:])
    np.testing.assert_array_equal(a["probs"][:], b["probs"][:])


class _LeftBiased(torch.nn.Module):
    """Predicts class 1 on the left half of every tile, class 0 on the right: not flip-invariant."""

    def forward(self, x):
        n, _, h, w = x.shape
        out = torch.zeros(n, 2, h, w)
        out[:, 1, :, : w // 2] = 5.0
        out[:, 0, :, w // 2 :] = 5.0
        return out


def test_tta_and_ensemble_average_probabilities(make_card):
    card = make_card(TWO_CLASSES, patch_size=64)
    x = torch.zeros(1, 3, 64, 64)
    plain = forward([(_LeftBiased(), card)], x, "none", False)
    flips = forward([(_LeftBiased(), card)], x, "flips", False)
    assert plain[0, 1, :, :32].mean() > 0.99 and plain[0, 1, :, 32:].mean() < 0.01
    # horizontal flips make the prediction symmetric: both halves move towards 0.5
    assert 0.3 < flips[0, 1, :, :32].mean() < 0.7
    assert torch.allclose(flips[0, 1, :, :32].mean(), flips[0, 1, :, 32:].mean(), atol=0.05)

    class _Zero(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 2, *x.shape[2:])

    ens = forward([(_LeftBiased(), card), (_Zero(), card)], x, "none", False)
    assert torch.allclose(ens, (plain + 0.5) / 2, atol=1e-6)


def _saved_model(tmp_path, seed=0):
    from napari_slideseg.models.checkpoint import save_checkpoint

    m, card = _model(seed)
    return save_checkpoint(m, tmp_path / f"model{seed}", card)


def test_region_blocks_align_to_chunks_and_pyramid(tmp_path, cmu_svs):
    from napari_slideseg.infer import output_levels, region_blocks

    cores = region_blocks((100, 300, 700, 1100), 512)
    assert cores[0] == (100, 300, 512, 512) and cores[-1] == (512, 1024, 700, 1100)
    assert len(cores) == 6
    assert all(c[0] // 512 == (c[2] - 1) // 512 and c[1] // 512 == (c[3] - 1) // 512 for c in cores)
    ckpt = _saved_model(tmp_path)
    slide = open_slide(cmu_svs)
    cfg = InferConfig(
        tile=256, overlap=32, block=256, device="cpu", region=(100, 300, 700, 1100), save_probs=True
    )
    out = predict_slide(slide, [ckpt], tmp_path / "p.zarr", cfg)
    levels = output_levels(out)
    assert levels[0].shape == slide.levels[0].shape[:2]
    psum = zarr.open_group(str(out), mode="r")["probs"][:].astype(np.float32).sum(0)
    np.testing.assert_allclose(psum[100:700, 300:1100], 1.0, atol=0.01)
    psum[100:700, 300:1100] = 0
    assert not psum.any()  # nothing written outside the region
    meta = zarr.open_group(str(out), mode="r").attrs["slideseg_inference"]
    assert len(levels) == len(meta["pyramid"]) + 1 >= 2
    for f, lv in zip(meta["pyramid"], levels[1:], strict=True):
        np.testing.assert_array_equal(lv[:], levels[0][:][::f, ::f])
    assert meta["complete"] and meta["versions"]["torch"]


def test_roi_polygon_skips_blocks_and_masks_pixels(tmp_path, region_slide):
    m, card = _model()
    roi = ((10.0, 10.0), (10.0, 400.0), (400.0, 10.0))  # a triangle in the top-left block
    cfg = InferConfig(tile=256, overlap=32, block=512, device="cpu", roi=roi, save_probs=True)
    steps = list(predict_slide_steps(region_slide, [(m, card)], tmp_path / "p.zarr", cfg))
    assert len(steps) == 1  # only the block the triangle touches is predicted
    root = zarr.open_group(str(tmp_path / "p.zarr"), mode="r")
    probs = root["probs"][:].astype(np.float32)
    assert probs[:, 300, 300].sum() == 0 and probs[:, 50, 50].sum() > 0.99
    assert root["labels"][600:, 600:].max() == 0


@pytest.mark.slow
def test_localcluster_equals_local_run(tmp_path, cmu_svs):
    distributed = pytest.importorskip("distributed")
    ckpt = _saved_model(tmp_path)
    slide = open_slide(cmu_svs)
    cfg = InferConfig(
        tile=256, overlap=64, block=512, device="cpu", region=(0, 0, 1024, 1536), threads=1
    )
    local = predict_slide(slide, [ckpt], tmp_path / "local.zarr", cfg)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        events = list(
            predict_slide_steps(slide, [ckpt], tmp_path / "dist.zarr", cfg, client=client)
        )
        assert len(events) == 6 and "cluster" in events[-1].message
        pids = client.run(lambda: __import__("os").getpid())
        assert len(pids) == 2
        # the CLI path: a scheduler address
        from napari_slideseg.cli import main

        args = [
            "predict",
            str(cmu_svs),
            "--model",
            str(ckpt),
            "--out",
            str(tmp_path / "cli.zarr"),
            "--tile",
            "256",
            "--overlap",
            "64",
            "--block",
            "512",
            "--device",
            "cpu",
            "--region",
            "0",
            "0",
            "1024",
            "1536",
            "--threads",
            "1",
            "--scheduler",
            cluster.scheduler_address,
            "--quiet",
        ]
        assert main(args) == 0
    c = zarr.open_group(str(tmp_path / "cli.zarr"), mode="r")
    a = zarr.open_group(str(local), mode="r")
    b = zarr.open_group(str(tmp_path / "dist.zarr"), mode="r")
    np.testing.assert_array_equal(a["labels"][:], b["labels"][:])
    np.testing.assert_array_equal(a["labels"][:], c["labels"][:])
    for f in a.attrs["slideseg_inference"]["pyramid"]:
        np.testing.assert_array_equal(a[f"pyramid/{f}"][:], b[f"pyramid/{f}"][:])
    assert is_complete(tmp_path / "dist.zarr")


def test_distributed_needs_paths(tmp_path, region_slide):
    m, card = _model()
    with pytest.raises(InferError, match="by path"):
        predict_slide(
            region_slide, [(m, card)], tmp_path / "p.zarr", InferConfig(), client=object()
        )


def test_zoom_runs_the_model_on_resampled_blocks(tmp_path, region_slide, make_card):
    """zoom=2 feeds the model twice the pixels and returns maps on the level grid."""
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape[-2:]))
            out = torch.zeros(x.shape[0], 2, *x.shape[-2:])
            out[:, 1] = x[:, 0]  # class 1 where the red channel is bright
            return out

    card = make_card(TWO_CLASSES, patch_size=128)
    cfg = InferConfig(tile=128, overlap=16, block=512, device="cpu", zoom=2.0, save_probs=True)
    out = predict_slide(region_slide, [(Spy(), card)], tmp_path / "z.zarr", cfg)
    probs = zarr.open_group(str(out), mode="r")["probs"]
    assert probs.shape == (2, 1024, 1024) and seen[0] == (128, 128)
    # about 4x the tiles of an unzoomed run (each block is 2x larger per side)
    n_zoomed = len(seen)
    seen.clear()
    predict_slide(
        region_slide,
        [(Spy(), card)],
        tmp_path / "n.zarr",
        InferConfig(tile=128, overlap=16, block=512, device="cpu"),
    )
    assert n_zoomed >= 3 * len(seen)
