"""ModelCard: validation with the problem named, schema-1 cards still load, content digest."""

from __future__ import annotations

import json
import math
import shutil

import pytest

from napari_slideseg.io.palette import ClassMap
from napari_slideseg.models.bundled import bundled_models
from napari_slideseg.models.card import (
    SCHEMA_VERSION,
    CheckpointError,
    ModelCard,
    read_card,
    write_card,
)


@pytest.fixture
def gland_copy(tmp_path):
    dst = tmp_path / "glands"
    shutil.copytree(bundled_models()["glas-gland"], dst)
    return dst


def test_schema_1_cards_load_typed(data_dir):
    for name in ("schema1-glas", "schema1-hover"):
        folder = data_dir / "cards" / name
        assert json.loads((folder / "slideseg.json").read_text())["format_version"] == 1
        card = read_card(folder)
        assert isinstance(card.classmap, ClassMap) and card.mpp in (0.25, 1.24), name
        assert card.to_dict()["format_version"] == SCHEMA_VERSION
    nuclei = read_card(data_dir / "cards" / "schema1-hover")
    assert nuclei.is_hover and nuclei.channels == 3 + 5 and nuclei.postproc["np_threshold"] == 0.4


def test_bundled_cards_state_resolution_normalisation_and_encoder_weights():
    for name, folder in bundled_models().items():
        card = read_card(folder)
        assert card.to_dict()["format_version"] == SCHEMA_VERSION
        assert card.mpp == {"glas-gland": 0.62, "hover-nuclei": 0.25}[name]
        # the ImageNet MobileNetV2 encoder takes inputs in [-1, 1]
        assert card.normalization.mean == (0.5, 0.5, 0.5) == card.normalization.std
        weights = card.training["encoder_weights"]
        assert (
            weights["name"] == "mobilenet_v2_imagenet.safetensors" and len(weights["sha256"]) == 64
        )
        assert card.validation_metrics and not card.held_out_metrics
        assert card.weights_dtype == "float16"
        assert sum(f.stat().st_size for f in folder.iterdir()) < 10e6
    nuclei = read_card(bundled_models()["hover-nuclei"])
    assert nuclei.is_hover and nuclei.channels == 3 + 5


def test_round_trip_keeps_unknown_keys(gland_copy):
    doc = json.loads((gland_copy / "slideseg.json").read_text())
    doc["future_field"] = {"a": 1}
    (gland_copy / "slideseg.json").write_text(json.dumps(doc))
    card = read_card(gland_copy)
    write_card(gland_copy, card.replace(name="x"))
    again = json.loads((gland_copy / "slideseg.json").read_text())
    assert again["future_field"] == {"a": 1} and again["name"] == "x"
    assert read_card(gland_copy) == card.replace(name="x")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.0, 0.2]}},
            "std must be positive",
        ),
        ({"normalization": {"mean": [0.5, math.nan, 0.5], "std": [1, 1, 1]}}, "must be finite"),
        ({"normalization": {"mean": [0.5], "std": [1]}}, "1 channels but the model takes 3"),
        ({"mpp": -1}, "not a plausible pixel size"),
        ({"mpp": "fast"}, "mpp must be a number"),
        ({"kind": "panoptic"}, "kind must be one of"),
        ({"patch_size": 0}, "patch_size must be an integer >= 1"),
        ({"classes": 3}, "class map has 2 classes but the model outputs 3"),
        ({"format_version": 9}, "newer than this napari-slideseg reads"),
        (
            {"classmap": {"names": ["a", "b"], "colors": [[1, 1, 1], [1, 1, 1]], "background": 0}},
            "invalid class map",
        ),
    ],
)
def test_bad_cards_are_refused_naming_the_file(gland_copy, change, message):
    doc = json.loads((gland_copy / "slideseg.json").read_text())
    doc.update(change)
    (gland_copy / "slideseg.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=message) as err:
        read_card(gland_copy)
    assert "slideseg.json" in str(err.value) and str(gland_copy.name) in str(err.value)


def test_digest_follows_what_changes_a_prediction(gland_copy):
    card = read_card(gland_copy)
    assert card.digest() == read_card(gland_copy).digest()
    assert card.replace(name="renamed", description="notes").digest() == card.digest()
    assert card.replace(mpp=0.5).digest() != card.digest()
    nuclei = read_card(bundled_models()["hover-nuclei"])
    tuned = nuclei.with_postproc({**nuclei.postproc, "min_size": 99})
    assert tuned.digest() != nuclei.digest()
    # other weights, same card
    w = gland_copy / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-1] + b"\x01")
    assert read_card(gland_copy).digest() != card.digest()


def test_new_card_from_dict_validates():
    with pytest.raises(CheckpointError, match="a sigmoid model has 1 output channel"):
        ModelCard(
            kind="semantic",
            arch="Unet",
            encoder="resnet18",
            in_channels=3,
            classes=2,
            classmap=ClassMap.preset("binary"),
            patch_size=256,
            activation="sigmoid",
        )
