"""``predict_slide``: block-wise tiled inference into a resumable zarr output.

One pure function, :func:`predict_block`, does the work for one block core:
read the core plus a halo (reflect-padded at the slide edge), cut it into
overlapping tiles, run them in batches through every model (and every TTA
transform), average the class probabilities, blend tiles with a smooth
window, and crop to the core. :func:`predict_slide_steps` runs it over the
block grid with the next block's pixels read ahead on a thread, writes each
block's labels (uint8) and optional probabilities (float16) into a chunked
zarr, and only then marks the block done. Re-running with ``resume=True``
skips done blocks; because the block function is pure, the result equals an
uninterrupted run bit for bit. The output's ``complete`` attribute is set
only after the last block.

Memory is bounded by one block (plus halo) x classes x float32, and one batch
of tiles on the device: a 100k x 100k slide uses about what a 10k one does.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.errors import SlideSegError
from ..patching import read_window_rect
from ..progress import Progress, drain
from .tiles import blend_window, block_grid, tile_starts

TTA_MODES = ("none", "flips", "d4")


class InferError(SlideSegError, ValueError):
    """Invalid inference inputs (models that disagree, a foreign output folder...)."""


@dataclass(frozen=True)
class InferConfig:
    """Options of :func:`predict_slide` (JSON-able; recorded in the output).

    ``overlap`` is the overlap between neighbouring tiles in pixels; the block
    halo defaults to the same. ``region`` is ``(y0, x0, y1, x1)`` in pixels of
    the chosen level.
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

    def __post_init__(self) -> None:
        if self.tta not in TTA_MODES:
            raise InferError(f"tta must be one of {TTA_MODES}, not {self.tta!r}")
        if not 0 <= self.overlap < self.tile:
            raise InferError(
                f"overlap must be in [0, tile) (tile {self.tile}, overlap {self.overlap})"
            )
        if self.block < 1 or self.batch_size < 1:
            raise InferError("block and batch_size must be positive")

    @property
    def halo_px(self) -> int:
        return self.overlap if self.halo is None else self.halo

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["region"] = list(self.region) if self.region else None
        return d


# -----------------------------------------------------------------------------
# models
# -----------------------------------------------------------------------------
def _check_models(models: Sequence[tuple[Any, dict[str, Any]]]) -> dict[str, Any]:
    if not models:
        raise InferError("no model given")
    cards = [c for _, c in models]
    first = cards[0]
    names = first["classmap"]["names"]
    for c in cards[1:]:
        if c["classmap"]["names"] != names:
            raise InferError(
                f"ensemble members disagree on classes: {names} vs {c['classmap']['names']}"
            )
    return first


def _probs(model: Any, card: dict[str, Any], x: Any) -> Any:
    """Class probabilities ``(N, C, H, W)`` of one model (sigmoid models give 2 classes)."""
    import torch

    out = model(x)
    if card.get("activation") == "sigmoid" or out.shape[1] == 1:
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


def _forward(models: Sequence[tuple[Any, dict[str, Any]]], x: Any, tta: str, use_amp: bool) -> Any:
    import torch

    total = None
    n = 0
    for model, card in models:
        for k, flip in _tta_ops(tta):
            xi = torch.rot90(x, k, (2, 3))
            if flip:
                xi = torch.flip(xi, (3,))
            with torch.autocast(x.device.type, dtype=torch.float16, enabled=use_amp):
                p = _probs(model, card, xi).float()
            if flip:
                p = torch.flip(p, (3,))
            p = torch.rot90(p, -k, (2, 3))
            total = p if total is None else total + p
            n += 1
    return total / n


