"""Semantic training leaves out unannotated pixels (mask value IGNORE_INDEX, 255).

The losses, the validation counts, the class weights and the mask check of
the training rows all read 255 as "no label": not background, no gradient,
counted in no score.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from napari_slideseg import open_slide
from napari_slideseg.io.annotations import IGNORE_INDEX
from napari_slideseg.io.palette import ClassMap
from napari_slideseg.models.losses import build_loss
from napari_slideseg.patching import PatchConfig, extract_patches, read_manifest
from napari_slideseg.train import TrainConfig, TrainError, train
from napari_slideseg.train.data import class_weights
from napari_slideseg.train.report import confusion_stats
from napari_slideseg.train.rows import rows_dataset, top_class_value

torch = pytest.importorskip("torch")

MULTICLASS = ["ce", "dice", "focal", "jaccard", "lovasz", "tversky", "ce+dice", "focal+dice"]
BINARY = ["ce", "bce", "dice", "focal", "jaccard", "lovasz", "tversky", "bce+dice"]


def _batch(classes, seed=0):
    """Logits and targets whose bottom half is ignored and predicted wildly wrong there."""
    g = torch.Generator().manual_seed(seed)
    n_cls = max(classes, 2)
    logits = torch.randn(2, classes, 8, 6, generator=g)
    target = torch.randint(0, n_cls, (2, 8, 6), generator=g)
    target[:, 4:] = IGNORE_INDEX
    logits[:, :, 4:] = 50 * torch.randn(2, classes, 4, 6, generator=g)
    return logits, target


@pytest.mark.parametrize(
    ("name", "classes"), [(n, 3) for n in MULTICLASS] + [(n, 1) for n in BINARY]
)
def test_loss_leaves_out_ignored_pixels(name, classes):
    logits, target = _batch(classes)
    fn = build_loss(name, classes=classes)
    logits.requires_grad_(True)
    full = fn(logits, target)
    cropped = fn(logits[:, :, :4].detach(), target[:, :4])
    assert torch.isfinite(full)
    assert float(full.detach()) == pytest.approx(float(cropped), rel=1e-5, abs=1e-6)
    full.backward()
    assert torch.count_nonzero(logits.grad[:, :, 4:]) == 0  # no gradient where unlabelled
    assert torch.count_nonzero(logits.grad[:, :, :4]) > 0


@pytest.mark.parametrize(("classes", "weights"), [(3, [0.5, 1.0, 2.0]), (1, [1.0, 3.0])])
def test_weighted_ce_leaves_out_ignored_pixels(classes, weights):
    logits, target = _batch(classes, seed=1)
    fn = build_loss("ce", classes=classes, class_weights=weights)
    assert float(fn(logits, target)) == pytest.approx(
        float(fn(logits[:, :, :4], target[:, :4])), rel=1e-5
    )


@pytest.mark.parametrize(("name", "classes"), [("ce+dice", 3), ("bce+dice", 1)])
def test_a_batch_with_no_label_gives_zero_loss(name, classes):
    logits = torch.randn(2, classes, 4, 4, requires_grad=True)
    loss = build_loss(name, classes=classes)(logits, torch.full((2, 4, 4), IGNORE_INDEX))
    loss.backward()
    assert float(loss) == 0.0 and torch.count_nonzero(logits.grad) == 0


@pytest.mark.parametrize("binary", [False, True])
def test_confusion_counts_leave_out_ignored_pixels(binary):
    classes = 1 if binary else 3
    logits, target = _batch(classes, seed=2)
    n = 2 if binary else 3
    full = confusion_stats(logits, target, n, binary)
    cropped = confusion_stats(logits[:, :, :4], target[:, :4], n, binary)
    assert torch.equal(full, cropped)
    assert int(full.sum(0)[0]) == 2 * 4 * 6  # every labelled pixel once per class, no more


def test_auto_class_weights_count_only_labelled_pixels(tmp_path):
    from napari_slideseg.models.losses import class_weights_from_fractions

    names = ["background", "gland"]
    # two patches: one fully labelled (1/2, 1/2); one half unannotated (1/2 background)
    rows = [
        (tmp_path, {"frac_background": "0.5", "frac_gland": "0.5"}),
        (tmp_path, {"frac_background": "0.5", "frac_gland": "0"}),
    ]
    cfg = TrainConfig(manifests=[str(tmp_path)], out=str(tmp_path / "run"), class_weights="auto")
    got = class_weights(cfg, rows, names, 2, False)
    # 3 labelled quarters: 2 background, 1 gland (the unannotated quarter counts in neither)
    assert got == pytest.approx(class_weights_from_fractions([2 / 3, 1 / 3]))


def _row(tmp_path, mask):
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "masks").mkdir(exist_ok=True)
    Image.fromarray(np.zeros((*mask.shape, 3), np.uint8)).save(tmp_path / "images" / "p.png")
    Image.fromarray(mask).save(tmp_path / "masks" / "p.png")
    return (tmp_path, {"image": "images/p.png", "mask": "masks/p.png"})


def test_rows_accept_the_ignore_value_but_not_other_values_past_the_classes(tmp_path):
    mask = np.zeros((8, 8), np.uint8)
    mask[:4] = IGNORE_INDEX
    mask[4:, :2] = 1
    ds = rows_dataset([_row(tmp_path, mask)], None, 0, n_classes=2)
    _image, target = ds[0]
    assert set(np.unique(target.numpy())) == {0, 1, IGNORE_INDEX}
    mask[0, 0] = 7
    ds = rows_dataset([_row(tmp_path, mask)], None, 0, n_classes=2)
    with pytest.raises(TrainError, match="mask value 7 is not a class"):
        ds[0]


def test_top_class_value_skips_the_ignore_value():
    assert top_class_value(np.array([[0, 2], [IGNORE_INDEX, 1]], np.uint8)) == 2
    assert top_class_value(np.full((2, 2), IGNORE_INDEX, np.uint8)) == -1
    assert top_class_value(np.zeros((0, 0), np.uint8)) == -1
    assert top_class_value(np.array([3, 0], np.uint8)) == 3


@pytest.mark.parametrize("preset", ["flips", "standard", "strong"])
def test_augmentation_never_fills_masks_with_a_constant(preset):
    # reflected borders: an ignored or labelled edge stays what it was, no 0 appears
    from napari_slideseg.augment import build_augmentation

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
    mask = np.ones((48, 48), np.uint8)
    mask[:, :24] = IGNORE_INDEX
    for seed in range(8):
        out = build_augmentation(preset, seed, scale=(0.5, 2.0))(image=image, mask=mask)
        assert set(np.unique(out["mask"])) <= {1, IGNORE_INDEX}


CLASSES = ClassMap(("background", "Tumor", "Stroma"), ((0, 0, 0), (200, 0, 0), (0, 160, 0)))


def _geojson(path):
    """Tumour and stroma rectangles over the top of a GlaS image; the rest unannotated."""

    def feature(x0, y0, x1, y1, name):
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        return {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": "annotation", "classification": {"name": name}},
        }

    feats = [feature(10, 10, 200, 180, "Tumor"), feature(220, 20, 400, 170, "Stroma")]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


@pytest.mark.filterwarnings("ignore:the patch manifests state no")
def test_train_on_patches_with_unannotated_pixels(tmp_path, data_dir):
    manifests = []
    for n in ("train_1", "train_2", "testA_1"):
        slide = open_slide(data_dir / "glas" / f"{n}.png")
        cfg = PatchConfig(size=64, stride=64, unannotated="ignore")
        geo = _geojson(tmp_path / f"{n}.geojson")
        res = extract_patches(slide, tmp_path / n, cfg, mask=geo, classmap=CLASSES)
        masks = [np.asarray(Image.open(res.out / r["mask"])) for r in read_manifest(res.out)]
        assert any((m == IGNORE_INDEX).any() for m in masks)
        manifests.append(str(res.out))
    res = train(
        TrainConfig(
            manifests=manifests,
            out=str(tmp_path / "run"),
            epochs=1,
            batch_size=4,
            max_steps=2,
            encoder="resnet18",
            encoder_depth=3,
            decoder_channels=[16, 8, 8],
            bn_recalibrate=0,
            device="cpu",
            threads=1,
            loss="ce+dice",
            class_weights="auto",
            augment="standard",
        )
    )
    row = res.history[-1]
    assert math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"])
    # the annotated classes score; the unannotated pixels are no background to them
    assert not math.isnan(row["dice_Tumor"]) and not math.isnan(row["dice_Stroma"])
    assert not math.isnan(row["mean_dice"])


def test_evaluation_does_not_score_unannotated_truth_pixels():
    """Truth masks cut with unannotated="ignore" hold 255 there: not scored, not an error."""
    from napari_slideseg.metrics.pixel import confusion_counts

    truth = np.zeros((64, 64), np.uint8)
    truth[:32] = 1
    pred = truth.copy()
    scored = confusion_counts(pred, truth, 2)
    truth[:, 48:] = 255  # unannotated; the prediction there is anything
    pred[:, 48:] = 1 - pred[:, 48:]
    got = confusion_counts(pred, truth, 2, block=20)
    expect = confusion_counts(pred[:, :48], truth[:, :48], 2)
    np.testing.assert_array_equal(got, expect)
    assert got[:, 1:].sum() == 0 and got[:, 0].sum() < scored[:, 0].sum()
