"""Training from local pretrained encoder weights, as a user runs it (CLI, widget config).

The real ImageNet MobileNetV2 file in ``../shared/weights`` (also there in CI)
is loaded into the encoder; its sidecar JSON says inputs are scaled to
[-1, 1], which the card records and inference uses.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from napari_slideseg.cli import main

WEIGHTS = Path(__file__).parents[2] / "shared" / "weights" / "mobilenet_v2_imagenet.safetensors"
GLAS = Path(__file__).parent / "data" / "glas"


@pytest.fixture(scope="module")
def patches(tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "p"
    argv = ["patch", str(GLAS / "train_1.png"), "--mask", str(GLAS / "train_1_mask.png")]
    assert main([*argv, "--out", str(out), "--size", "128", "--stride", "256", "--quiet"]) == 0
    return out


def _train(patches: Path, out: Path, *extra: str) -> int:
    argv = ["train", str(patches), "--out", str(out), "--encoder", "mobilenet_v2"]
    argv += ["--epochs", "1", "--max-steps", "1", "--device", "cpu", "--threads", "2", "--quiet"]
    return main([*argv, *extra])


def test_train_from_local_imagenet_weights(patches, tmp_path, capsys):
    from safetensors.torch import load_file

    from napari_slideseg.models.checkpoint import load_model

    run = tmp_path / "run"
    assert _train(patches, run, "--encoder-weights", str(WEIGHTS), "--lr", "1e-9") == 0
    assert "normalisation" not in capsys.readouterr().err  # the sidecar states it
    model, card = load_model(run / "best")
    assert card.normalization.mean == (0.5, 0.5, 0.5) and card.normalization.std == (0.5,) * 3
    used = card.training["encoder_weights"]
    assert used["sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert used["name"] == WEIGHTS.name and used["layout"] == "torchvision"
    assert "mobilenet_v2_imagenet" in card.training["normalization_source"]
    # the encoder starts from the file (one step at lr 1e-9 moves nothing visible)
    ref = load_file(str(WEIGHTS))["features.0.0.weight"]
    got = model.encoder.state_dict()["features.0.0.weight"]
    np.testing.assert_allclose(got.float().numpy(), ref.numpy(), atol=2e-3)


def test_weights_without_sidecar_warn_and_input_norm_overrides(patches, tmp_path, capsys):
    from napari_slideseg.models.checkpoint import load_model

    bare = tmp_path / "bare.safetensors"
    shutil.copy(WEIGHTS, bare)  # no bare.json beside it
    assert _train(patches, tmp_path / "a", "--encoder-weights", str(bare)) == 0
    err = capsys.readouterr().err
    assert "slideseg: warning:" in err and str(bare) in err and "--input-norm" in err
    assert load_model(tmp_path / "a" / "best")[1].normalization.mean == (0.485, 0.456, 0.406)
    argv = ["--encoder-weights", str(bare), "--input-norm", "unit"]
    assert _train(patches, tmp_path / "b", *argv) == 0
    assert "normalisation" not in capsys.readouterr().err
    assert load_model(tmp_path / "b" / "best")[1].normalization.mean == (0.5, 0.5, 0.5)


@pytest.mark.parametrize(
    ("encoder", "weights", "words"),
    [
        ("resnet18", str(WEIGHTS), ["do not fit encoder", "100 missing keys", "conv1.weight"]),
        (
            "mobilenet_v2",
            "imagenet",
            ["imagenet: encoder_weights: no such file", "never downloaded"],
        ),
    ],
)
def test_weights_that_do_not_fit_leave_nothing(patches, tmp_path, capsys, encoder, weights, words):
    run = tmp_path / "run"
    argv = ["train", str(patches), "--out", str(run), "--encoder", encoder]
    assert main([*argv, "--encoder-weights", weights, "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(w in err for w in words), err
    assert not run.exists()


def test_pickled_weights_are_refused(patches, tmp_path, capsys):
    pth = tmp_path / "encoder.pth"
    pth.write_bytes(b"\x80\x04not really")
    argv = ["train", str(patches), "--out", str(tmp_path / "r"), "--encoder", "mobilenet_v2"]
    assert main([*argv, "--encoder-weights", str(pth), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(pth) in err and "pickle" in err and "safetensors" in err


@pytest.mark.viewer
def test_training_widget_field_sets_the_weights(make_napari_viewer, tmp_path):
    from napari_slideseg._widgets.train_widget import TrainWidget

    w = TrainWidget(make_napari_viewer())
    w.folders.value = str(tmp_path)
    w.out.value = str(tmp_path / "run")
    assert w.config().encoder_weights is None  # empty field: random initialisation
    w.encoder.value = "mobilenet_v2"
    w.encoder_weights.value = str(WEIGHTS)
    cfg = w.config()
    assert cfg.encoder_weights == str(WEIGHTS) and cfg.input_norm == "auto"
    assert json.loads(json.dumps(cfg.to_dict()))["encoder_weights"] == str(WEIGHTS)
