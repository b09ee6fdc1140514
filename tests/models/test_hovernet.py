"""The HoVer-Net model, its loss, and its checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from napari_slideseg.instances.targets import hover_target_array
from napari_slideseg.models.hovernet import HoVerNet, split_outputs
from napari_slideseg.models.losses import HOVER_WEIGHTS, HoverLoss


def test_branches_and_same_padding():
    m = HoVerNet("resnet18", n_types=5, decoder_channels=(64, 32, 16, 16, 8)).eval()
    with torch.inference_mode():
        out = m(torch.zeros(2, 3, 96, 64))
    assert out.shape == (2, 9, 96, 64)
    parts = split_outputs(out)
    assert parts["np"].shape[1] == 2 and parts["hv"].shape[1] == 2 and parts["nc"].shape[1] == 5
    m0 = HoVerNet("resnet18", n_types=0, decoder_channels=(64, 32, 16, 16, 8)).eval()
    with torch.inference_mode():
        assert "nc" not in split_outputs(m0(torch.zeros(1, 3, 64, 64)))
    with pytest.raises(ValueError, match="divisible"):
        m0(torch.zeros(1, 3, 70, 64))
    assert HOVER_WEIGHTS["hv_mse"] == 2 and HOVER_WEIGHTS["hv_msge"] == 1


@pytest.fixture(scope="module")
def consep_batch(data_dir):
    d = data_dir / "consep_patches"
    img = np.asarray(Image.open(d / "images" / "test_5_014.jpg"))[:128, :128]
    inst = np.load(d / "inst" / "test_5_014.npy")[:128, :128]
    tmap = np.asarray(Image.open(d / "type_map" / "test_5_014.png"))[:128, :128]
    y = hover_target_array(np.stack([inst, tmap], -1).astype(np.uint16))
    x = (img.astype(np.float32) / 255 - 0.5) / 0.25
    return torch.from_numpy(x.transpose(2, 0, 1)[None].copy()), torch.from_numpy(y[None])


def test_a_few_steps_lower_every_loss_term(consep_batch):
    torch.manual_seed(0)
    x, y = consep_batch
    m = HoVerNet("resnet18", n_types=5, decoder_channels=(64, 32, 16, 16, 8))
    loss = HoverLoss()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    m.train()
    first = None
    for _ in range(25):
        opt.zero_grad()
        total = loss(m(x), y)
        total.backward()
        opt.step()
        first = first or dict(loss.last)
    m.eval()
    with torch.no_grad():
        final = {k: float(v) for k, v in loss.terms(m(x), y).items()}
    assert set(first) == {"np_ce", "np_dice", "hv_mse", "hv_msge", "nc_ce", "nc_dice"}
    for k in first:
        assert final[k] < first[k], (k, first[k], final[k])


def test_hover_checkpoint_round_trip(tmp_path, make_card):
    from napari_slideseg.models import load_model, save_checkpoint

    torch.manual_seed(1)
    m = HoVerNet("resnet18", n_types=3, decoder_channels=(32, 16, 16, 8, 8)).eval()
    cm = {
        "name": "",
        "names": ["bg", "a", "b"],
        "colors": [[0, 0, 0], [1, 1, 1], [2, 2, 2]],
        "background": 0,
    }
    card = make_card(cm, kind="hover", arch="HoVerNet", classes=3, patch_size=128)
    save_checkpoint(m, tmp_path / "h", card, half=True)
    m2, card2 = load_model(tmp_path / "h")
    assert type(m2).__name__ == "HoVerNet" and card2.kind == "hover" and m2.n_types == 3
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(m(x), m2(x), atol=0.05)  # float16 weights


def test_nuclei_without_types_are_ignored_by_the_type_loss():
    from napari_slideseg.instances.targets import UNKNOWN_TYPE

    inst = np.zeros((32, 32), np.uint16)
    inst[4:12, 4:12] = 1
    y = hover_target_array(np.stack([inst, np.full_like(inst, UNKNOWN_TYPE)], -1))
    assert (y[3][inst > 0] == -1).all() and (y[3][inst == 0] == 0).all()
    out = torch.zeros(1, 7, 32, 32, requires_grad=True)
    terms = HoverLoss().terms(out, torch.from_numpy(y[None]))
    # only background pixels are type-labelled here: CE over them, finite
    assert torch.isfinite(terms["nc_ce"]) and torch.isfinite(terms["nc_dice"])
    y_all_unknown = y.copy()
    y_all_unknown[3] = -1
    t2 = HoverLoss().terms(out, torch.from_numpy(y_all_unknown[None]))
    assert float(t2["nc_ce"].detach()) == 0 and float(t2["nc_dice"].detach()) == 0


def test_shallow_resnet_encoders_store_only_the_stages_they_run(tmp_path, make_card):
    from napari_slideseg.models import build_model, load_model, save_checkpoint

    m = build_model(
        "Unet", "resnet18", classes=2, encoder_depth=4, decoder_channels=(64, 32, 16, 8)
    )
    assert not hasattr(m.encoder, "layer4") and sum(p.numel() for p in m.parameters()) < 4e6
    h = HoVerNet("resnet18", n_types=0, encoder_depth=4, decoder_channels=(32, 16, 16, 8))
    assert not hasattr(h.encoder, "layer4")
    cm = {"name": "", "names": ["a", "b"], "colors": [[0, 0, 0], [1, 1, 1]], "background": 0}
    card = make_card(cm, patch_size=64)
    save_checkpoint(m, tmp_path / "s", card)
    m2, _ = load_model(tmp_path / "s")  # the trim is applied on load too
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(m.eval()(x), m2(x), atol=1e-5)
