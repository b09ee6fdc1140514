"""Loss functions by name, built on ``smp.losses`` (not rewritten).

Multiclass models output ``C`` channels and are trained with softmax losses
against integer masks; binary models output 1 channel (sigmoid) and are
trained against 0/1 masks. Every loss leaves out the pixels whose target is
:data:`~napari_slideseg.io.annotations.IGNORE_INDEX` (255: unannotated, no
label). Names may be summed with ``+``: ``"ce+dice"``,
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

import warnings
from collections.abc import Sequence
from typing import Any

from ..io.annotations import IGNORE_INDEX
from ..options import Loss, values
from .factory import ModelError

LOSS_NAMES = tuple(values(Loss))


def class_weights_from_fractions(
    fractions: Sequence[float], power: float = 0.5, cap: float = 10.0
) -> list[float]:
    """Inverse-frequency class weights, ``(1 / f) ** power``, normalised to mean 1 and capped.

    Parameters
    ----------
    fractions : sequence of float
        The classes' pixel fractions (e.g. the mean of the manifest's
        ``frac_*`` columns); clipped below at 1e-6.
    power : float
        Exponent of the inverse frequency (0.5: square root).
    cap : float
        Largest weight.

    Returns
    -------
    list of float
        One weight per class.
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
    name : str
        One of :data:`LOSS_NAMES`, or several joined with ``+``.
    classes : int
        Output channels of the model (1 means binary/sigmoid).
    class_weights : sequence of float, optional
        Per-class weights for ``ce`` (multiclass) or the positive-class weight
        ratio for binary (``weights[1] / weights[0]``).

    Returns
    -------
    callable
        The summed loss (it has ``.to(device)`` and a ``+``-joined repr).

    Raises
    ------
    ModelError
        For an empty or unknown name, or ``bce`` for a multiclass model.

    Warns
    -----
    UserWarning
        When ``class_weights`` are given but no part of the loss uses them.
    """
    binary = classes == 1
    parts = [p.strip().lower() for p in name.split("+") if p.strip()]
    if not parts:
        raise ModelError("empty loss name")
    _warn_unused_weights(parts, binary, class_weights)
    fns: list[Any] = []
    for part in parts:
        if part not in LOSS_NAMES:
            raise ModelError(
                f"unknown loss {part!r}; choose from {', '.join(LOSS_NAMES)} (join with '+')"
            )
        fns.append(_loss_part(part, binary, class_weights))
    return _Sum(fns, parts)


def _loss_part(part: str, binary: bool, class_weights: Sequence[float] | None) -> Any:
    """One named part of a loss, ignoring :data:`IGNORE_INDEX` target pixels."""
    import torch
    from segmentation_models_pytorch import losses as L

    if part == "ce":
        if binary:
            pos = None
            if class_weights is not None and len(class_weights) == 2:
                pos = torch.tensor([class_weights[1] / class_weights[0]])
            return _Binary(torch.nn.BCEWithLogitsLoss(pos_weight=pos))
        w = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
        return _Weighted(w)
    if part == "bce":
        if not binary:
            raise ModelError("'bce' is for binary (1-channel) models; use 'ce' for multiclass")
        return _Binary(L.SoftBCEWithLogitsLoss())
    smp_losses: dict[str, tuple[Any, dict[str, Any]]] = {
        "dice": (L.DiceLoss, {"from_logits": True}),
        "focal": (L.FocalLoss, {}),
        "jaccard": (L.JaccardLoss, {"from_logits": True}),
        "lovasz": (L.LovaszLoss, {}),
        "tversky": (L.TverskyLoss, {"from_logits": True}),
    }
    cls, kw = smp_losses[part]
    return cls("binary" if binary else "multiclass", ignore_index=IGNORE_INDEX, **kw)


def _warn_unused_weights(
    parts: list[str], binary: bool, class_weights: Sequence[float] | None
) -> None:
    """Warn when ``class_weights`` are given but no part of the loss uses them."""
    if class_weights is None:
        return
    if "ce" not in parts:
        why = f"only the 'ce' loss uses class weights, not {'+'.join(parts)}"
    elif binary and len(class_weights) != 2:
        why = f"a binary 'ce' takes 2 (background, foreground), not {len(class_weights)}"
    else:
        return
    warnings.warn(f"class_weights are ignored: {why}", UserWarning, stacklevel=3)


class _Binary:
    """Adapt a (N, 1, H, W) logits / (N, H, W) int target pair for BCE losses.

    Pixels whose target is :data:`IGNORE_INDEX` are left out (the mean runs
    over the labelled pixels only).
    """

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def __call__(self, logits: Any, target: Any) -> Any:
        valid = target != IGNORE_INDEX
        return self.fn(logits[:, 0][valid], target[valid].float())

    def to(self, device: Any) -> _Binary:
        self.fn = self.fn.to(device)
        return self


class _Weighted:
    def __init__(self, weight: Any) -> None:
        self.weight = weight

    def __call__(self, logits: Any, target: Any) -> Any:
        import torch.nn.functional as F

        w = self.weight.to(logits.device) if self.weight is not None else None
        return F.cross_entropy(logits, target.long(), weight=w, ignore_index=IGNORE_INDEX)


class _Sum:
    def __init__(self, fns: list[Any], names: list[str]) -> None:
        self.fns, self.names = fns, names

    def __call__(self, logits: Any, target: Any) -> Any:
        if not bool((target != IGNORE_INDEX).any()):
            return logits.sum() * 0.0  # nothing labelled: no loss, no gradient (not NaN)
        total = None
        for fn in self.fns:
            v = fn(logits, target)
            total = v if total is None else total + v
        return total

    def __repr__(self) -> str:
        return "+".join(self.names)


# -----------------------------------------------------------------------------
# HoVer-Net
# -----------------------------------------------------------------------------
#: Reference weights (Graham et al. 2019): HV MSE 2, HV gradient MSE 1, the rest 1.
HOVER_WEIGHTS = {
    "np_ce": 1.0,
    "np_dice": 1.0,
    "hv_mse": 2.0,
    "hv_msge": 1.0,
    "nc_ce": 1.0,
    "nc_dice": 1.0,
}


def _sobel_kernels(size: int = 5) -> Any:
    """HoVer-Net's normalised Sobel kernels ``(kh, kv)`` of ``size`` (x and y derivatives)."""
    import torch

    r = torch.arange(-(size // 2), size // 2 + 1, dtype=torch.float32)
    h_range = r[None, :].expand(size, size)
    v_range = r[:, None].expand(size, size)
    denom = h_range * h_range + v_range * v_range
    denom[size // 2, size // 2] = 1.0
    return h_range / denom, v_range / denom


class HoverLoss:
    """HoVer-Net loss: NP CE + Dice, HV MSE + gradient MSE (inside nuclei), NC CE + Dice.

    Targets are ``(N, 3 or 4, H, W)`` float tensors from the HoVer dataset:
    channel 0 NP (0/1), 1-2 HV in [-1, 1], 3 NC type index (optional).
    Calling returns the weighted total; :attr:`last` holds each term (floats)
    of the latest call. Plain torch ops: runs on CPU, MPS and CUDA.

    Parameters
    ----------
    weights : dict of str to float, optional
        Weights of the terms (keys of :data:`HOVER_WEIGHTS`), over the
        reference ones.

    Raises
    ------
    ModelError
        For an unknown term name.
    """

    def __init__(self, weights: dict[str, float] | None = None) -> None:
        unknown = set(weights or {}) - set(HOVER_WEIGHTS)
        if unknown:
            raise ModelError(
                f"unknown HoVer loss terms {sorted(unknown)}; known: {sorted(HOVER_WEIGHTS)}"
            )
        self.weights = {**HOVER_WEIGHTS, **(weights or {})}
        self.last: dict[str, float] = {}

    @staticmethod
    def _dice(logits: Any, target: Any, eps: float = 1e-3, valid: Any = None) -> Any:
        import torch

        p = torch.softmax(logits.float(), 1)
        onehot = torch.nn.functional.one_hot(target, p.shape[1]).permute(0, 3, 1, 2).float()
        if valid is not None:
            w = valid[:, None].float()
            p, onehot = p * w, onehot * w
        inter = (p * onehot).sum((0, 2, 3))
        denom = p.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
        return 1 - ((2 * inter + eps) / (denom + eps)).mean()

    @staticmethod
    def _gradients(hv: Any) -> tuple[Any, Any]:
        import torch

        kh, kv = _sobel_kernels(5)
        kh = kh.to(hv.device, hv.dtype)[None, None]
        kv = kv.to(hv.device, hv.dtype)[None, None]
        dh = torch.nn.functional.conv2d(hv[:, 0:1], kh, padding=2)
        dv = torch.nn.functional.conv2d(hv[:, 1:2], kv, padding=2)
        return dh, dv

    def terms(self, out: Any, target: Any) -> dict[str, Any]:
        """Each loss term as a tensor.

        Parameters
        ----------
        out : torch.Tensor
            ``(N, 4 + T, H, W)`` model output.
        target : torch.Tensor
            ``(N, 3 or 4, H, W)`` NP, H, V (and NC) targets.

        Returns
        -------
        dict of str to torch.Tensor
            ``np_ce``, ``np_dice``, ``hv_mse``, ``hv_msge`` and, with types,
            ``nc_ce`` and ``nc_dice``.
        """
        import torch

        from .hovernet import split_outputs

        o = split_outputs(out.float())
        np_t = target[:, 0].long()
        hv_t = target[:, 1:3].float()
        t: dict[str, Any] = {
            "np_ce": torch.nn.functional.cross_entropy(o["np"], np_t),
            "np_dice": self._dice(o["np"], np_t),
            "hv_mse": torch.mean((o["hv"] - hv_t) ** 2),
        }
        focus = target[:, 0:1].float()
        gp = self._gradients(o["hv"])
        gt = self._gradients(hv_t)
        err = (gp[0] - gt[0]) ** 2 + (gp[1] - gt[1]) ** 2
        t["hv_msge"] = (err * focus).sum() / (focus.sum() * 2 + 1e-8)
        if "nc" in o and target.shape[1] > 3:
            # NC = -1 marks nuclei of patches without type labels: left out of both terms.
            nc_t = target[:, 3].long().clamp_(-1, o["nc"].shape[1] - 1)
            valid = nc_t >= 0
            if bool(valid.any()):
                t["nc_ce"] = torch.nn.functional.cross_entropy(o["nc"], nc_t, ignore_index=-1)
                t["nc_dice"] = self._dice(o["nc"], nc_t.clamp(min=0), valid=valid)
            else:
                zero = o["nc"].sum() * 0.0
                t["nc_ce"], t["nc_dice"] = zero, zero
        return t

    def __call__(self, out: Any, target: Any) -> Any:
        t = self.terms(out, target)
        self.last = {k: float(v.detach()) for k, v in t.items()}
        return sum(self.weights[k] * v for k, v in t.items())
