"""Cutting the plan's patches block by block, with the pixel filters.

Each block region is read once (one dask compute over native tiles) while
the next is read on a thread; black, white, unannotated and
background-only windows are dropped and counted.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.annotations import IGNORE_INDEX
from ..io.slide import Slide
from ..progress import Progress
from .config import BLACK_LEVEL, WHITE_LEVEL, PatchConfig
from .grid import position_blocks
from .masks import align_mask
from .plan import PatchPlan, plan_patches
from .window import read_patch_window


@dataclass
class Patch:
    """One extracted patch (image, optional mask) and where it came from.

    Attributes
    ----------
    y, x : int
        The top-left corner in (zoomed) level pixels.
    image : numpy.ndarray
        ``(size, size[, c])`` pixels.
    mask : numpy.ndarray or None
        The aligned labels, when a mask was given.
    """

    y: int
    x: int
    image: np.ndarray
    mask: np.ndarray | None


def _window_fraction(
    flags: np.ndarray, ry: np.ndarray, rx: np.ndarray, size: int, stride: int
) -> np.ndarray:
    """Fraction of true pixels in each ``size`` window at ``(ry, rx)`` of a boolean block.

    Window corners lie on a ``stride`` lattice from the block origin, so the
    block is summed once into ``g x g`` cells (``g = gcd(size, stride)``) and
    each window adds up ``(size / g)^2`` cells through a summed-area table of
    the (small) cell grid: one pass over the pixels, O(1) per window.
    """
    g = math.gcd(size, stride)
    h, w = flags.shape
    hc, wc = h // g, w // g
    cells = flags[: hc * g, : wc * g].reshape(hc, g, wc, g).sum((1, 3), dtype=np.int64)
    sat = np.zeros((hc + 1, wc + 1), np.int64)
    sat[1:, 1:] = cells.cumsum(0).cumsum(1)
    cy, cx, k = ry // g, rx // g, size // g
    total = sat[cy + k, cx + k] - sat[cy, cx + k] - sat[cy + k, cx] + sat[cy, cx]
    return total / float(size * size)


def _all_channels(im: np.ndarray, op: Any, level: int) -> np.ndarray:
    """Pixels where every colour channel passes ``op(channel, level)`` (no slow last-axis reduce)."""
    out = op(im[..., 0], level)
    for c in (1, 2):
        out &= op(im[..., c], level)
    return out


def _window_filters(
    config: PatchConfig,
    im: np.ndarray,
    mk: np.ndarray | None,
    where: tuple[np.ndarray, np.ndarray],
    background: int,
    ignore: int | None,
) -> list[tuple[str, np.ndarray]]:
    """Each pixel filter's per-window test on one block, in the order they apply.

    Returns ``(summary key, fraction)`` pairs; a window is dropped by the
    first whose fraction is over its limit (``black``, ``white``) or zero
    (``unannotated``, ``background_only``).
    """
    ry, rx = where
    size, stride = config.size, config.stride
    out: list[tuple[str, np.ndarray]] = []
    if config.max_black < 1.0 and im.ndim == 3:
        flags = _all_channels(im, np.less, BLACK_LEVEL)
        out.append(("black", _window_fraction(flags, ry, rx, size, stride)))
    if config.max_white < 1.0 and im.ndim == 3:
        flags = _all_channels(im, np.greater, WHITE_LEVEL)
        out.append(("white", _window_fraction(flags, ry, rx, size, stride)))
    if mk is not None and ignore is not None:
        out.append(("unannotated", _window_fraction(mk != ignore, ry, rx, size, stride)))
    if config.drop_background and mk is not None:
        fg = mk != background
        if ignore is not None:
            fg &= mk != ignore
        out.append(("background_only", _window_fraction(fg, ry, rx, size, stride)))
    return out


def _dropped(
    config: PatchConfig, tests: list[tuple[str, np.ndarray]], i: int, rng: np.random.Generator
) -> str | None:
    """The summary key of the filter that drops window ``i``, or None to keep it."""
    limits = {"black": config.max_black, "white": config.max_white}
    for key, frac in tests:
        if key in limits:
            if frac[i] > limits[key]:
                return key
        elif frac[i] == 0 and not (
            key == "background_only" and rng.random() < config.keep_background
        ):
            return key
    return None


def iter_patches(
    slide: Slide,
    config: PatchConfig,
    mask: Any | None = None,
    *,
    plan: PatchPlan | None = None,
    block: int = 4096,
    background: int = 0,
    workers: int = 2,
    summary: dict[str, int] | None = None,
) -> Generator[Patch | Progress, None, None]:
    """Yield kept :class:`Patch` objects (and :class:`Progress` events), block by block.

    The next block is read on a thread while the current one is filtered, so
    reading overlaps the consumer's work. Pixel filters (black, white,
    unannotated, background-only) are applied here and counted into ``summary``.

    Parameters
    ----------
    slide : Slide
        The slide.
    config : PatchConfig
        The patch settings.
    mask : array or None
        Labels at level 0 or at the level cut (see :func:`align_mask`).
    plan : PatchPlan or None
        The positions to cut; ``None``: :func:`plan_patches`.
    block : int
        Block edge in pixels (at least ``config.size``).
    background : int
        The mask's background label (padding and ``drop_background``).
        With ``config.unannotated == "ignore"`` the mask's
        :data:`~napari_slideseg.io.annotations.IGNORE_INDEX` pixels are
        unannotated: constant padding is that value, a window holding only
        it is dropped (``unannotated``) and it is no foreground.
    workers : int
        Reader threads.
    summary : dict or None
        Updated in place with the plan's counts and ``black``, ``white``,
        (``unannotated`` with ``config.unannotated == "ignore"`` and a mask),
        ``background_only`` and ``kept``.

    Yields
    ------
    Patch or Progress
        Each kept patch, and one event after each block.
    """
    plan = plan or plan_patches(slide, config)
    level = plan.level
    img = slide.levels[level]
    msk = align_mask(mask, slide, level) if mask is not None else None
    ignore = IGNORE_INDEX if msk is not None and config.unannotated == "ignore" else None
    fill = background if ignore is None else ignore  # padding is unannotated too
    if summary is None:
        summary = {}
    summary.update(plan.summary)
    keys = ("black", "white", "background_only")
    for k in keys if ignore is None else ("black", "white", "unannotated", "background_only"):
        summary.setdefault(k, 0)
    summary.setdefault("kept", 0)
    rng = np.random.default_rng(config.seed)
    blocks = position_blocks(plan.positions, config.size, max(block, config.size))
    size = config.size

    def load(pos: np.ndarray) -> tuple:
        org, im = read_patch_window(img, pos, size, config.pad_mode, config.pad_value, config.zoom)
        mk = None
        if msk is not None:
            _, mk = read_patch_window(
                msk,
                pos,
                size,
                "reflect" if config.pad_mode == "reflect" else "constant",
                fill,
                config.zoom,
                labels=True,
            )
        return org, im, mk

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        pending: list[Future] = [pool.submit(load, b) for b in blocks[:2]]
        for bi, pos in enumerate(blocks):
            (oy, ox), im, mk = pending.pop(0).result()
            if bi + 2 < len(blocks):
                pending.append(pool.submit(load, blocks[bi + 2]))
            ry = pos[:, 0] - oy
            rx = pos[:, 1] - ox
            # Per-window fractions from summed-area tables: one pass per block,
            # O(1) per window, instead of a scan of every (overlapping) window.
            tests = _window_filters(config, im, mk, (ry, rx), background, ignore)
            for i in range(len(pos)):
                why = _dropped(config, tests, i, rng)
                if why is not None:
                    summary[why] += 1
                    continue
                y0, x0 = int(ry[i]), int(rx[i])
                patch = im[y0 : y0 + size, x0 : x0 + size]
                mpatch = mk[y0 : y0 + size, x0 : x0 + size] if mk is not None else None
                summary["kept"] += 1
                yield Patch(int(pos[i, 0]), int(pos[i, 1]), np.ascontiguousarray(patch), mpatch)
            yield Progress(
                "patches",
                bi + 1,
                len(blocks),
                f"block {bi + 1}/{len(blocks)}: {summary['kept']} kept",
            )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
