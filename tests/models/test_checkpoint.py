"""Checkpoints: safetensors + JSON round trips, refusal of tampered cards, offline factory."""

from __future__ import annotations

import json
import pickle
import time

import pytest
import torch

from napari_slideseg.models import (
    CheckpointError,
    ModelError,
    build_model,
    load_model,
    save_checkpoint,
)
from napari_slideseg.models.factory import architectures

CM = {
    "name": "binary",
    "names": ["background", "gland"],
    "colors": [[0, 0, 0], [255, 255, 255]],
    "background": 0,
}


def _model(classes=2):
    torch.manual_seed(0)
    return build_model("Unet", "resnet18", classes=classes)


def test_round_trip_weights_and_card(tmp_path, make_card):
    m = _model()
    card = make_card(CM)
    save_checkpoint(m, tmp_path / "ck", card)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "slideseg.json",
    ]
    m2, card2 = load_model(tmp_path / "ck")
    sd1, sd2 = m.state_dict(), m2.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    assert card2.replace(weights_dtype=None, n_tensors=None) == card
    assert card2.source == str((tmp_path / "ck").resolve()) and len(card2.weights_sha256) == 64
    assert json.loads((tmp_path / "ck" / "config.json").read_text())["encoder_weights"] is None


def test_half_weights_load_as_float32(tmp_path, make_card):
    m = _model()
    card = make_card(CM)
    save_checkpoint(m, tmp_path / "h", card, half=True)
    m2, card2 = load_model(tmp_path / "h")
    assert card2.weights_dtype == "float16"
    w = next(m2.parameters())
    assert w.dtype == torch.float32
    assert torch.allclose(next(m.parameters()), w, atol=1e-2)


def test_tampered_or_mismatched_cards_are_refused(tmp_path, make_card):
    m = _model()
    card = make_card(CM)
    save_checkpoint(m, tmp_path / "ck", card)
    p = tmp_path / "ck" / "slideseg.json"
    good = json.loads(p.read_text())
    bad = dict(good, classes=3)
    p.write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="outputs 3 channel"):
        load_model(tmp_path / "ck")
    bad = dict(
        good, classmap={**CM, "names": ["a", "b", "c"], "colors": [[0, 0, 0], [1, 1, 1], [2, 2, 2]]}
    )
    p.write_text(json.dumps(bad))
    with pytest.raises(CheckpointError, match="class map has 3 classes"):
        load_model(tmp_path / "ck")
    p.write_text(json.dumps(dict(good, arch="FPN")))
    with pytest.raises(CheckpointError, match="FPN"):
        load_model(tmp_path / "ck")
    p.unlink()
    with pytest.raises(CheckpointError, match="no model card"):
        load_model(tmp_path / "ck")
    # a card describing another encoder than the saved model
    other = build_model("Unet", "resnet34", classes=2)
    save_checkpoint(other, tmp_path / "o", card)
    with pytest.raises(CheckpointError, match=r"encoder 'resnet18'.*resnet34"):
        load_model(tmp_path / "o")
    # weights from another model under a consistent card and config
    save_checkpoint(m, tmp_path / "w", card)
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in other.state_dict().items()}
    save_file(state, str(tmp_path / "w" / "model.safetensors"))
    with pytest.raises(CheckpointError, match="weights do not match"):
        load_model(tmp_path / "w")


def test_pickle_files_are_not_loaded(tmp_path):
    f = tmp_path / "model.pth"
    f.write_bytes(pickle.dumps({"weights": 1}))
    with pytest.raises(CheckpointError, match="pickled"):
        load_model(f)


def test_factory_architectures_and_offline_weights():
    assert {"Unet", "UnetPlusPlus", "FPN", "DeepLabV3Plus", "Segformer"} <= set(architectures())
    m = build_model("FPN", "resnet18", classes=3).eval()
    with torch.inference_mode():
        assert m(torch.zeros(1, 3, 128, 128)).shape == (1, 3, 128, 128)
    t = time.perf_counter()
    with pytest.raises(ModelError, match="not in the local cache"):
        build_model("Unet", "resnet18", encoder_weights="imagenet")
    assert time.perf_counter() - t < 10
    with pytest.raises(ModelError, match="unknown architecture"):
        build_model("UNet3000")
