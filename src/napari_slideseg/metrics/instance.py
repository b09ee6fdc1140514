"""Instance scores: the overlap table of two instance maps, DQ/SQ/PQ, AJI and AJI+."""

from __future__ import annotations

from typing import NamedTuple, TypedDict

import numpy as np


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


def instance_overlaps(truth: np.ndarray, pred: np.ndarray) -> _Overlaps:
    """Sparse overlaps: true ids, pred ids (both sequential from 1), areas and intersections.

    Parameters
    ----------
    truth, pred : numpy.ndarray
        Instance maps of the same shape (0: background, any ids).

    Returns
    -------
    _Overlaps
        Instance counts, areas per id, and one entry per overlapping
        ``(true, predicted)`` pair with the pixels they share.
    """
    from ..instances.targets import relabel_sequential

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
    nt, np_, at, ap, ti, pi, inter = instance_overlaps(truth, pred)
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

    nt, np_, at, ap, ti, pi, inter = instance_overlaps(truth, pred)
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
