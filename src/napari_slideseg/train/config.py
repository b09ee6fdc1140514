"""What defines a training run: :class:`TrainConfig`, its checks, and what a resume may change."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..io.errors import SlideSegError
from ..normalization import IMAGENET, UNIT
from ..options import Monitor, Optimizer, Scheduler, values

logger = logging.getLogger(__name__)

OPTIMIZERS = tuple(values(Optimizer))
SCHEDULERS = tuple(values(Scheduler))
MONITORS = tuple(values(Monitor))

#: Input normalisations: ``auto`` takes what the encoder weights' sidecar JSON states,
#: else ImageNet's; ``unit`` scales to [-1, 1] (mean = std = 0.5 on [0, 1] images).
INPUT_NORMS: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = {
    "auto": None,
    "imagenet": (IMAGENET["mean"], IMAGENET["std"]),
    "unit": (UNIT["mean"], UNIT["std"]),
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
}


class TrainError(SlideSegError, ValueError):
    """Invalid training configuration or data."""


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

    def __post_init__(self) -> None:
        # in this order: the first bad option is the one a message names
        _check_paths(self)
        _check_text(self)  # first: later checks call str methods on these
        _check_choices(self)
        _check_numbers(self)
        _check_encoder_input(self)
        _check_model_shape(self)
        _check_loss_weights(self)
        _check_scale_range(self)

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


# -----------------------------------------------------------------------------
# the checks of TrainConfig.__post_init__, each normalising what it accepts
# -----------------------------------------------------------------------------
def _check_paths(cfg: TrainConfig) -> None:
    """``manifests`` and ``val_manifests`` as lists of text paths; ``out`` as text."""
    if isinstance(cfg.manifests, str | os.PathLike):
        cfg.manifests = [os.fspath(cfg.manifests)]
    if isinstance(cfg.val_manifests, str | os.PathLike):
        cfg.val_manifests = [os.fspath(cfg.val_manifests)]
    for name in ("manifests", "val_manifests"):
        value = getattr(cfg, name) or []
        if not isinstance(value, list | tuple) or not all(
            isinstance(m, str | os.PathLike) for m in value
        ):
            raise TrainError(f"{name} must be a list of folder or manifest paths, not {value!r}")
        setattr(cfg, name, [os.fspath(m) for m in value])
    cfg.out = os.fspath(cfg.out)


def _check_choices(cfg: TrainConfig) -> None:
    """The options that name one of a fixed set."""
    from .. import validate as v
    from ..augment import PRESETS

    err = TrainError
    v.choice("optimizer", cfg.optimizer, OPTIMIZERS, error=err)
    v.choice("scheduler", cfg.scheduler, SCHEDULERS, error=err)
    v.choice("monitor", cfg.monitor, MONITORS, error=err)
    v.choice("split_by", cfg.split_by, ("slide", "patch"), error=err)
    v.choice("norm", cfg.norm, ("batch", "group"), error=err)
    v.choice("kind", cfg.kind, ("semantic", "hover"), error=err)
    v.choice("augment", cfg.augment, PRESETS, error=err)


def _check_numbers(cfg: TrainConfig) -> None:
    """Split, optimiser, schedule and run-length numbers (the optional ones only when given)."""
    from .. import validate as v

    err = TrainError
    cfg.val_fraction = v.fraction("val_fraction", cfg.val_fraction, hi_open=True, error=err)
    cfg.folds = v.int_at_least("folds", cfg.folds, 2, error=err)
    if cfg.fold is not None:
        cfg.fold = v.int_in_range("fold", cfg.fold, 0, cfg.folds - 1, error=err)
    cfg.lr = v.positive("lr", cfg.lr, error=err)
    cfg.weight_decay = v.nonneg("weight_decay", cfg.weight_decay, error=err)
    cfg.epochs = v.positive_int("epochs", cfg.epochs, error=err)
    cfg.batch_size = v.positive_int("batch_size", cfg.batch_size, error=err)
    cfg.seed = v.int_in_range("seed", cfg.seed, 0, 2**31 - 1, error=err)
    cfg.num_workers = v.nonneg_int("num_workers", cfg.num_workers, error=err)
    cfg.bn_recalibrate = v.nonneg_int("bn_recalibrate", cfg.bn_recalibrate, error=err)
    for name in ("patience", "threads", "max_steps"):
        if getattr(cfg, name) is not None:
            setattr(cfg, name, v.positive_int(name, getattr(cfg, name), error=err))


def _check_encoder_input(cfg: TrainConfig) -> None:
    """``input_norm``, and ``encoder_weights`` as the text path of a local file."""
    from .. import validate as v

    v.choice("input_norm", cfg.input_norm, tuple(INPUT_NORMS), error=TrainError)
    if cfg.encoder_weights is None:
        return
    w = cfg.encoder_weights
    if not isinstance(w, str | os.PathLike) or not os.fspath(w):
        raise TrainError(
            f"encoder_weights must be the path of a local .safetensors file, not {w!r}"
        )
    w = os.fspath(w)
    if not Path(w).exists():
        hint = (
            "; weights are never downloaded: name a local .safetensors file"
            if os.sep not in w and not w.endswith(".safetensors")
            else ""
        )
        raise TrainError(f"{w}: encoder_weights: no such file{hint}")
    cfg.encoder_weights = w


def _check_model_shape(cfg: TrainConfig) -> None:
    """``encoder_depth`` and ``decoder_channels`` (one width per stage for a U-Net)."""
    from .. import validate as v

    err = TrainError
    if cfg.encoder_depth is not None:
        cfg.encoder_depth = v.int_in_range("encoder_depth", cfg.encoder_depth, 3, 5, error=err)
    if cfg.decoder_channels is None:
        return
    dc = cfg.decoder_channels
    if isinstance(dc, str | bytes) or not isinstance(dc, Sequence) or not dc:
        raise TrainError(
            f"decoder_channels must be a list of integers >= 1 (deepest first), not {dc!r}"
        )
    cfg.decoder_channels = [
        v.positive_int(f"decoder_channels[{i}]", c, error=err) for i, c in enumerate(dc)
    ]
    depth = cfg.encoder_depth or 5
    if cfg.kind == "semantic" and cfg.arch.lower().startswith("unet") and len(dc) != depth:
        raise TrainError(
            f"decoder_channels must have one width per encoder stage ({depth}, "
            f"encoder_depth), not {len(dc)}"
        )


def _check_loss_weights(cfg: TrainConfig) -> None:
    """``class_weights`` (``"auto"`` or positive numbers) and ``hover_weights`` (a mapping)."""
    from .. import validate as v

    cw = cfg.class_weights
    if cw is not None and cw != "auto":
        if isinstance(cw, str):
            raise TrainError(
                f"class_weights must be 'auto' or a list of positive numbers, not {cw!r}"
            )
        cfg.class_weights = v.positive_numbers("class_weights", cw, error=TrainError)
    if cfg.hover_weights is not None:
        if not isinstance(cfg.hover_weights, dict):
            raise TrainError(
                f"hover_weights must be a mapping of loss term to weight, not {cfg.hover_weights!r}"
            )
        cfg.hover_weights = {
            str(k): v.nonneg(f"hover_weights[{k!r}]", w, error=TrainError)
            for k, w in cfg.hover_weights.items()
        }


def _check_text(cfg: TrainConfig) -> None:
    """The options that are free text."""
    for name in ("arch", "encoder", "loss", "device", "name"):
        if not isinstance(getattr(cfg, name), str):
            raise TrainError(f"{name} must be text, not {getattr(cfg, name)!r}")


def _check_scale_range(cfg: TrainConfig) -> None:
    """``scale_range`` as ``[lo, hi]`` floats with ``0 < lo <= 1 <= hi``."""
    if cfg.scale_range is None:
        return
    try:
        sr = [float(x) for x in cfg.scale_range]
    except (TypeError, ValueError):
        sr = []
    if len(sr) != 2 or not 0 < sr[0] <= 1 <= sr[1] or not all(map(math.isfinite, sr)):
        raise TrainError(
            f"scale_range must be two numbers lo <= 1 <= hi with lo > 0, not {cfg.scale_range}"
        )
    cfg.scale_range = sr


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
