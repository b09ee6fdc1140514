"""Semantic segmentation: class probabilities, labels are their argmax."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...io.ngff import write_window_levels
from ...models.card import ModelCard
from ..config import InferConfig
from ..tiles import roi_mask
from ..writes import fault
from .base import ArraySpec, Core, Output, Task


@dataclass(frozen=True)
class SemanticTask(Task):
    """Semantic segmentation: class probabilities, labels = argmax."""

    kind: ClassVar[str] = "semantic"

    @staticmethod
    def probs(out: Any, card: ModelCard) -> Any:
        """Class probabilities; a sigmoid (or one-channel) model gives background + class."""
        import torch

        if card.activation == "sigmoid" or out.shape[1] == 1:
            p = torch.sigmoid(out[:, :1])
            return torch.cat([1 - p, p], 1)
        return torch.softmax(out.float(), 1)

    def compute(
        self, maps: np.ndarray, ext: Core, core: Core, config: InferConfig, index: int
    ) -> dict[str, Any]:
        """Labels (uint8) and probabilities, zeroed outside the ROI polygon."""
        labels, probs = block_result(maps, core, config)
        return {"kind": self.kind, "core": core, "labels": labels, "probs": probs}

    def arrays(self, channels: int, save_probs: bool) -> list[ArraySpec]:
        """``labels`` with its ``pyramid``, and ``probs`` when saved."""
        specs = [ArraySpec("labels", np.uint8, None, "pyramid")]
        if save_probs:
            specs.append(ArraySpec("probs", np.float16, channels))
        return specs

    def write(self, dest: Output, index: int, res: dict[str, Any], config: InferConfig) -> None:
        """Labels, their pyramid and (if saved) the probabilities of the block's chunks."""
        probs = res["probs"] if config.save_probs else None
        write_block(dest.root, res["core"], res["labels"], probs, list(dest.factors))


def block_result(
    probs: np.ndarray, core: Core, config: InferConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Labels (uint8, argmax) and probabilities of a block, zeroed outside the ROI polygon.

    Parameters
    ----------
    probs : numpy.ndarray
        ``(C, h, w)`` class probabilities of the block core.
    core : tuple of int
        ``(y0, x0, y1, x1)`` of the core, level pixels.
    config : InferConfig
        ``config.roi``, if set, masks the result.

    Returns
    -------
    tuple of numpy.ndarray
        Labels and probabilities.
    """
    labels = probs.argmax(0).astype(np.uint8)
    if config.roi:
        inside = roi_mask(config.roi, core)
        labels[~inside] = 0
        probs = probs * inside
    return labels, probs


def write_block(
    root: Any,
    core: Core,
    labels: np.ndarray,
    probs: np.ndarray | None,
    factors: list[int] | tuple[int, ...],
) -> None:
    """Write one block's labels (all pyramid levels) and probabilities into ``root``.

    Cores come from :func:`~napari_slideseg.infer.tiles.region_blocks`, so the
    chunks written here belong to this block alone (safe from any process).
    Pyramid level ``f`` holds level-0 pixels ``(f * i, f * j)`` (stride
    sampling, the usual way to shrink label images).

    Parameters
    ----------
    root : zarr.Group
        The prediction folder, open for writing.
    core : tuple of int
        ``(y0, x0, y1, x1)``.
    labels : numpy.ndarray
        uint8 labels of the core.
    probs : numpy.ndarray or None
        ``(C, h, w)`` probabilities to save, or None.
    factors : sequence of int
        The pyramid's downsampling factors.
    """
    y0, x0, y1, x1 = core
    fault("labels")
    root["labels"][y0:y1, x0:x1] = labels
    fault("pyramid")
    write_window_levels(root, "pyramid", y0, x0, labels, factors)
    if probs is not None:
        fault("maps")
        root["probs"][:, y0:y1, x0:x1] = probs.astype(np.float16)
