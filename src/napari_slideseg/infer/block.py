"""One block: read it with its halo, run the tiles through the models, blend.

:func:`read_block` reads a block core plus a halo (reflect-padded at the
slide edge); :func:`predict_block` cuts it into overlapping tiles, runs them
in batches through every model and TTA view (:func:`forward`), and blends
them with a smooth window into per-pixel maps of the core. Both are pure:
the same inputs give the same output, which the resume and cluster
invariants rest on. What the maps mean is the task's business
(:mod:`~napari_slideseg.infer.task`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..models.card import ModelCard
from ..patching import read_window_rect
from .config import InferConfig, InferError
from .task import task_class
from .tiles import blend_window, tile_starts


def tta_ops(mode: str) -> list[tuple[int, bool]]:
    """(rot90 k, flip) pairs of a TTA mode: identity; flips adds h/v flips; d4 all 8.

    Parameters
    ----------
    mode : str
        none, flips or d4.

    Returns
    -------
    list of (int, bool)
    """
    if mode == "none":
        return [(0, False)]
    if mode == "flips":
        return [(0, False), (0, True), (2, False), (2, True)]
    return [(k, f) for k in range(4) for f in (False, True)]


#: Tiles of 512 px per CUDA batch ``batch_size=None`` starts from (see :func:`auto_batch_size`).
CUDA_BATCH_512 = 16
#: CPU (and MPS) batch when ``batch_size`` is None.
CPU_BATCH = 4


def auto_batch_size(device: Any, tile: int) -> int:
    """The batch size ``batch_size=None`` uses on ``device`` for tiles of ``tile`` px.

    CPU and MPS: :data:`CPU_BATCH` (throughput on a CPU barely changes past
    a few tiles). CUDA: :data:`CUDA_BATCH_512` tiles of 512 px scaled by tile
    area, halved on devices under 12 GB, between 1 and 64.

    Parameters
    ----------
    device : torch.device or str
    tile : int
        Tile side, pixels.

    Returns
    -------
    int
    """
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return CPU_BATCH
    n = CUDA_BATCH_512 * (512 * 512) / float(tile * tile)
    if torch.cuda.get_device_properties(dev).total_memory < 12 * 1024**3:
        n /= 2
    return int(min(64, max(1, n)))


def forward(models: Sequence[tuple[Any, ModelCard]], x: Any, tta: str, use_amp: bool) -> Any:
    """Mean outputs of every model and TTA view on the batch ``x``, in x's frame.

    Parameters
    ----------
    models : sequence of (torch.nn.Module, ModelCard)
        The ensemble; its task (activation, TTA undo) comes from each card's kind.
    x : torch.Tensor
        ``(N, 3, t, t)`` normalised tiles on the models' device.
    tta : str
        none, flips or d4.
    use_amp : bool
        Run under float16 autocast.

    Returns
    -------
    torch.Tensor
        ``(N, channels, t, t)`` float32.
    """
    import torch

    total: Any = None
    n = 0
    for model, card in models:
        task = task_class(card)
        for k, flip in tta_ops(tta):
            xi = torch.rot90(x, k, (2, 3))
            if flip:
                xi = torch.flip(xi, (3,))
            with torch.autocast(x.device.type, dtype=torch.float16, enabled=use_amp):
                p = task.probs(model(xi), card).float()
            p = task.undo_tta(p, k, flip)
            total = p if total is None else total + p
            n += 1
    return total / n


def read_block(
    arr: Any, core: tuple[int, int, int, int], halo: int, tile: int, zoom: float = 1.0
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pixels of ``core`` plus a halo (reflect-padded outside the image), at least one tile.

    ``halo`` and ``tile`` are in the model's pixels: at ``zoom`` z the block
    reads ``ceil(halo / z)`` slide pixels of halo and at least
    ``ceil(tile / z)`` per side, so the model always sees exactly scale z.

    Parameters
    ----------
    arr : array-like
        A slide level, ``(H, W[, C])``.
    core : tuple of int
        ``(y0, x0, y1, x1)``.
    halo : int
        Context around the core, model pixels.
    tile : int
        Model tile side, model pixels.
    zoom : float
        Model pixels per slide pixel.

    Returns
    -------
    tuple of (numpy.ndarray, (int, int))
        The padded RGB block and the offset of the core inside it.
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


def _resize(pixels: np.ndarray, size: tuple[int, int], up: bool) -> np.ndarray:
    import cv2

    interp = cv2.INTER_LINEAR if up else cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(pixels), size, interpolation=interp)


def predict_block(
    models: Sequence[tuple[Any, ModelCard]],
    pixels: np.ndarray,
    offset: tuple[int, int],
    core_shape: tuple[int, int],
    config: InferConfig,
    device: Any,
) -> np.ndarray:
    """Blended per-pixel maps ``(channels, h, w)`` of one block core (float32).

    Parameters
    ----------
    models : sequence of (torch.nn.Module, ModelCard)
        The ensemble, on ``device``, in eval mode.
    pixels : numpy.ndarray
        The block with its halo, from :func:`read_block`.
    offset : tuple of int
        The core's position in ``pixels``.
    core_shape : tuple of int
        ``(h, w)`` of the core.
    config : InferConfig
        Tile, overlap, window, batch size, TTA, zoom (numeric), AMP.
    device : torch.device

    Returns
    -------
    numpy.ndarray
        The maps of the core (pure: the same inputs give the same output).

    Raises
    ------
    InferError
        ``pixels`` too small for a tile at the zoom.
    """
    import torch

    card = models[0][1]
    mean = np.asarray(card.normalization.mean, np.float32)
    std = np.asarray(card.normalization.std, np.float32)
    H0, W0 = pixels.shape[:2]
    zoom = config.zoom_factor
    if zoom != 1:
        # read_block gave at least ceil(tile / zoom) pixels, so both sides scale by zoom
        zh, zw = round(H0 * zoom), round(W0 * zoom)
        if min(zh, zw) < config.tile:
            raise InferError(
                f"a block of {H0} x {W0} px at zoom {zoom:g} is smaller than a tile "
                f"({config.tile} px); read it with read_block(..., zoom={zoom:g})"
            )
        pixels = _resize(pixels, (zw, zh), up=zoom > 1)
    H, W = pixels.shape[:2]
    t = config.tile
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    # Blending runs where the model does: on a GPU the block goes up once (from pinned
    # memory, without blocking) and only the blended maps come back.
    win = torch.from_numpy(blend_window(t, config.window)).to(dev)
    acc = torch.zeros((card.channels, H, W), dtype=torch.float32, device=dev)
    wsum = torch.zeros((H, W), dtype=torch.float32, device=dev)
    img = (pixels.astype(np.float32) / 255.0 - mean) / std
    img_t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
    if cuda:
        img_t = img_t.pin_memory().to(dev, non_blocking=True)
    coords = [
        (y, x) for y in tile_starts(H, t, config.overlap) for x in tile_starts(W, t, config.overlap)
    ]
    use_amp = config.amp and cuda
    step = config.batch_size or auto_batch_size(dev, t)
    with torch.inference_mode():
        for i in range(0, len(coords), step):
            chunk = coords[i : i + step]
            batch = torch.stack([img_t[:, y : y + t, x : x + t] for y, x in chunk]).to(dev)
            probs = forward(models, batch, config.tta, use_amp)
            for (y, x), p in zip(chunk, probs, strict=True):
                acc[:, y : y + t, x : x + t] += p * win
                wsum[y : y + t, x : x + t] += win
    out = (acc / wsum).cpu().numpy()
    if zoom != 1:
        out = np.stack([_resize(c, (W0, H0), up=zoom < 1) for c in out])
    oy, ox = offset
    h, w = core_shape
    return out[:, oy : oy + h, ox : ox + w]
