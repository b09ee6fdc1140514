"""Training on real GlaS patches: loss goes down, resume is exact, splits are sound."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from napari_slideseg import open_slide
from napari_slideseg.models import load_model
from napari_slideseg.patching import PatchConfig, extract_patches
from napari_slideseg.train import TrainConfig, TrainError, split_groups, train, train_steps

NAMES = ("train_1", "train_2", "testA_1")


def _patches(root, data_dir, multiclass=False, size=128):
    out = []
    for n in NAMES:
        slide = open_slide(data_dir / "glas" / f"{n}.png")
        mask = (np.asarray(Image.open(data_dir / "glas" / f"{n}_mask.png")) > 0).astype(np.uint8)
        if multiclass:  # three classes: background, gland in the left half, gland in the right half
            mask[:, mask.shape[1] // 2 :] *= 2
        extract_patches(slide, root / n, PatchConfig(size=size, stride=size * 2), mask=mask)
        out.append(str(root / n))
    return out


@pytest.fixture(scope="module")
def glas_binary(tmp_path_factory, data_dir):
    return _patches(tmp_path_factory.mktemp("glas_bin"), data_dir)


def _cfg(manifests, out, **kw):
    base = {
        "manifests": manifests,
        "out": str(out),
        "epochs": 3,
        "batch_size": 4,
        "max_steps": 3,
        "lr": 3e-3,
        "encoder": "resnet18",
        "threads": 2,
        "seed": 0,
        "scheduler": "none",
        "augment": "flips",
    }
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("binary", [False, True])
def test_training_lowers_the_loss_binary_and_multiclass(tmp_path, glas_binary, data_dir, binary):
    manifests = glas_binary if binary else _patches(tmp_path / "mc", data_dir, multiclass=True)
    res = train(_cfg(manifests, tmp_path / "run", binary=binary, loss="ce+dice"))
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    with open(tmp_path / "run" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 and {"train_loss", "val_loss", "mean_dice", "lr", "seconds"} <= set(
        rows[0]
    )
    assert (tmp_path / "run" / "curves.png").exists()
    _model, card = load_model(tmp_path / "run" / "best")
    assert card.classes == (1 if binary else 3)
    assert card.activation == ("sigmoid" if binary else "softmax")
    assert card.training["train_patches"] > 0 and card.patch_size == 128


def test_resume_continues_exactly(tmp_path, glas_binary):
    full = train(_cfg(glas_binary, tmp_path / "full", epochs=2, deterministic=True))
    gen = train_steps(_cfg(glas_binary, tmp_path / "cut", epochs=2, deterministic=True))
    for ev in gen:
        if ev.stage == "epoch" and ev.done == 1:
            gen.close()  # cancel after the first epoch
            break
    with open(tmp_path / "cut" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1
    with pytest.raises(TrainError, match="resume"):
        train(_cfg(glas_binary, tmp_path / "cut", epochs=2, deterministic=True))
    events = []
    gen = train_steps(
        _cfg(glas_binary, tmp_path / "cut", epochs=2, deterministic=True), resume=True
    )
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        resumed = stop.value
    assert events[0].stage == "resume" and events[0].done == 1
    first_step = next(e for e in events if e.stage == "train")
    assert first_step.info["epoch"] == 1
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    for key in ("train_loss", "val_loss", "mean_dice"):
        assert resumed.history[1][key] == full.history[1][key]


def test_resume_with_fewer_epochs_anneals_the_cosine_schedule_to_its_new_end(tmp_path, glas_binary):
    kw = {"scheduler": "cosine", "max_steps": 1, "lr": 1e-3}
    gen = train_steps(_cfg(glas_binary, tmp_path / "run", epochs=8, **kw))
    for ev in gen:
        if ev.stage == "epoch" and ev.done == 1:
            gen.close()
            break
    res = train(_cfg(glas_binary, tmp_path / "run", epochs=3, **kw), resume=True)
    lrs = [h["lr"] for h in res.history]
    # 8 epochs planned, cut to 3 at resume: the last epoch ends annealed, not at 8's epoch 3
    assert len(lrs) == 3 and lrs[0] > lrs[1] > lrs[2] and lrs[2] < 1e-9, lrs


def test_kfold_split_is_disjoint_and_covering():
    groups = [f"slide{i % 7}" for i in range(50)]
    vals = []
    for k in range(5):
        tr, va = split_groups(groups, fold=k, folds=5, seed=3)
        assert not set(tr) & set(va)
        assert sorted(tr + va) == list(range(50))
        assert not {groups[i] for i in tr} & {groups[i] for i in va}  # by slide
        vals.append(set(va))
    assert set().union(*vals) == set(range(50))
    assert sum(len(v) for v in vals) == 50


def test_bad_config_is_refused(tmp_path):
    with pytest.raises(TrainError, match="optimizer"):
        TrainConfig(manifests=["x"], optimizer="lion")
    with pytest.raises(TrainError, match="scale_range"):
        TrainConfig(manifests=["x"], scale_range=[1.5, 2])
    assert TrainConfig(manifests=["x"], scale_range=(0.5, 2)).scale_range == [0.5, 2.0]
    with pytest.raises(TrainError, match="no training data"):
        train(TrainConfig(out=str(tmp_path)))
    cfg = json.loads(json.dumps(_cfg(["a"], tmp_path).to_dict()))
    assert TrainConfig.from_dict(cfg).manifests == ["a"]


def test_validation_dice_leaves_out_a_class_absent_from_truth_and_prediction():
    # README: classes absent are left out, not counted as 1.0: the convention of metrics.py
    import torch

    from napari_slideseg.metrics import evaluate
    from napari_slideseg.train.report import confusion_stats, dice_scores

    names = ["background", "a", "b"]
    truth = torch.tensor([[[0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 1, 1, 1]]])  # class b in neither
    logits = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    stats = confusion_stats(logits, truth, 3, binary=False)
    s = dice_scores(stats + stats, names, background=0)  # pooled over two batches
    assert np.isnan(s["dice_b"]) and np.isnan(s["iou_b"])
    assert s["dice_a"] == pytest.approx(0.8) and s["iou_a"] == pytest.approx(2 / 3)
    assert s["mean_dice"] == pytest.approx(0.8)  # not (0.8 + 1.0) / 2
    assert s["mean_iou"] == pytest.approx(2 / 3)
    pooled = evaluate([("x", pred[0].numpy(), truth[0].numpy())], names)[-1]
    for n in names:
        for m in ("dice", "iou"):
            assert np.allclose(s[f"{m}_{n}"], pooled[f"{m}_{n}"], equal_nan=True)
    assert s["mean_dice"] == pytest.approx(pooled["mean_dice_fg"])
    # no foreground class anywhere: the means are undefined, not perfect
    none = dice_scores(confusion_stats(logits * 0, truth * 0, 3, binary=False), names, 0)
    assert none["dice_background"] == 1.0
    assert np.isnan(none["mean_dice"]) and np.isnan(none["mean_iou"])
