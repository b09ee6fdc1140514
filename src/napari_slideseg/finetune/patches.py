"""Patches for fine-tuning: around the corrected regions, and a replay sample elsewhere.

Both sets are cut by :func:`~napari_slideseg.patching.extract_patches_steps`
(the same windows, resampling and manifest as any patch set) from the slide
and the corrected labels, at the level and zoom the prediction was made at,
so the patches have the model's µm per pixel. Corrected regions are grown
by a margin and to at least one patch's field of view; windows whose centre
falls inside one are cut (stride a fraction of the patch). Replay windows
are whole grid cells that touch no grown region, drawn at random (seeded),
kept when they hold tissue: the prediction there is what the pathologist
saw and left alone.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import Progress
from .config import FinetuneConfig, FinetuneError

Box = tuple[int, int, int, int]


def grown_regions(
    regions: Sequence[Sequence[int]], fov: float, margin: int, shape: tuple[int, int]
) -> list[Box]:
    """Each ``(y0, x0, y1, x1)`` region grown by ``margin`` and to at least ``fov``, clipped.

    Parameters
    ----------
    regions : sequence of (y0, x0, y1, x1)
        Corrected regions in pixels of the prediction's level.
    fov : float
        A patch's field of view in those pixels.
    margin : int
        Pixels added on every side.
    shape : tuple of int
        The level's ``(height, width)``.

    Returns
    -------
    list of tuple
        Boxes inside the level, each at least ``fov`` (or the level) a side.

    Raises
    ------
    FinetuneError
        For a region that is not four numbers with ``y0 < y1``, ``x0 < x1``
        inside the level.
    """
    out = []
    side = math.ceil(fov)
    for r in regions:
        try:
            y0, x0, y1, x1 = (int(v) for v in r)
        except (TypeError, ValueError):
            raise FinetuneError(f"a corrected region is (y0, x0, y1, x1), not {r!r}") from None
        if not (0 <= y0 < y1 <= shape[0] and 0 <= x0 < x1 <= shape[1]):
            raise FinetuneError(
                f"corrected region {r!r} is empty or outside the level ({shape[0]} x {shape[1]})"
            )
        box = []
        for lo, hi, n in ((y0, y1, shape[0]), (x0, x1, shape[1])):
            lo, hi = lo - margin, hi + margin
            grow = max(0, side - (hi - lo))
            lo, hi = lo - grow // 2, hi + grow - grow // 2
            shift = max(0, -lo) - max(0, hi - n)
            lo, hi = max(0, lo + shift), min(n, hi + shift)
            box.append((lo, hi))
        out.append((box[0][0], box[1][0], box[0][1], box[1][1]))
    return out


def replay_cells(
    shape: tuple[int, int], fov: float, avoid: Sequence[Box], n: int, seed: int
) -> list[Box]:
    """Up to ``n`` grid cells of side ``fov`` that touch none of ``avoid`` (random, seeded).

    Parameters
    ----------
    shape : tuple of int
        The level's ``(height, width)``.
    fov : float
        Cell side (a patch's field of view) in level pixels.
    avoid : sequence of boxes
        Grown corrected regions.
    n : int
        How many cells.
    seed : int
        Seeds the draw.

    Returns
    -------
    list of tuple
        ``(y0, x0, y1, x1)`` cells, whole ones inside the level.
    """
    rows, cols = int(shape[0] // fov), int(shape[1] // fov)
    cells = []
    for i in range(rows):
        for j in range(cols):
            c = (round(i * fov), round(j * fov), round((i + 1) * fov), round((j + 1) * fov))
            if not any(c[0] < b[2] and b[0] < c[2] and c[1] < b[3] and b[1] < c[3] for b in avoid):
                cells.append(c)
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(cells))[: max(0, n)]
    return [cells[k] for k in sorted(pick)]


def _lazy(arr: Any) -> Any:
    """``arr`` as numpy or dask (a zarr array is wrapped lazily, on its own chunks)."""
    if arr is None or isinstance(arr, np.ndarray) or hasattr(arr, "dask"):
        return arr
    import dask.array as da

    return da.from_array(arr, chunks=getattr(arr, "chunks", "auto"))


def _polygons(boxes: Sequence[Box], factors: tuple[float, float]) -> tuple:
    """Level boxes as level-0 rectangles (what ``PatchConfig.polygons`` takes)."""
    fy, fx = factors
    return tuple(
        ((y0 * fy, x0 * fx), (y0 * fy, x1 * fx), (y1 * fy, x1 * fx), (y1 * fy, x0 * fx))
        for y0, x0, y1, x1 in boxes
    )


def cut_patches_steps(
    slide: Any,
    labels: Any,
    regions: Sequence[Sequence[int]],
    out: Path,
    card: Any,
    config: FinetuneConfig,
    *,
    level: int,
    zoom: float,
    types: Any = None,
) -> Generator[Progress, None, dict[str, Any]]:
    """Cut the corrected and replay patch sets into ``out/corrected`` and ``out/replay``.

    Parameters
    ----------
    slide : Slide
        The slide the prediction was made on.
    labels : array-like
        The corrected labels at ``level`` (class ids, or nucleus ids for HoVer).
    regions : sequence of (y0, x0, y1, x1)
        Corrected regions in pixels of ``level``.
    out : Path
        Folder for the two patch sets (made).
    card : ModelCard
        The parent model's card (patch size, classes, kind).
    config : FinetuneConfig
        Margin, stride, replay share, tissue threshold, seed.
    level : int
        The prediction's slide level.
    zoom : float
        The prediction's resampling of that level (model pixels per level pixel).
    types : array-like, optional
        HoVer: the nucleus-type map beside ``labels``.

    Yields
    ------
    Progress
        While patches are cut.

    Returns
    -------
    dict
        ``manifests`` (the patch folders to train on), ``corrected`` and
        ``replay`` (patch counts), ``regions`` (the grown boxes).

    Raises
    ------
    FinetuneError
        When no region is given or no patch could be cut from them.
    """
    from ..patching import PatchConfig, extract_patches_steps

    if not regions:
        raise FinetuneError("there are no corrected regions to fine-tune on")
    shape = (int(slide.levels[level].shape[0]), int(slide.levels[level].shape[1]))
    size = int(card.patch_size)
    fov = size / zoom
    margin = config.margin if config.margin is not None else round(fov / 2)
    boxes = grown_regions(regions, fov, margin, shape)
    factors = slide.level_factors(level)
    hover = card.kind == "hover"
    common: dict[str, Any] = {"size": size, "level": level, "zoom": zoom, "seed": config.seed}
    kw: dict[str, Any] = {"classmap": None if hover else card.classmap, "workers": 1}
    if hover:
        kw.update(instances=True, types=_lazy(types))
    corrected_cfg = PatchConfig(
        **common,
        stride=max(1, round(size * config.stride)),
        grid="pad",
        polygons=_polygons(boxes, factors),
    )
    corrected = yield from extract_patches_steps(
        slide, out / "corrected", corrected_cfg, mask=_lazy(labels), mask_id="corrections", **kw
    )
    if corrected.n_patches == 0:
        raise FinetuneError("no patch could be cut around the corrected regions")
    manifests = [str(corrected.out)]
    n_replay = 0
    want = math.ceil(config.replay * corrected.n_patches)
    cells = replay_cells(shape, fov, boxes, want, config.seed)
    if cells:
        replay_cfg = PatchConfig(
            **common, stride=size, min_tissue=config.min_tissue, polygons=_polygons(cells, factors)
        )
        replay = yield from extract_patches_steps(
            slide, out / "replay", replay_cfg, mask=_lazy(labels), mask_id="confirmed", **kw
        )
        n_replay = replay.n_patches
        if n_replay:
            manifests.append(str(replay.out))
    return {
        "manifests": manifests,
        "corrected": corrected.n_patches,
        "replay": n_replay,
        "replay_wanted": want,
        "regions": [list(b) for b in boxes],
    }
