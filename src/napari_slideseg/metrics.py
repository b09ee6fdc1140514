"""Segmentation metrics and per-image reports (Dice, IoU), streaming over blocks.

Dice and IoU are computed from per-class confusion counts (TP, FP, FN)
accumulated block by block, so slide-sized label maps never need to be in
memory. Conventions: a class absent from both prediction and truth scores
NaN for that image (it is left out of the means rather than counted as a
perfect 1.0); the report's ``mean`` row averages each class over the images
where it is defined, and the ``all`` row pools the counts of every image
(the dataset-level score).
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def confusion_counts(pred: Any, truth: Any, n_classes: int, block: int = 4096) -> np.ndarray:
    """``(n_classes, 3)`` int64 array of TP, FP, FN per class (NumPy or dask inputs)."""
    if tuple(pred.shape) != tuple(truth.shape):
        raise ValueError(
            f"prediction shape {tuple(pred.shape)} and truth shape {tuple(truth.shape)} differ"
        )
    out = np.zeros((n_classes, 3), np.int64)
    h, w = pred.shape[:2]
    for y in range(0, h, block):
        for x in range(0, w, block):
            p = pred[y : y + block, x : x + block]
            t = truth[y : y + block, x : x + block]
            p = np.asarray(p.compute() if hasattr(p, "compute") else p).astype(np.int64).ravel()
            t = np.asarray(t.compute() if hasattr(t, "compute") else t).astype(np.int64).ravel()
            cm = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)[
                : n_classes * n_classes
            ]
            cm = cm.reshape(n_classes, n_classes)  # rows: truth, cols: prediction
            tp = np.diag(cm)
            out[:, 0] += tp
            out[:, 1] += cm.sum(0) - tp
            out[:, 2] += cm.sum(1) - tp
    return out


def dice_iou(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Dice and IoU from TP/FP/FN counts (NaN where the class is absent from both)."""
    tp, fp, fn = counts[:, 0].astype(float), counts[:, 1].astype(float), counts[:, 2].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
    return dice, iou


def evaluate(
    pairs: Iterable[tuple[str, Any, Any]],
    class_names: Sequence[str],
    *,
    report: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Per-image, per-class Dice and IoU, plus ``mean`` and ``all`` rows.

    Parameters
    ----------
    pairs
        ``(image_id, prediction, truth)`` label arrays (class indices).
    class_names
        Names for the report's columns (the ClassMap's names).
    report
        Optional CSV path (written atomically).
    """
    n = len(class_names)
    rows: list[dict[str, Any]] = []
    total = np.zeros((n, 3), np.int64)
    per_image = []
    for image_id, pred, truth in pairs:
        c = confusion_counts(pred, truth, n)
        total += c
        dice, iou = dice_iou(c)
        per_image.append((dice, iou))
        rows.append(_row(image_id, dice, iou, class_names))
    if per_image:
        with warnings.catch_warnings():  # a class absent from every image: NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            d = np.nanmean(np.stack([p[0] for p in per_image]), 0)
            i = np.nanmean(np.stack([p[1] for p in per_image]), 0)
        rows.append(_row("mean", d, i, class_names))
        td, ti = dice_iou(total)
        rows.append(_row("all", td, ti, class_names))
    if report is not None:
        _write_csv(Path(report), rows)
    return rows


def _row(image_id: str, dice: np.ndarray, iou: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"image": image_id}
    for k, name in enumerate(names):
        row[f"dice_{name}"] = _r(dice[k])
    for k, name in enumerate(names):
        row[f"iou_{name}"] = _r(iou[k])
    fg = dice[1:] if len(dice) > 1 else dice
    fgi = iou[1:] if len(iou) > 1 else iou
    row["mean_dice_fg"] = _r(np.nanmean(fg)) if np.isfinite(fg).any() else float("nan")
    row["mean_iou_fg"] = _r(np.nanmean(fgi)) if np.isfinite(fgi).any() else float("nan")
    # (means over foreground classes only; the background is in its own columns)
    return row


def _r(v: float) -> float:
    return round(float(v), 6) if np.isfinite(v) else float("nan")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
