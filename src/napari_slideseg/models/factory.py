"""Build segmentation-models-pytorch models by name, offline-safe.

``encoder_weights`` defaults to ``None`` (random initialisation). Pretrained
encoder weights are used only when they are already in the local Hugging Face
cache: the download is attempted with the hub forced offline, so a machine
without internet gets a clear :class:`ModelError` in well under a second
instead of half a minute of retries.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any

from ..io.errors import SlideSegError

logger = logging.getLogger(__name__)

#: smp architectures this plugin offers (those the installed smp has).
ARCHITECTURE_NAMES = (
    "Unet",
    "UnetPlusPlus",
    "Linknet",
    "FPN",
    "PSPNet",
    "DeepLabV3",
    "DeepLabV3Plus",
    "MAnet",
    "PAN",
    "UPerNet",
    "Segformer",
)


class ModelError(SlideSegError, ValueError):
    """A model cannot be built as asked (unknown name, weights not available offline...)."""


def _smp() -> Any:
    import segmentation_models_pytorch as smp

    return smp


def architectures() -> dict[str, Any]:
    """``{name: class}`` of the smp architectures available in this installation.

    Returns
    -------
    dict
        Those of :data:`ARCHITECTURE_NAMES` the installed smp has.
    """
    smp = _smp()
    return {n: getattr(smp, n) for n in ARCHITECTURE_NAMES if hasattr(smp, n)}


def encoders() -> list[str]:
    """Names of every smp encoder (``tu-`` timm encoders are accepted too).

    Returns
    -------
    list of str
        Sorted names.
    """
    return sorted(_smp().encoders.get_encoder_names())


class _LazyArchitectures(dict):
    def __missing__(self, key: str) -> Any:
        self.update(architectures())
        return dict.__getitem__(self, key)


ARCHITECTURES: dict[str, Any] = _LazyArchitectures()


@contextmanager
def hub_offline():
    """Force huggingface_hub offline for the duration (cache only, no network)."""
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        logger.debug("huggingface_hub is not installed: there is no hub to force offline")
        yield
        return
    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def to_group_norm(model: Any, groups: int = 8) -> Any:
    """Replace every BatchNorm2d with GroupNorm (in place; returns the model).

    GroupNorm normalises each image on its own, so it has no running
    statistics to drift and adapts to each image's stain: on a few training
    slides with different staining it generalises better than BatchNorm
    (GlaS here: held-out images collapsed with BatchNorm in eval mode). The
    choice is recorded in the checkpoint (``_norm``) and re-applied on load.

    Parameters
    ----------
    model : torch.nn.Module
        The model (changed in place).
    groups : int
        Groups per layer (1 where the channels do not divide by it).

    Returns
    -------
    torch.nn.Module
        ``model``.
    """
    from torch import nn

    for name, child in list(model.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            g = groups if c % groups == 0 else 1
            setattr(model, name, nn.GroupNorm(g, c))
        else:
            to_group_norm(child, groups)
    model._slideseg_norm = "group"
    return model


def trim_unused_stages(model: Any) -> Any:
    """Drop encoder stages a shallower ``encoder_depth`` never runs (ResNet-style encoders).

    smp keeps e.g. ResNet's ``layer4`` even at depth 4, where its forward
    skips it: 8 of resnet18's 11 M parameters would be stored for nothing.
    The same trim runs when a checkpoint is loaded, so weights and model agree.

    Parameters
    ----------
    model : torch.nn.Module
        An smp model or an encoder (changed in place).

    Returns
    -------
    torch.nn.Module
        ``model``.
    """
    enc = getattr(model, "encoder", model)
    depth = getattr(enc, "_depth", 5)
    for k in range(max(1, depth), 5):  # stage k + 1 is layer{k}
        if hasattr(enc, f"layer{k}") and depth <= k:
            delattr(enc, f"layer{k}")
    return model


def build_model(
    arch: str = "Unet",
    encoder: str = "resnet18",
    *,
    in_channels: int = 3,
    classes: int = 2,
    encoder_weights: str | bool | None = None,
    **kwargs: Any,
) -> Any:
    """Create an smp model.

    Parameters
    ----------
    arch : str
        Architecture name (see :data:`ARCHITECTURE_NAMES`; case-sensitive, as in smp).
    encoder : str
        Any smp encoder name (``resnet18``, ``efficientnet-b0``, ``tu-...``).
    in_channels : int
        Input channels (3 for RGB).
    classes : int
        Output channels: number of classes for softmax models, 1 for a binary
        sigmoid model.
    encoder_weights : str, optional
        ``None`` (default, random init) or a pretrained weight name such as
        ``"imagenet"``; used only if already cached locally.
    **kwargs
        Passed to the smp architecture.

    Returns
    -------
    torch.nn.Module
        The model, with unused encoder stages dropped.

    Raises
    ------
    ModelError
        Unknown architecture or encoder, or pretrained weights not cached.
    """
    archs = architectures()
    if arch not in archs:
        raise ModelError(f"unknown architecture {arch!r}; choose one of {', '.join(archs)}")
    if not encoder.startswith("tu-") and encoder not in encoders():
        raise ModelError(
            f"unknown encoder {encoder!r}; see segmentation_models_pytorch.encoders.get_encoder_names()"
        )

    def make() -> Any:
        return trim_unused_stages(
            archs[arch](
                encoder_name=encoder,
                encoder_weights=encoder_weights,
                in_channels=in_channels,
                classes=classes,
                **kwargs,
            )
        )

    if encoder_weights is None:
        return make()
    try:
        with hub_offline():
            return make()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(
            f"pretrained weights {encoder_weights!r} for encoder {encoder!r} are not in the local "
            "cache and this session does not download. On a machine with internet run\n"
            f"  python -c \"import segmentation_models_pytorch as smp; smp.{arch}('{encoder}', "
            f"encoder_weights='{encoder_weights}')\"\n"
            "then copy its Hugging Face cache (~/.cache/huggingface) to this machine, or train "
            f"with encoder_weights=None. ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc
