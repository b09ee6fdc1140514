"""Pretrained encoder weights from local safetensors: key layouts, refusals, sidecar, real file."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from napari_slideseg.io.errors import SlideSegError
from napari_slideseg.models import build_model
from napari_slideseg.models.pretrained import (
    EncoderWeights,
    EncoderWeightsError,
    load_encoder_weights,
    weights_normalization,
)

REAL = Path(__file__).parents[3] / "shared" / "weights" / "mobilenet_v2_imagenet.safetensors"


def _encoder(name: str = "mobilenet_v2") -> torch.nn.Module:
    from segmentation_models_pytorch.encoders import get_encoder

    return get_encoder(name, weights=None)


@pytest.fixture(scope="module")
def source() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    enc = _encoder()
    with torch.no_grad():
        for t in enc.state_dict().values():
            if t.is_floating_point():
                t.uniform_(0.5, 1.5)  # running_var > 0, distinct from a fresh init
    return {k: v.clone() for k, v in enc.state_dict().items()}


def _assert_loaded(enc: torch.nn.Module, source: dict[str, torch.Tensor], nbt: bool = True) -> None:
    own = enc.state_dict()
    assert set(own) == set(source)
    for k, v in source.items():
        if k.endswith("num_batches_tracked") and not nbt:
            continue
        assert torch.equal(own[k], v), k


def _save(path: Path, sd: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


def test_torchvision_layout_with_classifier(tmp_path, source):
    head = {"classifier.1.weight": torch.zeros(1000, 1280), "classifier.1.bias": torch.zeros(1000)}
    path = _save(tmp_path / "mbv2.safetensors", {**source, **head})
    enc = _encoder()
    info = load_encoder_weights(enc, path)
    _assert_loaded(enc, source)
    assert isinstance(info, EncoderWeights)
    assert info.layout == "torchvision" and info.name == "mbv2.safetensors"
    assert sorted(info.dropped) == ["classifier.1.bias", "classifier.1.weight"]
    assert info.n_tensors == len(source) and info.mean is None and info.std is None
    assert json.loads(json.dumps(info.to_dict()))["dropped"] == list(info.dropped)
    # no aliasing: the encoder's tensors are not the ones of the source dict
    with torch.no_grad():
        enc.features[0][0].weight.add_(1)
    assert not torch.equal(enc.state_dict()["features.0.0.weight"], source["features.0.0.weight"])


def test_module_prefix_and_no_num_batches_tracked(tmp_path, source):
    sd = {f"module.{k}": v for k, v in source.items() if not k.endswith("num_batches_tracked")}
    sd["module.classifier.1.bias"] = torch.zeros(1000)
    sd["module.extra.scale"] = torch.ones(3)  # unexpected but harmless: reported, not loaded
    info = load_encoder_weights(enc := _encoder(), _save(tmp_path / "w.safetensors", sd))
    _assert_loaded(enc, source, nbt=False)
    assert info.dropped == ("module.classifier.1.bias", "module.extra.scale")
    assert info.n_tensors == len(sd) - 2


def test_full_smp_model_state_dict(tmp_path, source):
    model = build_model("Unet", "mobilenet_v2", classes=2, encoder_weights=None)
    model.encoder.load_state_dict(source)
    full = _save(tmp_path / "unet.safetensors", model.state_dict())
    info = load_encoder_weights(enc := _encoder(), full)
    _assert_loaded(enc, source)
    assert info.layout == "smp"
    assert info.dropped and all(
        k.startswith(("decoder.", "segmentation_head.")) for k in info.dropped
    )


def test_into_hovernet_encoder(tmp_path, source):
    from napari_slideseg.models.hovernet import HoVerNet

    net = HoVerNet(encoder_name="mobilenet_v2")
    load_encoder_weights(net.encoder, _save(tmp_path / "w.safetensors", source))
    _assert_loaded(net.encoder, source)


def test_timm_mobilenetv2_layout_matches_forward(tmp_path):
    import timm  # a dependency of segmentation-models-pytorch

    torch.manual_seed(1)
    tm = timm.create_model("mobilenetv2_100", pretrained=False).eval()
    with torch.no_grad():
        for name, t in tm.state_dict().items():
            if t.is_floating_point() and "running_var" in name:
                t.uniform_(0.5, 1.5)
            elif t.is_floating_point():
                t.normal_(0, 0.1)
    info = load_encoder_weights(
        enc := _encoder().eval(), _save(tmp_path / "t.safetensors", tm.state_dict())
    )
    assert info.layout == "timm" and sorted(info.dropped) == [
        "classifier.bias",
        "classifier.weight",
    ]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(enc(x)[-1], tm.forward_features(x))


def test_timm_resnet18_keys_equal_torchvision(tmp_path):
    import timm

    tm = timm.create_model("resnet18", pretrained=False).eval()
    info = load_encoder_weights(
        enc := _encoder("resnet18").eval(), _save(tmp_path / "r.safetensors", tm.state_dict())
    )
    assert sorted(info.dropped) == ["fc.bias", "fc.weight"]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(enc(x)[-1], tm.forward_features(x))


def test_resnet_into_mobilenet_is_refused_and_leaves_encoder(tmp_path, source):
    path = _save(tmp_path / "r18.safetensors", _encoder("resnet18").state_dict())
    enc = _encoder()
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    with pytest.raises(EncoderWeightsError) as err:
        load_encoder_weights(enc, path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and "MobileNetV2Encoder" in msg
    assert "260 missing keys" in msg and "100 unexpected keys" in msg and "(+" in msg
    assert isinstance(err.value, SlideSegError) and isinstance(err.value, ValueError)
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())


def test_single_shape_mismatch_listed(tmp_path, source):
    sd = dict(source)
    sd["features.0.0.weight"] = torch.zeros(32, 3, 5, 5)
    with pytest.raises(EncoderWeightsError) as err:
        load_encoder_weights(_encoder(), _save(tmp_path / "s.safetensors", sd))
    msg = str(err.value)
    assert (
        "1 shape mismatches: features.0.0.weight (file (32, 3, 5, 5), model (32, 3, 3, 3))" in msg
    )
    assert "missing" not in msg and "unexpected" not in msg


def test_pickle_refused_and_never_opened(tmp_path):
    path = tmp_path / "w.pth"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(EncoderWeightsError, match="pickled checkpoints are never loaded") as err:
        load_encoder_weights(_encoder(), path)
    assert str(err.value).startswith(str(path)) and "save_file" in str(err.value)
    disguised = tmp_path / "zip.safetensors"
    torch.save({"a": torch.zeros(1)}, disguised)
    with pytest.raises(EncoderWeightsError, match="pickle/zip"):
        load_encoder_weights(_encoder(), disguised)


@pytest.mark.parametrize("content", ["just some text\n", ""])
def test_not_safetensors_refused(tmp_path, content):
    path = tmp_path / "notes.safetensors"
    path.write_text(content)
    with pytest.raises(EncoderWeightsError, match="not a safetensors file") as err:
        load_encoder_weights(_encoder(), path)
    assert str(err.value).startswith(str(path))


def test_missing_file_and_directory_refused(tmp_path):
    with pytest.raises(EncoderWeightsError, match="does not exist") as err:
        load_encoder_weights(_encoder(), tmp_path / "nope.safetensors")
    assert str(err.value).startswith(str(tmp_path / "nope.safetensors"))
    with pytest.raises(EncoderWeightsError, match="is a directory"):
        load_encoder_weights(_encoder(), tmp_path)


def test_sidecar_normalization(tmp_path):
    w = tmp_path / "w.safetensors"
    side = tmp_path / "w.json"
    assert weights_normalization(w) is None
    side.write_text(json.dumps({"preprocessing": "RGB scaled to [-1, 1]"}))
    assert weights_normalization(w) == ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    side.write_text(
        json.dumps(
            {
                "preprocessing": "[-1,1]",
                "normalization": {"mean": [0.4, 0.5, 0.6], "std": [1, 2, 3]},
            }
        )
    )
    assert weights_normalization(w) == ((0.4, 0.5, 0.6), (1.0, 2.0, 3.0))
    side.write_text(json.dumps({"preprocessing": "ImageNet mean/std"}))
    assert weights_normalization(w) is None
    side.write_text(json.dumps({"normalization": {"mean": [0, 0, 0], "std": [1, 0, 1]}}))
    with pytest.raises(EncoderWeightsError, match=r"std must be 3 finite numbers, all > 0") as err:
        weights_normalization(w)
    assert str(err.value).startswith(str(side))
    side.write_text(json.dumps({"normalization": {"mean": [0, "nan", 0], "std": [1, 1, 1]}}))
    with pytest.raises(EncoderWeightsError, match="3 finite numbers"):
        weights_normalization(w)


def test_real_imagenet_mobilenet_v2():
    enc = build_model("Unet", "mobilenet_v2", classes=2, encoder_weights=None).encoder.eval()
    info = load_encoder_weights(enc, REAL)
    assert info.sha256 == hashlib.sha256(REAL.read_bytes()).hexdigest()
    assert info.layout == "torchvision" and info.n_tensors == 312
    assert sorted(info.dropped) == ["classifier.1.bias", "classifier.1.weight"]
    assert info.mean == info.std == (0.5, 0.5, 0.5)
    torch.manual_seed(0)
    x = (torch.rand(1, 3, 64, 64) - info.mean[0]) / info.std[0]  # [0, 1] -> [-1, 1]
    with torch.no_grad():
        feats = enc(x)
    assert feats[-1].shape == (1, 1280, 2, 2)
    assert all(torch.isfinite(f).all() for f in feats) and feats[-1].abs().sum() > 0
