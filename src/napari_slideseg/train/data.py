"""Training data: the train/validation split, its checks, class weights and datasets.

Everything here runs before the run folder is made, so a refused run leaves
nothing behind. :func:`prepare_data` does it all for :func:`~.loop.train_steps`.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io.palette import ClassMap
from .checks import INPUT_NORMS, TrainError
from .config import TrainConfig
from .rows import Row, read_rows, rows_dataset, training_mpp
from .task import TrainTask, train_task

logger = logging.getLogger(__name__)


def split_groups(
    groups: Sequence[str],
    *,
    val_fraction: float = 0.2,
    fold: int | None = None,
    folds: int = 5,
    seed: int = 0,
) -> tuple[list[int], list[int]]:
    """Train/validation indices keeping each group (slide or patch) on one side.

    Groups are shuffled with ``seed``; for k-fold, group ``j`` (in shuffled
    order) goes to fold ``j % folds`` and ``fold`` is the validation fold, so
    the K validation sets are disjoint and together cover every item.

    Parameters
    ----------
    groups : sequence of str
        The group of each item.
    val_fraction : float
        Share of the groups that validate (at least one when there are two
        or more groups and it is above 0); ignored when ``fold`` is given.
    fold : int or None
        The validation fold of a k-fold split.
    folds : int
        Number of folds.
    seed : int
        Seeds the shuffle of the groups.

    Returns
    -------
    tuple of (list of int, list of int)
        The training and the validation indices into ``groups``.
    """
    uniq = sorted(set(groups))
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    if fold is not None:
        val_groups = {g for j, g in enumerate(order) if j % folds == fold}
    else:
        n_val = (
            max(1, round(val_fraction * len(order))) if len(order) > 1 and val_fraction > 0 else 0
        )
        val_groups = set(order[:n_val])
    train = [i for i, g in enumerate(groups) if g not in val_groups]
    val = [i for i, g in enumerate(groups) if g in val_groups]
    return train, val


def input_norm(
    cfg: TrainConfig, *, stacklevel: int = 3
) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """The (mean, std) patches are normalised with, and where it came from.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``input_norm``, ``encoder_weights`` and ``init_from``.
    stacklevel : int
        Of the warning given when ``auto`` finds no sidecar beside the weights.

    Returns
    -------
    tuple
        ``(mean, std, source)``, ``source`` a short text for the card.
    """
    from ..models.pretrained import weights_normalization

    if cfg.input_norm != "auto":
        mean, std = INPUT_NORMS[cfg.input_norm]  # type: ignore[misc]
        return mean, std, f"input_norm={cfg.input_norm}"
    if cfg.init_from:
        from ..models.card import read_card

        parent = read_card(cfg.init_from).normalization
        name = Path(cfg.init_from).name
        return tuple(parent.mean), tuple(parent.std), f"{name} (the model fine-tuned)"
    if cfg.encoder_weights:
        found = weights_normalization(cfg.encoder_weights)
        if found is not None:
            return tuple(found[0]), tuple(found[1]), f"{Path(cfg.encoder_weights).name} (sidecar)"
        warnings.warn(
            f"{cfg.encoder_weights}: no sidecar JSON states the input normalisation these "
            "weights expect; using ImageNet mean/std. Give input_norm (--input-norm "
            "imagenet|unit|none) if they were trained otherwise",
            UserWarning,
            stacklevel=stacklevel,
        )
    mean, std = INPUT_NORMS["imagenet"]  # type: ignore[misc]
    return mean, std, "imagenet (default)"


def split_rows(cfg: TrainConfig, *, stacklevel: int = 2) -> tuple[list[Row], list[Row], list[Row]]:
    """Read the manifests and split them into training and validation rows.

    ``val_manifests`` validate when given; otherwise :func:`split_groups`
    splits by slide (by patch when there is one slide) or by patch.

    Parameters
    ----------
    cfg : TrainConfig
        The manifests and the split options.
    stacklevel : int
        Of the warning given when nothing is left to validate.

    Returns
    -------
    tuple of three lists of (Path, dict)
        The rows of ``cfg.manifests``, the training rows and the validation rows.

    Raises
    ------
    TrainError
        For an unreadable manifest, or a split that leaves nothing to train.
    """
    rows = read_rows(cfg.manifests)
    if cfg.val_manifests:
        train_rows, val_rows = rows, read_rows(cfg.val_manifests)
    else:
        groups = (
            [r.get("slide") or f"{b}/{r['image']}" for b, r in rows]
            if cfg.split_by == "slide"
            else [f"{b}/{r['image']}" for b, r in rows]
        )
        if cfg.split_by == "slide" and len(set(groups)) < 2:
            groups = [f"{b}/{r['image']}" for b, r in rows]  # one slide: split its patches
            logger.info("split_by='slide', but the patches come from one slide: split by patch")
        tr, va = split_groups(
            groups, val_fraction=cfg.val_fraction, fold=cfg.fold, folds=cfg.folds, seed=cfg.seed
        )
        train_rows, val_rows = [rows[i] for i in tr], [rows[i] for i in va]
    if not train_rows:
        raise TrainError("the split left no training patches")
    if not val_rows:
        warnings.warn(
            f"no validation patches ({len(rows)} patch(es), val_fraction {cfg.val_fraction:g}): "
            "the best epoch is chosen on the training loss; give validation folders "
            "(val_manifests, --val) or more patches",
            UserWarning,
            stacklevel=stacklevel,
        )
    return rows, train_rows, val_rows


def check_rows(cfg: TrainConfig, rows: list[Row], train_rows: list[Row]) -> None:
    """Refuse patches of the other kind (class vs instance) and training patches without a mask.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``kind``.
    rows : list of (Path, dict)
        The rows of ``cfg.manifests``.
    train_rows : list of (Path, dict)
        The training rows.

    Raises
    ------
    TrainError
        Naming the first folder at fault.
    """
    train_task(cfg).check_rows(rows)
    missing = next((b for b, r in train_rows if not r.get("mask")), None)
    if missing is not None:
        raise TrainError(
            f"{missing}: every training patch needs a mask (the manifest has rows without one)"
        )


def class_weights(
    cfg: TrainConfig, train_rows: list[Row], names: Sequence[str], out_ch: int, binary: bool
) -> Any:
    """The loss's class weights: ``cfg.class_weights``, or computed from the class fractions.

    Parameters
    ----------
    cfg : TrainConfig
        Its ``class_weights`` and ``kind``.
    train_rows : list of (Path, dict)
        The training rows (their ``frac_<class>`` columns for ``"auto"``:
        the fractions of the labelled pixels, unannotated ones left out).
    names : sequence of str
        The class names.
    out_ch : int
        The model's output channels.
    binary : bool
        One sigmoid channel for two classes.

    Returns
    -------
    list of float or None
        The weights, or ``None`` for none.

    Raises
    ------
    TrainError
        For a semantic run given a number of weights other than ``out_ch``.
    """
    from ..models.losses import class_weights_from_fractions

    weights = cfg.class_weights
    if weights == "auto":
        fr = np.array(
            [[float(r.get(f"frac_{n}") or 0) for n in names] for _, r in train_rows]
        ).mean(0)
        # frac_ columns count unannotated (ignore) pixels in no class: share out the labelled ones
        weights = class_weights_from_fractions(fr / fr.sum() if fr.sum() > 0 else fr)
    elif weights is not None and train_task(cfg).weights_per_channel and len(weights) != out_ch:
        raise TrainError(
            f"class_weights must have {out_ch} values (one per "
            f"{'output channel' if binary else 'class'}: {', '.join(names)}), not {len(weights)}"
        )
    return weights


@dataclass
class TrainData:
    """What :func:`prepare_data` found: the split, the classes, the model's shape, the datasets."""

    rows: list[Row]
    train_rows: list[Row]
    val_rows: list[Row]
    task: TrainTask
    classmap: ClassMap
    type_classmap: ClassMap | None  # the nucleus types of a HoVer run
    n_types: int
    binary: bool
    out_channels: int
    class_weights: Any
    model_mpp: float | None
    folder_mpp: dict[str, float | None]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    norm_source: str
    augmentation: Any
    train_ds: Any
    calib_ds: Any  # the training patches un-augmented, for batch-norm recalibration
    val_ds: Any
    steps_per_epoch: int

    @property
    def names(self) -> list[str]:
        """The class names."""
        return list(self.classmap.names)

    @property
    def n_classes(self) -> int:
        """The number of classes."""
        return len(self.classmap.names)

    @property
    def background(self) -> int:
        """The background class."""
        return self.classmap.background


