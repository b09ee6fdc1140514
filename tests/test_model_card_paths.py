"""The model card along the user's path (issue 14): patches record µm/px, training puts it
in the card, a card changed between a kill and --resume is noticed, and a model trained
the way the README's console recipe does (no classmap.json) exports and reopens.
"""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from PIL import Image

from napari_slideseg._sample_data import sample_slide_path
from napari_slideseg.cli import main
from napari_slideseg.dataset import PatchDataset
from napari_slideseg.infer import tune
from napari_slideseg.io.slide import open_slide
from napari_slideseg.models.card import read_card
from napari_slideseg.models.checkpoint import load_model
from napari_slideseg.patching import PatchConfig, extract_patches, read_manifest
from napari_slideseg.train import TrainConfig, TrainError, train


def _glas(data_dir, name, mpp=None):
    slide = open_slide(data_dir / "glas" / f"{name}.png", mpp=mpp)
    mask = (np.asarray(Image.open(data_dir / "glas" / f"{name}_mask.png")) > 0).astype(np.uint8)
    return slide, mask


def _cfg(manifests, out, **kw):
    d = {
        "manifests": [str(m) for m in manifests],
        "out": str(out),
        "epochs": 1,
        "batch_size": 4,
        "max_steps": 2,
        "encoder": "resnet18",
        "encoder_depth": 3,
        "decoder_channels": [32, 16, 8],
        "threads": 2,
        "augment": "none",
        "scheduler": "none",
        "bn_recalibrate": 0,
    }
    d.update(kw)
    return TrainConfig(**d)


def test_patch_mpp_travels_into_the_card(tmp_path, data_dir):
    slide, mask = _glas(data_dir, "train_1", mpp=0.62)  # GlaS: 20x, 0.62 µm/px
    extract_patches(slide, tmp_path / "p", PatchConfig(size=128, stride=128, zoom=0.5), mask=mask)
    rows = read_manifest(tmp_path / "p")
    assert {r["mpp"] for r in rows} == {"1.24"}
    train(_cfg([tmp_path / "p"], tmp_path / "run"))
    card = read_card(tmp_path / "run" / "best")
    assert card.mpp == 1.24 and card.training["patch_mpp"] == {str(tmp_path / "p"): 1.24}
    assert "at 1.24 µm/px" in (tmp_path / "run" / "best" / "README.md").read_text()


def test_training_refuses_mixed_resolutions(tmp_path, data_dir):
    for name, zoom in (("train_1", 1.0), ("train_2", 0.5)):
        slide, mask = _glas(data_dir, name, mpp=0.62)
        extract_patches(
            slide, tmp_path / name, PatchConfig(size=128, stride=256, zoom=zoom), mask=mask
        )
    folders = [tmp_path / "train_1", tmp_path / "train_2"]
    with pytest.raises(
        TrainError,
        match=r"different resolutions(?=.*train_1: 0\.62)(?=.*train_2: 1\.24).*mixed_mpp",
    ):
        train(_cfg(folders, tmp_path / "run"))
    train(_cfg(folders, tmp_path / "run2", mixed_mpp=True))
    per_patch = [float(r["mpp"]) for f in folders for r in read_manifest(f)]
    assert read_card(tmp_path / "run2" / "best").mpp == pytest.approx(np.median(per_patch))


def test_training_without_mpp_warns(tmp_path, data_dir):
    slide, mask = _glas(data_dir, "train_1")
    extract_patches(slide, tmp_path / "p", PatchConfig(size=128, stride=256), mask=mask)
    with pytest.warns(UserWarning, match="state no µm/px"):
        train(_cfg([tmp_path / "p"], tmp_path / "run"))
    assert read_card(tmp_path / "run" / "best").mpp is None


def test_dataset_from_slide_at_zoom_equals_extracted_patches(tmp_path, data_dir):
    slide, mask = _glas(data_dir, "train_2", mpp=0.62)
    cfg = PatchConfig(size=96, stride=80, zoom=0.5, grid="pad")
    extract_patches(slide, tmp_path / "p", cfg, mask=mask)
    on_disk = PatchDataset.from_manifest(tmp_path / "p")
    live = PatchDataset.from_slide(slide, cfg, mask)
    assert len(live) == len(on_disk) > 4
    assert live.info["mpp"] == pytest.approx(1.24)
    rows = read_manifest(tmp_path / "p")
    by_pos = {(int(r["y"]), int(r["x"])): i for i, r in enumerate(rows)}
    for j, pos in enumerate(live.items):
        im, mk = live.load_numpy(j)
        im2, mk2 = on_disk.load_numpy(by_pos[pos])
        np.testing.assert_array_equal(im, im2)
        np.testing.assert_array_equal(mk, mk2)


