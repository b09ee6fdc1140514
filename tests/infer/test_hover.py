"""Slide-scale HoVer instances through predict_slide: ownership, stitching, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import zarr
from PIL import Image

from napari_slideseg.infer import InferConfig, predict_slide, predict_slide_steps
from napari_slideseg.infer.engine import is_complete
from napari_slideseg.infer.hover import read_instance_table
from napari_slideseg.infer.task import HoverTask
from napari_slideseg.instances.postproc import hover_instances
from napari_slideseg.io.slide import slide_from_arrays


@pytest.fixture(scope="module")
def encoded(data_dir, encode_maps):
    inst = np.asarray(
        Image.open(data_dir / "monuseg" / "inst_maps" / "TCGA-KB-A93J-01A-01-TS1_inst.png")
    ).astype(np.int32)
    rgb = encode_maps(inst)
    # what the model sees after /255 (the same quantised maps for the whole-image run)
    npm = rgb[..., 0] / 255.0
    hv = np.stack([rgb[..., 1] / 255.0 * 2 - 1, rgb[..., 2] / 255.0 * 2 - 1]).astype(np.float32)
    return slide_from_arrays([rgb], name="kb-a93j-maps"), inst, npm.astype(np.float32), hv


def _ious(a, b):
    """Per-object IoU of each instance of a with its best match in b."""
    from napari_slideseg.metrics import _pairs

    nt, _, at, ap, ti, pi, inter = _pairs(a, b)
    iou = inter / (at[ti] + ap[pi] - inter)
    best = np.zeros(nt + 1)
    np.maximum.at(best, ti, iou)
    return best[1:]


def test_blocks_equal_whole_image(tmp_path, encoded, maps_model):
    """Seam test: 4 x 4 blocks of 256 px vs one whole-image post-processing."""
    slide, _, npm, hv = encoded
    whole, table = hover_instances(npm, hv)
    cfg = InferConfig(tile=256, overlap=32, block=256, device="cpu", instance_halo=64, batch_size=8)
    out = predict_slide(slide, [maps_model], tmp_path / "h.zarr", cfg)
    root = zarr.open_group(str(out), mode="r")
    tiled = root["instances"][:]
    assert tiled.dtype == np.uint32
    n_tiled = len(np.unique(tiled)) - 1
    assert n_tiled == len(table["id"])  # same count: nothing duplicated, nothing lost
    ious = _ious(whole, tiled.astype(np.int64))
    assert ious.min() >= 0.99, np.sort(ious)[:5]
    tab = read_instance_table(out)
    assert len(tab["id"]) == n_tiled and len(set(tab["id"])) == n_tiled
    assert set(tab["id"]) == set(np.unique(tiled)[1:].tolist())
    assert root["labels"][:].max() == 1 and ((root["labels"][:] > 0) == (tiled > 0)).all()
    # the owner of each nucleus is the block containing its centroid
    blocks = np.asarray(root.attrs["slideseg_inference"]["blocks"])
    stride = (2**32 - 1) // (len(blocks) + 1)
    owner = tab["id"] // stride
    by, bx = (tab["centroid_y"] // 256).astype(int), (tab["centroid_x"] // 256).astype(int)
    n_cols = int(np.ceil(1000 / 256))
    assert (owner == by * n_cols + bx).all()
    assert root.attrs["slideseg_inference"]["n_instances"] == n_tiled


def test_hover_resume_is_bit_identical(tmp_path, encoded, maps_model):
    slide, *_ = encoded
    cfg = InferConfig(tile=256, overlap=32, block=256, device="cpu", region=(0, 0, 512, 768))
    full = predict_slide(slide, [maps_model], tmp_path / "full.zarr", cfg)
    gen = predict_slide_steps(slide, [maps_model], tmp_path / "cut.zarr", cfg)
    for i, _ in enumerate(gen):
        if i == 2:
            break
    gen.close()
    assert not is_complete(tmp_path / "cut.zarr")
    # blocks run in another order on resume would still give the same map (smallest id wins)
    predict_slide(slide, [maps_model], tmp_path / "cut.zarr", cfg, resume=True)
    a = zarr.open_group(str(full), mode="r")
    b = zarr.open_group(str(tmp_path / "cut.zarr"), mode="r")
    np.testing.assert_array_equal(a["instances"][:], b["instances"][:])
    np.testing.assert_array_equal(a["labels"][:], b["labels"][:])
    assert (tmp_path / "cut.zarr" / "instances.csv").read_text() == (
        tmp_path / "full.zarr" / "instances.csv"
    ).read_text()


def _same_prediction(a_path, b_path):
    a = zarr.open_group(str(a_path), mode="r")
    b = zarr.open_group(str(b_path), mode="r")
    names = sorted(name for name, node in a.members(max_depth=None) if isinstance(node, zarr.Array))
    assert {"instances", "labels", "done"} <= set(names)
    for name in names:
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    assert (a_path / "instances.csv").read_text() == (b_path / "instances.csv").read_text()


def test_post_processing_processes_change_nothing(tmp_path, encoded, maps_model, monkeypatch):
    """HoVer post-processing in 0, 1 or 2 processes (the model running on meanwhile) gives
    the same output; a run cancelled with post-processing in flight resumes to it too."""
    from napari_slideseg.infer import pipeline

    slide, *_ = encoded
    base = {"tile": 256, "overlap": 32, "block": 256, "device": "cpu", "region": (0, 0, 512, 768)}
    model = [maps_model]
    ref = predict_slide(slide, model, tmp_path / "w0.zarr", InferConfig(**base, workers=0))
    used = []
    real_pool = pipeline._post_pool
    monkeypatch.setattr(pipeline, "_post_pool", lambda n: used.append(n) or real_pool(n))
    for n in (1, 2):
        out = predict_slide(slide, model, tmp_path / f"w{n}.zarr", InferConfig(**base, workers=n))
        _same_prediction(ref, out)
    assert used == [1, 2]
    # auto: one process per core beyond the first when there are several blocks
    predict_slide(slide, model, tmp_path / "auto.zarr", InferConfig(**base))
    assert used[-1] == pipeline.post_workers(HoverTask(), InferConfig(**base), 6) >= 0
    cut = tmp_path / "cut.zarr"
    gen = predict_slide_steps(slide, model, cut, InferConfig(**base, workers=2))
    next(gen)
    gen.close()  # blocks 2.. are in flight in the processes and the writer
    assert not is_complete(cut)
    done = zarr.open_group(str(cut), mode="r")["done"][:]
    assert 1 <= int((done == 1).sum()) < len(done)
    predict_slide(slide, model, cut, InferConfig(**base, workers=0), resume=True)
    _same_prediction(ref, cut)


@pytest.mark.parametrize("tta", ["flips", "d4"])
def test_hover_tta_keeps_hv_meaning(encoded, tta, maps_model):
    """Flip and D4 TTA of an HV-equivariant model give the plain prediction back: each
    flip and quarter turn is undone in the pixels and in what the H and V maps mean."""
    from napari_slideseg.infer.block import forward

    slide, _, _, _ = encoded
    x = torch.from_numpy(
        slide.read_region(0, 0, 0, 256, 256).transpose(2, 0, 1)[None].astype(np.float32) / 255
    )

    class HVFromCoords(torch.nn.Module):
        # predicts h = x-coordinate ramp: mirrored input must give a mirrored, negated map
        def forward(self, x):
            n, _, h, w = x.shape
            ramp = torch.linspace(-1, 1, w).expand(n, 1, h, w)
            vr = torch.linspace(-1, 1, h)[:, None].expand(n, 1, h, w)
            z = torch.zeros(n, 2, h, w)
            return torch.cat([z, ramp, vr], 1)

    plain = forward([(HVFromCoords(), maps_model[1])], x, "none", False)
    turned = forward([(HVFromCoords(), maps_model[1])], x, tta, False)
    torch.testing.assert_close(plain, turned, atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("flip", [False, True])
def test_unturned_hv_targets_match_the_untouched_ones(data_dir, k, flip):
    """HV targets of a turned (and mirrored) real instance map, brought back the way
    the engine brings back predictions, equal the targets of the original map."""
    from napari_slideseg.infer.task import HoverTask
    from napari_slideseg.instances.targets import hv_maps

    inst = np.asarray(
        Image.open(data_dir / "monuseg/inst_maps/TCGA-A7-A13E-01Z-00-DX1_inst.png")
    ).astype(np.int32)[:256, :256]
    want = torch.from_numpy(hv_maps(inst))[None]
    turned = np.rot90(inst, k)
    if flip:
        turned = turned[:, ::-1]
    hv = torch.from_numpy(hv_maps(np.ascontiguousarray(turned)))[None]
    p = torch.cat([torch.zeros_like(hv[:, :1]), hv], 1)  # NP, H, V as the model gives them
    got = HoverTask.undo_tta(p, k, flip)[:, 1:3]
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