def prepare_data(cfg: TrainConfig, *, stacklevel: int = 2) -> TrainData:
    """Read, split and check the patches of a run and build its datasets.

    Parameters
    ----------
    cfg : TrainConfig
        The run's config.
    stacklevel : int
        Of the warnings given here (no validation patches, no µm/px, no
        class map, no normalisation sidecar), as seen from this function.

    Returns
    -------
    TrainData
        Everything the run needs to know about its data.

    Raises
    ------
    TrainError
        For manifests, masks, class weights or resolutions that cannot train.
    """
    from ..augment import build_augmentation

    rows, train_rows, val_rows = split_rows(cfg, stacklevel=stacklevel + 1)
    check_rows(cfg, rows, train_rows)
    task = train_task(cfg)
    hover = task.instance_targets
    cm, type_cm, n_types = task.classmaps(cfg, train_rows, stacklevel + 1)
    names = list(cm.names)
    model_mpp, folder_mpp = training_mpp(
        train_rows + val_rows, cfg.mixed_mpp, stacklevel=stacklevel + 1
    )
    if model_mpp is None:
        warnings.warn(
            "the patch manifests state no µm/px (the slide had none): the model card will not "
            "know its resolution and inference cannot match it; extract patches with --mpp, "
            "or set it later with slideseg pack --mpp",
            UserWarning,
            stacklevel=stacklevel,
        )
    binary = cfg.binary and len(names) == 2 and not hover
    out_ch = 1 if binary else len(names)
    weights = class_weights(cfg, train_rows, names, out_ch, binary)
    aug = build_augmentation(cfg.augment, cfg.seed, cfg.scale_range)
    nc = None if hover else len(names)
    mean, std, norm_source = input_norm(cfg, stacklevel=stacklevel + 1)
    norm = (mean, std)
    train_ds = rows_dataset(train_rows, aug, cfg.seed, hover, nc, norm)
    calib_ds = rows_dataset(train_rows, None, cfg.seed, hover, nc, norm)
    val_ds = rows_dataset(val_rows, None, cfg.seed, hover, nc, norm) if val_rows else None
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    if cfg.max_steps:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
    return TrainData(
        rows=rows,
        train_rows=train_rows,
        val_rows=val_rows,
        task=task,
        classmap=cm,
        type_classmap=type_cm,
        n_types=n_types,
        binary=binary,
        out_channels=out_ch,
        class_weights=weights,
        model_mpp=model_mpp,
        folder_mpp=folder_mpp,
        mean=mean,
        std=std,
        norm_source=norm_source,
        augmentation=aug,
        train_ds=train_ds,
        calib_ds=calib_ds,
        val_ds=val_ds,
        steps_per_epoch=steps_per_epoch,
    )
