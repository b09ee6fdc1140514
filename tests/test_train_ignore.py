"""Semantic training leaves out unannotated pixels (mask value IGNORE_INDEX, 255).

The losses, the validation counts, the class weights and the mask check of
the training rows all read 255 as "no label": not background, no gradient,
counted in no score.
"""

from __future__ import annotations

import pytest

from napari_slideseg.io.annotations import IGNORE_INDEX
from napari_slideseg.models.losses import build_loss
from napari_slideseg.train.report import confusion_stats

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
