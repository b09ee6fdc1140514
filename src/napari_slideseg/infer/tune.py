"""Choose HoVer post-processing thresholds on annotated selection images.

The reference thresholds (NP 0.5, markers at energy 0.4, 10 px minimum, 21 px
Sobel, 5 px opening) were set for HoVer-Net's own training; a smaller model or
another dataset calibrates differently, and the thresholds decide how many
nuclei a slightly blurred NP map turns into. :func:`tune_hover` predicts the
maps of a few annotated images once, runs the post-processing for every
combination of a small grid and ranks them by panoptic quality (mean over
images). Use images that are neither training nor held-out test images, so the
held-out figures stay honest.

Images are read whole: this is for annotated tiles (MoNuSeg, CoNSeP, CPM
tiles are 256-1000 px), not for slides.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ..instances.postproc import HoverParams, hover_instances
from ..io.errors import SlideSegError
from ..models.card import ModelCard
from ..progress import Progress, drain


class TuneError(SlideSegError, ValueError):
    """Bad tuning inputs (the message names the file and the problem)."""


#: The grid :func:`tune_hover` searches by default (values at 0.25 um/px).
DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "np_threshold": (0.4, 0.5, 0.6),
    "marker_threshold": (0.3, 0.4, 0.5),
    "min_size": (10, 30, 60, 100),
    "sobel_ksize": (11, 21),
    "opening_size": (3, 5),
}


def _read_rgb(path: str | os.PathLike) -> np.ndarray:
    from ..io.slide import open_slide

    slide = open_slide(path)
    level = slide.levels[0]
    if level.shape[0] * level.shape[1] > 8192 * 8192:
        raise TuneError(
            f"{path}: {level.shape[1]} x {level.shape[0]} px is a slide, not a tile; "
            "tune on annotated tiles or regions"
        )
    im = np.asarray(level)  # a tile (checked above), never a slide
    if im.ndim == 2:
        im = np.repeat(im[..., None], 3, -1)
    return im[..., :3]


def predict_maps(
    model: Any,
    card: ModelCard,
    image: np.ndarray,
    *,
    tile: int | None = None,
    overlap: int = 64,
    zoom: float = 1.0,
    tta: str = "none",
) -> np.ndarray:
    """HoVer maps ``(C, H, W)`` of a whole tile: NP probability, H, V, type probabilities.

    ``tta`` averages the maps over flips (``"flips"``) or the 8 flips and quarter
    turns (``"d4"``), as ``slideseg predict --tta`` does.
    """
    import torch

    from .block import predict_block, read_block
    from .config import InferConfig

    t = tile or card.patch_size
    cfg = InferConfig(tile=t, overlap=overlap, zoom=zoom, tta=tta)
    h, w = image.shape[:2]
    pixels, offset = read_block(image, (0, 0, h, w), overlap, t, zoom)
    return predict_block([(model, card)], pixels, offset, (h, w), cfg, torch.device("cpu"))


def _combos(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    known = set(HoverParams.__dataclass_fields__)
    bad = set(grid) - known
    if bad:
        raise TuneError(f"unknown HoVer post-processing parameters {sorted(bad)}")
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def tile_zoom(card: ModelCard, mpp: Any, zoom: float, where: Any = "model") -> float:
    """The zoom that brings tiles of ``mpp`` µm/px to the model's resolution."""
    from ..validate import positive
    from .config import ZOOM_RANGE, zoom_for_ratio

    mpp = positive("mpp", mpp, error=TuneError)
    if zoom != 1.0:
        raise TuneError("give mpp or zoom, not both (mpp sets the zoom to the model's resolution)")
    if not card.mpp:
        raise TuneError(f"{where}: its card states no µm/px, so mpp cannot set the zoom; give zoom")
    z = zoom_for_ratio(mpp / card.mpp)
    if not ZOOM_RANGE[0] <= z <= ZOOM_RANGE[1]:
        raise TuneError(
            f"tiles at {mpp:g} µm/px and a model at {card.mpp:g} µm/px need zoom {z:.3g}, "
            "outside 1/8-8"
        )
    return z


