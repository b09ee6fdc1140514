"""The card's schema: constants, the error type and the input normalisation.

Schema versions: 1 (cards written before the typed card; still read) and 2.
:data:`PREDICTION_FIELDS` lists the card fields hashed into the content digest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...io.errors import SlideSegError
from ...io.palette import ClassMap
from ...normalization import IMAGENET
from ...options import Activation, ModelKind, values

logger = logging.getLogger(__name__)

CARD = "slideseg.json"
SCHEMA_VERSION = 2
KINDS = tuple(values(ModelKind))
ACTIVATIONS = tuple(values(Activation))
#: Card fields that change what a model predicts (with the weights: the content digest).
PREDICTION_FIELDS = (
    "kind",
    "arch",
    "encoder",
    "in_channels",
    "classes",
    "activation",
    "classmap",
    "patch_size",
    "normalization",
    "mpp",
    "hover",
)
#: Nucleus vs background: the NP branch's classes (and a HoVer run's map without types).
NUCLEUS_CLASSMAP = ClassMap(("background", "nucleus"), ((0, 0, 0), (255, 255, 0)), 0, "nuclei")


class CheckpointError(SlideSegError, ValueError):
    """A checkpoint folder is missing parts or is inconsistent (the message names it)."""


def finite_float(v: Any, what: str, where: str) -> float:
    """``v`` as a finite float, or a :class:`CheckpointError` naming ``what`` and ``where``.

    Parameters
    ----------
    v : Any
        The value read from a card.
    what : str
        What the value is (for the message), e.g. ``"mpp"``.
    where : str
        The card it came from (for the message).

    Returns
    -------
    float
        ``float(v)``.

    Raises
    ------
    CheckpointError
        When ``v`` is not a number or not finite.
    """
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise CheckpointError(f"{where}: {what} must be a number, not {v!r}") from None
    if not math.isfinite(f):
        raise CheckpointError(f"{where}: {what} must be finite, not {v!r}")
    return f


@dataclass(frozen=True)
class Normalization:
    """Per-channel ``(x / 255 - mean) / std`` applied to the model's input pixels.

    Parameters
    ----------
    mean : tuple of float
        One mean per input channel (default: ImageNet's).
    std : tuple of float
        One positive standard deviation per channel.

    Raises
    ------
    CheckpointError
        For non-finite values, a non-positive std, or lengths that differ.
    """

    mean: tuple[float, ...] = IMAGENET["mean"]
    std: tuple[float, ...] = IMAGENET["std"]

    def __post_init__(self) -> None:
        where = "normalization"
        mean = tuple(finite_float(v, "every mean", where) for v in self.mean)
        std = tuple(finite_float(v, "every std", where) for v in self.std)
        if len(mean) != len(std) or not mean:
            raise CheckpointError(
                f"{where}: mean and std need one value per channel ({len(mean)} vs {len(std)})"
            )
        if any(s <= 0 for s in std):
            raise CheckpointError(f"{where}: std must be positive, not {list(std)}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict[str, list[float]]:
        """JSON form (the card's ``normalization``).

        Returns
        -------
        dict
            ``{"mean": [...], "std": [...]}``.
        """
        return {"mean": list(self.mean), "std": list(self.std)}


def card_normalization(norm: Any, where: str) -> Normalization:
    """A card's ``normalization`` entry, validated (none recorded: ImageNet's, logged).

    Parameters
    ----------
    norm : Any
        The card's ``normalization`` value (a mapping with ``mean`` and ``std``,
        or empty / ``None``).
    where : str
        The card it came from (for messages).

    Returns
    -------
    Normalization
        The validated normalisation (ImageNet's when none is recorded).

    Raises
    ------
    CheckpointError
        When ``mean`` or ``std`` is missing, not a list, or invalid.
    """
    if not norm:
        logger.debug("%s: no normalization recorded: ImageNet's mean and std", where)
        norm = IMAGENET
    if not isinstance(norm, Mapping) or "mean" not in norm or "std" not in norm:
        raise CheckpointError(f"{where}: normalization needs 'mean' and 'std'")
    try:
        return Normalization(tuple(norm["mean"]), tuple(norm["std"]))
    except TypeError as exc:
        raise CheckpointError(f"{where}: normalization mean/std must be lists") from exc
    except CheckpointError as exc:
        raise CheckpointError(f"{where}: {exc}") from exc
