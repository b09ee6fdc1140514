"""Pixel scores: per-class confusion counts streamed over blocks, Dice and IoU."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..io.annotations import IGNORE_INDEX
from .errors import MetricsError


def _check_values(what: str, a: np.ndarray, n_classes: int) -> None:
    """Refuse class indices outside ``0 .. n_classes - 1`` (they would be scored as right)."""
    if a.size and (a.min() < 0 or a.max() >= n_classes):
        bad = int(a.max()) if a.max() >= n_classes else int(a.min())
        count = int(((a < 0) | (a >= n_classes)).sum())
        raise MetricsError(
            f"the {what} holds label value {bad} ({count} px in this block outside the classes), "
            f"but there are only {n_classes} classes (values 0-{n_classes - 1}): pass the class "
            "names of every value, or a matching class map"
        )


def _as_classes(what: str, a: np.ndarray) -> np.ndarray:
    """``a`` as int64 class indices; a float block with a non-integer value is refused."""
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            value = a[bad].flat[0]
            raise MetricsError(
                f"the {what} holds non-integer values (e.g. {value!r}, {int(bad.sum())} px in this "
                f"block; dtype {a.dtype}); pass class indices (integers), e.g. the argmax of "
                "probabilities or a thresholded map, not probabilities"
            )
    elif a.dtype.kind not in "biu":
        raise MetricsError(f"the {what} must hold integer class indices, not dtype {a.dtype}")
    return a.astype(np.int64)


def confusion_counts(pred: Any, truth: Any, n_classes: int, block: int = 4096) -> np.ndarray:
    """``(n_classes, 3)`` int64 array of TP, FP, FN per class (NumPy or dask inputs).

    A value outside ``0 .. n_classes - 1`` in either map is an error
    (:class:`MetricsError`): left out, its pixels would count as neither
    right nor wrong. The one exception: truth pixels holding the ignore value
    255 (:data:`~napari_slideseg.io.annotations.IGNORE_INDEX`: unannotated
    areas of a QuPath annotation mask) are not scored, whatever is predicted
    there.

    Parameters
    ----------
    pred, truth : array-like
        2-D class-index maps of the same shape (NumPy, dask, zarr).
    n_classes : int
        Number of classes.
    block : int
        Side of the blocks read at a time.

    Returns
    -------
    numpy.ndarray
        Row ``c``: true positives, false positives, false negatives of class ``c``.

    Raises
    ------
    MetricsError
        Shapes differ, non-integer values, or values outside the classes.
    """
    if tuple(pred.shape) != tuple(truth.shape):
        raise MetricsError(
            f"prediction shape {tuple(pred.shape)} and truth shape {tuple(truth.shape)} differ"
        )
    out = np.zeros((n_classes, 3), np.int64)
    h, w = pred.shape[:2]
    for y in range(0, h, block):
        for x in range(0, w, block):
            p = pred[y : y + block, x : x + block]
            t = truth[y : y + block, x : x + block]
            p = _as_classes("prediction", np.asarray(p.compute() if hasattr(p, "compute") else p))
            t = _as_classes("truth", np.asarray(t.compute() if hasattr(t, "compute") else t))
            p, t = p.ravel(), t.ravel()
            if n_classes <= IGNORE_INDEX and (t == IGNORE_INDEX).any():
                keep = t != IGNORE_INDEX
                p, t = p[keep], t[keep]
            _check_values("prediction", p, n_classes)
            _check_values("truth", t, n_classes)
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
    """Per-class Dice and IoU from TP/FP/FN counts (NaN where the class is absent from both).

    Parameters
    ----------
    counts : numpy.ndarray
        ``(n_classes, 3)`` counts from :func:`confusion_counts`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(dice, iou)``, one float per class.
    """
    tp, fp, fn = counts[:, 0].astype(float), counts[:, 1].astype(float), counts[:, 2].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        dice = np.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
    return dice, iou