def tune_hover_steps(
    model_path: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    truths: Sequence[str | os.PathLike],
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    zoom: float = 1.0,
    tta: str = "none",
    threads: int | None = None,
    mpp: float | None = None,
) -> Generator[Progress, None, tuple[HoverParams, list[dict[str, Any]]]]:
    """:func:`tune_hover` as a generator of progress events.

    ``mpp`` (µm/px of the tiles) sets the zoom to the model's resolution as
    ``predict``'s ``zoom="auto"`` does; it cannot be combined with a ``zoom``.
    """
    import torch

    from ..io.masks import read_instance_map
    from ..metrics import panoptic_quality
    from ..models.checkpoint import load_model
    from .config import TTA_MODES

    if tta not in TTA_MODES:
        raise TuneError(f"tta must be one of {TTA_MODES}, not {tta!r}")
    if len(images) != len(truths) or not images:
        raise TuneError(
            f"give one truth instance map per image ({len(images)} images, {len(truths)} truths)"
        )
    if threads:
        torch.set_num_threads(int(threads))
    model, card = load_model(model_path)
    if not card.is_hover:
        raise TuneError(f"{model_path}: a {card.kind!r} model; tuning needs a HoVer model")
    if mpp is not None:
        zoom = tile_zoom(card, mpp, zoom, model_path)
    base = HoverParams(**card.postproc)
    combos = _combos(grid or DEFAULT_GRID)
    keys = list(combos[0])
    current = {k: getattr(base, k) for k in keys}
    if current not in combos:
        combos.append(current)  # the card's own values, for comparison
    maps = []
    empty: list[str] = []
    for i, (ip, tp) in enumerate(zip(images, truths, strict=True)):
        image = _read_rgb(ip)
        truth = np.asarray(read_instance_map(tp))
        if truth.shape[:2] != image.shape[:2]:
            raise TuneError(
                f"{tp}: instance map is {truth.shape[1]} x {truth.shape[0]} but {ip} is "
                f"{image.shape[1]} x {image.shape[0]}"
            )
        if not truth.any():
            empty.append(str(tp))
        maps.append(
            (os.path.basename(str(ip)), predict_maps(model, card, image, zoom=zoom, tta=tta), truth)
        )
        yield Progress("predict", i + 1, len(images), os.path.basename(str(ip)))
    if len(empty) == len(maps):
        raise TuneError(
            f"{empty[0]}: {'every truth holds' if len(empty) > 1 else 'the truth holds'} no "
            "nucleus: PQ is 0 for every threshold, so nothing can be chosen; give annotated tiles"
        )
    if empty:
        import warnings

        warnings.warn(
            f"{', '.join(empty)}: no nucleus annotated; these tiles only count false positives",
            UserWarning,
            stacklevel=2,
        )
    rows: list[dict[str, Any]] = []
    for k, combo in enumerate(combos):
        params = replace(base, **combo)
        row: dict[str, Any] = dict(combo)
        pqs = []
        for name, p, truth in maps:
            inst, _ = hover_instances(p[0], p[1:3], None, params)
            pq = panoptic_quality(truth, inst)["pq"]
            row[f"pq_{name}"] = round(float(pq), 4)
            pqs.append(pq)
        row["pq_mean"] = round(float(np.mean(pqs)), 4)
        row["card"] = combo == current
        rows.append(row)
        yield Progress("tune", k + 1, len(combos), f"{combo}: PQ {row['pq_mean']:.3f}")
    rows.sort(key=lambda r: -r["pq_mean"])
    best = {k: rows[0][k] for k in keys}
    return replace(base, **best), rows


def tune_hover(
    model_path: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    truths: Sequence[str | os.PathLike],
    **kwargs: Any,
) -> tuple[HoverParams, list[dict[str, Any]]]:
    """Post-processing parameters with the best mean PQ on annotated images.

    Parameters
    ----------
    model_path
        A HoVer checkpoint folder; its card's parameters are the starting point.
    images, truths
        Annotated tiles and their instance maps (same order), e.g. a
        validation split. Never the images you will report results on.
    grid
        ``{parameter: values}`` searched exhaustively (default
        :data:`DEFAULT_GRID`, 144 combinations).
    zoom
        Resample the images by this factor for the model (as in prediction).
    tta
        Test-time augmentation of the maps (``"none"``, ``"flips"``, ``"d4"``):
        tune for the mode you will predict with, since averaged maps are
        smoother and favour other thresholds.
    threads
        torch CPU threads.

    Returns
    -------
    tuple
        ``(params, rows)``: the best :class:`HoverParams` and one row per
        combination (its values, PQ per image, ``pq_mean``, ``card``: the
        card's current values), best first.
    """
    return drain(tune_hover_steps(model_path, images, truths, **kwargs))
