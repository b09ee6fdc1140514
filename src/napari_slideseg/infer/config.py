"""``predict_slide``: block-wise tiled inference into a resumable zarr output.

One pure function, :func:`predict_block`, does the work for one block core:
read the core plus a halo (reflect-padded at the slide edge), cut it into
overlapping tiles, run them in batches through every model (and every TTA
transform), average the class probabilities, blend tiles with a smooth
window, and crop to the core. :func:`predict_slide_steps` runs it over the
block grid with the next block's pixels read ahead on a thread, writes each
block's labels (uint8) and optional probabilities (float16) into a chunked
zarr, and only then marks the block done. Re-running with ``resume=True``
skips done blocks; because the block function is pure and every block write
is idempotent (a half-written block is simply written again), the result
equals an uninterrupted run bit for bit wherever a run was killed. The
output's ``complete`` attribute is set only after the last block. A new
output is created under a temporary name and renamed into place, only once
the device and models are ready; a run that fails before its first block is
done removes it again. Tests kill runs at each write step through
:data:`napari_slideseg.infer.writes.FAULT`.

Memory is bounded by one block (plus halo) x classes x float32, and one batch
of tiles on the device: a 100k x 100k slide uses about what a 10k one does.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.errors import SlideSegError
from ..models.card import ModelCard, as_card, cards_summary
from ..patching import read_window_rect
from ..progress import Progress, drain
from .tiles import blend_window, pyramid_factors, region_blocks, tile_starts
from .writes import fault as _fault
from .writes import write_pyramid

TTA_MODES = ("none", "flips", "d4")
#: Slide and model resolutions closer than this (relative) run at zoom 1 (no resampling).
ZOOM_TOLERANCE = 0.1
ZOOM_RANGE = (0.125, 8.0)
#: Largest model tile (px): a tile this size is already ~0.8 GB of float32 per batch item.
MAX_TILE = 8192
#: An auto zoom this close (relative) to an integer n or 1/n is taken as exactly n or 1/n.
ZOOM_SNAP = 0.02
#: Endings of temporary files (ours, and zarr's ``*.partial`` chunk writes) a finished run removes.
TEMP_SUFFIXES = (".tmp", ".part", ".partial")


class InferError(SlideSegError, ValueError):
    """Invalid inference inputs (models that disagree, a foreign output folder...)."""


class ResolutionWarning(UserWarning):
    """Inference could not match the model's resolution (an mpp is unknown)."""


@dataclass(frozen=True)
class InferConfig:
    """Options of :func:`predict_slide` (JSON-able; recorded in the output).

    ``overlap`` is the overlap between neighbouring tiles in pixels; the block
    halo defaults to the same. ``region`` is ``(y0, x0, y1, x1)`` in pixels of
    the chosen level; ``roi`` a polygon of ``(y, x)`` vertices in the same
    pixels (a Shapes-layer ROI): blocks outside it are skipped and pixels
    outside it are left as background. HoVer models: ``instance_halo`` is the
    extra margin (pixels, wider than the largest nucleus) each block is
    post-processed with, ``hover`` overrides post-processing parameters
    (:class:`~napari_slideseg.instances.postproc.HoverParams` fields).
    ``zoom`` resamples each block before the model and the maps back after
    it (outputs stay on the slide level's pixel grid). ``"auto"`` (the
    default) is the slide level's µm/px over the model's (a model trained at
    0.25 µm/px runs at 2 on a 0.5 µm/px slide; within 10 % it runs at 1),
    see :func:`resolve_zoom`; a number forces it. ``tile``, ``overlap`` and
    ``halo`` are in the model's pixels (after zoom).
    """

    level: int = 0
    tile: int = 512
    overlap: int = 128
    batch_size: int = 4
    block: int = 2048
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

    def __post_init__(self) -> None:
        for name in ("level", "tile", "overlap", "batch_size", "block", "instance_halo"):
            v = getattr(self, name)
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
        from ..validate import fraction, positive_int

        object.__setattr__(
            self, "min_tissue", fraction("min_tissue", self.min_tissue, error=InferError)
        )
        if self.threads is not None:
            object.__setattr__(
                self, "threads", positive_int("threads", self.threads, error=InferError)
            )
        if isinstance(self.zoom, str):
            if self.zoom != "auto":
                raise InferError(f"zoom must be 'auto' or a number, not {self.zoom!r}")
        else:
            try:
                z = float(self.zoom)
            except (TypeError, ValueError):
                raise InferError(f"zoom must be 'auto' or a number, not {self.zoom!r}") from None
            if not (math.isfinite(z) and ZOOM_RANGE[0] <= z <= ZOOM_RANGE[1]):
                raise InferError(f"zoom must be between 1/8 and 8 (or 'auto'), not {self.zoom}")
            object.__setattr__(self, "zoom", z)
        if self.tta not in TTA_MODES:
            raise InferError(f"tta must be one of {TTA_MODES}, not {self.tta!r}")
        if not 0 <= self.overlap < self.tile:
            raise InferError(
                f"overlap must be in [0, tile) (tile {self.tile}, overlap {self.overlap})"
            )
        if self.block < 1 or self.batch_size < 1:
            raise InferError("block and batch_size must be positive")
        if self.region is not None:
            r = self.region
            ok = isinstance(r, list | tuple) and len(r) == 4
            ok = ok and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in r)
            if not ok or min(r) < 0:
                raise InferError(
                    f"region must be four integers >= 0 (y0, x0, y1, x1), not {self.region!r}"
                )
            if r[2] <= r[0] or r[3] <= r[1]:
                raise InferError(
                    f"region {tuple(int(v) for v in r)} is empty: (y0, x0, y1, x1) needs "
                    "y1 > y0 and x1 > x0"
                )
            object.__setattr__(self, "region", tuple(int(v) for v in r))
        if self.roi is not None:
            try:
                pts = np.asarray(self.roi, np.float64)
            except (TypeError, ValueError):
                pts = np.zeros((0,))
            if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
                raise InferError(
                    f"roi must be a polygon of at least 3 finite (y, x) points, not {self.roi!r}"
                )
        if not isinstance(self.device, str) or not re.fullmatch(
            r"auto|cpu|mps|cuda(:\d+)?", self.device
        ):
            raise InferError(f"device must be auto, cpu, mps, cuda or cuda:N, not {self.device!r}")

    @property
    def halo_px(self) -> int:
        """Block halo in the model's pixels."""
        return self.overlap if self.halo is None else self.halo

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
def _check_models(models: Sequence[tuple[Any, Any]]) -> list[tuple[Any, ModelCard]]:
    """``(model, ModelCard)`` pairs (card dicts are validated), checked to agree."""
    if not models:
        raise InferError("no model given")
    models = [(m, as_card(c)) for m, c in models]
    first = models[0][1]
    names = first.classmap.names
    for _, c in models[1:]:
        if c.kind != first.kind:
            raise InferError("an ensemble mixes semantic and HoVer models")
        if c.classmap.names != names:
            raise InferError(
                f"ensemble members disagree on classes: {list(names)} vs {list(c.classmap.names)}"
            )
        if c.normalization != first.normalization:
            raise InferError(
                f"ensemble members need the same input normalisation: {c.display_name} differs "
                f"from {first.display_name}"
            )
        if (c.mpp is None) != (first.mpp is None) or (
            c.mpp and first.mpp and abs(c.mpp / first.mpp - 1) > ZOOM_TOLERANCE
        ):
            raise InferError(
                f"ensemble members were trained at different resolutions ({first.display_name}: "
                f"{first.mpp} µm/px, {c.display_name}: {c.mpp} µm/px)"
            )
    return models


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
    return 1.0 if abs(ratio - 1) <= ZOOM_TOLERANCE else _snap(ratio)


