"""Options of a slide prediction: :class:`InferConfig` and the zoom it runs at.

:class:`InferConfig` holds every setting of :func:`~napari_slideseg.infer.predict_slide`
(JSON-able, recorded in the output); :func:`resolve_zoom` turns ``zoom="auto"``
into a number from the slide's and the model's µm/px.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from ..errors import SlideSegError
from ..models.card import ModelCard
from ..options import BlendWindow, TTAMode, values

TTA_MODES = tuple(values(TTAMode))
#: Tile blending windows (:func:`~napari_slideseg.infer.tiles.blend_window`).
WINDOWS = tuple(values(BlendWindow))
#: Slide and model resolutions closer than this (relative) run at zoom 1 (no resampling).
ZOOM_TOLERANCE = 0.1
ZOOM_RANGE = (0.125, 8.0)
#: Largest model tile (px): a tile this size is already ~0.8 GB of float32 per batch item.
MAX_TILE = 8192
#: An auto zoom this close (relative) to an integer n or 1/n is taken as exactly n or 1/n.
ZOOM_SNAP = 0.02


class InferError(SlideSegError, ValueError):
    """Invalid inference inputs (models that disagree, a foreign output folder...)."""


class ResolutionWarning(UserWarning):
    """Inference could not match the model's resolution (an mpp is unknown)."""


