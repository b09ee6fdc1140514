"""Loss functions by name, built on ``smp.losses`` (not rewritten).

Multiclass models output ``C`` channels and are trained with softmax losses
against integer masks; binary models output 1 channel (sigmoid) and are
trained against 0/1 masks. Names may be summed with ``+``: ``"ce+dice"``,
``"bce+dice"``, ``"focal+dice"``.

==============  ===============================================  ====================
name            multiclass (C channels, softmax)                 binary (1 channel)
==============  ===============================================  ====================
``ce``          ``CrossEntropyLoss`` with optional class weights  ``BCEWithLogitsLoss``
``bce``         (binary only)                                     ``SoftBCEWithLogitsLoss``
``dice``        ``DiceLoss("multiclass")``                        ``DiceLoss("binary")``
``focal``       ``FocalLoss("multiclass")``                       ``FocalLoss("binary")``
``jaccard``     ``JaccardLoss("multiclass")``                     ``JaccardLoss("binary")``
``lovasz``      ``LovaszLoss("multiclass")``                      ``LovaszLoss("binary")``
``tversky``     ``TverskyLoss("multiclass")``                     ``TverskyLoss("binary")``
==============  ===============================================  ====================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .factory import ModelError

LOSS_NAMES = ("ce", "bce", "dice", "focal", "jaccard", "lovasz", "tversky")


def class_weights_from_fractions(
    fractions: Sequence[float], power: float = 0.5, cap: float = 10.0
) -> list[float]:
    """Inverse-frequency class weights, ``(1 / f) ** power``, normalised to mean 1 and capped.

    ``fractions`` are the classes' pixel fractions (e.g. the mean of the
    manifest's ``frac_*`` columns).
    """
    import numpy as np

    f = np.clip(np.asarray(fractions, float), 1e-6, None)
    w = (1.0 / f) ** power
    w = w / w.mean()
    return np.minimum(w, cap).tolist()


def build_loss(name: str, *, classes: int, class_weights: Sequence[float] | None = None) -> Any:
    """A callable ``loss(logits, target)`` for the named loss (or sum of losses).

    Parameters
    ----------
    name
        One of :data:`LOSS_NAMES`, or several joined with ``+``.
    classes
        Output channels of the model (1 means binary/sigmoid).
    class_weights
        Per-class weights for ``ce`` (multiclass) or the positive-class weight
        ratio for binary (``weights[1] / weights[0]``).
    """
    import torch
    from segmentation_models_pytorch import losses as L

    binary = classes == 1
    mode = "binary" if binary else "multiclass"
    parts = [p.strip().lower() for p in name.split("+") if p.strip()]
    if not parts:
        raise ModelError("empty loss name")
    fns = []
    for part in parts:
        if part not in LOSS_NAMES:
            raise ModelError(
                f"unknown loss {part!r}; choose from {', '.join(LOSS_NAMES)} (join with '+')"
            )
        if part == "ce":
            if binary:
                pos = None
                if class_weights is not None and len(class_weights) == 2:
                    pos = torch.tensor([class_weights[1] / class_weights[0]])
                fns.append(_Binary(torch.nn.BCEWithLogitsLoss(pos_weight=pos)))
            else:
                w = (
                    torch.tensor(class_weights, dtype=torch.float32)
                    if class_weights is not None
                    else None
                )
                fns.append(_Weighted(w))
        elif part == "bce":
            if not binary:
                raise ModelError("'bce' is for binary (1-channel) models; use 'ce' for multiclass")
            fns.append(_Binary(L.SoftBCEWithLogitsLoss()))
        elif part == "dice":
            fns.append(L.DiceLoss(mode, from_logits=True))
        elif part == "focal":
            fns.append(L.FocalLoss(mode))
        elif part == "jaccard":
            fns.append(L.JaccardLoss(mode, from_logits=True))
        elif part == "lovasz":
            fns.append(L.LovaszLoss(mode))
        elif part == "tversky":
            fns.append(L.TverskyLoss(mode, from_logits=True))
    return _Sum(fns, parts)


class _Binary:
    """Adapt a (N, 1, H, W) logits / (N, H, W) int target pair for BCE losses."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, logits: Any, target: Any) -> Any:
        return self.fn(logits[:, 0], target.float())

    def to(self, device: Any) -> _Binary:
        self.fn = self.fn.to(device)
        return self


class _Weighted:
    def __init__(self, weight: Any) -> None:
        self.weight = weight

    def __call__(self, logits: Any, target: Any) -> Any:
        import torch.nn.functional as F

        w = self.weight.to(logits.device) if self.weight is not None else None
        return F.cross_entropy(logits, target.long(), weight=w)


class _Sum:
    def __init__(self, fns: list[Any], names: list[str]) -> None:
        self.fns, self.names = fns, names

    def __call__(self, logits: Any, target: Any) -> Any:
        total = None
        for fn in self.fns:
            v = fn(logits, target)
            total = v if total is None else total + v
        return total

    def __repr__(self) -> str:
        return "+".join(self.names)
