"""Fine-tuning on corrections: the corrected region improves, the rest is not forgotten.

Real H&E: three GlaS images (and one mirrored) as a 2 x 2 mosaic "slide" at
0.62 µm/px, predicted by the bundled gland model. The correction is the
held-out GlaS annotation pasted over the prediction where the model is most
wrong (the right edge of testA_1: Dice 0.81), as a pathologist painting it
would leave it. A few CPU steps later the new model is better there and
about as good on an image far from it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_slideseg.finetune import FinetuneConfig, FinetuneError, finetune_steps
from napari_slideseg.progress import drain

from .conftest import FAR, GLAS, REGION
from .conftest import crop_to as _crop
from .conftest import dice as _dice


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


def test_finetuning_on_a_correction_improves_it_and_forgets_little(corrected, tmp_path):
    import zarr

    from napari_slideseg.infer import InferConfig, predict_slide
    from napari_slideseg.models.bundled import resolve_model
    from napari_slideseg.models.card import read_card

    slide, labels, fixed, truth, _ = corrected
    parent = resolve_model("glas-gland")
    before_parent = _tree_hash(parent)
    cfg = FinetuneConfig(epochs=2, max_steps=4, device="cpu", threads=2)
    res = drain(finetune_steps(slide, fixed, [REGION], "glas-gland", tmp_path / "ft", cfg))
    assert res.patches["corrected"] > 0 and res.patches["replay"] > 0
    new = zarr.open_group(str(res.repredicted), mode="r")["labels"][:]
    before, after = (
        _dice(_crop(labels, REGION), _crop(truth, REGION)),
        _dice(_crop(new, REGION), _crop(truth, REGION)),
    )
    assert before < 0.85 and after > before + 0.03, (before, after)
    far_out = tmp_path / "far.zarr"
    predict_slide(slide, str(res.checkpoint), far_out, InferConfig(device="cpu", region=FAR))
    far = zarr.open_group(str(far_out), mode="r")["labels"][:]
    far_before, far_after = (
        _dice(_crop(labels, FAR), _crop(truth, FAR)),
        _dice(_crop(far, FAR), _crop(truth, FAR)),
    )
    assert far_after > far_before - 0.03, (far_before, far_after)
    # a new version: the parent untouched, its digest and the corrections on the new card
    assert _tree_hash(parent) == before_parent
    card = read_card(res.checkpoint)
    assert card.training["parent"]["digest"] == read_card(parent).digest()
    assert card.training["finetune"]["parent"]["name"] == "glas-gland"
    assert card.training["config"]["init_from"] == str(parent)
    assert card.normalization == read_card(parent).normalization
    record = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert record["complete"] is True and record["patches"]["corrected"] == res.patches["corrected"]


def test_cancelling_a_finetune_leaves_the_parent_and_no_finished_run(corrected, tmp_path):
    from napari_slideseg.models.bundled import resolve_model

    slide, _, fixed, _, _ = corrected
    parent = resolve_model("glas-gland")
    before = _tree_hash(parent)
    kept = fixed.copy()
    gen = finetune_steps(
        slide, fixed, [REGION], "glas-gland", tmp_path / "ft", FinetuneConfig(device="cpu")
    )
    stages = []
    for event in gen:
        stages.append(event.stage)
        if event.stage == "train":  # the first training step has run
            break
    gen.close()  # what the widget's Cancel does
    assert stages[-1] == "train"
    assert _tree_hash(parent) == before
    np.testing.assert_array_equal(fixed, kept)  # the corrections were only read
    assert not (tmp_path / "ft" / "finetune.json").exists()
    with pytest.raises(FinetuneError, match="already exists and is not an empty folder"):
        drain(finetune_steps(slide, fixed, [REGION], "glas-gland", tmp_path / "ft"))


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"lr_factor": -1}, "lr_factor"),
        ({"replay": "lots"}, "replay"),
        ({"stride": 0}, "stride"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"margin": -3}, "margin"),
        ({"repredict": "yes"}, "repredict must be True or False"),
    ],
)
def test_finetune_options_are_checked_naming_the_option(kwargs, words):
    with pytest.raises(FinetuneError, match=words):
        FinetuneConfig(**kwargs)


def test_regions_are_grown_to_a_patch_and_clipped(corrected):
    from napari_slideseg.finetune import grown_regions, replay_cells

    boxes = grown_regions([(10, 10, 20, 30)], fov=256, margin=16, shape=(1044, 1550))
    (y0, x0, y1, x1) = boxes[0]
    assert y0 == 0 and x0 == 0 and y1 - y0 >= 256 and x1 - x0 >= 256
    with pytest.raises(FinetuneError, match="outside the level"):
        grown_regions([(0, 0, 2000, 10)], fov=256, margin=0, shape=(1044, 1550))
    with pytest.raises(FinetuneError, match=r"is \(y0, x0, y1, x1\)"):
        grown_regions([(0, 0, 5)], fov=256, margin=0, shape=(1044, 1550))
    cells = replay_cells((1044, 1550), 256, boxes, 100, seed=0)
    assert cells and all(c[0] >= 256 or c[1] >= 256 for c in cells)  # none touches the box
    assert cells == replay_cells((1044, 1550), 256, boxes, 100, seed=0)


def test_no_region_is_refused(corrected, tmp_path):
    slide, _, fixed, _, _ = corrected
    with pytest.raises(FinetuneError, match="no corrected regions"):
        drain(finetune_steps(slide, fixed, [], "glas-gland", tmp_path / "ft"))


def test_slideseg_finetune_on_corrections_saved_in_the_prediction(corrected, tmp_path, capsys):
    """The CLI on a prediction whose corrections were saved as napari saves them."""
    import shutil

    import zarr

    from napari_slideseg.cli import main
    from napari_slideseg.corrections import open_corrections
    from napari_slideseg.models.card import read_card

    _, labels, _, truth, pred = corrected
    mine = tmp_path / "pred.zarr"
    shutil.copytree(pred, mine)
    y0, x0, y1, x1 = REGION
    store = open_corrections(mine)
    assert store.record("labels", y0, x0, truth[y0:y1, x0:x1].astype(labels.dtype)) is not None
    version = open_corrections(mine, writable=False).version
    out = tmp_path / "ft"
    argv = ["finetune", str(mine), "--out", str(out), "--epochs", "1", "--max-steps", "2"]
    argv += ["--view", "0", "0", "300", "400"]  # what napari showed: predicted too
    assert main([*argv, "--device", "cpu", "--threads", "2", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "fine-tuned glas-gland on" in printed and "corrected regions predicted again" in printed
    view = zarr.open_group(str(out / "view.zarr"), mode="r")
    assert view.attrs["slideseg_inference"]["config"]["region"] == [0, 0, 300, 400]
    assert json.loads((out / "finetune.json").read_text())["view"] == str(out / "view.zarr")
    card = read_card(out / "model" / "best")
    corr = card.training["finetune"]["corrections"]
    assert corr["prediction"] == str(mine.resolve()) and corr["version"] == version
    assert corr["regions"] and corr["array"] == "labels"
    # the prediction and its corrections are as they were
    reopened = open_corrections(mine, writable=False)
    assert reopened.version == version
    np.testing.assert_array_equal(zarr.open_group(str(mine), mode="r")["labels"][:], labels)
    # wrong values name the option; a prediction without corrections says so
    with pytest.raises(SystemExit) as code:
        main(["finetune", str(mine), "--out", str(tmp_path / "x"), "--replay", "-1"])
    assert code.value.code == 2
    assert "argument --replay: must be a number in [0, 100], not -1" in capsys.readouterr().err
    assert main(["finetune", str(pred), "--out", str(tmp_path / "y")]) == 2
    assert "has no saved corrections" in capsys.readouterr().err


def test_a_hover_model_finetunes_on_corrected_nuclei(tmp_path):
    """Corrected nucleus instances (MoNuSeg's annotation pasted in) become HV targets."""
    import zarr

    from napari_slideseg.infer import InferConfig, predict_slide
    from napari_slideseg.io.slide import open_slide
    from napari_slideseg.models.card import read_card

    monuseg = GLAS.parent / "monuseg"
    name = "TCGA-A7-A13E-01Z-00-DX1"
    img = np.asarray(Image.open(monuseg / "images" / f"{name}.png").convert("RGB"))[:512, :512]
    truth = np.asarray(Image.open(monuseg / "inst_maps" / f"{name}_inst.png"))[:512, :512]
    Image.fromarray(img).save(tmp_path / "tile.png")
    slide = open_slide(tmp_path / "tile.png", mpp=0.25)
    pred = tmp_path / "pred.zarr"
    predict_slide(slide, "hover-nuclei", pred, InferConfig(device="cpu", threads=2))
    group = zarr.open_group(str(pred), mode="r")
    ids = group["instances"][:]
    fixed = ids.copy()
    gt = truth[:200, :200].astype(np.int64)
    fixed[:200, :200] = np.where(gt > 0, gt + int(ids.max()) + 1, 0)
    cfg = FinetuneConfig(epochs=1, max_steps=2, device="cpu", threads=2)
    res = drain(
        finetune_steps(
            slide,
            fixed,
            [(0, 0, 200, 200)],
            "hover-nuclei",
            tmp_path / "ft",
            cfg,
            types=group["labels"],
        )
    )
    assert res.patches["corrected"] > 0
    card = read_card(res.checkpoint)
    assert card.kind == "hover" and card.training["finetune"]["parent"]["name"] == "hover-nuclei"
    assert zarr.open_group(str(res.repredicted), mode="r")["instances"][:200, :200].max() > 0


def test_every_finetune_option_comes_from_the_config_and_reaches_it():
    """``slideseg finetune``'s options are generated from FinetuneConfig (each with help)."""
    import argparse
    import dataclasses

    from napari_slideseg.cli import finetune as command
    from napari_slideseg.cli.fields import config_kwargs

    p = argparse.ArgumentParser(prog="slideseg finetune")
    command.add_arguments(p)
    actions = {a.dest: a for a in p._actions}
    for field in dataclasses.fields(FinetuneConfig):
        action = actions.get(field.name)
        assert action is not None and action.help, field.name
    args = p.parse_args(
        ["pred.zarr", "--out", "o", "--stride", "0.25", "--augment", "strong", "--no-repredict"]
    )
    cfg = FinetuneConfig(**config_kwargs(args, FinetuneConfig, command.finetune_flags()))
    assert (cfg.stride, cfg.augment, cfg.repredict, cfg.epochs) == (0.25, "strong", False, 3)
    assert cfg == FinetuneConfig(stride=0.25, augment="strong", repredict=False)