@dataclass(frozen=True)
class InferConfig:
    """Options of :func:`~napari_slideseg.infer.predict_slide` (JSON-able; recorded in the output).

    ``tile``, ``overlap`` and ``halo`` are in the model's pixels (after
    ``zoom``); ``region`` and ``roi`` in pixels of the chosen level.

    Attributes
    ----------
    level : int
        Slide pyramid level to predict (0 is full resolution).
    tile : int
        Model input tile side, pixels (16 to 8192).
    overlap : int
        Overlap between neighbouring tiles, pixels (0 <= overlap < tile).
    batch_size : int or None
        Tiles per forward pass. Unset (None, the default): 4 on the CPU and
        MPS; on CUDA :func:`~napari_slideseg.infer.block.auto_batch_size`
        (16 tiles of 512 px, scaled by tile area, halved under 12 GB of
        device memory, 1 to 64).
    block : int or None
        Side of the blocks the slide is processed and written in, level
        pixels. Unset (None, the default): about 2048, chosen by
        :func:`~napari_slideseg.infer.blocksize.auto_block`
        as a whole number of tile strides, so no tile is computed twice.
    halo : int or None
        Extra context read around each block, model pixels; unset (None):
        half the overlap, which puts a block's tiles on the grid its neighbours
        continue (tiles meet at block borders as they do inside a block).
    window : str
        Tile blending window: gaussian, cosine or flat.
    tta : str
        Test-time augmentation: none, flips (4 views) or d4 (8 views).
    device : str
        auto, cpu, mps, cuda or cuda:N.
    amp : bool
        Mixed precision on CUDA.
    save_probs : bool
        Also write the class probabilities (HoVer: the NP/HV/type maps), float16.
    region : tuple of int or None
        ``(y0, x0, y1, x1)`` to predict, level pixels; None: the whole level.
    min_tissue : float
        Blocks with a smaller tissue fraction (0-1) are left as background.
    threads : int or None
        Torch CPU threads; None: torch's default.
    roi : tuple of (y, x) or None
        A polygon (a Shapes-layer ROI): blocks outside it are skipped and
        pixels outside it are background.
    instance_halo : int
        HoVer models: margin (pixels, wider than the largest nucleus) each
        block is post-processed with.
    hover : dict or None
        HoVer models: post-processing overrides
        (:class:`~napari_slideseg.instances.postproc.HoverParams` fields).
    zoom : float or "auto"
        Resampling of each block before the model (maps are resampled back).
        auto: the slide level's µm/px over the model's (a model trained at
        0.25 µm/px runs at 2 on a 0.5 µm/px slide; within 10 % it runs at 1),
        see :func:`resolve_zoom`; a number forces it.
    workers : int or None
        Processes that post-process blocks while the model runs the next
        (HoVer models: instances from the maps). None: one per CPU core
        beyond the first, at most 4, when there is more than one block; 0:
        post-process in this process. Torch's threads are left as they are
        (``threads``): a different thread count can change the model's
        float sums in the last bit, and the output must not depend on
        ``workers``.
    """

    level: int = 0
    tile: int = 512
    overlap: int = 128
    batch_size: int | None = None
    block: int | None = None
    halo: int | None = None
    window: str = "gaussian"
    tta: str = "none"
    device: str = "auto"
    amp: bool = True
    save_probs: bool = False
    region: tuple[int, int, int, int] | None = None
    min_tissue: float = 0.0
    threads: int | None = None
    roi: tuple[tuple[float, float], ...] | None = None
    instance_halo: int = 64
    hover: dict[str, Any] | None = None
    zoom: float | str = "auto"
    workers: int | None = None

    def __post_init__(self) -> None:
        self._check_sizes()
        from ..validate import fraction, nonneg_int, positive_int

        object.__setattr__(
            self, "min_tissue", fraction("min_tissue", self.min_tissue, error=InferError)
        )
        if self.threads is not None:
            object.__setattr__(
                self, "threads", positive_int("threads", self.threads, error=InferError)
            )
        if self.workers is not None:
            object.__setattr__(
                self, "workers", nonneg_int("workers", self.workers, error=InferError)
            )
        object.__setattr__(self, "zoom", _checked_zoom(self.zoom))
        if self.tta not in TTA_MODES:
            raise InferError(f"tta must be one of {TTA_MODES}, not {self.tta!r}")
        if self.window not in WINDOWS:
            raise InferError(f"window must be one of {WINDOWS}, not {self.window!r}")
        if self.region is not None:
            object.__setattr__(self, "region", _checked_region(self.region))
        if self.roi is not None:
            _check_roi(self.roi)
        if not isinstance(self.device, str) or not re.fullmatch(
            r"auto|cpu|mps|cuda(:\d+)?", self.device
        ):
            raise InferError(f"device must be auto, cpu, mps, cuda or cuda:N, not {self.device!r}")

    def _check_sizes(self) -> None:
        for name in ("level", "tile", "overlap", "batch_size", "block", "instance_halo"):
            v = getattr(self, name)
            if v is None and name in ("block", "batch_size"):
                continue
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise InferError(f"{name} must be an integer, not {v!r}")
        if self.level < 0:
            raise InferError(f"level must be 0 or more, not {self.level}")
        if not 16 <= self.tile <= MAX_TILE:
            raise InferError(f"tile must be in [16, {MAX_TILE}] px, not {self.tile}")
        if self.halo is not None and (isinstance(self.halo, bool) or self.halo < 0):
            raise InferError(f"halo must be 0 or more pixels, not {self.halo}")
        if self.instance_halo < 0:
            raise InferError(f"instance_halo must be 0 or more pixels, not {self.instance_halo}")
        if not 0 <= self.overlap < self.tile:
            raise InferError(
                f"overlap must be in [0, tile) (tile {self.tile}, overlap {self.overlap})"
            )
        if (self.block is not None and self.block < 1) or (
            self.batch_size is not None and self.batch_size < 1
        ):
            raise InferError("block and batch_size must be positive")

    @property
    def halo_px(self) -> int:
        """Block halo in the model's pixels (None: half the overlap)."""
        return self.overlap // 2 if self.halo is None else self.halo

    @property
    def block_px(self) -> int:
        """The block side (after :func:`resolved_config`; ``None`` is an error here)."""
        if self.block is None:
            raise InferError("block None (auto) is resolved against a slide first (auto_block)")
        return int(self.block)

    @property
    def zoom_factor(self) -> float:
        """The numeric zoom (after :func:`resolve_zoom`; ``"auto"`` is an error here)."""
        if isinstance(self.zoom, str):
            raise InferError("zoom 'auto' is resolved against a slide first (resolve_zoom)")
        return float(self.zoom)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["region"] = list(self.region) if self.region else None
        d["roi"] = [list(p) for p in self.roi] if self.roi else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InferConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        d = dict(d)
        if d.get("region") is not None:
            d["region"] = tuple(int(v) for v in d["region"])
        if d.get("roi") is not None:
            d["roi"] = tuple((float(y), float(x)) for y, x in d["roi"])
        return cls(**d)


