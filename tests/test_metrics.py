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


# -- instance metrics: hand-computed cases ---------------------------------------
def _boxes(shape, boxes):
    out = np.zeros(shape, np.int32)
    for i, (y0, x0, y1, x1) in enumerate(boxes, start=1):
        out[y0:y1, x0:x1] = i
    return out


def test_pq_needs_iou_above_half_and_aji_counts_pairs():
    from napari_slideseg.metrics import aji, panoptic_quality

    truth = _boxes((10, 12), [(0, 0, 4, 4), (0, 6, 4, 10)])
    pred = _boxes((10, 12), [(0, 0, 4, 4), (0, 6, 4, 8)])  # 2nd: IoU exactly 0.5
    q = panoptic_quality(truth, pred)
    assert (q["dq"], q["sq"], q["pq"]) == pytest.approx((0.5, 1.0, 0.5))
    assert aji(truth, pred) == pytest.approx((16 + 8) / (16 + 16))


def test_aji_counts_a_merged_prediction_twice_and_aji_plus_once():
    from napari_slideseg.metrics import aji, panoptic_quality

    truth = _boxes((4, 8), [(0, 0, 4, 4), (0, 4, 4, 8)])
    pred = _boxes((4, 8), [(0, 0, 4, 8)])  # one prediction over two nuclei
    assert aji(truth, pred) == pytest.approx(32 / 64)
    assert aji(truth, pred, plus=True) == pytest.approx(16 / (32 + 16))
    q = panoptic_quality(truth, pred)
    assert q["pq"] == 0 and q["dq"] == 0


def test_unmatched_predictions_enlarge_the_union():
    from napari_slideseg.metrics import aji, panoptic_quality

    truth = _boxes((10, 10), [(0, 0, 4, 4)])
    pred = _boxes((10, 10), [(0, 0, 4, 4), (6, 6, 8, 11)])  # 2 x 4 = 8 px spurious
    assert aji(truth, pred) == pytest.approx(16 / 24)
    assert aji(truth, pred, plus=True) == pytest.approx(16 / 24)
    q = panoptic_quality(truth, pred)
    assert q["dq"] == pytest.approx(1 / 1.5) and q["sq"] == 1


def test_instance_report_mean_vs_aggregate_and_per_type(tmp_path):
    from napari_slideseg.metrics import instance_report

    t1 = _boxes((8, 8), [(0, 0, 4, 4), (4, 4, 8, 8)])
    p1 = t1.copy()  # perfect
    t2 = _boxes((8, 8), [(0, 0, 4, 4)])
    p2 = np.zeros_like(t2)  # all missed
    types = [({1: 1, 2: 2}, {1: 1, 2: 1}), ({1: 1}, {})]
    rows = instance_report(
        [("a", t1, p1), ("b", t2, p2)],
        types=types,
        type_names=["background", "x", "y"],
        report=tmp_path / "r.csv",
    )
    a, b, mean, allrow = rows
    assert a["pq"] == 1 and b["pq"] == 0 and mean["pq"] == 0.5
    # aggregated: TP 2, FP 0, FN 1 -> DQ 2 / 2.5
    assert allrow["pq"] == pytest.approx(0.8) and allrow["dq"] == pytest.approx(0.8)
    assert allrow["aji"] == pytest.approx(32 / 48)
    # types: image a predicts nucleus 2 as type x -> type x: TP 1, FP 1; type y: FN 1
    assert a["pq_x"] == pytest.approx(1 / 1.5) and a["pq_y"] == 0
    assert a["mpq"] == pytest.approx((1 / 1.5) / 2)
    assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("image,")
