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
from napari_slideseg.infer.engine import InferError, _forward, is_complete
from napari_slideseg.models import build_model
from napari_slideseg.models.checkpoint import make_card

CM = {
    "name": "",
    "names": ["background", "a", "b"],
    "colors": [[0, 0, 0], [255, 0, 0], [0, 255, 0]],
    "background": 0,
}


def _model(seed=0, classes=3):
    torch.manual_seed(seed)
    m = build_model("Unet", "resnet18", classes=classes).eval()
    card = make_card(
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


def test_tiled_equals_whole_image(tmp_path, region_slide):
    m, card = _model()
    cfg = InferConfig(tile=256, overlap=64, block=512, batch_size=4, device="cpu")
    out = predict_slide(region_slide, [(m, card)], tmp_path / "p.zarr", cfg)
    tiled = zarr.open_group(str(out), mode="r")["labels"][:]
    img = region_slide.read_region(0, 0, 0, 1024, 1024).astype(np.float32) / 255
    x = (img - np.array(card["normalization"]["mean"], np.float32)) / np.array(
        card["normalization"]["std"], np.float32
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
    # jumps across block borders (x = 512) are no larger than jumps inside blocks
    border = np.abs(p[:, 512] - p[:, 511]).mean()
    inside = np.median([np.abs(p[:, c] - p[:, c - 1]).mean() for c in range(100, 1000, 37)])
    assert border <= 3 * inside + 1e-3


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


def test_tta_and_ensemble_average_probabilities():
    card = dict(
        make_card(
            kind="semantic",
            arch="Unet",
            encoder="resnet18",
            in_channels=3,
            classes=2,
            classmap={**CM, "names": ["a", "b"], "colors": [[0, 0, 0], [1, 1, 1]]},
            patch_size=64,
        )
    )
    x = torch.zeros(1, 3, 64, 64)
    plain = _forward([(_LeftBiased(), card)], x, "none", False)
    flips = _forward([(_LeftBiased(), card)], x, "flips", False)
    assert plain[0, 1, :, :32].mean() > 0.99 and plain[0, 1, :, 32:].mean() < 0.01
    # horizontal flips make the prediction symmetric: both halves move towards 0.5
    assert 0.3 < flips[0, 1, :, :32].mean() < 0.7
    assert torch.allclose(flips[0, 1, :, :32].mean(), flips[0, 1, :, 32:].mean(), atol=0.05)

    class _Zero(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 2, *x.shape[2:])

    ens = _forward([(_LeftBiased(), card), (_Zero(), card)], x, "none", False)
    assert torch.allclose(ens, (plain + 0.5) / 2, atol=1e-6)