# -----------------------------------------------------------------------------
# models
# -----------------------------------------------------------------------------


def _checked_zoom(zoom: Any) -> float | str:
    if isinstance(zoom, str):
        if zoom != "auto":
            raise InferError(f"zoom must be 'auto' or a number, not {zoom!r}")
        return zoom
    try:
        z = float(zoom)
    except (TypeError, ValueError):
        raise InferError(f"zoom must be 'auto' or a number, not {zoom!r}") from None
    if not (math.isfinite(z) and ZOOM_RANGE[0] <= z <= ZOOM_RANGE[1]):
        raise InferError(f"zoom must be between 1/8 and 8 (or 'auto'), not {zoom}")
    return z


def _checked_region(r: Any) -> tuple[int, int, int, int]:
    ok = isinstance(r, list | tuple) and len(r) == 4
    ok = ok and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in r)
    if not ok or min(r) < 0:
        raise InferError(f"region must be four integers >= 0 (y0, x0, y1, x1), not {r!r}")
    if r[2] <= r[0] or r[3] <= r[1]:
        raise InferError(
            f"region {tuple(int(v) for v in r)} is empty: (y0, x0, y1, x1) needs "
            "y1 > y0 and x1 > x0"
        )
    y0, x0, y1, x1 = (int(v) for v in r)
    return y0, x0, y1, x1


def _check_roi(roi: Any) -> None:
    try:
        pts = np.asarray(roi, np.float64)
    except (TypeError, ValueError):
        pts = np.zeros((0,))
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
        raise InferError(f"roi must be a polygon of at least 3 finite (y, x) points, not {roi!r}")


def resolve_zoom(
    slide: Any, card: ModelCard, config: InferConfig
) -> tuple[float, dict[str, Any], str | None]:
    """The zoom a prediction runs at, its provenance, and a warning (``None`` if all is known).

    A number in ``config.zoom`` is used as given. ``"auto"``: the slide's µm/px
    at ``config.level`` over the model's (``card.mpp``); 1 when they are within
    :data:`ZOOM_TOLERANCE` (no needless resampling), and 1 with a warning when
    either is unknown.
    """
    level_mpp = None
    if getattr(slide, "mpp", None) and 0 <= config.level < slide.n_levels:
        level_mpp = float(slide.level_mpp(config.level)[0])
    info: dict[str, Any] = {
        "zoom_requested": config.zoom,
        "slide_mpp": level_mpp,
        "model_mpp": card.mpp,
    }
    note = None
    if not isinstance(config.zoom, str):
        zoom = float(config.zoom)
        if level_mpp and card.mpp:
            ratio = level_mpp / card.mpp
            wanted = zoom_for_ratio(ratio)
            if abs(zoom / wanted - 1) > ZOOM_TOLERANCE:
                info["auto_zoom"] = wanted
    elif level_mpp is None or card.mpp is None:
        zoom = 1.0
        missing = [
            what
            for what, v in (
                (f"the slide {getattr(slide, 'name', '')!r} states no µm/px", level_mpp),
                (f"model {card.display_name!r} records no training µm/px", card.mpp),
            )
            if v is None
        ]
        note = (
            f"zoom auto: {' and '.join(missing)}, so it runs at zoom 1 (pixels as they are); "
            "give the image's resolution (--mpp / open_slide(..., mpp=)) or set --zoom"
        )
    else:
        ratio = level_mpp / card.mpp
        zoom = zoom_for_ratio(ratio)
        if not ZOOM_RANGE[0] <= zoom <= ZOOM_RANGE[1]:
            raise InferError(
                f"{getattr(slide, 'path', 'slide')}: level {config.level} is {level_mpp:.3g} µm/px "
                f"and the model was trained at {card.mpp:g} µm/px (zoom {ratio:.3g}, outside "
                "1/8-8): choose a level closer to the model's resolution (--level)"
            )
    info["zoom"] = zoom
    return zoom, info, note


