"""The checks of :class:`~napari_slideseg.train.config.TrainConfig`, and the choices they allow.

Each check normalises what it accepts (paths to text, numbers to their type)
and raises :class:`TrainError` naming the first option it refuses;
:func:`check_config` runs them in the order the messages rely on. The checks
take the config as ``Any``: :mod:`.config` imports this module, so this one
cannot import ``TrainConfig`` back (the package has no import cycles).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..io.errors import SlideSegError
from ..normalization import IMAGENET, UNIT
from ..options import Monitor, Optimizer, Scheduler, values

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


def check_config(cfg: Any) -> None:
    """Check and normalise every option of ``cfg`` in place (``TrainConfig.__post_init__``).

    Parameters
    ----------
    cfg : TrainConfig
        The config being made.

    Raises
    ------
    TrainError
        Naming the first option that is invalid.
    """
    # in this order: the first bad option is the one a message names
    _check_paths(cfg)
    _check_text(cfg)  # first: later checks call str methods on these
    _check_choices(cfg)
    _check_numbers(cfg)
    _check_encoder_input(cfg)
    _check_model_shape(cfg)
    _check_loss_weights(cfg)
    _check_scale_range(cfg)


def _check_paths(cfg: Any) -> None:
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
    if cfg.init_from is not None:
        if not isinstance(cfg.init_from, str | os.PathLike) or not os.fspath(cfg.init_from):
            raise TrainError(
                f"init_from must be a checkpoint folder or a bundled model name, "
                f"not {cfg.init_from!r}"
            )
        from ..models.bundled import resolve_model
        from ..models.checkpoint import CheckpointError

        try:
            cfg.init_from = os.fspath(resolve_model(os.fspath(cfg.init_from)))
        except CheckpointError as exc:
            raise TrainError(f"init_from: {exc}") from None


def _check_choices(cfg: Any) -> None:
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


def _check_numbers(cfg: Any) -> None:
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


def _check_encoder_input(cfg: Any) -> None:
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


def _check_model_shape(cfg: Any) -> None:
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


def _check_loss_weights(cfg: Any) -> None:
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


def _check_text(cfg: Any) -> None:
    """The options that are free text."""
    for name in ("arch", "encoder", "loss", "device", "name"):
        if not isinstance(getattr(cfg, name), str):
            raise TrainError(f"{name} must be text, not {getattr(cfg, name)!r}")


def _check_scale_range(cfg: Any) -> None:
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
