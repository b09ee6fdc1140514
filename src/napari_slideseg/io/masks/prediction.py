"""Prediction folders: finished or not, and which box of the slide they cover.

A prediction whose run has not finished (killed, failed or still running)
reads its unfinished blocks as background; it is refused unless the caller
takes it as it is (``partial=True``).
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SlideSegError

logger = logging.getLogger(__name__)


class IncompletePredictionError(SlideSegError, ValueError):
    """A prediction folder whose run has not finished (killed, failed or still running).

    Its unfinished blocks read as background, so using it as a result would be
    silently wrong; ``partial=True`` (``--partial``) takes it as it is, with a
    :class:`PartialPredictionWarning`.
    """

    def __init__(self, path: str | os.PathLike, missing: int, total: int) -> None:
        self.path = os.fspath(path)
        self.missing = missing
        self.total = total
        super().__init__(
            f"{self.path}: an incomplete prediction, {missing} of {total} blocks missing (the "
            "run was interrupted or is still running): finish it with `slideseg predict ... "
            "--resume`, or pass --partial (partial=True) to use it as it is"
        )


class PartialPredictionWarning(UserWarning):
    """An incomplete prediction is used as it is (``partial=True``)."""


def prediction_root(path: str | os.PathLike) -> Path | None:
    """The prediction folder ``path`` is (or lies in, e.g. ``out.zarr/labels``), else None.

    Parameters
    ----------
    path : str or os.PathLike
        A zarr store, or a node inside one.

    Returns
    -------
    Path or None
        ``path``, its parent or grandparent, whichever is a zarr group with
        ``slideseg_inference`` attributes.
    """
    import zarr

    p = Path(path)
    for cand in (p, p.parent, p.parent.parent):
        if not (cand / "zarr.json").is_file() and not (cand / ".zattrs").is_file():
            continue
        try:
            attrs = dict(zarr.open_group(str(cand), mode="r").attrs)
        except Exception:
            continue
        if isinstance(attrs.get("slideseg_inference"), dict):
            return cand
    return None


def missing_blocks(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(missing, total)`` blocks of an incomplete prediction at ``path``; None if complete or not one.

    Parameters
    ----------
    path : str or os.PathLike
        A prediction folder (or a node inside one).

    Returns
    -------
    tuple of int or None
        Blocks not marked done and all blocks; ``None`` for a finished
        prediction or anything that is not one.
    """
    import zarr

    root_path = prediction_root(path)
    if root_path is None:
        return None
    root = zarr.open_group(str(root_path), mode="r")
    attrs: dict[str, Any] = dict(root.attrs)
    info = attrs["slideseg_inference"]
    if info.get("complete"):
        return None
    total = len(info.get("blocks") or [])
    try:
        marks = root["done"]
        if not isinstance(marks, zarr.Array):
            raise TypeError("'done' is a group, not an array")
        done = np.asarray(marks[:])
        return int((done == 0).sum()), int(done.size)
    except Exception as exc:  # no readable done marks: nothing is known to be finished
        logger.debug(
            "%s: no readable done marks (%s); all %d blocks count as missing", root_path, exc, total
        )
        return total, total


def predicted_box(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """``(y0, x0, y1, x1)`` in the prediction's pixels when it covers only a region or ROI.

    ``None`` for a whole-slide prediction or anything that is not a prediction
    folder. Scores and comparisons must be taken inside this box: outside it
    nothing was predicted.

    Parameters
    ----------
    path : str or os.PathLike
        A prediction folder.

    Returns
    -------
    tuple of int or None
        The box, clipped to the slide level; ``None`` when it is the whole
        level, empty, or ``path`` is not a prediction.
    """
    p = Path(path)
    if not p.is_dir():
        return None
    try:
        import zarr

        attrs: dict[str, Any] = dict(zarr.open_group(str(p), mode="r").attrs)
        meta = attrs.get("slideseg_inference") or {}
    except Exception:
        return None
    cfg = meta.get("config") or {}
    shape = meta.get("level_shape")
    if not shape or (not cfg.get("region") and not cfg.get("roi")):
        return None
    h, w = int(shape[0]), int(shape[1])
    y0, x0, y1, x1 = 0, 0, h, w
    if cfg.get("region"):
        a, b, c, d = (int(v) for v in cfg["region"])
        y0, x0, y1, x1 = max(0, a), max(0, b), min(h, c), min(w, d)
    if cfg.get("roi"):
        pts = np.asarray(cfg["roi"], np.float64)
        y0, x0 = max(y0, int(np.floor(pts[:, 0].min()))), max(x0, int(np.floor(pts[:, 1].min())))
        y1 = min(y1, int(np.ceil(pts[:, 0].max())) + 1)
        x1 = min(x1, int(np.ceil(pts[:, 1].max())) + 1)
    return (y0, x0, y1, x1) if y1 > y0 and x1 > x0 else None


def check_prediction(path: str | os.PathLike, partial: bool = False) -> int:
    """Refuse an incomplete prediction at ``path`` unless ``partial``; returns the missing blocks.

    Raises :class:`IncompletePredictionError` naming the folder and how many
    blocks are missing; with ``partial=True`` a :class:`PartialPredictionWarning`
    says the same and the count is returned (0 for anything else).

    Parameters
    ----------
    path : str or os.PathLike
        Any input; only prediction folders are checked.
    partial : bool
        Take an incomplete prediction as it is, with a warning.

    Returns
    -------
    int
        Missing blocks (0 for a finished prediction or anything else).

    Raises
    ------
    IncompletePredictionError
        If ``path`` is an incomplete prediction and not ``partial``.
    """
    gap = missing_blocks(path)
    if gap is None:
        return 0
    missing, total = gap
    root = prediction_root(path)
    assert root is not None  # missing_blocks found the prediction root
    if not partial:
        raise IncompletePredictionError(root, missing, total)
    warnings.warn(
        f"{root}: an incomplete prediction, {missing} of {total} blocks missing: they read "
        "as background (partial=True)",
        PartialPredictionWarning,
        stacklevel=3,
    )
    return missing
