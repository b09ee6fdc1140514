"""Per-image reports: Dice/IoU tables (:func:`evaluate`), instance tables (:func:`instance_report`).

Conventions: a class absent from both prediction and truth scores NaN for
that image (it is left out of the means rather than counted as a perfect
1.0); the report's ``mean`` row averages each class over the images where it
is defined, and the ``all`` row pools the counts of every image (the
dataset-level score).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MetricsError
from .instance import PQCounts, aji_counts, pq_counts, pq_from_counts
from .pixel import confusion_counts, dice_iou
from .table import check_report, round6, write_csv

logger = logging.getLogger(__name__)


def evaluate(
    pairs: Iterable[tuple[str, Any, Any]],
    class_names: Sequence[str],
    *,
    report: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Per-image, per-class Dice and IoU, plus ``mean`` and ``all`` rows.

    Parameters
    ----------
    pairs : iterable of tuple
        ``(image_id, prediction, truth)`` label arrays (class indices).
    class_names : sequence of str
        Names for the report's columns (the ClassMap's names).
    report : str or os.PathLike, optional
        CSV path (written atomically; refused up front if it is a directory).

    Returns
    -------
    list of dict
        One row per image (``image``, ``dice_<class>``, ``iou_<class>``,
        ``mean_dice_fg``, ``mean_iou_fg``), then the ``mean`` and ``all`` rows
        when there was an image.

    Raises
    ------
    MetricsError
        For a ``class_names`` that is not a list of names, a pair that is
        not ``(image_id, prediction, truth)`` arrays (named by its id or
        position), maps of different shapes, values outside the classes or
        non-integer values (float maps whose values are all integers are
        accepted).
    """
    if isinstance(class_names, str | bytes) or not hasattr(class_names, "__len__"):
        raise MetricsError(
            f"class_names must be a list of class names (e.g. ['background', 'gland']), "
            f"not {type(class_names).__name__} {class_names!r}"
        )
    class_names = [str(c) for c in class_names]
    if not class_names:
        raise MetricsError("class_names is empty: give the name of every class")
    if report is not None:
        check_report(Path(report))
    n = len(class_names)
    rows: list[dict[str, Any]] = []
    total = np.zeros((n, 3), np.int64)
    per_image = []
    for k, item in enumerate(pairs):
        image_id, pred, truth = _pair(k, item)
        try:
            c = confusion_counts(pred, truth, n)
        except MetricsError as err:
            raise MetricsError(f"{image_id}: {err}") from err
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
        write_csv(Path(report), rows)
    return rows


def _pair(k: int, item: Any) -> tuple[str, Any, Any]:
    """Pair ``k`` as ``(image_id, prediction, truth)``; malformed pairs are refused by position."""
    if not isinstance(item, tuple | list) or len(item) != 3:
        size = f" of {len(item)} items" if isinstance(item, tuple | list) else ""
        raise MetricsError(
            f"pair {k}: expected (image_id, prediction, truth), got a {type(item).__name__}{size}"
        )
    image_id, pred, truth = item
    for what, a in (("prediction", pred), ("truth", truth)):
        if a is None or not hasattr(a, "shape") or len(a.shape) < 2:
            got = "None" if a is None else f"{type(a).__name__} {getattr(a, 'shape', '')}".strip()
            raise MetricsError(
                f"pair {k} ({image_id}): the {what} must be a 2-D label array, not {got}"
            )
    return str(image_id), pred, truth


