"""Making cards: a fresh card, a card from a dict, the library versions recorded."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ...io.palette import ClassMap
from .model import ModelCard
from .schema import Normalization


def new_card(
    *,
    kind: str,
    arch: str,
    encoder: str,
    in_channels: int,
    classes: int,
    classmap: ClassMap | Mapping[str, Any],
    patch_size: int,
    activation: str | None = None,
    **fields: Any,
) -> ModelCard:
    """A fresh card (library versions and creation time filled in).

    Parameters
    ----------
    kind : str
        ``"semantic"`` or ``"hover"``.
    arch, encoder : str
        Architecture and encoder names.
    in_channels, classes : int
        Input channels and output classes (HoVer: nucleus types).
    classmap : ClassMap or mapping
        The classes (a ClassMap or its dict form).
    patch_size : int
        Side of the training patches.
    activation : str, optional
        Default: sigmoid for a 1-class semantic model, else softmax.
    **fields
        Other :class:`ModelCard` fields (``normalization`` may be a dict).

    Returns
    -------
    ModelCard
        The validated card.
    """
    if isinstance(classmap, Mapping):
        classmap = ClassMap.from_dict(classmap)
    if isinstance(fields.get("normalization"), Mapping):
        n = fields["normalization"]
        fields["normalization"] = Normalization(tuple(n["mean"]), tuple(n["std"]))
    return ModelCard(
        kind=kind,
        arch=arch,
        encoder=encoder,
        in_channels=int(in_channels),
        classes=int(classes),
        classmap=classmap,
        patch_size=int(patch_size),
        activation=activation or ("sigmoid" if classes == 1 and kind == "semantic" else "softmax"),
        versions=library_versions(),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **fields,
    )


def as_card(card: ModelCard | Mapping[str, Any]) -> ModelCard:
    """A :class:`ModelCard` from a card or a card dict (console users pass either).

    Parameters
    ----------
    card : ModelCard or mapping
        A card, or its JSON form.

    Returns
    -------
    ModelCard
        ``card`` itself, or the validated dict.
    """
    return card if isinstance(card, ModelCard) else ModelCard.from_dict(card)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint depends on.

    Returns
    -------
    dict of str to str
        ``{distribution: version}``; ``"not installed"`` for a missing one.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "napari-slideseg",
        "torch",
        "segmentation-models-pytorch",
        "albumentations",
        "safetensors",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out
