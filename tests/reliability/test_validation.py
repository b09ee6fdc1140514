"""Bad option values through the API config objects and the shared validators.

Every refusal is a SlideSegError and a ValueError whose message names the
option, the allowed range and the value given.
"""

from __future__ import annotations

import math

import pytest

from napari_slideseg import validate as v
from napari_slideseg.io.errors import SlideSegError
from napari_slideseg.patching import PatchConfig, PatchError


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: v.positive_int("stride", 0), "stride must be an integer >= 1, not 0"),
        (lambda: v.positive_int("stride", 2.5), "stride must be an integer >= 1, not 2.5"),
        (lambda: v.positive_int("stride", True), "stride must be an integer >= 1, not True"),
        (lambda: v.nonneg_int("level", -1), "level must be an integer >= 0, not -1"),
        (
            lambda: v.int_in_range("encoder_depth", "four", 3, 5),
            "encoder_depth must be an integer in [3, 5], not 'four'",
        ),
        (
            lambda: v.fraction("val_fraction", 1.5, hi_open=True),
            "val_fraction must be a number in [0, 1), not 1.5",
        ),
        (lambda: v.fraction("min_tissue", math.nan), "min_tissue must be a number in [0, 1]"),
        (lambda: v.positive("lr", 0), "lr must be a number > 0, not 0"),
        (lambda: v.nonneg("weight_decay", -1e-4), "weight_decay must be a number >= 0"),
        (lambda: v.choice("grid", "full", ("valid", "pad")), "grid must be one of 'valid', 'pad'"),
        (
            lambda: v.positive_numbers("class_weights", [1, -2]),
            "class_weights[1] must be a number > 0, not -2",
        ),
        (
            lambda: v.positive_numbers("class_weights", [1, 2], length=3),
            "class_weights must have 3 values",
        ),
    ],
)
def test_validators_name_option_range_and_value(call, message):
    with pytest.raises(v.OptionError) as exc:
        call()
    assert isinstance(exc.value, SlideSegError) and isinstance(exc.value, ValueError)
    assert message in str(exc.value)


def test_validators_return_converted_values():
    assert v.positive_int("size", 4.0) == 4
    assert v.fraction("x", 1) == 1.0
    assert v.positive_numbers("w", (1, 2.5)) == [1.0, 2.5]


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"stride": 0}, "stride must be an integer >= 1, not 0"),
        ({"size": -4}, "size must be an integer >= 1, not -4"),
        ({"size": "big"}, "size must be an integer >= 1, not 'big'"),
        ({"level": -1}, "level must be an integer >= 0, not -1"),
        ({"zoom": 0}, "zoom must be a number > 0, not 0"),
        ({"zoom": math.inf}, "zoom must be a number > 0"),
        ({"mpp": -0.5}, "mpp must be a number > 0"),
        ({"min_tissue": 5}, "min_tissue must be a number in [0, 1], not 5"),
        ({"max_black": -0.1}, "max_black must be a number in [0, 1]"),
        ({"max_white": 2}, "max_white must be a number in [0, 1]"),
        ({"keep_background": 1.5}, "keep_background must be a number in [0, 1]"),
        ({"pad_value": -1}, "pad_value must be an integer in [0, 65535], not -1"),
        ({"tissue_level": -2}, "tissue_level must be an integer >= 0, not -2"),
        ({"grid": "full"}, "grid must be one of 'valid', 'pad', not 'full'"),
        ({"pad_mode": "wrap"}, "pad_mode must be one of"),
        ({"region": (0, 0, 10)}, "region must be four integers"),
        ({"region": (10, 0, 5, 20)}, "y1 > y0"),
        ({"region": (-5, 0, 5, 20)}, "region must be an integer >= 0, not -5"),
        ({"drop_background": "yes"}, "drop_background must be true or false"),
    ],
)
def test_patch_config_refuses(kwargs, option):
    with pytest.raises(PatchError) as exc:
        PatchConfig(**kwargs)
    assert option in str(exc.value)


def test_patch_config_accepts_and_normalises():
    cfg = PatchConfig(size=64.0, stride=32, region=[0, 0, 64, 64], min_tissue=1)
    assert cfg.size == 64 and isinstance(cfg.size, int)
    assert cfg.region == (0, 0, 64, 64) and cfg.min_tissue == 1.0
    assert PatchConfig.from_dict(cfg.to_dict()) == cfg


# -----------------------------------------------------------------------------
# TrainConfig
# -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1, not 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1, not 0"),
        ({"lr": 0}, "lr must be a number > 0, not 0"),
        ({"lr": math.nan}, "lr must be a number > 0"),
        ({"weight_decay": -1}, "weight_decay must be a number >= 0, not -1"),
        ({"val_fraction": 1.5}, "val_fraction must be a number in [0, 1), not 1.5"),
        ({"val_fraction": 1}, "val_fraction must be a number in [0, 1), not 1"),
        ({"folds": 1}, "folds must be an integer >= 2, not 1"),
        ({"fold": 5, "folds": 5}, "fold must be an integer in [0, 4], not 5"),
        ({"encoder_depth": "four"}, "encoder_depth must be an integer in [3, 5], not 'four'"),
        ({"encoder_depth": 7}, "encoder_depth must be an integer in [3, 5], not 7"),
        ({"threads": -1}, "threads must be an integer >= 1, not -1"),
        ({"threads": 0}, "threads must be an integer >= 1, not 0"),
        ({"num_workers": -2}, "num_workers must be an integer >= 0, not -2"),
        ({"patience": 0}, "patience must be an integer >= 1, not 0"),
        ({"max_steps": 0}, "max_steps must be an integer >= 1, not 0"),
        ({"class_weights": "heavy"}, "class_weights must be 'auto' or a list"),
        ({"class_weights": [1.0, -1.0]}, "class_weights[1] must be a number > 0, not -1.0"),
        ({"class_weights": [1.0, "x"]}, "class_weights[1] must be a number > 0, not 'x'"),
        ({"decoder_channels": [64, 0, 16, 16, 8]}, "decoder_channels[1] must be an integer >= 1"),
        ({"decoder_channels": [64, 32]}, "decoder_channels must have one width per encoder"),
        ({"augment": "wild"}, "augment must be one of"),
        ({"optimizer": "lbfgs"}, "optimizer must be one of"),
        ({"scale_range": [2, 0.5]}, "scale_range must be two numbers"),
        ({"arch": 3, "decoder_channels": [64, 32, 16, 16, 8]}, "arch must be"),
    ],
)
def test_train_config_refuses(kwargs, option):
    from napari_slideseg.train import TrainConfig, TrainError

    with pytest.raises(TrainError) as exc:
        TrainConfig(manifests=["x"], **kwargs)
    assert isinstance(exc.value, ValueError)
    assert option in str(exc.value)