def _snap(ratio: float) -> float:
    """``ratio``, or the integer n / fraction 1/n within :data:`ZOOM_SNAP` of it.

    Scanners state 0.499 or 0.2527 µm/px for nominal 20x and 40x; resampling by
    exactly 2 (or 1/2) keeps every output pixel on the same phase of the input
    grid, where 1.996 drifts across the block.
    """
    n = round(ratio) if ratio >= 1 else round(1 / ratio)
    exact = float(n) if ratio >= 1 else 1 / n
    return exact if n and abs(ratio / exact - 1) <= ZOOM_SNAP else round(ratio, 4)


def _resolved(slide: Any, card: ModelCard, config: InferConfig) -> tuple[InferConfig, dict]:
    """``config`` with a numeric zoom (warning when it cannot be matched), and its provenance."""
    from dataclasses import replace

    zoom, info, note = resolve_zoom(slide, card, config)
    if note:
        warnings.warn(note, ResolutionWarning, stacklevel=4)
        info["warning"] = note
    return replace(config, zoom=zoom), info


def _probs(model: Any, card: ModelCard, x: Any) -> Any:
    """Class probabilities ``(N, C, H, W)`` of one model (sigmoid models give 2 classes).

    HoVer models give NP probability, H, V and type probabilities.
    """
    import torch

    out = model(x)
    if card.is_hover:
        out = out.float()
        parts = [torch.softmax(out[:, 0:2], 1)[:, 1:2], out[:, 2:4]]
        if out.shape[1] > 4:
            parts.append(torch.softmax(out[:, 4:], 1))
        return torch.cat(parts, 1)
    if card.activation == "sigmoid" or out.shape[1] == 1:
        p = torch.sigmoid(out[:, :1])
        return torch.cat([1 - p, p], 1)
    return torch.softmax(out.float(), 1)


def _tta_ops(mode: str) -> list[tuple[int, bool]]:
    """(rot90 k, flip) pairs: identity; flips adds h/v flips; d4 all 8."""
    if mode == "none":
        return [(0, False)]
    if mode == "flips":
        return [(0, False), (0, True), (2, False), (2, True)]
    return [(k, f) for k in range(4) for f in (False, True)]


def _undo_tta(p: Any, k: int, flip: bool, hover: bool) -> Any:
    """Bring a prediction ``p`` (N, C, H, W) made on ``flip(rot90(x, k))`` back to x's frame.

    The pixels are mirrored and turned back. For HoVer maps (channels 1 and 2 are H
    and V) what the channels mean is fixed as well: a mirrored x axis negates H, and
    ``torch.rot90(x, k, (2, 3))`` puts the input's y axis along the turned x axis and
    its x axis, reversed, along the turned y axis (k = 1), so the turned image's H map
    is the input's V map and its V map the input's negated H map.
    """
    import torch

    if flip:
        p = torch.flip(p, (3,))
        if hover:
            p[:, 1] = -p[:, 1]
    p = torch.rot90(p, -k, (2, 3))
    if hover and k % 4:
        h, v = p[:, 1], p[:, 2]
        turned = {1: (-v, h), 2: (-h, -v), 3: (v, -h)}[k % 4]
        p[:, 1:3] = torch.stack(turned, 1)
    return p


