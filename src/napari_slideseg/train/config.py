"""What defines a training run: :class:`TrainConfig` and what a resume may change.

The checks of its options, and the choices they allow, are in :mod:`.checks`
(``OPTIMIZERS``, ``INPUT_NORMS``, :class:`TrainError`...; importable from here too).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# the choice tables (and TrainError) live in checks.py; the "as" imports re-export them
from .checks import INPUT_NORMS as INPUT_NORMS
from .checks import MONITORS as MONITORS
from .checks import OPTIMIZERS as OPTIMIZERS
from .checks import SCHEDULERS as SCHEDULERS
from .checks import TrainError, check_config

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that defines a training run (JSON-serialisable).

    Data: ``manifests`` (patch folders or manifest.csv files). Split:
    ``val_manifests`` if given, else ``val_fraction`` of the slides
    (``split_by="slide"``) or patches (``"patch"``), or fold ``fold`` of
    ``folds`` (k-fold over the same groups). Model: smp ``arch`` + ``encoder``;
    ``binary=True`` trains a 1-channel sigmoid model for a 2-class map.
    Loss: names from :mod:`napari_slideseg.models.losses`, ``class_weights``
    a list or ``"auto"`` (inverse sqrt of the manifest's class fractions).
    Augmentation: preset ``augment`` and an optional zoom range
    ``scale_range`` (see :func:`napari_slideseg.augment.build_augmentation`).
    ``device``: ``auto`` (cuda > mps > cpu) or explicit (``cuda:1``).
    Resolution: the card records the µm/px the patch manifests state; patch
    folders whose µm/px differ by more than 10 % are refused unless
    ``mixed_mpp=True`` (then the card holds the patches' median).

    Attributes
    ----------
    manifests : list of str
        Patch folders (or their manifest.csv) to train on.
    out : str
        Run folder: checkpoints, metrics.csv, curves.png, done.json.
    val_manifests : list of str
        Patch folders to validate on; empty: split the training data.
    val_fraction : float
        Share of slides (or patches) held out for validation (0-1).
    split_by : str
        slide or patch: what the validation split draws.
    fold : int or None
        k-fold: the fold (0 to folds - 1) validated on; None: no k-fold.
    folds : int
        Number of k-fold folds.
    arch : str
        segmentation-models-pytorch architecture (Unet, UnetPlusPlus, FPN, ...).
    encoder : str
        Encoder name (resnet18, mobilenet_v2, ...).
    encoder_weights : str or None
        Local safetensors file of pretrained encoder weights; None: random init.
    input_norm : str
        auto, imagenet, unit or none: input normalisation (auto: from the weights' sidecar).
    binary : bool
        Train a 1-channel sigmoid model for a 2-class map.
    loss : str
        Loss terms joined by + (ce, bce, dice, focal, jaccard, lovasz, tversky).
    class_weights : list of float, "auto" or None
        Per-class loss weights; auto: inverse square root of the class fractions.
    optimizer : str
        adamw, adam, sgd or radam.
    lr : float
        Learning rate.
    weight_decay : float
        Weight decay of the optimiser.
    scheduler : str
        cosine, plateau, onecycle or none.
    epochs : int
        Training epochs.
    batch_size : int
        Patches per step.
    augment : str
        Augmentation preset: none, flips, standard or strong.
    scale_range : list of float or None
        Random zoom range [low, high] added to the augmentation.
    patience : int or None
        Stop after this many epochs without improvement; None: never.
    monitor : str
        val_loss or val_dice: what picks the best epoch.
    amp : bool
        Mixed precision on CUDA.
    seed : int
        Random seed.
    deterministic : bool
        Deterministic torch algorithms (slower; bit-identical reruns on a GPU).
    device : str
        auto (cuda > mps > cpu), cpu, mps, cuda or cuda:N.
    threads : int or None
        Torch CPU threads; None: torch's default.
    num_workers : int
        Data-loader worker processes.
    max_steps : int or None
        At most this many optimiser steps per epoch (a quick run); None: no limit.
    name : str
        Model name recorded on the card.
    kind : str
        semantic or hover (HoVer-Net style nuclei).
    norm : str
        Normalisation layers: batch or group.
    bn_recalibrate : int
        Batches used to recalibrate batch-norm statistics before saving (0: off).
    decoder_channels : list of int or None
        Decoder widths; None: the architecture's default.
    encoder_depth : int or None
        Encoder stages used; None: the architecture's default.
    hover_weights : dict or None
        HoVer loss term weights (np_ce, np_dice, hv_mse, hv_msge, nc_ce, nc_dice).
    mixed_mpp : bool
        Accept patch folders whose µm/px differ by more than 10 %.
    init_from : str or None
        Fine-tuning: a checkpoint folder or bundled model name whose weights
        start the run (it must have this config's kind, architecture,
        encoder and norm layers, and the patches' classes). ``input_norm``
        ``auto`` then means the parent's normalisation, and the cards record
        the parent's name and digest. None: a fresh model.

    Raises
    ------
    TrainError
        On construction, for an option of the wrong type, out of range or
        not among its choices (named in the message); paths are normalised
        to text and numbers to their types.
    """

    manifests: list[str] = field(default_factory=list)
    out: str = "slideseg-run"
    val_manifests: list[str] = field(default_factory=list)
    val_fraction: float = 0.2
    split_by: str = "slide"
    fold: int | None = None
    folds: int = 5
    arch: str = "Unet"
    encoder: str = "resnet18"
    encoder_weights: str | None = None
    input_norm: str = "auto"
    binary: bool = False
    loss: str = "ce+dice"
    class_weights: list[float] | str | None = None
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    epochs: int = 10
    batch_size: int = 8
    augment: str = "flips"
    scale_range: list[float] | None = None
    patience: int | None = None
    monitor: str = "val_loss"
    amp: bool = True
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    threads: int | None = None
    num_workers: int = 0
    max_steps: int | None = None
    name: str = ""
    kind: str = "semantic"
    norm: str = "batch"
    bn_recalibrate: int = 16
    decoder_channels: list[int] | None = None
    encoder_depth: int | None = None
    hover_weights: dict[str, float] | None = None
    mixed_mpp: bool = False
    init_from: str | None = None

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (what ``config.json`` holds).

        Returns
        -------
        dict
            Field name to value.
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict, ignoring keys that are not options (logged at INFO).

        Parameters
        ----------
        d : dict
            Option name to value (e.g. a parsed ``config.json``).

        Returns
        -------
        TrainConfig
            The checked config.

        Raises
        ------
        TrainError
            If ``d`` is not a dict, or an option is invalid.
        """
        if not isinstance(d, dict):
            raise TrainError(f"a training config is a JSON object, not {type(d).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(k) for k in d if k not in known)
        if unknown:
            logger.info("training config: ignoring keys that are not options: %s", unknown)
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def load_json(cls, path: str | os.PathLike) -> TrainConfig:
        """Read a run's ``config.json``; any problem is a :class:`TrainError` naming the file.

        Parameters
        ----------
        path : str or os.PathLike
            The ``config.json`` file.

        Returns
        -------
        TrainConfig
            The checked config.

        Raises
        ------
        TrainError
            If the file cannot be read, is not JSON, or holds an invalid config.
        """
        p = Path(path)
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainError(f"{p}: not a valid training config (invalid JSON: {exc})") from None
        except OSError as exc:
            raise TrainError(
                f"{p}: cannot read the training config ({exc.strerror or exc})"
            ) from None
        try:
            return cls.from_dict(doc)
        except TypeError as exc:
            raise TrainError(f"{p}: not a valid training config ({exc})") from None
        except TrainError as exc:
            raise TrainError(f"{p}: not a valid training config: {exc}") from None


#: Options a resumed run may change (how long and where it runs, not what it learns).
RESUME_MAY_CHANGE = frozenset(
    {"epochs", "patience", "threads", "device", "num_workers", "max_steps", "out", "amp"}
)


def resume_changes(saved: TrainConfig, given: TrainConfig) -> list[str]:
    """``"lr 0.5 (run: 0.001)"`` for each option that differs, apart from :data:`RESUME_MAY_CHANGE`.

    Parameters
    ----------
    saved : TrainConfig
        The run's config (its ``config.json``).
    given : TrainConfig
        The config a resume was asked with.

    Returns
    -------
    list of str
        One entry per differing option, in field order; empty when the resume may go on.
    """
    a, b = saved.to_dict(), given.to_dict()
    return [
        f"{k} {b[k]!r} (run: {a[k]!r})"
        for k in a
        if k not in RESUME_MAY_CHANGE and k in b and a[k] != b[k]
    ]