def test_train_config_round_trip_and_normalise():
    from napari_slideseg.train import TrainConfig

    cfg = TrainConfig(manifests="a", class_weights=(1, 2), epochs=2.0, encoder_depth=4)
    assert cfg.manifests == ["a"] and cfg.class_weights == [1.0, 2.0] and cfg.epochs == 2
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig(class_weights="auto").class_weights == "auto"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{not json", "invalid JSON"),
        ('["a list"]', "JSON object"),
        ('{"encoder_depth": "four"}', "encoder_depth must be an integer in [3, 5]"),
        (b"\xff\xfe\x00garbage", "invalid JSON"),
    ],
)
def test_train_config_load_json_names_file(tmp_path, text, problem):
    from napari_slideseg.train import TrainConfig, TrainError

    f = tmp_path / "config.json"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(TrainError) as exc:
        TrainConfig.load_json(f)
    assert str(f) in str(exc.value) and problem in str(exc.value)


# -----------------------------------------------------------------------------
# training data: bad masks and manifests name the file
# -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def patch_set(tmp_path_factory):
    """Four 64 px GlaS patches (binary class map) cut by the CLI."""
    from napari_slideseg.cli import main

    root = tmp_path_factory.mktemp("patches") / "p"
    data = __import__("pathlib").Path(__file__).parents[1] / "data" / "glas"
    rc = main(
        [
            "patch",
            str(data / "train_1.png"),
            "--mask",
            str(data / "train_1_mask.png"),
            "--size",
            "64",
            "--region",
            "0",
            "0",
            "128",
            "128",
            "--out",
            str(root),
            "--quiet",
        ]
    )
    assert rc == 0
    return root


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _tiny(manifests, out, **kw):
    from napari_slideseg.train import TrainConfig

    opts = {
        "epochs": 1,
        "batch_size": 2,
        "max_steps": 1,
        "encoder_depth": 3,
        "decoder_channels": [16, 8, 8],
        "bn_recalibrate": 0,
        "device": "cpu",
        "threads": 1,
        **kw,
    }
    return TrainConfig(manifests=[str(m) for m in manifests], out=str(out), **opts)


def test_train_mask_value_out_of_range_names_patch(patch_set, tmp_path):
    import numpy as np
    from PIL import Image

    from napari_slideseg.train import TrainError, train

    p = _copy(patch_set, tmp_path / "p")
    for f in sorted((p / "masks").glob("*.png")):
        m = np.asarray(Image.open(f)).copy()
        m[:4, :4] = 7
        Image.fromarray(m).save(f)
    with pytest.raises(TrainError) as exc:
        train(_tiny([p], tmp_path / "run", val_fraction=0.0))
    msg = str(exc.value)
    assert "mask value 7" in msg and str(p / "masks") in msg and "2 classes" in msg


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("a,b,c\n1,2,3\n", "no image, mask columns"),
        ("image\nimages/x.png\n", "no mask column"),
        ("image,mask\n", "lists no patches"),
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd", "not a CSV file"),
    ],
)
def test_train_garbage_manifest_names_file(tmp_path, content, problem):
    from napari_slideseg.train import TrainError, train

    f = tmp_path / "manifest.csv"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "run"
    with pytest.raises(TrainError) as exc:
        train(_tiny([f], out))
    assert str(f) in str(exc.value) and problem in str(exc.value)
    assert not out.exists()  # refused before the run folder is made


def test_train_class_weights_must_match_classes(patch_set, tmp_path):
    from napari_slideseg.train import TrainError, train

    out = tmp_path / "run"
    with pytest.raises(TrainError) as exc:
        train(_tiny([patch_set], out, class_weights=[1.0, 2.0, 3.0]))
    assert "class_weights must have 2 values" in str(exc.value)
    assert "background, foreground" in str(exc.value)
    assert not out.exists()


def test_train_resume_with_damaged_config_names_file(patch_set, tmp_path):
    from napari_slideseg.train import TrainError, train

    out = tmp_path / "run"
    train(_tiny([patch_set], out, val_fraction=0.0))
    original = (out / "config.json").read_text()
    (out / "config.json").write_text('{"epochs": "many"')
    with pytest.raises(TrainError) as exc:
        train(_tiny([patch_set], out, val_fraction=0.0, epochs=2), resume=True)
    assert str(out / "config.json") in str(exc.value) and "invalid JSON" in str(exc.value)
    (out / "config.json").write_text(original)
    (out / "last" / "training_state.json").write_text("{}")
    with pytest.raises(TrainError) as exc:
        train(_tiny([patch_set], out, val_fraction=0.0, epochs=2), resume=True)
    assert "training_state.json" in str(exc.value)