def _row(image_id: str, dice: np.ndarray, iou: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    row: dict[str, Any] = {"image": image_id}
    for k, name in enumerate(names):
        row[f"dice_{name}"] = round6(dice[k])
    for k, name in enumerate(names):
        row[f"iou_{name}"] = round6(iou[k])
    fg = dice[1:] if len(dice) > 1 else dice
    fgi = iou[1:] if len(iou) > 1 else iou
    row["mean_dice_fg"] = round6(np.nanmean(fg)) if np.isfinite(fg).any() else float("nan")
    row["mean_iou_fg"] = round6(np.nanmean(fgi)) if np.isfinite(fgi).any() else float("nan")
    # (means over foreground classes only; the background is in its own columns)
    return row


def _no_counts() -> PQCounts:
    return {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0}


def _add_counts(acc: PQCounts, c: PQCounts) -> None:
    """Add ``c`` into ``acc`` (field by field, in the order :func:`pq_counts` gives them)."""
    acc["tp"] += c["tp"]
    acc["fp"] += c["fp"]
    acc["fn"] += c["fn"]
    acc["iou_sum"] += c["iou_sum"]


def _typed(inst: np.ndarray, types: dict[int, int] | np.ndarray, t: int) -> np.ndarray:
    """The instances of ``inst`` whose type is ``t`` (types: id -> type, or a per-pixel type map)."""
    if isinstance(types, dict):
        wanted = np.fromiter((i for i, v in types.items() if v == t), np.int64)
        return np.where(np.isin(inst, wanted), inst, 0)
    from ..instances.targets import instance_types, relabel_sequential

    seq = relabel_sequential(inst)  # compact ids: tables sized by the count, not the largest id
    tt = instance_types(seq, np.asarray(types))
    keep = np.zeros(int(seq.max()) + 1, bool)
    for i, v in tt.items():
        keep[i] = v == t
    keep[0] = False
    return np.where(keep[seq], inst, 0)


def _max_type(t: Any) -> int:
    if isinstance(t, dict):
        return max(t.values(), default=0)
    return int(np.asarray(t).max()) if np.asarray(t).size else 0


def _check_instance_maps(image_id: Any, truth: np.ndarray, pred: np.ndarray) -> None:
    """Refuse maps of different shapes and a truth that is a 0/255 binary mask."""
    if truth.shape != pred.shape:
        raise MetricsError(
            f"{image_id}: the prediction is {pred.shape[1]} x {pred.shape[0]} px but the "
            f"truth is {truth.shape[1]} x {truth.shape[0]} px (width x height); they must "
            "cover the same pixels"
        )
    if truth.dtype == np.uint8 and set(np.unique(truth).tolist()) == {0, 255}:
        raise MetricsError(
            f"{image_id}: the truth holds only the values 0 and 255: a binary mask, not an "
            "instance map (one id per object); label its objects first "
            "(e.g. skimage.measure.label)"
        )


def _type_columns(
    image_id: Any,
    truth: np.ndarray,
    pred: np.ndarray,
    types: tuple[Any, Any],
    names: list[str],
    type_tot: dict[int, PQCounts],
) -> dict[str, Any]:
    """One image's ``pq_<type>`` and ``mpq`` columns (its counts added into ``type_tot``)."""
    tt, tp_ = types
    n_types = max(len(names), 1 + max(_max_type(tt), _max_type(tp_)))
    if names and n_types > len(names):
        logger.debug("%s: types %d.. have no name: columns named by number", image_id, len(names))
    cols: dict[str, Any] = {}
    pqs = []
    for t in range(1, n_types):
        ct = pq_counts(_typed(truth, tt, t), _typed(pred, tp_, t))
        _add_counts(type_tot.setdefault(t, _no_counts()), ct)
        q = pq_from_counts(ct)["pq"]
        cols[f"pq_{names[t] if t < len(names) else t}"] = q
        pqs.append(q)
    cols["mpq"] = float(np.nanmean(pqs)) if not all(np.isnan(pqs)) else float("nan")
    return cols


def _mean_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``mean`` row: each column averaged over the images (NaN where none has a value)."""
    keys = [k for k in rows[0] if k not in ("image",)]
    mean: dict[str, Any] = {"image": "mean"}
    for k in keys:
        vals = np.array([r.get(k, np.nan) for r in rows], float)
        mean[k] = float(np.nanmean(vals)) if not np.isnan(vals).all() else float("nan")
    return mean


def _all_row(
    rows: list[dict[str, Any]],
    aji_tot: list[int],
    aji_plus_tot: list[int],
    pq_tot: PQCounts,
    type_tot: dict[int, PQCounts],
    names: list[str],
) -> dict[str, Any]:
    """The ``all`` row: AJI and PQ from the counts summed over every image, and ``mPQ``."""
    allrow: dict[str, Any] = {
        "image": "all",
        "n_true": sum(r["n_true"] for r in rows),
        "n_pred": sum(r["n_pred"] for r in rows),
        "aji": aji_tot[0] / aji_tot[1] if aji_tot[1] else float("nan"),
        "aji+": aji_plus_tot[0] / aji_plus_tot[1] if aji_plus_tot[1] else float("nan"),
        **pq_from_counts(pq_tot),
    }
    if type_tot:
        pqs = []
        for t, acc in sorted(type_tot.items()):
            q = pq_from_counts(acc)["pq"]
            allrow[f"pq_{names[t] if t < len(names) else t}"] = q
            pqs.append(q)
        allrow["mpq"] = float(np.nanmean(pqs))
    return allrow


def instance_report(
    pairs: Iterable[tuple[str, np.ndarray, np.ndarray]],
    *,
    types: Iterable[tuple[Any, Any]] | None = None,
    type_names: Sequence[str] | None = None,
    report: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """AJI, AJI+, DQ/SQ/PQ (and per-type PQ) per image, plus ``mean`` and ``all`` rows.

    ``mean`` is the per-image average (what HoVer-Net's and MoNuSeg's papers
    report); ``all`` aggregates over the dataset: AJI from the summed
    intersections and unions, PQ from summed TP/FP/FN/IoU, and ``mPQ`` as the
    mean of the aggregated per-type PQs (the CoNIC/PanNuke "mPQ+").

    Parameters
    ----------
    pairs : iterable of tuple
        ``(image_id, truth, prediction)`` instance maps.
    types : iterable of tuple, optional
        Per image, ``(true types, predicted types)`` as per-pixel type maps or
        ``{id: type}`` dicts; adds ``pq_<type>`` and ``mpq`` columns.
    type_names : sequence of str, optional
        Names of the types (index 0 background) for the column names; types
        without a name are named by their number.
    report : str or os.PathLike, optional
        CSV written with the rows (floats rounded to 6 places).

    Returns
    -------
    list of dict
        One row per image (``image``, ``n_true``, ``n_pred``, ``aji``,
        ``aji+``, ``dq``, ``sq``, ``pq``...), then ``mean`` and ``all``.

    Raises
    ------
    MetricsError
        Maps of different shapes, or a truth that is a 0/255 binary mask.
    ValueError
        When there are no pairs.
    """
    rows: list[dict[str, Any]] = []
    aji_tot = [0, 0]  # summed intersections, unions
    aji_plus_tot = [0, 0]
    pq_tot = _no_counts()
    type_tot: dict[int, PQCounts] = {}
    types_iter = iter(types) if types is not None else None
    names = list(type_names or [])
    for image_id, truth, pred in pairs:
        truth, pred = np.asarray(truth), np.asarray(pred)
        _check_instance_maps(image_id, truth, pred)
        c, u = aji_counts(truth, pred)
        cp, up = aji_counts(truth, pred, plus=True)
        pc = pq_counts(truth, pred)
        _add_counts(pq_tot, pc)
        aji_tot[0] += c
        aji_tot[1] += u
        aji_plus_tot[0] += cp
        aji_plus_tot[1] += up
        row: dict[str, Any] = {
            "image": image_id,
            "n_true": int(len(np.unique(truth)) - (truth.min() == 0)),
            "n_pred": int(len(np.unique(pred)) - (pred.min() == 0)),
            "aji": c / u if u else float("nan"),
            "aji+": cp / up if up else float("nan"),
            **pq_from_counts(pc),
        }
        if types_iter is not None:
            row.update(_type_columns(image_id, truth, pred, next(types_iter), names, type_tot))
        rows.append(row)
    if not rows:
        raise ValueError("no image pairs to evaluate")
    rows += [_mean_row(rows), _all_row(rows, aji_tot, aji_plus_tot, pq_tot, type_tot, names)]
    if report is not None:
        write_csv(
            Path(report),
            [{k: round6(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
        )
    return rows