def _forward(models: Sequence[tuple[Any, ModelCard]], x: Any, tta: str, use_amp: bool) -> Any:
    import torch

    total = None
    n = 0
    for model, card in models:
        hover = card.is_hover
        for k, flip in _tta_ops(tta):
            xi = torch.rot90(x, k, (2, 3))
            if flip:
                xi = torch.flip(xi, (3,))
            with torch.autocast(x.device.type, dtype=torch.float16, enabled=use_amp):
                p = _probs(model, card, xi).float()
            p = _undo_tta(p, k, flip, hover)
            total = p if total is None else total + p
            n += 1
    return total / n


# -----------------------------------------------------------------------------
# the block function
# -----------------------------------------------------------------------------
def read_block(
    arr: Any, core: tuple[int, int, int, int], halo: int, tile: int, zoom: float = 1.0
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pixels of ``core`` plus a halo (reflect-padded outside the image), at least one tile.

    ``halo`` and ``tile`` are in the model's pixels: at ``zoom`` z the block
    reads ``ceil(halo / z)`` slide pixels of halo and at least
    ``ceil(tile / z)`` per side, so the model always sees exactly scale z.
    Returns the padded block and the offset of the core inside it.
    """
    y0, x0, y1, x1 = core
    halo = math.ceil(halo / zoom)
    need = math.ceil(tile / zoom)
    H, W = arr.shape[:2]
    ry0, ry1 = _window(y0, y1, halo, need, H)
    rx0, rx1 = _window(x0, x1, halo, need, W)
    # The same clip-read-pad as patch extraction, so both see identical edge pixels.
    part = read_window_rect(arr, ry0, rx0, ry1 - ry0, rx1 - rx0, "reflect", 0)
    if part.ndim == 2:
        part = np.repeat(part[..., None], 3, -1)
    part = part[..., :3]
    return part, (y0 - ry0, x0 - rx0)


def _window(a: int, b: int, halo: int, need: int, n: int) -> tuple[int, int]:
    """``[a - halo, b + halo)`` grown to ``need`` pixels, into the image before past its edges.

    A block near the edge that is shorter than a tile takes the missing pixels
    from the image side first, so no block reads further past the edge than
    its halo when the image has the pixels (a whole-image pass reads no
    further either): predictions at the edge then see the same context.
    """
    lo, hi = a - halo, b + halo
    short = need - (hi - lo)
    if short > 0:
        grow = min(short, max(0, n - hi))  # into the image after the block
        hi += grow
        short -= grow
        grow = min(short, max(0, lo))  # into the image before it
        lo -= grow
        short -= grow
        hi += short  # still short: the image is smaller than a tile (reflect-padded)
    return lo, hi


def predict_block(
    models: Sequence[tuple[Any, ModelCard]],
    pixels: np.ndarray,
    offset: tuple[int, int],
    core_shape: tuple[int, int],
    config: InferConfig,
    device: Any,
) -> np.ndarray:
    """Blended class probabilities ``(C, h, w)`` of one block core (float32).

    ``pixels`` is the block with its halo from :func:`read_block`; ``offset``
    the core's position in it. Pure: the same inputs give the same output.
    """
    import torch

    card = models[0][1]
    mean = np.asarray(card.normalization.mean, np.float32)
    std = np.asarray(card.normalization.std, np.float32)
    H0, W0 = pixels.shape[:2]
    zoom = config.zoom_factor
    if zoom != 1:
        import cv2

        # read_block gave at least ceil(tile / zoom) pixels, so both sides scale by zoom
        zh, zw = round(H0 * zoom), round(W0 * zoom)
        if min(zh, zw) < config.tile:
            raise InferError(
                f"a block of {H0} x {W0} px at zoom {zoom:g} is smaller than a tile "
                f"({config.tile} px); read it with read_block(..., zoom={zoom:g})"
            )
        interp = cv2.INTER_LINEAR if zoom > 1 else cv2.INTER_AREA
        pixels = cv2.resize(np.ascontiguousarray(pixels), (zw, zh), interpolation=interp)
    H, W = pixels.shape[:2]
    t = config.tile
    ys = tile_starts(H, t, config.overlap)
    xs = tile_starts(W, t, config.overlap)
    win = torch.from_numpy(blend_window(t, config.window))
    n_classes = card.channels
    acc = torch.zeros((n_classes, H, W), dtype=torch.float32)
    wsum = torch.zeros((H, W), dtype=torch.float32)
    img = (pixels.astype(np.float32) / 255.0 - mean) / std
    img_t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    coords = [(y, x) for y in ys for x in xs]
    use_amp = config.amp and getattr(device, "type", str(device)) == "cuda"
    with torch.inference_mode():
        for i in range(0, len(coords), config.batch_size):
            chunk = coords[i : i + config.batch_size]
            batch = torch.stack([img_t[:, y : y + t, x : x + t] for y, x in chunk]).to(device)
            probs = _forward(models, batch, config.tta, use_amp).cpu()
            for (y, x), p in zip(chunk, probs, strict=True):
                acc[:, y : y + t, x : x + t] += p * win
                wsum[y : y + t, x : x + t] += win
    out = (acc / wsum).numpy()
    if zoom != 1:
        import cv2

        interp = cv2.INTER_AREA if zoom > 1 else cv2.INTER_LINEAR
        out = np.stack([cv2.resize(c, (W0, H0), interpolation=interp) for c in out])
    oy, ox = offset
    h, w = core_shape
    return out[:, oy : oy + h, ox : ox + w]


# -----------------------------------------------------------------------------
# the output and the per-block write
# -----------------------------------------------------------------------------
def _identity(config: InferConfig, slide: Any, cards: Sequence[ModelCard]) -> dict[str, Any]:
    """What decides a prediction's pixels: settings, slide and the models' content digests.

    Where and how fast it runs (device, threads, batch size) does not change what is
    predicted: a run started on the CPU may be resumed on a GPU or a cluster. The
    models are identified by content (weights + prediction fields of the card), so a
    card changed by ``tune-hover --write`` or ``pack --mpp`` is another model.
    """
    settings = {
        k: v for k, v in config.to_dict().items() if k not in ("device", "threads", "batch_size")
    }
    return {
        "config": settings,
        "slide": os.path.abspath(slide.path),
        "slide_mpp": list(slide.mpp) if slide.mpp else None,
        "models": [c.digest() for c in cards],
    }


def _config_hash(identity: dict[str, Any]) -> str:
    raw = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _mismatch(out: Path, old: dict[str, Any], new: dict[str, Any]) -> str:
    """Why an existing output cannot be resumed with these settings (for the error)."""
    if not old:
        return f"{out}: holds a prediction made with other settings, slide or models"
    if old.get("models") != new["models"]:
        return (
            f"{out}: was predicted by other model content (digest {old.get('models')} vs "
            f"{new['models']}): a retrained model or a changed card (tune-hover --write, "
            "pack --mpp) predicts differently; write to a new folder"
        )
    if old.get("slide") != new["slide"] or old.get("slide_mpp") != new["slide_mpp"]:
        return f"{out}: was predicted on {old.get('slide')} (mpp {old.get('slide_mpp')})"
    diff = sorted(
        k
        for k in set(old.get("config", {})) | set(new["config"])
        if old.get("config", {}).get(k) != new["config"].get(k)
    )
    return f"{out}: was predicted with other settings ({', '.join(diff) or 'unknown'})"


def _roi_mask(roi: Sequence[Sequence[float]], core: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean mask of the polygon ``roi`` (level pixels, (y, x) vertices) over ``core``."""
    from skimage.draw import polygon as draw_polygon

    y0, x0, y1, x1 = core
    pts = np.asarray(roi, np.float64)
    mask = np.zeros((y1 - y0, x1 - x0), bool)
    rr, cc = draw_polygon(pts[:, 0] - y0, pts[:, 1] - x0, mask.shape)
    mask[rr, cc] = True
    return mask


def block_result(
    probs: np.ndarray, core: tuple[int, int, int, int], config: InferConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (uint8) and probabilities of a block, zeroed outside the ROI polygon."""
    labels = probs.argmax(0).astype(np.uint8)
    if config.roi:
        inside = _roi_mask(config.roi, core)
        labels[~inside] = 0
        probs = probs * inside
    return labels, probs


def write_block(
    root: Any,
    core: tuple[int, int, int, int],
    labels: np.ndarray,
    probs: np.ndarray | None,
    factors: Sequence[int],
) -> None:
    """Write one block's labels (all pyramid levels) and probabilities into ``root``.

    Cores come from :func:`~napari_slideseg.infer.tiles.region_blocks`, so the
    chunks written here belong to this block alone (safe from any process).
    Pyramid level ``f`` holds level-0 pixels ``(f * i, f * j)`` (stride
    sampling, the usual way to shrink label images).
    """
    y0, x0, y1, x1 = core
    _fault("labels")
    root["labels"][y0:y1, x0:x1] = labels
    _fault("pyramid")
    write_pyramid(root, "pyramid", y0, x0, labels, factors)
    if probs is not None:
        _fault("maps")
        root["probs"][:, y0:y1, x0:x1] = probs.astype(np.float16)


def _create_pyramid(
    root: Any, group: str, shape: tuple[int, int], block: int, factors: Sequence[int], dtype: Any
) -> None:
    """Empty pyramid levels whose chunks are one block each (one writer per chunk)."""
    H, W = shape
    g = root.create_group(group)
    for f in factors:
        g.create_array(
            str(f),
            shape=(-(-H // f), -(-W // f)),
            chunks=(block // f, block // f),
            dtype=dtype,
            fill_value=0,
        )


def _open_output(
    out: Path,
    slide: Any,
    cards: list[ModelCard],
    config: InferConfig,
    blocks: list[tuple[int, int, int, int]],
    factors: list[int],
    shape: tuple[int, int],
    resume: bool,
    resolution: dict[str, Any],
) -> Any:
    import zarr

    card = cards[0]
    hover = card.is_hover
    n_classes = card.channels
    identity = _identity(config, slide, cards)
    digest = _config_hash(identity)
    if out.exists() and not resume:
        raise InferError(
            f"{out}: exists; pass resume=True (--resume) to continue it, or choose another path"
        )
    if out.exists() and not (out.is_dir() and not any(out.iterdir())):
        attrs = _prediction_attrs(out)
        info = attrs["slideseg_inference"]
        if info.get("config_hash") != digest:
            raise InferError(
                _mismatch(out, info.get("identity") or {}, identity) + "; not resuming it"
            )
        root = zarr.open_group(str(out), mode="r+")
        remove_temporaries(out)  # what a killed run was writing is redone from scratch
        shutil.rmtree(out.with_name(f".{out.name}.part"), ignore_errors=True)
        # Same content: the provenance shows the cards as they are now (names, notes).
        meta = dict(attrs.get("slideseg") or {})
        meta["models"] = cards_summary(cards)
        root.attrs["slideseg"] = meta
        return root
    # A new output is built under a temporary name and renamed into place once all its
    # arrays and attributes exist: a kill while creating it leaves no half-made store.
    tmp = out.with_name(f".{out.name}.part")
    if tmp.exists():
        shutil.rmtree(tmp)  # a killed creation of this same output
    tmp.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(str(tmp), mode="w-")
    H, W = shape
    b = config.block
    root.create_array("labels", shape=(H, W), chunks=(b, b), dtype=np.uint8, fill_value=0)
    _create_pyramid(root, "pyramid", (H, W), b, factors, np.uint8)
    if hover:
        root.create_array("instances", shape=(H, W), chunks=(b, b), dtype=np.uint32, fill_value=0)
        _create_pyramid(root, "pyramid_instances", (H, W), b, factors, np.uint32)
    if config.save_probs:
        root.create_array(
            "maps" if hover else "probs",
            shape=(n_classes, H, W),
            chunks=(n_classes, b, b),
            dtype=np.float16,
            fill_value=0,
        )
    root.create_array(
        "done", shape=(len(blocks),), chunks=(max(1, len(blocks)),), dtype=np.uint8, fill_value=0
    )
    root.attrs.update(
        {
            "slideseg_inference": {
                "config_hash": digest,
                "identity": identity,
                "config": config.to_dict(),
                "resolution": resolution,
                "slide": os.path.abspath(slide.path),
                "level": config.level,
                "level_factors": list(slide.level_factors(config.level)),
                "level_shape": [int(shape[0]), int(shape[1])],
                "slide_shape": [int(n) for n in slide.levels[0].shape[:2]],
                "mpp": list(slide.mpp) if slide.mpp else None,
                "blocks": [list(b) for b in blocks],
                "pyramid": factors,
                "kind": card.kind,
                "complete": False,
                "versions": _versions(),
            },
            "slideseg": {"classmap": card.classmap.to_dict(), "models": cards_summary(cards)},
        }
    )
    os.replace(tmp, out)  # (out is absent or an empty folder)
    return zarr.open_group(str(out), mode="r+")


def _prediction_attrs(out: Path) -> dict[str, Any]:
    """The attributes of the prediction folder ``out``, or an error saying what it is instead."""
    import zarr

    what = "--resume continues a prediction this plugin wrote; choose a new or empty output folder"
    if not out.is_dir():
        raise InferError(f"{out}: is a file, not a prediction folder; {what}")
    try:
        node = zarr.open(str(out), mode="r")
    except Exception:
        raise InferError(
            f"{out}: is a folder but not a prediction (no zarr store); {what}"
        ) from None
    attrs = dict(node.attrs)
    if not isinstance(node, zarr.Group) or not isinstance(attrs.get("slideseg_inference"), dict):
        raise InferError(
            f"{out}: is a zarr store but not a slideseg prediction (no 'slideseg_inference' "
            f"attributes); {what}"
        )
    return attrs


def _versions() -> dict[str, str]:
    from ..models.checkpoint import library_versions

    return library_versions()


def output_levels(out: str | os.PathLike | Any) -> list[Any]:
    """The label pyramid of a prediction folder as zarr arrays, level 0 first.

    The arrays read from disk on every access, so a napari layer built on them
    shows blocks as they are written (call ``layer.refresh()``).
    """
    import zarr

    root = out if hasattr(out, "attrs") else zarr.open_group(str(out), mode="r")
    factors = dict(root.attrs).get("slideseg_inference", {}).get("pyramid", [])
    return [root["labels"]] + [root[f"pyramid/{f}"] for f in factors]


# -----------------------------------------------------------------------------
# one block: read, compute, write (semantic or HoVer)
# -----------------------------------------------------------------------------
def _read(
    arr: Any, core: tuple[int, int, int, int], config: InferConfig, ctx: dict[str, Any]
) -> tuple[np.ndarray, tuple[int, int], tuple[int, int, int, int]]:
    """Pixels for a block: its core (semantic) or core + instance halo (HoVer), with the tile halo."""
    ext = core
    if ctx["kind"] == "hover":
        H, W = arr.shape[:2]
        ih = config.instance_halo
        y0, x0, y1, x1 = core
        ext = (max(0, y0 - ih), max(0, x0 - ih), min(H, y1 + ih), min(W, x1 + ih))
    pixels, offset = read_block(arr, ext, config.halo_px, config.tile, config.zoom_factor)
    return pixels, offset, ext


def _compute(
    models: Any,
    pixels: np.ndarray,
    offset: tuple[int, int],
    ext: tuple[int, int, int, int],
    core: tuple[int, int, int, int],
    config: InferConfig,
    device: Any,
    ctx: dict[str, Any],
    index: int,
) -> dict[str, Any]:
    """The pure block function: maps -> labels (semantic) or owned nuclei (HoVer)."""
    shape = (ext[2] - ext[0], ext[3] - ext[1])
    maps = predict_block(models, pixels, offset, shape, config, device)
    if ctx["kind"] != "hover":
        labels, probs = block_result(maps, core, config)
        return {"kind": "semantic", "core": core, "labels": labels, "probs": probs}
    from ..instances.postproc import HoverParams
    from .hover import hover_block

    res = hover_block(
        maps,
        ext,
        core,
        HoverParams(**ctx["params"]),
        index * ctx["stride"],
        ctx["stride"],
        ctx["type_names"],
        config.roi,
    )
    res["kind"] = "hover"
    res["core"] = core
    if config.save_probs:
        cy, cx = core[0] - ext[0], core[1] - ext[1]
        res["maps"] = maps[:, cy : cy + core[2] - core[0], cx : cx + core[3] - core[1]]
    return res


def _write(
    root: Any,
    out: Path,
    index: int,
    res: dict[str, Any],
    config: InferConfig,
    factors: Sequence[int],
) -> None:
    core = res["core"]
    if res["kind"] != "hover":
        write_block(root, core, res["labels"], res["probs"] if config.save_probs else None, factors)
        return
    from .hover import write_hover, write_table

    write_hover(root, res, list(factors))
    if config.save_probs:
        y0, x0, y1, x1 = core
        _fault("maps")
        root["maps"][:, y0:y1, x0:x1] = res["maps"].astype(np.float16)
    _fault("table")
    write_table(out, index, res["rows"])


def _context(slide: Any, card: ModelCard, config: InferConfig, n_blocks: int) -> dict[str, Any]:
    """What every block needs besides its pixels (picklable, for dask workers)."""
    kind = card.kind
    ctx: dict[str, Any] = {"kind": kind}
    if kind == "hover":
        from ..instances.postproc import HoverParams

        params = card.postproc
        params.update(config.hover or {})
        if not params.get("mpp") and slide.mpp:
            fy, _ = slide.level_factors(config.level)
            params["mpp"] = float(slide.mpp[0]) * float(fy)
        known = set(HoverParams.__dataclass_fields__)
        bad = set(params) - known
        if bad:
            raise InferError(f"unknown HoVer post-processing parameters {sorted(bad)}")
        ctx.update(
            params=HoverParams(**params).to_dict(),
            stride=_id_stride_checked(n_blocks),
            type_names=list(card.classmap.names),
        )
    return ctx


def _id_stride_checked(n_blocks: int) -> int:
    from .hover import id_stride

    stride = id_stride(n_blocks)
    if stride < 4096:
        raise InferError(
            f"{n_blocks} blocks leave only {stride} instance ids per block (uint32); use larger blocks"
        )
    return stride


# -----------------------------------------------------------------------------
# workers (local threads or dask.distributed)
# -----------------------------------------------------------------------------
_WORKER_CACHE: dict[str, Any] = {}


def _worker_state(slide_path: str, model_paths: tuple[str, ...], device: str) -> tuple:
    """Slide and models kept per process, so a worker loads each checkpoint once."""
    from ..io.slide import open_slide
    from ..models.checkpoint import load_model
    from ..models.device import resolve_device

    key = repr((slide_path, model_paths, device))
    if _WORKER_CACHE.get("key") != key:
        dev = resolve_device(device)
        models = [load_model(p, device=dev) for p in model_paths]
        _WORKER_CACHE.clear()
        _WORKER_CACHE.update(key=key, slide=open_slide(slide_path), models=models, device=dev)
    return _WORKER_CACHE["slide"], _WORKER_CACHE["models"], _WORKER_CACHE["device"]


def run_block_task(spec: dict[str, Any]) -> int:
    """Predict and write one block from a picklable ``spec`` (runs on a dask worker).

    The worker opens the slide and the checkpoints by path (cached per process)
    and writes its block's chunks straight into the shared zarr output; the
    driver marks the block done when the task returns.
    """
    import zarr

    config = InferConfig.from_dict(spec["config"])
    slide, models, device = _worker_state(spec["slide"], tuple(spec["models"]), config.device)
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    core = tuple(spec["core"])
    arr = slide.levels[config.level]
    i = int(spec["index"])
    pixels, offset, ext = _read(arr, core, config, spec["ctx"])
    res = _compute(models, pixels, offset, ext, core, config, device, spec["ctx"], i)
    if res["kind"] == "hover":
        res["index"] = i
        return res  # the driver merges nuclei (smallest id wins) in one process
    root = zarr.open_group(spec["out"], mode="r+")
    _write(root, Path(spec["out"]), i, res, config, spec["factors"])
    return i


def _get_client(client: Any) -> Any:
    if client is None or client is False:
        return None
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise InferError("dask.distributed is not installed: pip install distributed") from exc
    if client is True or client == "current":
        try:
            return distributed.get_client()
        except ValueError as exc:
            raise InferError("no active dask.distributed Client to run on") from exc
    if isinstance(client, str):
        try:
            return distributed.Client(client, timeout="20s")
        except OSError as exc:
            raise InferError(f"cannot reach the dask scheduler at {client}: {exc}") from exc
    return client


# -----------------------------------------------------------------------------
# the slide loop
# -----------------------------------------------------------------------------
def plan_blocks(
    slide: Any, config: InferConfig
) -> tuple[tuple[int, int], list[tuple[int, int, int, int]]]:
    """Level shape and block cores (row-major) of a prediction over ``slide``."""
    slide.check_level(config.level, error=InferError)
    H, W = slide.levels[config.level].shape[:2]
    ry0, rx0, ry1, rx1 = 0, 0, H, W
    if config.region is not None:
        a, b, c, d = (int(v) for v in config.region)
        ry0, rx0, ry1, rx1 = max(0, a), max(0, b), min(H, c), min(W, d)
    if config.roi:
        pts = np.asarray(config.roi, np.float64)
        ry0 = max(ry0, int(np.floor(pts[:, 0].min())))
        rx0 = max(rx0, int(np.floor(pts[:, 1].min())))
        ry1 = min(ry1, int(np.ceil(pts[:, 0].max())) + 1)
        rx1 = min(rx1, int(np.ceil(pts[:, 1].max())) + 1)
    if ry1 <= ry0 or rx1 <= rx0:
        raise InferError(
            f"{slide.path}: the region {config.region or config.roi} lies outside the slide "
            f"level {config.level} ({H} x {W} px)"
        )
    return (H, W), region_blocks((ry0, rx0, ry1, rx1), config.block)


def _as_slide(slide: Any) -> Any:
    """A Slide from a Slide or a path (opened lazily); anything else is refused by name."""
    if isinstance(slide, str | os.PathLike):
        from ..io.slide import open_slide

        return open_slide(slide)
    if not hasattr(slide, "levels") or not hasattr(slide, "check_level"):
        raise InferError(
            f"slide must be a Slide (napari_slideseg.open_slide(path)) or a path, "
            f"not {type(slide).__name__}"
        )
    return slide


def predict_slide_steps(
    slide: Any,
    models: Sequence[tuple[Any, dict[str, Any]] | str | os.PathLike],
    out: str | os.PathLike,
    config: InferConfig = InferConfig(),
    *,
    resume: bool = False,
    client: Any = None,
) -> Generator[Progress, None, Path]:
    """:func:`predict_slide` as a generator of progress events; returns the output path."""

    from ..models import resolve_model
    from ..models.checkpoint import load_model

    if not isinstance(config, InferConfig):
        raise InferError(f"config must be an InferConfig, not {type(config).__name__}")
    slide = _as_slide(slide)
    if isinstance(models, str | os.PathLike) or (
        isinstance(models, tuple) and len(models) == 2 and not isinstance(models[0], str)
    ):
        models = [models]  # one checkpoint (path, bundled name or (model, card))
    models = _check_models(
        [
            load_model(resolve_model(str(m))) if isinstance(m, str | os.PathLike) else m
            for m in models
        ]
    )
    cards = [c for _, c in models]
    owned = isinstance(client, str) and client not in ("current",)
    client = _get_client(client)
    try:
        return (yield from _predict(slide, models, cards, out, config, resume, client))
    finally:
        if owned and client is not None:
            client.close()  # a client made here from an address is ours to close


def _predict(slide, models, cards, out, config, resume, client):
    import torch

    from ..models.device import resolve_device

    card = cards[0]
    shape, blocks = plan_blocks(slide, config)
    config, resolution = _resolved(slide, card, config)
    ctx = _context(slide, card, config, len(blocks))
    factors = pyramid_factors(shape, config.block)
    out = Path(out)
    device = None
    # Everything that can fail before the first block (paths for a cluster, the device,
    # the models on it) is checked before the output exists, so a run that cannot start
    # leaves nothing behind that would block the next one.
    if client is not None:
        paths = [c.source for c in cards]
        if not all(paths):
            raise InferError(
                "distributed inference loads checkpoints on the workers by path: "
                "pass checkpoint folders (or models from load_model(path))"
            )
        if not getattr(slide, "path", None) or not os.path.exists(slide.path):
            raise InferError(
                "distributed inference opens the slide on the workers by path: "
                f"{getattr(slide, 'path', None)!r} is not a file they can read"
            )
    else:
        if config.threads:
            torch.set_num_threads(config.threads)
        device = resolve_device(config.device)
        models = [(m.to(device).eval(), c) for m, c in models]
    empty_dir = out.is_dir() and not any(out.iterdir())
    existed = out.exists() and not empty_dir
    root = _open_output(out, slide, cards, config, blocks, factors, shape, resume, resolution)
    try:
        yield from _run(
            slide, models, cards, out, config, client, device, root, blocks, factors, ctx
        )
    except BaseException:
        try:
            started = bool((np.asarray(root["done"][:]) == 1).any())
        except Exception:  # unreadable marks (disk gone): keep what is there
            started = True
        if not existed and not started:
            # Failed (or cancelled) before its first block: this run made the folder
            # and nothing in it is worth resuming.
            shutil.rmtree(out, ignore_errors=True)
            if empty_dir:
                out.mkdir(exist_ok=True)  # the user's empty folder stays as it was
        raise
    remove_temporaries(out)
    return out


def _run(slide, models, cards, out, config, client, device, root, blocks, factors, ctx):
    done = np.asarray(root["done"][:])
    skipped = 0
    if config.min_tissue > 0:
        # Background blocks: the tissue mask is computed once on a low level; a block
        # whose tissue fraction is below min_tissue is left as background (label 0).
        from ..patching import slide_tissue_mask

        tmask, (f0y, f0x) = slide_tissue_mask(slide)
        fy, fx = slide.level_factors(config.level)
        for i, (y0, x0, y1, x1) in enumerate(blocks):
            ty0, tx0 = int(y0 * fy / f0y), int(x0 * fx / f0x)
            ty1 = max(ty0 + 1, int(np.ceil(y1 * fy / f0y)))
            tx1 = max(tx0 + 1, int(np.ceil(x1 * fx / f0x)))
            if not done[i] and tmask[ty0:ty1, tx0:tx1].mean() < config.min_tissue:
                done[i] = 2
                skipped += 1
    if config.roi:
        for i, core in enumerate(blocks):
            if not done[i] and not _roi_mask(config.roi, core).any():
                done[i] = 2
                skipped += 1
    if skipped:
        root["done"][:] = done
    todo = [i for i in range(len(blocks)) if not done[i]]
    n_before = len(blocks) - len(todo)

    def event(k: int, i: int, where: str) -> Progress:
        return Progress(
            "predict",
            n_before + k + 1,
            len(blocks),
            f"block {n_before + k + 1}/{len(blocks)}{where}",
            {"block": list(blocks[i]), "skipped_blocks": skipped},
        )

    if client is not None:
        paths = [c.source for c in cards]
        yield from _run_distributed(
            client, slide, paths, config, out, blocks, todo, factors, root, event, ctx
        )
    else:
        yield from _run_local(
            slide, models, config, device, blocks, todo, factors, root, event, ctx, out
        )
    meta = dict(root.attrs["slideseg_inference"])
    if ctx["kind"] == "hover":
        from .hover import merge_tables

        _, meta["n_instances"] = merge_tables(out)
    meta["complete"] = True
    meta["skipped_blocks"] = int((np.asarray(root["done"][:]) == 2).sum())
    root.attrs["slideseg_inference"] = meta


def remove_temporaries(out: str | os.PathLike) -> int:
    """Delete temporary files (:data:`TEMP_SUFFIXES`) a killed run left in ``out``; returns how many.

    Only call it when no other process writes into ``out``.
    """
    n = 0
    for p in Path(out).rglob("*"):
        if p.name.endswith(TEMP_SUFFIXES) and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            n += 1
    return n


def _run_local(slide, models, config, device, blocks, todo, factors, root, event, ctx, out):
    arr = slide.levels[config.level]

    def load(i: int) -> tuple[np.ndarray, tuple[int, int], tuple[int, int, int, int]]:
        return _read(arr, blocks[i], config, ctx)

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        nxt = pool.submit(load, todo[0]) if todo else None
        for k, i in enumerate(todo):
            pixels, offset, ext = nxt.result()
            nxt = pool.submit(load, todo[k + 1]) if k + 1 < len(todo) else None
            res = _compute(models, pixels, offset, ext, blocks[i], config, device, ctx, i)
            _write(root, out, i, res, config, factors)
            _fault("done")
            root["done"][i] = 1  # only after all of the block's arrays and its table are written
            yield event(k, i, "")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_distributed(client, slide, paths, config, out, blocks, todo, factors, root, event, ctx):
    from distributed import as_completed

    base = {
        "slide": os.path.abspath(slide.path),
        "models": [os.path.abspath(p) for p in paths],
        "config": config.to_dict(),
        "out": os.path.abspath(out),
        "factors": list(factors),
        "ctx": ctx,
    }
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    window = 2 * n_workers + 1  # tasks in flight: keeps cancel prompt and memory flat
    queue = list(todo)
    futures = []

    def submit(i: int) -> Any:
        return client.submit(
            run_block_task, {**base, "core": list(blocks[i]), "index": i}, pure=False
        )

    while queue and len(futures) < window:
        futures.append(submit(queue.pop(0)))
    ac = as_completed(futures)
    k = 0
    try:
        for fut in ac:
            res = fut.result()  # re-raises the worker's error here
            if isinstance(res, dict):
                i = res["index"]
                _write(root, Path(out), i, res, config, factors)
            else:
                i = res
            _fault("done")
            root["done"][i] = 1
            yield event(k, i, " (cluster)")
            k += 1
            if queue:
                futures.append(submit(queue.pop(0)))
                ac.add(futures[-1])
    finally:
        # On cancel (generator closed) or error: drop what has not finished. A block
        # already running may still write its chunks but is never marked done, so a
        # resumed run computes it again.
        client.cancel([f for f in futures if not f.done()])


def predict_slide(
    slide: Any,
    models: Sequence[tuple[Any, dict[str, Any]] | str | os.PathLike],
    out: str | os.PathLike,
    config: InferConfig = InferConfig(),
    **kwargs: Any,
) -> Path:
    """Predict class labels over a slide level into the zarr folder ``out``.

    Parameters
    ----------
    slide
        An opened :class:`~napari_slideseg.io.slide.Slide`.
    models
        Checkpoint folders, or ``[(model, card), ...]`` from
        :func:`~napari_slideseg.models.load_model`; several with the same
        classes form an ensemble (probability mean).
    out
        Output zarr folder: ``labels`` (uint8, chunks of one block), a label
        ``pyramid`` (stride-sampled levels 2, 4, ... for display), optional
        ``probs`` (float16), ``done`` (per block: 1 predicted, 2 skipped), and
        attributes with the config, model cards, versions and ``complete``.
    config
        An :class:`InferConfig`.
    **kwargs
        ``resume=True`` continues an interrupted run; ``client=`` a
        ``distributed.Client``, a scheduler address (``"tcp://..."``) or
        ``"current"`` runs the blocks on a dask cluster whose workers read the
        slide and checkpoints by path and write into the shared ``out``.
    """
    return drain(predict_slide_steps(slide, models, out, config, **kwargs))


def is_complete(out: str | os.PathLike) -> bool:
    """Whether a prediction folder is finished (never true for an interrupted run)."""
    import zarr

    try:
        root = zarr.open_group(str(out), mode="r")
    except Exception:
        return False
    return bool(dict(root.attrs).get("slideseg_inference", {}).get("complete"))