@pytest.mark.viewer
def test_three_classes_without_classmap_export_and_open_in_napari(
    tmp_path, data_dir, make_napari_viewer
):
    """The README's console recipe: extract_patches(slide, out, config, mask=...) then train."""
    slide, mask = _glas(data_dir, "train_1")
    mask[:, mask.shape[1] // 2 :] *= 2  # background, left glands, right glands
    extract_patches(slide, tmp_path / "p", PatchConfig(size=128, stride=128), mask=mask)
    assert not (tmp_path / "p" / "classmap.json").exists()
    with pytest.warns(UserWarning, match="no classmap.json"):
        train(_cfg([tmp_path / "p"], tmp_path / "run"))
    card = read_card(tmp_path / "run" / "best")
    assert card.classmap.n_classes == 3 and len(set(card.classmap.colors)) == 3
    img = data_dir / "glas" / "train_1.png"
    pred = tmp_path / "pred.zarr"
    args = ["--device", "cpu", "--quiet", "--block", "1024"]
    assert (
        main(
            [
                "predict",
                str(img),
                "--model",
                str(tmp_path / "run" / "best"),
                "--out",
                str(pred),
                *args,
            ]
        )
        == 0
    )
    assert main(["export", str(pred), "--to", str(tmp_path / "pred.png")]) == 0
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "pred.png"), plugin="napari-slideseg")
    assert len(layers) == 1 and layers[0]._type_string == "labels"
    labels = zarr.open_group(str(pred), mode="r")["labels"][:]
    np.testing.assert_array_equal(np.asarray(layers[0].data), labels)
    assert layers[0].metadata["slideseg"]["classmap"]["names"] == list(card.classmap.names)


def test_card_changed_between_kill_and_resume_is_refused(tmp_path, data_dir, capsys):
    import shutil

    from napari_slideseg.infer import InferConfig, predict_slide_steps
    from napari_slideseg.models.bundled import bundled_models

    ck = tmp_path / "nuclei"
    shutil.copytree(bundled_models()["hover-nuclei"], ck)
    slide = open_slide(sample_slide_path())
    out = tmp_path / "n.zarr"
    cfg = InferConfig(block=256, region=(1500, 700, 2012, 1212), device="cpu", instance_halo=32)
    gen = predict_slide_steps(slide, [str(ck)], out, cfg)
    next(gen)  # one block done, then the user kills it
    gen.close()
    grid = {"np_threshold": (0.3, 0.45), "min_size": (20,), "marker_threshold": (0.5,)}
    saved, tune.DEFAULT_GRID = tune.DEFAULT_GRID, grid
    try:
        tile = data_dir / "consep_patches" / "images" / "test_1_004.jpg"
        truth = data_dir / "consep_patches" / "inst" / "test_1_004.npy"
        rc = main(
            [
                "tune-hover",
                str(ck),
                "--images",
                str(tile),
                "--truths",
                str(truth),
                "--write",
                "--quiet",
            ]
        )
    finally:
        tune.DEFAULT_GRID = saved
    assert rc == 0 and read_card(ck).postproc["min_size"] == 20
    capsys.readouterr()
    region = ["--region", "1500", "700", "2012", "1212", "--block", "256", "--instance-halo", "32"]
    rc = main(
        [
            "predict",
            str(sample_slide_path()),
            "--model",
            str(ck),
            "--out",
            str(out),
            "--resume",
            "--device",
            "cpu",
            "--quiet",
            *region,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "other model content" in err and "tune-hover --write" in err
    info = dict(zarr.open_group(str(out), mode="r").attrs)["slideseg_inference"]
    assert not info["complete"]


def test_resume_rewrites_provenance_when_only_notes_change(tmp_path):
    import shutil

    from napari_slideseg.infer import InferConfig, predict_slide, predict_slide_steps
    from napari_slideseg.models.bundled import bundled_models
    from napari_slideseg.models.checkpoint import update_card

    ck = tmp_path / "glands"
    shutil.copytree(bundled_models()["glas-gland"], ck)
    slide = open_slide(sample_slide_path())
    out = tmp_path / "g.zarr"
    cfg = InferConfig(block=512, tile=256, overlap=32, region=(0, 0, 1024, 1024), device="cpu")
    gen = predict_slide_steps(slide, [str(ck)], out, cfg)
    next(gen)
    gen.close()
    update_card(ck, description="renamed release", name="glands-v2")
    predict_slide(slide, [str(ck)], out, cfg, resume=True)
    meta = dict(zarr.open_group(str(out), mode="r").attrs)
    assert meta["slideseg_inference"]["complete"]
    assert meta["slideseg"]["models"][0]["name"] == "glands-v2"
    assert meta["slideseg"]["models"][0]["digest"] == load_model(ck)[1].digest()
