"""Segmentation metrics and per-image reports (Dice, IoU, PQ, AJI), streaming over blocks.

Dice and IoU are computed from per-class confusion counts (TP, FP, FN)
accumulated block by block, so slide-sized label maps never need to be in
memory. Conventions: a class absent from both prediction and truth scores
NaN for that image (it is left out of the means rather than counted as a
perfect 1.0); the report's ``mean`` row averages each class over the images
where it is defined, and the ``all`` row pools the counts of every image
(the dataset-level score).

- :mod:`.pixel`: confusion counts, Dice and IoU
- :mod:`.instance`: overlaps of instance maps, DQ/SQ/PQ, AJI and AJI+
- :mod:`.reports`: the :func:`evaluate` and :func:`instance_report` tables
- :mod:`.table`: the CSV report, written atomically
"""

from .errors import MetricsError
from .instance import (
    PanopticQuality,
    PQCounts,
    aji,
    aji_counts,
    instance_overlaps,
    panoptic_quality,
    pq_counts,
    pq_from_counts,
)
from .pixel import confusion_counts, dice_iou
from .reports import evaluate, instance_report
from .table import check_report, round6, write_csv

#: Former private name of :func:`instance_overlaps` (tests/infer/test_hover.py imports it).
_pairs = instance_overlaps

__all__ = [
    "MetricsError",
    "PQCounts",
    "PanopticQuality",
    "aji",
    "aji_counts",
    "check_report",
    "confusion_counts",
    "dice_iou",
    "evaluate",
    "instance_overlaps",
    "instance_report",
    "panoptic_quality",
    "pq_counts",
    "pq_from_counts",
    "round6",
    "write_csv",
]
