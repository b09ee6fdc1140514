"""Dice/IoU against hand-computed cases."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_slideseg.metrics import confusion_counts, dice_iou, evaluate


def test_hand_computed_small_case():
    truth = np.array([[0, 0, 1, 1], [0, 2, 2, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 2, 0, 0]])
    c = confusion_counts(pred, truth, 3)
    # class 1: TP 2 (0,2),(0,3); FP 1 (0,1); FN 1 (1,3)
    assert c[1].tolist() == [2, 1, 1]
    # class 2: TP 1; FP 0; FN 1
    assert c[2].tolist() == [1, 0, 1]
    dice, iou = dice_iou(c)
    assert dice[1] == pytest.approx(4 / 6) and iou[1] == pytest.approx(2 / 4)
    assert dice[2] == pytest.approx(2 / 3) and iou[2] == pytest.approx(1 / 2)


def test_absent_class_is_nan_not_one_and_blocks_equal_whole(tmp_path):
    rng = np.random.default_rng(0)
    t = rng.integers(0, 2, (300, 301))
    p = rng.integers(0, 2, (300, 301))
    whole = confusion_counts(p, t, 3)
    blocky = confusion_counts(
        da.from_array(p, chunks=77), da.from_array(t, chunks=77), 3, block=100
    )
    assert (whole == blocky).all()
    dice, _ = dice_iou(whole)
    assert np.isnan(dice[2])
    rows = evaluate([("a", p, t), ("b", t, t)], ["bg", "x", "y"], report=tmp_path / "r.csv")
    assert [r["image"] for r in rows] == ["a", "b", "mean", "all"]
    assert rows[1]["dice_x"] == 1.0
    assert rows[2]["dice_x"] == pytest.approx((rows[0]["dice_x"] + 1.0) / 2)
    assert (tmp_path / "r.csv").read_text().startswith("image,dice_bg,dice_x,dice_y")
    with pytest.raises(ValueError, match="shape"):
        confusion_counts(p[:-1], t, 3)