# -----------------------------------------------------------------------------
# the block function
# -----------------------------------------------------------------------------
def read_block(
    arr: Any, core: tuple[int, int, int, int], halo: int, tile: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pixels of ``core`` plus ``halo`` (reflect-padded outside the image, at least one tile).

    Returns the padded block and the offset of the core inside it.
    """
    y0, x0, y1, x1 = core
    ry0, rx0 = y0 - halo, x0 - halo
    ry1 = max(y1 + halo, ry0 + tile)
    rx1 = max(x1 + halo, rx0 + tile)
    # The same clip-read-pad as patch extraction, so both see identical edge pixels.
    part = read_window_rect(arr, ry0, rx0, ry1 - ry0, rx1 - rx0, "reflect", 0)
    if part.ndim == 2:
        part = np.repeat(part[..., None], 3, -1)
    part = part[..., :3]
    return part, (y0 - ry0, x0 - rx0)


def predict_block(
    models: Sequence[tuple[Any, dict[str, Any]]],
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
    norm = card.get("normalization") or {
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    mean = np.asarray(norm["mean"], np.float32)
    std = np.asarray(norm["std"], np.float32)
    H, W = pixels.shape[:2]
    t = config.tile
    ys = tile_starts(H, t, config.overlap)
    xs = tile_starts(W, t, config.overlap)
    win = torch.from_numpy(blend_window(t, config.window))
    n_classes = 2 if card.get("activation") == "sigmoid" else int(card["classes"])
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
    out = acc / wsum
    oy, ox = offset
    h, w = core_shape
    return out[:, oy : oy + h, ox : ox + w].numpy()


# -----------------------------------------------------------------------------
# the slide loop
# -----------------------------------------------------------------------------
def _config_hash(config: InferConfig, slide_path: str, cards: list[dict[str, Any]]) -> str:
    raw = json.dumps(
        {
            "config": config.to_dict(),
            "slide": os.path.abspath(slide_path),
            "models": [c.get("created") for c in cards],
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def predict_slide_steps(
    slide: Any,
    models: Sequence[tuple[Any, dict[str, Any]]],
    out: str | os.PathLike,
    config: InferConfig = InferConfig(),
    *,
    resume: bool = False,
) -> Generator[Progress, None, Path]:
    """:func:`predict_slide` as a generator of progress events; returns the output path."""
    import torch
    import zarr

    from ..train import resolve_device

    card = _check_models(models)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    models = [(m.to(device).eval(), c) for m, c in models]
    arr = slide.levels[config.level]
    H, W = arr.shape[:2]
    if config.region is not None:
        ry0, rx0, ry1, rx1 = (int(v) for v in config.region)
        ry0, rx0, ry1, rx1 = max(0, ry0), max(0, rx0), min(H, ry1), min(W, rx1)
    else:
        ry0, rx0, ry1, rx1 = 0, 0, H, W
    blocks = block_grid((ry1 - ry0, rx1 - rx0), config.block, (ry0, rx0))
    n_classes = 2 if card.get("activation") == "sigmoid" else int(card["classes"])
    digest = _config_hash(config, slide.path, [c for _, c in models])
    out = Path(out)
    if out.exists() and not resume:
        raise InferError(
            f"{out}: exists; pass resume=True (--resume) to continue it, or choose another path"
        )
    root = zarr.open_group(str(out), mode="a")
    attrs = dict(root.attrs)
    if attrs:
        if attrs.get("slideseg_inference", {}).get("config_hash") != digest:
            raise InferError(
                f"{out}: holds a prediction made with other settings, slide or models; not resuming it"
            )
    else:
        chunk = min(config.block, 2048)
        root.create_array(
            "labels", shape=(H, W), chunks=(chunk, chunk), dtype=np.uint8, fill_value=0
        )
        if config.save_probs:
            root.create_array(
                "probs",
                shape=(n_classes, H, W),
                chunks=(n_classes, chunk, chunk),
                dtype=np.float16,
                fill_value=0,
            )
        root.create_array(
            "done",
            shape=(len(blocks),),
            chunks=(max(1, len(blocks)),),
            dtype=np.uint8,
            fill_value=0,
        )
        root.attrs.update(
            {
                "slideseg_inference": {
                    "config_hash": digest,
                    "config": config.to_dict(),
                    "slide": os.path.abspath(slide.path),
                    "level": config.level,
                    "blocks": [list(b) for b in blocks],
                    "complete": False,
                },
                "slideseg": {"classmap": card["classmap"], "models": [c for _, c in models]},
            }
        )
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
        root["done"][:] = done
    todo = [i for i in range(len(blocks)) if not done[i]]
    halo = config.halo_px

    def load(i: int) -> tuple[np.ndarray, tuple[int, int]]:
        return read_block(arr, blocks[i], halo, config.tile)

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        nxt = pool.submit(load, todo[0]) if todo else None
        for k, i in enumerate(todo):
            pixels, offset = nxt.result()
            nxt = pool.submit(load, todo[k + 1]) if k + 1 < len(todo) else None
            y0, x0, y1, x1 = blocks[i]
            probs = predict_block(models, pixels, offset, (y1 - y0, x1 - x0), config, device)
            root["labels"][y0:y1, x0:x1] = probs.argmax(0).astype(np.uint8)
            if config.save_probs:
                root["probs"][:, y0:y1, x0:x1] = probs.astype(np.float16)
            root["done"][i] = 1  # only after the block's data is written
            yield Progress(
                "predict",
                len(blocks) - len(todo) + k + 1,
                len(blocks),
                f"block {len(blocks) - len(todo) + k + 1}/{len(blocks)}",
                {"block": list(blocks[i]), "skipped_blocks": skipped},
            )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    meta = dict(root.attrs["slideseg_inference"])
    meta["complete"] = True
    meta["skipped_blocks"] = int((np.asarray(root["done"][:]) == 2).sum())
    root.attrs["slideseg_inference"] = meta
    return out


def predict_slide(
    slide: Any,
    models: Sequence[tuple[Any, dict[str, Any]]],
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
        ``[(model, card), ...]`` from :func:`~napari_slideseg.models.load_model`;
        several with the same classes form an ensemble (probability mean).
    out
        Output zarr folder: ``labels`` (uint8), optional ``probs`` (float16),
        ``done`` (per block: 1 predicted, 2 skipped as background), attributes with the config, model cards
        and ``complete``.
    config
        An :class:`InferConfig`.
    **kwargs
        ``resume=True`` continues an interrupted run.
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
