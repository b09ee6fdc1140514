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
import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import numpy as np

from .io.errors import SlideSegError
from .io.files import atomic_path

logger = logging.getLogger(__name__)


class MetricsError(SlideSegError, ValueError):
    """Label maps that cannot be scored as given (shapes differ, values outside the classes)."""


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
    right nor wrong.

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
        _check_report(Path(report))
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


def _check_report(path: Path) -> None:
    if path.is_dir():
        raise MetricsError(f"{path}: is a directory; give a file name for the report")


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


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` to ``path`` atomically (the temporary file is removed on any failure).

    Parameters
    ----------
    path : Path
        The CSV file.
    rows : list of dict
        The rows; the first row's keys are the columns.

    Raises
    ------
    MetricsError
        When ``path`` is a directory or there are no rows.
    """
    _check_report(path)
    if not rows:
        raise MetricsError(f"{path}: no image pairs to report")
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# -----------------------------------------------------------------------------
# instance metrics: AJI, AJI+, DQ/SQ/PQ, per-type PQ
# -----------------------------------------------------------------------------
class _Overlaps(NamedTuple):
    """The sparse overlap table of two instance maps (ids sequential from 1)."""

    n_true: int
    n_pred: int
    area_true: np.ndarray  # (n_true + 1,) pixel count per true id (0: background)
    area_pred: np.ndarray  # (n_pred + 1,) pixel count per predicted id
    true_ids: np.ndarray  # one entry per overlapping (true, predicted) pair
    pred_ids: np.ndarray
    intersection: np.ndarray  # int64 pixels the pair shares


class PQCounts(TypedDict):
    """What :func:`pq_counts` counts: summed over images for a dataset score.

    Attributes
    ----------
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched true instances.
    iou_sum : float
        Summed IoU of the matched pairs.
    """

    tp: int
    fp: int
    fn: int
    iou_sum: float


class PanopticQuality(TypedDict):
    """Detection, segmentation and panoptic quality (NaN where nothing is there to score).

    Attributes
    ----------
    dq : float
        Detection quality, ``TP / (TP + FP / 2 + FN / 2)``.
    sq : float
        Segmentation quality, the mean IoU of the matched pairs.
    pq : float
        Panoptic quality, ``dq * sq``.
    """

    dq: float
    sq: float
    pq: float


def _pairs(truth: np.ndarray, pred: np.ndarray) -> _Overlaps:
    """Sparse overlaps: true ids, pred ids (both sequential from 1), areas and intersections."""
    from .instances.targets import relabel_sequential

    t = relabel_sequential(np.asarray(truth))
    p = relabel_sequential(np.asarray(pred))
    nt, np_ = int(t.max()), int(p.max())
    at = np.bincount(t.ravel(), minlength=nt + 1)
    ap = np.bincount(p.ravel(), minlength=np_ + 1)
    both = (t > 0) & (p > 0)
    key = t[both].astype(np.int64) * (np_ + 1) + p[both]
    keys, inter = np.unique(key, return_counts=True)
    ti, pi = keys // (np_ + 1), keys % (np_ + 1)
    return _Overlaps(nt, np_, at, ap, ti, pi, inter.astype(np.int64))


def _no_counts() -> PQCounts:
    return {"tp": 0, "fp": 0, "fn": 0, "iou_sum": 0.0}


def _add_counts(acc: PQCounts, c: PQCounts) -> None:
    """Add ``c`` into ``acc`` (field by field, in the order :func:`pq_counts` gives them)."""
    acc["tp"] += c["tp"]
    acc["fp"] += c["fp"]
    acc["fn"] += c["fn"]
    acc["iou_sum"] += c["iou_sum"]


def pq_counts(truth: np.ndarray, pred: np.ndarray) -> PQCounts:
    """TP, FP, FN and the summed IoU of matched pairs (IoU > 0.5, unique by construction).

    Parameters
    ----------
    truth, pred : numpy.ndarray
        Instance maps of the same shape (0: background, any ids).

    Returns
    -------
    PQCounts
        The counts of this image.
    """
    nt, np_, at, ap, ti, pi, inter = _pairs(truth, pred)
    iou = inter / (at[ti] + ap[pi] - inter)
    match = iou > 0.5
    tp = int(match.sum())
    return {"tp": tp, "fp": np_ - tp, "fn": nt - tp, "iou_sum": float(iou[match].sum())}


def pq_from_counts(c: PQCounts) -> PanopticQuality:
    """DQ, SQ and PQ from :func:`pq_counts` (summed over images for the dataset score).

    Parameters
    ----------
    c : PQCounts
        Counts of one image or summed over several.

    Returns
    -------
    PanopticQuality
        NaN for all three when there is nothing to match.
    """
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    if tp + fp + fn == 0:
        return {"dq": float("nan"), "sq": float("nan"), "pq": float("nan")}
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = c["iou_sum"] / tp if tp else 0.0
    return {"dq": dq, "sq": sq, "pq": dq * sq}


def panoptic_quality(truth: np.ndarray, pred: np.ndarray) -> PanopticQuality:
    """DQ, SQ, PQ of two instance maps (Kirillov et al.; a match needs IoU > 0.5).

    Parameters
    ----------
    truth, pred : numpy.ndarray
        Instance maps of the same shape.

    Returns
    -------
    PanopticQuality
        The scores of this pair.
    """
    return pq_from_counts(pq_counts(truth, pred))


def aji_counts(truth: np.ndarray, pred: np.ndarray, plus: bool = False) -> tuple[int, int]:
    """Summed intersection and union of AJI (``plus=False``) or AJI+ (``plus=True``).

    AJI (Kumar et al. 2017): every true nucleus is paired with the prediction
    of highest IoU, even if another true nucleus already took it (a
    prediction can be counted several times); predictions never paired add
    their area to the union. AJI+ (Graham et al. 2019) pairs one-to-one by
    maximum total IoU (Hungarian), so over-merged predictions are not
    rewarded twice. True nuclei without any overlap add their area to the union.

    Parameters
    ----------
    truth, pred : numpy.ndarray
        Instance maps of the same shape.
    plus : bool
        AJI+ instead of AJI.

    Returns
    -------
    tuple of int
        ``(intersection, union)`` in pixels.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix

    nt, np_, at, ap, ti, pi, inter = _pairs(truth, pred)
    union = at[ti] + ap[pi] - inter
    iou = inter / union
    if not plus:
        best: dict[int, int] = {}
        for k in np.argsort(-iou, kind="stable"):
            best.setdefault(int(ti[k]), int(k))
        sel = np.fromiter(best.values(), np.int64, len(best))
    elif len(iou):
        m = coo_matrix((iou, (ti - 1, pi - 1)), shape=(nt, np_)).toarray()
        r, c = linear_sum_assignment(-m)
        ok = m[r, c] > 0
        lookup = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(ti, pi, strict=True))}
        sel = np.array(
            [lookup[(int(a) + 1, int(b) + 1)] for a, b in zip(r[ok], c[ok], strict=True)],
            np.int64,
        )
    else:
        sel = np.zeros(0, np.int64)
    c_sum = int(inter[sel].sum())
    u_sum = int(union[sel].sum())
    paired_t = set(ti[sel].tolist())
    paired_p = set(pi[sel].tolist())
    u_sum += int(sum(at[i] for i in range(1, nt + 1) if i not in paired_t))
    u_sum += int(sum(ap[i] for i in range(1, np_ + 1) if i not in paired_p))
    return c_sum, u_sum


def aji(truth: np.ndarray, pred: np.ndarray, plus: bool = False) -> float:
    """Aggregated Jaccard Index (``plus=True``: AJI+).

    Parameters
    ----------
    truth, pred : numpy.ndarray
        Instance maps of the same shape.
    plus : bool
        AJI+ instead of AJI (see :func:`aji_counts`).

    Returns
    -------
    float
        Intersection over union; NaN when both maps are empty.
    """
    c, u = aji_counts(truth, pred, plus)
    return c / u if u else float("nan")


def _typed(inst: np.ndarray, types: dict[int, int] | np.ndarray, t: int) -> np.ndarray:
    """The instances of ``inst`` whose type is ``t`` (types: id -> type, or a per-pixel type map)."""
    if isinstance(types, dict):
        wanted = np.fromiter((i for i, v in types.items() if v == t), np.int64)
        return np.where(np.isin(inst, wanted), inst, 0)
    from .instances.targets import instance_types, relabel_sequential

    seq = relabel_sequential(inst)  # compact ids: tables sized by the count, not the largest id
    tt = instance_types(seq, np.asarray(types))
    keep = np.zeros(int(seq.max()) + 1, bool)
    for i, v in tt.items():
        keep[i] = v == t
    keep[0] = False
    return np.where(keep[seq], inst, 0)


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
            tt, tp_ = next(types_iter)
            n_types = max(len(names), 1 + max(_max_type(tt), _max_type(tp_)))
            if names and n_types > len(names):
                logger.debug(
                    "%s: types %d.. have no name: columns named by number", image_id, len(names)
                )
            pqs = []
            for t in range(1, n_types):
                ct = pq_counts(_typed(truth, tt, t), _typed(pred, tp_, t))
                _add_counts(type_tot.setdefault(t, _no_counts()), ct)
                q = pq_from_counts(ct)["pq"]
                row[f"pq_{names[t] if t < len(names) else t}"] = q
                pqs.append(q)
            row["mpq"] = float(np.nanmean(pqs)) if not all(np.isnan(pqs)) else float("nan")
        rows.append(row)
    if not rows:
        raise ValueError("no image pairs to evaluate")
    keys = [k for k in rows[0] if k not in ("image",)]
    mean: dict[str, Any] = {"image": "mean"}
    for k in keys:
        vals = np.array([r.get(k, np.nan) for r in rows], float)
        mean[k] = float(np.nanmean(vals)) if not np.isnan(vals).all() else float("nan")
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
    rows += [mean, allrow]
    if report is not None:
        write_csv(
            Path(report),
            [{k: _r(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
        )
    return rows


def _max_type(t: Any) -> int:
    if isinstance(t, dict):
        return max(t.values(), default=0)
    return int(np.asarray(t).max()) if np.asarray(t).size else 0
