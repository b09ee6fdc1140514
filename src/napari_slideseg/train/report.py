"""What a run reports: validation Dice/IoU, the metrics row per epoch, its files and result.

Validation scores pool the confusion counts of every validation batch and
follow :func:`napari_slideseg.metrics.dice_iou`'s convention: a class absent
from both the truth and the prediction of the whole validation set scores
NaN (not a perfect 1.0) and is left out of ``mean_dice`` / ``mean_iou``.
Unannotated pixels (:data:`~napari_slideseg.io.annotations.IGNORE_INDEX`)
are counted nowhere.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.annotations import IGNORE_INDEX
from ..io.files import atomic_path


@dataclass
class TrainResult:
    """How a run ended.

    Parameters
    ----------
    run_dir : Path
        The run folder.
    best_epoch : int
        The best epoch (1-based; 0 when none finished).
    best_value : float
        Its value of ``monitor``.
    history : list of dict
        The metrics row of every epoch.
    stopped_early : bool
        Whether ``patience`` ended the run.
    monitor : str
        What ``best_value`` is: ``train_loss`` when there was no validation.
    """

    run_dir: Path
    best_epoch: int
    best_value: float
    history: list[dict[str, Any]]
    stopped_early: bool = False
    monitor: str = "val_loss"  # what best_value is: train_loss when there was no validation


def confusion_stats(logits: Any, target: Any, n_classes: int, binary: bool) -> Any:
    """Per-class TP, FP, FN and TN of a batch, summed over its images.

    Parameters
    ----------
    logits : torch.Tensor
        ``(N, C, H, W)`` model output (``C == 1`` when ``binary``).
    target : torch.Tensor
        ``(N, H, W)`` class indices;
        :data:`~napari_slideseg.io.annotations.IGNORE_INDEX` pixels (no
        label) count in none of the four.
    n_classes : int
        The number of classes.
    binary : bool
        One sigmoid channel: class 1 where the logit is above 0.

    Returns
    -------
    torch.Tensor
        ``(4, n_classes)`` integer counts; batches add up.
    """
    import segmentation_models_pytorch as smp
    import torch

    pred = (logits[:, 0] > 0).long() if binary else logits.argmax(1)
    tp, fp, fn, tn = smp.metrics.get_stats(
        pred, target.long(), mode="multiclass", ignore_index=IGNORE_INDEX, num_classes=n_classes
    )
    return torch.stack([tp.sum(0), fp.sum(0), fn.sum(0), tn.sum(0)])


def _nanmean(values: np.ndarray) -> float:
    """Mean of the defined values; NaN when none is."""
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def dice_scores(stats: Any, names: Sequence[str], background: int) -> dict[str, float]:
    """Per-class Dice and IoU from pooled counts, and their means over the foreground classes.

    Parameters
    ----------
    stats : torch.Tensor or numpy.ndarray
        ``(4, n_classes)`` TP, FP, FN, TN counts (:func:`confusion_stats`, summed).
    names : sequence of str
        The class names (``dice_<name>``, ``iou_<name>``).
    background : int
        The class left out of the means (unless it is the only one).

    Returns
    -------
    dict
        ``dice_<name>``, ``iou_<name>`` per class, ``mean_dice`` and ``mean_iou``.
        A class absent from both truth and prediction is NaN and left out of
        the means (NaN when no foreground class is defined), as in
        :func:`napari_slideseg.metrics.dice_iou`.
    """
    from ..metrics import dice_iou

    counts = stats.cpu().numpy() if hasattr(stats, "cpu") else np.asarray(stats)
    dice, iou = dice_iou(counts[:3].T)
    out = {}
    for i, n in enumerate(names):
        out[f"dice_{n}"] = float(dice[i])
        out[f"iou_{n}"] = float(iou[i])
    fg = [i for i in range(len(names)) if i != background] or list(range(len(names)))
    out["mean_dice"] = _nanmean(dice[fg])
    out["mean_iou"] = _nanmean(iou[fg])
    return out


def epoch_row(
    epoch: int,
    train_loss: float,
    val_loss: float,
    scores: dict[str, float],
    term_sums: dict[str, float],
    seen: int,
    lr: float,
    seconds: float,
) -> dict[str, Any]:
    """The metrics row of an epoch (``metrics.csv``, the history, the card's metrics).

    Parameters
    ----------
    epoch : int
        0-based epoch (the row holds it 1-based).
    train_loss, val_loss : float
        Mean losses (``val_loss`` NaN without validation).
    scores : dict
        :func:`dice_scores` of the validation.
    term_sums : dict
        Loss terms summed over the training patches (HoVer's ``np``, ``hv`` ...).
    seen : int
        The number of training patches.
    lr : float
        The learning rate.
    seconds : float
        The epoch's duration.

    Returns
    -------
    dict
        Values rounded to 6 digits (``seconds`` to 2).
    """
    return {
        "epoch": epoch + 1,
        "train_loss": round(train_loss, 6),
        "val_loss": round(val_loss, 6),
        **{k: round(v, 6) for k, v in scores.items()},
        **{f"train_{k}": round(v / max(seen, 1), 6) for k, v in term_sums.items()},
        "lr": lr,
        "seconds": round(seconds, 2),
    }


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """Write the history as ``metrics.csv`` (atomically; columns of every row, first seen first).

    Parameters
    ----------
    path : Path
        The CSV file.
    history : list of dict
        The metrics rows; nothing is written when empty.
    """
    if not history:
        return
    keys = list(history[0])
    for row in history[1:]:
        keys += [k for k in row if k not in keys]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def plot(path: Path, history: list[dict[str, Any]]) -> None:
    """Draw the loss and mean-Dice curves of the history to a PNG (atomically).

    Parameters
    ----------
    path : Path
        The PNG file.
    history : list of dict
        The metrics rows.
    """
    # Agg canvas on a bare Figure: no pyplot, no backend switch (this runs in
    # worker threads next to napari's Qt canvas).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ep = [h["epoch"] for h in history]
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
    ax1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(ep, [h["mean_dice"] for h in history], "o-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation mean Dice")
    ax2.set_ylim(0, 1)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)


def write_summary(path: Path, result: TrainResult) -> None:
    """Write ``done.json``: the best epoch, its value and whether the run stopped early.

    Parameters
    ----------
    path : Path
        The JSON file.
    result : TrainResult
        The finished run.
    """
    path.write_text(
        json.dumps(
            {
                "best_epoch": result.best_epoch,
                "best_value": result.best_value,
                "stopped_early": result.stopped_early,
            }
        )
    )