def zoom_for_ratio(ratio: float) -> float:
    """The zoom "auto" runs at for slide mpp / model mpp = ``ratio``."""
    return 1.0 if abs(ratio - 1) <= ZOOM_TOLERANCE else snap_zoom(ratio)


def snap_zoom(ratio: float) -> float:
    """``ratio``, or the integer n / fraction 1/n within :data:`ZOOM_SNAP` of it.

    Scanners state 0.499 or 0.2527 µm/px for nominal 20x and 40x; resampling by
    exactly 2 (or 1/2) keeps every output pixel on the same phase of the input
    grid, where 1.996 drifts across the block.
    """
    n = round(ratio) if ratio >= 1 else round(1 / ratio)
    exact = float(n) if ratio >= 1 else 1 / n
    return exact if n and abs(ratio / exact - 1) <= ZOOM_SNAP else round(ratio, 4)


def resolved_config(
    slide: Any, card: ModelCard, config: InferConfig
) -> tuple[InferConfig, dict[str, Any]]:
    """``config`` with a numeric zoom, and its provenance (see :func:`resolve_zoom`).

    Parameters
    ----------
    slide : Slide
        The slide to predict.
    card : ModelCard
        The (first) model's card.
    config : InferConfig
        Settings, ``zoom`` possibly ``"auto"``.

    Returns
    -------
    tuple of (InferConfig, dict)
        The config with a numeric zoom, and the provenance recorded in the
        output (with ``"warning"`` when the zoom could not be matched; the
        same text is issued as a :class:`ResolutionWarning`).
    """
    zoom, info, note = resolve_zoom(slide, card, config)
    if note:
        warnings.warn(note, ResolutionWarning, stacklevel=4)
        info["warning"] = note
    return replace(config, zoom=zoom), info


class BlockSizeWarning(UserWarning):
    """An explicit ``block`` that makes neighbouring blocks compute tiles twice."""


def resolved_block(config: InferConfig, margin: int = 0) -> InferConfig:
    """``config`` with a concrete ``block`` (after :func:`resolved_config`: zoom is numeric).

    The halo becomes the number it runs with (so an output recorded with
    another default is not resumed as this one). ``None`` becomes
    :func:`~napari_slideseg.infer.blocksize.auto_block`; a
    given block is kept, with a :class:`BlockSizeWarning` when it costs more
    than :data:`~napari_slideseg.infer.blocksize.OVERHEAD_WARN` times the
    tiles of the auto block.

    Parameters
    ----------
    config : InferConfig
        Settings with a numeric zoom.
    margin : int
        Level pixels the task predicts around each core (HoVer's instance halo).

    Returns
    -------
    InferConfig
    """
    from .blocksize import OVERHEAD_WARN, TileGrid, auto_block, block_overhead

    grid = TileGrid(config.tile, config.overlap, config.halo_px, config.zoom_factor, margin)
    config = replace(config, halo=config.halo_px)  # recorded as the number it ran with
    if config.block is None:
        return replace(config, block=auto_block(grid))
    cost, best = block_overhead(config.block, grid)
    if cost > OVERHEAD_WARN:
        warnings.warn(
            f"block {config.block} px computes {cost - 1:.0%} more tiles than block {best} "
            f"(a whole number of tile strides at tile {config.tile}, overlap "
            f"{config.overlap}, zoom {config.zoom_factor:g}): neighbouring blocks compute the "
            f"tiles along their borders twice; leave block unset (auto) or use {best}",
            BlockSizeWarning,
            stacklevel=4,
        )
    return config
